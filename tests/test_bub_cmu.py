"""Paper 2 with Cao et al.'s released COCO network (§IV-C, issue 12), tested
without the real file (it cannot be downloaded here):

* a fake ``body_pose_model.pth`` -- their exact layer names and shapes, taken
  from the COCO ``pose_deploy.prototxt`` (the table below), random values --
  loads strictly, every name maps, and our network then computes *their*
  forward pass (an independent functional re-implementation of their wiring);
* ground-truth maps and fields drawn in *their* channel layout and direction
  convention, mapped by ``cao_to_ours``, equal ours and parse back to the
  annotated poses of the real COCO sample (oracle AP 100);
* their input convention (BGR, /256 - 0.5, padded to 8) and the multi-scale
  resampling put every map pixel where it belongs in the image;
* the paper's sequential stages against Cao et al.'s concurrent ones;
* a wrong file is one line; ``--demo`` and ``--eval-only --data coco`` run
  end to end with the fake weights on real photos (the poses are noise).
"""
import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import bottom_up_bbox as bub
from common import coco_aic, openpose
from common.bub_eval import score
from common.coco_eval import to_coco_results
from common.detector import gt_boxes
from common.scenes import RecordScenes

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "real_samples" / "coco"
needs_real = pytest.mark.skipif(not (REAL / "test_coco.json").is_file(),
                                reason="../shared/real_samples/coco not present")


# ----------------------------------------------------------------------------- their file, from the prototxt
def their_layers():
    """Every convolution of Cao et al.'s COCO model as (name, in, out, kernel),
    read off ``model/_trained_COCO/pose_deploy.prototxt`` of
    Realtime_Multi-Person_Pose_Estimation (the layers the ports convert):
    L1 = the part affinity fields (38), L2 = the confidence maps (19)."""
    vgg = [("conv1_1", 3, 64), ("conv1_2", 64, 64), ("conv2_1", 64, 128), ("conv2_2", 128, 128),
           ("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256), ("conv3_4", 256, 256),
           ("conv4_1", 256, 512), ("conv4_2", 512, 512), ("conv4_3_CPM", 512, 256), ("conv4_4_CPM", 256, 128)]
    layers = [(n, i, o, 3) for n, i, o in vgg]
    for L, out in (("L1", 38), ("L2", 19)):
        layers += [(f"conv5_{i}_CPM_{L}", 128, 128, 3) for i in (1, 2, 3)]
        layers += [(f"conv5_4_CPM_{L}", 128, 512, 1), (f"conv5_5_CPM_{L}", 512, out, 1)]
    for t in range(2, 7):
        for L, out in (("L1", 38), ("L2", 19)):
            layers += [(f"Mconv1_stage{t}_{L}", 38 + 19 + 128, 128, 7)]          # concat_stage{t}
            layers += [(f"Mconv{i}_stage{t}_{L}", 128, 128, 7) for i in (2, 3, 4, 5)]
            layers += [(f"Mconv6_stage{t}_{L}", 128, 128, 1), (f"Mconv7_stage{t}_{L}", 128, out, 1)]
    return layers


@functools.lru_cache(maxsize=2)
def fake_state(seed=0):
    """A state dict with their exact keys and shapes, random values (He-scaled
    weights so that the activations stay of order one through 30 layers).
    Cached: callers must not modify it in place."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, cin, cout, k in their_layers():
        state[f"{name}.weight"] = torch.randn(cout, cin, k, k, generator=g) * (2.0 / (cin * k * k)) ** 0.5
        state[f"{name}.bias"] = torch.randn(cout, generator=g) * 0.05
    return state


@pytest.fixture(scope="module")
def cao():
    """One ``CaoNetwork`` for the tests below (each loads what it needs)."""
    return bub.CaoNetwork()


@pytest.fixture(scope="module")
def fake_file(tmp_path_factory):
    """The fake ``body_pose_model.pth`` on disk (209 MB, as the real one)."""
    path = tmp_path_factory.mktemp("cmu") / "body_pose_model.pth"
    torch.save(fake_state(), path)
    return path


def their_forward(state, x):
    """Their network, written from the prototxt alone, as functional calls on
    their state dict: VGG with ReLUs and 2x2 max-pools after conv1_2, conv2_2
    and conv3_4; in every stage two branches that both read concat(L1, L2, F)
    of the previous stage; every convolution followed by a ReLU but the last
    of each branch. Returns the last stage's (L2 maps, L1 fields)."""
    def conv(name, x, relu=True):
        w = state[f"{name}.weight"]
        y = F.conv2d(x, w, state[f"{name}.bias"], padding=w.shape[-1] // 2)
        return F.relu(y) if relu else y

    for name, *_ in their_layers()[:12]:
        x = conv(name, x)
        if name in ("conv1_2", "conv2_2", "conv3_4"):
            x = F.max_pool2d(x, 2, 2)
    feat = x
    outs = {}
    for L in ("L1", "L2"):
        y = feat
        for i in range(1, 6):
            y = conv(f"conv5_{i}_CPM_{L}", y, relu=i < 5)
        outs[L] = y
    for t in range(2, 7):
        inp = torch.cat([outs["L1"], outs["L2"], feat], 1)
        for L in ("L1", "L2"):
            y = inp
            for i in range(1, 8):
                y = conv(f"Mconv{i}_stage{t}_{L}", y, relu=i < 7)
            outs[L] = y
    return outs["L2"], outs["L1"]


def test_a_fake_file_with_their_names_and_shapes_loads_strictly_and_every_name_maps(cao, fake_file):
    state, model = fake_state(), cao
    names = openpose.cao_name_map(model)
    # Every one of our parameters has one of theirs and vice versa: 92 convolutions.
    assert set(names) == set(model.state_dict())
    assert sorted(names.values()) == sorted(state) and len(state) == 2 * 92
    # Their names are paired with the layer of the same role: the map branch is L2.
    assert names["features.trunk.0.weight"] == "conv1_1.weight"
    assert names["features.trunk.21.bias"] == "conv4_2.bias"
    assert names["features.cpm.2.weight"] == "conv4_4_CPM.weight"
    assert names["maps.0.8.weight"] == "conv5_5_CPM_L2.weight"
    assert names["fields.5.12.bias"] == "Mconv7_stage6_L1.bias"
    # From the file on disk, strictly.
    openpose.load_cao_weights(model, fake_file)
    own = model.state_dict()
    reordered = {f"{part}.{t}.0.weight" for part in ("maps", "fields") for t in range(1, 6)}   # stages 2-6
    for ours, theirs in names.items():
        if ours not in reordered:
            assert torch.equal(own[ours], state[theirs]), ours
    w, w_theirs = own["fields.3.0.weight"], state["Mconv1_stage4_L1.weight"]
    assert torch.equal(w[:, :128], w_theirs[:, 57:])    # F: theirs last, ours first
    assert torch.equal(w[:, 128:147], w_theirs[:, 38:57])   # S
    assert torch.equal(w[:, 147:], w_theirs[:, :38])    # L: theirs first, ours last
    # Table III's parameter count: their COCO network, and the paper's 51.29 M
    # for the same (concurrent) network with AI Challenger's outputs.
    assert sum(p.numel() for p in model.parameters()) == 52_311_446
    aic = bub.PoseNetwork(bub.Config(data="aic", backbone="vgg", stages=6, upsample=False, wiring="concurrent"),
                          bub.Skeleton("aic"))
    assert round(sum(p.numel() for p in aic.parameters()) / 1e6, 2) == 51.29


def test_our_network_with_their_weights_computes_their_forward_pass(cao):
    torch.manual_seed(0)
    state, model = fake_state(1), cao
    model.load_state_dict(openpose.cao_state_dict(model, state), strict=True)
    x = torch.randn(1, 3, 40, 56) * 0.3
    with torch.no_grad():
        S, L = model.eval()(x)[-1]
        S_ref, L_ref = their_forward(state, x)
    assert S.shape == (1, 19, 5, 7) and L.shape == (1, 38, 5, 7)
    scale = float(S_ref.abs().max() + L_ref.abs().max())
    assert scale > 0.1                                   # not a trivial (all-zero) comparison
    torch.testing.assert_close(S, S_ref, atol=1e-4 * scale, rtol=1e-4)
    torch.testing.assert_close(L, L_ref, atol=1e-4 * scale, rtol=1e-4)


def test_another_networks_weights_are_refused_with_one_line(cao):
    model = cao
    mpi = dict(fake_state())    # OpenPose's MPI model: the same layer names, 16 maps and 28 PAF channels
    for t in range(2, 7):
        mpi[f"Mconv7_stage{t}_L1.weight"] = mpi[f"Mconv7_stage{t}_L1.weight"][:28]
    with pytest.raises(ValueError) as e:
        openpose.cao_state_dict(model, mpi, "mpi.pth")
    msg = str(e.value)
    assert "\n" not in msg and "mpi.pth" in msg and "shape mismatches" in msg and "Mconv7_stage2_L1" in msg
    extra = {**fake_state(), "fc.weight": torch.zeros(2)}
    with pytest.raises(ValueError, match="1 unexpected keys"):
        openpose.cao_state_dict(model, extra)
    with pytest.raises(ValueError, match="184 missing keys"):
        openpose.cao_state_dict(model, {"features.0.weight": torch.zeros(64, 3, 3, 3)})


# ----------------------------------------------------------------------------- wiring: the paper vs Cao et al.
@pytest.mark.parametrize("wiring", ["sequential", "concurrent"])
def test_sequential_stages_feed_the_maps_to_the_fields_concurrent_ones_do_not(wiring):
    """Fig. 3 / §III-A1: "predicted sequentially rather than concurrently".
    Changing the map branch of stage 1 changes stage 1's fields only when the
    field branch reads the maps (sequential); in both wirings stage 2 sees it."""
    torch.manual_seed(0)
    cfg = bub.Config(data="toy", stages=2, width=0.25, resnet_blocks=(1, 1, 1), upsample=False, wiring=wiring)
    sk = bub.Skeleton("toy")
    net = bub.PoseNetwork(cfg, sk).eval()
    J, f = sk.J + 1, net.features.out_channels
    assert net.fields[0][0].in_channels == (f if wiring == "concurrent" else f + J)
    assert net.fields[1][0].in_channels == f + J + 2 * sk.C + (0 if wiring == "concurrent" else J)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = net(x)
        net.maps[0][-1].bias += 1.0                     # stage 1's maps change everywhere
        after = net(x)
    assert not torch.allclose(before[0][0], after[0][0])
    assert torch.equal(before[0][1], after[0][1]) == (wiring == "concurrent")
    assert not torch.allclose(before[1][1], after[1][1])
    with pytest.raises(ValueError, match="wiring"):
        bub.PoseNetwork(bub.Config(data="toy", wiring="parallel"), sk)


# ----------------------------------------------------------------------------- their layout -> ours
def their_targets(kp, shape, stride, cfg, limbs=openpose.CAO_LIMBS):
    """Ground truth drawn as *their* network outputs it: 18 maps in their
    joint order + background, and each of ``limbs`` as a field pointing from
    its first joint to its second, x in PAF channel ``x``, y in ``x + 1``."""
    sk = bub.Skeleton("coco")
    kp = kp[:, [sk.joints.index(n) for n in openpose.CAO_JOINTS]]                  # our order -> theirs
    heat = bub.confidence_maps(kp, shape, stride, cfg.sigma)                 # (19, h, w)
    pairs = np.array([(openpose.CAO_JOINTS.index(a), openpose.CAO_JOINTS.index(b)) for a, b, _ in limbs])
    f, _ = bub.direction_fields(kp, pairs, shape, stride, cfg.delta)         # (2 x 19, h, w), limbSeq order
    paf = np.zeros_like(f)
    for k, (_, _, x) in enumerate(limbs):
        paf[x], paf[x + 1] = f[2 * k], f[2 * k + 1]
    return heat, paf


def test_their_17_limbs_of_our_tree_point_from_parent_to_child():
    sk = bub.Skeleton("coco")
    maps, fields, sign = openpose.cao_channels(sk)
    assert [openpose.CAO_JOINTS[m] for m in maps[:-1]] == list(sk.joints) and maps[-1] == 18   # background last
    assert (sign == 1).all()                            # no limb of theirs runs child -> parent
    assert sorted(fields) == sorted(set(fields)) and len(fields) == 34       # 17 distinct limbs, x and y
    assert set(range(38)) - set(fields) == {18, 19, 26, 27}                  # dropped: shoulder -> ear
    assert (fields[0::2] % 2 == 0).all() and (fields[1::2] == fields[0::2] + 1).all()


@needs_real
@pytest.mark.parametrize("stride, ap", [(1, 1.0), (8, 0.986)])
def test_their_layout_mapped_to_ours_parses_back_to_the_real_coco_annotations(stride, ap):
    """The oracle of tests/test_bub_method.py, through Cao et al.'s layout: the
    ground truth drawn in their channels, mapped by ``cao_to_ours``, is
    exactly our own drawing and parses (ground-truth boxes, COCO's OKS
    constants) to AP 100 at input resolution. At their output stride, 8,
    measured: 98.6, as our own layout at stride 8 (the drawings are equal;
    99.0 when ranked by Eq. 9, ``rank_score="own"``)."""
    sk, cfg = bub.Skeleton("coco"), bub.Config(data="coco")
    src = RecordScenes(coco_aic.read_coco(REAL / "test_coco.json", REAL), sk)
    gts, ids, res = [], [], []
    for i in range(len(src)):
        s, gt = src.load(i), src.ground_truth(i)
        W, H = s.size
        h, w = -(-H // stride), -(-W // stride)
        maps, fields = openpose.cao_to_ours(*their_targets(s.keypoints, (h, w), stride, cfg), sk)
        np.testing.assert_allclose(maps, bub.confidence_maps(s.keypoints, (h, w), stride, cfg.sigma), atol=1e-6)
        np.testing.assert_allclose(fields, bub.direction_fields(s.keypoints, sk.limbs, (h, w), stride, cfg.delta)[0],
                                   atol=1e-6)
        pred = bub.Prediction(maps, fields, stride, (W, H), (w * stride, h * stride))
        parse = bub.parse_variants(pred, gt_boxes(gt), sk, cfg, ("full",))["full"]
        gts += gt
        ids.append(src.image_id(i))
        res += to_coco_results(src.image_id(i), sk.to_dataset(parse.keypoints), parse.scores)
    assert sum(g["num_keypoints"] > 0 for g in gts) >= 10
    assert score(sk, gts, res, ids)["AP"] >= ap - 1e-9


@needs_real
def test_a_limb_of_theirs_running_child_to_parent_is_negated():
    """Were a limb of theirs listed the other way (here neck <- r_shoulder and
    l_knee <- l_ankle), its field points the other way, and the mapping must
    negate it to give our parent -> child field."""
    sk, cfg = bub.Skeleton("coco"), bub.Config(data="coco")
    flipped = tuple((b, a, x) if (a, b) in {("neck", "r_shoulder"), ("l_knee", "l_ankle")} else (a, b, x)
                    for a, b, x in openpose.CAO_LIMBS)
    s = RecordScenes(coco_aic.read_coco(REAL / "test_coco.json", REAL), sk).load(0)
    shape = (-(-s.size[1] // 8), -(-s.size[0] // 8))
    heat, paf = their_targets(s.keypoints, shape, 8, cfg, flipped)
    ours = bub.direction_fields(s.keypoints, sk.limbs, shape, 8, cfg.delta)[0]
    assert np.abs(paf[12:14]).max() > 0.5                                  # the flipped limb is drawn
    np.testing.assert_allclose(openpose.cao_to_ours(heat, paf, sk, flipped)[1], ours, atol=1e-6)
    assert np.abs(openpose.cao_to_ours(heat, paf, sk)[1] - ours).max() > 1.0    # unmapped sign: wrong


# ----------------------------------------------------------------------------- their input convention
def test_their_input_is_bgr_over_256_minus_half_padded_to_8_with_grey():
    img = np.zeros((3, 5, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 200, 100, 0                      # R, G, B
    x = openpose.cao_input(Image.fromarray(img))
    assert x.shape == (1, 3, 8, 8)
    np.testing.assert_allclose(x[0, :, :3, :5].mean((1, 2)), [0 / 256 - 0.5, 100 / 256 - 0.5, 200 / 256 - 0.5])
    assert (x[0, :, 3:] == 0).all() and (x[0, :, :, 5:] == 0).all()         # grey 128 -> 0


class RampReader(torch.nn.Module):
    """A stand-in for their network: every output map is the input's R
    channel (their channel 2: BGR), and every field its G channel, in pixel
    values, averaged over each 8x8 block (stride 8)."""
    stride = 8

    def forward(self, x):
        r = F.avg_pool2d((x[:, 2:3] + 0.5) * 256, 8)
        g = F.avg_pool2d((x[:, 1:2] + 0.5) * 256, 8)
        return [(r.expand(-1, 19, -1, -1), g.expand(-1, 38, -1, -1))]


@pytest.mark.parametrize("scales", [(1.0,), (0.7,), (1.3,), (0.7, 1.0, 1.3)])
def test_each_scales_outputs_land_where_they_belong_in_the_image(scales):
    """An image whose red channel is its x coordinate and green its y: read
    back through the padding, each scale's resampling and the averaging,
    each map pixel must hold the x (each field the y) of the place
    ``Prediction.to_image`` says it covers, within half a pixel -- away from
    the edges: at the right and bottom the grey padding enters the 8x8
    blocks, at the left and top a smaller scale's first block centre lies
    inside the first scale-1.0 one (no block to interpolate from)."""
    W, H = 211, 157
    xx, yy = np.meshgrid(np.arange(W), np.arange(H))
    img = np.stack([xx * 255 / (W - 1), yy * 255 / (H - 1), np.zeros_like(xx)], -1).round().astype(np.uint8)
    cfg = bub.cao_config()
    cfg.test_size = 120
    heat, paf, base = openpose.multiscale_outputs(RampReader(), Image.fromarray(img), cfg.test_size, scales, "cpu")
    pred = bub.Prediction(heat, paf, 8, (2 * W, 2 * H), base)                # their channels, our conversions
    assert pred.base == (round(W * 120 / H), 120) and pred.stride == 8      # their height convention
    h, w = pred.maps.shape[1:]
    assert (h, w) == (-(-pred.base[1] // 8), -(-pred.base[0] // 8))
    ky, kx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    xy = pred.to_image(np.stack([kx, ky], -1).astype(float)) / 2              # in px of the image given
    inner = ((xy > 12) & (xy < np.array([W, H]) - 20)).all(-1)
    assert inner.sum() > 100
    np.testing.assert_allclose(pred.maps[0][inner] * (W - 1) / 255, xy[..., 0][inner], atol=0.5)
    np.testing.assert_allclose(pred.fields[1][inner] * (H - 1) / 255, xy[..., 1][inner], atol=0.5)


# ----------------------------------------------------------------------------- the command line
# The subprocess CLI helpers of the paper-2 command-line tests, shared.
from test_bub_cli import one_line_error, run_cli  # noqa: E402


def one_line_from_main(argv, capsys, *words):
    """``bub.main(argv)`` in this process: exit 2 and one line naming ``words``."""
    with pytest.raises(SystemExit) as e:
        bub.main(argv)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and err.startswith("error: "), (argv, err)
    for w in words:
        assert w in err, err


@needs_real
def test_a_wrong_file_is_one_clear_line(tmp_path, capsys):
    photo = str(REAL / "000000000785.jpg")
    other = tmp_path / "vgg19.pth"                       # another network's state dict: the CLI, end to end
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3), "features.0.bias": torch.zeros(64)}, other)
    one_line_error(run_cli("--eval-only", "--data", "coco", "--cmu-weights", str(other)),
                   "vgg19.pth", "not Cao et al.'s COCO network", "missing keys")
    one_line_from_main(["--demo", photo, "--cmu-weights", str(tmp_path / "nope.pth")], capsys,
                       "nope.pth", "body_pose_model.pth", "nothing is downloaded")
    text = tmp_path / "notes.pth"
    text.write_text("not a network")
    one_line_from_main(["--demo", photo, "--cmu-weights", str(text)], capsys, "notes.pth", "not a readable")
    ckpt = tmp_path / "ckpt.pth"                         # a training checkpoint, not a state dict
    torch.save({"model": {"w": torch.zeros(1)}, "epoch": 3}, ckpt)
    one_line_from_main(["--demo", photo, "--cmu-weights", str(ckpt)], capsys, "ckpt.pth", "state dict")


def test_flags_that_do_not_go_with_the_weights_are_one_line(tmp_path, capsys):
    for argv, words in ((["--demo", "--cmu-weights", "w.pth"], "--demo IMAGE"),
                        (["--eval-only", "--cmu-weights", "w.pth"], "--data coco"),
                        (["--cmu-weights", "w.pth"], "not trained here"),
                        (["--demo", "x.jpg", "--cmu-weights", "w.pth", "--checkpoint", "c.pt"], "not both"),
                        (["--eval-only", "--data", "coco", "--cmu-weights", "w.pth", "--flip-test"], "--flip-test")):
        one_line_from_main(argv + ["--out", str(tmp_path)], capsys, words)


@needs_real
def test_demo_with_the_fake_weights_runs_end_to_end_on_a_real_photo(fake_file, tmp_path):
    """The poses are noise (random weights); the pipeline is the real one:
    their preprocessing, the mapping, the box-free parse giving the fallback
    boxes, Algorithm 1 in them, the figure and the COCO results."""
    r = run_cli("--demo", str(REAL / "000000000785.jpg"), "--cmu-weights", str(fake_file), "--out", str(tmp_path),
                "--test-size", "96", "--scales", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "person(s)" in r.stdout
    assert (tmp_path / "000000000785_poses.png").is_file()
    res = json.loads((tmp_path / "000000000785_results.json").read_text())
    assert isinstance(res, list) and all(x["image_id"] == 785 and len(x["keypoints"]) == 17 * 3 for x in res)


@needs_real
def test_demo_with_a_detection_file_parses_in_the_detectors_boxes(fake_file, tmp_path, capsys):
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps([{"image_id": 785, "category_id": 1, "bbox": [250, 30, 200, 390], "score": 0.9}]))
    res = bub.main(["--demo", str(REAL / "000000000785.jpg"), "--cmu-weights", str(fake_file), "--out",
                    str(tmp_path), "--test-size", "96", "--scales", "1", "--boxes", str(dets)])
    assert "in 1 box(es)" in capsys.readouterr().out
    assert len(res) <= 1                                 # Algorithm 1 + pose NMS: one pose per box


@needs_real
def test_eval_only_on_coco_with_the_fake_weights_prints_table_iv(fake_file, tmp_path):
    """``--eval-only --data coco --cmu-weights``: the real sample laid out as
    COCO's val2017, no --checkpoint; every row of Table IV is computed."""
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    (root / "val2017").mkdir()
    (root / "annotations" / "person_keypoints_val2017.json").write_text((REAL / "test_coco.json").read_text())
    for img in REAL.glob("*.jpg"):
        (root / "val2017" / img.name).symlink_to(img)
    out = tmp_path / "eval"
    r = run_cli("--eval-only", "--data", "coco", "--data-root", str(root), "--cmu-weights", str(fake_file),
                "--test-size", "64", "--scales", "1", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Table IV" in r.stdout and "COCO val" in r.stdout
    summary = json.loads((out / "results.json").read_text())
    assert set(summary["table_iv"]) == set(bub.VARIANTS)
    assert summary["config"]["wiring"] == "concurrent" and summary["config"]["backbone"] == "vgg"
