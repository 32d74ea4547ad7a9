"""Paper 1's lab bench in common/ (what heatmap_regression.py hands over to
it: data flags, a broken image's stand-in, scoring, maps at joints, map
smoothing, a table's runs), checked on hand-computed cases."""
import argparse
import warnings

import numpy as np
import pytest
import torch

from common import runs
from common.cli import UsageError
from common.skeleton import COCO_JOINTS, MPII_JOINTS
from common.sources import DATA_JOINTS, check_joints, data_root, load_or_skip, score_people
from common.transforms import gaussian_blur, values_at


def test_values_at_reads_the_nearest_map_pixel_at_the_maps_stride():
    maps = np.arange(2 * 3 * 3, dtype=float).reshape(2, 3, 3)        # (J, h, w) at stride 2
    # Map coordinate = (input - 0.5) / 2. Joint 0 at input (2.5, 0.4): map
    # (1.0, -0.05) -> pixel x 1, y 0. Joint 1 at input (4.5, 4.5): map (2, 2).
    kp = np.array([[2.5, 0.4, 2], [4.5, 4.5, 1]])
    assert values_at(maps, kp, 2).tolist() == [1.0, 9 + 8.0]
    kp[0, 2], kp[1, :2] = 0, (40.0, 1.0)                              # not annotated; outside the map
    assert np.isnan(values_at(maps, kp, 2)).all()


def test_gaussian_blur_keeps_a_constant_and_spreads_a_peak_symmetrically():
    flat = torch.full((1, 9, 9), 3.0)
    assert torch.allclose(gaussian_blur(flat, 1.0), flat)             # borders replicated
    peak = torch.zeros(1, 9, 9)
    peak[0, 4, 4] = 1.0
    out = gaussian_blur(peak, 1.0)[0]
    assert gaussian_blur(peak, 0) is peak
    assert out.argmax() == 4 * 9 + 4 and torch.allclose(out, out.T) and torch.allclose(out, out.flip(0))
    assert out.sum() == pytest.approx(1.0, abs=1e-5)                  # 3 sigma wide: no mass lost inside


class Unreadable:
    def load(self, i, reduce_per_scale):
        raise FileNotFoundError(f"/nowhere/{i}.jpg")


def test_an_unreadable_image_becomes_a_blank_broken_sample():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        img, factor, kp, center, scale, broken = load_or_skip(Unreadable(), 7, 1.0, 16, 64)
    assert broken and "skipping sample 7" in str(caught[0].message)
    assert img.size == (64, 64) and factor == 1.0 and kp.shape == (16, 3) and not kp.any()
    assert scale * 200 * 1.25 == pytest.approx(64)                     # the crop covers the blank image


class Scored:
    metric = ("PCKh@0.5", 0.5)
    occlusion_known = True


def test_score_people_with_an_unknown_head_size_says_so_and_splits_occlusion():
    gt = np.zeros((1, 16, 3))
    gt[0, :, 2] = 2
    gt[0, MPII_JOINTS.index("head_top"), :] = (0.0, 0.0, 2)
    gt[0, MPII_JOINTS.index("upper_neck"), :] = (0.0, 10.0, 1)          # head size 0.6 x ... > 0
    pred = gt[..., :2].copy()
    res = score_people(Scored(), pred, gt, [float("nan")], MPII_JOINTS)
    assert res["metric"].startswith("PCKh@0.5 (approx. head size")
    assert res["all"]["Total"] == 100.0 and res["occluded"]["Head"] == 100.0 and res["visible"]["Total"] == 100.0


def test_data_root_and_joints_are_checked_in_one_line(tmp_path):
    args = argparse.Namespace(data="mpii", data_root=None)
    with pytest.raises(UsageError, match="--data-root"):
        data_root(args)
    args.data_root = str(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no such directory"):
        data_root(args)
    args.data_root = str(tmp_path)
    assert data_root(args) == tmp_path
    check_joints(MPII_JOINTS, "lsp", "a.pt")
    assert DATA_JOINTS["coco"] == COCO_JOINTS
    with pytest.raises(UsageError, match="17 joints"):
        check_joints(COCO_JOINTS, "mpii", "a.pt")


def test_a_tables_rows_are_one_folder_each_and_train_unless_finished(tmp_path, capsys):
    args = argparse.Namespace(variant="all", out=str(tmp_path / "t"), seed=0, flag_names={"variant": "--variant"})
    plan = runs.row_runs(args, "variant", ["a", "b"], lambda v: None)
    assert [(v, sub.variant, sub.out, reuse) for v, sub, reuse in plan] == [
        ("a", "a", str(tmp_path / "t" / "a"), False), ("b", "b", str(tmp_path / "t" / "b"), False)]
    trained = []
    runs.train_rows([(v, sub, v == "b") for v, sub, _ in plan], lambda sub: trained.append(sub.variant), "Table X")
    assert trained == ["a"] and "=== Table X, b: reusing the finished run" in capsys.readouterr().out
