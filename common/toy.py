"""Synthetic people: the embedded default data set (DESIGN.md, "Toy data").

Real data sets cannot be downloaded here, and a lecture needs something that
trains in minutes on a laptop CPU. A toy figure has the MPII 16-joint skeleton
with human-like proportions and joint angles, drawn in a cluttered scene:

* Left and right limbs share one colour, and the background carries
  limb-like sticks in the person's colours: locally a wrist looks like any
  other stick end, so context is needed, as in real photos.
* Occlusion is computed from the rendering, never guessed: the figure is
  drawn into a part-label map alongside the RGB image (occluders, then limbs
  in drawing order, overwrite earlier labels), and a joint is visible
  (``v = 2``) only when the label under it belongs to a part that meets at
  that joint; otherwise it is occluded (``v = 1``). Joints outside the canvas
  are not annotated (``v = 0``), as in MPII.
* Every figure faces the camera (its right side on the image's left), so
  left/right is decidable from the torso, as a face or chest is in a photo.

Everything is deterministic per ``(seed, index)``. ``render_person`` returns
an image plus a record with the same fields the MPII reader produces, so the
toy data run through exactly the same crop, augmentation and targets.
``render_scene`` draws several such figures in one image for paper 2:
crowded, overlapping and cut by the borders, each with its keypoints, its
full (amodal) box and its visible area; one label map holds (person, part),
so other people occlude as honestly as occluders do.
"""
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from .coco_eval import coco_annotation
from .skeleton import CROWDPOSE_AREA_PER_BOX, MPII_JOINTS, MPII_TO_AIC

J = {n: i for i, n in enumerate(MPII_JOINTS)}

# Segment lengths as fractions of standing height (anthropometric tables
# give roughly these: head 0.13, upper arm 0.17, forearm 0.15, thigh/shin 0.24).
HEAD, NECK, TORSO = 0.12, 0.05, 0.29
SHOULDER_HALF, HIP_HALF = 0.11, 0.07
UPPER_ARM, FOREARM, THIGH, SHIN = 0.17, 0.15, 0.24, 0.24

# Part ids in the label map (0 = background, 255 = occluder) and the joints
# each part owns: a joint is visible when the pixel under it shows an owner.
PARTS = {
    "torso": 1, "head": 2, "r_upper_arm": 3, "r_forearm": 4, "l_upper_arm": 5,
    "l_forearm": 6, "r_thigh": 7, "r_shin": 8, "l_thigh": 9, "l_shin": 10,
}
OCCLUDER = 255
OWNERS = {
    "head_top": ("head",), "upper_neck": ("head", "torso"), "thorax": ("torso",),
    "pelvis": ("torso",),
}
for side in "rl":
    OWNERS[f"{side}_shoulder"] = ("torso", f"{side}_upper_arm")
    OWNERS[f"{side}_elbow"] = (f"{side}_upper_arm", f"{side}_forearm")
    OWNERS[f"{side}_wrist"] = (f"{side}_forearm",)
    OWNERS[f"{side}_hip"] = ("torso", f"{side}_thigh")
    OWNERS[f"{side}_knee"] = (f"{side}_thigh", f"{side}_shin")
    OWNERS[f"{side}_ankle"] = (f"{side}_shin",)
OWNER_IDS = [tuple(PARTS[p] for p in OWNERS[n]) for n in MPII_JOINTS]
_OWNER_TABLE = np.zeros((16, len(PARTS) + 1), bool)      # [joint, part id] -> owner?
for _j, _ids in enumerate(OWNER_IDS):
    _OWNER_TABLE[_j, list(_ids)] = True


def _unit(angle):
    """Unit vector at ``angle`` radians from straight down (image y is down)."""
    return np.array([math.sin(angle), math.cos(angle)])


def sample_pose(rng):
    """Joint positions ``(16, 2)`` of a figure of height ~1 centred near 0.

    Angles are measured from "straight down" in the figure's frame; positive
    angles swing a limb towards the figure's own left (image right).
    """
    deg = math.radians
    lean = rng.uniform(-deg(20), deg(20))
    up = -_unit(lean)                                 # pelvis -> thorax
    side = np.array([up[1], -up[0]]) * -1             # towards image right
    p = np.zeros((16, 2))
    p[J["pelvis"]] = 0.0
    p[J["thorax"]] = up * TORSO
    p[J["upper_neck"]] = p[J["thorax"]] + up * NECK
    p[J["head_top"]] = p[J["upper_neck"]] - _unit(lean + rng.uniform(-deg(25), deg(25))) * HEAD
    for s, sign in (("r", -1), ("l", 1)):             # right side on image left
        sh = p[J["thorax"]] + sign * side * SHOULDER_HALF
        hip = p[J["pelvis"]] + sign * side * HIP_HALF
        # Arms: from hanging down to raised overhead, sometimes across the body.
        a1 = lean + sign * rng.uniform(-deg(35), deg(170))
        a2 = a1 + sign * rng.uniform(-deg(10), deg(150)) * rng.choice([1, -1], p=[0.75, 0.25])
        elbow = sh + _unit(a1) * UPPER_ARM
        # Legs: from crossed to kicked out; knees bend backwards only.
        l1 = lean + sign * rng.uniform(-deg(25), deg(75))
        l2 = l1 + rng.uniform(0, deg(110)) * rng.choice([1, -1])
        knee = hip + _unit(l1) * THIGH
        p[J[f"{s}_shoulder"]], p[J[f"{s}_hip"]] = sh, hip
        p[J[f"{s}_elbow"]], p[J[f"{s}_wrist"]] = elbow, elbow + _unit(a2) * FOREARM
        p[J[f"{s}_knee"]], p[J[f"{s}_ankle"]] = knee, knee + _unit(l2) * SHIN
    return p - (p.max(0) + p.min(0)) / 2


def _capsule(draws, a, b, width, fills):
    """A limb: a thick line with round ends, drawn in every ``(draw, fill)``."""
    r = width / 2
    for d, fill in zip(draws, fills):
        d.line([tuple(a), tuple(b)], fill=fill, width=max(1, int(round(width))))
        for q in (a, b):
            d.ellipse([q[0] - r, q[1] - r, q[0] + r, q[1] + r], fill=fill)


def _colour(rng, lo=30, hi=225):
    return tuple(int(c) for c in rng.integers(lo, hi, 3))


def _shapes(rng, draw, size):
    """Background blobs over a canvas of ``size`` = side or ``(width, height)``."""
    for _ in range(rng.integers(3, 7)):
        x, y = rng.uniform(0, size, 2)
        w, h = rng.uniform(0.05, 0.3, 2) * size
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape([x - w, y - h, x + w, y + h], fill=_colour(rng))


def _sticks(rng, draw, size, limb_colours, limb_width, n_sticks, length):
    """``n_sticks`` limb-like capsules in ``limb_colours``, ``0.1..0.2 length`` long."""
    for _ in range(n_sticks):
        a = rng.uniform(0, size, 2)
        b = a + _unit(rng.uniform(0, 2 * math.pi)) * rng.uniform(0.1, 0.2) * length
        _capsule([draw], a, b, limb_width * rng.uniform(0.8, 1.2), [limb_colours[rng.integers(len(limb_colours))]])


def _clutter(rng, draw, size, limb_colours, limb_width, n_sticks):
    """Background shapes, including limb-like sticks in the person's colours."""
    _shapes(rng, draw, size)
    _sticks(rng, draw, size, limb_colours, limb_width, n_sticks, size)


def _figure(rng, draw, ldraw, xy, limb_w, colours, label0=0, extremities=False):
    """Draw the figure with joints ``xy`` (16, 2) into the image and the label
    map; part ``name`` gets label ``label0 + PARTS[name]``.

    Drawing order is depth order: each arm is randomly behind or in front of
    the torso, and one leg crosses over the other (self-occlusion).
    ``extremities``: hands and feet (paper 2's scenes): a round hand on the
    wrist, a dark foot on the ankle, drawn as part of the forearm and shin --
    what makes a wrist a wrist in a photo, rather than any stick's end.
    """
    skin, cloth, trousers = colours

    def limb(name, a, b, width, fill):
        _capsule([draw, ldraw], xy[J[a]], xy[J[b]], width, [fill, label0 + PARTS[name]])
        if extremities and name.endswith("forearm"):
            r = HAND * limb_w
            for d, f in ((draw, fill), (ldraw, label0 + PARTS[name])):
                d.ellipse([xy[J[b], 0] - r, xy[J[b], 1] - r, xy[J[b], 0] + r, xy[J[b], 1] + r], fill=f)
        if extremities and name.endswith("shin"):
            rx, ry = FOOT * limb_w, 0.55 * limb_w
            for d, f in ((draw, SHOE), (ldraw, label0 + PARTS[name])):
                d.ellipse([xy[J[b], 0] - rx, xy[J[b], 1] - ry, xy[J[b], 0] + rx, xy[J[b], 1] + ry], fill=f)

    arms_front = rng.random(2) < 0.7
    legs = ["r", "l"] if rng.random() < 0.5 else ["l", "r"]
    for s_, (a, b, c_) in [(s_, (f"{s_}_shoulder", f"{s_}_elbow", f"{s_}_wrist")) for s_ in "rl"]:
        if not arms_front["rl".index(s_)]:
            limb(f"{s_}_upper_arm", a, b, limb_w, cloth)
            limb(f"{s_}_forearm", b, c_, limb_w * 0.85, skin)
    for s_ in legs:
        limb(f"{s_}_thigh", f"{s_}_hip", f"{s_}_knee", limb_w * 1.2, trousers)
        limb(f"{s_}_shin", f"{s_}_knee", f"{s_}_ankle", limb_w, trousers)
    torso = [xy[J[n]] for n in ("r_shoulder", "l_shoulder", "l_hip", "r_hip")]
    for d, fill in ((draw, cloth), (ldraw, label0 + PARTS["torso"])):
        d.polygon([tuple(q) for q in torso], fill=fill)
    # The pelvis lies on the hip line, the torso polygon's edge: a band from
    # hip to hip gives it (and the hips) body pixels to be visible on.
    _capsule([draw, ldraw], xy[J["r_hip"]], xy[J["l_hip"]], limb_w * 1.2, [cloth, label0 + PARTS["torso"]])
    _capsule([draw, ldraw], xy[J["thorax"]], xy[J["upper_neck"]], limb_w, [skin, label0 + PARTS["torso"]])
    hc, hr = _head(xy)
    for d, fill in ((draw, skin), (ldraw, label0 + PARTS["head"])):
        d.ellipse([hc[0] - hr * 0.8, hc[1] - hr, hc[0] + hr * 0.8, hc[1] + hr], fill=fill)
    for s_, (a, b, c_) in [(s_, (f"{s_}_shoulder", f"{s_}_elbow", f"{s_}_wrist")) for s_ in "rl"]:
        if arms_front["rl".index(s_)]:
            limb(f"{s_}_upper_arm", a, b, limb_w, cloth)
            limb(f"{s_}_forearm", b, c_, limb_w * 0.85, skin)


HAND, FOOT = 0.75, 0.9      # hand radius and foot half-length, in limb widths
SHOE = (25, 25, 30)


def _head(xy):
    """Centre and half-height of the head ellipse (half-width is 0.8 x that)."""
    hc = (xy[J["head_top"]] + xy[J["upper_neck"]]) / 2
    return hc, np.linalg.norm(xy[J["head_top"]] - xy[J["upper_neck"]]) * 0.58


TORSO_JOINTS = [J[n] for n in ("upper_neck", "thorax", "r_shoulder", "l_shoulder", "pelvis", "r_hip", "l_hip")]


def _occluder(rng, draw, ldraw, xy, height, joints=None):
    """One occluder: a blob centred near a random joint (not the head, which
    MPII rarely has occluded; ``joints``: one of these instead, e.g.
    ``TORSO_JOINTS``), big enough to hide a joint and part of its limbs but not a
    whole arm, so the joint stays inferable from context."""
    joints = [j for j in range(16) if j not in (J["head_top"], J["upper_neck"])] if joints is None else joints
    q = xy[rng.choice(joints)]
    q = q + rng.normal(0, 0.03, 2) * height
    r = rng.uniform(0.06, 0.12, 2) * height
    box = [q[0] - r[0], q[1] - r[1], q[0] + r[0], q[1] + r[1]]
    shape = "ellipse" if rng.random() < 0.5 else "rectangle"
    getattr(draw, shape)(box, fill=_colour(rng))
    getattr(ldraw, shape)(box, fill=OCCLUDER)


def _bar(rng, draw, ldraw, xy, limb_w, height):
    """An occluder that *disconnects*: a bar (a pole, a railing) lying across
    the middle of a random limb, wide enough to hide the limb there but not
    its joints. The limb's field breaks under it while both joints stay
    visible -- what pose completion and the box recover (§III-D)."""
    a, b = LIMB_JOINTS[rng.integers(len(LIMB_JOINTS))]
    mid, d = (xy[a] + xy[b]) / 2, xy[b] - xy[a]
    across = np.array([-d[1], d[0]]) / max(np.linalg.norm(d), 1e-6)
    across = across + rng.normal(0, 0.3, 2)                   # roughly across, never exactly
    half = across / np.linalg.norm(across) * rng.uniform(0.15, 0.3) * height
    colour = _colour(rng)
    _capsule([draw, ldraw], mid - half, mid + half, limb_w * rng.uniform(1.5, 2.5), [colour, OCCLUDER])


# The bones a bar may cross (MPII joint pairs): upper and lower limbs.
LIMB_JOINTS = [(J[f"{s}_{a}"], J[f"{s}_{b}"]) for s in "rl"
               for a, b in (("shoulder", "elbow"), ("elbow", "wrist"), ("hip", "knee"), ("knee", "ankle"))]


def _visibility(labels, xy, label0=0):
    """``v`` (16,) of a figure drawn with labels ``label0 + PARTS[...]``: 2 when
    the label under the joint (its nearest pixel) is one of the joint's owner
    parts of this same figure, 1 when something else is on top, 0 outside."""
    h, w = labels.shape
    ij = np.round(xy).astype(int)
    inside = (ij[:, 0] >= 0) & (ij[:, 0] < w) & (ij[:, 1] >= 0) & (ij[:, 1] < h)
    part = np.zeros(16, int)
    part[inside] = labels[ij[inside, 1], ij[inside, 0]].astype(int) - label0
    ok = (part >= 1) & (part <= len(PARTS))
    own = np.zeros(16, bool)
    own[ok] = _OWNER_TABLE[np.flatnonzero(ok), part[ok]]
    return np.where(inside, np.where(own, 2, 1), 0)


def render_person(seed, index, size=160, occlusion=0.75):
    """Render figure ``index`` of the toy set ``seed``.

    Returns ``(image, keypoints, center, scale)``: an ``(size, size, 3)`` uint8
    array, ``(16, 3)`` keypoints (x, y, v), the person centre, and
    ``scale = height / 200`` (MPII's convention), so the toy data use the
    same crop code as MPII. ``occlusion`` is the chance that occluders are
    placed over the figure.
    """
    rng = np.random.default_rng([seed, index])
    height = size * rng.uniform(0.55, 0.7)
    rot = rng.uniform(-30, 30)
    c, s = math.cos(math.radians(rot)), math.sin(math.radians(rot))
    centre = size / 2 + rng.uniform(-0.06, 0.06, 2) * size
    xy = sample_pose(rng) * height @ np.array([[c, s], [-s, c]]) + centre

    img = Image.new("RGB", (size, size), _colour(rng, 60, 200))
    lab = Image.new("L", (size, size), 0)
    draw, ldraw = ImageDraw.Draw(img), ImageDraw.Draw(lab)
    skin, cloth, trousers = _colour(rng), _colour(rng), _colour(rng)
    limb_w = height * 0.055
    _clutter(rng, draw, size, (cloth, trousers), limb_w, n_sticks=rng.integers(2, 5))

    _figure(rng, draw, ldraw, xy, limb_w, (skin, cloth, trousers))
    if rng.random() < occlusion:
        for _ in range(rng.integers(1, 3)):
            _occluder(rng, draw, ldraw, xy, height)

    kp = np.zeros((16, 3), np.float32)
    kp[:, :2] = xy
    kp[:, 2] = _visibility(np.asarray(lab), xy)
    return np.asarray(img), kp, centre.astype(np.float32), float(height / 200)


def kept(cache, key, render, limit):
    """``cache[key]``, rendered by ``render()`` the first time. A data set
    re-reads the same toy renderings every epoch, and rendering costs a
    tenth of a CPU training step: they are kept, up to ``limit`` of them
    (then the cache starts over)."""
    if key not in cache:
        if len(cache) >= limit:
            cache.clear()
        cache[key] = render()
    return cache[key]


def toy_head_size(keypoints):
    """PCKh normaliser of a toy figure, defined like MPII's: 0.6 x the
    diagonal of the head box. The drawn head is an ellipse of half-height
    ``0.58 d`` and half-width ``0.8 * 0.58 d`` (``d`` = head top to upper neck,
    see ``render_person``), so its box diagonal is ``1.16 d * sqrt(1 + 0.8^2)``.
    """
    kp = np.asarray(keypoints)
    d = np.linalg.norm(kp[..., J["head_top"], :2] - kp[..., J["upper_neck"], :2], axis=-1)
    return 0.6 * 1.16 * math.sqrt(1 + 0.8 ** 2) * d


# ----------------------------------------------------------------------------
# Paper 2: scenes with several people
# ----------------------------------------------------------------------------
# A scene's label map holds (person, part) in one byte: person k's part
# ``name`` is ``k * PERSON_LABELS + PARTS[name]``; 0 is background and
# OCCLUDER (255) an occluder, so one uint8 map holds 25 people.
PERSON_LABELS = len(PARTS)
MAX_SCENE_PEOPLE = (OCCLUDER - 1) // PERSON_LABELS            # 25
# Radius of the drawn shapes ending at each joint, in limb widths (see
# ``_figure``: thighs and the hip band are 1.2 wide, forearms 0.85, the rest
# 1; pelvis and head top are no capsule's end). With the head ellipse this
# gives a figure's full (amodal) extent.
_JOINT_RADIUS = np.array([0.5, 0.6, 0.6, 0.6, 0.6, 0.5, 0.0, 0.5, 0.5, 0.0,
                          0.425, 0.5, 0.5, 0.5, 0.5, 0.425])
# With hands and feet (``_figure(extremities=True)``): wrists and ankles reach further.
_SCENE_JOINT_RADIUS = _JOINT_RADIUS.copy()
_SCENE_JOINT_RADIUS[[J["r_wrist"], J["l_wrist"]]] = HAND
_SCENE_JOINT_RADIUS[[J["r_ankle"], J["l_ankle"]]] = FOOT
# Paper: the data sets set these. Here calibrated (tests/test_bub_method.py,
# "oracle") so that crowds stay within what a box can resolve: parsing the
# ground-truth maps and fields at stride 4 inside the ground-truth boxes
# reaches AP >= 95 (it was 85 when people could stand 0.3 h apart with any
# overlap: two thirds of all people then had a neighbour at box IoU > 0.3,
# real photos far fewer), and people are tall enough (0.4-0.95 of the image)
# for a stride-4 network to localise joints within the OKS tolerance.
SCENE_HEIGHT = (0.4, 0.95)  # figure height / image height: distant to near
CLOSE = 0.5                 # chance a figure stands next to one already placed
NEIGHBOUR_DX = (0.35, 0.6)  # a neighbour's centre offset, x its height
MAX_OVERLAP = 0.25          # largest IoU of two people's rough boxes (0.5 h x h)
PLACEMENT_TRIES = 20        # draws per person before the scene takes fewer people


@dataclass(frozen=True)
class Regime:
    """How crowded a scene is and how its people are hidden (``render_scene``).

    The default is the world above: crowds a box can resolve. Paper 2's own
    claim is about the regime beyond it ("our method handles images with
    crowding better", §V): people standing in front of one another, whose
    boxes overlap by IoU 0.3-0.6, necks and torsos hidden by a neighbour or
    an object, small people. ``PAPER_REGIME`` is that regime; the crowd
    sweep (``walkthrough/studies.py``) moves between the two.
    """
    max_overlap: float = MAX_OVERLAP       # largest rough-box IoU of two people
    neighbour_dx: tuple = NEIGHBOUR_DX     # a neighbour's centre offset, x its height
    heights: tuple = SCENE_HEIGHT          # figure height / image height
    torso_occlusion: float = 0.0           # chance per person of a blob on their neck or torso

    def __post_init__(self):
        if not (0 <= self.max_overlap <= 1 and 0 <= self.torso_occlusion <= 1
                and 0 < self.heights[0] <= self.heights[1] and 0 <= self.neighbour_dx[0] <= self.neighbour_dx[1]):
            raise ValueError(f"Regime: expected overlap and occlusion in [0, 1] and ordered ranges, got {self}")


DEFAULT_REGIME = Regime()
# Depth-ordered overlaps up to IoU 0.6 (a neighbour may stand a fifth of a
# height away, in front), a hidden neck or torso for one person in three,
# people from a fifth of the image height.
PAPER_REGIME = Regime(max_overlap=0.6, neighbour_dx=(0.2, 0.6), heights=(0.2, 0.95), torso_occlusion=0.35)
BARS = 0.5                  # chance of 1-2 bars (poles, railings) lying across limbs
MIN_IN_CANVAS = 4           # fewer joints in the image: not an annotated person
MIN_BOX = 0.05              # nor is one whose box side is < 5 % of the image side


def render_scene(seed, index, size=(192, 192), max_people=6, occlusion=0.5, return_labels=False,
                 return_unannotated=False, regime=DEFAULT_REGIME):
    """Render scene ``index`` of the toy set ``seed``: several figures (paper 2).

    ``size`` is ``(height, width)`` (an int: square). Returns ``(image,
    keypoints, boxes, areas)``, plus the label map when ``return_labels``:

    * ``image`` ``(H, W, 3)`` uint8;
    * ``keypoints`` ``(K, 16, 3)`` float32, MPII joint order, ``1 <= K <=
      max_people``; a joint outside the image is not annotated, ``(0, 0, 0)``;
    * ``boxes`` ``(K, 4)`` float32 ``x, y, w, h``: each figure's full extent
      (joints, limb widths and head, also where hidden) clipped to the image
      ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``: what a good detector outputs;
    * ``areas`` ``(K,)`` float32: pixels showing the person (COCO's ``area``,
      the visible segment), at least 1;
    * ``labels`` ``(H, W)`` uint8: ``k * PERSON_LABELS + PARTS[part]`` where
      person ``k`` shows, 0 background, ``OCCLUDER`` for occluders and for
      figures that were not annotated;
    * with ``return_unannotated``, last: ``(H, W)`` bool, the pixels showing
      figures that were drawn but not annotated (COCO's unannotated people:
      training masks them out, W = 0 in Eq. 6-7, rather than calling them
      background).

    People are listed back to front (drawing order), so person ``k`` can
    only be hidden by people ``> k`` and occluders. Figures have the style of
    ``render_person``; heights vary over ``SCENE_HEIGHT`` x image height and
    about half stand next to someone already placed (crowds, heavy overlap),
    the others anywhere, some cut by the border; no two people's rough boxes
    overlap by more than ``MAX_OVERLAP`` (crowds a box can resolve). Blobs
    hide joints (``_occluder``) and bars lie across limbs (``_bar``) so that
    parts disconnect. Visibility is read off the
    label map as in ``render_person``, so other people occlude honestly.
    Figures with fewer than ``MIN_IN_CANVAS`` joints in the image, a clipped
    box side under ``MIN_BOX`` of the image, or no visible joint (hidden
    behind others) are drawn but not annotated. ``regime`` (``Regime``) sets
    the crowding, the heights and the torso occluders; the default draws
    exactly the scenes it drew before regimes existed.
    """
    if isinstance(size, (int, np.integer)):
        size = (size, size)
    if len(size) != 2 or min(size) < 16:
        raise ValueError(f"size must be (height, width) of at least 16 px, got {size!r}")
    if not 1 <= max_people <= MAX_SCENE_PEOPLE:
        raise ValueError(f"max_people must be in 1..{MAX_SCENE_PEOPLE} (one uint8 label map), got {max_people}")
    H, W = int(size[0]), int(size[1])
    rng = np.random.default_rng([seed, index, 2])       # a stream apart from render_person's
    while True:                                          # a retry is rare: see _scene
        out = _scene(rng, H, W, max_people, occlusion, return_labels, return_unannotated, regime)
        if out is not None:
            return out


def _rough_iou(c, h, centres, heights):
    """IoU of a person at centre ``c`` of height ``h`` with each placed person,
    everyone taken as a 0.5 h x h box around their centre."""
    half = np.stack([0.25 * heights, 0.5 * heights], 1)
    lo, hi = np.maximum(c - (0.25 * h, 0.5 * h), centres - half), np.minimum(c + (0.25 * h, 0.5 * h), centres + half)
    inter = np.clip(hi - lo, 0, None).prod(1)
    return inter / (0.5 * h * h + 0.5 * heights ** 2 - inter)


def _scene(rng, H, W, max_people, occlusion, return_labels, return_unannotated, regime):
    """One attempt at a scene; ``None`` when no figure ended up annotated."""
    lo_h, hi_h = regime.heights
    wh = np.array([W, H], float)
    n = int(rng.integers(1, max_people + 1))
    heights, centres = [], []
    for i in range(n):
        for _ in range(PLACEMENT_TRIES):
            if i == 0:                                   # someone well inside the frame
                h = H * rng.uniform(lo_h, hi_h)
                c = wh * rng.uniform([0.3, 0.4], [0.7, 0.6])
            elif rng.random() < CLOSE:                   # next to someone: a crowd
                k = rng.integers(i)
                h = np.clip(heights[k] * rng.uniform(0.8, 1.25), lo_h * H, hi_h * H)
                # Side by side and overlapping, but never in the same place:
                # two bodies stand at least a shoulder width or so apart.
                dx = rng.uniform(*regime.neighbour_dx) * rng.choice([-1, 1])
                c = centres[k] + np.array([dx, rng.uniform(-0.12, 0.12)]) * heights[k]
            else:                                        # anywhere, maybe cut by the border
                h = H * rng.uniform(lo_h, hi_h)
                c = wh * rng.uniform([0.0, 0.25], [1.0, 0.75])
            # Crowding a box can resolve (the default regime): nobody overlaps
            # anyone placed so far by more than MAX_OVERLAP (IoU of rough
            # boxes, 0.5 h x h).
            if not centres or _rough_iou(c, h, np.array(centres), np.array(heights)).max() <= regime.max_overlap:
                break
        else:
            break                                        # no room left: fewer people
        heights.append(h)
        centres.append(c)
    n = len(heights)
    # Depth order: the smaller (farther) figure is drawn first, behind.
    order = np.argsort(heights, kind="stable")
    people = []
    for k in order:
        h = heights[k]
        rot = math.radians(rng.uniform(-25, 25))
        c, s = math.cos(rot), math.sin(rot)
        xy = sample_pose(rng) * h @ np.array([[c, s], [-s, c]]) + centres[k]
        people.append((xy, h, h * 0.055, (_colour(rng), _colour(rng), _colour(rng))))

    img = Image.new("RGB", (W, H), _colour(rng, 60, 200))
    lab = Image.new("L", (W, H), 0)
    draw, ldraw = ImageDraw.Draw(img), ImageDraw.Draw(lab)
    _shapes(rng, draw, wh)
    for xy, h, limb_w, (skin, cloth, trousers) in people:   # sticks look like anyone's limbs
        _sticks(rng, draw, wh, (cloth, trousers, skin), limb_w, rng.integers(0, 2), 1.6 * h)
    for k, (xy, h, limb_w, colours) in enumerate(people):
        _figure(rng, draw, ldraw, xy, limb_w, colours, label0=k * PERSON_LABELS, extremities=True)
    if rng.random() < occlusion:
        for _ in range(rng.integers(1, 4)):
            xy, h = people[rng.integers(n)][:2]
            _occluder(rng, draw, ldraw, xy, h)
    if rng.random() < BARS:
        for _ in range(rng.integers(1, 3)):
            xy, h, limb_w = people[rng.integers(n)][:3]
            _bar(rng, draw, ldraw, xy, limb_w, h)
    if regime.torso_occlusion > 0:                       # no draw at all in the default regime
        for xy, h, *_ in people:
            if rng.random() < regime.torso_occlusion:
                _occluder(rng, draw, ldraw, xy, h, TORSO_JOINTS)

    labels = np.asarray(lab)
    counts = np.bincount(labels.ravel(), minlength=256)[1:1 + MAX_SCENE_PEOPLE * PERSON_LABELS]
    shown = counts.reshape(MAX_SCENE_PEOPLE, PERSON_LABELS).sum(1)   # pixels per person
    kept, kps, boxes = [], [], []
    for k, (xy, h, limb_w, _) in enumerate(people):
        v = _visibility(labels, xy, label0=k * PERSON_LABELS)
        r = _SCENE_JOINT_RADIUS[:, None] * limb_w
        hc, hr = _head(xy)
        lo = np.minimum((xy - r).min(0), hc - (0.8 * hr, hr))
        hi = np.maximum((xy + r).max(0), hc + (0.8 * hr, hr))
        lo, hi = np.maximum(lo, -0.5), np.minimum(hi, wh - 0.5)
        if ((v > 0).sum() < MIN_IN_CANVAS or (hi - lo).min() < MIN_BOX * min(H, W)
                or not (v == 2).any()):
            continue
        kp = np.zeros((16, 3), np.float32)
        kp[:, :2] = np.where(v[:, None] > 0, xy, 0)
        kp[:, 2] = v
        kept.append(k)
        kps.append(kp)
        boxes.append(np.concatenate([lo, hi - lo]))
    if not kept:
        return None
    out = (np.asarray(img), np.stack(kps), np.array(boxes, np.float32),
           np.maximum(shown[kept], 1).astype(np.float32))
    if return_labels:
        lut = np.full(256, OCCLUDER, np.uint8)           # figures left out act as occluders
        lut[0] = 0
        for new, old in enumerate(kept):
            lut[old * PERSON_LABELS + 1:(old + 1) * PERSON_LABELS + 1] = new * PERSON_LABELS + np.arange(1, PERSON_LABELS + 1)
        out += (lut[labels],)
    if return_unannotated:
        person = (labels - 1) // PERSON_LABELS                # whose part each pixel shows
        left_out = np.setdiff1d(np.arange(len(people)), kept)
        out += ((labels > 0) & (labels != OCCLUDER) & np.isin(person, left_out),)
    return out


def box_ious(boxes):
    """(K, K) IoU of every pair of ``x, y, w, h`` boxes (the diagonal is 1)."""
    b = np.asarray(boxes, float).reshape(-1, 4)
    lo, hi = b[:, None, :2], b[:, None, :2] + b[:, None, 2:]
    inter = np.clip(np.minimum(hi, hi.transpose(1, 0, 2)) - np.maximum(lo, lo.transpose(1, 0, 2)), 0, None).prod(-1)
    area = b[:, 2] * b[:, 3]
    return inter / np.maximum(area[:, None] + area[None] - inter, 1e-12)


def with_neighbour(boxes, iou=0.3):
    """(K,) bool: the people whose box overlaps another's by IoU > ``iou`` --
    the "crowded" people of paper 2's Fig. 1 (c-d), where a top-down method
    confuses two persons and a box alone cannot tell them apart."""
    ious = box_ious(boxes)
    np.fill_diagonal(ious, 0.0)
    return (ious > iou).any(1) if len(ious) else np.zeros(0, bool)


def scene_stats(keypoints, boxes, iou=0.3):
    """Crowding of a list of scenes (``render_scene``'s keypoints and boxes, or
    a real data set's, to compare).

    Returns fractions of scenes with ``crowded`` (3+ people), ``overlap`` (two
    boxes with IoU > ``iou``), ``truncated`` (someone with a joint outside the
    image, ``v = 0``), plus ``people`` (mean per scene), ``neighbour`` (the
    share of people with a neighbour at box IoU > ``iou``) and ``occluded``
    (the share of annotated joints with ``v = 1``).
    """
    crowded = overlap = truncated = 0
    v = np.concatenate([k[..., 2].ravel() for k in keypoints])
    near = np.concatenate([with_neighbour(b, iou) for b in boxes])
    for kp, b in zip(keypoints, boxes):
        crowded += len(b) >= 3
        truncated += bool((kp[..., 2] == 0).any())
        overlap += bool(with_neighbour(b, iou).any())
    n = len(keypoints)
    return {"people": float(np.mean([len(b) for b in boxes])), "crowded": crowded / n,
            "overlap": overlap / n, "truncated": truncated / n, "neighbour": float(near.mean()),
            "occluded": float((v == 1).sum() / max(1, (v > 0).sum()))}


# =============================================================================
# Paper 2's toy scenes as a data source (``bottom_up_bbox.py``'s ``--data toy``)
# =============================================================================
@dataclass
class Scene:
    """One image with everyone annotated in it, in the network's joint order
    (what paper 2's sources load: ``ToyScenes`` here, the script's
    ``RecordScenes`` for COCO and AI Challenger)."""
    image: Image.Image          # RGB, possibly decoded at 1/factor scale
    factor: float               # full-resolution px per pixel of ``image``
    keypoints: np.ndarray       # (K, J, 3) full-res px: the persons the targets draw
    boxes: np.ndarray           # (K, 4) x, y, w, h of those persons
    ignore: np.ndarray | None   # (H, W) bool full-res: regions with missing annotation
    size: tuple                 # full-resolution (width, height)


class ToyScenes:
    """Paper 2's synthetic crowded scenes (``render_scene``) as a data source:
    MPII-skeleton figures mapped to AI Challenger's 14 joints, with
    ground-truth boxes. ``skeleton``: the script's ``Skeleton("toy")``."""
    CACHE = 5000                       # scenes kept in memory (about 0.75 GB at 192 px)

    def __init__(self, seed, n, size, skeleton, regime=DEFAULT_REGIME):
        self.seed, self.n, self.size, self.skeleton, self.regime = seed, n, size, skeleton, regime
        self._cache = {}           # rendered scenes (``kept``), about 150 kB each at 192 px

    def __len__(self):
        return self.n

    def image_id(self, i):
        return int(i)

    def _render(self, i):
        def render():
            img, kp, boxes, _, unannotated = render_scene(self.seed, i, size=(self.size, self.size),
                                                          return_unannotated=True, regime=self.regime)
            return img, kp[:, MPII_TO_AIC], boxes, unannotated
        return kept(self._cache, i, render, self.CACHE)

    def load(self, i, max_reduce=1.0):
        """The scene; figures drawn but not annotated are ``ignore`` (W = 0 in
        Eq. 6-7, as COCO's unannotated people), not background."""
        img, kp, boxes, unannotated = self._render(i)
        return Scene(Image.fromarray(img), 1.0, kp.copy(), boxes.copy(),
                     unannotated if unannotated.any() else None, (self.size, self.size))

    def annotation(self, i):
        _, kp, boxes, _ = self._render(i)
        return kp, boxes, (self.size, self.size)

    def ground_truth(self, i):
        """COCO annotation dicts, scored as CrowdPose scores its 14 joints
        (``Skeleton.sigmas``): the OKS scale s^2 ("area") is 0.53 x the box
        area. Why the box and not the visible area (COCO's segment area): the
        toy box is the person's full (amodal) extent, so a person half hidden
        behind a neighbour -- the case the paper is about -- keeps the
        tolerance of their size instead of being held to a stricter one; and
        0.53, CrowdPose's mean segment-to-box ratio, keeps the tolerance that
        of a person of that size on COCO. Ids start at 1: pycocotools never
        matches a ground truth whose id is 0."""
        _, kp, boxes, _ = self._render(i)
        return [coco_annotation(i, 1000 * i + k + 1, kp[k], boxes[k],
                                CROWDPOSE_AREA_PER_BOX * boxes[k, 2] * boxes[k, 3])
                for k in range(len(kp))]
