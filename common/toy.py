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
"""
import math

import numpy as np
from PIL import Image, ImageDraw

from .skeleton import MPII_JOINTS

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


def _clutter(rng, draw, size, limb_colours, limb_width, n_sticks):
    """Background shapes, including limb-like sticks in the person's colours."""
    for _ in range(rng.integers(3, 7)):
        x, y = rng.uniform(0, size, 2)
        w, h = rng.uniform(0.05, 0.3, 2) * size
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape([x - w, y - h, x + w, y + h], fill=_colour(rng))
    for _ in range(n_sticks):
        a = rng.uniform(0, size, 2)
        b = a + _unit(rng.uniform(0, 2 * math.pi)) * rng.uniform(0.1, 0.2) * size
        _capsule([draw], a, b, limb_width * rng.uniform(0.8, 1.2), [limb_colours[rng.integers(2)]])


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

    def limb(name, a, b, width, fill):
        _capsule([draw, ldraw], xy[J[a]], xy[J[b]], width, [fill, PARTS[name]])

    # Drawing order is depth order: each arm is randomly behind or in front of
    # the torso, and one leg crosses over the other (self-occlusion).
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
    for d, fill in ((draw, cloth), (ldraw, PARTS["torso"])):
        d.polygon([tuple(q) for q in torso], fill=fill)
    # The pelvis lies on the hip line, the torso polygon's edge: a band from
    # hip to hip gives it (and the hips) body pixels to be visible on.
    _capsule([draw, ldraw], xy[J["r_hip"]], xy[J["l_hip"]], limb_w * 1.2, [cloth, PARTS["torso"]])
    _capsule([draw, ldraw], xy[J["thorax"]], xy[J["upper_neck"]], limb_w, [skin, PARTS["torso"]])
    hc = (xy[J["head_top"]] + xy[J["upper_neck"]]) / 2
    hr = np.linalg.norm(xy[J["head_top"]] - xy[J["upper_neck"]]) * 0.58
    for d, fill in ((draw, skin), (ldraw, PARTS["head"])):
        d.ellipse([hc[0] - hr * 0.8, hc[1] - hr, hc[0] + hr * 0.8, hc[1] + hr], fill=fill)
    for s_, (a, b, c_) in [(s_, (f"{s_}_shoulder", f"{s_}_elbow", f"{s_}_wrist")) for s_ in "rl"]:
        if arms_front["rl".index(s_)]:
            limb(f"{s_}_upper_arm", a, b, limb_w, cloth)
            limb(f"{s_}_forearm", b, c_, limb_w * 0.85, skin)

    # Occluders: blobs centred near a random joint (not the head, which MPII
    # rarely has occluded), big enough to hide a joint and part of its limbs
    # but not a whole arm, so the joint stays inferable from context.
    if rng.random() < occlusion:
        for _ in range(rng.integers(1, 3)):
            q = xy[rng.choice([j for j in range(16) if j not in (J["head_top"], J["upper_neck"])])]
            q = q + rng.normal(0, 0.03, 2) * height
            r = rng.uniform(0.06, 0.12, 2) * height
            box = [q[0] - r[0], q[1] - r[1], q[0] + r[0], q[1] + r[1]]
            shape = "ellipse" if rng.random() < 0.5 else "rectangle"
            getattr(draw, shape)(box, fill=_colour(rng))
            getattr(ldraw, shape)(box, fill=OCCLUDER)

    labels = np.asarray(lab)
    kp = np.zeros((16, 3), np.float32)
    kp[:, :2] = xy
    ij = np.round(xy).astype(int)
    inside = ((ij >= 0) & (ij < size)).all(1)
    for j in range(16):
        if inside[j]:
            kp[j, 2] = 2 if labels[ij[j, 1], ij[j, 0]] in OWNER_IDS[j] else 1
    return np.asarray(img), kp, centre.astype(np.float32), float(height / 200)


def toy_head_size(keypoints):
    """PCKh normaliser of a toy figure, defined like MPII's: 0.6 x the
    diagonal of the head box. The drawn head is an ellipse of half-height
    ``0.58 d`` and half-width ``0.8 * 0.58 d`` (``d`` = head top to upper neck,
    see ``render_person``), so its box diagonal is ``1.16 d * sqrt(1 + 0.8^2)``.
    """
    kp = np.asarray(keypoints)
    d = np.linalg.norm(kp[..., J["head_top"], :2] - kp[..., J["upper_neck"], :2], axis=-1)
    return 0.6 * 1.16 * math.sqrt(1 + 0.8 ** 2) * d
