"""A person detector that errs like a real one, simulated on ground-truth boxes.

Paper 2 takes its boxes from YOLOv2 (§IV-A). Data without a detection file
(the toy scenes, and COCO or AI Challenger when no detector was run) get
boxes from this model of a detector's errors instead. Its rates follow what
is published for YOLOv2 (Redmon & Farhadi, "YOLO9000", CVPR 2017, Table 5,
COCO test-dev, all classes): AP 21.6, AP50 44.0, AP75 19.2; AP_S 5.0,
AP_M 22.4, AP_L 35.5. What they say, and what the model does with it:

* Localisation is loose. Of the boxes good enough for IoU 0.5, fewer than
  half reach 0.75 (AP75 / AP50 = 0.44). ``shift`` and ``scale`` are set so
  that, of the kept boxes with IoU >= 0.5 with their person, 44 % reach 0.75
  (``tests/test_bub_detector.py`` measures it).
* Small people are missed: AP_S is a seventh of AP_L. A person below
  ``small`` x the image height is missed with an extra chance of up to
  ``miss_small`` (growing as they shrink); hidden people too: an extra
  ``miss_occluded`` x the share of their joints that are occluded. (Crowds
  hide people from detectors: Li et al., CrowdPose, CVPR 2019, §1.)
* Duplicates survive only below the detector's own NMS: YOLOv2 suppresses
  boxes overlapping a kept one by IoU > 0.45, so what survives is a *partial*
  box -- an upper body, a half -- at IoU 0.2-0.45 with the whole person
  (chance ``dup``), scored lower.
* False positives are scored, and the detector outputs only boxes scoring
  above ``threshold`` (YOLOv2's demo threshold is 0.24; 0.3 here): true
  boxes score high, lower the more the person is hidden; false ones low.
  Poisson(``fp``) candidates per image, before the threshold.

Not from the paper: the paper's boxes are YOLOv2's on AI Challenger and
COCO, whose own error rates it does not report.

Below the model, the boxes every row of paper 2's tables starts from
(``detector_boxes``: the ground truth, this simulated detector or a
detection file) and Fig. 1 (a-b)'s jitter of them: the detector's side of
the evaluation, apart from the parse inside the boxes, which is the
paper's (``bottom_up_bbox.py``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import coco_aic
from .attribution import box_iou

YOLO_NMS_IOU = 0.45      # YOLOv2's non-maximum suppression threshold


@dataclass(frozen=True)
class DetectorModel:
    """Error rates of the simulated detector (module docstring)."""
    shift: float = 0.08          # s.d. of the centre shift, x box size
    scale: float = 0.13          # s.d. of log width and log height (tight / loose boxes)
    dup: float = 0.15            # chance of a partial second box on a person, IoU 0.2-0.45
    fp: float = 0.5              # false-positive candidates per image (Poisson mean), before the threshold
    miss: float = 0.03           # chance a large, fully visible person gets no box
    miss_occluded: float = 0.4   # extra chance, x the share of their joints that are occluded
    miss_small: float = 0.4      # extra chance for a person of height 0; 0 at ``small`` and above
    small: float = 0.3           # height (x image height) below which a person is small
    threshold: float = 0.3       # boxes scoring below it are not output

    def __post_init__(self):
        for name in ("dup", "miss", "miss_occluded", "miss_small", "small", "threshold"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"detector {name} = {getattr(self, name)}: expected a probability in [0, 1]")
        for name in ("shift", "scale", "fp"):
            if not (np.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"detector {name} = {getattr(self, name)}: expected a finite number >= 0")

    def miss_chance(self, height, occluded):
        """(K,) chance each person gets no box: height as a fraction of the
        image height, occluded: the share of their labelled joints occluded."""
        small = np.clip(1 - np.asarray(height, float) / max(self.small, 1e-9), 0, 1)
        return np.clip(self.miss + self.miss_occluded * np.asarray(occluded, float) + self.miss_small * small, 0, 1)


def perturb(box, rng, shift, scale):
    """A box with its centre moved by N(0, shift) x its size and each side
    scaled by exp(N(0, scale))."""
    x, y, w, h = box
    wh = np.array([w, h]) * np.exp(rng.normal(0, scale, 2))
    centre = np.array([x + w / 2, y + h / 2]) + rng.normal(0, shift, 2) * np.array([w, h])
    return np.concatenate([centre - wh / 2, wh])


def partial_box(box, rng):
    """Part of a person's box -- its top, a side -- overlapping it by IoU
    0.2-0.45 (below ``YOLO_NMS_IOU``, so the detector's NMS keeps both), or
    None when 50 draws found none."""
    x, y, w, h = box
    for _ in range(50):
        fw, fh = rng.uniform(0.4, 1.0, 2)
        part = np.array([x + rng.uniform(0, 1 - fw) * w, y + rng.uniform(0, 1 - fh) * h, fw * w, fh * h])
        part = perturb(part, rng, 0.05, 0.1)
        if 0.2 <= box_iou(box, part) <= YOLO_NMS_IOU:
            return part
    return None


def simulate(model, boxes, occluded, size, rng):
    """Detections (N, 5: x, y, w, h, score) for people with ground-truth
    ``boxes`` (K, 4) and occluded shares ``occluded`` (K,) in an image of
    ``size`` (width, height), seeded by ``rng``; scores above ``threshold``."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    occ = np.asarray(occluded, np.float64).reshape(-1)
    W, H = size
    out = []
    hit = rng.random(len(b)) >= model.miss_chance(b[:, 3] / H, occ)
    for box, o in zip(b[hit], occ[hit]):
        main = perturb(box, rng, model.shift, model.scale)
        score = float(np.clip(rng.normal(0.85, 0.1) - 0.4 * o, 0, 1))
        out.append([*main, score])
        if rng.random() < model.dup:
            part = partial_box(main, rng)
            if part is not None:
                out.append([*part, score * rng.uniform(0.3, 0.8)])
    for _ in range(rng.poisson(model.fp)):
        h = rng.uniform(0.15, 0.8) * H
        w = h * rng.uniform(0.35, 0.7)
        x, y = rng.uniform(-0.25 * w, W - 0.75 * w), rng.uniform(-0.25 * h, H - 0.75 * h)
        out.append([x, y, w, h, rng.uniform(0.0, 0.6)])
    d = np.array(out, np.float64).reshape(-1, 5)
    return d[d[:, 4] >= model.threshold]


# =============================================================================
# The boxes of paper 2's evaluation (§IV-A: "the human proposals ... by YOLOv2")
# =============================================================================
def jitter_boxes(boxes, rng, level):
    """Fig. 1 (a-b): a detector's boxes are shifted and too tight or too loose.
    Each box's centre moves by up to ``level`` x its size along each axis and
    its width and height are scaled by a factor in [1 - level, 1 + level]."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    wh = b[:, 2:] * rng.uniform(1 - level, 1 + level, (len(b), 2))
    centre = b[:, :2] + b[:, 2:] / 2 + rng.uniform(-level, level, (len(b), 2)) * b[:, 2:]
    return np.concatenate([centre - wh / 2, wh], 1)


def simulated_detector(annotations, size, rng, detector=DetectorModel()):
    """Boxes from a detector that errs as the paper's YOLOv2 did (§IV-A), for
    data sets without a detection file: (N, 5) x, y, w, h, score, simulated
    on the scored people's boxes with ``detector``'s rates
    (``common.detector.DetectorModel``: loose boxes, misses that grow for
    small and hidden people, partial duplicates below the detector's NMS,
    scored false positives above a threshold). Seeded by the caller's ``rng``."""
    people = scored_people(annotations)
    kp = np.array([a["keypoints"] for a in people], float).reshape(len(people), -1, 3)
    occluded = (kp[..., 2] == 1).sum(-1) / np.maximum((kp[..., 2] > 0).sum(-1), 1)
    return simulate(detector, gt_boxes(annotations), occluded, size, rng)


def scored_people(annotations):
    """The people COCO's AP scores: not a crowd, at least one labelled joint."""
    return [a for a in annotations if not a["iscrowd"] and a["num_keypoints"] > 0]


def gt_boxes(annotations):
    """Ground-truth boxes playing the detector (``--boxes gt``): the scored people's."""
    return np.array([a["bbox"] for a in scored_people(annotations)], np.float64).reshape(-1, 4)


def detector_boxes(source, i, gt, boxes, seed):
    """The boxes every row of image ``i`` starts from, (N, 5) with scores:
    ``boxes`` = "gt" (the ground truth, score 1), a ``DetectorModel``
    (``simulated_detector`` on the ground truth, seeded per image) or a
    detection file's {image_id: (N, 5)}. (The network's own boxes, "net",
    come with its outputs: ``bub_eval.evaluate``.)"""
    if isinstance(boxes, str):
        if boxes != "gt":                        # "net" boxes come with the network's outputs, not from here
            raise ValueError(f"detector_boxes: boxes must be 'gt', a DetectorModel or a detection file's, got {boxes!r}")
        b = gt_boxes(gt)
        return np.concatenate([b, np.ones((len(b), 1))], 1)
    if isinstance(boxes, DetectorModel):
        return simulated_detector(gt, scene_size(source, i), np.random.default_rng([seed, i, 1]), boxes)
    return boxes.get(source.image_id(i), np.zeros((0, 5)))


def scene_size(source, i):
    """Image ``i``'s (width, height) in full-resolution px."""
    return source.annotation(i)[2]


def box_source(flag, data, head=False):
    """``--boxes`` (``flag``) for ``--data`` (``data``): "gt", the simulated
    detector ("sim": a ``DetectorModel``), "net" (the network's own box
    head, paper 2's §V) or a detection file read into {image_id: (N, 5)}.
    Default: on the toy scenes "net" when the network has a ``head``, else
    "sim" (a detector that errs, as the paper's did); "gt" on real data."""
    how = flag or ("gt" if data != "toy" else "net" if head else "sim")
    if how == "net" and not head:
        raise ValueError("--boxes net: this network has no box head (trained with --box-weight 0)")
    return {"gt": "gt", "sim": DetectorModel(), "net": "net"}.get(how) or read_boxes(how)


def read_boxes(path, image_ids=None):
    """``--boxes FILE``: a COCO detection-results JSON -> {image_id: (N, 5)}."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"--boxes {p}: no such file (expected 'gt' or a COCO detection-results JSON)")
    return coco_aic.read_detections(p, image_ids)
