"""Paper 2's images as the training loop and the evaluation read them.

``RecordScenes``: COCO, AI Challenger or CrowdPose images
(``common.coco_aic.SceneRecord``) behind the interface the toy scenes have
(``common.toy.ToyScenes``: ``load``, ``annotation``, ``ground_truth``,
``image_id``), with the regions nobody annotated as ``ignore``.
``TrainScenes``: §IV-A's augmentation (rotation, flip; the crop and scale
the paper leaves open) around any such source, each sample with the targets
and mask of §III-A made by the script's own ``make_targets``.

Here rather than in ``bottom_up_bbox.py``: reading, cropping and warping
images is the same kind of work for any data set and says nothing the
paper says; the one paper step in it, the targets, stays in the script and
is passed in.
"""
import warnings

import numpy as np
import torch
from PIL import Image

from . import box_head, coco_aic, harness
from .coco_eval import coco_annotation
from .toy import Scene
from .transforms import ImageError, apply_affine, crop_matrix, open_image, to_tensor, warp_image


class RecordScenes:
    """COCO or AI Challenger images (``common.coco_aic.SceneRecord``).

    The targets draw every non-crowd person with at least one labelled joint;
    crowd regions and persons without keypoints become ``ignore`` (Eq. 6-7's
    W = 0): their segmentation where the file has one, else their box.
    """

    def __init__(self, records, skeleton):
        self.records, self.skeleton = records, skeleton

    def __len__(self):
        return len(self.records)

    def image_id(self, i):
        return self.records[i].image_id

    def _drawn(self, r):
        return ~r.iscrowd & ((r.keypoints[..., 2] > 0).sum(-1) > 0)

    def annotation(self, i):
        r = self.records[i]
        keep = self._drawn(r)
        return self.skeleton.from_dataset(r.keypoints[keep]), r.boxes[keep], (r.width, r.height)

    def load(self, i, max_reduce=1.0):
        r = self.records[i]
        img, factor = open_image(r.image, max_reduce)
        keep = self._drawn(r)
        ignore = None
        if (~keep).any():
            ignore = np.zeros((r.height, r.width), bool)
            for k in np.flatnonzero(~keep):
                seg = r.segmentations[k] if r.segmentations else None
                if seg:
                    ignore |= coco_aic.segmentation_mask(seg, r.height, r.width)
                else:
                    x, y, w, h = np.round(r.boxes[k]).astype(int)
                    ignore[max(y, 0):max(y + h, 0), max(x, 0):max(x + w, 0)] = True
        return Scene(img, factor, self.skeleton.from_dataset(r.keypoints[keep]), r.boxes[keep],
                     ignore, (r.width, r.height))

    def ground_truth(self, i):
        r = self.records[i]
        return [coco_annotation(r.image_id, r.ann_ids[k], r.keypoints[k], r.boxes[k], r.areas[k],
                                r.iscrowd[k]) for k in range(len(r.keypoints))]


class TrainScenes(harness.EpochDataset):
    """Augmented training inputs with the targets and mask of §III-A.

    §IV-A: "randomly rotating the input image with a degree in [-30, 30] and
    flipping it horizontally". Paper: scale augmentation and cropping are
    unspecified. Here, as Cao et al. [3]: a square crop around a random
    annotated person whose box fills ``person_frac`` of it (toy scenes: the
    whole scene, zoomed by 1/``person_frac``). A flip mirrors x and swaps
    left/right joints and limbs. ``make_targets``: the paper's targets and
    mask of one input (``bottom_up_bbox.make_targets``, passed in: this
    module does not import the script).
    """

    def __init__(self, source, cfg, skeleton, stride, make_targets):
        self.source, self.cfg, self.skeleton, self.stride = source, cfg, skeleton, stride
        self.make_targets = make_targets

    def geometry(self, index, rng):
        cfg = self.cfg
        kp, boxes, (W, H) = self.source.annotation(index)
        zoom = rng.uniform(*cfg.person_frac)
        if cfg.data == "toy" or len(boxes) == 0:
            return np.array([(W - 1) / 2, (H - 1) / 2]), max(W, H) / zoom
        x, y, w, h = boxes[rng.integers(len(boxes))]
        # A person a few pixels tall would zoom the crop into a blur: the
        # crop side never drops below 16 px of the image (Here: our guard).
        return np.array([x + w / 2, y + h / 2]), max(w, h, 16.0) / zoom

    def __getitem__(self, index):
        cfg, out, st, sk = self.cfg, self.cfg.input_size, self.stride, self.skeleton
        rng = harness.sample_rng(cfg.seed, self.epoch, index)
        center, side = self.geometry(index, rng)
        rot, flip = rng.uniform(-cfg.rot_range, cfg.rot_range), bool(rng.random() < 0.5)
        A = crop_matrix(center, side, out, rot, flip)
        shape = (out // st, out // st)
        try:
            scene = self.source.load(index, side / out)
        except (ImageError, FileNotFoundError) as e:
            # A corrupt image inside a data set: skip it (zero mask), count it.
            warnings.warn(f"skipping image {index}: {e}")
            J, C = sk.J, sk.C
            return {"image": torch.zeros(3, out, out), "maps": torch.zeros(J + 1, *shape),
                    "fields": torch.zeros(2 * C, *shape), "mask": torch.zeros(J + 1 + 2 * C, *shape),
                    **({"boxes": torch.zeros(box_head.CHANNELS + 1, *shape)} if cfg.box_weight else {}),
                    "broken": True}
        crop = warp_image(scene.image, A, out, scene.factor)                  # (out, out, 3)
        kp = scene.keypoints.copy()
        kp[..., :2] = apply_affine(A, kp[..., :2])
        corners = np.stack([scene.boxes[:, :2], scene.boxes[:, :2] + scene.boxes[:, 2:],
                            scene.boxes[:, :2] + scene.boxes[:, 2:] * [1, 0],
                            scene.boxes[:, :2] + scene.boxes[:, 2:] * [0, 1]], 1)
        c = apply_affine(A, corners).reshape(-1, 4, 2)                       # rotated corners
        boxes = np.concatenate([c.min(1), c.max(1) - c.min(1)], 1) if len(c) else np.zeros((0, 4))
        if flip:
            kp = kp[:, sk.flip]
        ignore = np.zeros(shape, bool)
        if scene.ignore is not None:
            m = Image.fromarray(scene.ignore.astype(np.uint8) * 255).convert("RGB")
            full = warp_image(m, A, out)[..., 0] > 127                      # (out, out)
            # A map pixel is unknown when most of the input pixels it covers are.
            ignore = full.reshape(shape[0], st, shape[1], st).mean((1, 3)) > 0.5
        maps, fields, mask = self.make_targets(kp, boxes, ignore, shape, st, sk, cfg)
        sample = {"image": to_tensor(crop), "maps": torch.from_numpy(maps),
                  "fields": torch.from_numpy(fields), "mask": torch.from_numpy(mask), "broken": False}
        if cfg.box_weight:
            # Paper 2's §V, the box head: each person's box as the crop holds
            # it upright -- its centre through the crop's transform, its sides
            # scaled by the zoom -- not the rotated corners' extent above,
            # which grows with the rotation: at test time people stand upright.
            centre = apply_affine(A, scene.boxes[:, :2] + scene.boxes[:, 2:] / 2).reshape(-1, 2)
            wh = scene.boxes[:, 2:] * out / side
            upright = np.concatenate([centre - wh / 2, wh], 1)
            sample["boxes"] = torch.from_numpy(box_head.box_targets(upright, shape, st))
        return sample


def record_scenes(data, root, skeleton, eval_only=False):
    """(train, validation) ``RecordScenes`` of COCO, AI Challenger or
    CrowdPose (``data``) in the folder ``root``, in the layouts
    ``coco_aic.find_annotation_files`` knows; no training images with
    ``eval_only``."""
    read = {"coco": coco_aic.read_coco, "aic": coco_aic.read_aic, "crowdpose": coco_aic.read_crowdpose}[data]
    train = [] if eval_only else read(*coco_aic.find_annotation_files(data, root, "train"))
    val = read(*coco_aic.find_annotation_files(data, root, "val"))
    return RecordScenes(train, skeleton), RecordScenes(val, skeleton)
