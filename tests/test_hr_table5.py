"""Table 5 in one command (``--variant all``): the rows trained alike, the
held-out toy split, and the paired bootstrap behind each interval."""
import json

import numpy as np
import pytest

import heatmap_regression as hr
from common import plotting, sources
from common.cli import UsageError
from common.metrics import bootstrap_total, part_table

HR_TINY = ["--toy-train", "16", "--toy-val", "4", "--input-size", "64", "--width", "0.125", "--batch-size", "8",
           "--stage-epochs", "1,1,1", "--log-every", "100"]


def test_bootstrap_total_by_hand():
    names = ("a", "b")
    gt = np.zeros((4, 2, 3))
    gt[..., 2] = 2
    a = np.array([[1, 1], [1, 0], [0, 0], [1, 1]], bool)          # 5 of 8 joints
    b = np.array([[1, 1], [1, 1], [0, 0], [1, 1]], bool)          # 6 of 8: better on person 1 only
    out = bootstrap_total({"a": a, "b": b, "same": a.copy()}, gt, names, not_scored=())
    assert out["a"]["Total"] == 62.5 and out["b"]["Total"] == 75.0
    # The Total is part_table's, the oracle the tables print.
    assert out["b"]["Total"] == part_table(b, gt, names=names, parts=(("A", ("a",)),), not_scored=())["Total"]
    assert out["b"]["diff"] == 12.5 and out["a"]["diff"] == 0.0
    # Each resample's difference is 100 x (draws of person 1) / 8 >= 0: the
    # interval cannot go below zero, and an identical row's is exactly zero.
    assert 0.0 <= out["b"]["lo"] < 12.5 < out["b"]["hi"] <= 50.0
    assert out["same"]["lo"] == out["same"]["hi"] == 0.0
    # A subset mask (e.g. occluded joints) restricts both rows alike.
    only_b = bootstrap_total({"a": a, "b": b}, gt, names, mask=np.array([[False, True]] * 4), not_scored=())
    assert only_b["a"]["Total"] == 50.0 and only_b["b"]["diff"] == 25.0


def test_single_networks_train_as_many_epochs_as_the_cascade():
    stages = lambda *argv: [(s.name, s.epochs) for s in hr.stages_to_run(hr.build_config(hr.parse_args(argv)))]
    assert stages() == [("detector", 3), ("regressor", 2), ("joint", 1)]
    assert stages("--variant", "detection") == [("detector", 6)]
    assert stages("--variant", "regression", "--stage-epochs", "2,1,1") == [("detector", 4)]
    assert stages("--variant", "regression+regression") == stages()


def test_toy_training_validation_and_test_figures_never_meet():
    streams = [sources.toy_stream(seed, split) for seed in range(4) for split in sources.TOY_SPLITS]
    assert len(set(streams)) == len(streams)
    train, val, test = sources.load_sources(hr.parse_args(["--seed", "1", "--toy-val", "7"]))
    assert (train.seed, val.seed, test.seed) == (3, 4, 5) and len(test) == len(val) == 7
    # Real data sets report on the validation (MPII) or test (LSP) split, as the paper does.
    args = hr.parse_args(["--data", "toy-crowd", "--toy-train", "1", "--toy-val", "1"])
    _, val, test = sources.load_sources(args)
    assert test is val and sources.split_name(args.data, val, test) == "validation"


def test_variant_all_trains_reuses_and_refuses(tmp_path, monkeypatch, capsys, one_line):
    out = tmp_path / "t5"
    for module, figure in ((plotting, "stage_curves"), (plotting, "pose_grid"), (hr, "figure_fig2")):
        monkeypatch.setattr(module, figure, lambda *a, **k: None)             # drawn and tested elsewhere
    rows = hr.main(HR_TINY + ["--variant", "all", "--out", str(out)])
    assert list(rows) == [v for v, _, _ in hr.TABLE5_ROWS]
    table = json.loads((out / "table5.json").read_text())
    assert table["split"] == "test" and table["people"] == 4
    cascade = table["rows"]["detection+regression"]
    assert cascade["vs_cascade"]["all"]["diff"] == 0.0 and {"visible", "occluded"} <= set(cascade)
    for v, row in table["rows"].items():
        assert row["all"]["Total"] == pytest.approx(rows[v]["Total"])
        d = row["vs_cascade"]["all"]
        assert d["lo"] <= d["diff"] <= d["hi"]
    printed = capsys.readouterr().out
    assert "Difference from the cascade's Total" in printed and "occluded joints only" in printed
    # The single networks trained 3 epochs (1 + 1 + 1), one stage.
    history = json.loads((out / "detection" / "results.json").read_text())["history"]
    assert [h["stage"] for h in history["loss"]] == ["detector"] * 3

    # Finished rows with the same flags are reused: nothing is trained again.
    def no_training(args):
        raise AssertionError(f"trained {args.variant} again")

    with monkeypatch.context() as m:
        m.setattr(hr, "run", no_training)
        assert hr.run_table5(hr.parse_args(HR_TINY + ["--variant", "all", "--out", str(out)])) == rows
    # Other flags in the same folder: one line, before anything is trained.
    before = sorted(p.stat().st_mtime_ns for p in out.rglob("*.pt"))
    one_line(hr.main, HR_TINY + ["--variant", "all", "--out", str(out), "--seed", "1"], "holds a run with other flags")
    assert sorted(p.stat().st_mtime_ns for p in out.rglob("*.pt")) == before


def test_variant_all_is_not_a_demo_or_an_evaluation(one_line):
    for extra in (["--eval-only"], ["--demo", "x.jpg"], ["--resume", "x.pt"], ["--checkpoint", "x.pt"]):
        one_line(hr.main, ["--variant", "all", *extra], "--variant all")
    with pytest.raises(UsageError):
        hr.check_args(hr.parse_args(["--variant", "all", "--eval-only"]))
