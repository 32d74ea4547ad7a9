"""A user's first hour with both scripts: every flag and output path checked
before any work (one line, exit 2), ``--resume`` that continues the saved
run exactly with its own flags, and photos far larger than the network's
input read at the size the network needs.

The checks run in-process (``main(argv)``): an argument error raises before
any data is read, so each case costs milliseconds.
"""
import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

import bottom_up_bbox as bub
import heatmap_regression as hr
from common import cli
from common.skeleton import MPII_JOINTS
from common.transforms import MAX_PIXELS, ImageError, open_for_network

BUB_TINY = ["--toy-train", "8", "--toy-val", "2", "--input-size", "64", "--test-size", "64", "--val-images", "1",
            "--log-every", "100"]
HR_TINY = ["--toy-train", "16", "--toy-val", "4", "--input-size", "64", "--width", "0.125", "--batch-size", "8",
           "--log-every", "100"]


# ----------------------------------------------------------------------------- flags
BAD_BUB = [(["--log-every", "0"], "--log-every"), (["--eta", "nan"], "--eta"), (["--hidden", "0"], "--hidden"),
           (["--scales", "1,,"], "--scales"), (["--scales", "-1,2"], "--scales"), (["--sigma", "0"], "--sigma"),
           (["--width", "inf"], "--width"), (["--epochs", "0"], "--epochs"), (["--seed", "-3"], "--seed"),
           (["--toy-train", "0"], "--toy-train")]
BAD_HR = [(["--log-every", "0"], "--log-every"), (["--width", "0"], "--width"), (["--width", "nan"], "--width"),
          (["--stage-epochs", "-1,1,1"], "--stage-epochs"), (["--stage-epochs", "1,,1"], "--stage-epochs"),
          (["--batch-size", "0"], "--batch-size"), (["--toy-val", "0"], "--toy-val")]


@pytest.mark.parametrize("argv,flag", BAD_BUB)
def test_paper2_flags_are_checked_before_any_work(argv, flag, capsys, tmp_path, one_line):
    one_line(bub.main, argv + ["--out", str(tmp_path / "run")], flag)
    assert not (tmp_path / "run").exists()                 # nothing written


@pytest.mark.parametrize("argv,flag", BAD_HR)
def test_paper1_flags_are_checked_before_any_work(argv, flag, capsys, tmp_path, one_line):
    one_line(hr.main, argv + ["--out", str(tmp_path / "run")], flag)
    assert not (tmp_path / "run").exists()


def test_number_lists_are_strict():
    assert cli.number_list("0.7,1,1.3", "--scales", "") == (0.7, 1.0, 1.3)
    assert cli.number_list("", "--jitter-curve", "", kind="fraction") == ()
    assert cli.list_values_with_minus(["--stage-epochs", "-1,1", "--seed", "-3"], ("--stage-epochs",)) == \
        ["--stage-epochs=-1,1", "--seed", "-3"]
    for text in ("1,,2", "1,x", " ,1"):
        with pytest.raises(cli.UsageError, match="--scales"):
            cli.number_list(text, "--scales", "0.7,1")


# ----------------------------------------------------------------------------- output paths
def test_out_must_be_a_writable_folder_and_nothing_is_overwritten(tmp_path, capsys, one_line):
    existing = tmp_path / "notes.txt"
    existing.write_text("mine")
    for main in (bub.main, hr.main):
        one_line(main, ["--out", str(existing)], "--out", "is a file")
        one_line(main, ["--out", str(existing / "below")], "--out", "is a file")
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (40, 30)).save(photo)
    ckpt = tmp_path / "none.pt"
    one_line(hr.main, ["--demo", str(photo), "--checkpoint", str(ckpt), "--out", str(existing)], "--out")
    one_line(bub.main, ["--demo", str(photo), "--checkpoint", str(ckpt), "--out", str(existing)], "--out")
    assert existing.read_text() == "mine"
    with pytest.raises(cli.UsageError, match="cannot write"):
        cli.check_out_dir("/proc/not-a-folder-here/run")            # not writable, even as root
    assert cli.check_out_dir(tmp_path / "new" / "run") == tmp_path / "new" / "run"
    assert not (tmp_path / "new").exists()                           # checked, not made


def test_demo_without_a_checkpoint_says_how_to_get_one_instead_of_training(tmp_path, capsys, monkeypatch, one_line):
    monkeypatch.chdir(tmp_path)
    one_line(bub.main, ["--demo"], "--checkpoint", "python bottom_up_bbox.py")
    assert not (tmp_path / "runs" / "toy").exists()


# ----------------------------------------------------------------------------- resume
def interrupt_after_first_checkpoint(monkeypatch):
    """A Ctrl-C right after the first ``last.pt`` is written."""
    real = cli.note_checkpoint

    def note(path):
        real(path)
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "note_checkpoint", note)


def test_paper2_resume_without_flags_continues_the_saved_run_exactly(tmp_path, capsys, monkeypatch, one_line):
    flags = BUB_TINY + ["--epochs", "2", "--sigma", "6", "--eta", "0.4"]       # none of them the default
    straight = bub.main(flags + ["--out", str(tmp_path / "straight")])
    with monkeypatch.context() as m:
        interrupt_after_first_checkpoint(m)
        with pytest.raises(SystemExit) as e:
            bub.main(flags + ["--out", str(tmp_path / "split")])
    assert e.value.code == 130
    capsys.readouterr()
    resumed = bub.main(["--resume", str(tmp_path / "split" / "last.pt")])     # no other flag
    out = capsys.readouterr().out
    assert "resuming" in out and "1 of 2 epochs done" in out and "8 train / 2 val" in out
    assert resumed["config"] == straight["config"]
    assert resumed["history"]["loss"] == straight["history"]["loss"]
    assert resumed["results"] == straight["results"]
    saved = json.loads((tmp_path / "split" / "results.json").read_text())      # --out: the run's own folder
    assert saved["results"] == json.loads((tmp_path / "straight" / "results.json").read_text())["results"]
    # A flag given again must agree with the saved run's.
    one_line(bub.main, ["--resume", str(tmp_path / "split" / "last.pt"), "--sigma", "8"],
             "--sigma", "6", "saved run")


def test_paper1_resume_without_flags_continues_the_saved_run_exactly(tmp_path, capsys, monkeypatch, one_line):
    flags = HR_TINY + ["--stage-epochs", "2,1,1", "--variant", "detection"]
    straight = hr.main(flags + ["--out", str(tmp_path / "straight")])
    with monkeypatch.context() as m:
        interrupt_after_first_checkpoint(m)
        with pytest.raises(SystemExit):
            hr.main(flags + ["--out", str(tmp_path / "split")])
    capsys.readouterr()
    resumed = hr.main(["--resume", str(tmp_path / "split" / "last.pt")])
    out = capsys.readouterr().out
    # "Detection only" trains as many epochs as the cascade's three stages: 2 + 1 + 1.
    assert "resuming" in out and "epoch 1 of 4 done" in out and "16 train / 4 val" in out
    assert resumed["final"] == straight["final"]
    assert [h["loss"] for h in resumed["history"]["loss"]] == [h["loss"] for h in straight["history"]["loss"]]
    one_line(hr.main, ["--resume", str(tmp_path / "split" / "last.pt"), "--arch", "vgg"],
             "--arch", "residual")
    # Each script refuses the other's checkpoint in one line.
    one_line(bub.main, ["--resume", str(tmp_path / "split" / "last.pt")], "bottom_up_bbox.py checkpoint")
    broken = tmp_path / "broken.pt"
    broken.write_bytes((tmp_path / "split" / "last.pt").read_bytes()[:1000])
    one_line(hr.main, ["--resume", str(broken)], "broken.pt", "truncated or corrupt")
    empty = tmp_path / "empty"
    empty.mkdir()
    one_line(hr.main, ["--demo", str(empty), "--checkpoint", str(broken)], "no image in it")


# ----------------------------------------------------------------------------- large photos
def test_a_photo_far_larger_than_the_input_is_decoded_small(tmp_path):
    big = tmp_path / "big.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (1600, 4000, 3), np.uint8)).save(big, quality=80)
    img, size = open_for_network(big, 368)
    assert size == (4000, 1600) and max(img.size) == 368
    img, size = open_for_network(big, 368, by_height=True)
    assert img.height == 368 and abs(img.width - 920) <= 1
    small = tmp_path / "small.png"
    Image.new("RGB", (100, 50)).save(small)
    assert open_for_network(small, 368)[0].size == (100, 50)              # never enlarged


def test_a_photo_above_the_project_limit_is_one_line_without_pil_warnings(tmp_path):
    # Above the project's 120 Mpx and PIL's warning (89 Mpx), below PIL's own
    # error (179 Mpx): the project's check must answer, and no warning escape.
    side = int(np.sqrt(1.3 * MAX_PIXELS))
    huge = tmp_path / "huge.png"
    # A PNG header claiming side x side pixels (no pixel data is needed to be refused).
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    huge.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")                   # any warning would fail the call
        with pytest.raises(ImageError, match="larger than 120000000"):
            open_for_network(huge, 368)


# ----------------------------------------------------------------------------- demos for real use
def test_paper1_demo_takes_many_images_and_a_person_per_box(tmp_path, capsys):
    from dataclasses import asdict
    from common import harness
    cfg = hr.toy_config("residual")
    ckpt = tmp_path / "best.pt"                              # untrained: the plumbing is what is tested
    harness.save_checkpoint(ckpt, {"model": hr.Cascade(cfg).state_dict(), "extra": {"config": asdict(cfg)}})
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (3000, 2000), (90, 120, 150)).save(photos / "12.jpg")
    Image.new("RGB", (300, 200), (90, 120, 150)).save(photos / "beach.png")
    boxes = [[100.0, 200.0, 400.0, 1200.0], [2000.0, 100.0, 300.0, 900.0]]
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps([{"image_id": 12, "category_id": 1, "bbox": b, "score": 0.9} for b in boxes]))
    hr.main(["--demo", str(photos), "--checkpoint", str(ckpt), "--boxes", str(dets), "--out", str(tmp_path / "d")])
    out = capsys.readouterr().out
    assert "no boxes for image_id 13 (beach.png)" in out                # not a number: above the numbered ones
    pose = json.loads((tmp_path / "d" / "12_pose.json").read_text())
    assert pose["image_id"] == 12 and pose["size"] == [3000, 2000] and pose["joints"] == list(MPII_JOINTS)
    assert [p["box"] for p in pose["people"]] == boxes
    for p, (x, y, w, h) in zip(pose["people"], boxes):               # joints in the file's pixels, in the crop
        xy = np.array(p["keypoints"])[:, :2]
        side = 1.25 * max(w, h)
        assert (np.abs(xy - [x + w / 2, y + h / 2]) <= side / 2 + 1).all()
    assert (tmp_path / "d" / "12_pose.png").is_file() and (tmp_path / "d" / "beach_pose.png").is_file()


def test_image_ids_never_collide_and_duplicate_names_are_refused(tmp_path):
    from common.transforms import image_files, image_ids
    for name in ("2.jpg", "a.jpg", "000000000785.jpg"):
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    files = image_files([tmp_path])
    assert dict(zip((f.name for f in files), image_ids(files))) == {"000000000785.jpg": 785, "2.jpg": 2,
                                                                     "a.jpg": 786}
    (tmp_path / "x").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "x" / "a.png")
    with pytest.raises(ValueError, match="share the name 'a'"):
        image_files([tmp_path, tmp_path / "x"])


def test_resume_keeps_paths_resolved_and_names_flags_as_typed(tmp_path, monkeypatch):
    args = bub.parse_args(["--boxes", "dets.json", "--box-score", "--data-root", "data"])
    monkeypatch.chdir(tmp_path)
    saved = cli.run_flags(args)
    assert saved["boxes"] == str(tmp_path / "dets.json") and saved["data_root"] == str(tmp_path / "data")
    assert cli.run_flags(bub.parse_args(["--boxes", "gt"]))["boxes"] == "gt"
    again = bub.parse_args(["--resume", "x.pt", "--no-box-score", "--data-root", "/elsewhere"])
    with pytest.raises(cli.UsageError, match="--box-score False differs"):
        cli.resume_flags(again, saved, "x.pt")
    again = bub.parse_args(["--resume", "x.pt", "--data-root", "/elsewhere"])
    assert cli.resume_flags(again, saved, "x.pt").data_root == "/elsewhere"      # a moved data set
