"""Paper 1, §3: targets, Eq. (1)-(2), Tables 1-4 -- against hand-computed values
and the tables' own numbers."""
import math

import numpy as np
import pytest
import torch
from PIL import Image

import heatmap_regression as hr
from common.backbones import ResNet
from common.layers import bilinear_kernel, init_deconv_bilinear
from common.skeleton import LSP_FLIP, MPII_FLIP, MPII_JOINTS
from common.sources import ToySource


# ----------------------------------------------------------------------------- targets
def test_disk_radius_and_gaussian_sigma_at_stride_1():
    xy = np.array([[20.0, 30.0]])
    disk = hr.render_maps(xy, 64, 1, "disk", 10.0)[0]
    # Pixels within 10 px of (20, 30): the lattice-point count of a disk of
    # radius 10 (Gauss circle problem, N(10) = 317).
    assert disk.sum() == 317
    assert disk[30, 30] == 1 and disk[30, 31] == 0           # exactly 10 px in, 11 out
    g = hr.render_maps(xy, 64, 1, "gauss", 5.0)[0]
    assert g[30, 20] == pytest.approx(1.0)
    assert g[30, 25] == pytest.approx(math.exp(-0.5), rel=1e-6)  # one sigma away
    assert g[40, 20] == pytest.approx(math.exp(-2.0), rel=1e-6)  # two sigmas


def test_gaussian_peak_lands_on_the_stride_4_pixel_centre():
    # Input pixel 4k + 1.5 is the centre of map pixel k at stride 4.
    xy = np.array([[4 * 7 + 1.5, 4 * 3 + 1.5]])
    g = hr.render_maps(xy, 16, 4, "gauss", 4.0)[0]
    assert np.unravel_index(g.argmax(), g.shape) == (3, 7)
    assert g[3, 7] == pytest.approx(1.0)
    assert g[3, 8] == pytest.approx(math.exp(-0.5))          # sigma 4 px = 1 map px


def test_targets_scale_with_the_crop_and_mask_by_visibility():
    cfg = hr.Config(input_size=256)                 # body 204.8 px: radius 10.24 px
    kp = np.array([[100, 100, 2], [60, 60, 1], [0, 0, 0]] + [[0, 0, 0]] * 13, np.float32)
    det, reg, mask = hr.make_targets(kp, cfg, stride=1)
    assert det.shape == reg.shape == (16, 256, 256)
    assert det[0].sum() == np.sum(hr.render_maps(kp[:1, :2], 256, 1, "disk", 10.24))
    assert det[1].sum() == 0 and reg[1].max() == pytest.approx(1.0)   # occluded: regression only
    assert det[2].sum() == 0 and reg[2].sum() == 0                     # not annotated
    assert mask[:3].tolist() == [1, 1, 0]


# ----------------------------------------------------------------------------- losses
def test_eq1_detection_loss_by_hand():
    # One image, N = 2 parts, 1x2 maps. Part 0: logits (0, ln 3) vs target (1, 0):
    # -log(1/2) - log(1 - 3/4) = ln 2 + ln 4. Part 1: logits (0, 0) vs (0, 0): 2 ln 2.
    logits = torch.tensor([[[[0.0, math.log(3)]], [[0.0, 0.0]]]])
    target = torch.tensor([[[[1.0, 0.0]], [[0.0, 0.0]]]])
    full = hr.detection_loss(logits, target, torch.ones(1, 2))
    assert full.item() == pytest.approx((math.log(2) + math.log(4) + 2 * math.log(2)) / 2)
    # The missing part 1 is masked out; the 1/N stays the paper's N.
    masked = hr.detection_loss(logits, target, torch.tensor([[1.0, 0.0]]))
    assert masked.item() == pytest.approx((math.log(2) + math.log(4)) / 2)


def test_eq2_regression_loss_by_hand():
    pred = torch.tensor([[[[1.0, 2.0]], [[0.5, 0.0]]], [[[0.0, 0.0]], [[0.0, 0.0]]]])
    target = torch.tensor([[[[0.0, 0.0]], [[0.0, 1.0]]], [[[0.0, 0.0]], [[0.0, 0.0]]]])
    # image 0: part 0 -> 1 + 4 = 5, part 1 -> 0.25 + 1 = 1.25; /N = 3.125; image 1: 0.
    loss = hr.regression_loss(pred, target, torch.ones(2, 2))
    assert loss.item() == pytest.approx(3.125 / 2)
    assert hr.regression_loss(pred, target, torch.tensor([[0.0, 1.0], [1.0, 1.0]])).item() \
        == pytest.approx(1.25 / 2 / 2)


# ----------------------------------------------------------------------------- flips
def test_flip_permutation_is_an_involution_and_swaps_sides():
    assert MPII_FLIP.tolist() == [5, 4, 3, 2, 1, 0, 6, 7, 8, 9, 15, 14, 13, 12, 11, 10]
    assert LSP_FLIP.tolist() == [5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6, 12, 13]
    for perm in (MPII_FLIP, LSP_FLIP):
        assert (perm[perm] == np.arange(len(perm))).all()


def test_flip_augmentation_mirrors_x_and_swaps_joint_labels():
    class One:                                  # one image, wrists at known places
        def __len__(self):
            return 1

        def load(self, i, reduce_per_scale=0.0):
            kp = np.zeros((16, 3), np.float32)
            kp[MPII_JOINTS.index("r_wrist")] = (40, 50, 2)
            kp[MPII_JOINTS.index("l_wrist")] = (90, 60, 2)
            return Image.new("RGB", (128, 128)), 1.0, kp, np.array([63.5, 63.5]), 128 / 250

        def norm(self, i, keypoints):
            return 1.0

    cfg = hr.Config(input_size=128, scale_range=(1, 1), rot_range=0)
    ds = hr.PoseData(One(), cfg, 4, train=True)
    ds.augmentation = lambda i: (1.0, 0.0, True)  # force the flip
    kp = ds[0]["kp_crop"].numpy()
    # x -> 127 - x, and the joint that was the right wrist is now the left one.
    assert kp[MPII_JOINTS.index("l_wrist"), :2] == pytest.approx([87, 50], abs=1e-4)
    assert kp[MPII_JOINTS.index("r_wrist"), :2] == pytest.approx([37, 60], abs=1e-4)


# ----------------------------------------------------------------------------- architectures
def count(m):
    return sum(p.numel() for p in m.parameters())


def test_bilinear_deconvolution_initialisation():
    assert bilinear_kernel(8, 4).tolist() == pytest.approx([.125, .375, .625, .875, .875, .625, .375, .125])
    assert bilinear_kernel(4, 4).tolist() == [1, 1, 1, 1]    # k = s: nearest neighbour
    up = torch.nn.ConvTranspose2d(2, 2, 8, stride=4, padding=2)
    init_deconv_bilinear(up)
    out = up(torch.ones(1, 2, 6, 6))
    assert out.shape[-1] == 24
    assert torch.allclose(out[:, :, 2:-2, 2:-2], torch.ones(1, 2, 20, 20))  # constant stays constant


def test_vgg_networks_match_tables_1_and_2():
    with torch.device("meta"):
        det = hr.VGGDetector()
        reg = hr.VGGRegressor(3 + 16)
    # Table 1: VGG-16 convolutions (14,714,688 in torchvision) + fc6/fc7 as
    # 7x7 / 1x1 convolutions + three 1x1 scoring layers of N = 16.
    fc = (512 * 49 * 4096 + 4096) + (4096 * 4096 + 4096)
    scores = (4096 + 512 + 256) * 16 + 3 * 16
    assert count(det) == 14_714_688 + fc + scores
    # Table 2, by hand: (cin * cout * k^2 + cout) per layer, deconv 16 x 16 x 8 x 8 + 16.
    layers = [(19, 64, 9), (64, 64, 13), (64, 128, 13), (128, 256, 15), (256, 512, 1),
              (512, 512, 1), (512, 16, 1), (16, 16, 8)]
    assert count(reg) == sum(ci * co * k * k + co for ci, co, k in layers)
    names = set(dict(det.vgg.named_parameters()))
    assert {"features.0.weight", "features.28.weight"} <= names
    # Compact shapes: stride 1 in and out.
    det, reg = hr.VGGDetector(width=0.125), hr.VGGRegressor(19, width=0.125)
    x = torch.randn(1, 3, 96, 96)
    assert det(x).shape == (1, 16, 96, 96)
    assert reg(torch.randn(1, 19, 96, 96)).shape == (1, 16, 96, 96)


def test_residual_networks_match_tables_3_and_4():
    with torch.device("meta"):
        det = hr.ResidualDetector()
        reg = hr.HourglassRegressor(3 + 16)
    # Table 3: ResNet-152 (60,192,808 in torchvision) minus its fc (2048 x 1000
    # + 1000), plus B6 (2048 x 16 + 16) and B7 (16 x 16 x 4 x 4 + 16).
    assert count(det) == 60_192_808 - 2_049_000 + (2048 * 16 + 16) + (16 * 16 * 16 + 16)
    assert len(det.resnet.layer3) == 36                      # not Table 3's "38x"
    tv = set(ResNet(depth=152, width=0.0625).state_dict()) - {"fc.weight", "fc.bias"}
    assert set(det.resnet.state_dict()) == tv                # torchvision's names
    assert reg.hourglass.up.kernel_size == (2, 2) and reg.hourglass.up.stride == (2, 2)   # D5
    assert reg.d7.out_channels == 16 and reg.d6[0].out_channels == 512                    # D6, D7
    # Strides at full width on a small input: both output H/4 x W/4.
    det, reg = hr.ResidualDetector().eval(), hr.HourglassRegressor(19).eval()   # 1x1 waist: BN needs eval
    with torch.no_grad():
        assert det(torch.randn(1, 3, 64, 64)).shape == (1, 16, 16, 16)
        assert reg(torch.randn(1, 19, 64, 64)).shape == (1, 16, 16, 16)
    # B5 has stride 1: layer4 keeps layer3's stride 16.
    assert det.resnet.layer4[0].conv2.stride == (1, 1)


def test_the_toy_detector_keeps_the_papers_16_x_16_feature_cells():
    """The paper's stride-16 detector sees 16 x 16 cells of a 256 px crop;
    the toy's 128 px crop keeps them with features at stride 8 (B4 unstrided
    too), and B7 then upsamples x2 to the same stride-4 output."""
    cfg = hr.toy_config("residual")
    assert cfg.detector_stride == 8 and hr.paper_config("residual").detector_stride == 16
    toy = hr.Cascade(cfg).first.eval()
    paper = hr.ResidualDetector(cfg.width, cfg.resnet_blocks).eval()
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        cells = [net.resnet.features(x).shape[-1] for net in (paper, toy)]
        assert cells == [8, 16]
        assert toy(x).shape == paper(x).shape == (1, 16, 32, 32)
    assert toy.up.kernel_size == toy.up.stride == (2, 2) and paper.up.stride == (4, 4)
    assert set(toy.state_dict()) == set(paper.state_dict())           # strides change no weight names
    with pytest.raises(ValueError, match="16"):
        hr.ResidualDetector(feature_stride=4)


def test_added_layers_start_as_the_paper_says():
    det, reg = hr.ResidualDetector(width=0.125, blocks=(1, 1, 1, 1)), hr.HourglassRegressor(19, width=0.125, depth=2)
    assert det.score.weight.abs().sum() == 0                              # B6: zero
    assert reg.d7.weight.abs().sum() == 0                                 # D7: zero
    assert torch.all(reg.hourglass.up.weight[0, 0] == 1)                  # D5: bilinear (k = s)
    x = torch.randn(2, 19, 64, 64)
    assert reg(x).abs().max() == 0                                        # starts at 0


def test_cascade_stacks_image_then_heatmaps_and_variants_differ():
    cfg = hr.toy_config("residual")
    cfg.input_size = 64
    seen = {}
    model = hr.Cascade(cfg)
    model.second.register_forward_pre_hook(lambda m, a: seen.setdefault("x", a[0]))
    image = torch.randn(2, 3, 64, 64)
    first, second = model(image)
    assert first.shape == second.shape == (2, 16, 16, 16)
    x = seen["x"]
    assert x.shape == (2, 19, 64, 64) and torch.equal(x[:, :3], image)
    assert x[:, 3:].min() >= 0 and x[:, 3:].max() <= 1                    # sigmoid heatmaps
    for variant, (kind, cascaded) in hr.VARIANTS.items():
        cfg.variant = variant
        m = hr.Cascade(cfg)
        assert m.first_kind == kind and (m.second is not None) == cascaded
    assert [s.name for s in hr.stages_to_run(cfg)] == ["detector", "regressor", "joint"]
    cfg.variant = "detection"
    assert [s.name for s in hr.stages_to_run(cfg)] == ["detector"]


def test_decode_finds_a_gaussian_peak_between_pixels():
    """The Taylor (DARK) step is exact on the log of a Gaussian; the old
    quarter-pixel step would be off by up to 0.25 px, the argmax by 0.5."""
    h, w = 16, 20
    yy, xx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    centres = [(5.3, 7.8), (12.62, 3.45), (9.95, 10.5)]
    maps = torch.stack([torch.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 2.5 ** 2)) for x, y in centres])[None]
    np.testing.assert_allclose(hr.decode(maps, blur=0)[0].numpy(), centres, atol=1e-3)
    # Smoothing a Gaussian gives a wider Gaussian with the same centre.
    np.testing.assert_allclose(hr.decode(maps)[0].numpy(), centres, atol=1e-2)


def test_decode_methods_argmax_quarter_taylor_by_hand():
    """``--decode``: the maximum pixel; a quarter pixel towards the larger
    neighbour on each axis (2016's convention); the Taylor step (exact on a
    Gaussian's log). One Gaussian peak at (5.3, 7.8): argmax (5, 8), quarter
    (5.25, 7.75)."""
    h, w = 16, 20
    yy, xx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    maps = torch.exp(-((xx - 5.3) ** 2 + (yy - 7.8) ** 2) / (2 * 2.5 ** 2))[None, None]
    assert hr.decode(maps, method="argmax")[0, 0].tolist() == [5.0, 8.0]
    assert hr.decode(maps, method="quarter")[0, 0].tolist() == [5.25, 7.75]
    np.testing.assert_allclose(hr.decode(maps, blur=0, method="taylor")[0, 0].numpy(), [5.3, 7.8], atol=1e-3)
    with pytest.raises(ValueError, match="argmax, quarter, taylor"):
        hr.decode(maps, method="soft")
    cfg = hr.build_config(hr.parse_args(["--decode", "quarter"]))
    assert cfg.decode == "quarter" and hr.Config().decode == "taylor"


def test_decode_falls_back_to_the_quarter_pixel_step_and_none_across_the_border():
    maps = torch.zeros(1, 2, 8, 8)
    maps[0, 0, 3, 0] = 1.0                     # on the left border: no step in x ...
    maps[0, 0, 2, 0] = 0.5                     # ... upper neighbour higher -> -0.25 in y
    maps[0, 1, 7, 2] = 1.0                     # on the bottom border: no step in y ...
    maps[0, 1, 7, 3] = 0.5                     # ... right neighbour higher -> +0.25 in x
    maps[0, 1, 7, 1] = 0.2
    assert hr.decode(maps)[0].tolist() == [[0.0, 2.75], [2.25, 7.0]]


# ----------------------------------------------------------------------------- FCN alignment (§3.1)
def copying_vgg_detector():
    """A compact VGG-FCN whose every convolution copies channel 0 to channel 0
    (centre tap 1, everything else 0): a bright square in the image stays a
    bright square in pool3, pool4 and pool5, so each scoring path of FCN-8s
    shows where it places the square."""
    det = hr.VGGDetector(width=1 / 16).eval()
    with torch.no_grad():
        for m in det.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.zero_(), m.bias.zero_()
                k = m.kernel_size[0] // 2
                m.weight[0, 0, k, k] = 1.0
    return det


@pytest.mark.parametrize("size", [380, 372, 384])
def test_vgg_fcn_paths_place_a_bright_point_at_the_same_spot(size):
    # §3.1's 380 px input is not a multiple of 32: pool3/4/5 are floored to
    # 47/23/11 px. A bright 32 x 32 square on the stride-32 grid (column 9,
    # row 2: centre (303.5, 79.5)) is one pool5 pixel, 2x2 pool4 pixels and
    # 4x4 pool3 pixels; each path's upsampled scores must be centred on it.
    det = copying_vgg_detector()
    x = torch.zeros(1, 3, size, size)
    x[0, 0, 64:96, 288:320] = 1.0
    paths = {"fc7 (stride 32)": det.score_fc7, "pool4 (stride 16)": det.score_pool4,
             "pool3 (stride 8)": det.score_pool3}
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float64),
                            torch.arange(size, dtype=torch.float64), indexing="ij")
    for name, keep in paths.items():
        with torch.no_grad():
            for p in paths.values():
                p.weight[0, 0] = 1.0 if p is keep else 0.0
            out = det(x)[0, 0].double()                          # (H, W) at stride 1
        assert out.shape == (size, size)
        centre = [(out * xs).sum() / out.sum(), (out * ys).sum() / out.sum()]
        assert [float(c) for c in centre] == pytest.approx([303.5, 79.5], abs=0.01), name


# ----------------------------------------------------------------------------- schedules
def test_vgg_stage_1_rate_is_converted_for_the_loss_it_minimises():
    # Caffe's 1e-8 -> 1e-9 was for a loss summed over parts: Eq. (1) (sigmoid
    # cross-entropy) needs x N, Eq. (2) (Euclidean, halved by Caffe) x N / 2.
    n = hr.N_PARTS
    for variant, factor in (("detection+regression", n), ("detection", n),
                            ("regression", n / 2), ("regression+regression", n / 2)):
        cfg = hr.build_config(hr.parse_args(["--data", "mpii", "--arch", "vgg", "--variant", variant]))
        assert (cfg.stages[0].lr, cfg.stages[0].lr_end) == pytest.approx((1e-8 * factor, 1e-9 * factor)), variant
        assert cfg.stages[1].lr == pytest.approx(1e-5 * n / 2)    # the regressor: Eq. (2) always


def test_fig2_claim_is_an_aggregate_and_its_example_the_median_case(tmp_path):
    """Fig. 2 as a number: the mean detection and regression map values at
    the true locations of visible and occluded parts; the example drawn is
    the occluded limb joint with the median (regression - detection)."""
    cfg = hr.toy_config("residual")
    data = hr.PoseData(ToySource(0, 24), cfg, 4, train=False)

    class Constant(torch.nn.Module):
        """Detector logits 0 (heatmap 0.5) everywhere; the regressor's maps
        hold the joint index / 16 everywhere."""
        stride = 4

        def forward(self, image):
            B, _, H, W = image.shape
            first = torch.zeros(B, 16, H // 4, W // 4)
            second = torch.arange(16.0).div(16).view(1, 16, 1, 1).expand(B, 16, H // 4, W // 4)
            return first, second

        def first_maps(self, first):
            return torch.sigmoid(first)

    model = Constant()
    stats, cases = hr.confidence_at_truth(model, data)
    assert stats["visible"]["detection"] == pytest.approx(0.5)
    assert stats["occluded"]["detection"] == pytest.approx(0.5)
    # The regression mean is the mean joint index / 16 of the counted parts.
    v = np.concatenate([data[i]["kp_crop"][:, 2].numpy()[None] for i in range(24)])
    occluded_j = np.nonzero(v == 1)[1]
    assert stats["occluded"]["regression"] == pytest.approx((occluded_j / 16).mean(), abs=0.02)
    assert len(cases) > 3 and all(d == pytest.approx(0.5) for _, _, d, _ in cases)
    assert hr.figure_fig2(model, data, tmp_path / "fig2.png", cases).is_file()


def test_target_sizes_scale_with_the_body_or_stay_as_written():
    """§3's 10 px radius and 5 px sigma are for a 200 px body: at VGG's 380 px
    input (a 304 px body) they scale by 1.52; ``--no-scale-targets`` keeps
    them as written."""
    cfg = hr.paper_config("vgg")
    kp = np.array([[190.0, 190.0, 2.0]] * len(cfg.joints), np.float32)
    det, reg, _ = hr.make_targets(kp, cfg, 4)
    r = (det[0].sum() / np.pi) ** 0.5 * 4                      # disk radius in input px from its area
    assert r == pytest.approx(10 * 380 / 1.25 / 200, rel=0.05)
    cfg.scale_targets = False
    det, _, _ = hr.make_targets(kp, cfg, 4)
    assert (det[0].sum() / np.pi) ** 0.5 * 4 == pytest.approx(10, rel=0.08)
    assert hr.build_config(hr.parse_args(["--no-scale-targets"])).scale_targets is False
