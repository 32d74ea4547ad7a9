"""Paper 1 as paper 2's top-down baseline: the skeleton is the run's
(``Config.joints``), person crops of toy crowds, COCO and AI Challenger, and
the one crop convention (``box_center_scale``) the top-down row shares.

Checked against independent constructions: a direct warp of the scene, the
toy's own head size, literal flip permutations, real COCO files and an AI
Challenger fixture in its official layout.
"""
import json
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import heatmap_regression as hr
from common.coco_aic import read_coco
from common.crops import box_center_scale, crop_side
from common.skeleton import AIC_JOINTS, COCO_JOINTS, MPII_FLIP, MPII_JOINTS, MPII_TO_AIC, joint_flip
from common.sources import BoxRecordSource, ToyCrowdSource, load_sources, toy_crowd_head_size
from common.toy import render_scene, toy_head_size
from common.transforms import apply_affine, crop_matrix, to_tensor, warp_image

REAL_COCO = Path(__file__).resolve().parents[1].parent / "shared" / "real_samples" / "coco"
TINY = ["--stage-epochs", "1,1,1", "--input-size", "64", "--log-every", "1000"]
# The paper's full-size networks at 1/16 width: enough to run every code path
# of --data coco / aic in seconds.
TINY_PAPER_NET = TINY + ["--width", "0.0625", "--batch-size", "4"]


# ----------------------------------------------------------------------------- crop convention
def test_box_center_scale_is_a_square_of_1_25_times_the_longer_side():
    center, scale = box_center_scale((10.0, 20.0, 40.0, 100.0))
    assert center.tolist() == [30.0, 70.0] and scale == pytest.approx(0.5)
    assert crop_side(scale) == pytest.approx(125.0)                   # 1.25 x max(w, h)
    _, wide = box_center_scale(np.array([0, 0, 80, 30], np.float32))
    assert crop_side(wide) == pytest.approx(100.0)
    _, empty = box_center_scale((5, 5, 0, 0))                          # degenerate: 1 px, not 0
    assert crop_side(empty) == pytest.approx(1.25)


def crowd_dataset(n_scenes=12, size=128, seed=1):
    cfg = hr.toy_crowd_config("residual")
    cfg.input_size = size
    return hr.PoseData(ToyCrowdSource(seed, n_scenes), cfg, 4, train=False)


def test_toy_crowd_crops_are_centred_on_the_box_and_keep_the_neighbours():
    data = crowd_dataset()
    src, out = data.source, data.cfg.input_size
    assert len(src) == sum(len(render_scene(1, i)[1]) for i in range(12))   # one sample per person
    neighbour_pixels = 0
    for i in range(len(src)):
        scene_index, kp, box = src.people[i]
        box = box.astype(np.float64)
        s = data[i]
        A = s["affine"].numpy()
        # Centred on the box, side 1.25 x its longer side, no augmentation.
        cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
        assert apply_affine(A, [cx, cy]) == pytest.approx([(out - 1) / 2] * 2, abs=1e-6)
        assert np.sqrt(abs(np.linalg.det(A[:, :2]))) == pytest.approx(out / (1.25 * max(box[2], box[3])))
        # The crop is a direct warp of the whole scene: nothing masked out.
        scene, kps, boxes, _ = render_scene(1, scene_index, size=(192, 192))
        direct = warp_image(Image.fromarray(scene), crop_matrix((cx, cy), 1.25 * max(box[2], box[3]), out), out)
        assert torch.equal(s["image"], to_tensor(direct))
        # ... so neighbours' visible joints inside the crop show their colours there.
        for other in kps:
            if np.array_equal(other, kp):
                continue
            for x, y, v in other:
                u = np.rint(apply_affine(A, [x, y])).astype(int)
                if v == 2 and (u >= 2).all() and (u < out - 2).all():
                    here = direct[u[1], u[0]].astype(int)
                    there = scene[int(round(y)), int(round(x))].astype(int)
                    neighbour_pixels += int(np.abs(here - there).max() <= 40)
    assert neighbour_pixels >= 20, neighbour_pixels


def test_toy_crowd_head_size_follows_from_any_segment_exactly():
    # Toy figures are 2-D with fixed segment proportions: hiding the head
    # top must give the same head size from the other segments.
    src = ToyCrowdSource(0, 40)
    checked = 0
    for _, kp, box in src.people:
        if kp[MPII_JOINTS.index("head_top"), 2] > 0 and kp[MPII_JOINTS.index("upper_neck"), 2] > 0:
            cut = kp.copy()
            cut[MPII_JOINTS.index("head_top")] = 0
            assert toy_crowd_head_size(cut, box) == pytest.approx(toy_head_size(kp), rel=1e-4)
            checked += 1
    assert checked > 50


def test_toy_crowd_cli_writes_a_16_joint_checkpoint_the_top_down_row_can_use(tmp_path):
    out = tmp_path / "crowd"
    summary = hr.main(["--data", "toy-crowd", "--toy-train", "6", "--toy-val", "3", "--batch-size", "8",
                       *TINY, "--out", str(out)])
    assert summary["metric"] == "PCKh@0.5" and "occluded" in summary
    cfg, model = hr.model_from_checkpoint(out / "best.pt", "cpu")
    assert cfg.joints == MPII_JOINTS and model.joints == MPII_JOINTS
    assert model.flip.tolist() == MPII_FLIP.tolist() and model.stride == 4
    # The lead's top-down inference, step by step, on one ground-truth box.
    image, _, boxes, _ = render_scene(1, 0, size=(192, 192))
    center, scale = box_center_scale(boxes[0])
    A = crop_matrix(center, crop_side(scale), cfg.input_size)
    x = to_tensor(warp_image(Image.fromarray(image), A, cfg.input_size))[None]
    maps = hr.predict(model, x, flip_test=True)
    assert maps.shape == (1, 16, cfg.input_size // 4, cfg.input_size // 4)
    xy = hr.decode(maps)
    assert xy.shape == (1, 16, 2)


def test_a_config_without_joints_loads_as_mpii():
    d = asdict(hr.toy_config("residual"))
    del d["joints"]                                      # a checkpoint from before the field
    cfg = hr.config_from_dict(d)
    assert cfg.joints == MPII_JOINTS and hr.Cascade(cfg).second.d7.out_channels == 16


# ----------------------------------------------------------------------------- COCO
def test_coco_flip_pairs_literally():
    assert joint_flip(COCO_JOINTS).tolist() == [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]
    assert joint_flip(AIC_JOINTS).tolist() == [3, 4, 5, 0, 1, 2, 9, 10, 11, 6, 7, 8, 12, 13]


def coco_config(size=128):
    cfg = hr.toy_config("residual")
    cfg.input_size, cfg.joints = size, COCO_JOINTS
    return cfg


@pytest.mark.skipif(not (REAL_COCO / "test_coco.json").is_file(), reason="../shared/real_samples/coco not present")
def test_coco_flip_gives_the_same_targets_mirrored_with_left_and_right_swapped():
    src = BoxRecordSource(read_coco(REAL_COCO / "test_coco.json", REAL_COCO))
    # One sample per non-crowd person with a labelled joint: 14 annotations,
    # two of them without keypoints.
    assert len(src) == 12
    cfg = coco_config()
    data = hr.PoseData(src, cfg, 4, train=True)
    perm = joint_flip(COCO_JOINTS)
    for i in range(len(src)):
        data.augmentation = lambda k: (1.0, 0.0, False)
        a = data[i]
        data.augmentation = lambda k: (1.0, 0.0, True)
        b = data[i]
        assert a["det"].shape == (17, 32, 32)
        # Keypoints: x mirrored in the crop, joints swapped (l_eye <-> r_eye, ...).
        mirrored = a["kp_crop"].numpy()[perm]
        mirrored[:, 0] = cfg.input_size - 1 - mirrored[:, 0]
        v = mirrored[:, 2] > 0
        assert np.allclose(b["kp_crop"].numpy()[v], mirrored[v], atol=1e-3)
        # Targets: the same maps, mirrored, channels swapped.
        assert torch.allclose(b["reg"], a["reg"][perm].flip(-1), atol=1e-4)
        assert (b["det"] != a["det"][perm].flip(-1)).float().mean() < 1e-3   # disk edges may round
        assert torch.equal(b["mask"], a["mask"][perm])
        # Visible-only disks (v == 2), every labelled joint's Gaussian (v > 0).
        vis = a["kp_crop"][:, 2]
        assert torch.equal(a["det"].flatten(1).amax(1) > 0, vis == 2)
        assert torch.equal(a["reg"].flatten(1).amax(1) > 0, vis > 0)
        # The image: mirrored too (bilinear sampling at mirrored points).
        assert (b["image"] - a["image"].flip(-1)).abs().mean() < 0.02


def test_predict_flip_test_uses_the_runs_flip_pairs():
    model = hr.Cascade(coco_config(64)).eval()
    assert model.flip.tolist() == joint_flip(COCO_JOINTS).tolist()
    x = torch.randn(2, 3, 64, 64)
    maps = torch.rand(2, 17, 16, 16)
    # A model that sees the mirror image as it should: maps mirrored, left
    # and right swapped. The flip test must then give the maps back.
    model.heatmaps = lambda images, which="final": maps if torch.equal(images, x) else maps[:, model.flip].flip(-1)
    assert torch.allclose(hr.predict(model, x, flip_test=True), maps)


def coco_root(tmp_path):
    """The official COCO layout (annotations/person_keypoints_*2017.json,
    train2017/, val2017/) over the real sample files, for both splits."""
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    for split in ("train", "val"):
        shutil.copy(REAL_COCO / "test_coco.json", root / "annotations" / f"person_keypoints_{split}2017.json")
        (root / f"{split}2017").symlink_to(REAL_COCO.resolve(), target_is_directory=True)
    return root


@pytest.mark.skipif(not (REAL_COCO / "test_coco.json").is_file(), reason="../shared/real_samples/coco not present")
def test_coco_trains_and_evaluates_end_to_end_on_real_files(tmp_path, capsys):
    root, out = coco_root(tmp_path), tmp_path / "run"
    summary = hr.main(["--data", "coco", "--data-root", str(root), *TINY_PAPER_NET, "--out", str(out)])
    printed = capsys.readouterr().out
    assert "coco: 12 train / 12 val people" in printed
    assert "PCK@0.2 of the box's longer side" in printed and "Head = mean of nose" in printed
    assert np.isfinite(summary["final"]["Total"])
    cfg, model = hr.model_from_checkpoint(out / "best.pt", "cpu")
    assert cfg.joints == COCO_JOINTS and model.second.d7.out_channels == 17
    res = hr.main(["--data", "coco", "--data-root", str(root), "--eval-only", "--flip-test",
                   "--checkpoint", str(out / "best.pt"), "--out", str(tmp_path / "eval")])
    assert (tmp_path / "eval" / "results.json").is_file()
    assert res["pred"].shape == (12, 17, 2)
    # A COCO checkpoint on MPII-joint data is one line, not a shape error.
    with pytest.raises(SystemExit):
        hr.main(["--eval-only", "--checkpoint", str(out / "best.pt"), "--toy-val", "4"])
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "17 joints" in err and "--data toy has 16" in err, err


# ----------------------------------------------------------------------------- AI Challenger
def aic_root(tmp_path):
    """AI Challenger's official archives (a list of {image_id, url,
    keypoint_annotations, human_annotations}; flags 1 visible, 2 occluded, 3
    not labelled; boxes x1 y1 x2 y2), with toy scenes as the photos."""
    root = tmp_path / "aic"
    for split, folder, images, name, seed in (
            ("train", "ai_challenger_keypoint_train_20170909", "keypoint_train_images_20170902",
             "keypoint_train_annotations_20170909.json", 0),
            ("val", "ai_challenger_keypoint_validation_20170911", "keypoint_validation_images_20170911",
             "keypoint_validation_annotations_20170911.json", 1)):
        (root / folder / images).mkdir(parents=True)
        entries = []
        for i in range(3):
            image, kp, boxes, _ = render_scene(seed, i, size=(96, 96))
            image_id = f"{seed:02d}{i:02d}aic"
            Image.fromarray(image).save(root / folder / images / f"{image_id}.jpg", quality=95)
            kp = kp[:, MPII_TO_AIC]
            flag = np.array([3, 2, 1])[kp[..., 2].astype(int)]        # our v -> AIC's flag
            entries.append({
                "url": f"http://example/{image_id}.jpg", "image_id": image_id,
                "keypoint_annotations": {f"human{k + 1}": np.c_[np.rint(kp[k, :, :2]), flag[k]].astype(int)
                                         .ravel().tolist() for k in range(len(kp))},
                "human_annotations": {f"human{k + 1}": np.rint([b[0], b[1], b[0] + b[2], b[1] + b[3]])
                                      .astype(int).tolist() for k, b in enumerate(boxes)}})
        (root / folder / name).write_text(json.dumps(entries))
    return root


def test_aic_official_layout_trains_and_evaluates_with_14_joints(tmp_path, capsys):
    root, out = aic_root(tmp_path), tmp_path / "run"
    summary = hr.main(["--data", "aic", "--data-root", str(root), *TINY_PAPER_NET, "--out", str(out)])
    printed = capsys.readouterr().out
    assert "Head = mean of head_top, neck" in printed
    assert np.isfinite(summary["final"]["Total"])
    cfg, model = hr.model_from_checkpoint(out / "best.pt", "cpu")
    assert cfg.joints == AIC_JOINTS and model.second.d7.out_channels == 14
    assert model.flip.tolist() == joint_flip(AIC_JOINTS).tolist()
    # The samples: crops of the annotated boxes, AIC's flags read as COCO's v.
    train, val, _ = load_sources(hr.parse_args(["--data", "aic", "--data-root", str(root)]))
    n = sum(len(render_scene(1, i, size=(96, 96))[1]) for i in range(3))
    assert len(val) == n
    _, _, kp, center, scale = val.load(0)
    _, kp0, box0, _ = render_scene(1, 0, size=(96, 96))
    assert set(np.unique(kp[:, 2])) <= {0, 1, 2}
    assert np.array_equal(kp[:, 2], kp0[0, MPII_TO_AIC, 2])
    assert crop_side(scale) == pytest.approx(1.25 * max(np.rint(box0[0, 2:])), abs=1.5)


def test_vgg_rates_convert_with_the_runs_number_of_parts():
    # §3.1's Caffe rates x N (Eq. 1) and x N/2 (Eq. 2): N is the data's.
    cfg = hr.build_config(hr.parse_args(["--data", "coco", "--arch", "vgg"]))
    assert cfg.joints == COCO_JOINTS
    assert cfg.stages[0].lr == pytest.approx(1e-8 * 17) and cfg.stages[1].lr == pytest.approx(1e-5 * 17 / 2)
    assert hr.build_config(hr.parse_args(["--data", "mpii", "--arch", "vgg"])).stages[0].lr == pytest.approx(1e-8 * 16)


# ----------------------------------------------------------------------------- the two papers meet, on real formats
@pytest.mark.parametrize("data", ["coco", "aic"])
def test_three_row_table_on_real_formats(data, tmp_path, capsys):
    """COCO (the real sample) and AI Challenger (its official layout): paper 1
    trains on the person crops, paper 2 trains a few steps, and paper 2's
    evaluation prints Tables I-II with the three rows on the same boxes."""
    if data == "coco" and not (REAL_COCO / "test_coco.json").is_file():
        pytest.skip("../shared/real_samples/coco not present")
    import bottom_up_bbox as bub
    root = coco_root(tmp_path) if data == "coco" else aic_root(tmp_path)
    hr.main(["--data", data, "--data-root", str(root), *TINY_PAPER_NET, "--out", str(tmp_path / "hr")])
    bub.main(["--data", data, "--data-root", str(root), "--epochs", "1", "--input-size", "64", "--test-size", "64",
              "--width", "0.25", "--stages", "1", "--batch-size", "2", "--val-images", "1",
              "--out", str(tmp_path / "bub")])
    capsys.readouterr()
    ev = bub.main(["--eval-only", "--data", data, "--data-root", str(root), "--checkpoint",
                   str(tmp_path / "bub" / "best.pt"), "--topdown", str(tmp_path / "hr" / "best.pt"),
                   "--out", str(tmp_path / "eval")])
    out = capsys.readouterr().out
    for row in ("top-down: paper 1 in each box", "box-free parse of [3]", "ours (full)"):
        assert row in out, row
    assert {"topdown", "greedy", "full", "topdown jitter 0.20"} <= set(ev["results"])
    # Time per image and Fig. 1's scenes: walkthrough/studies.py, on the same records.
    from walkthrough import studies
    res = studies.main(["evaluation", "--data", data, "--data-root", str(root), "--checkpoint",
                        str(tmp_path / "bub" / "best.pt"), "--topdown", str(tmp_path / "hr" / "best.pt"),
                        "--jitter-curve", "0,0.2", "--out", str(tmp_path / "studies")])
    assert "§IV-B3" in capsys.readouterr().out and res["runtime_by_people"]
    assert (tmp_path / "studies" / "fig1.png").is_file()
