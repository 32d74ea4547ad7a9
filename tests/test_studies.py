"""walkthrough/studies.py: each study runs end to end on a few scenes (perfect
maps, no network), writes its JSON, and says what it measured."""
import json
from pathlib import Path

import pytest

from common.detector import DetectorModel
from walkthrough import studies

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "real_samples"


def run(study, tmp_path, *extra):
    res = studies.main([study, "--scenes", "3", "--out", str(tmp_path), *extra])
    saved = json.loads((tmp_path / f"{study}.json").read_text())
    return res, saved


def test_sweep_covers_the_grid_and_the_paper_regime(tmp_path, capsys):
    res, saved = run("sweep", tmp_path)
    assert len(res) == len(studies.SWEEP_OVERLAP) * len(studies.SWEEP_TORSO) + 1
    for row in saved.values() if isinstance(saved, dict) else ():
        if isinstance(row, dict) and "regime" in row:
            for k in ("oracle, gt boxes", "oracle, detector"):
                assert {"full", "greedy"} == set(row[k]["AP"]) and {"diff", "lo", "hi"} <= set(row[k]["ours - [3]"])
                assert all(sum(v for c, v in lost.items() if c != "missed") == lost["missed"]
                           for lost in row[k]["lost"].values())
    assert "ours - [3]" in capsys.readouterr().out


def test_detector_curves_mark_the_default_point(tmp_path):
    res, _ = run("detector", tmp_path)
    curves = res["oracle"]
    assert set(curves["miss"]) == set(studies.DETECTOR_MISS) and set(curves["noise"]) == set(studies.DETECTOR_NOISE)
    assert DetectorModel().miss in curves["miss"] and 1.0 in curves["noise"]
    # Perfect maps, no miss and exact boxes: as good as the ground truth's.
    assert curves["noise"][0.0] <= curves["ours, ground-truth boxes"] + 1e-9


@pytest.mark.skipif(not (REAL / "aic").is_dir(), reason="../shared/real_samples not present")
def test_real_oracle_meets_the_bar_and_keeps_the_literal_reading(tmp_path):
    """Perfect maps of the real crowded samples, ground-truth boxes: the
    chosen readings reach AP >= 95 and >= [3] on each sample, at stride 1
    and 4, and pose NMS removes nobody; the paper's literal reading stays
    runnable beside them (it falls behind [3] on AIC and CrowdPose)."""
    res, _ = run("real", tmp_path)
    for name in ("coco", "aic", "crowdpose"):
        for stride in (1, 4):
            chosen = res[f"{name} stride {stride} chosen"]
            assert chosen["AP"]["full"] >= 0.95 and chosen["AP"]["full"] >= chosen["AP"]["greedy"] - 1e-9
            for lost in (chosen["lost"]["full"], chosen["lost at 0.9"]["full"]):
                assert lost["nms"] == 0 and lost["missed"] == 0
            assert f"{name} stride {stride} literal" in res
    assert res["aic stride 4 literal"]["AP"]["full"] < res["aic stride 4 literal"]["AP"]["greedy"]


@pytest.mark.parametrize("argv", [["--det-miss", "2"], ["--det-fp", "-1"], ["--box-jitter", "-5"],
                                  ["--jitter-curve", "abc"], ["--jitter-curve", "0,1.5"]])
def test_the_evaluations_knobs_are_checked_before_any_work(argv, capsys):
    with pytest.raises(SystemExit) as e:
        studies.parse_args(["evaluation", *argv])
    assert e.value.code == 2 and argv[0] in capsys.readouterr().err
