"""PCKh / PCK on tiny cases whose answers are worked out by hand in the comments."""
import numpy as np
import pytest

from common.metrics import (MATLAB_PARTS, format_table, part_table, pck, pck_torso, pckh,
                            torso_size)
from common.skeleton import MPII_JOINTS

J = {n: i for i, n in enumerate(MPII_JOINTS)}


def three_joint_case():
    # Two persons, three joints. Person 0: head size 10 -> 0.5 * 10 = 5 px;
    # person 1: head size 4 -> 2 px.
    gt = np.array([[[0, 0, 2], [10, 0, 2], [0, 0, 0]],     # joint 2 not annotated
                   [[5, 5, 1], [0, 0, 2], [3, 3, 2]]], float)
    pred = np.array([[[3, 4], [10, 5.01], [100, 100]],     # 5.0 (= limit), 5.01, ignored
                     [[5, 7], [0, 2.5], [3, 3]]], float)   # 2.0 (= limit), 2.5, 0.0
    return pred, gt, np.array([10.0, 4.0])


def test_pck_by_hand_including_exact_threshold():
    pred, gt, head = three_joint_case()
    rate, correct = pckh(pred, gt, head)
    # Exactly at the threshold counts as correct (official "<="); joint 2 of
    # person 0 is unannotated, so it is neither right nor wrong.
    np.testing.assert_array_equal(correct, [[True, False, False], [True, False, True]])
    np.testing.assert_allclose(rate, [2 / 2, 0 / 2, 1 / 1])


def test_mask_selects_a_subset_and_empty_joint_is_nan():
    pred, gt, head = three_joint_case()
    rate, correct = pckh(pred, gt, head, mask=gt[..., 2] == 1)  # occluded only
    assert correct.sum() == 1 and correct[1, 0]
    assert rate[0] == 1.0 and np.isnan(rate[1]) and np.isnan(rate[2])


def test_nan_prediction_is_wrong_and_bad_norm_is_refused():
    pred, gt, head = three_joint_case()
    pred[1, 2] = np.nan
    assert not pckh(pred, gt, head)[1][1, 2]
    with pytest.raises(ValueError, match="person 1"):
        pckh(pred, gt, np.array([10.0, np.nan]))
    gt[1, :, 2] = 0  # nobody to score in person 1: its unknown norm is fine
    pckh(pred, gt, np.array([10.0, np.nan]))
    with pytest.raises(ValueError, match="pred must be"):
        pck(pred[:, :2], gt, head, 0.5)


def test_pck_torso_by_hand():
    k = np.zeros((1, 16, 3))
    k[0, J["l_shoulder"]] = (10, 0, 2)
    k[0, J["r_hip"]] = (4, 8, 2)            # 3-4-5 triangle scaled: torso = 10
    k[0, J["l_wrist"]] = (50, 50, 2)
    torso = torso_size(k)
    np.testing.assert_allclose(torso, [10.0])
    pred = k[..., :2].copy()
    pred[0, J["l_wrist"]] += (0, 2)          # 2 px = 0.2 * 10: correct
    pred[0, J["r_hip"]] += (2, 0.1)          # > 2 px: wrong
    rate, correct = pck_torso(pred, k, torso)
    assert correct[0, J["l_wrist"]] and correct[0, J["l_shoulder"]] and not correct[0, J["r_hip"]]
    assert correct.sum() == 2 and np.isnan(rate[J["head_top"]])
    k[0, J["r_hip"], 2] = 0
    assert np.isnan(torso_size(k)[0])


def two_mpii_people():
    gt = np.zeros((2, 16, 3))
    gt[0, :, 2] = 2                          # person A: all 16 annotated
    for n in ("head_top", "l_shoulder", "r_shoulder"):
        gt[1, J[n], 2] = 1                   # person B: three occluded joints
    correct = gt[..., 2] > 0
    correct[0, J["l_wrist"]] = False         # A misses a wrist ...
    correct[0, J["pelvis"]] = correct[0, J["thorax"]] = False  # ... and unscored joints
    correct[1, J["head_top"]] = False        # B misses the head
    return correct, gt


def test_part_table_columns_and_weighted_total():
    correct, gt = two_mpii_people()
    row = part_table(correct, gt)
    assert list(row) == ["Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Total"]
    assert row["Head"] == pytest.approx(50.0)       # head_top: A right, B wrong
    assert row["Shoulder"] == pytest.approx(100.0)
    assert row["Wrist"] == pytest.approx(50.0)      # mean(l 0/1, r 1/1)
    assert row["Elbow"] == row["Hip"] == row["Knee"] == row["Ankle"] == pytest.approx(100.0)
    # Total pools the 14 scored joints (pelvis, thorax out; upper neck in):
    # A 13/14 right, B 2/3 -> 15/17, not the mean of joint rates (1250/14 = 89.3).
    assert row["Total"] == pytest.approx(100 * 15 / 17)
    # Official MATLAB layout: Head = mean(upper_neck 100, head_top 50).
    assert part_table(correct, gt, parts=MATLAB_PARTS)["Head"] == pytest.approx(75.0)


def test_part_table_subset_and_end_to_end():
    correct, gt = two_mpii_people()
    vis = part_table(correct, gt, mask=gt[..., 2] == 2)   # person A only
    assert vis["Total"] == pytest.approx(100 * 13 / 14) and vis["Head"] == 100.0
    occ = part_table(correct, gt, mask=gt[..., 2] == 1)   # person B only
    assert occ["Total"] == pytest.approx(100 * 2 / 3) and np.isnan(occ["Elbow"])
    # Same numbers through pckh: put predictions on or far from the truth.
    pred = gt[..., :2] + np.where(correct, 0.0, 100.0)[..., None]
    _, c = pckh(pred, gt, np.array([10.0, 10.0]))
    assert part_table(c, gt) == part_table(correct, gt)


def test_format_table_is_aligned():
    correct, gt = two_mpii_people()
    text = format_table({"all": part_table(correct, gt),
                         "occluded": part_table(correct, gt, mask=gt[..., 2] == 1)})
    lines = text.splitlines()
    assert len(lines) == 3 and len({len(s) for s in lines}) == 1
    assert lines[0].split() == ["Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Total"]
    assert lines[1].split() == ["all", "50.0", "100.0", "100.0", "50.0", "100.0", "100.0", "100.0", "88.2"]
    assert lines[2].split()[3] == "-"
