"""Paper 2, the method: Fig. 4 tree, targets (Eq. 1-4), mask and loss (Eq. 6-8),
network shapes against Table III, Eq. (5), Algorithm 1, pose NMS (Eq. 9-11),
completion, and parsing from ground-truth maps (the oracle)."""
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

import bottom_up_bbox as bub
from common import coco_aic
from common.coco_eval import coco_keypoint_ap, to_coco_results
from common.crops import box_center_scale, crop_side
from common.detector import DetectorModel
from common.layers import init_deconv_bilinear
from common.toy import ToyScenes
from common.transforms import apply_affine
from walkthrough import studies

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "real_samples" / "coco"


# ----------------------------------------------------------------------------- Fig. 4
def test_aic_tree_is_fig4_rooted_at_the_neck_in_dfs_order():
    sk = bub.Skeleton("aic")
    assert (sk.J, sk.C) == (14, 13)
    names = [(sk.joints[a], sk.joints[b]) for a, b in sk.limbs]
    assert names[:4] == [("neck", "head_top"), ("neck", "r_shoulder"),
                         ("r_shoulder", "r_elbow"), ("r_elbow", "r_wrist")]
    reached = {"neck"}
    for a, b in names:          # DFS: every start joint was reached by an earlier limb
        assert a in reached and b not in reached
        reached.add(b)
    assert reached == set(sk.joints)


def test_coco_tree_shares_the_body_and_synthesizes_the_neck():
    aic, coco = bub.Skeleton("aic"), bub.Skeleton("coco")
    assert (coco.J, coco.C, coco.eval_joints) == (18, 17, 17)
    body = lambda sk: [(sk.joints[a], sk.joints[b]) for a, b in sk.limbs if "shoulder" in sk.joints[b]
                       or sk.joints[a] not in ("neck", "nose", "l_eye", "r_eye") or "hip" in sk.joints[b]]
    assert body(aic) == body(coco)                                  # one definition of the body
    kp = np.zeros((1, 17, 3), np.float32)
    kp[0, 5] = (10, 20, 2)                                          # l_shoulder
    kp[0, 6] = (30, 24, 1)                                          # r_shoulder (occluded)
    out = coco.from_dataset(kp)
    np.testing.assert_allclose(out[0, 17], (20, 22, 1))
    kp[0, 6] = 0
    assert coco.from_dataset(kp)[0, 17].tolist() == [0, 0, 0]       # needs both shoulders
    assert coco.to_dataset(out).shape == (1, 17, 3)


def test_flipped_keypoints_give_the_mirrored_targets():
    """Training flips the keypoints (x -> W - 1 - x, left <-> right) and then
    draws the targets: the maps are the mirrored maps with left and right
    channels swapped, the fields those of the mirrored limbs."""
    sk = bub.Skeleton("aic")
    rng = np.random.default_rng(0)
    kp = np.concatenate([rng.uniform(4, 28, (2, sk.J, 2)), np.full((2, sk.J, 1), 2)], -1).astype(np.float32)
    flipped = kp[:, sk.flip].copy()
    flipped[..., 0] = 31 - flipped[..., 0]
    maps = bub.confidence_maps(kp, (32, 32), 1, 2.0)
    np.testing.assert_allclose(bub.confidence_maps(flipped, (32, 32), 1, 2.0)[:sk.J],
                               maps[:sk.J][sk.flip][..., ::-1], atol=1e-6)
    fields = bub.direction_fields(kp, sk.limbs, (32, 32), 1, 1.5)[0].reshape(sk.C, 2, 32, 32)
    got = bub.direction_fields(flipped, sk.limbs, (32, 32), 1, 1.5)[0].reshape(sk.C, 2, 32, 32)
    pairs = {tuple(p): c for c, p in enumerate(sk.limbs.tolist())}
    for c, (a, b) in enumerate(sk.limbs):
        m = pairs[(sk.flip[a], sk.flip[b])]                     # the mirrored limb
        np.testing.assert_allclose(got[m, 0], -fields[c, 0][:, ::-1], atol=1e-5)
        np.testing.assert_allclose(got[m, 1], fields[c, 1][:, ::-1], atol=1e-5)


# ----------------------------------------------------------------------------- Eq. (1)-(2)
def test_gaussian_peak_value_and_spread_eq1():
    kp = np.array([[[10.0, 7.0, 2]]], np.float32)
    m = bub.confidence_maps(kp, (16, 20), 1, sigma=3.0)
    assert m.shape == (2, 16, 20)
    assert m[0, 7, 10] == pytest.approx(1.0)
    assert m[0, 7, 13] == pytest.approx(math.exp(-1.0), rel=1e-6)    # ||p - x|| = sigma: e^-1 (not e^-1/2)
    assert m[0, 9, 12] == pytest.approx(math.exp(-8 / 9), rel=1e-6)
    np.testing.assert_allclose(m[1], 1 - m[0], atol=1e-7)            # background


def test_maps_take_the_max_over_persons_eq2_and_skip_unlabelled():
    kp = np.array([[[5.0, 5.0, 2]], [[8.0, 5.0, 1]], [[2.0, 2.0, 0]]], np.float32)
    m = bub.confidence_maps(kp, (12, 12), 1, sigma=2.0)
    one = lambda x, y: np.exp(-((np.arange(12)[None] - x) ** 2 + (np.arange(12)[:, None] - y) ** 2) / 4.0)
    np.testing.assert_allclose(m[0], np.maximum(one(5, 5), one(8, 5)), rtol=1e-6, atol=1e-7)
    # The v = 0 joint at (2, 2) adds nothing: the equality above covers every pixel.


def test_maps_at_a_stride_use_pixel_centres():
    kp = np.array([[[4 * 3 + 1.5, 4 * 2 + 1.5, 2]]], np.float32)     # centre of map pixel (2, 3)
    m = bub.confidence_maps(kp, (6, 6), 4, sigma=7.0)
    assert np.unravel_index(m[0].argmax(), m[0].shape) == (2, 3) and m[0, 2, 3] == pytest.approx(1.0)


# ----------------------------------------------------------------------------- Eq. (3)-(4)
def test_field_inside_and_outside_the_rectangle_eq3():
    limbs = np.array([[0, 1]])
    kp = np.array([[[2.0, 5.0, 2], [12.0, 5.0, 2]]], np.float32)
    f, count = bub.direction_fields(kp, limbs, (12, 16), 1, delta=1.0)
    assert f.shape == (2, 12, 16)
    for x, y in ((2, 5), (7, 4), (7, 6), (12, 5)):                   # inside: the unit vector
        assert (f[0, y, x], f[1, y, x]) == (1.0, 0.0)
    for x, y in ((1, 5), (13, 5), (7, 7), (7, 3)):                   # before, after, beyond delta
        assert (f[0, y, x], f[1, y, x]) == (0.0, 0.0)
    assert count.sum() == 11 * 3


def test_field_averages_where_two_persons_overlap_eq4():
    limbs = np.array([[0, 1]])
    kp = np.array([[[2.0, 5.0, 2], [12.0, 5.0, 2]],                  # horizontal
                   [[7.0, 0.0, 2], [7.0, 10.0, 2]]], np.float32)     # vertical, crossing at (7, 5)
    f, count = bub.direction_fields(kp, limbs, (12, 16), 1, delta=1.0)
    assert count[0, 5, 7] == 2
    np.testing.assert_allclose(f[:, 5, 7], (0.5, 0.5))               # (1/n_c) sum_k L_ck
    np.testing.assert_allclose(f[:, 1, 7], (0.0, 1.0))               # only the vertical one


def test_field_needs_both_joints_annotated():
    f, count = bub.direction_fields(np.array([[[2.0, 5, 2], [12.0, 5, 0]]], np.float32),
                                    np.array([[0, 1]]), (12, 16), 1, delta=1.0)
    assert not f.any() and not count.any()


# ----------------------------------------------------------------------------- Eq. (6)-(8)
def test_mask_zeroes_missing_annotation_but_keeps_known_targets():
    sk = bub.Skeleton("aic")
    cfg = bub.toy_config()
    cfg.sigma = 6.0                  # person 1's r_wrist peak falls under 0.01 at (8, 8), 17 px away
    kp = np.zeros((2, 14, 3), np.float32)
    kp[0, :, :2] = np.linspace(10, 30, 14)[:, None]
    kp[0, :, 2] = 2
    kp[0, 2] = 0                                                    # person 0: r_wrist unlabelled
    kp[1, 2] = (20, 20, 2)                                          # person 1's r_wrist, inside 0's box
    kp[1, 13] = (60, 60, 2)
    boxes = np.array([[5, 5, 30, 30], [15, 15, 50, 50]], np.float32)
    ignore = np.zeros((48, 48), bool)
    ignore[40:, 40:] = True                                         # a crowd region
    maps, fields, mask = bub.make_targets(kp, boxes, ignore, (48, 48), 1, sk, cfg)
    assert mask.shape == (14 + 1 + 26, 48, 48)
    assert (mask[:, 40:, 40:] == 0).all()                           # crowd: every channel, background too
    assert mask[2, 8, 8] == 0                                       # unknown r_wrist inside person 0's box
    assert mask[2, 20, 20] == 1                                     # person 1's labelled r_wrist stays
    assert mask[2, 38, 8] == 1 and mask[3, 8, 8] == 1               # outside the box / other joints
    c = [i for i, (a, b) in enumerate(sk.limbs) if b == 2][0]       # r_elbow -> r_wrist
    assert (mask[15 + 2 * c:17 + 2 * c, 8, 8] == 0).all()


def test_loss_eq6_to_8_by_hand():
    J, C = 2, 1
    maps = torch.zeros(1, J + 1, 2, 2)
    fields = torch.zeros(1, 2 * C, 2, 2)
    mask = torch.ones(1, J + 1 + 2 * C, 2, 2)
    S = maps.clone()
    S[0, 0, 0, 0] = 1.0                       # joint error 1 -> 1
    S[0, 2, 1, 1] = 2.0                       # background error 2 -> lambda * 4
    S[0, 1, 0, 1] = 5.0                       # masked out
    mask[0, 1, 0, 1] = 0
    L = fields.clone()
    L[0, :, 1, 0] = torch.tensor([3.0, 4.0])  # ||L - L*||^2 = 25
    loss = bub.pose_loss([(S, L)], maps, fields, mask, lambda_bg=0.05)
    assert loss.item() == pytest.approx(1 + 0.05 * 4 + 25)
    two = bub.pose_loss([(S, L), (maps, fields)], maps, fields, mask, 0.05)
    assert two.item() == pytest.approx(loss.item())                 # Eq. (8): a sum over stages
    batch = bub.pose_loss([(S.repeat(2, 1, 1, 1), L.repeat(2, 1, 1, 1))], maps.repeat(2, 1, 1, 1),
                          fields.repeat(2, 1, 1, 1), mask.repeat(2, 1, 1, 1), 0.05)
    assert batch.item() == pytest.approx(loss.item())               # averaged over images


# ----------------------------------------------------------------------------- Fig. 3, Table III
def test_network_outputs_every_stage_at_its_stride():
    sk = bub.Skeleton("aic")
    for upsample, stride in ((True, 4), (False, 8)):
        cfg = bub.toy_config()
        cfg.upsample, cfg.stages = upsample, 3
        net = bub.PoseNetwork(cfg, sk).eval()
        out = net(torch.zeros(1, 3, 64, 96))
        assert len(out) == 3 and net.stride == stride
        for S, L in out:
            assert S.shape == (1, 15, 64 // stride, 96 // stride) and L.shape == (1, 26, 64 // stride, 96 // stride)
    # Sequential branches: the field branch of each stage also sees the maps (J + 1 channels).
    f = net.features.out_channels
    assert net.fields[0][0].in_channels == f + 15
    assert net.fields[1][0].in_channels == f + 15 + 26 + 15
    assert net.maps[1][0].in_channels == f + 15 + 26


@pytest.mark.parametrize("stages,backbone,upsample,paper_m", [
    (6, "vgg", False, 51.29), (6, "resnet", False, 51.97), (3, "resnet", False, 26.00),
    (3, "resnet", True, 27.42), (6, "resnet", True, 54.73)])
def test_full_size_parameter_counts_near_table_iii(stages, backbone, upsample, paper_m):
    """Table III's "Param Size" for AI Challenger's 14 joints, within 6 %
    (measured: VGG 1 % above, ResNet rows 2-5 % above; see ``Features``)."""
    cfg = bub.Config(data="aic", stages=stages, backbone=backbone, upsample=upsample)
    with torch.device("meta"):
        net = bub.PoseNetwork(cfg, bub.Skeleton("aic"))
    n = sum(p.numel() for p in net.parameters()) / 1e6
    assert abs(n - paper_m) / paper_m < 0.06, n


def test_deconvolution_starts_as_bilinear_upsampling():
    d = torch.nn.ConvTranspose2d(2, 2, 4, stride=2, padding=1)
    init_deconv_bilinear(d)                               # what PoseNetwork's deconvolution starts as
    x = torch.ones(1, 2, 5, 5)
    y = d(x)
    assert y.shape == (1, 2, 10, 10)
    np.testing.assert_allclose(y[0, :, 1:-1, 1:-1].detach().numpy(), 1.0, atol=1e-6)   # constant stays constant


# ----------------------------------------------------------------------------- Eq. (5)
def candidates(points):
    """Candidates from {joint: [(x, y, score), ...]}."""
    xy, score, joint = [], [], []
    for j in sorted(points):
        for x, y, s in sorted(points[j], key=lambda p: -p[2]):
            xy.append((x, y)), score.append(s), joint.append(j)
    joint = np.array(joint)
    J = max(points) + 1
    return bub.Candidates(np.array(xy, np.float32), np.array(score, np.float32), joint,
                          [np.flatnonzero(joint == j) for j in range(J)])


def test_connection_score_eq5_on_a_hand_made_field():
    fields = np.zeros((2, 30, 30), np.float32)
    fields[0] = 1.0                                                 # (1, 0) everywhere
    cand = candidates({0: [(5, 10, 1)], 1: [(15, 10, 1), (5, 20, 1), (15, 20, .9), (0, 10, .8)]})
    conn = bub.connection_scores(fields, cand, np.array([[0, 1]]), support=True)
    s = conn.score[0]
    assert s.shape == (1, 4)
    np.testing.assert_allclose(s[0], [1.0, 0.0, math.cos(math.pi / 4), -1.0], atol=1e-6)
    np.testing.assert_allclose(conn.support[0][0], [1.0, 0.0, 1.0, 0.0])
    np.testing.assert_allclose(conn.length[0][0], [10, 10, math.hypot(10, 10), 5], atol=1e-5)
    # Only half of the segment lies in the field: |Q| = 11 samples, 6 inside.
    fields[0, :, 11:] = 0
    conn = bub.connection_scores(fields, cand, np.array([[0, 1]]), support=True)
    assert conn.score[0][0, 0] == pytest.approx(6 / 11)
    assert conn.support[0][0, 0] == pytest.approx(5 / 9)                # interior samples 1..9: 5 inside


def test_greedy_connections_follow_the_criterion_of_3():
    """[3]'s test: > 80 % of the samples support the pair, and Eq. (5) plus
    min(0.5 H / ||d|| - 1, 0) is positive; the others get -1."""
    conn = bub.Connections(score=[np.array([[0.9, 0.9, 0.9, 0.6]], np.float32)],
                           support=[np.array([[1.0, 0.7, 1.0, 1.0]], np.float32)],
                           length=[np.array([[10, 10, 40, 30]], np.float32)])
    got = bub.greedy_connections(conn, height=40)[0][0]
    # half the height = 20: lengths 10 pass freely, 40 pays 0.5 (0.9 - 0.5), 30 pays 1/3 (0.6 - 1/3)
    np.testing.assert_allclose(got, [0.9, -1.0, 0.4, 0.6 - 1 / 3], atol=1e-6)
    conn = conn._replace(score=[np.array([[0.9, 0.9, 0.4, 0.3]], np.float32)])
    assert bub.greedy_connections(conn, height=40)[0][0, 2] == -1.0   # 0.4 - 0.5 < 0


# ----------------------------------------------------------------------------- Algorithm 1
CHAIN = np.array([[0, 1], [1, 2]])                                  # a 3-joint tree, DFS order


def two_people(boxes=True):
    kp = np.array([[[10, 10, 2], [30, 30, 2], [50, 30, 2]],         # A: down-right, then right
                   [[10, 30, 2], [30, 10, 2], [50, 10, 2]]],        # B: up-right: crosses A
                  np.float32)
    fields, _ = bub.direction_fields(kp, CHAIN, (40, 60), 1, delta=2.0)
    maps = bub.confidence_maps(kp, (40, 60), 1, sigma=2.0)
    return kp, maps, fields


def grouped(kps, truth):
    """Each predicted pose matched to the annotated person it equals."""
    out = []
    for p in kps:
        hits = [k for k, t in enumerate(truth) if np.allclose(p[:, :2], t[:, :2], atol=1e-3)]
        out.append(hits[0] if hits else None)
    return out


def test_algorithm1_two_people_whose_limbs_cross():
    kp, maps, fields = two_people()
    cand = bub.find_candidates(maps[:3], 0.1)
    scores = bub.connection_scores(fields, cand, CHAIN).score
    persons = bub.parse_box(cand, scores, CHAIN, np.ones(len(cand.score), bool), 0.2)
    got = [bub.to_keypoints(p, cand) for p in persons]
    assert sorted(grouped(got, kp)) == [0, 1]                       # not A's start with B's end


def test_algorithm1_starts_a_new_person_when_the_start_joint_is_unowned():
    # Lines 14-15: limb 2's start joint (joint 1 of B) is in nobody's list,
    # because B's joint 0 lies outside the box: B's fragment becomes a person.
    kp, maps, fields = two_people()
    cand = bub.find_candidates(maps[:3], 0.1)
    scores = bub.connection_scores(fields, cand, CHAIN).score
    inside = bub.candidates_in_box(cand, (0, 0, 60, 25))            # A's joint 0 and B's joints 1, 2
    assert scores[0][0, 0] < 0.5 < scores[1][0, 0]                  # A0 -> B1 is no limb; B1 -> B2 is
    persons = bub.parse_box(cand, scores, CHAIN, inside, 0.5)
    assert len(persons) == 1
    assert (persons[0].joints[1:] >= 0).all() and persons[0].joints[0] == -1
    np.testing.assert_allclose(cand.xy[persons[0].joints[1:]], kp[1, 1:, :2], atol=1e-3)


def test_a_box_holding_parts_of_two_people_keeps_its_own_person():
    kp, maps, fields = two_people()
    sk = SimpleNamespace(J=3, limbs=CHAIN)
    cfg = bub.toy_config()
    box_a = np.array([[8, 8, 44, 24]], np.float32)                  # A whole, B's joints 1 and 0 too
    parse = bub.parse_image(maps, fields, box_a, sk, cfg, completion=False)
    assert len(parse.keypoints) == 1 and grouped(parse.keypoints, kp) == [0]   # one pose per box: A's
    assert len(parse.suppressed) >= 1                               # B's fragment, removed by pose NMS


# ----------------------------------------------------------------------------- §III-C
def pose(joints, box, conf, links=(0.9,)):
    return bub.Pose(np.array(joints), list(links), box, conf)


def test_pose_distance_eq10_and_confidence_eq9_by_hand():
    a, b = pose([0, 1, 2, -1], 0, 0), pose([0, 1, 5, 6], 1, 0)
    assert bub.pose_distance(a, b) == pytest.approx(2 / 4)          # joints 2 and 3 differ; max(3, 4)
    cand = candidates({0: [(0, 0, .8)], 1: [(10, 20, .6)], 2: [(4, 4, 1.0)]})
    p = pose([0, 1, 2], 0, 0, links=(0.5, 0.7))
    conf = bub.pose_confidence(p, cand, (0, 0, 20, 40), bub.Config())
    assert conf == pytest.approx(0.2 * 0.8 + 0.2 * 0.6 + 0.6 * (10 * 20) / (20 * 40))


def test_pose_nms_eq11_and_one_pose_per_box():
    p1 = pose([0, 1, 2, 3], 0, 0.9)
    p2 = pose([0, 1, 2, 9], 1, 0.8)        # d = 1/4 <= eta: the same person seen from box 1
    p3 = pose([5, 6, 7, 8], 0, 0.7)        # a second pose in box 0
    p4 = pose([10, 11, -1, -1], 1, 0.6)    # box 1's own person
    kept = bub.pose_nms([p3, p4, p2, p1], eta=0.5)
    assert kept == [p1, p4]
    assert bub.pose_nms([p1, p2], eta=0.2) == [p1, p2]   # d = 1/4 > 0.2: two people


# ----------------------------------------------------------------------------- §III-D
def test_completion_takes_the_next_highest_point_not_taken():
    cand = candidates({0: [(5, 5, 1.0), (30, 5, 1.0)],
                       1: [(8, 8, .9), (9, 9, .8), (10, 10, .5), (60, 60, .95)]})
    a = pose([0, -1], 0, 0.9)              # missing joint 1
    b = pose([1, 3], 1, 0.8)               # owns joint-1 candidate (8, 8), the highest in a's box
    boxes = np.array([[0, 0, 40, 40], [0, 0, 40, 40]], np.float32)
    kps, done = bub.complete_poses([a, b], cand, boxes)
    np.testing.assert_allclose(kps[0][1], (9, 9, .8))  # not (8, 8): taken; not (60, 60): outside
    assert done[0].tolist() == [False, True] and not done[1].any()


def test_completion_never_gives_one_joint_to_two_poses():
    """§III-D: the point added "has not been associated to any other poses".
    When every candidate in the box is taken, the joint stays missing (the
    old fallback took the cropped map's highest pixel: another pose's peak)."""
    cand = candidates({0: [(5, 5, 1.0), (30, 5, 1.0)], 1: [(8, 8, .9), (70, 70, .9)]})
    a = pose([0, -1], 0, 0.9)              # missing joint 1 ...
    b = pose([1, 2], 1, 0.8)               # ... whose only candidate in a's box is b's
    boxes = np.array([[0, 0, 40, 40], [0, 0, 40, 40]], np.float32)
    kps, done = bub.complete_poses([a, b], cand, boxes)
    assert not done[0].any() and tuple(kps[0][1]) == (0, 0, 0)
    np.testing.assert_allclose(kps[1][1], (8, 8, .9))


# ----------------------------------------------------------------------------- helpers
def test_extend_boxes_and_prediction_coordinates_round_trip():
    np.testing.assert_allclose(bub.extend_boxes([[10, 20, 100, 50]], 0.1), [[0, 15, 120, 60]])
    pred = bub.Prediction(np.zeros((1, 60, 80)), np.zeros((2, 60, 80)), 4, (640, 480), (320, 240))
    xy = np.array([[0.0, 0.0], [639.0, 479.0], [123.4, 56.7]])
    np.testing.assert_allclose(pred.to_image(pred.to_map(xy)), xy, atol=1e-9)
    # Image px 3.5 -> base px (3.5 + .5) * 0.5 - .5 = 1.5, the centre of map pixel 0 at stride 4.
    np.testing.assert_allclose(pred.to_map([[3.5, 3.5]]), [[0.0, 0.0]], atol=1e-12)


def test_unmirror_brings_the_mirror_images_targets_back():
    """The flip test's ``unmirror`` applied to the targets of the mirror image
    (drawn from mirrored keypoints at stride 4) gives the image's own."""
    sk, st = bub.Skeleton("aic"), 4
    rng = np.random.default_rng(1)
    kp = np.concatenate([rng.uniform(8, 120, (3, sk.J, 2)), np.full((3, sk.J, 1), 2)], -1).astype(np.float32)
    flipped = kp[:, sk.flip].copy()
    flipped[..., 0] = 127 - flipped[..., 0]                        # a 128 px wide input

    def targets(k):
        maps = torch.from_numpy(bub.confidence_maps(k, (32, 32), st, 6.0))
        fields = torch.from_numpy(bub.direction_fields(k, sk.limbs, (32, 32), st, 4.0)[0])
        return maps[None], fields[None]
    S, L = targets(kp)
    S_back, L_back = bub.unmirror(*targets(flipped), sk)
    np.testing.assert_allclose(S_back.numpy(), S.numpy(), atol=1e-6)
    np.testing.assert_allclose(L_back.numpy(), L.numpy(), atol=1e-5)
    assert np.abs(L.numpy()).sum() > 100                           # fields were drawn


def test_flip_test_predictions_are_mirror_equivariant():
    """With the flip test, a mirrored image gives exactly the mirrored
    prediction (each is the average of the same two passes); without, an
    untrained network's do not."""
    sk, cfg = bub.Skeleton("toy"), bub.toy_config()
    torch.manual_seed(0)
    model = bub.PoseNetwork(cfg, sk).eval()
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 96, 3), np.uint8))
    for flip_test in (True, False):
        cfg.flip_test = flip_test
        p = bub.infer(model, img, img.size, cfg, "cpu")
        q = bub.infer(model, ImageOps.mirror(img), img.size, cfg, "cpu")
        S, L = bub.unmirror(torch.from_numpy(q.maps)[None], torch.from_numpy(q.fields)[None], sk)
        same = np.allclose(S[0].numpy(), p.maps, atol=1e-5) and np.allclose(L[0].numpy(), p.fields, atol=1e-5)
        assert same == flip_test


def test_sub_pixel_candidates_are_exact_for_a_gaussian_peak():
    kp = np.array([[[12.3, 7.8, 2], [30.0, 20.0, 2]]], np.float32)
    maps = bub.confidence_maps(kp, (32, 48), 1, sigma=3.0)
    cand = bub.find_candidates(maps[:2], 0.1)
    np.testing.assert_allclose(cand.xy, kp[0, :, :2], atol=1e-3)


def test_sub_pixel_refinement_is_not_biased_at_the_map_border():
    """A peak on the first or last map column has one neighbour: no offset
    there (a clipped neighbour equal to the centre gave -0.5 px)."""
    kp = np.array([[[0.3, 10.0, 2], [47.0, 20.4, 2]]], np.float32)
    maps = bub.confidence_maps(kp, (32, 48), 1, sigma=3.0)
    cand = bub.find_candidates(maps[:2], 0.1)
    np.testing.assert_allclose(cand.xy, [[0.0, 10.0], [47.0, 20.4]], atol=1e-3)


def test_missing_joints_are_exported_as_zeros():
    """A joint a variant leaves missing is (0, 0, 0) in image px, so a
    result's box (and its APM/APL range) spans its joints only."""
    kp, maps, fields = two_people()
    sk = SimpleNamespace(J=3, limbs=CHAIN)
    cfg = bub.toy_config()
    pred = bub.Prediction(maps, fields, 4, (240, 160), (240, 160))
    # A box around joints 1 and 2 of A only: joint 0 stays missing without completion.
    out = bub.parse_variants(pred, np.array([[110, 100, 100, 40]]), sk, cfg, ("no_completion", "greedy"))
    for v, parse in out.items():
        missing = parse.keypoints[..., 2] == 0
        assert (parse.keypoints[missing] == 0).all(), v
    assert (out["no_completion"].keypoints[..., 2] == 0).any()


# ----------------------------------------------------------------------------- the oracle
oracle_ap = studies.oracle_ap               # walkthrough/studies.py: beyond the paper's tables


def test_oracle_parse_of_toy_crowds():
    """Ground-truth maps and fields of 200 toy scenes at the network's output
    stride (4), parsed inside the ground-truth boxes, scored with the toy's
    OKS constants: the crowds are ones a box can resolve. Measured: AP 0.952
    (it was 0.85, at stride 1, when neighbours could overlap at will)."""
    sk, cfg = bub.Skeleton("toy"), bub.toy_config()
    ap = oracle_ap(ToyScenes(1, 200, 192, sk), sk, cfg, 4)["full"]
    assert ap >= 0.95, ap


@pytest.mark.skipif(not (REAL / "test_coco.json").is_file(), reason="../shared/real_samples/coco not present")
def test_oracle_parse_recovers_the_real_coco_annotations():
    sk, cfg = bub.Skeleton("coco"), bub.Config(data="coco")
    src = bub.RecordScenes(coco_aic.read_coco(REAL / "test_coco.json", REAL), sk)
    assert oracle_ap(src, sk, cfg, 1)["full"] >= 0.95                # input resolution
    assert oracle_ap(src, sk, cfg, 4)["full"] >= 0.95                # the network's output stride


# ----------------------------------------------------------------------------- §IV: boxes, slices, counts
def test_crossing_point_of_the_jitter_curve():
    assert bub.crossing([0, 0.1, 0.2, 0.3], [0.8, 0.7, 0.5, 0.3], 0.6) == pytest.approx(0.15)
    assert bub.crossing([0, 0.1], [0.8, 0.7], 0.6) is None
    assert bub.crossing([0, 0.1], [0.5, 0.4], 0.6) == 0


def test_crowded_slice_scores_like_pycocotools():
    """The crowded slice turns people without a close neighbour into crowd
    regions; pycocotools, given the same annotations, agrees to 1e-12."""
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    sk = bub.Skeleton("toy")
    src = ToyScenes(1, 40, 192, sk)
    rng = np.random.default_rng(0)
    gts, res = [], []
    for i in range(len(src)):
        gt = bub.crowded_slice(src.ground_truth(i))
        gts += gt
        for g in gt:
            kp = np.array(g["keypoints"], float).reshape(-1, 3)
            kp[:, :2] += rng.normal(0, 3, (len(kp), 2))
            res.append({"image_id": i, "category_id": 1, "keypoints": kp.ravel().tolist(), "score": rng.random()})
    assert 0 < sum(not g["iscrowd"] for g in gts) < len(gts)
    ours = coco_keypoint_ap(gts, res, list(range(len(src))), sk.sigmas)
    coco = COCO()
    coco.dataset = {"images": [{"id": i} for i in range(len(src))], "annotations": gts,
                    "categories": [{"id": 1, "name": "person"}]}
    coco.createIndex()
    E = COCOeval(coco, coco.loadRes(res), "keypoints")
    E.params.kpt_oks_sigmas = sk.sigmas
    E.evaluate(); E.accumulate(); E.summarize()
    assert ours["AP"] == pytest.approx(E.stats[0], abs=1e-12)


def test_toy_scenes_mask_out_unannotated_figures():
    """A figure drawn but not annotated is ignore (W = 0 in every channel),
    not background."""
    sk, cfg = bub.Skeleton("toy"), bub.toy_config()
    src = ToyScenes(1, 60, 192, sk)
    i = next(i for i in range(60) if src.load(i).ignore is not None)
    scene = src.load(i)
    ignore = scene.ignore.reshape(48, 4, 48, 4).mean((1, 3)) > 0.5            # stride 4
    assert ignore.any()
    _, _, mask = bub.make_targets(scene.keypoints, scene.boxes, ignore, (48, 48), 4, sk, cfg)
    assert (mask[:, ignore] == 0).all() and (mask[:, ~ignore] > 0).any()


def test_component_counts_see_a_duplicate_box_and_completion():
    """Ground-truth maps of a toy scene, each person's box given twice (the
    second shifted: a duplicate): pose NMS removes the second pose and
    counts it as a duplicate of the matched person; one person, so no
    connection joins two people."""
    sk, cfg = bub.Skeleton("toy"), bub.toy_config()
    src = ToyScenes(1, 30, 192, sk)
    i = next(i for i in range(30) if len(src.annotation(i)[1]) == 1)
    scene, gt = src.load(i), src.ground_truth(i)
    maps = bub.confidence_maps(scene.keypoints, (48, 48), 4, cfg.sigma)
    fields, _ = bub.direction_fields(scene.keypoints, sk.limbs, (48, 48), 4, cfg.delta)
    pred = bub.Prediction(maps, fields, 4, (192, 192), (192, 192))
    boxes = bub.gt_boxes(gt)
    boxes = np.concatenate([boxes, boxes + [3, 3, 0, 0]])
    inputs = bub.candidates_and_scores(maps, fields, sk, cfg)
    parsed = bub.parse_variants(pred, boxes, sk, cfg, ("full", "greedy"), inputs)
    c = studies.component_counts(parsed, pred, inputs[0], gt, sk)
    assert c["nms_removed"] >= 1 and c["nms_duplicates"] == c["nms_removed"]
    assert c["greedy_cross"] == c["cross_refused"] == c["ours_cross"] == 0     # one person
    assert len(parsed["full"].keypoints) == 1


# ----------------------------------------------------------------------------- §IV-B1 top-down row
def ground_truth_topdown(scene_keypoints, input_size=256):
    """A ``TopDown`` whose "network" outputs the ground truth: for the crop of
    box k, a one-hot map per joint at person k's joint (MPII order), at
    stride 1 -- so the only error left is the crop -> map -> image round trip."""
    hr = pytest.importorskip("heatmap_regression")
    from common.skeleton import MPII_JOINTS
    td = object.__new__(bub.TopDown)
    td.hr, td.batch, td.device = hr, 8, "cpu"
    td.cfg = SimpleNamespace(input_size=input_size, joints=MPII_JOINTS, decode="taylor")
    td.model = SimpleNamespace(stride=1)
    td.index = bub.joint_index(MPII_JOINTS, bub.Skeleton("toy").joints)

    def maps(image, factor, affines):
        out = torch.zeros(len(affines), 16, input_size, input_size)
        for k, A in enumerate(affines):
            xy = np.rint(apply_affine(A, scene_keypoints[k, :, :2])).astype(int)
            for j, (x, y) in enumerate(xy):
                if 0 <= x < input_size and 0 <= y < input_size and scene_keypoints[k, j, 2] > 0:
                    out[k, j, y, x] = 1.0
        return out
    td.maps = maps
    return td


def test_topdown_round_trip_recovers_the_annotated_poses():
    """Crop as paper 1's training did, "predict", map back: every joint comes
    back within half a crop pixel, and the top-down row scores AP >= 0.99
    with ground-truth boxes (the same scorer as the other rows)."""
    from common.toy import render_scene
    sk = bub.Skeleton("toy")
    src = ToyScenes(1, 20, 192, sk)
    gts, res, ids = [], [], []
    for i in range(20):
        _, mpii, _, _ = render_scene(1, i, size=(192, 192))
        scene, gt = src.load(i), src.ground_truth(i)
        td = ground_truth_topdown(mpii)
        boxes = bub.gt_boxes(gt)
        kp, conf = td(scene.image, 1.0, boxes, np.ones(len(boxes)))
        side = np.array([crop_side(box_center_scale(b)[1]) for b in boxes])
        err = np.linalg.norm(kp[..., :2] - scene.keypoints[..., :2], axis=-1)
        inside = scene.keypoints[..., 2] > 0
        assert (err[inside] <= (0.5 * np.sqrt(2) * side[:, None] / 256 + 1e-6).repeat(14, 1)[inside]).all()
        gts += gt
        ids.append(i)
        res += to_coco_results(i, sk.to_dataset(kp), conf)
    assert bub.score(sk, gts, res, ids)["AP"] >= 0.99


def test_joint_names_map_paper1_onto_paper2():
    from common.skeleton import AIC_JOINTS, COCO_JOINTS, MPII_JOINTS
    idx = bub.joint_index(MPII_JOINTS, AIC_JOINTS)
    assert [MPII_JOINTS[i] for i in idx] == [n if n != "neck" else "upper_neck" for n in AIC_JOINTS]
    coco = bub.joint_index(COCO_JOINTS, bub.Skeleton("coco").joints)
    assert coco[:17].tolist() == list(range(17)) and coco[17] == -1      # the synthesized neck


def test_the_three_rows_share_one_box_list_and_one_scorer(monkeypatch):
    """evaluate(): the top-down row is run on exactly the boxes the box-
    constrained parse gets (detector, jittered, ground truth), and every row
    is scored by the same ``score``."""
    sk, cfg = bub.Skeleton("toy"), bub.toy_config()
    cfg.input_size = cfg.test_size = 96
    model = bub.PoseNetwork(cfg, sk).eval()
    src = ToyScenes(1, 3, 96, sk)
    seen = {"ours": [], "topdown": []}
    real_parse = bub.parse_variants

    def parse(pred, boxes, *a, **k):
        out = real_parse(pred, boxes, *a, **k)
        if "full" in out:
            seen["ours"].append(np.asarray(boxes).round(6).tolist())
        return out

    class Fake:
        def __call__(self, image, factor, boxes, scores):
            seen["topdown"].append(np.asarray(boxes).round(6).tolist())
            return np.zeros((len(boxes), sk.J, 3), np.float32), np.asarray(scores, np.float32)

    scored = []
    real_score = bub.score
    monkeypatch.setattr(bub, "parse_variants", parse)
    monkeypatch.setattr(bub, "score", lambda *a: scored.append(a[0]) or real_score(*a))
    rows = bub.table_rows(cfg, DetectorModel(), topdown=True, jitter=(0.0, 0.2))
    tally, per_image = bub.Tally(rows), studies.PerImage(sk)
    for rec in bub.evaluate(model, src, cfg, sk, "cpu", rows, boxes=DetectorModel(), topdown=Fake()):
        tally.add(rec)
        per_image.add(rec)
    ev = bub.paper_tables(tally, sk)
    # Per image: the detector's boxes, the ground truth's, and two jitter levels
    # of each for ours; top-down's curve is on the detector's boxes only.
    assert len(seen["ours"]) == 3 * (1 + 1 + 2 * 2) and len(seen["topdown"]) == 3 * (1 + 1 + 2)
    assert all(b in seen["ours"] for b in seen["topdown"])
    assert {"topdown", "topdown, gt boxes", "topdown jitter 0.20"} <= {r.key for r in ev["rows"]}
    assert len(scored) == len(ev["rows"]) and all(s is sk for s in scored)
    assert "topdown" in ev["crowded"] and len(per_image.runtime) == 3 and len(per_image.per_image) == 3
