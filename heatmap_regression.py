"""Human Pose Estimation via Convolutional Part Heatmap Regression.

A. Bulat and G. Tzimiropoulos, ECCV 2016 -- a reference implementation that
reads top to bottom in the order of the paper (text in
``../shared/papers/heatmap_regression_eccv2016.txt``), in three parts:

  I   the method: §3 targets and losses (Eq. 1, Eq. 2); §3.1 VGG-FCN (Tables
      1-2); §3.2 residual (Tables 3-4); the cascade and Table 5's variants;
      §3.1 / §3.2 "Training"; §4 decoding, PCKh / PCK, Fig. 2
  II  the paper's tables: §4.2's Table 5 (``--variant all``)
  III run it: the configuration from the flags; train, evaluate, demo

The cascade: a part *detection* network sees the image and outputs one
heatmap per part; those N heatmaps, stacked with the image, are the input of a
*regression* network that outputs one confidence map per part. The detector
is trained on visible parts only; the regressor on every annotated part, so
that an occluded part -- weak in the heatmaps -- is placed from context. The
N parts are the run's (``Config.joints``): MPII's 16 (LSP maps into them), or
COCO's 17 / AI Challenger's 14 as paper 2's top-down baseline.

The lab bench (crops, data sources, metrics, the training loop, figures,
photos) is in ``common/``; studies beyond the paper's tables in
``walkthrough/studies.py``. ``python heatmap_regression.py``: the toy, ~5 min.
"""
import argparse
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import cli, demo, harness, plotting, runs
from common.backbones import RESNET_BLOCKS, VGG16, ResNet, load_fcn_weights, load_resnet_features
from common.cli import UsageError
from common.coco_eval import write_json
from common.crops import body_px, crop_side
from common.layers import ch, init_deconv_bilinear
from common.metrics import bootstrap_total, format_table, head_note
from common.skeleton import MPII_JOINTS, joint_flip, limb_joints
from common.sources import (DATA_JOINTS, TOY_SIZES, check_joints, load_or_skip, load_sources, score_people,
                            split_name)
from common.transforms import (apply_affine, crop_matrix, from_stride, gaussian_blur, invert_affine, to_stride,
                               to_tensor, to_uint8, values_at, warp_image)

N_PARTS = len(MPII_JOINTS)  # N in Eqs. (1)-(2) by default: MPII's 16 parts; LSP maps into them


# =============================================================================
# I. The method -- configuration: one place for every default. Paper values
#    carry their source.
# =============================================================================
@dataclass
class Stage:
    """One of the three training stages of §3.1 / §3.2 "Training":
    "detector" ("We started by first training the body part detection
    network": the first network alone, on its own loss); "regressor" ("we
    froze the training of the detector layers": Eq. (2) on the second
    network, the first frozen, in eval mode); "joint" ("We then trained
    jointly both networks": both, on the sum of both losses)."""
    name: str          # "detector", "regressor" or "joint"
    epochs: int
    optimizer: str     # "sgd", "rmsprop" or "adam"
    lr: float          # learning rate at the first epoch
    lr_end: float      # ... and at the last (geometric decay in between)
    momentum: float = 0.9

    def __post_init__(self):
        if self.name not in ("detector", "regressor", "joint"):
            raise ValueError(f"stage {self.name!r}: expected 'detector', 'regressor' or 'joint'")

    @property
    def trains_first(self):         # on Eq. (1) (Eq. (2): Table 5's regression-first rows); else frozen
        return self.name != "regressor"

    @property
    def trains_second(self):        # on Eq. (2); stage 1 does not even run it (it is untrained)
        return self.name != "detector"


@dataclass
class Config:
    arch: str = "residual"        # "vgg" (§3.1) or "residual" (§3.2)
    variant: str = "detection+regression"   # a row of Table 5, see VARIANTS
    input_size: int = 256         # §3.2 "rescaled to 256x256"; §3.1 uses 380
    width: float = 1.0            # channel multiplier: 1.0 = the paper's networks
    resnet_blocks: tuple = RESNET_BLOCKS[152]   # (3, 8, 36, 3) (Table 3 says "38x", see below)
    hourglass_depth: int = 4      # 256 -> 64 -> 4 px at the waist, as in [19]
    detector_stride: int = 16     # §3.2: ResNet's 32 with B5's stride set to 1 (8: B4's too, toy)
    batch_size: int = 8           # §3.2 "trained with a batch size of 8"
    aug: str = "random"           # §3.2 "applied randomly"; §3.1 "predefined step sizes"
    scale_range: tuple = (0.7, 1.3)    # §3.1 "scaling (between 0.7 and 1.3)"
    rot_range: float = 40.0            # §3.1 "rotation (between -40 and 40 degrees)"
    disk_radius: float = 10.0     # §3 "10 px ... for a body size of 200 px"
    sigma: float = 5.0            # §3 "Gaussian with a standard deviation of 5px"
    # Both sizes scale with the person's size in the crop (make_targets).
    # Paper: the radius is "10 px ... for a body size of 200 px"; sigma's 5 px
    # names no body size. Here: read against the same 200 px body, so at
    # VGG's 380 px input (a 304 px body) sigma is 7.6 px and the radius 15.2;
    # False keeps 5 px and 10 px as written at any input size.
    scale_targets: bool = True
    stages: list = field(default_factory=list)
    seed: int = 0
    flip_test: bool = False       # Paper: no test-time flip (the toy uses one, see toy_config)
    decode: str = "taylor"        # Paper: unspecified; "quarter" was 2016's convention (see decode)
    # The N parts of Eqs. (1)-(2), by name, in the data set's order (the output
    # channels); flip pairs (l_/r_) and bones follow from the names.
    joints: tuple = MPII_JOINTS


def residual_stages():
    # §3.2 Training: detector ~50 epochs, lr 1e-3 -> 2.5e-5; regressor 40
    # epochs at 1e-4 then 2.5e-5 (we decay geometrically; the paper does not
    # say when it switched); then 50 joint epochs. Paper: joint lr
    # unspecified. Here: 2.5e-5, the last lr used. Optimiser: §3.2's "All
    # added layers [B6, B7] were initialized with 0 and trained using rmsprop
    # [35]" names no other, with one rate schedule for "the detectors" as a
    # whole. Here: one RMSprop for the whole network in every stage,
    # pretrained layers included, no per-layer rates (paper: unspecified).
    # RMSprop divides by a running gradient RMS, so these Torch7 rates carry
    # over whatever the loss normalisation (sum or mean over pixels).
    return [Stage("detector", 50, "rmsprop", 1e-3, 2.5e-5),
            Stage("regressor", 40, "rmsprop", 1e-4, 2.5e-5),
            Stage("joint", 50, "rmsprop", 2.5e-5, 2.5e-5)]


def vgg_stages(first_kind="detection", n=N_PARTS):
    # §3.1 Training: detector ~20 epochs, lr 1e-8 -> 1e-9; regressor 20 epochs
    # at 1e-5 then 1e-6; joint 10 epochs. Those are Caffe rates for SGD on
    # losses *summed* over parts and pixels (Caffe's sigmoid cross-entropy
    # and Euclidean layers divide by the batch only; Euclidean also halves).
    # Our Eq. (1) averages over the N parts, so equal steps need lr x N (16
    # on MPII; ``n`` = the run's number of parts); our Eq. (2) averages over
    # N with no 1/2, so lr x N/2 (8). Stage 1 of
    # Table 5's regression-first variants ("regression", [16]) minimises
    # Eq. (2), so its rate converts by N/2 too. Momentum: paper unspecified;
    # here 0.99, the value of the FCN [13] it fine-tunes from, suited to such
    # tiny rates. Joint lr: paper unspecified; here the regressor's last rate.
    k1 = n if first_kind == "detection" else n / 2          # Eq. (1) or Eq. (2)
    return [Stage("detector", 20, "sgd", 1e-8 * k1, 1e-9 * k1, momentum=0.99),
            Stage("regressor", 20, "sgd", 1e-5 * n / 2, 1e-6 * n / 2, momentum=0.99),
            Stage("joint", 10, "sgd", 1e-6 * n / 2, 1e-6 * n / 2, momentum=0.99)]


def paper_config(arch, variant="detection+regression", joints=MPII_JOINTS):
    """The full-data configuration of §3.1 (vgg) or §3.2 (residual) for a
    row of Table 5 (``variant``, see ``VARIANTS``), for parts ``joints``."""
    joints = tuple(joints)
    if arch == "vgg":
        # §3.1: "scaled such that a standing-up human has height 300 px",
        # "resized to 380x380"; augmentation "using a set of predefined step
        # sizes". Batch size: paper unspecified; here 8 as for the residual net.
        first_kind, _ = VARIANTS[variant]
        return Config(arch="vgg", variant=variant, input_size=380, aug="steps",
                      stages=vgg_stages(first_kind, len(joints)), joints=joints)
    return Config(arch="residual", variant=variant, input_size=256, aug="random", stages=residual_stages(),
                  joints=joints)


def toy_config(arch):
    """A laptop-sized version of the same three stages for the toy data.

    Not from the paper; each choice measured on the validation figures
    (README, "Expected toy results") to train all three stages within a
    5-minute lecture run on two CPU cores: compact networks (width x 1/4,
    fewer residual blocks), 128 px inputs, Adam; detector features at stride
    8 (``detector_stride``: 16 x 16 cells at 128 px, as the paper's 256 px at
    stride 16); the final evaluation averaged with the mirrored crop
    (``flip_test``; ``--no-flip-test`` scores as the paper did). The targets
    are the paper's (``make_targets``).
    """
    stages = [Stage("detector", 3, "adam", 2e-3, 5e-4),
              Stage("regressor", 2, "adam", 1e-3, 2e-4),
              Stage("joint", 1, "adam", 6e-4, 1e-4)]
    # The generator already rotates figures by up to 30 degrees and varies
    # their size, so the toy augmentation is milder than §3.1's.
    return Config(arch=arch, input_size=128, width=0.25, resnet_blocks=(1, 1, 2, 1),
                  hourglass_depth=3, detector_stride=8, batch_size=8,
                  scale_range=(0.85, 1.15), rot_range=20.0, flip_test=True,
                  aug="steps" if arch == "vgg" else "random", stages=stages)


def lsp_fine_tuning(cfg):
    """§3.1 "For LSP, we fine-tuned the network for 10 epochs" (VGG), §3.2
    "changing only the number of epochs to 30" (residual): one stage, the
    whole cascade, from the MPII model, at the last rate of its training."""
    last = cfg.stages[-1]
    return [Stage("joint", 10 if cfg.arch == "vgg" else 30, last.optimizer, last.lr, last.lr_end, last.momentum)]


CROWD_EPOCHS = (3, 4, 2)      # detector, regressor, joint: half the people per epoch of toy_config's 3 / 2 / 1


def toy_crowd_config(arch):
    """``toy_config`` for ``--data toy-crowd``: the same compact cascade on
    person crops of paper 2's toy scenes (``common.sources.ToyCrowdSource``),
    paper 1 as paper 2's top-down baseline. Not from either paper:
    ``CROWD_EPOCHS`` and the number of scenes (``common.sources.TOY_SIZES``)
    fit a 5-minute lecture run; a box of 58-184 px in a 192 px scene is
    cropped to the same 128 px input."""
    cfg = toy_config(arch)
    for s, e in zip(cfg.stages, CROWD_EPOCHS):
        s.epochs = e
    return cfg


# §3 Method -- targets ========================================================
def target_scale(cfg):
    """How much §3's target sizes (given for "a body size of 200 px") grow in
    this crop: the body's size in it over 200 px, or 1 (``cfg.scale_targets``).
    The crop (``common.crops``) is 1.25 x the body: 204.8 px of 256."""
    return body_px(cfg.input_size) / 200.0 if cfg.scale_targets else 1.0


def render_maps(xy, size, stride, kind, radius):
    """Per-part maps ``(J, size, size)`` at ``stride`` for crop points ``xy`` (J, 2).

    ``kind="disk"``: 1 within ``radius`` input px of the part, else 0 (§3,
    part detection targets). ``kind="gauss"``: ``exp(-d^2 / 2 radius^2)``
    (§3, regression targets, ``radius`` = sigma).
    """
    c = to_stride(xy, stride)                                  # (J, 2) map coords
    g = np.arange(size, dtype=np.float32)
    dx2 = (g[None, :] - c[:, :1]) ** 2                          # (J, W)
    dy2 = (g[None, :] - c[:, 1:]) ** 2                          # (J, H)
    d2 = dy2[:, :, None] + dx2[:, None, :]                      # (J, H, W)
    r = radius / stride
    if kind == "disk":
        return (d2 <= r * r).astype(np.float32)
    return np.exp(-d2 / (2 * r * r)).astype(np.float32)


def make_targets(kp_crop, cfg, stride):
    """Both targets of §3 for one crop.

    kp_crop: (J, 3) keypoints in crop pixels with v in {0, 1, 2}.
    Returns detection disks (visible parts only: "the detection network is
    trained using visible parts only"), regression Gaussians (every annotated
    part, "be it visible or not") and the per-part loss mask (0 = not
    annotated: "stopping the backpropagation for the missing points").
    An occluded part gets an all-zero detection map -- its detector is taught
    *not* to fire there -- which is what makes Fig. 2's weak heatmaps.
    """
    size = cfg.input_size // stride
    scale = target_scale(cfg)
    v = kp_crop[:, 2]
    det = render_maps(kp_crop[:, :2], size, stride, "disk", cfg.disk_radius * scale)
    reg = render_maps(kp_crop[:, :2], size, stride, "gauss", cfg.sigma * scale)
    det *= (v == 2)[:, None, None]
    reg *= (v > 0)[:, None, None]
    return det, reg, (v > 0).astype(np.float32)


# §3 Method -- losses =========================================================
def detection_loss(logits, target, mask):
    """Eq. (1), pixelwise sigmoid cross-entropy, as the paper writes it::

        l1 = -1/N sum_n sum_ij [ p_nij log p^_nij + (1 - p_nij) log(1 - p^_nij) ]

    summed over pixels, averaged over the N parts, then over the batch. (The
    paper's Eq. (1) omits the minus sign of a negative log-likelihood.)
    ``mask`` (B, N) zeroes unannotated parts. logits/target: (B, N, H, W).
    Computed from logits for numerical stability.
    """
    bce = F.binary_cross_entropy_with_logits(logits.float(), target, reduction="none")
    per_part = bce.sum(dim=(2, 3)) * mask                      # (B, N)
    return per_part.sum(1).div(logits.shape[1]).mean()


def regression_loss(pred, target, mask):
    """Eq. (2), L2 between predicted and ground-truth confidence maps::

        l2 = 1/N sum_n sum_ij || M~_n(i, j) - M_n(i, j) ||^2

    summed over pixels, averaged over parts and batch; ``mask`` as above.
    """
    se = (pred.float() - target) ** 2
    per_part = se.sum(dim=(2, 3)) * mask                       # (B, N)
    return per_part.sum(1).div(pred.shape[1]).mean()


# §3.1 VGG-FCN part heatmap regression ========================================
class VGGDetector(nn.Module):
    """Part detection subnetwork, Table 1 / Fig. 3: VGG-16 as an FCN-8s [13].

    A1-A5 are VGG-16's conv blocks, A6-A7 its fully connected layers turned
    into 7x7 and 1x1 convolutions, A8 1x1 scoring layers on pool3, pool4 and
    A7, A9 bilinear upsampling. Scores from stride 32 are upsampled and added
    to those from pool4 (stride 16), then pool3 (stride 8): "combining the
    earlier level CNN features, thus reducing the stride to 8 px", and finally
    upsampled x8 to the input resolution (output stride 1).

    Paper: Table 1's A9 is "bilinear upsample"; FCN-8s learns its 2x steps
    from a bilinear start. Here: fixed bilinear interpolation throughout, as
    the table says. FCN pads the first conv by 100 px to align its 7x7 fc6;
    here fc6 is padded by 3 instead, which keeps its map on pool5's grid.

    Alignment. The paths only add up if pixel k of a stride-s map means the
    same image pixels in every path: the block [s k, s k + s), centre
    s k + (s - 1) / 2. Each 2x2 pool halves exactly only while the side is
    even; §3.1's 380 px is not a multiple of 32, so pool3/4/5 are floored to
    47, 23 and 11 px and stretching 11 -> 23 -> 47 -> 380 shifts the scores
    by an amount that grows across the image (25 px on the fc7 path at the
    far edge). FCN's answer is padding and cropping with known offsets; here:
    the image is padded at the bottom and right to a multiple of 32 (zeros:
    the normalised mean colour), every upsampling is then an exact x2 (x8)
    whose half-pixel bilinear weights map centres onto centres, and the
    output is cropped back to the input size. Top-left pixels keep their
    coordinates; at 256 or 384 px nothing is padded.
    """
    stride = 1
    align = 32                                          # pool5's stride

    def __init__(self, width=1.0, n_parts=N_PARTS):
        super().__init__()
        self.vgg = VGG16(width=width)
        self.vgg.avgpool = self.vgg.classifier = None    # replaced by A6-A7 below
        c3, c4, c5 = ch(256, width), ch(512, width), ch(512, width)
        self.fc6 = nn.Conv2d(c5, ch(4096, width), 7, padding=3)      # A6
        self.fc7 = nn.Conv2d(ch(4096, width), ch(4096, width), 1)    # A7
        self.drop = nn.Dropout2d(0.5)                                # as VGG's fc
        self.score_fc7 = nn.Conv2d(ch(4096, width), n_parts, 1)      # A8
        self.score_pool4 = nn.Conv2d(c4, n_parts, 1)                 # A8
        self.score_pool3 = nn.Conv2d(c3, n_parts, 1)                 # A8
        for m in (self.score_fc7, self.score_pool4, self.score_pool3):
            nn.init.zeros_(m.weight), nn.init.zeros_(m.bias)        # FCN's choice

    def load_imagenet(self, path):
        """torchvision VGG-16 weights; fc6/fc7 from its classifier, reshaped."""
        load_fcn_weights(self.vgg, self.fc6, self.fc7, path)

    def forward(self, x):                                            # (B, 3, H, W)
        H, W = x.shape[-2:]
        x = F.pad(x, (0, -W % self.align, 0, -H % self.align))      # to a multiple of 32
        s = self.vgg.stages(x)
        h = self.drop(F.relu(self.fc7(self.drop(F.relu(self.fc6(s["pool5"]))))))
        score = self.score_pool4(s["pool4"]) + upsample(self.score_fc7(h), 2)   # stride 16
        score = self.score_pool3(s["pool3"]) + upsample(score, 2)               # stride 8
        return upsample(score, 8)[..., :H, :W]                       # (B, N, H, W) logits


def upsample(t, factor):
    """Bilinear upsampling by an integer ``factor`` (A9). With half-pixel
    weights (``align_corners=False``) fine pixel i reads coarse coordinate
    (i + 0.5) / factor - 0.5: the centre of block i at stride s / factor
    lands on the centre of block k at stride s, so maps stay aligned."""
    return F.interpolate(t, scale_factor=factor, mode="bilinear", align_corners=False)


class VGGRegressor(nn.Module):
    """Regression subnetwork, Table 2 / Fig. 4: C1-C4 large kernels (9, 13,
    13, 15) "to capture a sufficient local context", C5-C7 1x1, C8 an 8x8
    deconvolution of stride 4.

    Paper: C1-C7 have stride 1 and C8 upsamples x4, which fits only if the
    stacked input enters at a quarter of the image resolution; the text also
    says the kernels vary "from 7 to 15" where Table 2 lists 9-15. Here: the
    stacked input is average-pooled by 4 (95x95 for 380 px), Table 2's kernels
    are used, and C8 (initialised bilinear) returns to the input resolution.
    §3.1: "all layers were initialized with a Gaussian distribution (std = 0.01)".
    """
    stride = 1

    def __init__(self, in_ch, width=1.0, n_parts=N_PARTS):
        super().__init__()
        layers, c_prev = [], in_ch
        for c, k in ((64, 9), (64, 13), (128, 13), (256, 15), (512, 1), (512, 1)):   # C1-C6
            layers += [nn.Conv2d(c_prev, ch(c, width), k, padding=k // 2), nn.ReLU(inplace=True)]
            c_prev = ch(c, width)
        layers.append(nn.Conv2d(c_prev, n_parts, 1))                                  # C7
        self.body = nn.Sequential(*layers)
        self.up = nn.ConvTranspose2d(n_parts, n_parts, 8, stride=4, padding=2)        # C8
        for m in self.body:
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01), nn.init.zeros_(m.bias)
        init_deconv_bilinear(self.up)

    def forward(self, x):                                 # (B, 3 + N, H, W)
        return self.up(self.body(F.avg_pool2d(x, 4)))    # (B, N, H, W)


# §3.2 Residual part heatmap regression =======================================
class ResidualDetector(nn.Module):
    """Part detection subnetwork, Table 3 / Fig. 5: ResNet-152, B1-B5 as in
    [10] but B5 (``layer4``) with stride 1, then B6 a 1x1 scoring layer and B7
    a 4x4 deconvolution of stride 4.

    Paper: Table 3 lists "38x" bottleneck modules in B4; ResNet-152 has 36
    (3 + 8 + 36 + 3 blocks x 3 layers + 2 = 152) and its ImageNet weights are
    what the detector is fine-tuned from, so we use 36. Paper: B7 "upsamples
    ... to match the resolution of the input", but B1-B4 reach stride 16 and
    x4 brings that to stride 4. Here: output stride 4 (64x64 maps for 256 px
    input), the resolution of the hourglass regressor's output too. Paper:
    "all added layers were initialized with 0"; if both B6 and B7 start at
    zero, each one's gradient is the other's (zero) weight and neither can
    ever move. Here: B6 zero, B7 a bilinear (here nearest, see
    ``common.layers.bilinear_kernel``) upsampling filter, as the regressor's
    deconvolutions.

    ``feature_stride``: 16 is the paper's. 8 (the toy's, ``toy_config``) sets
    B4's stride to 1 as well, and B7 becomes a 2x2 deconvolution of stride 2.
    """
    stride = 4

    def __init__(self, width=1.0, blocks=(3, 8, 36, 3), n_parts=N_PARTS, feature_stride=16):
        super().__init__()
        if feature_stride not in (8, 16):
            raise ValueError(f"detector feature stride must be 16 (the paper's) or 8, got {feature_stride}")
        self.resnet = ResNet(depth=152, width=width, blocks=blocks)
        self.resnet.avgpool = self.resnet.fc = None       # §3.2 "removed both"
        # §3.2 "modified B5 by changing the stride of its convolutional layers
        # from 2 px to 1 px" -- no dilation is mentioned, so none is added.
        strided = [self.resnet.layer4] + ([self.resnet.layer3] if feature_stride == 8 else [])
        for layer in strided:
            layer[0].conv2.stride = (1, 1)
            layer[0].downsample[0].stride = (1, 1)
        c = self.resnet.out_channels["layer4"]
        up = feature_stride // self.stride
        self.score = nn.Conv2d(c, n_parts, 1)                                       # B6
        self.up = nn.ConvTranspose2d(n_parts, n_parts, up, stride=up)               # B7
        nn.init.zeros_(self.score.weight), nn.init.zeros_(self.score.bias)
        init_deconv_bilinear(self.up)

    def load_imagenet(self, path):
        """torchvision ResNet-152 weights (strict: B5's stride change alters no parameter)."""
        load_resnet_features(self.resnet, path, depth=152)

    def forward(self, x):                                  # (B, 3, H, W)
        return self.up(self.score(self.resnet.features(x)))  # (B, N, H/4, W/4)


class PreActBottleneck(nn.Module):
    """Bottleneck "as in [36]" (He et al., identity mappings): BN-ReLU-conv
    1x1 to c/2, 3x3, 1x1 back to c, added to the input -- the residual module
    of the hourglass network [19]."""

    def __init__(self, cin, cout):
        super().__init__()
        mid = max(1, cout // 2)
        self.branch = nn.Sequential(
            nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.Conv2d(cin, mid, 1),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True), nn.Conv2d(mid, mid, 3, padding=1),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True), nn.Conv2d(mid, cout, 1))
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        return self.skip(x) + self.branch(x)


def modules(c, n=3):
    """``n`` bottleneck modules of ``c`` channels (Table 4's "3x bottleneck")."""
    return nn.Sequential(*[PreActBottleneck(c, c) for _ in range(n)])


class Hourglass(nn.Module):
    """One level of the hourglass, Fig. 6 / Table 4: an upper branch of
    modules at this resolution (D2) beside a lower branch that max-pools and
    applies modules (D3), recurses (or D4 at the waist), and comes back up by
    a 2x2 stride-2 deconvolution (D5: "deconvolution layers ... as opposed to
    nearest neighbour upsampling used in [19]"); the branches are added."""

    def __init__(self, depth, c):
        super().__init__()
        self.upper = modules(c)                                        # D2
        self.down = nn.Sequential(nn.MaxPool2d(2, 2), modules(c))      # D3
        self.inner = Hourglass(depth - 1, c) if depth > 1 else modules(c)   # D4
        self.up = nn.ConvTranspose2d(c, c, 2, stride=2)                # D5

    def forward(self, x):
        return self.upper(x) + self.up(self.inner(self.down(x)))


class HourglassRegressor(nn.Module):
    """Regression subnetwork, Table 4: D1 (7x7 stride-2 conv, 2x2 pool), one
    hourglass of 256 channels at stride 4, D6 a 1x1 conv of 512, D7 the 1x1
    scoring layer.

    Paper: the output "is brought back to the input's resolution" by D5; the
    hourglass returns to the resolution it was entered at (stride 4), and
    that matches the detector's output and the targets. Here: stride 4.
    Paper: "all layers ... zero-initialized, except for the deconvolution
    layers ... bilinear". A network whose every conv is zero cannot learn
    (each layer's gradient is multiplied by the next one's zero weights).
    Here: the last conv of every residual branch and the scoring layer D7 are
    zero (the network starts as its identity paths and outputs 0 -- the spirit
    of the paper's choice), other convs keep PyTorch's default, deconvolutions
    are bilinear (nearest for k = s, see ``common.layers.bilinear_kernel``).
    """
    stride = 4

    def __init__(self, in_ch, width=1.0, depth=4, n_parts=N_PARTS):
        super().__init__()
        c = ch(256, width)
        self.d1 = nn.Sequential(                                       # D1
            nn.Conv2d(in_ch, ch(64, width), 7, stride=2, padding=3),
            nn.BatchNorm2d(ch(64, width)), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2),
            # Paper: how 64 channels become the hourglass's 256 is not shown.
            # Here: one bottleneck module with a 1x1 projection, as in [19].
            PreActBottleneck(ch(64, width), c))
        self.hourglass = Hourglass(depth, c)
        self.d6 = nn.Sequential(nn.Conv2d(c, ch(512, width), 1),       # D6
                                nn.BatchNorm2d(ch(512, width)), nn.ReLU(inplace=True))
        self.d7 = nn.Conv2d(ch(512, width), n_parts, 1)                # D7
        for m in self.modules():
            if isinstance(m, PreActBottleneck):
                nn.init.zeros_(m.branch[-1].weight), nn.init.zeros_(m.branch[-1].bias)
            elif isinstance(m, nn.ConvTranspose2d):
                init_deconv_bilinear(m)
        nn.init.zeros_(self.d7.weight), nn.init.zeros_(self.d7.bias)

    def forward(self, x):                                  # (B, 3 + N, H, W)
        return self.d7(self.d6(self.hourglass(self.d1(x))))   # (B, N, H/4, W/4)


# §3 The cascade and the variants of Table 5 (§4.2) ===========================
# Each variant is (what the first network is trained for, whether a second
# network regresses from the first one's maps stacked with the image):
VARIANTS = {
    "detection+regression": ("detection", True),    # the paper's cascade
    "detection": ("detection", False),              # "Detection only"
    "regression": ("regression", False),            # "Regression only": direct confidence-map regression
    "regression+regression": ("regression", True),  # "Regression+regression", the two-step idea of [16]
}


class Cascade(nn.Module):
    """§3, Fig. 1: first network -> N maps; the regressor sees the image
    stacked with those maps. For a detection first stage the maps are the
    sigmoid heatmaps; for the "regression+regression" variant [16] they are
    the first network's confidence maps as they are.

    The maps are upsampled (bilinear) to the image resolution before stacking
    so that each heatmap pixel sits on the image pixel it describes. Paper:
    the order of the stacked channels is unspecified ("the N heatmaps ...
    along with the input image"). Here: image first, then the N maps.

    N = ``len(cfg.joints)``. ``joints`` (names) and ``flip`` (the left/right
    permutation of the N channels, used by ``predict``'s flip test) are plain
    attributes, not state: a checkpoint holds weights, its config the names.
    """

    def __init__(self, cfg):
        super().__init__()
        self.first_kind, cascaded = VARIANTS[cfg.variant]
        self.joints = tuple(cfg.joints)
        self.flip = torch.as_tensor(joint_flip(self.joints), dtype=torch.long)
        n = len(self.joints)                                   # N in Eqs. (1)-(2)
        if cfg.arch == "vgg":
            self.first = VGGDetector(cfg.width, n_parts=n)
            self.second = VGGRegressor(3 + n, cfg.width, n_parts=n) if cascaded else None
        else:
            self.first = ResidualDetector(cfg.width, cfg.resnet_blocks, n_parts=n,
                                          feature_stride=cfg.detector_stride)
            self.second = (HourglassRegressor(3 + n, cfg.width, cfg.hourglass_depth, n_parts=n)
                           if cascaded else None)
        self.stride = self.first.stride

    def forward(self, image, first_only=False):
        """Returns ``(first_output, second_maps_or_None)``, both at ``stride``;
        ``first_output`` is raw (logits for a detector, see ``first_maps``)."""
        first = self.first(image)
        if first_only or self.second is None:
            return first, None
        maps = self.first_maps(first)
        if maps.shape[-1] != image.shape[-1]:
            maps = F.interpolate(maps, size=image.shape[-2:], mode="bilinear", align_corners=False)
        return first, self.second(torch.cat([image, maps], dim=1))   # (B, 3 + N, H, W) in

    def first_maps(self, first):
        """The first network's output as maps -- the one place a sigmoid is
        applied. A detector outputs logits (Eq. (1) is computed from them,
        for stability); its heatmaps are their sigmoid, in [0, 1]. A
        regression-first network [16] outputs confidence maps as they are."""
        return torch.sigmoid(first) if self.first_kind == "detection" else first

    def heatmaps(self, image, which="final"):
        """The maps a prediction is read from. ``which="final"``: the
        regressor's when there is one, else the first network's; ``"first"``:
        the first network's (the cascade's detector alone)."""
        first, second = self(image, first_only=which == "first")
        return second if second is not None else self.first_maps(first)


def input_multiple(cfg):
    """Input sizes the networks map back exactly. VGG: the regressor pools by
    4 and its C8 upsamples x4 (§3.1 uses 380 = 4 x 95). Residual: the
    hourglass enters at stride 4 and halves ``hourglass_depth`` times."""
    return 4 if cfg.arch == "vgg" else 4 * 2 ** cfg.hourglass_depth


# Data: crop, augment (§3.1 / §3.2 "Training"), targets =======================
class PoseData(harness.EpochDataset):
    """Crops, augments and builds both targets of §3 for one person.

    Augmentation (train only), §3.1: "flipping, scaling (between 0.7 and 1.3)
    and rotation (between -40 and 40 degrees)". VGG: "applied using a set of
    predefined step sizes" (Paper: the steps are unspecified. Here: scale in
    steps of 0.1, rotation in steps of 10 degrees). Residual: "applied
    randomly" (uniform). Flip probability: paper unspecified; here 0.5.
    A flip mirrors x and swaps left/right joints (``joint_flip`` of
    ``cfg.joints``: ``common.skeleton.MPII_FLIP`` for MPII). Box-based
    sources (toy crowds, COCO, AIC) are augmented alike around their crop
    (``common.crops.box_center_scale``); paper 1 has no translation
    augmentation, so neither do they.
    """

    def __init__(self, source, cfg, stride, train):
        self.source, self.cfg, self.stride, self.train = source, cfg, stride, train
        self.flip = joint_flip(cfg.joints)

    def augmentation(self, index):
        if not self.train:
            return 1.0, 0.0, False
        rng = harness.sample_rng(self.cfg.seed, self.epoch, index)
        lo, hi = self.cfg.scale_range
        rmax = self.cfg.rot_range
        if self.cfg.aug == "steps":
            s = rng.choice(np.round(np.arange(lo, hi + 1e-9, 0.1), 2))
            r = rng.choice(np.arange(-rmax, rmax + 1e-9, 10.0))
        else:
            s, r = rng.uniform(lo, hi), rng.uniform(-rmax, rmax)
        return float(s), float(r), bool(rng.random() < 0.5)

    def __getitem__(self, index):
        cfg, out = self.cfg, self.cfg.input_size
        s, rot, flip = self.augmentation(index)
        # The crop box is crop_side(scale, s) px wide and becomes ``out`` px:
        # per unit of the person's scale, the image may be decoded this much
        # smaller (``common.transforms.open_image``) at no loss. A corrupt
        # file: ``broken`` (``common.sources.load_or_skip``).
        img, factor, kp, center, scale, broken = load_or_skip(self.source, index, crop_side(1.0, s) / out,
                                                              len(cfg.joints), out)
        A = crop_matrix(center, crop_side(scale, s), out, rot, flip)
        crop = warp_image(img, A, out, factor)                       # (out, out, 3) uint8
        kp_crop = np.array(kp, dtype=np.float32, copy=True)
        kp_crop[:, :2] = apply_affine(A, kp[:, :2])
        if flip:
            kp_crop = kp_crop[self.flip]
        det, reg, mask = make_targets(kp_crop, cfg, self.stride)
        if broken:
            mask[:] = 0
        kp = np.asarray(kp, dtype=np.float32)
        return {"image": to_tensor(crop),                                # (3, out, out)
                "det": torch.from_numpy(det), "reg": torch.from_numpy(reg), "mask": torch.from_numpy(mask),
                "kp_crop": torch.from_numpy(kp_crop),                    # (J, 3) crop px
                "affine": torch.from_numpy(A),                           # image -> crop
                "keypoints": torch.from_numpy(kp),                       # (J, 3) image px
                "norm": float("nan") if broken else self.source.norm(index, kp), "index": index, "broken": broken}


# §3.1 / §3.2 Training: detector; regressor, detector frozen; both ============
def first_loss(model, first, batch):
    """Stage-1 loss: Eq. (1) for a detection network, Eq. (2) for the
    regression-first variants of Table 5."""
    if model.first_kind == "detection":
        return detection_loss(first, batch["det"], batch["mask"])
    return regression_loss(first, batch["reg"], batch["mask"])


def stage_loss(net, model, stage, batch):
    """The loss of one training stage: the first network's loss if the stage
    trains it, plus Eq. (2) on the regressor's maps if it trains that. ``net``
    is what the forward goes through (``model`` itself, or its
    DistributedDataParallel wrapper, which must see the forward to
    synchronise gradients)."""
    first, second = net(batch["image"], first_only=not stage.trains_second)
    loss = first_loss(model, first, batch) if stage.trains_first else 0.0
    if stage.trains_second:
        # Paper: the joint stage's objective is unspecified. Here: the sum of
        # both losses, so the detector keeps being a detector (Fig. 2).
        loss = loss + regression_loss(second, batch["reg"], batch["mask"])
    return loss


def stage_parameters(model, stage):
    """What a stage trains: §3.1 "we froze the training of the detector
    layers, training only the [regression] subnetwork" in stage 2; the first
    network alone in stage 1; both in stage 3."""
    nets = ([model.first] if stage.trains_first else []) + ([model.second] if stage.trains_second else [])
    return [p for net in nets for p in net.parameters()]


def make_optimizer(stage, params):
    if stage.optimizer == "sgd":
        return torch.optim.SGD(params, lr=stage.lr, momentum=stage.momentum)
    if stage.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=stage.lr)
    return torch.optim.Adam(params, lr=stage.lr)


def stages_to_run(cfg):
    """Table 5's single-network variants have only the first stage."""
    _, cascaded = VARIANTS[cfg.variant]
    return [s for s in cfg.stages if cascaded or not s.trains_second]


def single_network_epochs(stages):
    """Table 5's single networks ("Detection only", "Regression only") train
    for as many epochs as the whole cascade does in its three stages. Paper:
    their schedules are unspecified. Here: matched epochs, so that no row
    wins by training longer (a single network's epoch is cheaper than the
    cascade's: matched time would favour it)."""
    return sum(s.epochs for s in stages)


def train(cfg, model, train_set, val_set, rt, out_dir, resume=None, log_every=20, flags=None):
    """Run the stages of ``cfg`` in order; validate and checkpoint after every
    epoch (``harness.fit``: the loop, last.pt and best.pt, which keep
    ``flags`` for ``--resume``; here what the paper says: which network
    learns on which loss, which one is frozen). Returns the history."""
    history, start_stage, start_epoch, ckpt = {"loss": [], "val": [], "stage_ends": []}, 0, 0, None
    if resume is not None:                   # --resume: last.pt's weights, history and place
        ckpt = harness.resume_weights(resume, model)
        history, start_stage, start_epoch = ckpt["extra"]["history"], ckpt["extra"]["stage_index"], ckpt["epoch"]
    harness.for_training(model, rt)
    loader = harness.training_loader(train_set, cfg.batch_size, rt, model, seed=cfg.seed)   # BatchNorm-safe
    best = max((v["Total"] for v in history["val"]), default=-1.0)
    stages = stages_to_run(cfg)
    # One epoch counter runs across all stages and seeds the data order and the
    # augmentation (``harness.set_epoch``): stage 2 does not replay stage 1's crops.
    first_epochs = [sum(s.epochs for s in stages[:k]) for k in range(len(stages))]
    for si, (stage, start) in enumerate(zip(stages, first_epochs)):
        if si < start_stage:
            continue
        model.requires_grad_(False)
        params = list(stage_parameters(model, stage))
        for p in params:
            p.requires_grad_(True)
        # DDP registers the parameters that require gradients when it wraps
        # the model, so each stage wraps anew after freezing what it freezes.
        net = harness.wrap_model(model, rt)
        opt, scaler = make_optimizer(stage, params), harness.make_scaler(rt)
        sched = harness.geometric_decay(opt, stage.lr, stage.lr_end, stage.epochs)
        e0 = 0
        if ckpt is not None and si == start_stage:
            harness.restore_train_state(ckpt, model, opt, sched, scaler)
            e0 = start_epoch

        def step_loss(batch):
            batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
            with harness.autocast(rt):
                return stage_loss(net, model, stage, batch)

        def record(epoch, loss, seconds):
            history["loss"].append({"stage": stage.name, "epoch": epoch + 1, "loss": loss,
                                    "seconds": round(seconds, 1)})

        def validate(epoch):
            total = validate_epoch(model, val_set, rt, stage, epoch, history)
            return total, {"history": history, "stage_index": si, "config": asdict(cfg), "flags": flags}

        # A frozen first network runs in eval mode (fixed BN statistics).
        best = harness.fit(model, loader, step_loss, opt, sched, scaler, rt, epochs=stage.epochs, start=e0,
                           offset=start, name=stage.name, log_every=log_every, out_dir=out_dir, best=best,
                           frozen=() if stage.trains_first else (model.first,), record=record, validate=validate)
        history["stage_ends"].append(len(history["loss"]))
        ckpt = None
    return history


def validate_epoch(model, val_set, rt, stage, epoch, history):
    """The validation Total after an epoch, recorded and printed. Stage 1 is
    scored on the detector's own maps (the regressor is still untrained);
    later stages on the regressor's."""
    t_val = time.time()
    scores = evaluate(model, val_set, rt, which="final" if stage.trains_second else "first")
    history["val"].append({"stage": stage.name, "epoch": epoch + 1, **scores["all"],
                           "seconds": round(time.time() - t_val, 1)})
    print(f"  val {stage.name} epoch {epoch + 1}: {scores['metric']} Total "
          f"{scores['all']['Total']:.1f} (training {history['loss'][-1]['seconds']:.0f} s, "
          f"validation {history['val'][-1]['seconds']:.0f} s)", flush=True)
    return scores["all"]["Total"]


# §4 Results -- decoding and evaluation =======================================
DECODINGS = ("argmax", "quarter", "taylor")


def decode(maps, blur=1.0, method="taylor"):
    """Part locations from maps ``(B, J, h, w)`` -> ``(B, J, 2)`` map coords.

    ``method`` (``Config.decode``, ``--decode``): "argmax", the map's
    maximum pixel; "quarter", a quarter pixel from it towards the larger
    neighbour, the convention of 2016 ([19]; what "as the paper did" means);
    "taylor" (the default), below.

    Paper: unspecified. Here: the argmax, refined to sub-pixel precision by
    a second-order Taylor expansion of the log of the map around it, the
    "DARK" decoding of Zhang et al. (CVPR 2020): the log of a Gaussian peak
    is a quadratic, whose maximum one Newton step from the argmax finds
    exactly. The map is first smoothed by a Gaussian of ``blur`` map pixels
    (a network's peak is not a clean Gaussian). Where the fit does not apply
    -- a peak on the map's border, or a log that is not curved down -- the
    usual quarter-pixel step towards the larger neighbour [19] instead (none
    across the border). A blur of 1 map pixel measured best (README).
    """
    if method not in DECODINGS:
        raise ValueError(f"decode method {method!r}: expected one of {', '.join(DECODINGS)}")
    B, J, h, w = maps.shape
    m = maps.reshape(B * J, h, w).float()
    flat = m.reshape(B * J, -1).argmax(-1)
    yi, xi = flat // w, flat % w
    n = torch.arange(B * J)
    if method == "argmax":
        return torch.stack([xi, yi], -1).float().reshape(B, J, 2)

    def at(mm, dy, dx):
        return mm[n, (yi + dy).clamp(0, h - 1), (xi + dx).clamp(0, w - 1)]

    # Where both neighbours exist along an axis: at the border a clipped
    # neighbour would equal the peak and push it outwards, as
    # ``bottom_up_bbox.find_candidates`` explains.
    inner_x, inner_y = (xi > 0) & (xi < w - 1), (yi > 0) & (yi < h - 1)
    # The quarter-pixel fallback, along an inner axis only.
    qx = xi + 0.25 * torch.sign(at(m, 0, 1) - at(m, 0, -1)) * inner_x
    qy = yi + 0.25 * torch.sign(at(m, 1, 0) - at(m, -1, 0)) * inner_y
    if method == "quarter":
        return torch.stack([qx, qy], -1).float().reshape(B, J, 2)
    # Derivatives of log(map) at the argmax by central differences.
    g = torch.log(gaussian_blur(m, blur).clamp(min=1e-10))
    c = at(g, 0, 0)
    dx, dy = (at(g, 0, 1) - at(g, 0, -1)) / 2, (at(g, 1, 0) - at(g, -1, 0)) / 2
    dxx, dyy = at(g, 0, 1) - 2 * c + at(g, 0, -1), at(g, 1, 0) - 2 * c + at(g, -1, 0)
    dxy = (at(g, 1, 1) - at(g, 1, -1) - at(g, -1, 1) + at(g, -1, -1)) / 4
    det = dxx * dyy - dxy ** 2
    fit = (dxx < 0) & (det > 0) & inner_x & inner_y
    det = torch.where(fit, det, torch.ones_like(det))
    # The Newton step -H^-1 grad, H = [[dxx, dxy], [dxy, dyy]]; kept within
    # one pixel of the argmax.
    ox = (-(dyy * dx - dxy * dy) / det).clamp(-1, 1)
    oy = (-(dxx * dy - dxy * dx) / det).clamp(-1, 1)
    x = torch.where(fit, xi + ox, qx)
    y = torch.where(fit, yi + oy, qy)
    return torch.stack([x, y], -1).reshape(B, J, 2)


@torch.no_grad()
def predict(model, images, flip_test=False, which="final"):
    """Maps for a batch of normalised crops; with ``flip_test`` averaged with
    those of the mirrored crops (mirrored back, left/right swapped).
    ``which``: "final" (regressor if any) or "first" (detector alone)."""
    images = images.contiguous(memory_format=torch.channels_last)
    maps = model.heatmaps(images, which)
    if flip_test:
        # ``model.flip``: the left/right permutation of the run's joints.
        maps = (maps + model.heatmaps(images.flip(-1), which).flip(-1)[:, model.flip]) / 2
    return maps


@torch.no_grad()
def evaluate(model, dataset, rt, flip_test=False, which="final"):
    """Predict every person of ``dataset`` and score the paper's metric.

    PCKh@0.5 (MPII, toy): correct when within 0.5 x head size (head size =
    0.6 x head-box diagonal, the official definition). PCK@0.2 (LSP): within
    0.2 x torso size (``common.sources.score_people``). Predictions are
    mapped back to the original image: scores are in the data set's pixels.
    """
    model.eval()
    preds, gts, norms, index = [], [], [], []
    loader = torch.utils.data.DataLoader(dataset, batch_size=32, shuffle=False,
                                         num_workers=harness.loader_workers(rt))
    for batch in loader:
        maps = predict(model, batch["image"].to(rt.device), flip_test, which).float().cpu()
        xy_crop = from_stride(decode(maps, method=dataset.cfg.decode).numpy(), model.stride)   # (B, J, 2)
        for b in range(len(xy_crop)):
            if bool(batch["broken"][b]):
                continue
            index.append(int(batch["index"][b]))
            preds.append(apply_affine(invert_affine(batch["affine"][b].numpy()), xy_crop[b]))   # image px
            gts.append(batch["keypoints"][b].numpy())
            norms.append(float(batch["norm"][b]))
    result = score_people(dataset.source, np.stack(preds), np.stack(gts), norms, dataset.cfg.joints)
    return {**result, "index": index}


# §4 Results -- Fig. 2: detection heatmaps vs regression confidence maps ======
# Fig. 2 stays beside the method, not with the studies: it is the paper's picture
# of its claim (the regressor places what the detector is unsure of); every run draws it.
@torch.no_grad()
def confidence_at_truth(model, dataset, limit=500, batch=32):
    """The claim of Fig. 2 in numbers: the mean detection heatmap value and
    the mean regression confidence-map value at the *true* location of each
    part, over the first ``limit`` people of ``dataset``, for visible and for
    occluded parts (only data that know occlusion, e.g. the toy, have the
    latter). Also returns, per occluded limb joint, (sample, joint, det, reg)
    for ``figure_fig2``'s choice of example."""
    parts = []                                                          # (sample, joint, v, det, reg)
    n = min(limit, len(dataset))
    for lo in range(0, n, batch):
        samples = [dataset[i] for i in range(lo, min(lo + batch, n))]
        first, second = model(torch.stack([s["image"] for s in samples]))
        for b, (s, det, reg) in enumerate(zip(samples, model.first_maps(first), second)):   # (N, h, w) each
            kp = s["kp_crop"].numpy()
            d, r = values_at(det, kp, model.stride), values_at(reg, kp, model.stride)
            parts += [(lo + b, j, int(kp[j, 2]), d[j], r[j]) for j in np.flatnonzero(~np.isnan(d))]
    stats = {}
    for key, visible in (("visible", True), ("occluded", False)):
        at = [(d, r) for _, _, v, d, r in parts if (v == 2) == visible]
        if at:
            stats[key] = {"detection": sum(d for d, _ in at) / len(at), "regression": sum(r for _, r in at) / len(at),
                          "parts": len(at)}
    limbs = limb_joints(tuple(dataset.cfg.joints))
    cases = [(i, j, d, r) for i, j, v, d, r in parts if v == 1 and j in limbs]
    return stats, cases


def figure_fig2(model, dataset, path, cases):
    """(b) Fig. 2: detection heatmaps (row 1) and regression confidence maps
    (row 2) for a visible and an occluded part of the same image. The point:
    the detector is weak on the occluded part, the regressor is not.

    The example is chosen by a rule, not found: among the occluded limb
    joints of ``confidence_at_truth``'s cases, the one whose (regression -
    detection) value at the true location is the *median* -- a typical
    case, neither the best nor the worst; its image's first visible limb
    joint is the visible panel."""
    if not cases:
        return None
    names = tuple(dataset.cfg.joints)
    gain = np.array([r - d for _, _, d, r in cases])
    i, j_occ, _, _ = cases[int(np.argsort(gain)[len(gain) // 2])]
    s = dataset[i]
    v = s["kp_crop"][:, 2]
    j_vis = next((j for j in limb_joints(names) if v[j] == 2), int(np.argmax(v == 2)))
    with torch.no_grad():
        first, second = model(s["image"][None])
    det, reg = model.first_maps(first)[0], second[0]                   # (N, h, w) each
    pred = from_stride(decode(reg[None], method=dataset.cfg.decode).numpy()[0], model.stride)
    r_near = 2 * dataset.cfg.sigma * target_scale(dataset.cfg) / model.stride            # 2 sigma, map px
    return plotting.fig2(to_uint8(s["image"]), s["kp_crop"].numpy(), pred, (det.numpy(), reg.numpy()),
                         (j_vis, j_occ), names, model.stride, r_near, path)


# =============================================================================
# II. The paper's tables -- §4.2 Table 5: the four variants, trained alike,
#     scored on the same people
# =============================================================================
# The paper's rows and their MPII validation Totals (PCKh@0.5, residual).
TABLE5_ROWS = (("detection+regression", "Part heatmap regression", 88.2),
               ("detection", "Detection only", 82.6),
               ("regression", "Regression only", 84.2),
               ("regression+regression", "Regression+regression [16]", 85.7))


def run_table5(args):
    """``--variant all``: Table 5 on one seed. Each row trains as ``--variant
    ROW`` would, with the same seed, data and flags, into ``--out``/ROW (or
    the single run's folder); a finished row with these flags is reused, so
    the default run is the first row (``common.runs``). Then every row's
    ``best.pt`` is scored on the same test people (``table5_report``)."""
    plan = runs.row_runs(args, "variant", [v for v, _, _ in TABLE5_ROWS],
                         lambda v: Path("runs") / f"{args.data}-{args.arch}-{v}")
    out_dir = cli.check_out_dir(args.out or Path("runs") / f"{args.data}-{args.arch}-table5")
    t0 = time.time()
    runs.train_rows(plan, run, "Table 5")
    rt = harness.setup_runtime(args.device, amp=False if args.no_amp else None)
    if not rt.is_main:                             # under torchrun: one process scores and writes
        return harness.cleanup_runtime(rt)
    _, val_src, test_src = load_sources(args)
    scored = {}
    for variant, sub, _ in plan:
        cfg, model = model_from_checkpoint(Path(sub.out) / "best.pt", rt.device)
        data = PoseData(test_src, cfg, model.stride, train=False)
        scored[variant] = evaluate(model, data, rt, flip_test=cfg.flip_test)
    table5_report(scored, plan, args, split_name(args.data, val_src, test_src), cfg.joints, out_dir)
    print(f"\n{time.time() - t0:.0f} s; table5.json in {out_dir}/")
    harness.cleanup_runtime(rt)
    return {v: r["all"] for v, r in scored.items()}


def table5_report(scored, plan, args, split, joints, out_dir):
    """The rows' table, the visible / occluded split per part, and each
    row's difference from the cascade with a 95 % paired bootstrap interval
    over people (``common.metrics.bootstrap_total``); ``table5.json``."""
    first = scored[TABLE5_ROWS[0][0]]
    if any(r["index"] != first["index"] for r in scored.values()):
        raise RuntimeError("Table 5's rows were not scored on the same people")
    subsets = {"all": None}
    if "occluded" in first:
        subsets.update(visible=first["gt"][..., 2] == 2, occluded=first["gt"][..., 2] == 1)
    intervals = {k: bootstrap_total({v: r["correct"] for v, r in scored.items()}, first["gt"], joints,
                                    mask=m, seed=args.seed) for k, m in subsets.items()}
    label = {v: f"{name} ({args.arch})" for v, name, _ in TABLE5_ROWS}
    print_results({label[v]: r["all"] for v, r in scored.items()},
                  f"Table 5 -- {args.data} {split}, {first['metric']}; paper (MPII, residual): "
                  + ", ".join(f"{name} {paper}" for _, name, paper in TABLE5_ROWS), joints)
    for k in list(subsets)[1:]:
        print_results({label[v]: r[k] for v, r in scored.items()}, f"{k} joints only", joints)
    n = len(first["index"])
    print(f"\nDifference from the cascade's Total, points, with its 95 % bootstrap interval over the {n} "
          f"{split} people:")
    for v, _, _ in TABLE5_ROWS[1:]:
        print(f"  {label[v]:48s}" + "".join(f"  {k} {d['diff']:+5.1f} [{d['lo']:+5.1f}, {d['hi']:+5.1f}]"
                                            for k, d in ((k, intervals[k][v]) for k in subsets)))
    write_json(out_dir / "table5.json", {
        "data": args.data, "arch": args.arch, "seed": args.seed, "split": split, "metric": first["metric"],
        "people": n,
        "rows": {v: {"label": name, "paper": paper, "run": sub.out,
                     "seconds": json.loads((Path(sub.out) / "results.json").read_text())["seconds"],
                     **{k: scored[v][k] for k in subsets}, "vs_cascade": {k: intervals[k][v] for k in subsets}}
                 for (v, name, paper), (_, sub, _) in zip(TABLE5_ROWS, plan)}})


# =============================================================================
# III. Run it: the configuration from the flags; train, evaluate, demo; the
#      run's report; the command line (the data sets: ``common.sources``)
# =============================================================================
def build_config(args):
    """The run's ``Config``: the toy's or the paper's (§3.1 / §3.2), the flags over it."""
    toy = {"toy": toy_config, "toy-crowd": toy_crowd_config}.get(args.data)
    cfg = toy(args.arch) if toy else paper_config(args.arch, args.variant, DATA_JOINTS[args.data])
    if args.data == "lsp" and args.checkpoint:
        cfg.stages = lsp_fine_tuning(cfg)
    cfg.variant, cfg.seed = args.variant, args.seed
    cli.override(cfg, args, ("flip_test", "decode", "scale_targets", "input_size", "width", "batch_size"))
    if args.pretrained and cfg.arch == "residual":
        # ImageNet weights are ResNet-152's: the detector takes its blocks even on
        # the toy (compact by default); ``load_imagenet`` checks --width 1 too.
        cfg.resnet_blocks = RESNET_BLOCKS[152]
    epochs = cli.number_list(args.stage_epochs or "", "--stage-epochs", "6,5,3", kind="count", cast=int)
    if epochs and len(epochs) != len(cfg.stages):
        raise UsageError(f"--stage-epochs needs {len(cfg.stages)} positive counts, got {args.stage_epochs!r}")
    for s, e in zip(cfg.stages, epochs):
        s.epochs = e
    if not VARIANTS[cfg.variant][1]:
        cfg.stages[0].epochs = single_network_epochs(cfg.stages)
    if cfg.input_size % input_multiple(cfg):
        raise UsageError(f"--input-size must be a multiple of {input_multiple(cfg)} for --arch {cfg.arch}, "
                         f"got {cfg.input_size}")
    return cfg


def config_from_dict(d):
    """A checkpoint's ``asdict(Config)`` as a ``Config`` (checkpoints from
    before ``Config.joints`` existed were all MPII's 16)."""
    return Config(**{**d, "stages": [Stage(**s) for s in d["stages"]], "resnet_blocks": tuple(d["resnet_blocks"]),
                     "joints": tuple(d.get("joints", MPII_JOINTS))})


def model_from_checkpoint(path, device):
    """(config, cascade in eval mode on ``device``) from a best.pt / last.pt;
    a file that is not this script's checkpoint is one line."""
    def build(d):
        cfg = config_from_dict(d)
        return cfg, Cascade(cfg)
    cfg, model = harness.load_model(path, build, "heatmap_regression.py")
    return cfg, model.to(device).eval()


def print_results(results, title, joints=MPII_JOINTS):
    print(f"\n{title}  ({head_note(joints)})\n{format_table(results)}")


def run_demo(args, rt):
    """``--demo``: the pose of one person per box (``--boxes``, a COCO
    detection-results JSON) or of the one person filling each photo: an
    overlay PNG and a JSON of the joints per image (``common.demo``)."""
    files, out, dets = demo.demo_inputs(args)
    cfg, model = model_from_checkpoint(args.checkpoint, rt.device)
    demo.note_if_toy(args.checkpoint)
    flip = cli.override(cfg, args, ("flip_test", "decode")).flip_test

    def pose(crop):                            # (1, 3, S, S) -> (J, 2) crop px, (J,) peak values
        maps = predict(model, crop.to(rt.device), flip_test=flip).float().cpu()
        xy = from_stride(decode(maps, method=cfg.decode).numpy()[0], model.stride)
        return xy, maps[0].flatten(1).max(1).values.numpy()

    demo.pose_photos(files, dets, pose, cfg.input_size, cfg.joints, out, args.boxes)


def parse_args(argv=None):
    """This script's flags, then the run flags both scripts share (``cli.add_run_flags``)."""
    configs = (paper_config("residual"), paper_config("vgg"), toy_config("residual"))

    def default(name, show=str):
        """A config-backed flag's default: the paper's two networks', and the toy's."""
        return "(default: residual {}, vgg {}; toy {})".format(*(show(getattr(c, name)) for c in configs))

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=cli.HelpFormatter,
                                epilog="Quick run: python heatmap_regression.py --toy-train 400 --stage-epochs 1,1,1 "
                                       "(a minute). An internal error is one line; HR_DEBUG=1 shows its traceback.")
    (n_train, n_val), (crowd_train, crowd_val) = TOY_SIZES["toy"], TOY_SIZES["toy-crowd"]
    g = cli.add_shared_flags(p, {"model": "model (§3.1-3.2, Table 5)", "training": "training (§3.1-3.2)"}, {
        "data": "toy: single figures; toy-crowd: person crops of paper 2's toy scenes; "
                "coco / aic: person crops (17 / 14 joints) for paper 2's top-down baseline",
        "data_root": "folder of the MPII, LSP, COCO or AI Challenger data set (see README)",
        "toy_train": f"toy: training figures (default: {n_train}); toy-crowd: training scenes (default: {crowd_train})",
        "toy_val": f"toy: validation figures, and as many test figures (default: {n_val}); toy-crowd: validation "
                   f"scenes (default: {crowd_val})",
        "width": "channel multiplier, 1 = the paper's networks " + default("width"),
        "pretrained": "torchvision ImageNet weights (.pth) for the detector's backbone",
        "checkpoint": "a best.pt to evaluate, demo, or fine-tune on LSP from",
        "batch_size": "global batch size, split over GPUs " + default("batch_size"),
        "input_size": "crop side in px " + default("input_size"),
        "eval_only": "evaluate --checkpoint on the reported split (toy: the test figures), no training",
        "flip_test": "average with the mirrored image's maps (not in the paper) " + default("flip_test"),
        "demo": "the pose of the person filling each IMAGE (files or folders), or of each person in --boxes: an "
                "overlay PNG and a JSON of the joints per image in --out",
        "boxes": "--demo: a COCO detection-results JSON, one person per box"},
        data={"choices": ("toy", "toy-crowd", "mpii", "lsp", "coco", "aic")}, boxes={"metavar": "FILE"})
    g["data"].add_argument("--lsp-extended", help="LSP-extended folder: extra training data for --data lsp")
    g["model"].add_argument("--arch", choices=("residual", "vgg"), default="residual", help="§3.2 or §3.1")
    g["model"].add_argument("--variant", choices=(*VARIANTS, "all"), default="detection+regression",
                            help="a row of Table 5; all: train the four rows alike (or reuse finished ones) and "
                                 "print Table 5 with intervals (about 13 minutes on the toy)")
    g["training"].add_argument("--stage-epochs", help="epochs of the stages, comma-separated, e.g. 6,5,3 "
                               + default("stages", lambda st: ",".join(str(t.epochs) for t in st)))
    g["training"].add_argument("--scale-targets", action=argparse.BooleanOptionalAction,
                               help="the disk radius (10 px) and sigma (5 px) of §3 scaled with the body's size in "
                                    "the crop (200 px body = as written), or as written at any input size "
                                    + default("scale_targets"))
    g["evaluation"].add_argument("--decode", choices=DECODINGS,
                                 help="part locations from the maps: the maximum pixel, a quarter pixel towards the "
                                      "larger neighbour (2016's convention: with --no-flip-test, as the paper "
                                      "scored), or a Taylor step on the log map (2020) " + default("decode"))
    cli.add_run_flags(p, "runs/<data>-<arch>-<variant>; --demo: runs/demo", log_every=25)
    argv = cli.list_values_with_minus(argv, ("--stage-epochs",))
    args = p.parse_args(argv)
    args.given = cli.given_dests(p, argv)
    args.flag_names = {a.dest: a.option_strings[0] for a in p._actions if a.option_strings}
    return args


# Every numeric flag and what it may hold (``cli.KINDS``).
FLAG_KINDS = {"input_size": "count", "width": "positive", "batch_size": "count", "toy_train": "count",
              "toy_val": "count", "seed": "natural", "log_every": "count"}


def check_args(args):
    """Every flag of a command line, before any data is read or any step
    trained: one line naming the flag and what was expected."""
    cli.check_numbers(args, FLAG_KINDS)
    if args.stage_epochs is not None:
        cli.number_list(args.stage_epochs, "--stage-epochs", "6,5,3", kind="count", cast=int)
    if args.resume and (args.demo or args.eval_only):
        raise UsageError("--resume continues a training run: not with --demo or --eval-only")
    if args.variant == "all" and (args.resume or args.demo or args.eval_only or args.checkpoint):
        raise UsageError("--variant all trains Table 5's four rows: not with --resume, --demo, --eval-only "
                         "or --checkpoint (rerun it: finished rows are reused)")


def resume_run(args):
    """``--resume``: the checks of ``--checkpoint`` (a paper-2 or broken file
    is one line), then the saved run's flags (``cli.resume_flags``)."""
    path = Path(args.resume).expanduser()
    cfg, _ = model_from_checkpoint(path, "cpu")
    extra = harness.load_checkpoint(path)["extra"]
    if "stage_index" not in extra:
        raise ValueError(f"--resume {path}: not a heatmap_regression.py training checkpoint (no stage recorded)")
    cli.resume_flags(args, extra.get("flags"), path)
    stage = cfg.stages[extra["stage_index"]]
    done = sum(1 for h in extra["history"]["loss"] if h["stage"] == stage.name)
    print(f"resuming {path}: stage {stage.name}, epoch {done} of {stage.epochs} done; the rest with the "
          f"run's own flags", flush=True)


def run(args):
    check_args(args)
    if args.resume:
        resume_run(args)
        check_args(args)                             # the saved flags, as this version reads them
    if args.variant == "all":
        return run_table5(args)
    rt = harness.setup_runtime(args.device, amp=False if args.no_amp else None)
    torch.manual_seed(args.seed)
    if args.demo:
        return run_demo(args, rt)
    if args.eval_only:
        return run_eval(args, rt)
    return run_train(args, rt)


def run_eval(args, rt):
    """``--eval-only``: score ``--checkpoint`` on the reported split."""
    if not args.checkpoint:
        raise UsageError("--eval-only needs --checkpoint PATH")
    out_dir = cli.check_out_dir(args.out or Path("runs") / f"{args.data}-eval")
    cfg, model = model_from_checkpoint(args.checkpoint, rt.device)
    check_joints(cfg.joints, args.data, args.checkpoint)
    cfg.seed = args.seed
    cli.override(cfg, args, ("flip_test", "decode"))   # --flip-test, --decode over the checkpoint's
    _, val_src, test_src = load_sources(args)
    res = evaluate(model, PoseData(test_src, cfg, model.stride, train=False), rt, flip_test=cfg.flip_test)
    split = split_name(args.data, val_src, test_src)
    print_results({f"{cfg.variant} ({cfg.arch})": res["all"]}, f"{args.data} {split}, {res['metric']}", cfg.joints)
    write_json(out_dir / "results.json", {"checkpoint": str(args.checkpoint), "data": args.data,
                                          "split": split, "flip_test": cfg.flip_test,
                                          **{k: res[k] for k in ("metric", "all", "visible", "occluded") if k in res}})
    print(f"\nresults.json in {out_dir}/")
    return res


def run_train(args, rt):
    """Train a cascade (or a Table 5 row) from the flags, then ``report`` it."""
    cfg = build_config(args)
    out_dir = cli.check_out_dir(args.out or Path("runs") / f"{args.data}-{cfg.arch}-{cfg.variant}")
    train_src, val_src, test_src = load_sources(args)
    model = Cascade(cfg)
    if args.checkpoint and not args.resume:  # fine-tune (e.g. MPII -> LSP, §3.1); --resume has every weight
        trained_cfg, trained = model_from_checkpoint(args.checkpoint, "cpu")
        check_joints(trained_cfg.joints, args.data, args.checkpoint)
        model.load_state_dict(trained.state_dict())
    elif args.pretrained and not args.resume:
        model.first.load_imagenet(Path(args.pretrained).expanduser())
    model.to(rt.device)
    train_set = PoseData(train_src, cfg, model.stride, train=True)
    val_set = PoseData(val_src, cfg, model.stride, train=False)
    test_set = val_set if test_src is val_src else PoseData(test_src, cfg, model.stride, train=False)
    if rt.is_main:
        print(f"{args.data}: {len(train_set)} train / {len(val_set)} val"
              f"{'' if test_set is val_set else f' / {len(test_set)} test'} people; {cfg.arch} {cfg.variant}, "
              f"width {cfg.width}, {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, "
              f"{cfg.input_size} px input, device {rt.device}" + (f" x {rt.world_size}" if rt.distributed else ""))
    t0 = time.time()
    history = train(cfg, model, train_set, val_set, rt, out_dir, resume=args.resume, log_every=args.log_every,
                    flags=cli.run_flags(args))
    summary = None
    if rt.is_main:
        split = split_name(args.data, val_src, test_src)
        summary = {**report(model, cfg, test_set, history, rt, out_dir, args.data, split, t0), "history": history}
        write_json(out_dir / "results.json", summary)
        print(f"\n{time.time() - t0:.0f} s; checkpoints, figures and results.json in {out_dir}/")
    harness.cleanup_runtime(rt)
    return summary


def report(model, cfg, test_set, history, rt, out_dir, data, split, t0):
    """The epoch that scored best on the validation people (best.pt), scored
    once more on the test people (``split`` of ``data``), as Table 5's
    rows (the cascade and its own detector), visible vs occluded joints where
    known, Fig. 2's numbers and figures. Returns the summary for results.json."""
    model.load_state_dict(harness.load_checkpoint(out_dir / "best.pt")["model"])
    res = evaluate(model, test_set, rt, flip_test=cfg.flip_test)
    best = max(history["val"], key=lambda v: v["Total"], default=None)      # the epoch best.pt holds
    summary = {"variant": cfg.variant, "metric": res["metric"], "split": split, "seconds": time.time() - t0,
               "best_epoch": None if best is None else {"stage": best["stage"], "epoch": best["epoch"],
                                                        "validation_total": best["Total"]},
               "final": res["all"]}
    tables = {"cascade": res}
    if model.second is not None and model.first_kind == "detection":
        tables["detection only"] = det = evaluate(model, test_set, rt, flip_test=cfg.flip_test, which="first")
        summary["detection_only"] = det["all"]
        summary.update({k: {"cascade": res[k], "detection_only": det[k]} for k in ("occluded", "visible") if k in res})
    label = {"detection only": f"Detection only, the cascade's detector ({cfg.arch})",
             "cascade": f"Part heatmap regression ({cfg.arch})" if cfg.variant == "detection+regression"
             else f"{cfg.variant} ({cfg.arch})"}
    print_results({label[k]: tables[k]["all"] for k in label if k in tables},
                  f"Table 5 layout -- {data} {split}, {res['metric']}", cfg.joints)
    if "occluded" in res:
        print_results({f"{k} joints: {name}": r[k] for name, r in tables.items() for k in ("visible", "occluded")},
                      "Toy data: visible vs occluded joints", cfg.joints)
    plotting.stage_curves(history, out_dir / "curves.png", "training loss (Eq. 1 / Eq. 2 / sum)")
    shown = [test_set[k] for k in res["index"][:12]]           # 12 people's predictions, drawn in their crops
    plotting.pose_grid([to_uint8(p["image"]) for p in shown],
                       [apply_affine(p["affine"].numpy(), xy) for p, xy in zip(shown, res["pred"])],
                       cfg.joints, out_dir / "predictions.png")
    if model.second is not None:
        # Fig. 2's claim as a number over the test people, then one typical
        # example (the median occluded case) as the picture.
        summary["fig2"], cases = confidence_at_truth(model.cpu().eval(), test_set)
        print(f"\nFig. 2 -- mean map value at the true part location (first {min(500, len(test_set))} {split} "
              f"people):")
        for k, st in summary["fig2"].items():
            print(f"  {k:9s} parts ({st['parts']:5d}): detection heatmap {st['detection']:.2f}, "
                  f"regression confidence map {st['regression']:.2f}")
        figure_fig2(model, test_set, out_dir / "fig2.png", cases)
    return summary


def main(argv=None):
    return cli.run_reporting_errors(run, parse_args(argv), "HR_DEBUG", argv=argv)


if __name__ == "__main__":
    main()
