"""Cao et al.'s released COCO network (OpenPose's body model): its conventions.

``bottom_up_bbox.CaoNetwork`` builds their network (``PoseNetwork`` with
concurrent stages); this module holds what is theirs rather than the
paper's: layer names, channel orders, the input convention, and the mapping
of their outputs onto the paper's tree. No paper logic.

The baseline of the ablations, "6-stage + VGG" (Table III), is the network
of Cao et al. [3], and its COCO weights are public: their Caffe model
(Realtime_Multi-Person_Pose_Estimation, then OpenPose's "COCO" body model),
converted to PyTorch by the OpenPose ports as ``body_pose_model.pth``.
Loaded into ``PoseNetwork`` with their concurrent stages, it gives real
confidence maps and fields on real photos with no training at all; what
reads them afterwards -- candidates, Eq. (5), Algorithm 1, pose NMS,
completion, the parse of [3] -- is the same code as for our own networks.
So the parsing rows of Table IV (the paper's contribution) can be measured
on COCO with a network whose maps are as good as [3]'s own.

Their conventions differ from ours in five places; each is handled once:
  1. layer names, Caffe's: ``conv1_1`` ... ``conv4_4_CPM``, then per stage
     and branch ``conv5_*_CPM_L{1,2}`` / ``Mconv*_stage{2..6}_L{1,2}``,
     where L1 is the *field* branch and L2 the *map* branch (``cao_name_map``);
  2. a stage's input is concatenated as (L, S, F), ours as (F, S, L)
     (``cao_state_dict`` reorders the input channels of the stage-2..6 convs);
  3. the input: BGR, pixel / 256 - 0.5, the image's height scaled to 368 px
     and padded right and bottom to a multiple of 8 with grey 128 (``cao_input``);
  4. the output channels: their 18 joints in their order plus background,
     their 19 limbs in the order of their PAF channels (``CAO_JOINTS``, ``CAO_LIMBS``);
  5. each limb's field points from the first joint of their pair to the
     second, x in the first channel of the pair, y in the second (``cao_to_ours``).
Sources, read for facts (no code taken): OpenPose's poseParameters
(POSE_COCO_BODY_PARTS, POSE_COCO_PAIRS, POSE_COCO_MAP_IDX) and its body-part
connector (x = the first map of a pair, y = the second; the vector runs from
the pair's first part to its second); the COCO pose_deploy.prototxt of
Realtime_Multi-Person_Pose_Estimation (layers, concat_stage* order); the
PyTorch port Hzzone/pytorch-openpose (its file's keys, its preprocessing).
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from .transforms import from_stride, to_stride

CAO_FILE = "body_pose_model.pth"
# Their 18 keypoints, in the order of their 19 confidence maps (background is
# the 19th). COCO's 17 plus the neck (which they, like ``Skeleton``, take as
# the midpoint of the shoulders); the names are ours (``common.skeleton``).
CAO_JOINTS = ("nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
              "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear")
# Their 19 limbs in their order ("limbSeq" / POSE_COCO_PAIRS), each as (from,
# to, x): the field points from ``from`` to ``to``; channel ``x`` of the 38
# PAF channels holds its x component and ``x + 1`` its y component ("mapIdx"
# minus the 19 maps in front of the PAFs in their 57-channel blob). The last
# two (shoulder -> ear) are redundant links of their parser; our tree has the
# other 17, every one pointing from parent to child as theirs do.
CAO_LIMBS = (
    ("neck", "r_shoulder", 12), ("neck", "l_shoulder", 20), ("r_shoulder", "r_elbow", 14),
    ("r_elbow", "r_wrist", 16), ("l_shoulder", "l_elbow", 22), ("l_elbow", "l_wrist", 24),
    ("neck", "r_hip", 0), ("r_hip", "r_knee", 2), ("r_knee", "r_ankle", 4),
    ("neck", "l_hip", 6), ("l_hip", "l_knee", 8), ("l_knee", "l_ankle", 10),
    ("neck", "nose", 28), ("nose", "r_eye", 30), ("r_eye", "r_ear", 34),
    ("nose", "l_eye", 32), ("l_eye", "l_ear", 36),
    ("r_shoulder", "r_ear", 18), ("l_shoulder", "l_ear", 26),
)
# The VGG-19 layers they keep: the names of the VGG paper, which Caffe's model
# and ``common.backbones.VGG.conv_names()`` share.
CAO_VGG = ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv3_4",
           "conv4_1", "conv4_2")


class CaoLayout(NamedTuple):
    """Their output layout, which is all ``PoseNetwork`` reads of a skeleton:
    J = 18 joints (19 maps with the background) and C = 19 limbs (38 field
    channels) -- two limbs more than our COCO tree (``Skeleton("coco")``)."""
    J: int = len(CAO_JOINTS)
    C: int = len(CAO_LIMBS)


def cao_name_map(model):
    """{our state-dict key: theirs} for every parameter of ``model`` (a
    ``CaoNetwork``), the one place the two namings meet.

    Within each part both networks list their convolutions in the same order,
    so the map pairs them up in order, part by part:

        features.trunk   (VGG-19 to conv4_2)  conv1_1 ... conv4_2
        features.cpm                          conv4_3_CPM, conv4_4_CPM
        maps[0], fields[0]  (stage 1)         conv5_1_CPM_L2 ... conv5_5_CPM_L2, ... _L1
        maps[t], fields[t]  (stage t+1 >= 2)  Mconv1_stage{t+1}_L2 ... Mconv7_stage{t+1}_L2, ... _L1

    (L2 = their map branch, L1 = their field branch.) Each convolution has a
    ``weight`` and a ``bias``: 2 x 92 = 184 keys.
    """
    theirs = {"features.trunk": CAO_VGG, "features.cpm": ("conv4_3_CPM", "conv4_4_CPM")}
    for t in range(len(model.maps)):
        for part, L in (("maps", "L2"), ("fields", "L1")):
            theirs[f"{part}.{t}"] = ([f"conv5_{i}_CPM_{L}" for i in range(1, 6)] if t == 0 else
                                     [f"Mconv{i}_stage{t + 1}_{L}" for i in range(1, 8)])
    names = {}
    for part, layers in theirs.items():
        convs = [n for n, m in model.get_submodule(part).named_modules() if isinstance(m, nn.Conv2d)]
        if len(convs) != len(layers):           # not Cao et al.'s shape of network
            raise ValueError(f"{part}: {len(convs)} convolutions, Cao et al.'s has {len(layers)}")
        for ours, layer in zip(convs, layers):
            for p in ("weight", "bias"):
                names[f"{part}.{ours}.{p}"] = f"{layer}.{p}"
    return names


def cao_state_dict(model, state, what=CAO_FILE):
    """Their state dict (``{"conv1_1.weight": tensor, ...}``, as in
    ``body_pose_model.pth``) -> ours, for ``model.load_state_dict(strict=True)``.

    Strict both ways, checked here so that a wrong file is one line: every
    one of their 184 keys present with its shape, nothing else in the file.
    Then convention 2: their stage t >= 2 reads concat(L, S, F) -- 38 field,
    19 map, 128 feature channels (their ``concat_stage*``) -- ours reads
    concat(F, S, L), so the input channels of the first convolution of both
    branches are put in our order. Everything else is copied as it is: our
    outputs stay in their channel order until ``cao_to_ours``.
    """
    names = cao_name_map(model)
    own = model.state_dict()
    wanted = set(names.values())
    missing = [t for t in names.values() if t not in state]
    unexpected = [k for k in state if k not in wanted]
    shapes = [f"{t} {tuple(state[t].shape)} vs {tuple(own[o].shape)}" for o, t in names.items()
              if t in state and tuple(state[t].shape) != tuple(own[o].shape)]
    problems = [f"{len(v)} {kind} {v[:3]}" for kind, v in (
        ("missing keys", missing), ("unexpected keys", unexpected),
        ("shape mismatches (file vs Cao et al.'s COCO network)", shapes)) if v]
    if problems:
        raise ValueError(f"{what} is not Cao et al.'s COCO network ({CAO_FILE}): " + "; ".join(problems))
    out = {o: state[t].float() for o, t in names.items()}
    J1, C2 = model.maps[0][-1].out_channels, model.fields[0][-1].out_channels     # 19, 38
    for t in range(1, len(model.maps)):
        for part in ("maps", "fields"):
            w = out[f"{part}.{t}.0.weight"]                                    # (128, L + S + F, 7, 7)
            out[f"{part}.{t}.0.weight"] = torch.cat([w[:, C2 + J1:], w[:, C2:C2 + J1], w[:, :C2]], 1)
    return out


def read_cao_file(path):
    """``body_pose_model.pth`` (a local file: nothing is downloaded) -> its
    state dict. A missing file, or one torch cannot read as a state dict of
    tensors, raises one line naming it."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"--cmu-weights {p}: no such file; it is {CAO_FILE}, Cao et al.'s COCO "
                                f"network from the OpenPose PyTorch ports (see README); nothing is downloaded")
    try:    # weights_only: a file from the internet must not run code when unpickled
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle/zip/EOF errors: one line, not torch's page
        raise ValueError(f"--cmu-weights {p}: not a readable PyTorch file ({type(e).__name__}); "
                         f"expected {CAO_FILE}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"--cmu-weights {p}: not a state dict of tensors (a training checkpoint?); "
                         f"expected {CAO_FILE}")
    return state


def load_cao_weights(model, path):
    """Their file into a ``CaoNetwork``, strictly (a wrong file: one line)."""
    state = read_cao_file(path)
    model.load_state_dict(cao_state_dict(model, state, f"--cmu-weights {Path(path).expanduser()}"), strict=True)
    return model


def cao_input(image):
    """Conventions 3: a PIL RGB image -> their input tensor ``(1, 3, H8, W8)``.

    BGR channel order (their Caffe model saw OpenCV's images), pixel / 256 -
    0.5 (in [-0.5, 0.5)), then padded at the right and bottom to a multiple of
    8, the stride of their outputs, with grey 128 -- 0 after the scaling. Ours
    (``to_tensor``): RGB with ImageNet's mean and standard deviation, and an
    image resized to a multiple of 8 rather than padded.
    """
    x = np.asarray(image, np.float32)[..., ::-1] / 256.0 - 0.5                # (h, w, 3) BGR
    h, w = x.shape[:2]
    x = np.pad(x, ((0, -h % 8), (0, -w % 8), (0, 0)), constant_values=128 / 256.0 - 0.5)
    return torch.from_numpy(x.transpose(2, 0, 1).copy())[None]


def cao_channels(skeleton, limbs=CAO_LIMBS):
    """Where each of our channels is in theirs (conventions 4 and 5).

    Returns (maps, fields, sign): our map j is their map ``maps[j]`` (the
    background last in both); our field channel k is their PAF channel
    ``fields[k]`` times ``sign[k]``. Our limb (j1, j2) -- parent to child,
    x then y -- is the limb of theirs over the same two joints; if theirs
    pointed from j2 to j1 its field would be negated (none does: all 17 are
    listed parent to child by Cao et al. too, which the tests check).
    """
    if skeleton.kind != "coco":
        raise ValueError(f"Cao et al.'s network predicts COCO's joints, not {skeleton.data}'s")
    maps = [CAO_JOINTS.index(n) for n in skeleton.joints] + [len(CAO_JOINTS)]
    fields, sign = [], []
    for j1, j2 in skeleton.limbs:
        a, b = skeleton.joints[j1], skeleton.joints[j2]
        match = ([(x, 1.0) for p, q, x in limbs if (p, q) == (a, b)]
                 + [(x, -1.0) for p, q, x in limbs if (p, q) == (b, a)])
        if len(match) != 1:
            raise ValueError(f"limb {a}-{b} of our tree is not one of Cao et al.'s limbs")
        x, s = match[0]
        fields += [x, x + 1]
        sign += [s, s]
    return np.array(maps), np.array(fields), np.array(sign, np.float32)


def cao_to_ours(heat, paf, skeleton, limbs=CAO_LIMBS):
    """Their outputs -> the layout of our ``Prediction``.

    heat (19, h, w): their 18 maps + background; paf (38, h, w). Returns maps
    (J + 1, h, w) in ``skeleton.joints`` order with the background last, and
    fields (2C, h, w), x then y per limb of ``skeleton.limbs``, each pointing
    from its parent j1 to its child j2 -- exactly what ``confidence_maps``
    and ``direction_fields`` draw for our own networks. Their two extra
    limbs (shoulder -> ear) are dropped.
    """
    m, f, s = cao_channels(skeleton, limbs)
    return np.asarray(heat)[m], np.asarray(paf)[f] * s[:, None, None]


@torch.no_grad()
def multiscale_outputs(model, image, test_size, scales, device):
    """§IV-A's multi-scale averaging on their input convention: their
    outputs ``(heat (19, h, w), paf (38, h, w))`` at the map grid of scale
    1.0, and ``base``, the unpadded scale-1.0 input size (width, height).

    Scale 1.0 makes the image's height ``test_size`` (368: their "boxsize";
    ours makes the longer side that). Each scale s resizes it by s (bicubic,
    as their cv2.INTER_CUBIC) and pads it (``cao_input``); its stride-8
    outputs are sampled at the centres of the scale-1.0 map pixels, which lie
    at the same places of the image whatever the padding (bilinear; at s = 1
    exactly the pixels themselves). The padding only adds map pixels at the
    right and bottom, so map <-> image conversions made from ``base`` hold.
    """
    model.eval()
    W0, H0 = image.size
    f = test_size / H0
    base = (max(1, round(W0 * f)), max(1, round(H0 * f)))
    st = model.stride                                                      # 8
    grid = (-(-base[1] // st), -(-base[0] // st))                         # (h, w) covering base
    acc_s, acc_l = 0.0, 0.0
    for s in scales:
        w, h = max(1, round(base[0] * s)), max(1, round(base[1] * s))
        x = cao_input(image.resize((w, h), Image.BICUBIC)).to(device)
        S, L = model(x.contiguous(memory_format=torch.channels_last))[-1]   # their channels
        # Scale-1.0 map pixel k -> scale-1.0 input px -> scale-s input px -> scale-s map px.
        where = []
        for n, n1, size_s, size_1 in ((S.shape[3], grid[1], w, base[0]), (S.shape[2], grid[0], h, base[1])):
            u = (from_stride(np.arange(n1, dtype=np.float64), st) + 0.5) * size_s / size_1 - 0.5
            where.append(torch.from_numpy((2 * to_stride(u, st) + 1) / n - 1).float())   # grid_sample's [-1, 1]
        gy, gx = torch.meshgrid(where[1], where[0], indexing="ij")
        g = torch.stack([gx, gy], -1)[None].to(S.device)                   # (1, h, w, 2): x, y
        acc_s = acc_s + F.grid_sample(S.float(), g, mode="bilinear", padding_mode="border", align_corners=False)
        acc_l = acc_l + F.grid_sample(L.float(), g, mode="bilinear", padding_mode="border", align_corners=False)
    heat = (acc_s / len(scales))[0].cpu().numpy()
    paf = (acc_l / len(scales))[0].cpu().numpy()
    return heat, paf, base
