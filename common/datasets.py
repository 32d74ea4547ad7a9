"""MPII and LSP readers: every annotation file paper 1 uses -> ``PersonRecord``.

Each format has its quirks (1-based MATLAB pixels, inverted visibility flags,
squeezed MATLAB structs); each reader undoes them here, once, so everything
downstream sees the conventions of ``common/__init__.py``: 0-based ``(x, y)``
pixels, keypoints ``(16, 3)`` in MPII order, v = 0 not annotated / 1 occluded /
2 visible. Unannotated joints are ``(0, 0, 0)`` as in COCO, whatever
placeholder the file used. Readers check that annotation files and the image
folder exist (not each image); errors are one line naming the file.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .metrics import torso_size
from .skeleton import LSP_TO_MPII, MPII_JOINTS

NUM_JOINTS = len(MPII_JOINTS)  # 16
HEAD_TOP, UPPER_NECK = MPII_JOINTS.index("head_top"), MPII_JOINTS.index("upper_neck")
# Head size = SC_BIAS * head-box diagonal: "SC_BIAS = 0.6; % 0.8*0.75" in the
# official util_get_head_size.m, copied as SC_BIAS in HRNet's evaluate().
SC_BIAS = 0.6
# Approximate head size per unit of head segment length; see approx_head_size.
HEAD_APPROX = 0.75


class DataError(ValueError):
    """An annotation file exists but does not hold what its format promises."""


@dataclass
class PersonRecord:
    image: str             # path to the image file
    keypoints: np.ndarray  # (16, 3) float32 in MPII order, 0-based pixels, v in {0,1,2}
    center: np.ndarray     # (2,) float32 person centre, 0-based pixels
    scale: float           # person height / 200 px (MPII convention); crop side = 200*scale
    head_size: float | None = None   # PCKh normaliser (0.6 * head-box diagonal) when known
    torso_size: float | None = None  # PCK normaliser for LSP when known
    name: str = ""         # image file name / id for writing predictions back


def _need(path, what, hint):
    """``Path(path)``, or one-line FileNotFoundError saying what to get."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: {what} not found ({hint})")
    return p


def _loadmat(path, **kwargs):
    # scipy is optional for the project (toy data needs none): import late.
    try:
        import scipy.io
    except ImportError:
        raise ImportError(f"reading {path} needs scipy (pip install scipy)") from None
    try:
        return scipy.io.loadmat(str(path), **kwargs)
    except Exception as e:  # scipy raises several types for corrupt files
        raise DataError(f"{path}: not a readable MATLAB .mat file ({type(e).__name__})") from None


def mpii_crop_box(center, scale):
    """HRNet's enlargement of an MPII person box before cropping -> ``(center, scale)``.

    MPII's ``objpos`` lies on the torso and its ``scale`` is tight, so a crop
    of side ``200*scale`` around it cuts off the feet. HRNet (lib/dataset/
    mpii.py, "Adjust center/scale slightly to avoid cropping limbs") moves the
    centre down by ``15*scale`` px and multiplies the scale by 1.25; the crop
    side is then ``200 * returned scale``. The readers keep the annotation as
    published and leave this choice to the crop code. NaN centres stay NaN.
    """
    c = np.array(center, dtype=np.float32)
    c[1] += 15.0 * scale
    return c, float(scale) * 1.25


def _array(value, shape, where, what):
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        a = None
    if a is None or a.shape != shape or not np.isfinite(a).all():
        got = f"shape {a.shape}" if a is not None else type(value).__name__
        raise DataError(f"{where}: expected '{what}' as finite numbers of shape {shape}, got {got}")
    return a


# --------------------------------------------------------------- MPII, HRNet JSON
def read_mpii_json(json_path, image_dir, gt_valid_mat=None):
    """MPII in the HRNet/mmpose JSON layout (annot/train.json, valid.json, ...).

    Each entry holds ``image``, ``center`` and ``scale`` (person height / 200)
    and, except in test.json, ``joints`` (16 x 2) and ``joints_vis`` (16).
    Coordinates are MATLAB's, 1-based, so 1 is subtracted (HRNet: "MPII uses
    matlab format, index is based 1"). A centre of (-1, -1) means unknown
    (test.json); it becomes NaN, with a NaN scale.

    WARNING: ``joints_vis`` means *annotated*, not *visible*: the JSON cannot
    tell an occluded joint from a visible one. Every annotated joint is given
    v = 2 here, so a "visible joints only" loss on this layout silently uses
    all annotated joints. Use ``read_mpii_mat`` for the real visibility.

    ``head_size`` stays None unless ``gt_valid_mat`` (HRNet's gt_valid.mat,
    whose persons are in the order of valid.json) is given.
    """
    path = _need(json_path, "MPII annotation JSON", "HRNet's annot/train.json or valid.json")
    folder = _need(image_dir, "MPII image folder", "images/ from mpii_human_pose_v1.tar.gz")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a list of person records, got {type(data).__name__}")

    records = []
    for i, a in enumerate(data):
        where = f"{path}: record {i}"
        if not isinstance(a, dict) or not isinstance(a.get("image"), str):
            raise DataError(f"{where}: expected an object with an 'image' file name")
        center = _array(a.get("center"), (2,), where, "center")
        scale = float(_array(a.get("scale"), (), where, "scale"))
        if (center == -1).all():
            center, scale = np.full(2, np.nan), float("nan")
        elif scale <= 0:
            raise DataError(f"{where}: expected a positive 'scale', got {scale}")
        else:
            center = center - 1.0
        kpts = np.zeros((NUM_JOINTS, 3), np.float32)
        if "joints" in a:
            joints = _array(a["joints"], (NUM_JOINTS, 2), where, "joints")
            vis = _array(a.get("joints_vis"), (NUM_JOINTS,), where, "joints_vis") > 0
            kpts[vis, :2] = joints[vis] - 1.0
            kpts[vis, 2] = 2  # annotated; visibility unknown (see docstring)
        records.append(PersonRecord(str(folder / a["image"]), kpts, center.astype(np.float32),
                                    scale, name=a["image"]))

    if gt_valid_mat is not None:
        sizes = read_mpii_head_sizes(gt_valid_mat)
        if len(sizes) != len(records):
            raise DataError(f"{gt_valid_mat}: holds {len(sizes)} head boxes but {path} has "
                            f"{len(records)} persons; gt_valid.mat goes with valid.json")
        for r, h in zip(records, sizes):
            r.head_size = float(h)
    return records


def read_mpii_head_sizes(gt_valid_mat):
    """Head sizes ``(N,)`` from HRNet's gt_valid.mat, in the order of valid.json.

    The file holds ``headboxes_src`` (2, 2, N): corner (x1, y1) then (x2, y2)
    per person (also ``pos_gt_src``, ``jnt_missing``, ``dataset_joints``).
    Head size = 0.6 * ||corner2 - corner1||, exactly HRNet's evaluate(),
    which reproduces the official util_get_head_size.m.
    """
    path = _need(gt_valid_mat, "MPII gt_valid.mat", "annot/gt_valid.mat of HRNet's MPII annotations")
    mat = _loadmat(path)
    if "headboxes_src" not in mat:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise DataError(f"{path}: expected key 'headboxes_src' (HRNet gt_valid.mat), found {keys}")
    boxes = np.asarray(mat["headboxes_src"], dtype=np.float64)
    if boxes.ndim != 3 or boxes.shape[:2] != (2, 2):
        raise DataError(f"{path}: expected 'headboxes_src' of shape (2, 2, N), got {boxes.shape}")
    if "jnt_missing" in mat and np.shape(mat["jnt_missing"]) != (NUM_JOINTS, boxes.shape[2]):
        raise DataError(f"{path}: 'jnt_missing' {np.shape(mat['jnt_missing'])} does not match "
                        f"{boxes.shape[2]} head boxes")
    return (SC_BIAS * np.linalg.norm(boxes[1] - boxes[0], axis=0)).astype(np.float32)


def approx_head_size(keypoints):
    """APPROXIMATE head size ``0.75 * ||head_top - upper_neck||`` (NaN if either
    is unannotated), for PCKh when only the JSON is at hand. Not the official
    metric: report numbers computed with it as "PCKh (approx. head size)".

    Nobody publishes such an approximation to copy (HRNet and mmpose always
    read the head boxes from gt_valid.mat), so the constant is derived:
    * MPII's head_top and upper_neck are placed on the head box, symmetric
      about its centre: their sum is exactly (x1 + x2, y1 + y2) (all five
      samples of test_mpii.json have integer sums; a record seen with its box,
      749..845 x 130..256, has head_top (790.6, 130.0) and upper_neck
      (803.4, 256.0) on its top and bottom edges). So box height ~= d.
    * Head boxes are narrower than tall (that box: w/h = 0.76). With
      w = 0.75 h: 0.6 * sqrt(1 + 0.75**2) * d = 0.75 d. A square box would
      give 0.6 * sqrt(2) = 0.85 d; expect the approximation to be ~10% off.
    Aside: MPII's ``scale`` is exactly 6 d / 200 in those samples, i.e. the
    person scale was itself derived from this head segment.
    """
    k = np.asarray(keypoints, dtype=np.float64)
    top, neck = k[..., HEAD_TOP, :], k[..., UPPER_NECK, :]
    d = np.linalg.norm(top[..., :2] - neck[..., :2], axis=-1)
    out = np.where((top[..., 2] > 0) & (neck[..., 2] > 0), HEAD_APPROX * d, np.nan)
    return float(out) if out.ndim == 0 else out


# ------------------------------------------------------- MPII, official release
def _structs(x):
    """A MATLAB struct array after ``squeeze_me=True`` -> list of structs.
    1x1 arrays arrive as a bare struct, empty ones as an empty array."""
    if x is None:
        return []
    if hasattr(x, "_fieldnames"):
        return [x]
    return [s for s in np.asarray(x, dtype=object).ravel() if hasattr(s, "_fieldnames")]


def _num(x):
    """MATLAB scalar -> float, or None when empty/missing. Handles the forms
    MPII mixes: 1, 1.0, '1' (char), array([1]) and [] (empty)."""
    if x is None:
        return None
    if isinstance(x, str):
        return float(x) if x.strip() else None
    a = np.asarray(x)
    if a.size != 1:
        return None
    v = a.item()
    return _num(v) if isinstance(v, str) else float(v)


def read_mpii_mat(mat_path, image_dir, split="train", single_person_only=False):
    """MPII from the official ``mpii_human_pose_v1_u12_1.mat`` (``RELEASE``).

    Unlike the JSON, this file has the real visibility: ``is_visible`` 1 ->
    v = 2, 0 -> v = 1 (occluded). When ``is_visible`` is empty or absent the
    joint is annotated but its visibility unrecorded; it gets v = 2, the
    JSON's reading of every annotated joint. Missing joints get v = 0.
    ``head_size`` = 0.6 * head-box diagonal (x1, y1, x2, y2), as officially.

    Args:
        split: 'train' (``img_train == 1``; persons without keypoints are
            skipped), 'test' (``img_train == 0``; the public file has no test
            keypoints, so records carry v = 0 and serve for predicting) or
            'all'.
        single_person_only: keep only ``RELEASE.single_person`` persons, the
            subset the official single-person evaluation scores.
    Persons without ``objpos``/``scale`` cannot be cropped and are skipped,
    as in the official evalMPII.m ("isfield(rect,'objpos') && ~isempty").
    """
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    path = _need(mat_path, "MPII annotation file", "mpii_human_pose_v1_u12_2.zip from human-pose.mpi-inf.mpg.de")
    folder = _need(image_dir, "MPII image folder", "images/ from mpii_human_pose_v1.tar.gz")
    mat = _loadmat(path, struct_as_record=False, squeeze_me=True)
    release = mat.get("RELEASE")
    if not hasattr(release, "annolist") or not hasattr(release, "img_train"):
        raise DataError(f"{path}: expected a struct 'RELEASE' with 'annolist' and 'img_train'")
    annolist = _structs(release.annolist)
    img_train = np.atleast_1d(np.asarray(release.img_train, dtype=np.float64)).astype(int)
    if img_train.shape != (len(annolist),):
        raise DataError(f"{path}: 'img_train' has {img_train.size} entries for {len(annolist)} images")
    single = getattr(release, "single_person", None)
    single = [single] if len(annolist) == 1 else list(np.asarray(single, dtype=object).ravel())
    if single_person_only and len(single) != len(annolist):
        raise DataError(f"{path}: 'single_person' has {len(single)} entries for {len(annolist)} images")

    records = []
    for i, ann in enumerate(annolist):
        if (split == "train" and img_train[i] != 1) or (split == "test" and img_train[i] != 0):
            continue
        name = str(ann.image.name)
        # single_person{i} lists 1-based annorect indices: 1, [1 2] or [].
        cell = np.atleast_1d(np.asarray(single[i], dtype=object)).ravel()
        keep = {int(_num(v)) for v in cell if _num(v) is not None} if single_person_only else None
        for r, rect in enumerate(_structs(getattr(ann, "annorect", None)), start=1):
            objpos, scale = getattr(rect, "objpos", None), _num(getattr(rect, "scale", None))
            if not hasattr(objpos, "x") or scale is None or (keep is not None and r not in keep):
                continue
            kpts = np.zeros((NUM_JOINTS, 3), np.float32)
            annopoints = getattr(rect, "annopoints", None)
            for p in _structs(getattr(annopoints, "point", None)):
                jid, x, y = _num(p.id), _num(p.x), _num(p.y)
                if jid is None or not 0 <= jid < NUM_JOINTS or x is None or y is None:
                    raise DataError(f"{path}: image {name} person {r}: bad point (id {jid}, x {x}, y {y})")
                seen = _num(getattr(p, "is_visible", None))
                kpts[int(jid)] = (x - 1.0, y - 1.0, 1 if seen == 0 else 2)
            if split == "train" and not (kpts[:, 2] > 0).any():
                continue
            box = [_num(getattr(rect, k, None)) for k in ("x1", "y1", "x2", "y2")]
            head = None if None in box else SC_BIAS * float(np.hypot(box[2] - box[0], box[3] - box[1]))
            center = np.array([_num(objpos.x) - 1.0, _num(objpos.y) - 1.0], np.float32)
            records.append(PersonRecord(str(folder / name), kpts, center, scale, head_size=head, name=name))
    return records


def split_mpii_by_list(records, listed, tol=1.0):
    """The paper's MPII split with the official file's visibility: the
    ``.mat``'s training persons (``read_mpii_mat``) split into (train,
    validation) by the persons of a list such as HRNet's ``valid.json``
    (Tompson et al.'s validation split, the one §4.2 reports on; records of
    ``read_mpii_json``). A person is listed when the image name matches and
    the centre lies within ``tol`` px (both readers make ``objpos`` 0-based,
    so listed persons match exactly). One line if any listed person is
    missing from the ``.mat``: the two files are then not the same release.
    """
    by_image = {}
    for k, r in enumerate(records):
        by_image.setdefault(Path(r.name or r.image).name, []).append(k)
    val = set()
    for person in listed:
        name = Path(person.image).name
        near = [k for k in by_image.get(name, ())
                if np.all(np.abs(records[k].center - person.center) <= tol)]
        if not near:
            raise DataError(f"{name}: a listed person (centre {person.center.tolist()}) is not among the "
                            f".mat's training persons: the list and the .mat are not the same release")
        val.add(near[0])
    return ([r for k, r in enumerate(records) if k not in val],
            [r for k, r in enumerate(records) if k in val])


# ------------------------------------------------------------------------- LSP
def _lsp_joints(path, shape_text, ok):
    mat = _loadmat(path)
    j = np.asarray(mat.get("joints", np.zeros(0)), dtype=np.float64)
    if not ok(j.shape):
        raise DataError(f"{path}: expected 'joints' of shape {shape_text}, got {j.shape}")
    return j


def _lsp_record(image, xy14, v14):
    """LSP's 14 joints (1-based) -> MPII-order record; None if nothing annotated."""
    k = np.zeros((NUM_JOINTS, 3), np.float32)
    k[LSP_TO_MPII, :2] = xy14 - 1.0  # MATLAB pixels -> 0-based
    k[LSP_TO_MPII, 2] = v14          # pelvis and thorax stay (0, 0, 0)
    k[k[:, 2] == 0, :2] = 0.0
    ann = k[:, 2] > 0
    if not ann.any():
        return None
    lo, hi = k[ann, :2].min(axis=0), k[ann, :2].max(axis=0)
    # Paper: unspecified. LSP has no person box, so centre and scale come from
    # the annotated joints: the box centre, and the box's longer side / 200,
    # which spans head top to ankles like MPII's scale does for an upright
    # person (and still fits the many horizontal gymnasts). Apply the same
    # x1.25 margin when cropping, but not MPII's +15*scale shift: this centre
    # is already the middle of the body, not a torso point.
    torso = float(torso_size(k))
    return PersonRecord(str(image), k, ((lo + hi) / 2).astype(np.float32),
                        float(max(hi - lo)) / 200.0,
                        torso_size=None if np.isnan(torso) else torso, name=Path(image).name)


def read_lsp(root, split, extended_root=None):
    """Leeds Sports Pose (+ optionally LSP-extended for training), MPII order.

    * ``root/joints.mat``: 'joints' 3 x 14 x 2000, images ``root/images/
      im0001.jpg``... Standard protocol: images 1-1000 train, 1001-2000 test.
      The third row is 1 for OCCLUDED joints and 0 for visible ones, the
      reverse of what "visibility" suggests: every converter flips it
      (pytorch-pose gen_lsp.m and CPM genJSON.m: ``joints(3,:,:) = 1 -
      joints(3,:,:)``). All 14 joints are annotated, so v is 2 or 1.
    * ``extended_root/joints.mat`` (LSP-extended, train only, ignored for
      'test'): 'joints' 14 x 3 x 10000, images ``im00001.jpg``... Here the flag
      is 1 for visible; its README promises "up to 14 visible joint
      locations", so flag 0 joints are treated as not annotated (v = 0).
    Both are converted to MPII order with ``skeleton.LSP_TO_MPII``; pelvis and
    thorax are v = 0. ``torso_size`` is set for PCK@0.2.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    hint = "lsp_dataset.zip from sam.johnson.io/research/lsp.html"
    root = _need(root, "LSP folder", hint)
    joints_path = _need(root / "joints.mat", "LSP joints.mat", hint)
    images = _need(root / "images", "LSP image folder", hint)
    j = _lsp_joints(joints_path, "(3, 14, 2000)", lambda s: s == (3, 14, 2000))
    xy = j[:2].transpose(2, 1, 0)                 # (2000, 14, 2)
    v = np.where(j[2].T == 0, 2, 1)               # (2000, 14): 0 = visible
    first = 0 if split == "train" else 1000
    records = [_lsp_record(images / f"im{i + 1:04d}.jpg", xy[i], v[i]) for i in range(first, first + 1000)]

    if extended_root is not None and split == "train":
        hint = "lspet_dataset.zip from sam.johnson.io/research/lspet.html"
        ext = _need(extended_root, "LSP-extended folder", hint)
        ext_path = _need(ext / "joints.mat", "LSP-extended joints.mat", hint)
        ext_images = _need(ext / "images", "LSP-extended image folder", hint)
        e = _lsp_joints(ext_path, "(14, 3, N)", lambda s: len(s) == 3 and s[:2] == (14, 3))
        xy, v = e[:, :2].transpose(2, 0, 1), np.where(e[:, 2].T == 1, 2, 0)
        records += [_lsp_record(ext_images / f"im{i + 1:05d}.jpg", xy[i], v[i]) for i in range(e.shape[2])]
    return [r for r in records if r is not None]
