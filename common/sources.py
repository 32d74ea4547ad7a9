"""One person per sample: the data sets paper 1 trains on, behind one interface.

A source has ``len``, ``load(i, reduce_per_scale) -> (PIL image, factor,
keypoints (J, 3), center, scale)`` in the image's pixels (``factor``: how
much smaller the image was decoded, ``common.transforms.open_image``),
``norm(i, keypoints)`` (the metric's normaliser: head size, torso size or
box side) and ``metric`` (name, threshold). ``occlusion_known`` says whether
``v = 1`` marks exactly the hidden joints (the toys), so that visible and
occluded joints can be scored apart. ``center`` and ``scale`` follow MPII's
crop convention (``common.crops``).

    ToySource        single toy figures (``common.toy.render_person``)
    RecordSource     MPII / LSP person records (``common.datasets``)
    ToyCrowdSource   person crops of paper 2's toy scenes (``common.toy.render_scene``)
    BoxRecordSource  person crops of COCO / AI Challenger (``common.coco_aic``)

``mpii_sources``, ``lsp_sources`` and ``box_sources`` read a data set's
folder, in the layouts the README lists, into (train, validation) sources;
``load_sources`` turns paper 1's data flags (``--data``, ``--data-root``,
``--toy-train``, ...) into its (train, validation, test) people, and
``split_name`` says which split the reported numbers are on; ``load_or_skip``
reads a person whose image may be broken, and ``score_people`` scores
predictions with a source's metric. They live here, not in
``heatmap_regression.py``: which files hold the people, which split is held
out and how a corrupt file is skipped is the lab's bench, not the method.
"""
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from . import coco_aic, datasets, toy
from .cli import UsageError, data_root
from .crops import BOX_MARGIN, box_center_scale
from .metrics import part_table, pck, table_columns
from .skeleton import AIC_JOINTS, COCO_JOINTS, MPII_JOINTS
from .toy import render_person, render_scene, toy_head_size
from .transforms import ImageError, open_image

TOY_SCENE_SIZE = 192        # paper 2's toy scenes (bottom_up_bbox.toy_config's input_size)


class ToySource:
    """The synthetic people of ``common.toy`` behind the reader interface:
    ``load(i, reduce_per_scale) -> (PIL image, factor, keypoints, center,
    scale)``, ``norm(i, keypoints)`` and ``metric`` (name, threshold).
    ``reduce_per_scale`` (see ``heatmap_regression.PoseData``) is ignored:
    nothing is decoded."""
    metric = ("PCKh@0.5", 0.5)
    occlusion_known = True     # v = 1 exactly where the rendering hides a joint
    CACHE = 5000               # figures kept in memory (77 kB each at 160 px)

    def __init__(self, seed, n):
        self.seed, self.n = seed, n
        # Rendering a figure is half of the data time (measured: 1 of 2 ms),
        # about 20 s of the toy run: each is rendered once (``toy.kept``).
        self._cache = {}

    def __len__(self):
        return self.n

    def load(self, i, reduce_per_scale=0.0):
        img, kp, center, scale = toy.kept(self._cache, i, lambda: render_person(self.seed, i), self.CACHE)
        return Image.fromarray(img), 1.0, kp.copy(), center, scale

    def norm(self, i, keypoints):
        """PCKh normaliser: the head size of the rendered head box."""
        return float(toy_head_size(keypoints))


class RecordSource:
    """MPII / LSP records (``common.datasets.PersonRecord``) behind the same
    interface; images are read lazily, at reduced JPEG scale when the crop
    downsamples anyway.

    ``mpii_shift``: MPII's ``objpos`` sits on the torso; like HRNet
    (``datasets.mpii_crop_box``) the crop centre moves down by 15 x scale px
    so the legs fit. (The x1.25 margin is ``common.crops.BOX_MARGIN``, for
    every data set.)
    """

    def __init__(self, records, mpii_shift=False, metric=("PCKh@0.5", 0.5)):
        self.records = records
        self.mpii_shift = mpii_shift
        self.metric = metric

    def __len__(self):
        return len(self.records)

    def load(self, i, reduce_per_scale=0.0):
        r = self.records[i]
        img, factor = open_image(r.image, max_reduce=r.scale * reduce_per_scale)
        center = datasets.mpii_crop_box(r.center, r.scale)[0] if self.mpii_shift else r.center
        return img, factor, r.keypoints, center, r.scale

    def norm(self, i, keypoints):
        """PCKh's head size (MPII) or PCK's torso size (LSP); NaN if unknown."""
        r = self.records[i]
        n = r.head_size if r.head_size is not None else r.torso_size
        return float("nan") if n is None else float(n)


class ToyCrowdSource:
    """Person crops of paper 2's toy scenes (``common.toy.render_scene``):
    one sample per annotated person, cropped around the person's BOX by
    ``box_center_scale`` with whatever else falls in the crop -- neighbours,
    their limbs, occluders -- as a top-down method sees a crowd. Joints: the
    figures' own MPII 16 (paper 2 maps them to its 14 by name afterwards).

    ``n`` is a number of SCENES (about 3.1 annotated people each); scenes
    ``0..n-1`` of toy set ``seed``, each rendered once and kept (110 kB at
    192 px). Scene ``i`` of seed ``s`` is the very scene ``bottom_up_bbox.py``
    renders at 192 px, and both scripts train on seed ``--seed`` and
    validate on seed ``--seed + 1``: neither network sees the scenes the
    comparison is made on.
    Metric: PCKh@0.5 with the toy head size, as for ``--data toy``.
    """
    metric = ("PCKh@0.5", 0.5)
    occlusion_known = True     # v = 1 where a neighbour, occluder or bar hides the joint

    def __init__(self, seed, n, size=TOY_SCENE_SIZE):
        self.seed, self.n_scenes, self.size = seed, n, size
        self.images, self.people = [], []                   # people: (scene, keypoints (16, 3), box)
        for i in range(n):
            img, kp, boxes, _ = render_scene(seed, i, size=(size, size))
            self.images.append(img)
            self.people += [(i, kp[k], boxes[k]) for k in range(len(kp))]

    def __len__(self):
        return len(self.people)

    def load(self, i, reduce_per_scale=0.0):
        scene, kp, box = self.people[i]
        center, scale = box_center_scale(box)
        return Image.fromarray(self.images[scene]), 1.0, kp.copy(), center, scale

    def norm(self, i, keypoints):
        """PCKh normaliser: ``toy_crowd_head_size``."""
        return float(toy_crowd_head_size(keypoints, self.people[i][2]))


# Segments of a toy figure with a fixed length, as fractions of its height
# (``common.toy.sample_pose`` builds every figure from these, drawn in 2-D,
# so a segment's length in the image is exactly fraction x height).
_TOY_SEGMENTS = tuple((toy.J[a], toy.J[b], length) for a, b, length in (
    ("upper_neck", "head_top", toy.HEAD), ("thorax", "upper_neck", toy.NECK),
    ("pelvis", "thorax", toy.TORSO), ("thorax", "r_shoulder", toy.SHOULDER_HALF),
    ("thorax", "l_shoulder", toy.SHOULDER_HALF), ("pelvis", "r_hip", toy.HIP_HALF),
    ("pelvis", "l_hip", toy.HIP_HALF), ("r_shoulder", "r_elbow", toy.UPPER_ARM),
    ("l_shoulder", "l_elbow", toy.UPPER_ARM), ("r_elbow", "r_wrist", toy.FOREARM),
    ("l_elbow", "l_wrist", toy.FOREARM), ("r_hip", "r_knee", toy.THIGH), ("l_hip", "l_knee", toy.THIGH),
    ("r_knee", "r_ankle", toy.SHIN), ("l_knee", "l_ankle", toy.SHIN)))


def toy_crowd_head_size(keypoints, box):
    """PCKh's head size of a scene figure: ``toy_head_size`` where head top
    and upper neck are both annotated. In a scene a figure may be cut by the
    border (13 % of them lose one of the two): then the head segment's length
    follows from any other annotated segment, since every toy segment is a
    fixed fraction of the figure's height (``_TOY_SEGMENTS``), exactly. A
    figure with no annotated segment (it has >= 4 joints in the image, so
    this is rare) falls back to its box's longer side as its height."""
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp[toy.J["head_top"], 2] > 0 and kp[toy.J["upper_neck"], 2] > 0:
        return float(toy_head_size(kp))
    heights = [np.linalg.norm(kp[a, :2] - kp[b, :2]) / length
               for a, b, length in _TOY_SEGMENTS if kp[a, 2] > 0 and kp[b, 2] > 0]
    height = float(np.median(heights)) if heights else float(max(box[2], box[3]))
    head = np.zeros_like(kp)
    head[toy.J["head_top"], 1] = toy.HEAD * height      # a head segment of the right length
    return float(toy_head_size(head))


class BoxRecordSource:
    """Person crops of COCO or AI Challenger (``common.coco_aic`` records):
    one sample per non-crowd person with at least one labelled joint, cropped
    around its box by ``box_center_scale``, neighbours included. Joints in
    the data set's own order (COCO 17, AIC 14) and with COCO's ``v``: the
    detector learns from ``v == 2`` (visible), the regressor from ``v > 0``
    (§3: "visible parts only" / every annotated part), as for MPII.

    Metric. Neither data set has a PCK of its own (both are scored with OKS
    AP, which paper 2 computes for this baseline). For paper 1's own
    validation printout: PCK@0.2 normalised by the longer side of the
    person's box -- J-HMDB's "PCK@0.2 of the person box", as mmpose's
    ``PCKAccuracy(norm_item='bbox')`` computes it (``max(w, h)``). Note that
    it is looser than MPII's PCKh@0.5 (a head is about 1/8 of a standing
    person, so PCKh@0.5 allows ~1/16 of the height; this allows 1/5 of the
    box's longer side).
    """
    metric = ("PCK@0.2 of the box's longer side", 0.2)
    occlusion_known = False

    def __init__(self, records):
        self.people = [(r, k) for r in records for k in range(len(r.keypoints))
                       if not r.iscrowd[k] and (r.keypoints[k, :, 2] > 0).any()]

    def __len__(self):
        return len(self.people)

    def load(self, i, reduce_per_scale=0.0):
        r, k = self.people[i]
        center, scale = box_center_scale(r.boxes[k])
        img, factor = open_image(r.image, max_reduce=scale * reduce_per_scale)
        return img, factor, r.keypoints[k].copy(), center, scale

    def norm(self, i, keypoints):
        """The box's longer side (at least 1 px, as ``box_center_scale``)."""
        r, k = self.people[i]
        return float(max(r.boxes[k][2], r.boxes[k][3], 1.0))



# =============================================================================
# Data set folders -> (train, validation) sources
# =============================================================================
def mpii_sources(root, eval_only=False):
    """MPII in one of three layouts (README, "Data"); ``eval_only`` reads
    no training people. Crops are centred as HRNet's (``mpii_shift``)."""
    root = Path(root)
    annot, images = root / "annot", root / "images"
    mat = root / "mpii_human_pose_v1_u12_1.mat"
    if mat.is_file() and (annot / "valid.json").is_file():
        # The paper's setting: the official file's real is_visible flags
        # (the detector trains on visible parts only, Eq. 1) and §4.2's
        # validation split, the persons HRNet's valid.json lists; head
        # sizes from the .mat's head boxes.
        listed = datasets.read_mpii_json(annot / "valid.json", images)
        train, val = datasets.split_mpii_by_list(datasets.read_mpii_mat(mat, images, split="train"), listed)
        return RecordSource([] if eval_only else train, mpii_shift=True), RecordSource(val, mpii_shift=True)
    if (annot / "valid.json").is_file():
        # HRNet/mmpose layout. The JSON marks "annotated", not "visible":
        # its joints all become v = 2, so the detector's "visible parts
        # only" loss here uses every annotated part.
        train = datasets.read_mpii_json(annot / "train.json", images) if not eval_only else []
        # gt_valid.mat's head boxes (PCKh's head sizes) are in valid.json's
        # order; the reader pairs them and refuses a file of another length.
        gt = annot / "gt_valid.mat"
        val = datasets.read_mpii_json(annot / "valid.json", images, gt_valid_mat=gt if gt.is_file() else None)
        return RecordSource(train, mpii_shift=True), RecordSource(val, mpii_shift=True)
    if mat.is_file():
        # The official release, with real is_visible flags. §4.2 trains on
        # MPII train and tests on "validation", Tompson's held-out split
        # that HRNet ships as valid.json. Without that file: every 10th
        # training image (all its people) is held out instead.
        recs = datasets.read_mpii_mat(mat, images, split="train")
        held = set(sorted({r.name for r in recs})[::10])
        return (RecordSource([r for r in recs if r.name not in held], mpii_shift=True),
                RecordSource([r for r in recs if r.name in held], mpii_shift=True))
    raise FileNotFoundError(f"{root}: expected annot/train.json + annot/valid.json (HRNet/mmpose "
                            f"layout) or mpii_human_pose_v1_u12_1.mat (official) with images/")


def lsp_sources(root, extended_root=None, eval_only=False):
    """LSP's training images (plus LSP-extended's) and its test images,
    scored with PCK@0.2 (torso-normalised), as in paper 1's §4."""
    train = datasets.read_lsp(root, "train", extended_root=extended_root) if not eval_only else []
    pck02 = ("PCK@0.2", 0.2)
    return RecordSource(train, metric=pck02), RecordSource(datasets.read_lsp(root, "test"), metric=pck02)


def box_sources(data, root, eval_only=False):
    """COCO (``data="coco"``) or AI Challenger (``"aic"``) person crops, read
    by paper 2's readers in the layouts ``find_annotation_files`` knows:
    COCO's train2017 / val2017 files, AI Challenger's official archives or
    mmpose's converted JSON."""
    read = coco_aic.read_coco if data == "coco" else coco_aic.read_aic
    train = [] if eval_only else read(*coco_aic.find_annotation_files(data, root, "train"))
    val = read(*coco_aic.find_annotation_files(data, root, "val"))
    return BoxRecordSource(train), BoxRecordSource(val)


# =============================================================================
# Paper 1's data flags -> (train, validation, test) sources
# =============================================================================
# Default sizes of ``--toy-train`` / ``--toy-val``: figures for ``--data toy``,
# scenes for ``--data toy-crowd`` (~1580 / ~620 people). Not from either
# paper: what fits the 5-minute budget of a lecture run (README).
TOY_SIZES = {"toy": (3200, 500), "toy-crowd": (500, 200)}
TOY_SPLITS = ("train", "val", "test")

# The joints each ``--data`` is annotated with, by name (paper 1's
# ``Config.joints``). The toy figures (single and in crowds) are drawn with
# MPII's skeleton; LSP is read into MPII's 16.
DATA_JOINTS = {"toy": MPII_JOINTS, "toy-crowd": MPII_JOINTS, "mpii": MPII_JOINTS, "lsp": MPII_JOINTS,
               "coco": COCO_JOINTS, "aic": AIC_JOINTS}


def check_joints(joints, data, path):
    """A checkpoint's (``path``) parts ``joints`` must be those of ``--data data``: one line if not."""
    if tuple(joints) != DATA_JOINTS[data]:
        raise UsageError(f"--checkpoint {path} predicts {len(joints)} joints ({', '.join(joints[:3])}, "
                         f"...), --data {data} has {len(DATA_JOINTS[data])} "
                         f"({', '.join(DATA_JOINTS[data][:3])}, ...)")


def toy_stream(seed, split):
    """The figure stream (``ToySource``'s seed) of ``--data toy``'s
    ``split`` for ``--seed seed``: 3s, 3s + 1, 3s + 2. Training, validation
    and test figures never meet, within a seed or across seeds."""
    return 3 * seed + TOY_SPLITS.index(split)


def toy_sizes(args):
    """``--toy-train`` / ``--toy-val``, or their defaults (``TOY_SIZES``)."""
    n = tuple(d if v is None else v for v, d in zip((args.toy_train, args.toy_val), TOY_SIZES[args.data]))
    if min(n) < 1:
        raise UsageError(f"--toy-train and --toy-val must be positive, got {n[0]} and {n[1]}")
    return n


def load_sources(args):
    """(train, validation, test) sources for paper 1's ``--data`` flags.

    The validation people choose ``best.pt`` (every epoch is scored on them);
    the test people are scored once, at the end, and reported. Only the toy
    can draw a held-out test set (``toy_stream``): it is as large as the
    validation set. For the real data the test set *is* the validation set,
    as in the paper (§4.2: "training and testing was done on MPII training
    and validation set"; LSP's test set; COCO / AIC val).
    """
    train, val = _train_val_sources(args)
    test = ToySource(toy_stream(args.seed, "test"), len(val)) if args.data == "toy" else val
    return train, val, test


def _train_val_sources(args):
    if args.data == "toy":
        n_train, n_val = toy_sizes(args)
        return ToySource(toy_stream(args.seed, "train"), n_train), ToySource(toy_stream(args.seed, "val"), n_val)
    if args.data == "toy-crowd":
        # Training scenes of seed s, validation scenes of seed s + 1: the
        # split paper 2's toy run uses, so the top-down comparison is made on
        # scenes neither network was trained on.
        n_train, n_val = toy_sizes(args)
        train = ToyCrowdSource(args.seed, 0 if args.eval_only else n_train)
        return train, ToyCrowdSource(args.seed + 1, n_val)
    root = data_root(args)
    if args.data == "mpii":
        return mpii_sources(root, args.eval_only)
    if args.data in ("coco", "aic"):
        return box_sources(args.data, root, args.eval_only)
    return lsp_sources(root, Path(args.lsp_extended).expanduser() if args.lsp_extended else None, args.eval_only)


def split_name(data, val_src, test_src):
    """What the reported numbers of ``--data data`` are scored on (``load_sources``)."""
    if test_src is not val_src:
        return "test"
    return "test" if data == "lsp" else "validation"


def load_or_skip(source, i, reduce_per_scale, n_joints, side):
    """``source.load(i, reduce_per_scale)`` and whether the sample is broken:
    a corrupt image inside a data set is skipped with a warning and counted,
    not fatal. It becomes a black ``side`` px image with no joints and a crop
    that covers it; the caller zeroes its loss and leaves it out of the
    metrics, and training goes on."""
    try:
        return (*source.load(i, reduce_per_scale), False)
    except (ImageError, FileNotFoundError) as e:
        warnings.warn(f"skipping sample {i}: {e}")
        blank = Image.new("RGB", (side, side))
        return blank, 1.0, np.zeros((n_joints, 3), np.float32), np.zeros(2), side / 200 / BOX_MARGIN, True


def score_people(source, pred, gt, norm, joints):
    """Predictions ``pred`` (N, J, 2) of ``source``'s people, scored with its
    metric (``source.metric``: PCKh@0.5, PCK@0.2, ...): per-part tables in
    ``common.metrics.table_columns``' layout, on all joints and, where the
    source knows occlusion, on visible and occluded joints apart. MPII read
    without gt_valid.mat has no head boxes: its head sizes are approximated
    (``datasets.approx_head_size``) and the metric's name says so."""
    metric, threshold = source.metric
    norm = np.array(norm, np.float64)
    if np.isnan(norm).any():
        metric += " (approx. head size: no gt_valid.mat)"
        norm = np.where(np.isnan(norm), np.array([datasets.approx_head_size(g) for g in gt]), norm)
    _, correct = pck(pred, gt, norm, threshold)
    joints, columns = tuple(joints), table_columns(joints)
    table = lambda mask=None: part_table(correct, gt, names=joints, mask=mask, parts=columns)   # noqa: E731
    result = {"metric": metric, "all": table(), "pred": pred, "gt": gt, "correct": correct}
    if getattr(source, "occlusion_known", False):
        # The toy data know which joints were hidden: score them apart.
        result["visible"] = table(gt[..., 2] == 2)
        result["occluded"] = table(gt[..., 2] == 1)
    return result
