"""Paper 2's future work in the script: the box head wired into PoseNetwork,
its training targets, its boxes through ``infer`` into image pixels, and
``--boxes net`` / the demo's default with and without a head."""
import json
from dataclasses import asdict, replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import bottom_up_bbox as bub
from common import box_head, harness
from common.scenes import RecordScenes, TrainScenes
from common.toy import ToyScenes


def head_config(**change):
    """The toy's network with a box head (``--box-weight 1``)."""
    return replace(bub.toy_config(), box_weight=1.0, **change)


class FixedHead(torch.nn.Module):
    """A box head that outputs the targets of given boxes, whatever it reads."""

    def __init__(self, targets):
        super().__init__()
        self.targets = torch.from_numpy(targets[:box_head.CHANNELS])[None]
        self.register_buffer("threshold", torch.tensor(0.5))

    def forward(self, x):
        return self.targets.to(x.dtype)


def test_the_head_sits_on_the_last_stage_and_toggles_with_its_weight():
    sk = bub.Skeleton("toy")
    cfg = head_config()
    net = bub.PoseNetwork(cfg, sk).eval()
    stages, B = net(torch.zeros(1, 3, 64, 96), boxes=True)
    assert B.shape == (1, box_head.CHANNELS, 16, 24) and len(stages) == cfg.stages
    # It reads what a next stage would: F and the last stage's maps and fields.
    assert net.box_head.body[0].in_channels == net.features.out_channels + (sk.J + 1) + 2 * sk.C
    # Its sizes start at half the input (the log-size bias), not at 1 px.
    assert torch.allclose(B[0, 1:3], torch.tensor(np.log(cfg.input_size / 2), dtype=B.dtype), atol=1.0)
    plain = bub.PoseNetwork(replace(cfg, box_weight=0.0), sk)
    assert plain.box_head is None and len(plain(torch.zeros(1, 3, 64, 96))) == cfg.stages
    assert bub.CaoNetwork().box_head is None                          # Cao et al.'s network: no head


@pytest.mark.parametrize("size", [(300, 150), (192, 192)])
def test_infer_gives_the_heads_boxes_in_image_pixels(size):
    """Boxes in image px -> scale-1.0 input px -> the head's targets, read
    back by ``infer`` (decoding, then input -> image px): the same boxes."""
    sk = bub.Skeleton("toy")
    cfg = head_config(flip_test=False, test_size=192)
    net = bub.PoseNetwork(cfg, sk).eval()
    image = ToyScenes(0, 1, 192, sk).load(0).image.resize(size)
    W, H = size
    f = cfg.test_size / max(W, H)
    base = (bub.round_to(W * f, 8), bub.round_to(H * f, 8))
    truth = np.array([[20.0, 10.0, 60.0, 120.0], [150.0, 30.0, 50.0, 100.0]])
    s = np.array(base, np.float64) / size
    inputs = np.concatenate([(truth[:, :2] + 0.5) * s - 0.5, truth[:, 2:] * s], 1)
    net.box_head = FixedHead(box_head.box_targets(inputs, (base[1] // 4, base[0] // 4), 4))
    pred = net.infer(image, size, cfg, "cpu")
    got = pred.boxes[np.argsort(pred.boxes[:, 0])]
    assert got.shape == (2, 5) and np.allclose(got[:, :4], truth, atol=1e-3)


def test_training_targets_hold_each_person_upright():
    """The head's targets in a training sample: one centre per person, its
    size the person's box scaled by the crop's zoom (rotation does not grow
    it), the flip applied to the centre."""
    sk = bub.Skeleton("toy")
    cfg = head_config(input_size=96)
    src = ToyScenes(0, 2, 96, sk)
    sample = TrainScenes(src, cfg, sk, 4, bub.make_targets)[0]
    t = sample["boxes"].numpy()
    assert t.shape == (box_head.CHANNELS + 1, 24, 24)
    n = len(src.annotation(0)[1])
    assert 1 <= t[5].sum() <= n                                       # one centre pixel a person (or shared)
    sizes = np.exp(t[1:3][:, t[5] > 0]).T                              # (people, 2) input px
    people = src.annotation(0)[1][:, 2:]                                 # (K, 2) scene px (96 px scenes)
    ratio = sizes[:, None, :] / people[None]                             # against every person's box
    # Each is some person's box times the crop's zoom, the same in x and y.
    lo, hi = cfg.person_frac
    same_zoom = np.abs(ratio[..., 0] - ratio[..., 1]) < 1e-3
    in_range = (ratio[..., 0] > lo - 1e-3) & (ratio[..., 0] < hi + 1e-3)
    assert (same_zoom & in_range).any(1).all()
    assert len(set(np.round(ratio[same_zoom & in_range][:, 0], 4))) == 1   # one zoom for the whole crop


def save_plain_checkpoint(path):
    """A toy network without a head, saved as training would save it."""
    cfg = replace(bub.toy_config(), input_size=96, test_size=96, box_weight=0.0)   # --box-weight 0: no head
    model = bub.PoseNetwork(cfg, bub.Skeleton("toy"))
    state = {"model": model.state_dict(), "extra": {"config": asdict(cfg)}}
    harness.save_checkpoint(path, state)
    return path


def test_a_network_without_a_head_keeps_the_boxes_it_had(tmp_path, capsys):
    ckpt = save_plain_checkpoint(tmp_path / "plain.pt")
    bub.main(["--demo", "--checkpoint", str(ckpt), "--out", str(tmp_path / "demo")])
    assert "box(es) given" in capsys.readouterr().out                 # the toy scene's ground truth
    with pytest.raises(SystemExit):
        bub.main(["--demo", "--checkpoint", str(ckpt), "--boxes", "net", "--out", str(tmp_path / "demo2")])
    assert "--boxes net: " in capsys.readouterr().err and not (tmp_path / "demo2" / "toy_scene_poses.png").exists()
    bub.main(["--eval-only", "--checkpoint", str(ckpt), "--toy-val", "2", "--out", str(tmp_path / "eval")])
    assert "simulated detector" in capsys.readouterr().out            # the toy's boxes without a head


def test_a_head_checkpoint_finds_its_own_boxes(tmp_path, capsys):
    """A (briefly trained) head: the demo uses its boxes with no detection
    file and no fallback; the evaluation defaults to them; the boxes study
    measures them."""
    out = tmp_path / "run"
    bub.main(["--box-weight", "1", "--toy-train", "8", "--toy-val", "2", "--epochs", "1", "--input-size", "96",
              "--test-size", "96", "--val-images", "1", "--log-every", "100", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "the network's own boxes (§V)" in printed
    result = json.loads((out / "results.json").read_text())
    assert result["config"]["box_weight"] == 1.0
    # The decoding threshold was chosen on training scenes and travels with the weights.
    assert "decoding threshold" in printed
    chosen = result["history"]["val"][-1]["box_threshold"]
    state = harness.load_checkpoint(out / "best.pt")["model"]
    assert float(state["box_head.threshold"]) == pytest.approx(chosen) and box_head.FLOOR <= chosen
    bub.main(["--demo", "--checkpoint", str(out / "best.pt"), "--out", str(tmp_path / "demo")])
    assert "from the network's box head" in capsys.readouterr().out
    from walkthrough import studies
    res = studies.main(["boxes", "--checkpoint", str(out / "best.pt"), "--scenes", "2", "--out", str(tmp_path)])
    assert set(res["box_ap"]) == {"own", "simulated"} and set(res["AP"]) == {"own", "simulated", "ground truth"}
    assert {"diff", "lo", "hi"} <= set(res["own_vs_simulated"])
    # [3] has no boxes: the same AP whichever boxes the others had.
    assert len({a["greedy"] for a in res["AP"].values()}) == 1
    assert res["forward_ms"]["with_head"] > 0 and res["forward_ms"]["without"] > 0


REAL_COCO = Path(__file__).resolve().parents[2] / "shared" / "real_samples" / "coco"


@pytest.mark.skipif(not REAL_COCO.is_dir(), reason="../shared/real_samples/coco not present")
def test_the_threshold_is_calibrated_on_real_training_records():
    """``calibrate_box_threshold`` on real COCO records: it decodes at the
    floor, pairs each image's boxes with that image's scored people, and
    keeps the threshold of the best F1 in the head. A stand-in network
    returns each person's true box at 0.8 and a box on nobody at 0.6."""
    from common import coco_aic
    from common.detector import gt_boxes
    sk = bub.Skeleton("coco")
    source = RecordScenes(coco_aic.read_coco(REAL_COCO / "test_coco.json", REAL_COCO), sk)
    truths = iter([gt_boxes(source.ground_truth(i)) for i in range(len(source))])
    seen = []

    class StandIn(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.box_head = FixedHead(np.zeros((6, 1, 1), np.float32))

        def infer(self, image, size, cfg, device, scales=None):
            assert scales == (1.0,)                                    # the boxes' scale alone
            seen.append(float(self.box_head.threshold))
            t = next(truths)
            boxes = np.concatenate([np.c_[t, np.full(len(t), 0.8)], [[-500.0, -500.0, 10.0, 10.0, 0.6]]])
            return SimpleNamespace(boxes=boxes)

    model = StandIn()
    t = bub.calibrate_box_threshold(model, source, bub.Config(data="coco"), "cpu")
    assert len(seen) == len(source) and np.allclose(seen, box_head.FLOOR)   # every image decoded at the floor
    assert t == pytest.approx(0.8) and float(model.box_head.threshold) == pytest.approx(0.8)
