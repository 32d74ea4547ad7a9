"""COCO and AI Challenger readers for paper 2: one ``SceneRecord`` per image.

Paper 2 trains bottom-up on whole images, so a record holds everyone in an
image, including what must be masked out of the loss rather than learned
from: crowd regions and persons without keypoints. Joints stay in the data
set's own order (COCO 17, AIC 14; see ``common.skeleton``) with COCO's ``v``
(0 not annotated, 1 occluded, 2 visible); unannotated joints are (0, 0, 0).

Coordinates. Keypoints of both data sets are integer pixel indices, 0-based,
i.e. already our convention (pixel centres at integers). COCO's boxes and
polygons are continuous coordinates in which pixel ``(r, c)`` covers
``[c, c+1) x [r, r+1)`` -- half a pixel off ours (detectron2's COCO loader
says the same: "segmentation coordinates are floating points in [0, H or W],
but keypoint coordinates are integers in [0, H-1 or W-1]"). Boxes are kept as
published, since detector boxes share that frame and half a pixel is far
below a box's precision; ``segmentation_mask`` accounts for the offset.

Errors are one line naming the file: ``DataError`` for a file that does not
hold what its format promises, ``FileNotFoundError`` saying what to download.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .datasets import DataError, _need
from .skeleton import AIC_JOINTS, COCO_JOINTS, CROWDPOSE_AREA_PER_BOX, CROWDPOSE_JOINTS

PERSON = 1  # COCO's category id of "person"

COCO_HINT = ("annotations_trainval2017.zip and train2017.zip / val2017.zip from cocodataset.org; "
             "put the JSON in ROOT/annotations/ and the images in ROOT/train2017/, ROOT/val2017/")
AIC_HINT = ("the AI Challenger 2017 keypoint train/validation archives (official JSON + images), "
            "optionally with mmpose's aic_annotations.tar (annotations/aic_train.json, aic_val.json)")
CROWDPOSE_HINT = ("crowdpose_{train,val,test}.json and images.zip of the CrowdPose release; put the JSON in "
                  "ROOT/annotations/ and the images in ROOT/images/")

# Official AIC flag -> COCO v: 1 visible -> 2, 2 occluded -> 1, 3 not labelled -> 0.
_AIC_TO_COCO_V = np.array([-1, 2, 1, 0], np.float32)

# Folder names of the AI Challenger 2017 keypoint archives. The training folder
# is "..._train_20170909" in scripts that unpack the official archive, but
# "..._train_20170902" in mmpose's data-preparation tree; both are tried.
_AIC_FOLDERS = {
    "train": (("ai_challenger_keypoint_train_20170909", "ai_challenger_keypoint_train_20170902"),
              "keypoint_train_images_20170902", "keypoint_train_annotations_20170909.json"),
    "val": (("ai_challenger_keypoint_validation_20170911",),
            "keypoint_validation_images_20170911", "keypoint_validation_annotations_20170911.json"),
}


@dataclass
class SceneRecord:
    """One image with everyone annotated in it (K persons, K may be 0)."""
    image: str                # path to the image file
    image_id: int | str       # the data set's id (COCO int; AIC official: the hex string)
    width: int                # pixels; 0 = unknown (read_aic(..., read_sizes=False))
    height: int
    keypoints: np.ndarray     # (K, J, 3) float32, data set's joint order, v in {0, 1, 2}
    boxes: np.ndarray         # (K, 4) float32 x, y, w, h
    areas: np.ndarray         # (K,) float32: COCO segment area; AIC box w*h
    iscrowd: np.ndarray       # (K,) bool
    ann_ids: np.ndarray       # (K,) int64: COCO 'id'; AIC official: running index over the file from 1
    segmentations: list       # per person: raw COCO polygon list / RLE dict, or None


# --------------------------------------------------------------------- helpers
def _load_json(path):
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file, expected JSON") from None
    if not text.strip():
        raise DataError(f"{path}: empty file, expected JSON")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None


def _is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _short(value, n=60):
    text = json.dumps(value)
    return text if len(text) <= n else text[:n] + "..."


def _rows(values, labels, width, where, what):
    """``values`` (K lists of ``width`` finite numbers) -> (K, width) float64.
    Fast path for the well-formed case; on failure, name the first bad one."""
    try:
        a = np.array(values, dtype=np.float64).reshape(len(values), width)
        if np.isfinite(a).all():
            return a
    except (TypeError, ValueError):
        pass
    for v, label in zip(values, labels):
        if not (isinstance(v, list) and len(v) == width and all(map(_is_number, v))):
            raise DataError(f"{where}: {label}: expected '{what}' as {width} finite numbers, got {_short(v)}")
    raise DataError(f"{where}: expected '{what}' as {width} finite numbers")  # not reached


# ------------------------------------------------------------------------ COCO
def read_coco(json_path, image_dir):
    """COCO person keypoints (official ``person_keypoints_{train,val}2017.json``).

    Keeps every ``category_id == 1`` annotation, crowds and persons with
    ``num_keypoints == 0`` included (the loss mask and the evaluator need
    them), and every image, those without persons too (K = 0; val2017 has
    them and they count for the evaluation). Records follow the file's
    ``images`` order, persons the ``annotations`` order. The category's joint
    names, when given, must be COCO's 17 in COCO's order (``_check_joint_names``).
    """
    path = _need(json_path, "COCO keypoint annotation JSON", COCO_HINT)
    folder = _need(image_dir, "COCO image folder", COCO_HINT)
    return _coco_layout(path, folder, _load_json(path), COCO_JOINTS, "coco")


def read_crowdpose(json_path, image_dir):
    """CrowdPose (Li et al., CVPR 2019; ``crowdpose_{train,val,test}.json``):
    COCO's layout with 14 joints in CrowdPose's own order (left_shoulder,
    right_shoulder, ... left_ankle, right_ankle, head, neck), kept in that
    order (``common.skeleton.CROWDPOSE_JOINTS``). The file's joint names must
    be those, in that order: an AI Challenger file (the same 14 joints in
    another order) is refused rather than misread. The files carry no
    ``area``: the OKS scale is ``CROWDPOSE_AREA_PER_BOX`` x the box area, as
    mmpose reads them. Images also carry a ``crowdIndex``, not used here.
    """
    path = _need(json_path, "CrowdPose annotation JSON", CROWDPOSE_HINT)
    folder = _need(image_dir, "CrowdPose image folder", CROWDPOSE_HINT)
    return _coco_layout(path, folder, _load_json(path), CROWDPOSE_JOINTS, "crowdpose")


LABELS = {"coco": "COCO", "aic": "AI Challenger", "crowdpose": "CrowdPose"}


def _coco_layout(path, folder, data, joints, kind):
    """Records from a COCO-style JSON; shared by COCO, CrowdPose and AIC
    converted by mmpose (``kind``: "coco", "crowdpose" or "aic")."""
    if not (isinstance(data, dict) and isinstance(data.get("images"), list)
            and isinstance(data.get("annotations"), list)):
        raise DataError(f"{path}: expected a COCO JSON object with 'images' and 'annotations' lists")
    for cat in data.get("categories") or []:
        names = cat.get("keypoints") if isinstance(cat, dict) and cat.get("id") == PERSON else None
        if isinstance(names, list):  # a file without names cannot be checked; the count still is
            if kind == "crowdpose":  # CrowdPose calls its head top "head" (its only head joint)
                names = ["head_top" if n == "head" else n for n in names]
            _check_joint_names(path, names, joints, LABELS[kind])

    images = {}
    for i, im in enumerate(data["images"]):
        if not (isinstance(im, dict) and all(k in im for k in ("id", "file_name", "width", "height"))):
            raise DataError(f"{path}: images[{i}]: expected 'id', 'file_name', 'width' and 'height'")
        if im["id"] in images:
            raise DataError(f"{path}: image id {im['id']!r} appears twice in 'images'")
        images[im["id"]] = (im, [])
    for i, ann in enumerate(data["annotations"]):
        if not (isinstance(ann, dict) and all(k in ann for k in ("id", "image_id", "category_id"))):
            raise DataError(f"{path}: annotations[{i}]: expected 'id', 'image_id' and 'category_id'")
        if ann["category_id"] != PERSON:
            continue
        if ann["image_id"] not in images:
            raise DataError(f"{path}: annotation {ann['id']}: image_id {ann['image_id']!r} is not in 'images'")
        images[ann["image_id"]][1].append(ann)
    return [_coco_scene(path, folder, im, anns, len(joints), kind) for im, anns in images.values()]


def _joint_key(name):
    """A joint name as ``(side, part)``, so that the spellings in use compare equal:
    ``right_shoulder`` (COCO's and mmpose's files), ``r_shoulder`` (``common.skeleton``),
    ``Right Shoulder``, ``shoulder_R``, ``RightShoulder`` -> ``("r", "shoulder")``;
    ``head_top``, ``head top``, ``headtop`` -> ``("", "headtop")``."""
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", str(name))   # camelCase -> camel Case
    words = re.findall(r"[a-z]+|[0-9]+", spaced.lower())
    side = {"l": "l", "left": "l", "r": "r", "right": "r"}
    return "".join(side[w] for w in words if w in side), "".join(w for w in words if w not in side)


def _spelled_out(name):
    """``common.skeleton``'s short name as COCO and mmpose spell it: r_shoulder -> right_shoulder."""
    return re.sub(r"^([lr])_", lambda m: {"l": "left_", "r": "right_"}[m.group(1)], name)


def _check_joint_names(path, names, joints, label):
    """The file's ``categories[...]['keypoints']`` must name ``joints`` in their order.

    The count alone does not tell data sets apart: CrowdPose also has 14 joints,
    in COCO's layout, but ordered left_shoulder, right_shoulder, ..., head, neck;
    read as AI Challenger its joints would be silently misassigned. Spellings
    are compared after ``_joint_key`` (mmpose's aic json says ``right_shoulder``
    ... ``head_top``, ``neck``; ours ``r_shoulder``).
    """
    expected = ", ".join(_spelled_out(j) for j in joints)
    other = {"AI Challenger": " (CrowdPose: 14 joints, another order)",
             "CrowdPose": " (AI Challenger: 14 joints, another order)"}.get(label, "")
    if len(names) != len(joints):
        raise DataError(f"{path}: category 1 has {len(names)} keypoints, expected {len(joints)} "
                        f"({label}: {expected}); is this the right file?")
    for i, (name, joint) in enumerate(zip(names, joints)):
        if _joint_key(name) != _joint_key(joint):
            raise DataError(f"{path}: category 1 keypoint {i} is {str(name)[:40]!r}, expected "
                            f"'{_spelled_out(joint)}': expected {label}'s {len(joints)} joints in its "
                            f"order ({expected}); is this another data set's file{other}?")


def _coco_scene(path, folder, im, anns, num_joints, kind):
    aic = kind == "aic"
    where = f"{path}: image {im['id']}"
    if not all(isinstance(im[k], int) and im[k] > 0 for k in ("width", "height")):
        raise DataError(f"{where}: expected positive integer 'width' and 'height', "
                        f"got {im['width']!r} x {im['height']!r}")
    k = len(anns)
    labels = [f"annotation {a['id']}" for a in anns]
    kpts = _rows([a.get("keypoints") for a in anns], labels, 3 * num_joints, where, "keypoints")
    kpts = kpts.reshape(k, num_joints, 3).astype(np.float32)
    bad = ~np.isin(kpts[..., 2], (0, 1, 2))
    if bad.any():
        a, j = np.argwhere(bad)[0]
        flag = kpts[a, j, 2]
        hint = " (AI Challenger's own 'not labelled' flag: pass the official file, not a half-converted one)" \
            if aic and flag == 3 else ""
        raise DataError(f"{where}: {labels[a]}: keypoint {j} has v = {flag:g}, expected 0, 1 or 2{hint}")
    kpts[kpts[..., 2] == 0] = 0  # (0, 0, 0) for every unannotated joint, whatever the file held

    boxes = _rows([a.get("bbox") for a in anns], labels, 4, where, "bbox")
    if (boxes[:, 2:] < 0).any():
        raise DataError(f"{where}: {labels[np.argwhere(boxes[:, 2:] < 0)[0, 0]]}: negative bbox width or height")
    if aic:
        # AIC has no segments; its official evaluator scales OKS by the box area.
        areas = boxes[:, 2] * boxes[:, 3]
    elif kind == "crowdpose":
        areas = CROWDPOSE_AREA_PER_BOX * boxes[:, 2] * boxes[:, 3]
    else:
        areas = _rows([[a.get("area")] for a in anns], labels, 1, where, "area")[:, 0]
    crowd = [a.get("iscrowd", 0) for a in anns]
    if any(c not in (0, 1) for c in crowd):
        raise DataError(f"{where}: expected 'iscrowd' 0 or 1, got {sorted(set(map(repr, crowd)))}")
    segs = [None if kind != "coco" else (a.get("segmentation") or None) for a in anns]
    if any(s is not None and not isinstance(s, (list, dict)) for s in segs):
        raise DataError(f"{where}: expected each 'segmentation' as a polygon list or an RLE object")
    try:
        ids = np.array([a["id"] for a in anns], dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"{where}: expected integer annotation ids") from None
    return SceneRecord(str(folder / im["file_name"]), im["id"], im["width"], im["height"], kpts,
                       boxes.astype(np.float32), areas.astype(np.float32),
                       np.array(crowd, dtype=bool), ids, segs)


# ----------------------------------------------------------------- AI Challenger
def read_aic(json_path, image_dir, read_sizes=True):
    """AI Challenger 2017 keypoints, from either of the two layouts in use.

    * Official (``keypoint_{train,validation}_annotations_*.json``): a JSON
      list of ``{"image_id": "<sha1 hex>", "url", "keypoint_annotations":
      {"human1": [14 x (x, y, v)]}, "human_annotations": {"human1": [x1, y1,
      x2, y2]}}``, image file ``image_id + ".jpg"``. Confirmed on
      ``keypoint_annotations_example.json`` and the baseline ``prepro.py`` of
      github.com/AIChallenger/AI_Challenger_2017. The task page
      (challenger.ai/competition/keypoint/subject) gives the joint order
      (= ``AIC_JOINTS``) and three flags: labelled and visible, labelled but
      not visible, not labelled. In the files 1 is visible (the official
      keypoint_eval.py and baseline keep ``v == 1`` as the visible joints),
      3 not labelled (absent joints are (0, 0, 3) in the example), so 2 is
      occluded. They become COCO's 2 / 1 / 0. Persons are ordered human1,
      human2, ..., human10; the file has no person ids, so ``ann_ids`` is a
      running index over the file *from 1*, as COCO's ids: pycocotools'
      ``COCOeval.evaluateImg`` stores a matched ground truth's id as the match
      flag (``dtm[tind, dind] = gt[m]['id']``, then ``tps = dtm & ~dtIg``), so a
      person with id 0 is never matched and scoring our ground truth with
      pycocotools would disagree with ``coco_keypoint_ap``. Boxes (x1, y1, x2, y2)
      become (x1, y1, x2 - x1, y2 - y1), the width and height behind the
      evaluator's scale ``(x2-x1)*(y2-y1)``.
      The file stores no image size: with ``read_sizes`` it is read from each
      JPEG header (PIL reads only the header); ``read_sizes=False`` leaves
      width = height = 0, for looking at annotations without the images.
    * COCO-style, converted by mmpose (``annotations/aic_{train,val}.json``):
      read like COCO with 14 joints in AIC order. Where the file names its
      joints (``categories[...]['keypoints']``), the names must be AIC's in
      AIC's order, any usual spelling (``_check_joint_names``): a CrowdPose
      file, 14 joints in another order, is refused rather than misread. Its
      flags must already be COCO's: mmpose's ``BaseCocoDataset`` takes every
      ``v > 0`` as labelled, which would make AIC's 3 (not labelled) a label; a
      3 is refused. ``image_id`` and ``ann_ids`` are the file's integer ids.

    Coordinates are taken as 0-based pixels without change. Assumed, as no
    AIC document states a base, because: the example file has box corners at
    0 (e.g. [0, 169, 114, 633]), which a 1-based file would not; the official
    baseline indexes image arrays with the raw values and clips crops to
    ``width - 1``; and mmpose reads its converted file like COCO, with no
    offset, while it subtracts 1 for data it knows to be 1-based (JHMDB).
    Areas are box areas (w * h) in both layouts, crowds none, segmentations
    None.
    """
    path = _need(json_path, "AI Challenger annotation JSON", AIC_HINT)
    folder = _need(image_dir, "AI Challenger image folder", AIC_HINT)
    data = _load_json(path)
    if isinstance(data, dict):
        return _coco_layout(path, folder, data, AIC_JOINTS, "aic")
    if not isinstance(data, list):
        raise DataError(f"{path}: expected the official AI Challenger list of images "
                        f"or a COCO-style object with 'images' and 'annotations'")
    # Person ids count from 1: pycocotools never matches a ground truth whose id is 0.
    records, seen, next_id = [], set(), 1
    for i, entry in enumerate(data):
        rec = _aic_scene(path, folder, i, entry, next_id, read_sizes)
        if rec.image_id in seen:
            raise DataError(f"{path}: image_id {rec.image_id} appears twice")
        seen.add(rec.image_id)
        next_id += len(rec.ann_ids)
        records.append(rec)
    return records


def _aic_scene(path, folder, i, entry, first_id, read_sizes):
    if not (isinstance(entry, dict) and isinstance(entry.get("image_id"), str)
            and isinstance(entry.get("keypoint_annotations"), dict)
            and isinstance(entry.get("human_annotations"), dict)):
        raise DataError(f"{path}: entry {i}: expected 'image_id' (string), 'keypoint_annotations' "
                        f"and 'human_annotations' (objects)")
    image_id, kp, hb = entry["image_id"], entry["keypoint_annotations"], entry["human_annotations"]
    where = f"{path}: image {image_id}"
    if set(kp) != set(hb):
        raise DataError(f"{where}: 'keypoint_annotations' has {sorted(kp)} but 'human_annotations' "
                        f"has {sorted(hb)}")
    names = sorted(kp, key=lambda n: (len(n), n))  # human2 before human10
    j = len(AIC_JOINTS)
    raw = _rows([kp[n] for n in names], names, 3 * j, where, "keypoint_annotations").reshape(-1, j, 3)
    bad = ~np.isin(raw[..., 2], (1, 2, 3))
    if bad.any():
        p, q = np.argwhere(bad)[0]
        raise DataError(f"{where}: {names[p]}: keypoint {q} has flag {raw[p, q, 2]:g}, "
                        f"expected 1 (visible), 2 (occluded) or 3 (not labelled)")
    kpts = np.concatenate([raw[..., :2], _AIC_TO_COCO_V[raw[..., 2].astype(int)][..., None]], axis=-1)
    kpts[kpts[..., 2] == 0] = 0
    corners = _rows([hb[n] for n in names], names, 4, where, "human_annotations")
    size = corners[:, 2:] - corners[:, :2]
    if (size < 0).any():
        raise DataError(f"{where}: {names[np.argwhere(size < 0)[0, 0]]}: box corners not ordered "
                        f"(expected x1 <= x2 and y1 <= y2)")
    image = folder / f"{image_id}.jpg"
    width, height = _image_size(image) if read_sizes else (0, 0)
    k = len(names)
    return SceneRecord(str(image), image_id, width, height, kpts.astype(np.float32),
                       np.concatenate([corners[:, :2], size], axis=1).astype(np.float32),
                       (size[:, 0] * size[:, 1]).astype(np.float32), np.zeros(k, bool),
                       np.arange(first_id, first_id + k, dtype=np.int64), [None] * k)


def _image_size(image):
    """(width, height) from the image header; the pixels are not decoded."""
    try:
        with Image.open(image) as im:
            return im.size
    except FileNotFoundError:
        raise FileNotFoundError(f"{image}: image not found (the official AI Challenger JSON has no "
                                f"image sizes, so they are read from the images; unpack them here "
                                f"or pass read_sizes=False)") from None
    except OSError as e:  # PIL.UnidentifiedImageError and truncated files
        raise DataError(f"{image}: not a readable image ({type(e).__name__})") from None


# ---------------------------------------------------------------- segmentation
def segmentation_mask(segmentation, height, width):
    """COCO segmentation -> (H, W) bool mask, as pycocotools' ``annToMask``.

    * Polygons ``[[x1, y1, x2, y2, ...], ...]``: union of the polygons; a
      pixel is inside when its centre is (even-odd rule). pycocotools'
      rasteriser samples pixel ``(r, c)`` at ``(c + 0.5, r + 0.5)`` in
      polygon coordinates (COCO's frame; see the module docstring), so the
      polygon is shifted by -0.5 into ours first. pycocotools also snaps
      vertices to 1/5 px, so pixels within ~0.1 px of an edge may differ.
      (Not PIL's ImageDraw.polygon: it also fills every pixel the outline
      touches, which grows the small persons of the COCO samples by 5-15%.)
    * RLE ``{"size": [h, w], "counts": ...}``: runs of 0s then 1s then 0s ...
      over the pixels in column-major order; ``counts`` is a list (the
      uncompressed form crowd annotations use) or pycocotools' compressed
      string (``rleToString``). Decoded exactly.
    * None (no segment, e.g. AI Challenger): an empty mask.
    """
    mask = np.zeros((height, width), dtype=bool)
    if segmentation is None:
        return mask
    if isinstance(segmentation, dict):
        return _rle_mask(segmentation, height, width)
    if not isinstance(segmentation, list):
        raise ValueError(f"segmentation: expected a polygon list, an RLE dict or None, "
                         f"got {type(segmentation).__name__}")
    for poly in segmentation:
        if not (isinstance(poly, list) and len(poly) % 2 == 0 and all(map(_is_number, poly))):
            raise ValueError(f"segmentation: expected polygons as flat lists of x, y numbers, got {_short(poly)}")
        if poly:
            _fill_polygon(mask, np.asarray(poly, dtype=np.float64).reshape(-1, 2) - 0.5)
    return mask


def _fill_polygon(mask, xy):
    """OR into ``mask`` the pixels whose centres (integer coordinates) lie inside polygon ``xy``."""
    h, w = mask.shape
    r0, r1 = max(math.ceil(xy[:, 1].min()), 0), min(math.floor(xy[:, 1].max()) + 1, h)
    c0, c1 = max(math.ceil(xy[:, 0].min()), 0), min(math.floor(xy[:, 0].max()) + 1, w)
    if r0 >= r1 or c0 >= c1:
        return
    (x0, y0), (x1, y1) = xy.T, np.roll(xy, -1, axis=0).T
    rows = np.arange(r0, r1, dtype=np.float64)
    # Edge e crosses the centre line of row r when its ends lie on opposite
    # sides; the half-open test counts a vertex on the line once.
    e, r = np.nonzero((y0[:, None] <= rows) != (y1[:, None] <= rows))
    x = x0[e] + (rows[r] - y0[e]) * (x1[e] - x0[e]) / (y1[e] - y0[e])
    # Each crossing toggles inside/outside from the first pixel centre at or
    # right of it on; a running parity along the row then fills the spans.
    col = np.clip(np.ceil(x), c0, c1).astype(np.int64) - c0
    toggles = np.bincount(r * (c1 - c0 + 1) + col, minlength=(r1 - r0) * (c1 - c0 + 1))
    inside = np.cumsum(toggles.reshape(r1 - r0, -1)[:, :-1], axis=1) % 2 == 1
    mask[r0:r1, c0:c1] |= inside


def _rle_mask(rle, height, width):
    size, counts = rle.get("size"), rle.get("counts")
    if not (isinstance(size, (list, tuple)) and list(size) == [height, width]):
        raise ValueError(f"segmentation: RLE 'size' {_short(size)} does not match the image ({height}, {width})")
    if isinstance(counts, (str, bytes)):
        counts = _rle_string_counts(counts)
    elif not (isinstance(counts, list) and all(isinstance(c, int) and c >= 0 for c in counts)):
        raise ValueError(f"segmentation: expected RLE 'counts' as non-negative integers or a string, "
                         f"got {_short(counts)}")
    if sum(counts) != height * width:
        raise ValueError(f"segmentation: RLE counts sum to {sum(counts)}, expected {height} * {width}")
    runs = np.repeat(np.arange(len(counts)) % 2 == 1, counts)  # 0s first, then alternating
    return np.ascontiguousarray(runs.reshape(width, height).T)  # column-major


def _rle_string_counts(s):
    """Counts from pycocotools' compressed RLE string (maskApi.c, rleFrString).

    Each count is a signed integer written in 5-bit groups, least
    significant first, one character per group: ``chr(48 + group)``, plus 32
    when another group follows. Bit 16 of the last group is the sign. From
    the third count on, the string stores the difference to the count two
    before (run lengths of one object change slowly from column to column).
    """
    data = s.encode("ascii", "replace") if isinstance(s, str) else s
    counts, value, shift = [], 0, 0
    for ch in data:
        c = ch - 48
        if not 0 <= c < 64:
            raise ValueError(f"segmentation: RLE string has {chr(ch)!r}, expected characters '0'..'o'")
        value |= (c & 0x1F) << shift
        shift += 5
        if c & 0x20:  # more groups follow
            continue
        if c & 0x10:  # negative: sign-extend
            value -= 1 << shift
        if len(counts) > 2:
            value += counts[-2]
        if value < 0:
            raise ValueError("segmentation: RLE string decodes to a negative count")
        counts.append(value)
        value, shift = 0, 0
    if shift:
        raise ValueError("segmentation: RLE string ends in the middle of a count")
    return counts


# ------------------------------------------------------------------ detections
def read_detections(path, image_ids=None):
    """Person boxes from a COCO detection-results JSON -> {image_id: (N, 5) float32}.

    The file is a list of ``{"image_id", "category_id", "bbox": [x, y, w, h],
    "score"}`` as any COCO detector writes (e.g. the person detections HRNet
    and mmpose distribute for val2017). Entries with a ``category_id`` other
    than 1 are skipped; without one, every entry counts as a person. Rows are
    ``x, y, w, h, score`` in file order. An empty list is valid (no boxes).
    Boxes reaching outside the image are kept: clipping is the caller's. With
    ``image_ids``, only those images are kept and each gets an entry, (0, 5)
    when the detector found nobody there.
    """
    path = _need(path, "detection results JSON", "a COCO-format results file from a person detector")
    data = _load_json(path)
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of detections "
                        f"({{'image_id', 'category_id', 'bbox', 'score'}}), got {type(data).__name__}")
    wanted = None if image_ids is None else list(dict.fromkeys(image_ids))  # ordered, unique
    keep = None if wanted is None else set(wanted)
    found = {}
    for i, d in enumerate(data):
        if not (isinstance(d, dict) and all(k in d for k in ("image_id", "bbox", "score"))):
            raise DataError(f"{path}: detection {i}: expected an object with 'image_id', 'bbox' and 'score'")
        if d.get("category_id", PERSON) != PERSON:
            continue
        iid, box, score = d["image_id"], d["bbox"], d["score"]
        if isinstance(iid, bool) or not isinstance(iid, (int, str)):
            raise DataError(f"{path}: detection {i}: expected 'image_id' as an integer or string, "
                            f"got {_short(iid)}")
        if not (isinstance(box, list) and len(box) == 4 and all(map(_is_number, box)) and _is_number(score)):
            raise DataError(f"{path}: detection {i}: expected 'bbox' as 4 finite numbers and a finite "
                            f"'score', got {_short(box)} and {_short(score)}")
        if box[2] < 0 or box[3] < 0:
            raise DataError(f"{path}: detection {i}: negative box width or height in {_short(box)}")
        if keep is None or iid in keep:
            found.setdefault(iid, []).append([*box, score])
    keys = found if wanted is None else wanted
    return {k: np.array(found.get(k, []), dtype=np.float32).reshape(-1, 5) for k in keys}


# ------------------------------------------------------------------- locations
def find_annotation_files(kind, root, split):
    """(json_path, image_dir) of a data set unpacked under ``root``.

    * ``"coco"``: ``root/annotations/person_keypoints_{split}2017.json`` with
      ``root/{split}2017/`` (the official archives, as mmpose lays them out).
    * ``"crowdpose"``: ``crowdpose_{split}.json`` in ``root/annotations/``,
      ``root/json/`` or ``root`` itself, with the images in ``root/images/``
      (the release's ``images.zip`` unpacked).
    * ``"aic"``: first mmpose's converted ``root/annotations/aic_{split}.json``,
      then the official JSON inside the unpacked archive folder, both with the
      images in that folder (names from mmpose's dataset docs and configs and
      from scripts that read the official archives; see ``_AIC_FOLDERS``).
    The first candidate whose JSON and image folder both exist wins.
    """
    if kind not in ("coco", "aic", "crowdpose") or split not in ("train", "val"):
        raise ValueError(f"expected kind 'coco', 'aic' or 'crowdpose' and split 'train' or 'val', "
                         f"got {kind!r}, {split!r}")
    root = Path(root)
    if kind == "coco":
        candidates = [(root / "annotations" / f"person_keypoints_{split}2017.json", root / f"{split}2017")]
        hint = COCO_HINT
    elif kind == "crowdpose":
        candidates = [(root / d / f"crowdpose_{split}.json", root / "images") for d in ("annotations", "json", ".")]
        hint = CROWDPOSE_HINT
    else:
        folders, images, official = _AIC_FOLDERS[split]
        candidates = [(root / "annotations" / f"aic_{split}.json", root / f / images) for f in folders]
        candidates += [(root / f / official, root / f / images) for f in folders]
        hint = AIC_HINT
    for json_path, image_dir in candidates:
        if json_path.is_file() and image_dir.is_dir():
            return json_path, image_dir
    tried = "; ".join(f"{j} with {d}/" for j, d in candidates)
    raise FileNotFoundError(f"{kind} {split} annotations not found under {root}: tried {tried} ({hint})")
