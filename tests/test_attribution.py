"""Where each person is lost (``common.attribution``): hand-made scenes in
which each step loses exactly one person, the counts adding up to the misses,
and the same through ``bottom_up_bbox`` on perfect maps of built scenes."""
import numpy as np
import pytest

from dataclasses import replace

import bottom_up_bbox as bub
from common import attribution as at
from common.coco_eval import coco_annotation
from common.detector import gt_boxes, scored_people
from common.skeleton import MPII_TO_AIC
from common.toy import ToyScenes, sample_pose
from walkthrough import studies

J = 6                                   # a chain of six joints, 10 px apart
SIGMAS = np.full(J, 0.1)


def person(x):
    kp = np.zeros((J, 3))
    kp[:, 0], kp[:, 1], kp[:, 2] = x, 10.0 * np.arange(J), 2
    return kp


def people(*xs):
    kp = np.stack([person(x) for x in xs])
    boxes = np.array([[x - 5, -5, 10, 10 * J] for x in xs], float)
    return at.People(kp, np.full(len(xs), 60.0 ** 2), boxes, SIGMAS)


def part(x, joints):
    """A pose holding ``joints`` of the person at ``x``, the others missing."""
    kp = person(x)
    kp[[j for j in range(J) if j not in joints]] = 0
    return kp


def mixed(xa, ja, xb, jb):
    kp = part(xa, ja)
    kp[jb] = person(xb)[jb]
    return kp


def trace(assembled, kept=None, final=None, score=None, conf=None, box=None, boxes="truth", truth=None,
          rival=None, distance=None):
    a = np.stack(assembled)
    P = len(a)
    kept = np.ones(P, bool) if kept is None else np.asarray(kept)
    det = None if boxes is None else (truth.boxes if isinstance(boxes, str) else np.asarray(boxes, float))
    return at.Trace(assembled=a, final=a.copy() if final is None else np.stack(final), kept=kept,
                    score=np.linspace(1, 0.5, P) if score is None else np.asarray(score, float),
                    conf=np.linspace(1, 0.5, P) if conf is None else np.asarray(conf, float),
                    box=np.arange(P) if box is None else np.asarray(box), boxes=det, detected=det,
                    rival=np.full(P, -1) if rival is None else np.asarray(rival),
                    distance=np.full(P, np.nan) if distance is None else np.asarray(distance, float))


def causes(tr, truth, candidates=None, tau=0.5):
    return {a["person"]: a["cause"] for a in at.attribute(tr, truth, candidates, tau)}


ALL = list(range(J))


def test_a_person_found_is_not_lost():
    truth = people(0, 100)
    assert causes(trace([person(0), person(100)], truth=truth), truth) == {}


def test_no_box():
    truth = people(0, 100)
    tr = trace([person(0)], box=[0], boxes=truth.boxes[:1], truth=truth)
    assert causes(tr, truth) == {1: "no_box"}


def test_network():
    truth = people(0, 100)
    cand = np.array([[0, 10 * j, j] for j in range(J)] + [[100, 0, 0], [100, 10, 1]], float)   # 2 of 6 at 100
    tr = trace([person(0), part(100, [0, 1])], truth=truth)
    assert causes(tr, truth, cand) == {1: "network"}


def test_outside_box():
    """Their box overlaps theirs by IoU 0.5 but is shifted up: it holds
    their top four joints, so a perfect parse of it has OKS 4/6 -- below
    the AP's strict thresholds (here 0.9), whatever the parse does."""
    truth = people(0, 100)
    boxes = truth.boxes.copy()
    boxes[1] = [95, -25, 10, 60]                                            # IoU 400 / 800 = 0.5
    tr = trace([person(0), part(100, [0, 1, 2, 3])], boxes=boxes, truth=truth)
    assert causes(tr, truth, tau=0.9) == {1: "outside_box"}
    assert causes(tr, truth, tau=0.5) == {}                                 # 4/6 is enough for OKS 0.5


def test_box_took_neighbour_and_joined_neighbour():
    truth = people(0, 100)
    # Person 1's box: its most confident pose is person 0's.
    tr = trace([person(0), part(0, ALL), part(100, [0, 1])], box=[0, 1, 1], conf=[1, 0.9, 0.1],
               kept=[True, False, True], truth=truth)
    assert causes(tr, truth) == {1: "box_took_neighbour"}
    # Person 1's joints went into a pose that also holds person 0's.
    tr = trace([part(0, [0, 1, 2, 3]), mixed(100, [0, 1], 0, [4, 5])], truth=truth)
    assert causes(tr, truth) == {1: "joined_neighbour"}


def test_fragmented():
    truth = people(0, 100)
    tr = trace([person(0), part(100, [0, 1]), part(100, [2, 3]), part(100, [4, 5])], box=[0, 1, 1, 1],
               conf=[1, 0.9, 0.8, 0.7], truth=truth)
    assert causes(tr, truth) == {1: "fragmented"}


def test_nms_names_the_rival_and_its_distance():
    truth = people(0, 100)
    # Person 1's whole pose was eliminated by Eq. (11) against person 0's (index 0), d = 0.4.
    tr = trace([person(0), person(100)], kept=[True, False], rival=[-1, 0], distance=[np.nan, 0.4], truth=truth)
    assert at.attribute(tr, truth) == [{"person": 1, "cause": "nms", "rival": 0, "d": 0.4}]
    # ... or by one pose per box (no rival).
    tr = trace([person(0), person(100)], kept=[True, False], truth=truth)
    assert at.attribute(tr, truth) == [{"person": 1, "cause": "nms", "rival": -2, "d": None}]


def test_completion_and_matching():
    truth = people(0, 100)
    spoiled = person(100)
    spoiled[2:] = person(300)[2:]
    tr = trace([person(0), person(100)], final=[person(0), spoiled], truth=truth)
    assert causes(tr, truth) == {1: "completion"}
    # One pose 3 px from person 0 and 17 px from person 1, within OKS 0.5 of
    # both: COCO's matching gives it to person 0, and person 1 has no other.
    close = at.People(np.stack([person(0), person(20)]), np.full(2, 100.0 ** 2), truth.boxes, SIGMAS)
    between = person(3)
    assert (close.oks(between[None]) >= 0.5).all()
    tr = trace([between], box=[0], boxes=close.boxes, truth=close)
    assert causes(tr, close) == {1: "matching"}


def test_greedy_causes_and_fragmentation_counts():
    truth = people(0, 100, 200)
    tr = trace([person(0), part(100, ALL), part(200, [0, 1]), part(200, [2, 3]), part(200, [4, 5])],
               kept=[True, False, False, False, False], boxes=None)
    assert causes(tr, truth) == {1: "deleted", 2: "fragmented"}
    tr = trace([person(0), mixed(100, [0, 1], 0, [2, 3, 4, 5])], boxes=None)
    assert causes(tr, people(0, 100)) == {1: "joined_neighbour"}
    f = at.fragmentation(trace([person(0), part(100, [0, 1]), part(100, [2, 3])], kept=[True, True, False],
                               boxes=None), people(0, 100))
    assert f == {"lists": 3, "deleted": 1, "deleted_joints": 2, "split": 1}


def test_counts_add_up_to_the_misses():
    truth = people(0, 100, 200, 300)
    tr = trace([person(0), part(100, [0, 1]), part(100, [2, 3]), part(100, [4, 5]), person(200)],
               kept=[True, True, True, True, False], box=[0, 1, 1, 1, 2], truth=truth)
    lost = at.attribute(tr, truth)
    counts = at.count(lost, at.OURS_CAUSES)
    # Person 1 in three fragments, person 2's pose eliminated, person 3 never assembled.
    assert sum(counts.values()) == len(lost) == 3
    assert {k: v for k, v in counts.items() if v} == {"fragmented": 2, "nms": 1}


def test_coco_match_takes_poses_by_score():
    truth = people(0, 100)
    assert at.coco_match(truth, np.stack([person(0), person(100)]), [0.2, 0.9], 0.5).tolist() == [0, 1]
    assert at.coco_match(truth, np.stack([person(0), person(0)]), [0.9, 0.2], 0.5).tolist() == [0, -1]


# ----------------------------------------------------------------------------- through the script
def test_script_attributes_joints_outside_the_box_and_a_missed_box():
    """Two people on perfect maps: one whose annotated box stops at their
    hips (a person hidden below the waist, as in AI Challenger's boxes) and
    whose legs the literal parse cannot reach; one with no box at all.
    Completion along the field (the default) recovers the first; nothing
    recovers the second."""
    sk, cfg = bub.Skeleton("aic"), bub.Config(data="aic")
    rng = np.random.default_rng(0)
    kp = np.zeros((2, sk.J, 3), np.float32)
    for k, x in enumerate((150, 450)):
        kp[k, :, :2] = sample_pose(rng)[MPII_TO_AIC] * 300 + (x, 250)
        kp[k, :, 2] = 2
    pred = bub.Prediction(bub.confidence_maps(kp, (125, 150), 4, cfg.sigma),
                          bub.direction_fields(kp, sk.limbs, (125, 150), 4, cfg.delta)[0], 4, (600, 500), (600, 500))
    gt = []
    for k in range(2):
        lo, hi = kp[k, :, :2].min(0), kp[k, :, :2].max(0)
        gt.append(coco_annotation(0, k + 1, kp[k], [*lo, *(hi - lo)], float(np.prod(hi - lo))))
    hips = kp[0, [sk.joints.index("r_hip"), sk.joints.index("l_hip")], 1].max()
    lo = kp[0, :, :2].min(0)
    short = np.array([[lo[0], lo[1], np.ptp(kp[0, :, 0]), hips - lo[1] + 2]])   # the upper body only
    for change, want in (({}, {1: "no_box"}), (bub.PAPER_LITERAL, {0: "outside_box", 1: "no_box"})):
        c = replace(cfg, readings=replace(cfg.readings, **change))
        inputs = bub.candidates_and_scores(pred.maps, pred.fields, sk, c)
        parsed = bub.parse_variants(pred, short, sk, c, ("full",), inputs)
        lost = studies.lost_people(parsed, pred, inputs[0], gt, sk, c, short, tau=0.9)["full"]
        assert {a["person"]: a["cause"] for a in lost} == want, change


@pytest.mark.parametrize("variant", ["full", "greedy"])
def test_script_attribution_adds_up_on_toy_scenes(variant):
    sk, cfg = bub.Skeleton("toy"), bub.toy_config()
    src = ToyScenes(1, 12, 192, sk)
    for i in range(len(src)):
        gt = src.ground_truth(i)
        pred = studies.oracle_prediction(src.load(i), sk, cfg, 4)
        inputs = bub.candidates_and_scores(pred.maps, pred.fields, sk, cfg)
        boxes = gt_boxes(gt)
        parsed = bub.parse_variants(pred, boxes, sk, cfg, (variant,), inputs)
        lost = studies.lost_people(parsed, pred, inputs[0], gt, sk, cfg, boxes)[variant]
        kept = parsed[variant]
        matched = at.coco_match(at.People(np.array([a["keypoints"] for a in scored_people(gt)]).reshape(
            len(scored_people(gt)), sk.J, 3), np.array([a["area"] for a in scored_people(gt)]),
            boxes, sk.sigmas), kept.keypoints, kept.scores, 0.5)
        assert sorted(a["person"] for a in lost) == np.flatnonzero(matched < 0).tolist()
