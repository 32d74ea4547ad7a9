"""Multi-person pose estimation with bounding box constraint (2018).

A reference implementation that reads top to bottom in the order of the paper
(text in ``../shared/papers/bottom_up_bbox_constraint.txt``):

    Fig. 4  the 14-joint, 13-limb skeleton tree rooted at the neck (DFS order)
    §III-A  CNN regression: confidence maps (Eq. 1-2), direction fields
            (Eq. 3-4), the two-branch multi-stage network (Fig. 3, Table III),
            the masked loss (Eq. 6-8); candidates and the connection score (Eq. 5)
    §III-B  Pose parsing inside each box (Algorithm 1)
    §III-C  Pose NMS (Eq. 9-11)
    §III-D  Pose completion
    §IV-A   Training and multi-scale testing

in three parts: I the method (above, in the paper's order); II the paper's
tables: OKS AP with the top-down row and [3] (Tables I-II), Table III's
networks, the Table IV ablation, robustness to box shift and tightness and
crowding (Fig. 1); III "run it": the command line. The lab bench is in
common/ (the boxes: detector.py; rows, records and printed tables:
bub_eval.py; images and augmentation: scenes.py; paper 1 in each box:
topdown.py; figures: plotting.py; Cao et al.'s conventions: openpose.py);
studies beyond the paper's tables in walkthrough/studies.py.

    python bottom_up_bbox.py                         # toy scenes, CPU, < 10 minutes
    python bottom_up_bbox.py --demo                  # a fresh synthetic scene
    python bottom_up_bbox.py --demo photo.jpg --checkpoint runs/toy/best.pt
    python bottom_up_bbox.py --demo photo.jpg --cmu-weights body_pose_model.pth   # Cao et al.'s COCO network
    python bottom_up_bbox.py --data coco --data-root ~/data/coco --pretrained ~/weights/resnet50-0676ba61.pth
    python bottom_up_bbox.py --eval-only --data aic --data-root ~/data/aic --checkpoint runs/aic/best.pt

The idea: one bottom-up forward pass predicts, for everybody at once, where
joints are (confidence maps) and which way each limb points (direction
fields). A person detector's boxes then decide *who* a joint can belong to:
joints are connected inside each box only, so a wrong connection cannot
propagate from one person to the next, and joints cut off from their person
(truncation, occlusion) are recovered by the box (pose completion).
"""
import argparse
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from common import box_head, cli, harness, openpose, plotting
from common.backbones import VGG, ResNet, load_imagenet_weights
from common.bub_demo import Demo
from common.bub_eval import (JITTER_LEVELS, Parser, Row, Tally, boxes_text, evaluate, paper_tables, print_tables,
                             results_json, table_rows)
from common.cli import UsageError
from common.coco_eval import write_json
from common.connections import connection_scores, unscored
from common.detector import box_source, gt_boxes, read_boxes, scene_size
from common.layers import ch as scaled_channels, init_deconv_bilinear
from common.scenes import TrainScenes, record_scenes
from common.skeleton import JointLayout
from common.toy import DEFAULT_REGIME, PAPER_REGIME, ToyScenes
from common.topdown import TopDown
from common.transforms import from_stride, image_files, to_stride, to_tensor


# =============================================================================
# I. The method. Configuration: one place for every default; paper values
#    carry their source.
# =============================================================================
@dataclass(frozen=True)
class Readings:
    """How the parse reads what the paper leaves open (README, "Paper 2's
    readings"). The defaults are this implementation's choices;
    ``PAPER_LITERAL`` runs the paper's words as they stand."""
    nms_distance: str = "own"     # Eq. (10) over max(n_Y, n_Y') ("eq10") or n_Y ("own"): pose_distance
    nms_per_box: str = "next"     # a box yields its best surviving pose ("next") or only its best ("best"): pose_nms
    completion: str = "field+box"  # completion: the limb's field, then the box ("field+box"); "box", "field"
    rank_score: str = "joints"    # AP ranking: the joints' evidence ("joints") or Eq. (9) ("own"): rank_score
    extend_per_side: bool = True  # §IV-A's 10 % box extension on each side (True) or in total: extend_boxes
    use_box_score: bool = False   # rank poses by box score x pose score (Paper: unspecified): parse_variants


@dataclass
class Config:
    data: str = "coco"            # "toy", "coco" or "aic": picks the skeleton
    # Network (§III-A1, Table III). The default is the paper's best trade-off.
    backbone: str = "resnet"      # "resnet" (ResNet-50, dilated) or "vgg" (VGG-19, Cao et al.)
    stages: int = 3               # Table III: "a 3-stage network ... good performance"
    upsample: bool = True         # Table III "2x": deconvolve the outputs to stride 4
    width: float = 1.0            # channel multiplier of every layer: 1.0 = the paper's network
    hidden: int = 512             # stage 1's last hidden 1x1 layer (Cao et al.'s 512), x width
    resnet_blocks: tuple = (3, 4, 6)   # ResNet-50's layer1-3 (layer4 unused, see Features)
    wiring: str = "sequential"    # §III-A1: the field branch sees the maps just predicted;
    #                               "concurrent": Cao et al.'s stages (see PoseNetwork)
    # Targets (§III-A2/3). Paper: sigma and delta unspecified. Here: the
    # numbers of Cao et al. for a 368 px input (7 px; limbs 1 stride-8 pixel
    # either side of the bone), in input pixels. Note Eq. (1) divides by
    # sigma^2, not 2 sigma^2: its Gaussian's standard deviation is sigma/sqrt(2)
    # = 4.9 px, narrower than Cao et al.'s, whose 7 px *is* the standard
    # deviation (exp(-d^2 / 2 sigma^2)); their spread is sigma = 9.9 here.
    sigma: float = 7.0            # Eq. (1)
    delta: float = 8.0            # Eq. (3): the rectangle is 2*delta wide
    lambda_bg: float = 0.05       # Eq. (6): "We set lambda = 0.05"
    box_weight: float = 0.0       # Not the paper (its §V future work): a box head's loss joins Eq. (8)
    #                               with this weight; 0 = no head, boxes from a detector (PoseNetwork)
    # Training (§IV-A).
    input_size: int = 368         # Paper: unspecified. Here: Cao et al.'s 368
    batch_size: int = 16          # §IV-A "the batch size of 16"
    lr: float = 8e-5              # §IV-A "initial learning rate of 8 x 10^-5" (Adam)
    lr_end: float = 8e-6          # Paper: schedule unspecified. Here: geometric decay x0.1
    epochs: int = 60              # Paper: unspecified. Here: about OpenPose's iterations
    rot_range: float = 30.0       # §IV-A "rotating ... a degree in [-30, 30]" + flip
    person_frac: tuple = (0.35, 0.9)   # Paper: scale augmentation unspecified. Here:
    #                               the centred person's box fills this much of the crop
    # Testing (§IV-A).
    test_size: int = 368          # longer image side at scale 1.0 (Paper: unspecified)
    scales: tuple = (0.7, 1.0, 1.3)    # §IV-A "multiple scales (0.7, 1.0, 1.3)"
    flip_test: bool = False       # Paper: no test-time flip (the toy uses one, see toy_config)
    box_extend: float = 0.1       # §IV-A "extended by 10% along both ... directions"
    peak_threshold: float = 0.1   # candidates (Paper: unspecified; Cao et al.'s 0.1)
    link_threshold: float = 0.2   # min Eq. (5) score of a connection (Paper: unspecified)
    eq9_weights: tuple = (0.2, 0.2, 0.6)   # Eq. (9): "We set alpha = 0.2, beta = 0.2, gamma = 0.6"
    eta: float = 0.5              # Eq. (11) threshold (Paper: unspecified, see pose_nms)
    readings: Readings = field(default_factory=Readings)   # what the paper leaves open, above
    seed: int = 0


# The paper's words read literally, where the defaults above choose otherwise
# (``--paper-literal``: ``replace(cfg.readings, **PAPER_LITERAL)``; each
# reading's measured effect is in the README).
PAPER_LITERAL = {"nms_distance": "eq10", "nms_per_box": "next", "completion": "box", "rank_score": "own"}


def toy_config():
    """A laptop-sized version for the toy scenes (``common.toy.render_scene``).

    Not from the paper: a compact network trained from scratch, so that
    training, the evaluation and every ablation finish in 10 minutes at the
    reference speed of two CPU cores. Each choice was measured on the toy
    (README, "How the toy network was chosen").
    """
    return Config(
        data="toy",
        stages=1,                               # refinement stages do not start learning in this budget
        width=0.5, resnet_blocks=(1, 1, 2),     # F at width 1/2, not 1/4: the largest gain measured
        hidden=128,                             # the largest activation: 64 channels, not 256, a step 16 % faster
        sigma=8.0, delta=4.0,                   # Paper: unspecified. 2 map pixels learned best; 4 px far slower
        input_size=192, batch_size=4, lr=1e-3, lr_end=1e-4, epochs=9,   # batch 4: twice batch 8's updates
        person_frac=(0.85, 1.15),               # the scene is the whole input: mild scale augmentation
        test_size=192, scales=(1.0,), flip_test=True,   # the flip test (not in the paper) adds 0.3-1.8 AP
        box_weight=1.0)                         # §V's future work: the network finds its own boxes (README)


# =============================================================================
# Fig. 4 -- the skeleton tree, rooted at the neck, limbs in DFS order
# =============================================================================
# One definition of the tree: every joint's parent, by name. The body below
# the neck is the same in AI Challenger and COCO; only the head differs (AIC
# annotates the head top; COCO the nose, eyes and ears). COCO has no neck: it
# is synthesized as the midpoint of the shoulders (``Skeleton.from_dataset``),
# which gives COCO "the same kind of tree".
BODY_PARENT = {
    "r_shoulder": "neck", "r_elbow": "r_shoulder", "r_wrist": "r_elbow",
    "l_shoulder": "neck", "l_elbow": "l_shoulder", "l_wrist": "l_elbow",
    "r_hip": "neck", "r_knee": "r_hip", "r_ankle": "r_knee",
    "l_hip": "neck", "l_knee": "l_hip", "l_ankle": "l_knee",
}
HEAD_PARENT = {
    "aic": {"head_top": "neck"},
    "coco": {"nose": "neck", "r_eye": "nose", "r_ear": "r_eye", "l_eye": "nose", "l_ear": "l_eye"},
}


def dfs_limbs(parent, root="neck"):
    """Limbs ``(parent, child)`` of the tree in depth-first order from ``root``.

    Children are visited in the order the ``parent`` dict lists them (head,
    right arm, left arm, right leg, left leg). DFS order guarantees what
    Algorithm 1 relies on: a limb's start joint was reached by an earlier limb.
    """
    children = {}
    for child, p in parent.items():
        children.setdefault(p, []).append(child)

    def visit(j):
        for k in children.get(j, []):
            yield j, k
            yield from visit(k)
    return list(visit(root))


class Skeleton(JointLayout):
    """Fig. 4's tree on one data set's joints, in the network's channel order
    (``common.skeleton.JointLayout``: the joints in the data set's own order,
    COCO's synthesized neck, the OKS constants, the left/right flip).

    ``limbs``: (C, 2) joint indices in DFS order; ``limbs[c] = (j1, j2)``
    with j1 the parent ("start joint").
    """

    def __init__(self, data):
        super().__init__(data)
        parent = {**HEAD_PARENT[self.kind], **BODY_PARENT}
        index = {n: i for i, n in enumerate(self.joints)}
        self.limbs = np.array([(index[a], index[b]) for a, b in dfs_limbs(parent)])
        # A horizontal flip swaps left and right joints. Training flips the
        # keypoints and then draws the targets, so limbs and fields follow;
        # the flip test (``unmirror``) needs the limbs' permutation too: limb
        # (j1, j2) becomes (flip j1, flip j2), again listed parent to child.
        limb_index = {tuple(l): c for c, l in enumerate(self.limbs.tolist())}
        self.limb_flip = np.array([limb_index[(self.flip[a], self.flip[b])] for a, b in self.limbs])

    @property
    def C(self):
        return len(self.limbs)


# =============================================================================
# §III-A2 Confidence maps for joints detection -- Eq. (1)-(2)
# =============================================================================
# All maps live at the network's output ``stride`` s (4 with the 2x
# deconvolution, 8 without): map pixel (i, j) is centred on input pixel
# (s*j + (s-1)/2, s*i + (s-1)/2) (see ``common/__init__``). sigma and delta
# are in input pixels, so the targets do not change shape with the stride.
def pixel_centres(n, stride):
    """Input-pixel coordinates of the centres of ``n`` map pixels at ``stride``."""
    return from_stride(np.arange(n, dtype=np.float32), stride).astype(np.float32)


def confidence_maps(keypoints, shape, stride, sigma):
    """Eq. (1)-(2) plus the background map: ``(J + 1, h, w)`` at ``stride``.

        S*_{j,k}(p) = exp(-||p - x_{j,k}||^2 / sigma^2)          (1)
        S*_j(p)     = max_k S*_{j,k}(p)                           (2)

    keypoints: (K, J, 3) in input pixels; only annotated joints (v > 0)
    make a peak. Note Eq. (1) divides by sigma^2, not 2 sigma^2.
    The last channel is the background S*_B of Eq. (6). Paper: its
    definition is unspecified. Here: 1 - max_j S*_j, as in Cao et al. [3].
    """
    h, w = shape
    kp = np.asarray(keypoints, np.float32).reshape(-1, keypoints.shape[-2], 3)
    J = kp.shape[1]
    maps = np.zeros((J + 1, h, w), np.float32)
    if len(kp):
        # exp(-(dx^2 + dy^2)/s^2) = exp(-dx^2/s^2) exp(-dy^2/s^2): two 1-D factors.
        gx = np.exp(-(pixel_centres(w, stride) - kp[..., 0:1]) ** 2 / sigma ** 2)   # (K, J, w)
        gy = np.exp(-(pixel_centres(h, stride) - kp[..., 1:2]) ** 2 / sigma ** 2)   # (K, J, h)
        gy *= (kp[..., 2:3] > 0)
        maps[:J] = (gy[..., :, None] * gx[..., None, :]).max(0)                    # (J, h, w)
    maps[J] = 1.0 - maps[:J].max(0)
    return maps


# =============================================================================
# §III-A3 Direction fields for joints association -- Eq. (3)-(4)
# =============================================================================
def direction_fields(keypoints, limbs, shape, stride, delta):
    """Eq. (3)-(4): ``(2C, h, w)`` at ``stride``, x then y per limb, and the
    count n_c(p) of persons whose field is non-zero at p, ``(C, h, w)``.

        L*_{c,k}(p) = v  if p lies in the 2 delta-wide rectangle, else 0   (3)
        L*_c(p)     = 1/n_c(p) sum_k L*_{c,k}(p)                           (4)

    with v = (x_{j2,k} - x_{j1,k}) / ||x_{j2,k} - x_{j1,k}||. The rectangle
    runs along the limb from x_{j1} to x_{j2} and reaches delta either side.
    A limb makes a field only when both its joints are annotated.
    """
    h, w = shape
    kp = np.asarray(keypoints, np.float32).reshape(-1, keypoints.shape[-2], 3)
    C = len(limbs)
    fields = np.zeros((C, 2, h, w), np.float32)
    count = np.zeros((C, h, w), np.float32)
    if len(kp):
        a, b = kp[:, limbs[:, 0]], kp[:, limbs[:, 1]]                      # (K, C, 3)
        d = b[..., :2] - a[..., :2]
        length = np.linalg.norm(d, axis=-1)                                 # (K, C)
        ok = (a[..., 2] > 0) & (b[..., 2] > 0) & (length > 1e-6)
        v = d / np.maximum(length, 1e-6)[..., None]                         # (K, C, 2)
        px = pixel_centres(w, stride)[None, None, None, :] - a[..., 0, None, None]
        py = pixel_centres(h, stride)[None, None, :, None] - a[..., 1, None, None]
        along = px * v[..., 0, None, None] + py * v[..., 1, None, None]     # (K, C, h, w)
        across = px * v[..., 1, None, None] - py * v[..., 0, None, None]
        inside = (along >= 0) & (along <= length[..., None, None]) & (np.abs(across) <= delta)
        inside &= ok[..., None, None]
        count = inside.sum(0).astype(np.float32)                            # n_c(p)
        fields = np.einsum("kchw,kcd->cdhw", inside.astype(np.float32), v)
        fields /= np.maximum(count, 1)[:, None]
    return fields.reshape(2 * C, h, w), count


# =============================================================================
# §III-A4 The mask W of Eq. (6)-(7): zero where the annotation is missing
# =============================================================================
def loss_mask(keypoints, boxes, ignore, maps, count, limbs):
    """W for every output channel: ``(J + 1 + 2C, h, w)`` (maps, background, fields).

    "W is a binary mask with W(p) = 0 when the annotation is missing at
    location p." Missing here means three things:

    * ``ignore`` (h, w), regions nobody annotated: COCO crowd regions and
      persons without keypoints. Zero in every channel, the background too.
      (Paper: Eq. (6) leaves the background term unmasked. Here it is masked
      as well: "no joint here" is as unknown there as the joints are.)
    * a joint that a person's annotation leaves out (v = 0) may be anywhere
      in that person's box: its channel is zeroed in the box ...
    * ... and so are the fields of the limbs that touch it.
    Where another person's annotated joint or limb lies inside such a box, its
    own target is known, so W stays 1 there (maps > 0.01 or n_c > 0).
    boxes: (K, 4) x, y, w, h in map pixels.
    """
    J, C = maps.shape[0] - 1, len(limbs)
    h, w = ignore.shape
    mask = np.ones((J + 1 + 2 * C, h, w), np.float32)
    mask[:] *= ~ignore
    kp = np.asarray(keypoints).reshape(-1, J, 3)
    for person, box in zip(kp, np.asarray(boxes).reshape(-1, 4)):
        missing = person[:, 2] == 0
        if not missing.any() or missing.all():   # fully annotated, or not a person at all
            continue
        x0, y0 = max(int(np.floor(box[0])), 0), max(int(np.floor(box[1])), 0)
        x1, y1 = min(int(np.ceil(box[0] + box[2])) + 1, w), min(int(np.ceil(box[1] + box[3])) + 1, h)
        if x1 <= x0 or y1 <= y0:
            continue
        for j in np.flatnonzero(missing):
            unknown = maps[j, y0:y1, x0:x1] < 0.01
            mask[j, y0:y1, x0:x1] *= ~unknown
        for c in np.flatnonzero(missing[limbs[:, 0]] | missing[limbs[:, 1]]):
            unknown = count[c, y0:y1, x0:x1] == 0
            mask[J + 1 + 2 * c:J + 3 + 2 * c, y0:y1, x0:x1] *= ~unknown
    return mask


def make_targets(keypoints, boxes, ignore, shape, stride, skeleton, cfg):
    """Targets and mask of one input image at ``stride``.

    keypoints (K, J, 3) and boxes (K, 4, xywh) in input pixels; ignore: (h, w)
    bool at ``stride``. Returns maps (J+1, h, w), fields (2C, h, w), mask.
    """
    maps = confidence_maps(keypoints, shape, stride, cfg.sigma)
    fields, count = direction_fields(keypoints, skeleton.limbs, shape, stride, cfg.delta)
    # Boxes in map pixels: corners through the same input -> map conversion.
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    box_map = np.concatenate([to_stride(b[:, :2], stride), b[:, 2:] / stride], 1)
    mask = loss_mask(keypoints, box_map, ignore, maps, count, skeleton.limbs)
    return maps, fields, mask


# =============================================================================
# §III-A4 Loss term -- Eq. (6)-(8)
# =============================================================================
def pose_loss(outputs, maps, fields, mask, lambda_bg):
    """Eq. (8): the sum over stages t of Eq. (6) + Eq. (7).

        Loss^t_S = sum_j sum_p W(p) ||S^t_j(p) - S*_j(p)||^2
                   + lambda sum_p ||S^t_B(p) - S*_B(p)||^2                (6)
        Loss^t_L = sum_c sum_p W(p) ||L^t_c(p) - L*_c(p)||^2               (7)

    mask holds W per channel (maps, background, fields; see ``loss_mask``).
    Paper: the normalisation is unspecified. Here: the sums over pixels and
    channels are averaged over the images of the batch (Cao et al. likewise).

    "As done in [20], we weight the gradient responses between foreground and
    background heatmap pixels, so that they equally contribute": Eq. (6)
    writes that weighting as lambda on the background channel S_B only, and
    so does this function -- the joint channels' foreground and background
    pixels keep weight 1. Paper: nothing more is said. (A per-pixel balance
    inside the joint channels, the other reading, did not train faster on
    the toy: README, "How the toy network was chosen".)
    """
    J = maps.shape[1] - 1
    W_S, W_L = mask[:, :J + 1], mask[:, J + 1:]
    weight = torch.ones(J + 1, device=maps.device)
    weight[J] = lambda_bg                                                  # background term
    weight = weight[:, None, None] * W_S
    total = 0.0
    for S, L in outputs:                                                   # intermediate supervision
        loss_s = ((S.float() - maps) ** 2 * weight).sum()
        loss_l = ((L.float() - fields) ** 2 * W_L).sum()
        total = total + loss_s + loss_l
    return total / maps.shape[0]


# =============================================================================
# §III-A1 Network structure (Fig. 3, Table III)
# =============================================================================
def ch(c, width):
    """A width-scaled channel count, never under 4 (``common.layers.ch``)."""
    return scaled_channels(c, width, least=4)


def conv_relu(cin, cout, k):
    return [nn.Conv2d(cin, cout, k, padding=k // 2), nn.ReLU(inplace=True)]


class Features(nn.Module):
    """F of Fig. 3: image features at stride 8.

    ``resnet``: "ResNet50 with the hole algorithm": conv1 ... layer3 (res4f)
    of ResNet-50, with layer3 dilated instead of strided, so F stays at stride
    8. Paper: the cut point is unspecified. Here: layer3, because Table III's
    parameter counts fit it: 3-stage + ResNet has 26.00 M parameters, and
    layer1-3 (8.5 M) plus three stages (about 17.5 M) make that; layer4 alone
    would add 15 M. ``vgg``: Cao et al.'s baseline, VGG-19 up to conv4_2 and
    their two "CPM" convolutions down to the 128 channels the stages expect;
    for ResNet a 1x1 projection from 1024 to 128 channels does that (Paper:
    unspecified; with it the five Table III rows come out 1-5 % above the
    paper's counts: VGG 51.8 M vs 51.29, 3-stage ResNet 27.0 vs 26.00).
    """

    def __init__(self, cfg):
        super().__init__()
        self.kind, self.width, self.blocks = cfg.backbone, cfg.width, tuple(cfg.resnet_blocks)
        if self.kind == "resnet":
            self.trunk = ResNet(50, cfg.width, replace_stride_with_dilation=(False, True, True),
                                blocks=(*self.blocks, 1))
            del self.trunk.layer4, self.trunk.fc, self.trunk.avgpool   # unused (see above)
            cin = self.trunk.out_channels["layer3"]
        else:
            self.trunk = VGG(depth=19, width=cfg.width).features_prefix("conv4_2")
            cin = ch(512, cfg.width)
        if self.kind == "vgg":          # Cao et al.'s conv4_3_CPM and conv4_4_CPM
            self.cpm = nn.Sequential(*conv_relu(cin, ch(256, cfg.width), 3),
                                     *conv_relu(ch(256, cfg.width), ch(128, cfg.width), 3))
        else:                           # a 1x1 projection (see the parameter count above)
            self.cpm = nn.Sequential(*conv_relu(cin, ch(128, cfg.width), 1))
        self.out_channels = ch(128, cfg.width)

    def forward(self, x):
        if self.kind == "vgg":
            return self.cpm(self.trunk(x))
        t = self.trunk
        x = t.maxpool(t.relu(t.bn1(t.conv1(x))))
        return self.cpm(t.layer3(t.layer2(t.layer1(x))))                   # (B, 128w, H/8, W/8)

    def load_imagenet(self, path):
        """torchvision ImageNet weights from a local .pth (nothing is downloaded).

        The full torchvision network is built and loaded strictly (so a wrong
        file is one clear error), then the layers F uses are copied over.
        """
        if self.kind == "resnet":
            if self.blocks != (3, 4, 6):
                raise ValueError(f"{path}: ImageNet weights need ResNet-50's blocks (3, 4, 6), "
                                 f"this model has {self.blocks}")
            full = load_imagenet_weights(ResNet(50, self.width), path)
        else:
            full = load_imagenet_weights(VGG(depth=19, width=self.width), path).features
        own = self.trunk.state_dict()
        state = {k: v for k, v in full.state_dict().items() if k in own}
        self.trunk.load_state_dict(state, strict=True)


def branch(cin, cout, width, first, upsample, hidden=512):
    """One branch of one stage (Cao et al.'s design, which Fig. 3 follows).

    Stage 1: three 3x3 convs, a 1x1 to ``hidden`` (512; x ``width`` like
    every layer), a 1x1 to the outputs. Stages
    t >= 2: five 7x7 convs (a large receptive field to see the other joints),
    a 1x1, a 1x1 to the outputs. With ``upsample`` ("2x"), a stride-2
    deconvolution sits before the 1x1 layers. Paper: where it sits is
    unspecified. Here: on the 128 hidden channels, because Table III's
    +1.42 M parameters for 3 stages fit one 4x4 deconvolution of 128 channels
    per branch (6 x 0.26 M = 1.57 M), and the 1x1 layers then predict at
    stride 4 directly. It starts as bilinear upsampling.
    """
    c = ch(128, width)
    layers = ([*conv_relu(cin, c, 3), *conv_relu(c, c, 3), *conv_relu(c, c, 3)] if first else
              [*conv_relu(cin, c, 7)] + [m for _ in range(4) for m in conv_relu(c, c, 7)])
    if upsample:
        deconv = nn.ConvTranspose2d(c, c, 4, stride=2, padding=1)
        init_deconv_bilinear(deconv)                # FCN's initialisation: starts as bilinear x2
        layers += [deconv, nn.ReLU(inplace=True)]
    hidden = ch(hidden, width) if first else c
    layers += [*conv_relu(c, hidden, 1), nn.Conv2d(hidden, cout, 1)]
    return nn.Sequential(*layers)


class PoseNetwork(nn.Module):
    """Fig. 3: features F, then T stages of two branches each.

    At every stage the first branch predicts the confidence maps S^t (J joints
    + background) and the second the direction fields L^t -- *sequentially*:
    the field branch also sees the maps just predicted ("predicted
    sequentially rather than concurrently, so as to further exploit spatial
    interdependencies"). The next stage sees F and both predictions, brought
    back to stride 8 ("after downsampling"; here a 2x2 average).
    forward() returns every stage's (S^t, L^t) for intermediate supervision.

    ``cfg.wiring = "concurrent"`` is Cao et al.'s stage instead, the one the
    paper changed: both branches read the *same* input (F, and from stage 2
    on the previous stage's S and L), so the fields of stage t cannot use
    the maps of stage t -- only those of stage t-1. The one difference in
    the layers is the first convolution of the field branch: J + 1 fewer
    input channels (Table III's baseline, "6-stage + VGG", is this network:
    Cao et al.'s released COCO weights load into it, ``CaoNetwork``).

        sequential (Fig. 3):  S^t = phi(X)    L^t = rho(X, S^t)
        concurrent ([3]):     S^t = phi(X)    L^t = rho(X)
        X = F at t = 1, else (F, S^{t-1}, L^{t-1})

    With ``cfg.box_weight > 0`` (not the paper: its §V future work) a box
    head reads what a next stage would, (F, S^T, L^T), and
    ``forward(x, boxes=True)`` also returns its output
    (``common.box_head.BoxHead``: person centres, sizes, offsets).
    """

    def __init__(self, cfg, skeleton):
        super().__init__()
        self.cfg = cfg
        if cfg.wiring not in ("sequential", "concurrent"):
            raise ValueError(f"wiring must be 'sequential' (the paper) or 'concurrent' (Cao et al.), got {cfg.wiring!r}")
        self.concurrent = cfg.wiring == "concurrent"
        J, C = skeleton.J + 1, 2 * skeleton.C
        self.features = Features(cfg)
        f = self.features.out_channels
        self.stride = 4 if cfg.upsample else 8
        self.maps = nn.ModuleList()
        self.fields = nn.ModuleList()
        for t in range(cfg.stages):
            cin = f if t == 0 else f + J + C
            self.maps.append(branch(cin, J, cfg.width, t == 0, cfg.upsample, cfg.hidden))
            # The field branch's input: X, plus S^t when sequential (the paper).
            self.fields.append(branch(cin if self.concurrent else cin + J, C, cfg.width, t == 0, cfg.upsample,
                                      cfg.hidden))
        self.box_head = (box_head.BoxHead(f + J + C, cfg.width, cfg.upsample, size_prior=cfg.input_size / 2)
                         if cfg.box_weight > 0 else None)

    def down(self, y):
        return F.avg_pool2d(y, 2) if self.cfg.upsample else y

    def infer(self, image, size, cfg, device, scales=None):
        """Multi-scale testing of one image (§IV-A): ``infer``."""
        return infer(self, image, size, cfg, device, scales)

    def forward(self, x, boxes=False):
        feat = self.features(x)                                            # (B, 128w, H/8, W/8)
        out, inp = [], feat
        for maps, fields in zip(self.maps, self.fields):
            S = maps(inp)                                                  # (B, J+1, H/s, W/s)
            # Sequential (the paper): the fields see S^t. Concurrent (Cao et al.): they do not.
            L = fields(inp if self.concurrent else torch.cat([inp, self.down(S)], 1))   # (B, 2C, H/s, W/s)
            out.append((S, L))
            inp = torch.cat([feat, self.down(S), self.down(L)], 1)
        if boxes:                                                          # §V: (B, 5, H/s, W/s)
            return out, self.box_head(inp)
        return out


# =============================================================================
# §III-A Testing: candidate joints (NMS) and the connection score, Eq. (5)
# =============================================================================
# Parsing works in map pixels (the network's output stride); poses are
# converted to image pixels at the very end (``Prediction.to_image``).
@dataclass
class Candidates:
    """Candidate joints: local maxima of the confidence maps."""
    xy: np.ndarray        # (N, 2) map pixels, sub-pixel
    score: np.ndarray     # (N,) the map's value at the peak
    joint: np.ndarray     # (N,) joint index
    by_joint: list        # J arrays of candidate ids, each by decreasing score


def find_candidates(maps, threshold):
    """"The confidence maps S are used to obtain the candidate joints by
    performing the non-maximum suppression": a pixel is a candidate when it is
    the maximum of its 3x3 neighbourhood and above ``threshold``.

    maps: (J, h, w) (no background). Each peak is refined to sub-pixel
    precision by a parabola through the log of its row and column neighbours
    (exact for a Gaussian peak, Eq. 1) -- along an axis where both neighbours
    exist: at the map's border a clipped neighbour would equal the centre and
    push the peak half a pixel outwards, and truncated people are common.
    """
    J, h, w = maps.shape
    # 3x3 maximum filter, separable: rows then columns (numpy; an order of
    # magnitude faster on a CPU than a stride-1 max-pool).
    m = np.asarray(maps, np.float32)
    row = m.copy()
    np.maximum(row[..., 1:], m[..., :-1], out=row[..., 1:])
    np.maximum(row[..., :-1], m[..., 1:], out=row[..., :-1])
    box = row.copy()
    np.maximum(box[:, 1:], row[:, :-1], out=box[:, 1:])
    np.maximum(box[:, :-1], row[:, 1:], out=box[:, :-1])
    j, y, x = np.nonzero((m == box) & (m > threshold))
    score = maps[j, y, x].astype(np.float32)

    def log_at(yy, xx):
        return np.log(np.maximum(maps[j, yy, xx], 1e-6))

    c = np.log(np.maximum(score, 1e-6))
    offsets = []
    for lo, hi, inner in ((log_at(y, np.maximum(x - 1, 0)), log_at(y, np.minimum(x + 1, w - 1)), (x > 0) & (x < w - 1)),
                          (log_at(np.maximum(y - 1, 0), x), log_at(np.minimum(y + 1, h - 1), x), (y > 0) & (y < h - 1))):
        curv = lo - 2 * c + hi
        fit = (curv < 0) & inner
        off = np.where(fit, 0.5 * (lo - hi) / np.where(fit, curv, -1), 0.0)
        offsets.append(np.clip(off, -0.5, 0.5))
    xy = np.stack([x + offsets[0], y + offsets[1]], 1).astype(np.float32)
    order = np.lexsort((-score, j))                      # by joint, then by decreasing score
    j, xy, score = j[order], xy[order], score[order]
    starts = np.searchsorted(j, np.arange(J + 1))
    by_joint = [np.arange(starts[k], starts[k + 1]) for k in range(J)]
    return Candidates(xy, score, j, by_joint)


def connection_score(fields, c, x1, x2):
    """Eq. (5) for one candidate pair of limb ``c``, as the paper writes it:

        s(j1, j2) = 1/|Q| sum_{q in Q} L_c(q) . d / ||d||,  d = x_j2 - x_j1   (5)

    Q: |Q| = ceil(||d||) + 1 points spaced uniformly from x_j1 to x_j2 (one
    per map pixel of its length), each read at its nearest pixel. The plain
    form, for reading and for the tests: the parse uses the fast form,
    ``common.connections.connection_scores``, the same numbers for many
    pairs at once, in ``Connections`` (per limb, a matrix of the pairs'
    scores; NaN where a pair has not been scored)."""
    d = np.asarray(x2) - np.asarray(x1)                               # (2,) map px
    n = float(np.linalg.norm(d))                                      # ||d||
    if n < 1e-6:
        return 0.0                                                    # no direction to compare
    nq = int(np.ceil(n)) + 1                                          # |Q|
    q = x1 + (np.arange(nq) / (nq - 1))[:, None] * d                  # (|Q|, 2): the points of Q
    x, y = np.rint(q).astype(np.int64).T                              # the nearest pixel
    L = fields[2 * c:2 * c + 2, y, x]                                  # (2, |Q|): L_c(q), x then y
    return float((L.T @ (d / n)).sum() / nq)


def pairs_in_boxes(cand, limbs, inside):
    """Per limb, the bool (candidates of j1, candidates of j2) matrix of the
    pairs whose two candidates lie in a common box. inside: (B, N) bool,
    ``candidates_in_boxes``."""
    m = inside.astype(np.float32)
    return [(m[:, cand.by_joint[a]].T @ m[:, cand.by_joint[b]]) > 0 for a, b in limbs]


# =============================================================================
# §III-B Pose parsing -- Algorithm 1
# =============================================================================
@dataclass
class Pose:
    joints: np.ndarray    # (J,) candidate id per joint, -1 = missing
    links: list           # Eq. (5) scores of the connections that built it
    box: int              # index of the box it was parsed in (-1: no box)
    conf: float = 0.0     # Eq. (9)
    rival: int = -1       # pose NMS: the kept pose (its index) whose Eq. (11) eliminated this one
    d: float = np.nan     # ... and d(Y, Y') to it (Eq. 10); -1 and NaN when the box rule did


class Ranked(NamedTuple):
    """Every possible connection of an image (confidence > threshold), limb
    by limb in DFS order, each limb's by decreasing confidence."""
    start: np.ndarray         # (K,) candidate id of the limb's start joint
    end: np.ndarray           # (K,) candidate id of its end joint
    confidence: np.ndarray    # (K,)
    bounds: np.ndarray        # (C + 1,): limb c's connections are [bounds[c], bounds[c + 1])


def rank_connections(scores, cand, limbs, link_threshold):
    """Lines 4-6 of Algorithm 1 for every box at once: each limb's
    connections with s > ``link_threshold`` by decreasing confidence. A
    box's own list is the part of it whose two candidates lie in the box,
    so it is sorted once per image; ties keep the candidates' order (row,
    then column), as a sort of the box's own pairs would."""
    parts = []
    for c, (j1, j2) in enumerate(limbs):
        r, k = np.nonzero(scores[c] > link_threshold)                    # NaN (not scored) never passes
        conf = scores[c][r, k]
        o = np.argsort(-conf, kind="stable")
        parts.append((cand.by_joint[j1][r[o]], cand.by_joint[j2][k[o]], conf[o]))
    bounds = np.cumsum([0] + [len(p[2]) for p in parts])
    return Ranked(*(np.concatenate([p[i] for p in parts]) for i in range(3)), bounds)


def parse_box(cand, scores, limbs, inside, link_threshold, box=-1, ranked=None):
    """Algorithm 1 for one bounding box; ``inside``: (N,) bool, the candidates
    in the box. Returns every person it assembles (pose NMS picks one).

        2: compute the connection confidences in the box (Eq. 5)
        3: for each limb l_j in DFS order:
        4-10:  L <- connections of l_j by decreasing confidence, each added
               only if it shares no joint with those already in L
        11-19: for each C_k in L: if its start joint J0 is in nobody's joint
               list, start a new person with J0 and J1; else put J1 into the
               list of the person J0 belongs to.

    ``scores``: per limb, the (candidates of j1, candidates of j2) matrix of
    connection confidences, holding at least the pairs of this box: line 2
    (Eq. 5) is computed once per image for the pairs inside some box
    (``parse_image``), and a box reads its own. ``ranked``: the image's
    ``rank_connections``, when several boxes share it. Paper: a minimum
    score is unspecified; connections need s > ``link_threshold``,
    otherwise every pair in the box, however unrelated, would be connected.
    """
    J = len(cand.by_joint)
    if ranked is None:
        ranked = rank_connections(scores, cand, limbs, link_threshold)
    # Lines 5-6 in this box: the connections whose two joints lie in the box,
    # in the image's order (by limb, then by decreasing confidence).
    mine = np.flatnonzero(inside[ranked.start] & inside[ranked.end])
    cut = np.searchsorted(mine, ranked.bounds).tolist()                 # limb c: mine[cut[c]:cut[c + 1]]
    starts, ends = ranked.start[mine].tolist(), ranked.end[mine].tolist()
    confidence = ranked.confidence[mine].tolist()
    joints, links = [], []                           # per person: candidate id per joint (-1: none), Eq. 5
    person_of = {}                                   # candidate id -> person
    for c, (j1, j2) in enumerate(limbs):                                  # line 3: DFS order
        # Lines 4-10: the connection list L, by decreasing confidence.
        L, used = [], set()
        part = slice(cut[c], cut[c + 1])                                  # limb c's, in this box
        for start, end, conf in zip(starts[part], ends[part], confidence[part]):
            if start not in used and end not in used:
                used.add(start)
                used.add(end)
                L.append((start, end, conf))
        # Lines 11-19: grow the person lists.
        for start, end, conf in L:
            p = person_of.get(start)
            if p is None:                                                 # line 13: a new person
                p = person_of[start] = len(joints)
                joints.append([-1] * J)
                links.append([])
                joints[p][j1] = start
            joints[p][j2] = end
            links[p].append(conf)
            person_of[end] = p
    joints = np.array(joints, np.int64).reshape(-1, J)
    return [Pose(joints[p], links[p], box) for p in range(len(links))]


def candidates_in_boxes(cand, boxes):
    """(B, N) bool: candidate n inside box b (x, y, w, h in map pixels)."""
    b = np.asarray(boxes).reshape(-1, 4)[:, :, None]                     # (B, 4, 1)
    x, y = cand.xy[:, 0], cand.xy[:, 1]
    return (x >= b[:, 0]) & (x <= b[:, 0] + b[:, 2]) & (y >= b[:, 1]) & (y <= b[:, 1] + b[:, 3])


def extend_boxes(boxes, frac, per_side=True):
    """§IV-A: "detected human proposals are extended by 10% along both the
    vertical and the horizontal directions". Paper: whether 10% in all or on
    each side is unspecified. Here (``per_side``, ``Readings.extend_per_side``):
    each side moves out by ``frac`` of the box's size (so width and height
    grow by 2 x 10%), the safer reading of "to guarantee the entire person
    region can be extracted": annotated and detected boxes of occluded people
    end where they stop being visible, and their hidden joints lie beyond
    (README, "Paper 2's readings"). ``per_side=False``: 10 % in total."""
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    side = frac if per_side else frac / 2
    return np.concatenate([b[:, :2] - side * b[:, 2:], b[:, 2:] * (1 + 2 * side)], 1)


# =============================================================================
# §III-C Pose NMS -- Eq. (9)-(11)
# =============================================================================
def pose_confidences(poses, cand, boxes, cfg):
    """Eq. (9): Conf(Y) = alpha s1(Y) + beta s2(Y) + gamma S(B'(Y)) / S(B(Y)),
    for every pose at once; ``boxes[i]`` is the box ``poses[i]`` was parsed in.

    s1, s2: the mean confidence of its joints (peak values) and of its
    connections (Eq. 5); B'(Y): the smallest box around its joints; B(Y): the
    box it was parsed in. The area term favours the pose that fills its box
    over fragments of neighbours that stray into it.
    """
    if not poses:
        return np.zeros(0)
    joints = np.stack([p.joints for p in poses])                         # (P, J), -1 = missing
    has = joints >= 0
    # A missing joint stands in for one the pose has, so it changes no extent.
    ids = np.where(has, joints, joints[np.arange(len(joints)), has.argmax(1)][:, None])
    s1 = np.where(has, cand.score[ids], 0).sum(1, dtype=np.float64) / has.sum(1)
    s2 = np.array([sum(p.links) / len(p.links) if p.links else 0.0 for p in poses])
    xy = cand.xy[ids]                                                     # (P, J, 2)
    span = xy.max(1) - xy.min(1)
    b = np.asarray(boxes).reshape(-1, 4)
    area = (span[:, 0] * span[:, 1]).astype(np.float64), (b[:, 2] * b[:, 3]).astype(np.float64)
    area_ratio = area[0] / np.maximum(area[1], 1e-6)
    alpha, beta, gamma = cfg.eq9_weights
    return alpha * s1 + beta * s2 + gamma * np.minimum(area_ratio, 1.0)


def pose_confidence(pose, cand, box, cfg):
    """Eq. (9) of one pose parsed in ``box`` (``pose_confidences``)."""
    return float(pose_confidences([pose], cand, [box], cfg)[0])


def pose_distance(a, b, reading="eq10"):
    """Eq. (10): d(Y, Y') = sum_j 1(Y_j != Y'_j) / max(n_Y, n_Y'), with
    ``a`` = Y (the pose that may be eliminated) and ``b`` = Y' (the reference).

    Joints are compared by identity (the same candidate), a missing joint
    matching only a missing joint: the fraction of unmatched joints.

    Paper: as written, a fragment lies far from the pose it is part of: 3
    joints of a kept 14-joint pose differ from it at the 11 joints the
    fragment lacks, d = 11/14 > eta, and the fragment survives (completion
    then fills it from the neighbours). Here (``reading="own"``, the
    default): only Y's own joints are compared and the count is Y's, d =
    sum_{j in Y} 1(Y_j != Y'_j) / n_Y -- "the percentage of [Y's] unmatched
    joints": a fragment of Y' has d = 0, two people who share no joint d =
    1, and two poses of equal size the same d as Eq. (10). ``"eq10"``: the
    equation as printed.
    """
    ha, hb = a.joints >= 0, b.joints >= 0
    if reading == "own":
        return float((ha & (a.joints != b.joints)).sum()) / max(int(ha.sum()), 1)
    n = max(int(ha.sum()), int(hb.sum()), 1)
    return float((a.joints != b.joints).sum()) / n


def pose_nms(poses, eta, distance="eq10", per_box="next"):
    """§III-C: take the most confident pose as the reference Y', eliminate the
    poses with f(Y, Y' | eta) = 1(d(Y, Y') <= eta) (Eq. 11), repeat on the
    rest, "until at most one unique pose remains in one bounding box".

    Paper: which pose a box keeps is open. ``per_box="next"``: a box keeps
    its most confident pose that survives, so a duplicate box whose first
    pose was eliminated hands on its next-best one -- most often a fragment
    of a neighbour, which completion then fills. Here (``"best"``, the
    default): a box's poses are its own candidates for one person, so a box
    yields its most confident pose or nothing: once that pose is eliminated
    as redundant, the box was a redundant detection. ``distance``: the
    reading of Eq. (10), ``pose_distance``.

    Paper: eta is unspecified. Here: 0.5 -- two poses that share at least
    half of the joints of the larger one are one person seen from two boxes.
    Two poses without a common joint differ wherever either has one, so
    d >= 1 (either reading): for eta < 1 a pose is compared with the kept
    poses that hold one of its joints only, not with every kept pose.
    """
    kept, boxes, holders = [], set(), {}             # holders: candidate id -> indices of kept poses holding it
    for p in sorted(poses, key=lambda p: -p.conf):
        if p.box in boxes:
            continue
        if per_box == "best":
            boxes.add(p.box)                         # this box has had its one pose
        ids = [i for i in p.joints.tolist() if i >= 0]
        rivals = range(len(kept)) if eta >= 1 or not ids else sorted({r for i in ids for r in holders.get(i, ())})
        nearest = min(((pose_distance(p, kept[r], distance), r) for r in rivals), default=None)
        if nearest is not None and nearest[0] <= eta:
            p.d, p.rival = nearest                   # kept for the person-loss attribution
            continue
        for i in ids:
            holders.setdefault(i, []).append(len(kept))
        kept.append(p)
        boxes.add(p.box)
    return kept


# =============================================================================
# §III-D Pose completion
# =============================================================================
def to_keypoints(pose, cand):
    """A pose as (J, 3) keypoints in map pixels: x, y, score (0 when missing)."""
    kp = np.zeros((len(pose.joints), 3), np.float32)
    has = pose.joints >= 0
    kp[has, :2] = cand.xy[pose.joints[has]]
    kp[has, 2] = cand.score[pose.joints[has]]
    return kp


class Filling:
    """Poses being completed: their joints (copies), what completion added,
    and the candidates any pose holds ("associated to another pose")."""

    def __init__(self, poses):
        self.joints = [p.joints.copy() for p in poses]
        self.done = [np.zeros(len(p.joints), bool) for p in poses]
        self.used = {int(i) for p in poses for i in p.joints if i >= 0}

    def add(self, k, j, i):
        self.joints[k][j], self.done[k][j] = i, True
        self.used.add(int(i))

    def result(self, cand):
        """(keypoints list, completed-mask list) in map px."""
        return [to_keypoints(Pose(j, [], -1), cand) for j in self.joints], self.done


def complete_poses(poses, cand, boxes, inside=None, fill=None):
    """§III-D: "for each missing joint in pose Y, we find a point with the
    highest confidence in the corresponding cropped confidence map. If this
    point has already been associated to another pose, we find the next
    highest point constantly until it has not been associated to any other
    poses. Then we add this point to pose Y."

    The points are the candidates (the map's local maxima) inside the pose's
    box, highest first; a point taken by another pose -- or by an earlier
    completion -- is skipped. Poses are completed in the order given
    (``parse_image`` passes them by decreasing Eq. 9 confidence). When every
    candidate in the box is taken, the joint stays missing: any other pixel
    of the map lies on the slope of a peak that another pose owns, and the
    paper's point "has not been associated to any other poses".
    ``inside``: ``candidates_in_boxes(cand, boxes)`` when already computed;
    ``fill``: a ``Filling`` that an earlier step (``complete_by_field``)
    began. Returns (keypoints list, completed-mask list).
    """
    inside = candidates_in_boxes(cand, boxes) if inside is None else inside
    fill = Filling(poses) if fill is None else fill
    for k, p in enumerate(poses):
        for j in np.flatnonzero(fill.joints[k] < 0):
            ids = cand.by_joint[j]
            free = [i for i in ids[inside[p.box][ids]].tolist() if i not in fill.used]    # highest first
            if free:
                fill.add(k, j, free[0])
    return fill.result(cand)


def complete_by_field(poses, cand, fields, limbs, conn, link_threshold, fill=None):
    """§III-D read with the direction fields: a missing joint is taken along
    a limb of the tree from a joint the pose has -- its parent, or its child
    when the parent is missing too -- as the free candidate whose connection
    to that joint scores highest by Eq. (5), above ``link_threshold``,
    wherever it lies: the field, not the box, says whose joint it is.
    Passes repeat until nothing is added, so a chain (knee, then ankle) is
    followed. Poses are completed in the order given; a candidate taken by
    one pose is skipped by the next. The pairs are scored into ``conn`` (the
    image's ``Connections``). Returns the ``Filling`` (``fill`` when given).

    Why (``Readings.completion``, README "Paper 2's readings"): the paper's
    rule has no check that the point belongs to this person, and it cannot
    reach a joint the box cuts off -- annotated and detected boxes of a
    person half hidden in a crowd end where the person stops being visible,
    and their hidden legs lie below it. Neither can a field: a limb chain
    that hangs from a missing joint (both legs of a person whose neck is
    outside the image) has no field to the pose, which is why the default
    runs the paper's rule after this one for what is still missing.
    """
    fill = Filling(poses) if fill is None else fill
    first = [ids[0] if len(ids) else 0 for ids in cand.by_joint]          # by_joint[j] is one run of ids
    for k, joints in enumerate(fill.joints):
        grew = True
        while grew:
            grew = False
            for c, (j1, j2) in enumerate(limbs):
                if (joints[j1] >= 0) == (joints[j2] >= 0):
                    continue                                              # both or neither present
                have, want = (j1, j2) if joints[j1] >= 0 else (j2, j1)
                free = np.array([i for i in cand.by_joint[want].tolist() if i not in fill.used], np.int64)
                if not len(free):
                    continue
                row = joints[j1] - first[j1] if have == j1 else free - first[j1]
                col = free - first[j2] if have == j1 else joints[j2] - first[j2]
                pairs = [np.zeros(m.shape, bool) for m in conn.score]
                pairs[c][row, col] = True
                connection_scores(fields, cand, limbs, pairs, conn)
                s = conn.score[c][row, col]
                if s.max() > link_threshold:
                    fill.add(k, want, free[s.argmax()])
                    grew = True
    return fill


# =============================================================================
# The whole parse of one image, and the baseline of Cao et al. [3]
# =============================================================================
def candidates_and_scores(maps, fields, skeleton, cfg):
    """What every parser reads, once per image: the candidates, and their
    Eq. (5) ``Connections`` -- empty at first: each parser scores the pairs
    it can use (``parse_image``: pairs inside a common box; ``parse_greedy``:
    every pair, with the support its criterion reads) into them, so a pair
    two box sets share is scored once, and once more at most when [3]'s
    parse asks for its support after ours scored it (``parse_variants``
    runs [3]'s first)."""
    cand = find_candidates(maps[:skeleton.J], cfg.peak_threshold)
    return cand, unscored(cand, skeleton.limbs)


class Parse(NamedTuple):
    """One parser's output on one image."""
    keypoints: np.ndarray     # (P, J, 3): x, y, joint score (0, 0, 0 when missing)
    scores: np.ndarray        # (P,) ranking scores (``rank_score``)
    completed: np.ndarray     # (P, J) bool: joints added by pose completion
    poses: list               # the P poses (candidate ids), before completion
    suppressed: list          # the poses pose NMS removed ([3]: the lists its rule deleted)


def parse_image(maps, fields, boxes, skeleton, cfg, nms=True, completion=True, cand=None, scores=None):
    """Candidates, Eq. (5), Algorithm 1 in every box, pose NMS, completion.

    maps (J+1, h, w) and fields (2C, h, w) at one stride; boxes (B, 4) in
    map pixels, already extended. ``cand``, ``scores``: this image's
    ``candidates_and_scores`` when other parses share them; the pairs this
    parse needs are scored into ``scores``. Returns a ``Parse`` in map pixels.
    """
    J, limbs = skeleton.J, skeleton.limbs
    if cand is None:
        cand, scores = candidates_and_scores(maps, fields, skeleton, cfg)
    boxes = np.asarray(boxes).reshape(-1, 4)
    inside = candidates_in_boxes(cand, boxes)                            # (B, N)
    # Algorithm 1, line 2: "calculate confidence for all possible connections
    # by Eq. 5" -- for each box. A connection is possible in a box when both
    # of its candidates lie in it, so only pairs inside a common box are
    # scored (each once, however many boxes share it): a pair that shares no
    # box is never read by the method. Scoring every pair of the image
    # instead grows with the square of the crowd, and its longest pairs --
    # joints of people far apart -- cost the most samples.
    connection_scores(fields, cand, limbs, pairs_in_boxes(cand, limbs, inside), scores)
    ranked = rank_connections(scores.score, cand, limbs, cfg.link_threshold)
    poses = [p for b in range(len(boxes))
             for p in parse_box(cand, scores.score, limbs, inside[b], cfg.link_threshold, b, ranked)]
    for p, conf in zip(poses, pose_confidences(poses, cand, boxes[[p.box for p in poses]], cfg)):
        p.conf = float(conf)
    poses.sort(key=lambda p: -p.conf)                # stable: ties keep the box order
    kept = pose_nms(poses, cfg.eta, cfg.readings.nms_distance, cfg.readings.nms_per_box) if nms else poses
    kept_ids = {id(p) for p in kept}
    suppressed = [p for p in poses if id(p) not in kept_ids]
    fill = Filling(kept)
    if completion and "field" in cfg.readings.completion:             # "field" or "field+box"
        complete_by_field(kept, cand, fields, limbs, scores, cfg.link_threshold, fill)
    if completion and "box" in cfg.readings.completion:               # "box" (the paper's) or "field+box"
        complete_poses(kept, cand, boxes, inside, fill)
    kps, done = fill.result(cand)
    return pack(kps, [rank_score(p, cand, cfg) for p in kept], done, J, kept, suppressed)


def joint_evidence(pose, cand):
    """The peak values of the joints a parse assembled, summed and divided by
    the number of joints J: a missing joint counts 0."""
    ids = pose.joints[pose.joints >= 0]
    return float(cand.score[ids].sum()) / len(pose.joints)


def rank_score(pose, cand, cfg):
    """The score a pose is ranked by in the AP (COCO results' ``score``).

    Paper: Eq. (9) is defined for pose NMS; the score behind the AP is not
    stated. Ranking by Eq. (9) (``rank_score="own"``) puts a pose that fills
    its box above a confident one in a loose box, on a scale no other
    parser shares ([3] has its own, ``parse_greedy``). Here (``"joints"``,
    the default): the evidence of the joints the parse assembled (before
    completion), their peak values summed over all J joints
    (``joint_evidence``) -- one scale for every parser, so that Table IV
    compares parses, not scores. Why not s1 of Eq. (9), the mean over the
    assembled joints only: a 3-joint fragment then ties with a whole
    person, and on sharp maps (every peak near 1) the ranking is a coin
    toss. ``"own"``: the parser's own, ``pose.conf`` (Eq. 9 for ours).
    """
    return pose.conf if cfg.readings.rank_score == "own" else joint_evidence(pose, cand)


def pack(kps, confs, done, J, poses, suppressed=()):
    """Lists of per-pose arrays -> a ``Parse`` (empty arrays of the right shape)."""
    if not kps:
        return Parse(np.zeros((0, J, 3), np.float32), np.zeros(0, np.float32), np.zeros((0, J), bool),
                     list(poses), list(suppressed))
    return Parse(np.stack(kps), np.array(confs, np.float32), np.stack(done), list(poses), list(suppressed))


def greedy_connections(conn, height):
    """The connection test of [3]'s released code, as confidences for
    ``parse_box``: a pair may connect only when more than 80 % of its sampled
    points support it (L . d/||d|| > 0.05, ``connections.SUPPORT_THRESHOLD``)
    and its score with a distance prior, Eq. (5) + min(0.5 H / ||d|| - 1, 0),
    is positive -- a connection longer than half the image height H is
    penalised. Pairs that fail get -1. Differences from [3]: Q is Eq. (5)'s
    (one point per map pixel) rather than 10 points, and the candidates are
    ours (sub-pixel NMS peaks)."""
    out = []
    for s, support, n in zip(conn.score, conn.support, conn.length):
        prior = s + np.minimum(0.5 * height / np.maximum(n, 1e-6) - 1.0, 0.0)
        out.append(np.where((support > 0.8) & (prior > 0), prior, -1.0).astype(np.float32))
    return out


def parse_greedy(maps, fields, skeleton, cfg, cand=None, scores=None, min_joints=4, min_mean=0.4):
    """The box-free greedy parsing of Cao et al. [3] ("pose parsing by [3]",
    Table IV), sharing the candidates and Eq. (5) above.

    On a tree whose limbs come in DFS order, [3]'s grouping -- connections by
    decreasing score without shared joints, limb by limb, a connection
    extending the person that holds its start joint -- is Algorithm 1 run on
    the whole image as one box (the merging step of [3] only matters for its
    redundant, non-tree connections). Connections pass [3]'s own test
    (``greedy_connections``), not our ``link_threshold``. As in [3]'s
    released code, persons with fewer than 4 joints, or with less than 0.4
    of (joint + connection confidence) per joint, are dropped, and that ratio
    is the person's own score (ranked by it with ``rank_score="own"``, else
    by the common score of ``rank_score``). Nothing is completed and
    nothing is suppressed.
    """
    J = skeleton.J
    if cand is None:
        cand, scores = candidates_and_scores(maps, fields, skeleton, cfg)
    connection_scores(fields, cand, skeleton.limbs, None, scores, support=True)    # no box: every pair
    kps, confs, kept, deleted = [], [], [], []
    for p in parse_box(cand, greedy_connections(scores, maps.shape[1]), skeleton.limbs,
                       np.ones(len(cand.score), bool), 0.0):
        ids = p.joints[p.joints >= 0]
        p.conf = float(cand.score[ids].sum() + sum(p.links)) / len(ids)     # [3]'s own score
        if len(ids) >= min_joints and p.conf >= min_mean:
            kps.append(to_keypoints(p, cand))
            confs.append(rank_score(p, cand, cfg))
            kept.append(p)
        else:
            deleted.append(p)
    return pack(kps, confs, [np.zeros(J, bool)] * len(kps), J, kept, deleted)


# =============================================================================
# §IV-A Implementation details -- training
# =============================================================================
# The data: toy scenes (``common.toy``) or COCO, AIC, CrowdPose (``common.scenes``),
# augmented as §IV-A says, with §III-A's targets (``TrainScenes`` calls ``make_targets``).
def train(cfg, model, train_set, val_source, rt, out_dir, skeleton, resume=None, log_every=20,
          val_images=50, flags=None):
    """§IV-A: Adam, lr 8e-5, batch 16, all stages supervised (Eq. 8).

    The epochs (``harness.fit``: the loop and the checkpoints; here the
    paper's loss): after each, the OKS AP of the single-scale,
    ground-truth-box parse (no flip test) on the first ``val_images``
    validation images; ``last.pt`` (written atomically) and ``best.pt``
    (best AP), with ``flags`` (the command line's, for ``--resume``).
    Returns the history.
    """
    harness.for_training(model, rt)                  # channels last: ~2x faster convolutions on CPU
    net = harness.wrap_model(model, rt)
    opt, sched, scaler, start, history = optimizer(cfg, model, rt, resume)
    loader = harness.make_loader(train_set, cfg.batch_size, True, rt, seed=cfg.seed,
                                 num_workers=harness.loader_workers(rt, most=6), drop_last=len(train_set) >= cfg.batch_size)

    head = model.box_head is not None                # §V's box head trains in the same steps

    def step_loss(batch):
        return batch_loss(net, batch, cfg, rt, head)

    def record(epoch, loss, seconds):
        history["loss"].append({"epoch": epoch + 1, "loss": loss})

    def validate(epoch):
        ap = validation_ap(model, val_source, cfg, skeleton, rt.device, val_images)
        history["val"].append({"epoch": epoch + 1, "AP": ap})
        print(f"  val epoch {epoch + 1}: OKS AP {100 * ap:.1f} (first {min(val_images, len(val_source))} "
              f"images, one scale, ground-truth boxes)", flush=True)
        if head:                                     # §V: the head's threshold, from training scenes
            t = calibrate_box_threshold(model, train_set.source, cfg, rt.device)
            history["val"][-1]["box_threshold"] = t
            n = min(CALIBRATION_SCENES, len(train_set.source))
            print(f"  box head: decoding threshold {t:.2f} (best box F1 on {n} training scenes)", flush=True)
        return ap, {"history": history, "config": asdict(cfg), "flags": flags}

    harness.fit(model, loader, step_loss, opt, sched, scaler, rt, epochs=cfg.epochs, start=start, out_dir=out_dir,
                validate=validate, record=record, log_every=log_every,
                best=max((v["AP"] for v in history["val"]), default=-1.0))
    return history


def optimizer(cfg, model, rt, resume=None):
    """Adam (§IV-A) with the learning rate decayed geometrically from ``lr``
    to ``lr_end`` over the epochs (Paper: schedule unspecified), the AMP
    scaler, and -- with ``resume`` -- their state, the epoch to start from
    and the history from a last.pt."""
    opt = harness.adam(model.parameters(), cfg.lr)
    sched = harness.geometric_decay(opt, cfg.lr, cfg.lr_end, cfg.epochs)
    scaler = harness.make_scaler(rt)
    start, history = 0, {"loss": [], "val": []}
    if resume is not None:
        ckpt = harness.load_checkpoint(resume)
        try:
            start, _, extra = harness.restore_train_state(ckpt, model, opt, sched, scaler)
        except (KeyError, ValueError, RuntimeError) as e:
            raise ValueError(f"--resume {resume}: does not fit this run's network "
                             f"({type(e).__name__}: {str(e).splitlines()[0][:120]})") from None
        history = extra["history"]
    return opt, sched, scaler, start, history


def batch_loss(net, batch, cfg, rt, head):
    """Eq. (8) on one training batch: every stage's outputs supervised. With
    ``head`` (beyond the paper, §V): + w x the box head's loss, its centre
    map masked where Eq. (6)'s background is (W: crowd regions)."""
    with harness.autocast(rt):
        outputs = net(batch["image"].contiguous(memory_format=torch.channels_last), boxes=head)
    outputs, B = outputs if head else (outputs, None)
    loss = pose_loss(outputs, batch["maps"], batch["fields"], batch["mask"], cfg.lambda_bg)
    if head:
        J = batch["maps"].shape[1] - 1
        loss = loss + cfg.box_weight * box_head.box_loss(B, batch["boxes"], batch["mask"][:, J:J + 1])
    return loss


CALIBRATION_SCENES = 64


def calibrate_box_threshold(model, source, cfg, device, n=CALIBRATION_SCENES):
    """Beyond the paper (§V): the box head's decoding threshold, set where its
    boxes' F1 at IoU 0.5 is highest on the first ``n`` scenes of ``source``
    (training scenes, whole and unaugmented, inferred as at test time --
    the boxes come from the scale nearest 1.0 alone, so only it is run:
    ``common.box_head.choose_threshold``), and kept in the head
    (``BoxHead.threshold``, saved with the weights). Returns it."""
    head = model.box_head
    boxes, truths = [], []
    scale = (min(cfg.scales, key=lambda s: abs(np.log(s))),)
    head.threshold.fill_(box_head.FLOOR)
    for i in range(min(n, len(source))):
        scene = source.load(i)
        boxes.append(model.infer(scene.image, scene.size, cfg, device, scales=scale).boxes)
        truths.append(gt_boxes(source.ground_truth(i)))
    head.threshold.fill_(box_head.choose_threshold(boxes, truths))
    return float(head.threshold)


def validation_ap(model, val_source, cfg, skeleton, device, val_images):
    """The OKS AP training reports after each epoch: the full method, one
    scale, no flip test, ground-truth boxes, the first ``val_images`` images."""
    quick = Tally((Row("full"),))
    for rec in evaluate(model, val_source, replace(cfg, flip_test=False), skeleton, device, quick.rows, PARSER,
                        scales=(1.0,), limit=val_images):
        quick.add(rec)
    return quick.ap(skeleton, Row("full"))["AP"]


# =============================================================================
# §IV-A Testing: multi-scale inference (OKS AP and the tables: part II)
# =============================================================================
def round_to(x, m):
    """``x`` rounded to the nearest positive multiple of ``m``."""
    return max(m, int(round(x / m)) * m)


@dataclass
class Prediction:
    """Averaged network outputs for one image, at the output stride of the
    scale-1.0 input (``base`` px, the image resized to ``test_size``)."""
    maps: np.ndarray      # (J+1, h, w)
    fields: np.ndarray    # (2C, h, w)
    stride: int
    size: tuple           # original image (width, height), full-resolution px
    base: tuple           # scale-1.0 input (width, height)
    boxes: np.ndarray = None   # the box head's people (N, 5: x, y, w, h, score; image px), §V

    def to_map(self, xy):
        """Full-resolution image px -> map px."""
        s = np.array(self.base, np.float64) / np.array(self.size)
        return to_stride((np.asarray(xy, np.float64) + 0.5) * s - 0.5, self.stride)

    def to_image(self, xy):
        """Map px -> full-resolution image px."""
        s = np.array(self.size, np.float64) / np.array(self.base)
        return (from_stride(np.asarray(xy, np.float64), self.stride) + 0.5) * s - 0.5

    def boxes_to_map(self, boxes):
        b = np.asarray(boxes, np.float64).reshape(-1, 4)
        s = np.array(self.base, np.float64) / np.array(self.size) / self.stride
        return np.concatenate([self.to_map(b[:, :2]), b[:, 2:] * s], 1)


@torch.no_grad()
def infer(model, image, size, cfg, device, scales=None):
    """§IV-A: "One input image is run at multiple scales (0.7, 1.0, 1.3), then
    the output confidence maps and direction fields are averaged across the
    scales." Each scale's last-stage outputs are resized (bilinear) to the
    scale-1.0 map grid before averaging.

    image: PIL RGB (possibly decoded smaller); size: its full-resolution
    (width, height). The scale-1.0 input has its longer side at
    ``test_size``, each side rounded to a multiple of 8 (the feature stride),
    so that the map grids of all scales cover the image exactly.
    This is ``PoseNetwork.infer``; every caller asks the network
    (``model.infer``), so that a network with its own input convention
    reads images its own way (Cao et al.'s: ``CaoNetwork.infer``).

    With ``cfg.flip_test`` (not in the paper; the toy's default, see
    ``toy_config``) each scale's outputs are averaged with those of its
    mirror image, brought back by ``unmirror``.

    A network with a box head (§V's future work) also gives its people,
    decoded from the scale nearest 1.0 (a detector of one scale, as YOLOv2;
    sizes and sub-pixel offsets do not average across grids), flip-averaged
    with the maps: ``Prediction.boxes``.
    """
    model.eval()
    skeleton = Skeleton(cfg.data) if cfg.flip_test else None              # unmirror's permutations
    W0, H0 = image.size
    f = cfg.test_size / max(W0, H0)
    base = (round_to(W0 * f, 8), round_to(H0 * f, 8))
    st = model.stride
    grid = (base[1] // st, base[0] // st)
    acc_s, acc_l, boxes = 0.0, 0.0, None
    scales = scales or cfg.scales
    box_scale = min(scales, key=lambda s: abs(np.log(s))) if model.box_head is not None else None
    for s in scales:
        w, h = round_to(base[0] * s, 8), round_to(base[1] * s, 8)
        x = to_tensor(np.asarray(image.resize((w, h), Image.BILINEAR)))[None].to(device)
        (S, L), B = last_stage(model, x, s == box_scale)
        if cfg.flip_test:
            (Sm, Lm), Bm = last_stage(model, x.flip(-1), s == box_scale)
            Sm, Lm = unmirror(Sm, Lm, skeleton)
            S, L = (S + Sm) / 2, (L + Lm) / 2
            B = None if B is None else (B + box_head.unmirror_boxes(Bm)) / 2
        if B is not None:
            # Decoded in this scale's input px, then brought to the image's px.
            boxes = box_head.decode_boxes(B[0].cpu(), st, threshold=float(model.box_head.threshold))
            boxes = box_head.rescale_boxes(boxes, np.array(size, np.float64) / (w, h))
        acc_s = acc_s + F.interpolate(S.float(), grid, mode="bilinear", align_corners=False)
        acc_l = acc_l + F.interpolate(L.float(), grid, mode="bilinear", align_corners=False)
    maps = (acc_s / len(scales))[0].cpu().numpy()
    fields = (acc_l / len(scales))[0].cpu().numpy()
    return Prediction(maps, fields, st, tuple(size), base, boxes)


def last_stage(model, x, boxes=False):
    """The last stage's (S, L) for input ``x``, and the box head's output
    when ``boxes`` (else None)."""
    x = x.contiguous(memory_format=torch.channels_last)
    if boxes:
        stages, B = model(x, boxes=True)
        return stages[-1], B
    return model(x)[-1], None


def unmirror(S, L, skeleton):
    """The network's maps S (B, J+1, h, w) and fields L (B, 2C, h, w) for a
    mirrored input -> those for the input itself: x mirrored back, left and
    right joints swapped (the background stays last), limb c read from limb
    ``limb_flip[c]`` with its x component negated -- the unit vector from
    j1 to j2 of Eq. (3) mirrors to (-v_x, v_y). The mirror is exact on the
    map grid: input and map widths are multiples of the stride, so map pixel
    i of the mirror covers the input pixels of map pixel w - 1 - i."""
    J = skeleton.J
    S = S.flip(-1)
    S = torch.cat([S[:, torch.as_tensor(skeleton.flip)], S[:, J:]], 1)
    B, _, h, w = L.shape
    L = L.flip(-1).reshape(B, -1, 2, h, w)[:, torch.as_tensor(skeleton.limb_flip)]
    L = L * torch.tensor([-1.0, 1.0], dtype=L.dtype, device=L.device)[:, None, None]
    return S, L.reshape(B, -1, h, w)


# =============================================================================
# §IV-C Table III's baseline with real weights: Cao et al.'s released network
# =============================================================================
# The baseline of the ablations, "6-stage + VGG" (Table III), is the network
# of Cao et al. [3], and its COCO weights are public (``body_pose_model.pth``
# of the OpenPose PyTorch ports). Loaded into ``PoseNetwork`` with their
# concurrent stages it gives real maps and fields on real photos without any
# training, read by the same candidates, Eq. (5), Algorithm 1, pose NMS and
# completion as our networks: Table IV's parsing rows on COCO with maps as
# good as [3]'s own. Their conventions (layer names, channel orders, input)
# live in ``common/openpose.py``.
def cao_config():
    """Cao et al.'s COCO network as a ``Config``: Table III's "6-stage + VGG"
    (VGG-19 to conv4_2, their two CPM convolutions, six stages, no 2x: stride
    8), full width, concurrent stages. Test-time settings stay ours (the
    paper's scales 0.7/1/1.3, Algorithm 1's thresholds); ``test_size`` is the
    image *height* at scale 1.0 here, 368 as in their code ("boxsize")."""
    return Config(data="coco", backbone="vgg", stages=6, upsample=False, width=1.0, wiring="concurrent")


class CaoNetwork(PoseNetwork):
    """The network of Cao et al.'s released COCO weights: ``PoseNetwork`` with
    ``cao_config()`` (concurrent stages) and their output layout
    (``openpose.CaoLayout``). forward() returns every stage's (S, L) in
    *their* channels; ``infer`` feeds it their input and maps its outputs
    onto our tree. 52.31 M parameters. The same network for AI Challenger's
    14 joints and 13 limbs has 51.289 M: exactly Table III's 51.29 M for the
    paper's baseline, which is therefore Cao et al.'s *concurrent* network
    (``--backbone vgg --stages 6 --no-2x`` builds the sequential one: 0.49 M
    more, the weights of the maps its field branches also read)."""

    def __init__(self):
        super().__init__(cao_config(), openpose.CaoLayout())

    @torch.no_grad()
    def infer(self, image, size, cfg, device, scales=None):
        """``infer`` for their network: their input and resampling
        (``openpose.multiscale_outputs``, §IV-A's averaging), our layout out."""
        heat, paf, base = openpose.multiscale_outputs(self, image, cfg.test_size, scales or cfg.scales, device)
        maps, fields = openpose.cao_to_ours(heat, paf, Skeleton(cfg.data))
        return Prediction(maps, fields, self.stride, tuple(size), base)


def model_from_cao_weights(path, device):
    """(config, skeleton, model in eval mode) for ``--cmu-weights``, as
    ``model_from_checkpoint`` gives them for our checkpoints. A missing or
    unreadable file fails before the network is built."""
    state = openpose.read_cao_file(path)
    model = CaoNetwork()
    model.load_state_dict(openpose.cao_state_dict(model, state, f"--cmu-weights {Path(path).expanduser()}"),
                          strict=True)
    return cao_config(), Skeleton("coco"), model.to(device).to(memory_format=torch.channels_last).eval()


# =============================================================================
# II. The paper's tables (§IV): Tables I-II with the top-down row and [3],
#     Table III's networks (``--stages``, ``--backbone``, ``--no-2x``),
#     Table IV's rows, and Fig. 1's boxes
# =============================================================================
# §IV-C Table IV: each component of the method removed in turn, on the same
# maps and boxes, beside the box-free parse of [3].
VARIANTS = {  # Table IV rows, in the paper's order
    "greedy": "pose parsing by [3]",
    "no_nms": "without pose NMS",
    "no_completion": "without pose completion",
    "full": "our method (full)",
}


def parse_variants(pred, boxes, skeleton, cfg, variants, inputs=None, box_scores=None):
    """Every requested parse of one image; boxes in full-res image px.
    ``inputs``: ``candidates_and_scores`` of ``pred`` when already computed.
    ``box_scores``: the detector's score of each box; with
    ``cfg.readings.use_box_score`` a pose's ranking score is multiplied by its box's
    (Paper: whether the detector's score counts is unspecified).
    Returns {variant: ``Parse`` with keypoints in image px}; a missing joint
    is (0, 0, 0), as in COCO's files."""
    cand, scores = inputs or candidates_and_scores(pred.maps, pred.fields, skeleton, cfg)
    box_map = pred.boxes_to_map(extend_boxes(boxes, cfg.box_extend, cfg.readings.extend_per_side))
    out = dict.fromkeys(variants)
    # The parse of [3] first: it scores every pair, with the support its
    # criterion needs, and the parses in boxes then read their pairs' scores.
    for v in sorted(variants, key=lambda v: v != "greedy"):
        if v == "greedy":
            parse = parse_greedy(pred.maps, pred.fields, skeleton, cfg, cand, scores)
        else:
            parse = parse_image(pred.maps, pred.fields, box_map, skeleton, cfg, cand=cand,
                                scores=scores, nms=v != "no_nms", completion=v != "no_completion")
        kp = parse.keypoints
        kp[..., :2] = np.where(kp[..., 2:] > 0, pred.to_image(kp[..., :2]), 0.0)
        if cfg.readings.use_box_score and box_scores is not None and v != "greedy":
            parse.scores[:] *= np.asarray(box_scores, np.float32)[[p.box for p in parse.poses]]
        out[v] = parse
    return out


# What the evaluation calls of the method (``common.bub_eval``: rows, images, scores).
PARSER = Parser(candidates_and_scores, parse_variants, VARIANTS)


# =============================================================================
# §IV-B Tables I-II (with the top-down row, "CPM", and [3]), Table IV, Fig. 1
# =============================================================================
# §IV-A: the boxes come from a person detector (YOLOv2). Here: a detection
# file (``--boxes FILE``), the ground truth (``--boxes gt``) or a simulated
# detector that errs as YOLOv2 does (``common.detector``; the toy's default).
# The top-down row is paper 1's cascade in each box (``common.topdown``).
def final_evaluation(model, val_src, cfg, skeleton, rt, out_dir, boxes="gt", seed=0, data=None, what="",
                     topdown=None, observe=(), jitter=JITTER_LEVELS, box_jitter=0.0):
    """§IV on the validation set: Tables I-II (with the top-down row of paper 1
    when ``topdown`` is given), Table IV with bootstrap intervals, the crowded
    slice and AP against box jitter beside the box-free parse of [3] (Fig.
    1), on ``boxes`` (``detector_boxes``; ``what`` names them). Prints them,
    writes results_coco.json (the full method's poses) and returns {"rows":
    {Row: AP dict}, "table_iv", ...}. ``observe``: more consumers of the
    per-image records (walkthrough/studies.py), each with ``add(record)``;
    ``jitter``, ``box_jitter``: the studies' knobs (``table_rows``, ``evaluate``)."""
    rows = table_rows(cfg, boxes, VARIANTS, topdown is not None, jitter)
    tally = Tally(rows)
    for rec in evaluate(model, val_src, cfg, skeleton, rt.device, rows, PARSER, boxes=boxes, seed=seed,
                        topdown=topdown, box_jitter=box_jitter):
        for consumer in (tally, *observe):
            consumer.add(rec)
    write_json(out_dir / "results_coco.json", tally.results[Row("full")])
    ev = paper_tables(tally, skeleton, VARIANTS, seed)
    ev["jitter"] = print_tables(ev, data or cfg.data, len(val_src), what or boxes_text(boxes), cfg, VARIANTS)
    return ev


# =============================================================================
# III. Run it: the command line (a ``Config`` from the flags in one place, ``build_config``)
# =============================================================================
def load_sources(args, skeleton, cfg):
    """(train source, validation source) for ``--data``."""
    if args.data != "toy":
        return record_scenes(args.data, cli.data_root(args), skeleton, args.eval_only)
    regime = PAPER_REGIME if args.toy_world == "paper" else DEFAULT_REGIME
    return (ToyScenes(args.seed, args.toy_train, cfg.input_size, skeleton, regime),
            ToyScenes(args.seed + 1, args.toy_val, cfg.input_size, skeleton, regime))


TRAIN_FLAGS = ("stages", "backbone", "width", "hidden", "input_size", "batch_size", "epochs", "lr", "sigma", "delta",
               "box_weight")
READING_FLAGS = ("test_size", "flip_test", "eta")    # also for a trained network: how its outputs are read


def build_config(args, trained=None):
    """The run's ``Config`` from the flags: a new network's (the paper's, or
    ``toy_config`` on the toy) with every flag given; with ``trained`` (a
    checkpoint's or Cao et al.'s config) that network's, with the reading
    flags only: ``--test-size``, ``--scales``, ``--flip-test``, ``--eta``,
    ``--paper-literal``, ``--box-score``."""
    if trained is None:
        cfg = toy_config() if args.data == "toy" else Config(data=args.data)
        cfg.seed, cfg.upsample = args.seed, cfg.upsample and not args.no_2x
        cli.override(cfg, args, TRAIN_FLAGS)
    else:
        cfg = replace(trained)
    cli.override(cfg, args, READING_FLAGS)
    cfg.scales = scales_flag(args) or cfg.scales
    if args.paper_literal:
        cfg.readings = replace(cfg.readings, **PAPER_LITERAL)
    if args.use_box_score is not None:
        cfg.readings = replace(cfg.readings, use_box_score=args.use_box_score)
    if trained is None and (cfg.input_size % 8 or cfg.input_size < 16):
        raise UsageError(f"--input-size must be a multiple of 8 (the feature stride), got {cfg.input_size}")
    if cfg.test_size < 8 or cfg.epochs < 1:
        raise UsageError("--test-size must be at least 8 and --epochs positive")
    return cfg


def scales_flag(args):
    """``--scales`` as a tuple, or None when not given."""
    scales = cli.number_list(args.scales, "--scales", "0.7,1,1.3") if args.scales else None
    if scales == ():
        raise UsageError(f"--scales {args.scales!r}: expected positive numbers like 0.7,1,1.3")
    return scales


# Every numeric flag and what it may hold (``cli.KINDS``).
FLAG_KINDS = {**cli.SHARED_KINDS, "hidden": "count", "test_size": "count", "epochs": "count", "lr": "positive",
              "eta": "probability", "sigma": "positive", "delta": "positive", "val_images": "count",
              "box_weight": "nonnegative",
              "seed": "natural", "log_every": "count"}


def check_args(args):
    """Every flag of a command line, before any data is read or any step
    trained: one line naming the flag and what was expected."""
    cli.check_numbers(args, FLAG_KINDS)
    scales_flag(args)
    if args.resume and (args.demo is not None or args.eval_only):
        raise UsageError("--resume continues a training run: not with --demo or --eval-only")
    if args.cmu_weights and args.checkpoint:
        raise UsageError("give --checkpoint or --cmu-weights, not both")


def resume_run(args):
    """``--resume``: the checks of ``--checkpoint`` (a paper-1 or broken file
    is one line), then the saved run's flags (``cli.resume_flags``)."""
    path = Path(args.resume).expanduser()
    cfg, _, _ = model_from_checkpoint(path, "cpu")
    extra = harness.load_checkpoint(path)["extra"]
    cli.resume_flags(args, extra.get("flags"), path)
    print(f"resuming {path}: {len(extra.get('history', {}).get('loss', ()))} of {cfg.epochs} epochs done; "
          f"the rest with the run's own flags", flush=True)


def config_from_dict(d):
    """A checkpoint's saved ``Config``, also from earlier versions (flat
    readings, the simulated detector's rates, ``head_width``, ``fg_weight``,
    Eq. (9)'s weights as three fields)."""
    d = dict(d)
    if "alpha" in d:
        d["eq9_weights"] = (d.pop("alpha"), d.pop("beta"), d.pop("gamma"))
    for k in [k for k in d if k.startswith("det_")] + ["detector", "fg_weight"]:
        d.pop(k, None)                              # evaluation settings, not the network's
    if d.pop("head_width", None) not in (None, d.get("width", 1.0)):
        raise KeyError("head_width (a network with stages of their own width: an earlier version's)")
    flat = {k: d.pop(k) for k in [k for k in d if k in Readings.__dataclass_fields__]}
    d["readings"] = Readings(**{**flat, **d.get("readings", {})})
    for k in ("resnet_blocks", "scales", "person_frac", "eq9_weights"):
        d[k] = tuple(d.get(k, getattr(Config, k)))
    return Config(**d)


def model_from_checkpoint(path, device):
    """(config, skeleton, model in eval mode) from a best.pt/last.pt."""
    def build(d):
        cfg = config_from_dict(d)
        return cfg, PoseNetwork(cfg, Skeleton(cfg.data))
    cfg, model = harness.load_model(Path(path).expanduser(), build, "bottom_up_bbox.py")
    return cfg, Skeleton(cfg.data), model.to(device).eval()


def trained_model(args, device, path=None):
    """(config, skeleton, model) of ``--checkpoint`` (or ``path``) or of
    ``--cmu-weights`` (§IV-C), with the reading flags applied."""
    if args.cmu_weights:
        if args.demo is None and args.data != "coco":
            raise UsageError(f"--cmu-weights: Cao et al.'s network was trained on COCO; "
                             f"evaluate it with --data coco, not {args.data}")
        if args.flip_test:
            raise UsageError("--flip-test is for our networks: Cao et al.'s input is padded on one side "
                             "(openpose.cao_input), so its mirror is not exact")
        cfg, skeleton, model = model_from_cao_weights(args.cmu_weights, device)
    else:
        cfg, skeleton, model = model_from_checkpoint(path or args.checkpoint, device)
    return build_config(args, cfg), skeleton, model


def run_demo(args, rt):
    """Poses of everyone in each photo (or in a fresh toy scene): a figure and
    a COCO-results JSON per image, and one COCO-results file for them all
    (``common.bub_demo``)."""
    synthetic = not args.demo
    if args.cmu_weights and synthetic:
        raise UsageError("--cmu-weights is Cao et al.'s network for photos: give it one, --demo IMAGE")
    out = cli.check_out_dir(args.out or Path("runs") / "demo")
    ckpt = args.checkpoint or (Path("runs") / "toy" / "best.pt" if synthetic else None)
    if ckpt is None and not args.cmu_weights:
        raise UsageError("--demo IMAGE needs --checkpoint PATH (a best.pt written by training)")
    if synthetic and not Path(ckpt).is_file():
        raise UsageError(f"--demo needs --checkpoint PATH, or {ckpt} from the default toy run "
                         f"(python bottom_up_bbox.py: about 8 minutes on 2 CPU cores)")
    if not synthetic and args.boxes in ("gt", "sim"):
        raise UsageError(f"--boxes {args.boxes} needs annotations; for --demo IMAGE give --boxes FILE or no --boxes")
    files = [] if synthetic else image_files(args.demo)
    dets = read_boxes(args.boxes) if args.boxes not in (None, "gt", "sim", "net") else None
    cfg, skeleton, model = trained_model(args, rt.device, ckpt)
    if args.boxes == "net" and model.box_head is None:
        raise UsageError(f"--boxes net: {args.cmu_weights or ckpt} has no box head (trained with --box-weight 0)")
    if not synthetic and cfg.data == "toy" and not args.cmu_weights:
        print(f"note: {ckpt} was trained on the toy scenes; on a photo its poses mean little", flush=True)
    demo = Demo(model, cfg, skeleton, PARSER, extend_boxes, rt.device, out, args.boxes, args.seed,
                by_height=bool(args.cmu_weights))          # Cao et al.'s network scales the image's height
    return demo.run(files, dets)


def flag_default(name):
    """A config-backed flag's default: the paper's, and the toy's where it differs."""
    v, t = getattr(Config(), name), getattr(toy_config(), name)
    return f"(default: {v}" + ("" if v == t else f"; toy: {t}") + ")"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=cli.HelpFormatter,
                                epilog="Quick run: python bottom_up_bbox.py --toy-train 200 --epochs 1 (half a minute). "
                                       "An internal error is one line; BUB_DEBUG=1 shows its traceback.")
    g = cli.add_shared_flags(p, {"model": "model (Table III)", "training": "training (§IV-A)",
                                 "evaluation": "evaluation (Tables I-II, IV, Fig. 1)", "demo": "boxes and demo"}, {
        "data": "the data set", "toy_train": "toy training scenes", "toy_val": "toy validation scenes",
        "data_root": "folder of the COCO, AI Challenger or CrowdPose data set (see README)",
        "width": "channel multiplier, 1 = the paper's network " + flag_default("width"),
        "pretrained": "torchvision ImageNet weights (.pth) for the feature extractor",
        "checkpoint": "a best.pt/last.pt to evaluate, demo, or fine-tune from",
        "batch_size": "global batch size, split over GPUs " + flag_default("batch_size"),
        "input_size": "training crop side in px " + flag_default("input_size"),
        "eval_only": "evaluate --checkpoint on the validation set, no training (results in --out)",
        "flip_test": "average each scale's outputs with its mirror image's (not in the paper) "
                     + flag_default("flip_test"),
        "demo": "poses of everyone in each IMAGE (files or folders): a figure and a COCO-results JSON "
                "each in --out, and results_coco.json for all; no IMAGE: a fresh synthetic scene",
        "boxes": "'gt' (ground-truth boxes as the detector), 'sim' (the simulated detector, common.detector), "
                 "'net' (the network's box head, §V) or a COCO detection-results JSON (default: net where the "
                 "network has a box head; else sim on toy scenes, gt on real data, and for --demo IMAGE the "
                 "extents of [3]'s parse; see README)"},
        data={"choices": ("toy", "coco", "aic", "crowdpose")}, toy_train={"default": 2000},
        toy_val={"default": 200}, demo={"nargs": "*"})
    g["data"].add_argument("--toy-world", choices=("default", "paper"), default="default",
                           help="toy scenes: crowds a box can resolve, or the paper's regime (overlaps to IoU 0.6, "
                                "hidden necks and torsos, small people; common.toy.PAPER_REGIME)")
    own_flags(g["model"], g["training"], g["evaluation"])
    g["demo"].add_argument("--box-score", dest="use_box_score", action=argparse.BooleanOptionalAction,
                           default=None, help="rank poses by their box's detector score x the pose score "
                                              "(default: off)")
    cli.add_run_flags(p, "runs/<data>; --eval-only runs/<data>-eval; --demo runs/demo", log_every=50,
                      seeded="the toy scenes, the augmentation and the init")
    argv = cli.list_values_with_minus(argv, ("--scales",))
    args = p.parse_args(argv)
    args.given = cli.given_dests(p, argv)
    args.flag_names = {a.dest: a.option_strings[0] for a in p._actions if a.option_strings}
    return args


def own_flags(g, t, e):
    """The script's own flags: Table III's networks and Cao et al.'s released
    one (group ``g``), §IV-A's training (``t``), the evaluation (``e``)."""
    g.add_argument("--stages", type=int, choices=(1, 2, 3, 4, 5, 6), help="number of stages " + flag_default("stages"))
    g.add_argument("--backbone", choices=("resnet", "vgg"), help="ResNet-50 or VGG-19 features " + flag_default("backbone"))
    g.add_argument("--no-2x", action="store_true", help="no deconvolution: outputs at stride 8, not 4")
    g.add_argument("--hidden", type=int, help="channels of stage 1's hidden 1x1 layer before --width, "
                                              "512 = Cao et al. " + flag_default("hidden"))
    g.add_argument("--cmu-weights", metavar="PATH",
                   help=f"Cao et al.'s released COCO network ({openpose.CAO_FILE} of the OpenPose PyTorch ports) "
                        "instead of --checkpoint, for --demo IMAGE and --eval-only --data coco (see README)")
    t.add_argument("--epochs", type=int, help="training epochs " + flag_default("epochs"))
    t.add_argument("--lr", type=float, help="Adam's initial rate, decayed x0.1 geometrically " + flag_default("lr"))
    t.add_argument("--sigma", type=float, help="Eq. (1)'s sigma in input px " + flag_default("sigma"))
    t.add_argument("--delta", type=float, help="Eq. (3)'s half-width of a limb's field in input px "
                                               + flag_default("delta"))
    t.add_argument("--box-weight", type=float, help="weight of a box head's loss beside Eq. (8), 0: no head "
                                                    "(the paper's future work, §V; README) " + flag_default("box_weight"))
    t.add_argument("--val-images", type=int, default=50, help="validation images scored after each epoch")
    e.add_argument("--test-size", type=int, help="longer image side at test scale 1.0; with --cmu-weights the "
                                                 "height, as Cao et al. " + flag_default("test_size"))
    e.add_argument("--scales", help="test scales, comma-separated " + flag_default("scales"))
    e.add_argument("--eta", type=float, help="pose NMS threshold of Eq. (11) " + flag_default("eta"))
    e.add_argument("--paper-literal", action="store_true",
                   help="parse with the paper's words read literally where it leaves a reading open "
                        f"({', '.join(f'{k}={v}' for k, v in PAPER_LITERAL.items())}; README)")
    e.add_argument("--topdown", metavar="CKPT",
                   help="paper 1's cascade (a heatmap_regression.py best.pt, e.g. from --data toy-crowd) "
                        "as the top-down row: run in every box, compared on the same boxes")


def evaluation_flags(args, cfg, skeleton, rt):
    """``final_evaluation``'s settings from the flags: the boxes (``--boxes``),
    the seed, the data set's name and the top-down row (``--topdown``)."""
    boxes = box_source(args.boxes, args.data, head=cfg.box_weight > 0)
    topdown = None
    if args.topdown:
        import heatmap_regression as hr               # paper 1: the code, not a copy
        topdown = TopDown(args.topdown, skeleton, rt.device, hr, flip_test=cfg.flip_test)
    return {"boxes": boxes, "seed": args.seed, "data": args.data, "what": boxes_text(boxes, args.boxes),
            "topdown": topdown}


def run_eval(args, rt):
    """``--eval-only``: the final evaluation of ``--checkpoint`` (or
    ``--cmu-weights``) on the validation set."""
    if not args.checkpoint and not args.cmu_weights:
        raise UsageError("--eval-only needs --checkpoint PATH (or --cmu-weights PATH with --data coco)")
    cfg, skeleton, model = trained_model(args, rt.device)
    if (cfg.data == "toy") != (args.data == "toy") or (cfg.data != "toy" and Skeleton(args.data).J != skeleton.J):
        raise UsageError(f"--checkpoint {args.checkpoint} was trained on {cfg.data}, not {args.data}")
    out_dir = cli.check_out_dir(args.out or Path("runs") / f"{args.data}-eval")
    _, val_src = load_sources(args, skeleton, cfg)
    ev = final_evaluation(model, val_src, cfg, skeleton, rt, out_dir, **evaluation_flags(args, cfg, skeleton, rt))
    summary = {"config": asdict(cfg), **results_json(ev)}
    write_json(out_dir / "results.json", summary)
    print(f"\nresults.json and results_coco.json in {out_dir}/")
    return summary


def new_model(args, cfg, skeleton, device):
    """The network to train: from ``--checkpoint`` (fine-tuning), with ``--pretrained``
    ImageNet features, or from scratch; ``--resume`` loads every weight later, in ``train``."""
    model = PoseNetwork(cfg, skeleton)
    if args.checkpoint and not args.resume:
        model.load_state_dict(model_from_checkpoint(args.checkpoint, "cpu")[2].state_dict())
    elif args.pretrained and not args.resume:
        model.features.load_imagenet(Path(args.pretrained).expanduser())
    return model.to(device)


def run(args):
    check_args(args)
    if args.resume:
        resume_run(args)
        check_args(args)                             # the saved flags, as this version reads them
    rt = harness.setup_runtime(args.device, amp=False if args.no_amp else None)
    torch.manual_seed(args.seed)
    if args.demo is not None:
        return run_demo(args, rt)
    if args.eval_only:
        return run_eval(args, rt)
    if args.cmu_weights:
        raise UsageError("--cmu-weights is for --demo IMAGE and --eval-only --data coco (it is not trained here)")
    cfg = build_config(args)
    skeleton = Skeleton(cfg.data)
    out_dir = cli.check_out_dir(args.out or Path("runs") / args.data)
    train_src, val_src = load_sources(args, skeleton, cfg)
    box_source(args.boxes, args.data, head=cfg.box_weight > 0)   # a bad --boxes fails now, not after training
    if args.topdown and not Path(args.topdown).expanduser().is_file():
        raise FileNotFoundError(f"--topdown {args.topdown}: no such file (a heatmap_regression.py best.pt)")
    model = new_model(args, cfg, skeleton, rt.device)
    train_set = TrainScenes(train_src, cfg, skeleton, model.stride, make_targets)
    if rt.is_main:
        print(f"{args.data}: {len(train_src)} train / {len(val_src)} val images; {cfg.stages}-stage {cfg.backbone}"
              f"{' + 2x' if cfg.upsample else ''}, width {cfg.width}, "
              f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, {cfg.input_size} px input, "
              f"device {rt.device}" + (f" x {rt.world_size}" if rt.distributed else ""), flush=True)
    t0 = time.time()
    history = train(cfg, model, train_set, val_src, rt, out_dir, skeleton, resume=args.resume,
                    log_every=args.log_every, val_images=args.val_images, flags=cli.run_flags(args))
    if not rt.is_main:
        harness.cleanup_runtime(rt)
        return None
    ev = final_evaluation(model, val_src, cfg, skeleton, rt, out_dir, **evaluation_flags(args, cfg, skeleton, rt))
    figures_of_run(model, val_src, cfg, skeleton, rt, out_dir, history, ev)
    summary = {"config": asdict(cfg), "seconds": time.time() - t0, **results_json(ev), "history": history}
    write_json(out_dir / "results.json", summary)
    print(f"\n{time.time() - t0:.0f} s; checkpoints, figures, results.json and results_coco.json in {out_dir}/")
    harness.cleanup_runtime(rt)
    return summary


def figures_of_run(model, val_src, cfg, skeleton, rt, out_dir, history, ev):
    """curves.png (loss, validation AP, Fig. 1 a-b) and Fig. 2-style figures
    of the first three validation images on their ground-truth boxes."""
    plotting.figure_curves(history, ev["jitter"], ev["rows"][Row("greedy")]["AP"], out_dir / "curves.png")
    demo = Demo(model, cfg, skeleton, PARSER, extend_boxes, rt.device, out_dir)
    for i in range(min(3, len(val_src))):
        scene = val_src.load(i, max_reduce=max(scene_size(val_src, i)) / cfg.test_size)
        parsed = demo.parse(scene.image, scene.size, gt_boxes(val_src.ground_truth(i)))
        demo.figure(scene.image, *parsed, f"scene_{i}", title=f"validation image {val_src.image_id(i)}")


def main(argv=None):
    return cli.run_reporting_errors(run, parse_args(argv), "BUB_DEBUG", argv=argv)


if __name__ == "__main__":
    main()
