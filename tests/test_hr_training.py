"""Paper 1 end to end: data pipeline, staged training, resume, DDP, the CLI,
bad input, and the real MPII samples."""
import json
import os
import subprocess
import sys
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import heatmap_regression as hr
from common import demo, harness, sources
from common.backbones import VGG16, ResNet
from common.cli import UsageError
from common.crops import BOX_MARGIN
from common.skeleton import MPII_JOINTS
from common.sources import RecordSource, ToySource
from common.toy import render_person
from common.transforms import (IMAGENET_MEAN, IMAGENET_STD, apply_affine, crop_matrix, invert_affine, to_tensor,
                               warp_image)

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "real_samples"
TINY = ["--toy-train", "32", "--toy-val", "8", "--stage-epochs", "1,1,1", "--input-size", "64",
        "--batch-size", "8", "--log-every", "100"]


def tiny_cfg(variant="detection+regression", epochs=(1, 1, 1)):
    cfg = hr.toy_config("residual")
    cfg.input_size, cfg.batch_size, cfg.variant = 64, 8, variant
    # Half the toy's crop: twice its target sizes keep the same peak in map
    # pixels (sigma 0.64), not a sub-pixel spike.
    cfg.sigma, cfg.disk_radius = 2 * cfg.sigma, 2 * cfg.disk_radius
    for s, e in zip(cfg.stages, epochs):
        s.epochs = e
    return cfg


def run_cli(*args, timeout=240):
    return subprocess.run([sys.executable, str(ROOT / "heatmap_regression.py"), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})


# ----------------------------------------------------------------------------- crops
def test_to_tensor_is_imagenet_normalisation_bit_for_bit():
    """(H, W, 3) uint8, from PIL or numpy -> (3, H, W): (x / 255 - mean) / std
    in float32, exactly the numpy formula, without a read-only warning."""
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), np.uint8)
    want = ((rgb.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for image in (rgb, Image.fromarray(rgb)):
            got = to_tensor(image)
            assert got.dtype == torch.float32 and got.is_contiguous()
            assert np.array_equal(got.numpy(), want)


def test_affine_crop_round_trip_is_sub_pixel():
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 300, (20, 2))
    A = crop_matrix((150.0, 140.0), 237.0, 128, rot_deg=33.0, flip=True)
    assert np.abs(apply_affine(invert_affine(A), apply_affine(A, pts)) - pts).max() < 1e-9
    # The image follows the points: a bright 2x2 block lands where A says.
    img = np.zeros((200, 300, 3), np.uint8)
    img[99:101, 149:151] = 255                                # centred on (149.5, 99.5)
    A = crop_matrix((150.0, 100.0), 100.0, 100, rot_deg=20.0, flip=True)
    w = warp_image(Image.fromarray(img), A, 100)[..., 0].astype(float)
    ys, xs = np.mgrid[:100, :100]
    centroid = np.array([(w * xs).sum(), (w * ys).sum()]) / w.sum()
    assert np.abs(centroid - apply_affine(A, [149.5, 99.5])).max() < 0.1


def test_toy_occlusion_flags_are_honest():
    # A joint flagged occluded has a non-owner label on top of it: its pixel
    # colour differs from the colours of the limbs that meet there.
    flags = np.stack([render_person(3, i)[1][:, 2] for i in range(200)])
    assert set(np.unique(flags)) <= {1, 2}
    assert 0.05 < (flags == 1).mean() < 0.3          # occlusion is common, not dominant
    a = render_person(3, 7)
    assert np.array_equal(a[0], render_person(3, 7)[0])   # deterministic per (seed, index)


def test_toy_figures_are_rendered_once_and_handed_out_as_copies(monkeypatch):
    src = ToySource(3, 5)
    img, _, kp, _, _ = src.load(2)
    kp[:] = -1                                       # a caller scribbling on its keypoints ...
    monkeypatch.setattr(sources, "render_person", None)   # ... and no second rendering
    img2, _, kp2, _, _ = src.load(2)
    want = render_person(3, 2)
    assert np.array_equal(np.asarray(img2), want[0]) and np.array_equal(kp2, want[1])


def test_flip_test_is_the_toy_default_and_off_for_the_papers_protocol():
    assert hr.build_config(hr.parse_args([])).flip_test
    assert not hr.build_config(hr.parse_args(["--no-flip-test"])).flip_test
    assert not hr.paper_config("residual").flip_test and not hr.paper_config("vgg").flip_test


# ----------------------------------------------------------------------------- training
def test_short_training_lowers_both_losses():
    torch.manual_seed(0)
    cfg = tiny_cfg()
    model = hr.Cascade(cfg)
    data = hr.PoseData(ToySource(0, 16), cfg, model.stride, train=True)
    batch = torch.utils.data.default_collate([data[i] for i in range(16)])
    for stage in cfg.stages[:2]:
        model.requires_grad_(False)
        params = list(hr.stage_parameters(model, stage))
        for p in params:
            p.requires_grad_(True)
        opt = hr.make_optimizer(stage, params)           # the toy schedule's own lr
        losses = []
        for _ in range(25):
            loss = hr.stage_loss(model, model, stage, batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert np.mean(losses[-3:]) < 0.8 * losses[0], (stage.name, losses)


def test_resume_continues_identically(tmp_path):
    rt = harness.setup_runtime("cpu")
    cfg = tiny_cfg("detection", epochs=(2, 1, 1))
    train, val = ToySource(0, 16), ToySource(1, 4)

    def fresh(seed):
        torch.manual_seed(seed)
        m = hr.Cascade(cfg)
        return m, hr.PoseData(train, cfg, m.stride, True), hr.PoseData(val, cfg, m.stride, False)

    torch.manual_seed(0)
    m1, t1, v1 = fresh(0)
    hr.train(cfg, m1, t1, v1, rt, tmp_path / "straight", log_every=100)
    cfg.stages[0].epochs = 1                              # stop after epoch 1 ...
    m2, t2, v2 = fresh(0)
    hr.train(cfg, m2, t2, v2, rt, tmp_path / "split", log_every=100)
    cfg.stages[0].epochs = 2                              # ... and resume for epoch 2
    m3, t3, v3 = fresh(123)                               # different init: all must come from the file
    hr.train(cfg, m3, t3, v3, rt, tmp_path / "split", resume=tmp_path / "split" / "last.pt", log_every=100)
    for (k, a), b in zip(m1.state_dict().items(), m3.state_dict().values()):
        assert torch.equal(a, b), k


def test_nonfinite_loss_stops_and_keeps_last_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "run"
    args = TINY + ["--out", str(out)]
    real = hr.regression_loss
    monkeypatch.setattr(hr, "regression_loss", lambda *a: real(*a) * float("nan"))
    with pytest.raises(SystemExit) as e:
        hr.main(args)
    assert e.value.code == 2
    ckpt = harness.load_checkpoint(out / "last.pt")      # written after stage 1, intact
    assert ckpt["extra"]["stage_index"] == 0 and ckpt["epoch"] == 1


def test_corrupt_image_in_a_data_set_is_skipped_and_counted(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    from common.datasets import PersonRecord
    rec = PersonRecord(image=str(bad), keypoints=np.zeros((16, 3), np.float32),
                       center=np.array([50.0, 50.0], np.float32), scale=1.0)
    cfg = tiny_cfg()
    with pytest.warns(UserWarning, match="bad.jpg"):
        s = hr.PoseData(RecordSource([rec]), cfg, 4, train=True)[0]
    assert s["broken"] and s["mask"].sum() == 0


# ----------------------------------------------------------------------------- CLI
def test_cli_end_to_end_train_eval_demo(tmp_path, capsys):
    out = tmp_path / "run"
    r = run_cli(*TINY, "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "Table 5 layout" in r.stdout and "occluded joints: cascade" in r.stdout
    for f in ("best.pt", "last.pt", "curves.png", "fig2.png", "predictions.png", "results.json"):
        assert (out / f).is_file(), f
    res = json.loads((out / "results.json").read_text())
    assert set(res["final"]) == {"Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Total"}

    # Evaluation and the demo in-process (the training above was the real process).
    hr.main(["--eval-only", "--checkpoint", str(out / "best.pt"), "--toy-val", "8", "--flip-test",
             "--out", str(tmp_path / "eval")])
    assert "PCKh@0.5" in capsys.readouterr().out
    assert json.loads((tmp_path / "eval" / "results.json").read_text())["all"]["Total"] >= 0

    photo = tmp_path / "photo.jpg"
    Image.fromarray(render_person(5, 0)[0]).save(photo)
    hr.main(["--demo", str(photo), "--checkpoint", str(out / "best.pt"), "--out", str(tmp_path / "demo")])
    stdout = capsys.readouterr().out
    assert (tmp_path / "demo" / "photo_pose.png").is_file() and "head_top" in stdout
    pose = json.loads((tmp_path / "demo" / "photo_pose.json").read_text())
    assert pose["joints"][0] == "r_ankle" and len(pose["people"][0]["keypoints"]) == 16
    assert "toy" in stdout                                                       # the note on toy checkpoints


def _one_line_error(r, *words):
    assert r.returncode != 0
    err = r.stderr.strip()
    assert "Traceback" not in r.stderr and len(err.splitlines()) == 1, r.stderr
    for w in words:
        assert w in err, err


def test_bad_input_gives_one_clear_line(tmp_path, one_line):
    _one_line_error(run_cli("--data", "mpii"), "--data-root")          # a real process; the rest in-process
    one_line(hr.main, ["--data", "mpii", "--data-root", str(tmp_path)], str(tmp_path), "valid.json")
    (tmp_path / "annot").mkdir()
    (tmp_path / "images").mkdir()
    (tmp_path / "annot" / "train.json").write_text("[{\"image\": 1}")     # malformed
    (tmp_path / "annot" / "valid.json").write_text("[]")
    one_line(hr.main, ["--data", "mpii", "--data-root", str(tmp_path)], "train.json")
    one_line(hr.main, ["--demo", str(tmp_path / "nope.jpg"), "--checkpoint", "x.pt"], "nope.jpg")
    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    ckpt = tmp_path / "c.pt"
    one_line(hr.main, ["--demo", str(text), "--checkpoint", str(ckpt)], "c.pt")
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, wrong)
    one_line(hr.main, [*TINY, "--pretrained", str(wrong), "--out", str(tmp_path / "r")], "wrong.pth")
    one_line(hr.main, ["--stage-epochs", "1,x,1"], "--stage-epochs")


def test_paper_input_sizes_are_accepted_and_bad_ones_named():
    # §3.1: VGG at 380 px (not a multiple of 32); §3.2: residual at 256 px.
    for arch, size in (("vgg", 380), ("residual", 256)):
        cfg = hr.build_config(hr.parse_args(["--data", "mpii", "--arch", arch]))
        assert cfg.input_size == size and size % hr.input_multiple(cfg) == 0
    with pytest.raises(UsageError, match="multiple of 64"):
        hr.build_config(hr.parse_args(["--data", "mpii", "--input-size", "224"]))


def test_demo_on_a_non_image_names_the_file(tmp_path, one_line):
    cfg = tiny_cfg()                                      # an untrained checkpoint is enough to get that far
    ckpt = tmp_path / "best.pt"
    harness.save_checkpoint(ckpt, {"model": hr.Cascade(cfg).state_dict(), "extra": {"config": asdict(cfg)}})
    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    one_line(hr.main, ["--demo", str(text), "--checkpoint", str(ckpt), "--out", str(tmp_path / "demo")],
             "notes.jpg", "image")


# ----------------------------------------------------------------------------- DDP
def test_two_process_ddp_run_on_toy_data(tmp_path, torchrun):
    out = tmp_path / "ddp"
    r = torchrun(ROOT / "heatmap_regression.py", *TINY, "--variant", "detection", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "x 2" in r.stdout                             # both ranks took part
    assert r.stdout.count("Table 5 layout") == 1         # rank 0 alone reports and writes
    assert (out / "best.pt").is_file()


# ----------------------------------------------------------------------------- real data
@pytest.mark.skipif(not (REAL / "mpii" / "test_mpii.json").is_file(),
                    reason="../shared/real_samples/mpii not present")
def test_pipeline_overfits_the_five_real_mpii_samples():
    """Reader -> crop -> targets -> compact cascade -> PCKh on real MPII files."""
    from common.datasets import read_mpii_json
    recs = read_mpii_json(REAL / "mpii" / "test_mpii.json", REAL / "mpii")
    assert len(recs) == 5
    torch.manual_seed(0)
    cfg = hr.toy_config("residual")                       # the compact cascade
    model = hr.Cascade(cfg)
    data = hr.PoseData(RecordSource(recs, mpii_shift=True), cfg, model.stride, train=False)
    batch = torch.utils.data.default_collate([data[i] for i in range(5)])
    # Detector first, then both networks (stages 1 and 3 of §3.1).
    for stage, steps in ((hr.Stage("detector", 1, "adam", 2e-3, 2e-3), 60),
                         (hr.Stage("joint", 1, "adam", 2e-3, 2e-3), 120)):
        opt = hr.make_optimizer(stage, model.parameters())
        for _ in range(steps):
            loss = hr.stage_loss(model, model, stage, batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
    res = hr.evaluate(model, data, harness.setup_runtime("cpu"))
    assert "approx. head size" in res["metric"]           # JSON only: labelled approximation
    assert res["all"]["Total"] == 100.0, res["all"]


# ----------------------------------------------------------------------------- issue fixes
def test_each_stage_continues_the_epoch_count_so_crops_differ(tmp_path):
    # One epoch counter across the schedule: stage 2's first epoch must not
    # replay stage 1's crops and order (sampler and augmentation seeds).
    rt = harness.setup_runtime("cpu")
    cfg = tiny_cfg(epochs=(2, 1, 1))
    model = hr.Cascade(cfg)
    seen = []

    class Recording(hr.PoseData):
        def set_epoch(self, epoch):
            seen.append(epoch)
            super().set_epoch(epoch)

    train = Recording(ToySource(0, 8), cfg, model.stride, True)
    val = hr.PoseData(ToySource(1, 2), cfg, model.stride, False)
    hr.train(cfg, model, train, val, rt, tmp_path, log_every=100)
    assert seen == [0, 1, 2, 3]


def test_a_last_batch_of_one_never_reaches_batchnorm(tmp_path):
    # 9 people, batch 8: the leftover single person would make BatchNorm fail
    # ("Expected more than 1 value per channel") at 32 px, where maps are 1x1.
    rt = harness.setup_runtime("cpu")
    cfg = tiny_cfg()
    cfg.input_size = 32
    model = hr.Cascade(cfg)
    train = hr.PoseData(ToySource(0, 9), cfg, model.stride, True)
    val = hr.PoseData(ToySource(1, 2), cfg, model.stride, False)
    history = hr.train(cfg, model, train, val, rt, tmp_path, log_every=100)
    assert len(history["loss"]) == 3
    cfg.batch_size = 1                                   # asked for: refused in one line
    with pytest.raises(UsageError, match="BatchNorm needs 2 or more images per batch"):
        hr.train(cfg, model, train, val, rt, tmp_path, log_every=100)


def fake_torchvision_file(path, cls, **kw):
    """torchvision's key names and shapes, stored as broadcast zeros (a few
    hundred kB instead of 240 MB): enough for every key and shape check."""
    with torch.device("meta"):
        state = cls(**kw).state_dict()
    torch.save({k: torch.zeros((), dtype=v.dtype).expand(v.shape) for k, v in state.items()}, path)
    return path


@pytest.mark.filterwarnings("ignore:for .*copying from a non-meta parameter")   # meta-device load
@pytest.mark.parametrize("arch, cls, kw, name", [
    ("residual", ResNet, {"depth": 152}, "resnet152-394f9c45.pth"),
    ("vgg", VGG16, {}, "vgg16-397923af.pth")])
def test_pretrained_weights_on_the_compact_toy_network_is_one_line(tmp_path, capsys, arch, cls, kw, name):
    weights = fake_torchvision_file(tmp_path / name, cls, **kw)
    with pytest.raises(SystemExit) as e:
        hr.main([*TINY, "--arch", arch, "--pretrained", str(weights), "--out", str(tmp_path / "r")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert str(weights) in err and "--width 1" in err, err
    # ... and with --width 1 the same file fits the detector (checked on the
    # meta device: names and shapes, no 60 M parameters allocated).
    cfg = hr.build_config(hr.parse_args(["--arch", arch, "--pretrained", str(weights), "--width", "1"]))
    with torch.device("meta"):
        hr.Cascade(cfg).first.load_imagenet(weights)


def test_demo_crops_the_way_training_does(tmp_path, monkeypatch):
    # Training crops a square of 1.25 x the person's height (BOX_MARGIN); the
    # demo assumes the person fills the photo's height and must do the same.
    cfg = tiny_cfg()
    ckpt = tmp_path / "best.pt"
    harness.save_checkpoint(ckpt, {"model": hr.Cascade(cfg).state_dict(), "extra": {"config": asdict(cfg)}})
    photo = tmp_path / "tall.png"
    Image.new("RGB", (100, 160), (90, 120, 150)).save(photo)
    boxes, real = [], demo.crop_matrix
    monkeypatch.setattr(demo, "crop_matrix", lambda c, box, *a, **k: boxes.append(box) or real(c, box, *a, **k))
    hr.main(["--demo", str(photo), "--checkpoint", str(ckpt), "--out", str(tmp_path / "demo")])
    # The photo is first shrunk to the input's height (open_for_network):
    # the crop is 1.25 x the height of the image the demo works on.
    assert boxes == [pytest.approx(BOX_MARGIN * min(160, cfg.input_size))]


def test_gt_valid_head_sizes_are_checked_against_valid_json(tmp_path):
    scipy_io = pytest.importorskip("scipy.io", reason="gt_valid.mat needs scipy")
    annot = tmp_path / "annot"
    annot.mkdir()
    (tmp_path / "images").mkdir()
    rec = {"image": "a.jpg", "center": [101.0, 51.0], "scale": 2.0,
           "joints": [[11.0, 21.0]] * 16, "joints_vis": [1] * 16}
    (annot / "train.json").write_text(json.dumps([rec]))
    (annot / "valid.json").write_text(json.dumps([rec, rec]))
    args = hr.parse_args(["--data", "mpii", "--data-root", str(tmp_path)])
    box = [[0.0, 0.0], [3.0, 4.0]]                      # corners (x1, y1), (x2, y2): 0.6 x 5 px
    scipy_io.savemat(annot / "gt_valid.mat", {"headboxes_src": np.array([box] * 3).transpose(1, 2, 0)})
    with pytest.raises(ValueError, match="gt_valid.mat"):   # 3 head boxes for 2 people
        sources.load_sources(args)
    scipy_io.savemat(annot / "gt_valid.mat", {"headboxes_src": np.array([box] * 2).transpose(1, 2, 0)})
    _, val, _ = sources.load_sources(args)
    assert [r.head_size for r in val.records] == pytest.approx([3.0, 3.0])


def test_table_head_is_the_papers_upper_neck_and_head_top(monkeypatch):
    # Tables 5-7 come from MPII's / LSP's MATLAB code: Head = mean of upper
    # neck (LSP: neck) and head top, not HRNet's head top alone.
    cfg = tiny_cfg()
    model = hr.Cascade(cfg)
    val = hr.PoseData(ToySource(1, 4), cfg, model.stride, train=False)

    def upper_neck_always_wrong(pred, gt, norm, threshold):
        correct = gt[..., 2] > 0
        correct[:, MPII_JOINTS.index("upper_neck")] = False
        return None, correct

    monkeypatch.setattr(sources, "pck", upper_neck_always_wrong)
    res = hr.evaluate(model, val, harness.setup_runtime("cpu"))
    assert res["all"]["Head"] == 50.0 and res["all"]["Shoulder"] == 100.0


def test_ctrl_c_during_training_is_one_line_naming_last_pt(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"

    def interrupted(*a):
        raise KeyboardInterrupt                          # Ctrl-C in stage 2, after stage 1's last.pt

    monkeypatch.setattr(hr, "regression_loss", interrupted)
    with pytest.raises(SystemExit) as e:
        hr.main([*TINY, "--out", str(out)])
    assert e.value.code == 130
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert str(out / "last.pt") in err and f"--resume {out / 'last.pt'}" in err, err
    assert harness.load_checkpoint(out / "last.pt")["extra"]["stage_index"] == 0
