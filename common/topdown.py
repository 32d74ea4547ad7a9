"""Paper 1 as paper 2's top-down row (Tables I-II, "CPM"; Fig. 1).

Paper 2 compares with a top-down method: a single-person estimator run in
each detector box (the paper's row is CPM). This project holds one: paper
1's cascade (``heatmap_regression.py``), trained on person crops cut from
the same kind of scenes (``python heatmap_regression.py --data toy-crowd``)
and cropped in every box by the convention both papers share
(``common.crops``).

Here rather than in either script: it is where the two papers meet and the
method of neither -- paper 1's network is used as it is, paper 2's boxes
as they come. It reads paper 1's code through the module it is given.
"""
from pathlib import Path

import numpy as np
import torch

from .crops import box_center_scale, crop_side
from .transforms import apply_affine, crop_matrix, from_stride, invert_affine, to_tensor, warp_image


class TopDown:
    """Paper 1 as paper 2's top-down row: crop each box as paper 1's training
    cropped a person (``common.crops.box_center_scale``: a square of
    1.25 x the box's longer side around its centre), predict the part maps
    (its cascade, batched), read each part at its map's maximum, map it back
    into the image. One pose per box, scored box score x mean joint
    confidence (the maps' maxima): a confident detector and a confident
    estimator make a confident pose.

    Paper 1's joints are matched to paper 2's by name (MPII's upper neck is
    AIC's neck); a joint paper 1 does not predict stays missing (0, 0, 0).
    ``paper1``: paper 1's code (the module ``heatmap_regression``, passed in
    by the caller: ``common`` imports no script), of which this reads
    ``model_from_checkpoint``, ``predict`` and ``decode``.
    """

    def __init__(self, path, skeleton, device, paper1, batch=32, flip_test=False):
        self.paper1, self.device, self.batch, self.flip_test = paper1, device, batch, flip_test
        self.cfg, self.model = paper1.model_from_checkpoint(Path(path).expanduser(), device)
        names = tuple(self.cfg.joints)
        self.index = joint_index(names, skeleton.joints)
        if (self.index < 0).all():
            raise ValueError(f"--topdown {path}: its joints {names[:4]}... share no name with "
                             f"{skeleton.data}'s {skeleton.joints[:4]}...")

    def __call__(self, image, factor, boxes, scores):
        """Poses (P, J, 3: x, y, confidence) in full-resolution image px, one
        per box, and their scores (P,). ``image``: PIL, decoded at 1/``factor``."""
        A = self.crop_affines(boxes)
        return self.poses(self.maps(image, factor, A), A, scores)

    def crop_affines(self, boxes):
        """Image px -> crop px of each box, as paper 1's training cropped."""
        return [crop_matrix(*_center_side(b), self.cfg.input_size)
                for b in np.asarray(boxes, np.float64).reshape(-1, 4)]

    @torch.no_grad()
    def maps(self, image, factor, affines):
        """Paper 1's part maps (P, N, h, w) of the crops, in batches."""
        out, chunks = self.cfg.input_size, []
        for lo in range(0, len(affines), self.batch):
            x = torch.stack([to_tensor(warp_image(image, a, out, factor)) for a in affines[lo:lo + self.batch]])
            # A flip test exactly when the bottom-up rows run one (paper 2's
            # ``flip_test``), so every row sees each image or crop as often.
            chunks.append(self.paper1.predict(self.model, x.to(self.device), self.flip_test).float().cpu())
        return torch.cat(chunks) if chunks else torch.zeros(0, len(self.index), 1, 1)

    def poses(self, maps, affines, scores):
        """Each crop's maps -> one pose in image px and its score."""
        J = len(self.index)
        kp = np.zeros((len(affines), J, 3), np.float32)
        if not len(affines):
            return kp, np.zeros(0, np.float32)
        has = self.index >= 0
        xy = from_stride(self.paper1.decode(maps, method=self.cfg.decode).numpy(), self.model.stride)   # (P, N, 2) crop px
        conf = maps.flatten(2).max(-1).values.numpy()                           # (P, N)
        for k, A in enumerate(affines):
            kp[k, has, :2] = apply_affine(invert_affine(A), xy[k])[self.index[has]]
            kp[k, has, 2] = np.clip(conf[k, self.index[has]], 1e-3, None)     # a joint, however faint
        confidence = kp[:, has, 2].mean(1)
        return kp, np.asarray(scores, np.float32).reshape(-1) * confidence


def joint_index(theirs, ours):
    """For each of ``ours`` (paper 2's joint names), its index in ``theirs``
    (paper 1's), or -1. By name; MPII's "upper_neck" is paper 2's "neck"."""
    alias = {"neck": "upper_neck"}
    return np.array([theirs.index(n) if n in theirs else
                     theirs.index(alias[n]) if alias.get(n) in theirs else -1 for n in ours])


def _center_side(box):
    """Paper 1's crop of a box (``common.crops``, the convention both papers
    share): its centre and the crop side."""
    center, scale = box_center_scale(box)
    return center, crop_side(scale)
