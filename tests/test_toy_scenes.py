"""Multi-person toy scenes (paper 2's data, ``common.toy.render_scene``).

Oracles: the returned label map against the RGB image it was drawn with
(one colour per part), the convention (v = 0 <=> (0, 0, 0) <=> outside),
hand-computed crowding statistics, and hashes of ``render_person`` taken
before the scene code was added (its outputs must never change).
"""
import hashlib

import numpy as np
import pytest

from common.skeleton import MPII_JOINTS
from common.toy import (OCCLUDER, OWNER_IDS, PARTS, PERSON_LABELS, kept, render_person,
                        render_scene, scene_stats)

HEAD_TOP = MPII_JOINTS.index("head_top")
SIZE = (160, 224)                                  # (H, W): not square, to catch x/y swaps


def scenes(n, seed=0, **kw):
    return [render_scene(seed, i, **kw) for i in range(n)]


# ----------------------------------------------------------------------------- render_person
# sha256 of image, keypoints and centre bytes and repr(scale), computed before
# render_scene and the shared drawing helpers existed. Other tests and the
# README's numbers depend on these exact figures.
PERSON_HASHES = {
    (0, 0, 160, 0.75): "a9fa5547bdb6d0a314650e520b2149e3afd6ab7af7d5300523104ea9f401eba3",
    (3, 5, 128, 0.75): "f817e62bbc79126ea68f37b2947f15cecc1a673f3c1c24137d659f74fabc4b11",
    (11, 42, 160, 1.0): "3963646d6d27ab8ba37cf72ee90852891b262907ce30b78556207ebfedc9331a",
}


@pytest.mark.parametrize("args", sorted(PERSON_HASHES))
def test_render_person_is_unchanged(args):
    img, kp, centre, scale = render_person(*args)
    h = hashlib.sha256()
    for a in (img, kp, centre):
        h.update(np.ascontiguousarray(a).tobytes())
    h.update(repr(scale).encode())
    assert h.hexdigest() == PERSON_HASHES[args]


# ----------------------------------------------------------------------------- API
def test_deterministic_per_seed_and_index():
    a, b = render_scene(5, 3, return_labels=True), render_scene(5, 3, return_labels=True)
    for x, y in zip(a, b):
        assert np.array_equal(x, y)
    assert not np.array_equal(a[0], render_scene(5, 4)[0])
    assert not np.array_equal(a[0], render_scene(6, 3)[0])


def test_shapes_dtypes_and_ranges():
    counts = []
    for img, kp, boxes, areas, labels in scenes(30, size=SIZE, return_labels=True):
        k = len(kp)
        counts.append(k)
        assert img.shape == SIZE + (3,) and img.dtype == np.uint8
        assert labels.shape == SIZE and labels.dtype == np.uint8
        assert kp.shape == (k, 16, 3) and kp.dtype == np.float32
        assert boxes.shape == (k, 4) and boxes.dtype == np.float32
        assert areas.shape == (k,) and areas.dtype == np.float32 and (areas >= 1).all()
        assert set(np.unique(kp[..., 2])) <= {0.0, 1.0, 2.0}
    assert 1 <= min(counts) and max(counts) <= 6
    assert all(len(render_scene(1, i, max_people=1)[1]) == 1 for i in range(10))
    assert all(len(render_scene(1, i, max_people=2)[1]) <= 2 for i in range(10))
    assert render_scene(2, 0, size=128)[0].shape == (128, 128, 3)


def test_bad_input_is_refused():
    for kw in ({"max_people": 0}, {"max_people": 26}, {"size": (8, 100)}, {"size": (1, 2, 3)}):
        with pytest.raises(ValueError):
            render_scene(0, 0, **kw)


# ----------------------------------------------------------------------------- v = 0
def test_unannotated_joints_are_zero_and_exactly_those_outside():
    H, W = SIZE
    truncated = 0
    for img, kp, boxes, areas in scenes(60, size=SIZE):
        v = kp[..., 2]
        assert (kp[v == 0] == 0).all()                               # (0, 0, 0)
        xy = np.round(kp[v > 0][:, :2])
        assert ((xy >= 0) & (xy < (W, H))).all()                     # annotated => inside
        assert ((v > 0).sum(1) >= 4).all()                           # a person has >= 4 joints in view
        for p in np.flatnonzero((v == 0).any(1)):                    # a joint left out => cut by a border
            x, y, w, h = boxes[p]
            assert min(x + 0.5, y + 0.5, W - 0.5 - (x + w), H - 0.5 - (y + h)) < 1e-3
            truncated += 1
    assert truncated > 5


# ----------------------------------------------------------------------------- occlusion
def test_label_map_matches_the_drawing():
    # The label map is drawn alongside the image, so every pixel of one
    # person's part has that part's single colour (the torso label also
    # covers the skin-coloured neck, a shin its dark foot: two colours). If
    # the label map were drawn in another order than the image, parts would
    # mix colours.
    checked = 0
    for img, kp, boxes, areas, labels in scenes(20, size=SIZE, return_labels=True):
        for lab in np.unique(labels):
            if lab in (0, OCCLUDER):
                continue
            assert (lab - 1) // PERSON_LABELS < len(kp)               # only annotated people
            colours = np.unique(img[labels == lab], axis=0)
            two = (PARTS["torso"], PARTS["r_shin"], PARTS["l_shin"])
            assert len(colours) <= (2 if (lab - 1) % PERSON_LABELS + 1 in two else 1)
            checked += 1
    assert checked > 200


def test_visibility_is_read_off_the_label_map_per_person():
    n_covered = n_self = n_visible = n_behind = 0
    for img, kp, boxes, areas, labels in scenes(60, size=SIZE, return_labels=True):
        for p in range(len(kp)):
            for j in np.flatnonzero(kp[p, :, 2] > 0):
                x, y = np.round(kp[p, j, :2]).astype(int)
                lab = int(labels[y, x])
                own = {p * PERSON_LABELS + i for i in OWNER_IDS[j]}
                assert (kp[p, j, 2] == 2) == (lab in own)
                if lab in own:
                    n_visible += 1
                elif lab not in (0, OCCLUDER):
                    q = (lab - 1) // PERSON_LABELS
                    if q == p:
                        n_self += 1                                  # own other limb on top
                    elif q > p:                                      # listed back to front
                        n_covered += 1
                    else:
                        # Only a joint its own body does not cover shows what
                        # is behind: the head top, on the rim of a strongly
                        # tilted head (the head is an upright ellipse).
                        assert j == HEAD_TOP
                n_behind += lab == 0 or (lab != OCCLUDER and (lab - 1) // PERSON_LABELS < p)
    # Other figures do hide joints, and that is common in a crowd.
    assert n_covered > 50 and n_self > 10 and n_visible > 500
    assert n_behind < 0.01 * n_visible                               # that rim case is rare


def test_a_joint_under_another_person_is_occluded():
    # A constructed case: the first scene with someone standing in front of
    # someone else's joint. The joint is inside the image and annotated, the
    # pixel under it shows the front person, so it is v = 1, not 2 (a label
    # test that ignored *whose* part it is would say 2 for a shared part).
    for i in range(50):
        img, kp, boxes, areas, labels = render_scene(0, i, return_labels=True)
        for p in range(len(kp)):
            for j in np.flatnonzero(kp[p, :, 2] > 0):
                x, y = np.round(kp[p, j, :2]).astype(int)
                lab = int(labels[y, x])
                q = (lab - 1) // PERSON_LABELS
                if lab not in (0, OCCLUDER) and q != p and (lab - q * PERSON_LABELS) in OWNER_IDS[j]:
                    assert kp[p, j, 2] == 1
                    # The image shows there a colour of the front person's part.
                    front = np.unique(img[labels == lab], axis=0)
                    assert (img[y, x] == front).all(1).any()
                    assert q > p                                     # the front person is listed later
                    return
    pytest.fail("no joint covered by another person's same part in 50 scenes")


# ----------------------------------------------------------------------------- boxes, areas
def test_boxes_areas_and_segments_agree():
    H, W = SIZE
    for img, kp, boxes, areas, labels in scenes(40, size=SIZE, return_labels=True):
        x, y, w, h = boxes.T
        assert (x >= -0.5).all() and (y >= -0.5).all() and (w > 0).all() and (h > 0).all()
        assert (x + w <= W - 0.5 + 1e-4).all() and (y + h <= H - 0.5 + 1e-4).all()
        person = np.where((labels > 0) & (labels != OCCLUDER), (labels.astype(int) - 1) // PERSON_LABELS, -1)
        for p in range(len(kp)):
            ann = kp[p, kp[p, :, 2] > 0, :2]
            assert (ann >= boxes[p, :2] - 1e-4).all() and (ann <= boxes[p, :2] + boxes[p, 2:] + 1e-4).all()
            ys, xs = np.nonzero(person == p)
            assert areas[p] == max(1, len(xs))                      # COCO 'area': visible segment
            if len(xs):                                             # amodal box >= visible segment
                assert xs.min() >= x[p] - 1 and xs.max() <= x[p] + w[p] + 1
                assert ys.min() >= y[p] - 1 and ys.max() <= y[p] + h[p] + 1


# ----------------------------------------------------------------------------- crowding
def test_scene_stats_on_a_hand_made_case():
    kp = np.zeros((2, 16, 3), np.float32)
    kp[..., 2] = 2
    kp_cut = kp.copy()
    kp_cut[0, :4] = 0                                              # 4 joints outside the image
    kp_cut[1, 5, 2] = 1
    boxes_a = np.array([[0, 0, 10, 10], [5, 0, 10, 10]])           # IoU = 50 / 150 = 1/3
    boxes_b = np.array([[0, 0, 10, 10], [8, 0, 10, 10], [50, 50, 5, 5]])   # IoU = 20 / 180
    kp_b = np.concatenate([kp, kp[:1]])
    s = scene_stats([kp, kp_cut], [boxes_a, boxes_a])
    assert s["overlap"] == 1.0 and s["crowded"] == 0.0 and s["truncated"] == 0.5
    assert s["occluded"] == pytest.approx(1 / 60)                 # 1 of 32 + 28 annotated
    s = scene_stats([kp, kp_b], [boxes_a, boxes_b])
    assert s["overlap"] == 0.5 and s["crowded"] == 0.5 and s["people"] == 2.5
    assert scene_stats([kp], [boxes_a], iou=0.34)["overlap"] == 0.0


def test_scenes_are_crowded_overlapping_truncated_and_varied_in_scale():
    H, W = SIZE
    out = scenes(200, seed=1, size=SIZE)
    s = scene_stats([o[1] for o in out], [o[2] for o in out])
    # Measured (seed 1, 200 scenes of 160x224): people 3.3 per scene, 3+ in
    # 0.63, a pair of boxes with IoU > 0.3 in 0.42 of the scenes (> 0.5 in
    # 0.06), 30 % of people with a neighbour at IoU > 0.3, truncated 0.63,
    # 14 % of joints occluded. Crowds a box can resolve (see toy.MAX_OVERLAP):
    # neighbours overlap, rarely by more than half.
    assert s["crowded"] > 0.5                                      # 3+ people
    assert 0.3 < s["overlap"] < 0.6                                # a pair of boxes with IoU > 0.3
    assert 0.2 < s["neighbour"] < 0.45                             # the crowded slice
    heavy = scene_stats([o[1] for o in out], [o[2] for o in out], iou=0.5)["overlap"]
    assert heavy < 0.15                                            # ... and IoU > 0.5 is rare
    assert s["truncated"] > 0.3                                    # someone cut by a border
    assert 2.5 < s["people"] < 5
    assert 0.08 < s["occluded"] < 0.3
    counts = np.bincount([len(o[2]) for o in out], minlength=7)
    assert (counts[1:7] > 0).all()                                 # every count 1..6 occurs
    whole = np.concatenate([o[2][(o[1][..., 2] > 0).all(1)] for o in out])   # uncut figures
    assert (whole[:, 3] < 0.5 * H).mean() > 0.05 and (whole[:, 3] > 0.65 * H).mean() > 0.05


def test_unannotated_figures_are_returned_as_a_mask():
    """Figures drawn but not annotated (too few joints inside, too small, or
    hidden) come back as a mask, so that training can set W = 0 there."""
    found = 0
    for i in range(60):
        img, kp, boxes, areas, labels, unannotated = render_scene(1, i, size=SIZE, return_labels=True,
                                                                  return_unannotated=True)
        assert unannotated.shape == labels.shape and unannotated.dtype == bool
        # Never an annotated person's pixel: those carry their own labels.
        assert not (unannotated & (labels > 0) & (labels != 255)).any()
        found += unannotated.any()
    assert found >= 5


def test_kept_renders_once_and_starts_over_when_full():
    cache, calls = {}, []

    def render(key):
        calls.append(key)
        return key * 10

    assert [kept(cache, k, lambda k=k: render(k), limit=2) for k in (1, 2, 1, 2)] == [10, 20, 10, 20]
    assert calls == [1, 2]                                   # each rendered once
    assert kept(cache, 3, lambda: render(3), limit=2) == 30 and set(cache) == {3}   # full: starts over
