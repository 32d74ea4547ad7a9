"""Paper 2 end to end: the CLI in a tiny configuration, --demo, --boxes, bad
input (one clear line or a correct empty result, never a traceback), the
training data pipeline on real COCO files, and a 2-process DDP run."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import bottom_up_bbox as bub
from common import coco_aic
from common.bub_eval import Row
from common.scenes import RecordScenes, TrainScenes
from common.toy import ToyScenes

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "real_samples" / "coco"
TINY = ["--toy-train", "16", "--toy-val", "4", "--epochs", "1", "--input-size", "96", "--test-size", "96",
        "--val-images", "2", "--log-every", "100"]


def run_cli(*args, timeout=240):
    return subprocess.run([sys.executable, str(ROOT / "bottom_up_bbox.py"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "2"})


def one_line_error(r, *words):
    assert r.returncode == 2, (r.stdout[-1000:], r.stderr[-2000:])
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for w in words:
        assert w in lines[0], lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny toy run shared by the tests below."""
    out = tmp_path_factory.mktemp("bub") / "toy"
    r = run_cli(*TINY, "--out", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    return out, r.stdout


def test_toy_run_prints_the_tables_and_writes_everything(trained):
    out, stdout = trained
    # The toy network has a box head (§V): its own boxes are the evaluation's default.
    for title in ("Tables I-II layout", "CrowdPose's OKS constants", "the network's own boxes (§V)",
                  "ground-truth boxes (upper bound)", "Table IV", "pose parsing by [3]", "without pose NMS",
                  "without pose completion", "bootstrap interval", "own score",
                  "Fig. 1 (c-d)", "Fig. 1 (a-b)", "AI Challenger score"):
        assert title in stdout, title
    for name in ("best.pt", "last.pt", "curves.png", "scene_0.png", "results.json", "results_coco.json"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "results.json").read_text())
    assert set(summary["results"]) >= set(bub.VARIANTS) | {"full, gt boxes", "jitter 0.00", "jitter 0.20",
                                                           "jitter 0.00, gt boxes", "jitter 0.50, gt boxes"}
    keys = [Row("full").key, Row("full", True, 0.2).key, Row("topdown", jitter=0.3).key,
            Row("no_nms", own_score=True).key]
    assert keys == ["full", "jitter 0.20, gt boxes", "topdown jitter 0.30", "no_nms, own score"]
    # Every printed number is kept: Table IV with its intervals, the crowded
    # slice and the jitter curves with their crossing points.
    assert set(summary["table_iv"]) == set(summary["table_iv_own"]) == set(summary["table_iv_gt"]) == set(bub.VARIANTS)
    assert {"diff", "lo", "hi"} <= set(summary["table_iv"]["greedy"])
    assert {"full", "greedy", "people"} <= set(summary["crowded"])
    assert set(summary["jitter"]) == {"the network's own boxes (§V)", "ground-truth boxes"}
    res = json.loads((out / "results_coco.json").read_text())
    assert all(len(r["keypoints"]) == 14 * 3 and "score" in r for r in res)
    assert not list(out.glob("*.tmp")) and not list(out.glob(".tmp-*"))


def test_the_studies_evaluation_adds_where_people_were_lost(trained, tmp_path, capsys):
    """walkthrough/studies.py evaluation: the same tables from the same
    records, and beside them the person-loss attribution and the component
    counts (no longer in the script's run)."""
    from walkthrough import studies
    out, _ = trained
    res = studies.main(["evaluation", "--checkpoint", str(out / "best.pt"), "--scenes", "4", "--jitter-curve", "0,0.2",
                        "--boxes", "sim", "--det-miss", "0.1", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    for title in ("Table IV", "pose NMS removed", "completion added", "joined two people", "person lists",
                  "Where each person was lost"):
        assert title in printed, title
    saved = json.loads((tmp_path / "evaluation.json").read_text())
    assert {"nms_removed", "completed", "completed_other", "greedy_cross", "cross_refused", "greedy_lists",
            "greedy_split"} <= set(saved["components"])
    # Every missed person is lost at exactly one step: the counts add up.
    lost = saved["lost"]
    assert set(lost) == {"ours", "[3]", "ours, gt boxes", "people"}
    for k in ("ours", "[3]", "ours, gt boxes"):
        assert sum(v for c, v in lost[k].items() if c != "missed") == lost[k]["missed"] <= lost["people"]
    assert {"jitter 0.00", "jitter 0.20"} <= set(res["results"]) and "jitter 0.10" not in res["results"]
    # A detector knob with the network's own boxes (the head's default) is refused, not ignored.
    with pytest.raises(SystemExit, match="--det-miss: a knob of the simulated detector"):
        studies.main(["evaluation", "--checkpoint", str(out / "best.pt"), "--scenes", "1", "--det-miss", "0.1",
                      "--out", str(tmp_path / "refused")])


def test_eval_only_with_a_detection_file(trained, tmp_path, capsys):
    out, _ = trained
    # A "detector" that finds the first ground-truth person of image 0 only,
    # plus a box wholly outside the image.
    gt = ToyScenes(1, 4, 96, bub.Skeleton("toy")).ground_truth(0)
    dets = [{"image_id": 0, "category_id": 1, "bbox": gt[0]["bbox"], "score": 0.9},
            {"image_id": 0, "category_id": 1, "bbox": [500, 500, 40, 80], "score": 0.5}]
    f = tmp_path / "dets.json"
    f.write_text(json.dumps(dets))
    bub.main(["--eval-only", "--checkpoint", str(out / "best.pt"), "--toy-val", "4", "--boxes", str(f),
              "--out", str(tmp_path / "eval")])
    printed = capsys.readouterr().out
    assert "boxes from" in printed and "Table IV" in printed and "results.json" in printed
    res = json.loads((tmp_path / "eval" / "results_coco.json").read_text())
    assert {x["image_id"] for x in res} <= {0}                       # only image 0 has boxes


@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/real_samples/coco not present")
def test_demo_on_a_real_photo_writes_figure_and_coco_json(trained, tmp_path):
    out, _ = trained
    r = run_cli("--demo", str(REAL / "000000000785.jpg"), "--checkpoint", str(out / "best.pt"),
                "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "000000000785_poses.png").is_file()
    res = json.loads((tmp_path / "000000000785_results.json").read_text())
    assert isinstance(res, list) and all(x["image_id"] == 785 for x in res)


@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/real_samples/coco not present")
def test_demo_on_a_folder_and_a_file_in_one_call(trained, tmp_path, capsys):
    out, _ = trained
    photos = tmp_path / "photos"
    photos.mkdir()
    real = sorted(REAL.glob("*.jpg"))[:2]
    for f in real:
        (photos / f.name).write_bytes(f.read_bytes())
    (photos / "notes.txt").write_text("not an image: skipped")
    (tmp_path / "holiday.jpg").write_bytes(real[0].read_bytes())
    demo = tmp_path / "demo"
    bub.main(["--demo", str(photos), str(tmp_path / "holiday.jpg"), "--checkpoint", str(out / "best.pt"),
              "--out", str(demo)])
    printed = capsys.readouterr().out
    assert "3 images" in printed and "trained on the toy scenes" in printed
    for name in [f.stem for f in real] + ["holiday"]:
        assert (demo / f"{name}_poses.png").is_file() and (demo / f"{name}_results.json").is_file()
    everyone = json.loads((demo / "results_coco.json").read_text())
    # Integer ids: the file name's number, else the image's place in the call.
    ids = {r["file_name"]: r["image_id"] for r in everyone}
    assert all(ids[f.name] == int(f.stem) for f in real if f.name in ids) and ids.get("holiday.jpg", 3) == 3
    assert json.loads((demo / "joints.json").read_text())["joints"] == list(bub.Skeleton("toy").dataset_joints)
    # A detection file with no box for these images says so, once per image.
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps([{"image_id": 999, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 1.0}]))
    bub.main(["--demo", str(photos), "--checkpoint", str(out / "best.pt"), "--boxes", str(dets), "--out", str(demo)])
    assert capsys.readouterr().out.count("warning: --boxes") == 2


def test_demo_on_a_synthetic_scene(trained, tmp_path):
    out, _ = trained
    bub.main(["--demo", "--checkpoint", str(out / "best.pt"), "--out", str(tmp_path)])
    assert (tmp_path / "toy_scene_poses.png").is_file() and (tmp_path / "toy_scene_results.json").is_file()


def test_demo_on_grayscale_rgba_16bit_and_empty_images(trained, tmp_path, capsys):
    """Every mode PIL reads becomes 8-bit RGB; a blank image gives an empty
    result. One call for the four images (a folder: one model load)."""
    out, _ = trained
    rng = np.random.default_rng(0)
    photos = tmp_path / "photos"
    photos.mkdir()
    for mode in ("L", "RGBA", "I;16", "blank"):
        if mode == "I;16":
            img = Image.fromarray((rng.random((90, 120)) * 65535).astype(np.uint16))
        elif mode == "blank":                                        # no people: an empty result
            img = Image.new("RGB", (120, 90), (128, 128, 128))
        else:
            img = Image.fromarray((rng.random((90, 120, 4)) * 255).astype(np.uint8)).convert(mode)
        img.save(photos / f"img_{mode.replace(';', '')}.png")
    bub.main(["--demo", str(photos), "--checkpoint", str(out / "best.pt"), "--out", str(tmp_path / "demo")])
    for mode in ("L", "RGBA", "I16", "blank"):
        res = json.loads((tmp_path / "demo" / f"img_{mode}_results.json").read_text())
        assert isinstance(res, list) and (res == [] if mode == "blank" else True)


def test_bad_input_gives_one_clear_line(trained, tmp_path, one_line):
    out, _ = trained
    ckpt = str(out / "best.pt")
    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    empty = tmp_path / "empty.json"
    empty.write_text("")
    bad = tmp_path / "bad.json"
    bad.write_text('[{"image_id": 0, "bbox": [1, 2, 3]}]')
    cases = [  # (command line, words its one error line names)
        (("--demo", str(tmp_path / "nope.jpg"), "--checkpoint", ckpt), ("nope.jpg", "not found")),
        (("--demo", str(REAL / "000000000785.jpg") if REAL.is_dir() else ckpt,
          "--checkpoint", str(tmp_path / "missing.pt")), ("missing.pt",)),
        (("--demo", str(text), "--checkpoint", ckpt), ("notes.jpg",)),
        (("--demo", str(text), "--checkpoint", ckpt, "--boxes", str(empty)), ("empty.json",)),   # read first
        (("--eval-only", "--checkpoint", ckpt, "--toy-val", "2", "--boxes", str(empty)), ("empty.json",)),
        (("--eval-only", "--checkpoint", ckpt, "--toy-val", "2", "--boxes", str(bad)), ("bad.json",)),
        (("--eval-only", "--checkpoint", ckpt, "--boxes", str(tmp_path / "no.json")), ("no.json",)),
        (("--eval-only",), ("--checkpoint",)),
        (("--data", "coco"), ("--data-root",)),
        (("--data", "coco", "--data-root", str(tmp_path)), (str(tmp_path),)),
        (("--input-size", "100"), ("--input-size",)),
        (("--scales", "a,b"), ("--scales",)),
        (("--eval-only", "--checkpoint", str(text)), ("notes.jpg",)),
        (("--topdown", str(tmp_path / "nope.pt")), ("nope.pt",)),                   # before any training
        (("--eval-only", "--checkpoint", ckpt, "--toy-val", "2", "--topdown", ckpt), ("best.pt",)),  # not paper 1's
    ]
    # The first as a real process (its stderr, its exit status); the rest
    # in-process, where each case costs no interpreter start.
    (args, words), *rest = cases
    one_line_error(run_cli(*args), *words)
    for args, words in rest:
        one_line(bub.main, args, *words)


def test_huge_image_is_refused_with_one_line(trained, tmp_path, monkeypatch, capsys):
    out, _ = trained
    from common import transforms
    monkeypatch.setattr(transforms, "MAX_PIXELS", 1000)
    path = tmp_path / "big.png"
    Image.new("RGB", (100, 100)).save(path)
    with pytest.raises(SystemExit) as e:
        bub.main(["--demo", str(path), "--checkpoint", str(out / "best.pt"), "--out", str(tmp_path)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "big.png" in err and "larger than" in err


def test_empty_detection_file_gives_an_empty_result(trained, tmp_path):
    out, _ = trained
    f = tmp_path / "none.json"
    f.write_text("[]")
    bub.main(["--eval-only", "--checkpoint", str(out / "best.pt"), "--toy-val", "2", "--boxes", str(f),
              "--out", str(tmp_path / "e")])
    assert json.loads((tmp_path / "e" / "results_coco.json").read_text()) == []


# ----------------------------------------------------------------------------- real COCO files
@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/real_samples/coco not present")
def test_training_samples_from_real_coco_files():
    """Reader -> crop around a person -> targets and mask, on the real files:
    crowd / keypoint-less persons are masked, every drawn joint has its peak."""
    sk, cfg = bub.Skeleton("coco"), bub.Config(data="coco")
    recs = coco_aic.read_coco(REAL / "test_coco.json", REAL)
    data = TrainScenes(RecordScenes(recs, sk), cfg, sk, 4, bub.make_targets)
    assert len(data) == 4
    for i in range(4):
        s = data[i]
        assert s["image"].shape == (3, 368, 368) and s["maps"].shape == (19, 92, 92)
        assert s["fields"].shape == (34, 92, 92) and s["mask"].shape == (19 + 34, 92, 92)
        assert torch.isfinite(s["image"]).all() and s["maps"].max() <= 1.0
    no_kp = [i for i, r in enumerate(recs) if ((r.keypoints[..., 2] > 0).sum(-1) == 0).any()]
    assert no_kp, "the real sample has persons without keypoints"
    scene = RecordScenes(recs, sk).load(no_kp[0])
    assert scene.ignore is not None and scene.ignore.any()          # their segments are W = 0


# ----------------------------------------------------------------------------- DDP
def test_two_process_ddp_run_on_toy_data(tmp_path, torchrun):
    out = tmp_path / "ddp"
    r = torchrun(ROOT / "bottom_up_bbox.py", *TINY, "--batch-size", "4", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "x 2" in r.stdout
    assert r.stdout.count("Tables I-II layout") == 1                # rank 0 alone reports
    assert (out / "best.pt").is_file()
