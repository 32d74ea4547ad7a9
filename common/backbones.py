"""ImageNet backbones whose ``state_dict()`` matches torchvision's, key for key.

Both papers start from ImageNet classifiers: paper 1 from VGG-16 (§3.1, "converted
to fully convolutional") and ResNet-152 (§3.2, B5 = layer4 with stride 1), paper 2
from ResNet-50 "with the hole algorithm" (§III-A.1, i.e. dilated convolutions); its
Table III baseline, OpenPose (Cao et al. 2017), from the first 10 convs of VGG-19.
torchvision is not a dependency here, so this file rebuilds those networks with
*exactly* torchvision's parameter names and shapes; a user's local
``resnet152-394f9c45.pth``, ``vgg16-397923af.pth`` or ``vgg19-dcbb9e9d.pth`` loads with
``strict=True`` through :func:`load_imagenet_weights`. Nothing is downloaded.

``width`` scales every channel count (``c -> max(1, round(c * width))``) to make
compact toy models that train on a laptop CPU; ``width=1`` is torchvision.
"""
from pathlib import Path

import torch
from torch import nn

from .layers import ch

# torchvision's blocks per stage (layer1..layer4), He et al. 2016, Table 1.
RESNET_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3),
                 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
# The file names torchvision's model zoo gives its ImageNet weights (V1).
CHECKPOINT_NAMES = {"resnet18": "resnet18-f37072fd.pth", "resnet34": "resnet34-b627a593.pth",
                    "resnet50": "resnet50-0676ba61.pth", "resnet101": "resnet101-63fe2227.pth",
                    "resnet152": "resnet152-394f9c45.pth", "vgg16": "vgg16-397923af.pth",
                    "vgg16_bn": "vgg16_bn-6c64b313.pth", "vgg19": "vgg19-dcbb9e9d.pth",
                    "vgg19_bn": "vgg19_bn-c79401a0.pth"}


def _torchvision_init(module):
    """torchvision's init: He-normal (fan_out) convs, BatchNorm as identity."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


# ----------------------------------------------------------------------------
# ResNet (torchvision "v1.5": the stride of a bottleneck sits on its 3x3 conv)
# ----------------------------------------------------------------------------
class BasicBlock(nn.Module):
    """Two 3x3 convs + identity (ResNet-18/34). ``(B, cin, H, W) -> (B, planes, H/s, W/s)``."""
    expansion = 1

    def __init__(self, cin, planes, stride=1, dilation=1, downsample=None):
        super().__init__()
        # padding = dilation keeps H, W unchanged for a dilated 3x3 conv.
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, dilation, dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, dilation, dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample  # 1x1 conv + BN when the shortcut changes shape

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided/dilated), 1x1 expand x4, + identity (ResNet-50+)."""
    expansion = 4

    def __init__(self, cin, planes, stride=1, dilation=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        # v1.5: stride on the 3x3 (the 1x1 of v1 would skip 3/4 of the pixels).
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, dilation, dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class ResNet(nn.Module):
    """torchvision's ResNet-{18,34,50,101,152}, optionally dilated and/or slimmed.

    ``replace_stride_with_dilation[k]`` keeps layer{k+2} at its input resolution
    and dilates its 3x3 convs instead (DeepLab's "hole algorithm", paper 2
    §III-A.1): denser maps from the same ImageNet weights, since a dilated 3x3
    sees as far across the image as the strided one did. torchvision refuses
    dilation for BasicBlock (ResNet-18/34); here it is allowed, keys unchanged.
    ``blocks`` overrides the per-stage block counts (toy models only).

    ``out_channels`` and ``strides`` give, per stage name of :meth:`features`,
    the channel count and the output stride relative to the input image.
    """

    def __init__(self, depth=50, width=1.0, replace_stride_with_dilation=(False, False, False),
                 num_classes=1000, blocks=None):
        super().__init__()
        if depth not in RESNET_BLOCKS:
            raise ValueError(f"ResNet depth must be one of {sorted(RESNET_BLOCKS)}, got {depth}")
        if len(replace_stride_with_dilation) != 3:
            raise ValueError("replace_stride_with_dilation needs 3 booleans (layer2..layer4)")
        block = BasicBlock if depth < 50 else Bottleneck
        self.depth, self.width = depth, width
        self.arch = f"resnet{depth}"
        blocks = tuple(blocks or RESNET_BLOCKS[depth])
        if len(blocks) != 4:
            raise ValueError(f"blocks needs 4 counts (layer1..layer4), got {blocks}")

        stem = ch(64, width)
        self.conv1 = nn.Conv2d(3, stem, 7, 2, 3, bias=False)  # stride 2
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)  # stride 4
        self.out_channels, self.strides = {"stem": stem}, {"stem": 4}

        cin, stride_so_far, dilation = stem, 4, 1
        dilate = (False,) + tuple(replace_stride_with_dilation)  # layer1 never strides
        for k, (planes, n, dil) in enumerate(zip((64, 128, 256, 512), blocks, dilate)):
            planes = ch(planes, width)
            stride = 1 if k == 0 else 2
            # torchvision's rule: the first block of a dilated stage still uses the
            # *previous* dilation (it sits where the stride used to be); the later
            # blocks use the new, doubled one.
            previous = dilation
            if dil:
                dilation, stride = dilation * stride, 1
            cout = planes * block.expansion
            down = None
            if stride != 1 or cin != cout:  # shortcut must match the residual's shape
                down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                     nn.BatchNorm2d(cout))
            layers = [block(cin, planes, stride, previous, down)]
            layers += [block(cout, planes, 1, dilation) for _ in range(1, n)]
            setattr(self, f"layer{k + 1}", nn.Sequential(*layers))
            cin, stride_so_far = cout, stride_so_far * stride
            self.out_channels[f"layer{k + 1}"] = cout
            self.strides[f"layer{k + 1}"] = stride_so_far

        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(cin, num_classes)  # keeps nn.Linear's default init, as torchvision
        _torchvision_init(self)

    def features(self, x, return_all=False):
        """``(B, 3, H, W)`` -> layer4 map ``(B, out_channels['layer4'], H/s, W/s)``.

        ``s = strides['layer4']`` (32, or 16 / 8 when dilated). With
        ``return_all`` a dict ``{'stem', 'layer1', ..., 'layer4'}`` of all stage
        outputs (``'stem'`` is after the max-pool, stride 4).
        """
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        out = {"stem": x}
        for k in range(1, 5):
            x = out[f"layer{k}"] = getattr(self, f"layer{k}")(x)
        return out if return_all else x

    def forward(self, x):
        """ImageNet logits ``(B, num_classes)``."""
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))


# ----------------------------------------------------------------------------
# VGG-16 / VGG-19 (configurations "D" / "E" of Simonyan & Zisserman 2015)
# ----------------------------------------------------------------------------
# torchvision's cfgs "D" and "E": conv output channels, "M" = 2x2 max-pool.
VGG_CFGS = {
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
         512, 512, 512, "M", 512, 512, 512, "M"),
    19: (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
         512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
}
VGG16_CFG, VGG19_CFG = VGG_CFGS[16], VGG_CFGS[19]


class VGG(nn.Module):
    """torchvision's ``vgg{16,19}`` (or ``_bn``); ``features`` indexed as torchvision's.

    ``features`` strides: pool1 /2 ... pool5 /32. FCN-8s (paper 1, §3.1) taps
    pool3, pool4 and pool5: see :meth:`stages` and :func:`fc_to_conv`.

    Layers are named as in the VGG papers, block by block: ``conv{b}_{i}``
    (the i-th conv of block b, 1-based) and ``pool{b}``. Per name:

    * ``conv_index[name]``: index of the ``nn.Conv2d`` in ``features``, so its
      checkpoint keys are ``features.{conv_index[name]}.weight`` / ``.bias``;
    * ``layer_index[name]``: index of the layer's *last* module in ``features``
      (the conv's ReLU, or the pool itself);
    * ``channels[name]`` and ``strides[name]``: output channels and output
      stride relative to the input image.

    OpenPose (Cao et al., CVPR 2017) uses "the first 10 layers of VGG-19",
    conv1_1 ... conv4_2 with their ReLUs and pools 1-3, i.e. stride 8 and 512
    channels: ``VGG(19).features_until(x, "conv4_2")`` or the module
    ``VGG(19).features_prefix("conv4_2")``.
    """

    def __init__(self, depth=16, width=1.0, batch_norm=False, num_classes=1000):
        super().__init__()
        if depth not in VGG_CFGS:
            raise ValueError(f"VGG depth must be one of {sorted(VGG_CFGS)}, got {depth}")
        self.depth, self.width, self.batch_norm = depth, width, batch_norm
        self.arch = f"vgg{depth}_bn" if batch_norm else f"vgg{depth}"
        layers, cin, self.pool_index = [], 3, {}
        self.conv_index, self.layer_index, self.channels, self.strides = {}, {}, {}, {}
        block, i, stride = 1, 0, 1
        for v in VGG_CFGS[depth]:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
                name, stride = f"pool{block}", stride * 2
                self.pool_index[name] = len(layers) - 1
                block, i = block + 1, 0
            else:
                i += 1
                name, cout = f"conv{block}_{i}", ch(v, width)
                self.conv_index[name] = len(layers)
                layers.append(nn.Conv2d(cin, cout, 3, padding=1))
                layers += [nn.BatchNorm2d(cout)] if batch_norm else []
                layers.append(nn.ReLU(inplace=True))
                cin = cout
            self.layer_index[name] = len(layers) - 1
            self.channels[name], self.strides[name] = cin, stride
        self.features = nn.Sequential(*layers)
        self.out_channels = cin  # channels of pool5
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        hidden = ch(4096, width)
        self.classifier = nn.Sequential(
            nn.Linear(cin * 7 * 7, hidden), nn.ReLU(True), nn.Dropout(),   # fc6: [0]
            nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(),        # fc7: [3]
            nn.Linear(hidden, num_classes))                                # fc8: [6]
        _torchvision_init(self)
        for m in self.classifier:
            if isinstance(m, nn.Linear):  # torchvision: N(0, 0.01), zero bias
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def conv_names(self):
        """The conv layers in order: ``['conv1_1', 'conv1_2', 'conv2_1', ...]``."""
        return list(self.conv_index)

    def _end(self, name):
        """Index in ``features`` of the last module of layer ``name`` (one-line error)."""
        if name not in self.layer_index:
            raise ValueError(f"{self.arch} has no layer {name!r}; "
                             f"valid: {', '.join(self.layer_index)}")
        return self.layer_index[name]

    def features_prefix(self, name):
        """``features`` up to and including layer ``name`` (a conv's ReLU, or a pool).

        An ``nn.Sequential`` *sharing* this model's modules (torch slicing), so
        weights loaded into the model are in it, and training it trains them.
        Its own keys restart at 0 but equal torchvision's ``features.{k}``.
        """
        return self.features[:self._end(name) + 1]

    def features_until(self, x, name):
        """``(B, 3, H, W)`` -> ``(B, channels[name], H/s, W/s)``, ``s = strides[name]``.

        Runs ``features`` up to and including layer ``name``: for a conv, its
        ReLU (and BatchNorm); e.g. ``"conv4_2"`` is OpenPose's VGG-19 stem.
        """
        end = self._end(name)
        for layer in self.features[:end + 1]:
            x = layer(x)
        return x

    def stages(self, x):
        """``(B, 3, H, W)`` -> ``{'pool3': /8, 'pool4': /16, 'pool5': /32}`` maps."""
        taps = {self.pool_index[name]: name for name in ("pool3", "pool4", "pool5")}
        out = {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in taps:
                out[taps[i]] = x
        return out

    def forward(self, x):
        """ImageNet logits ``(B, num_classes)``."""
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class VGG16(VGG):
    """torchvision's ``vgg16`` (or ``vgg16_bn``): :class:`VGG` with ``depth=16``."""

    def __init__(self, width=1.0, batch_norm=False, num_classes=1000):
        super().__init__(16, width, batch_norm, num_classes)


class VGG19(VGG):
    """torchvision's ``vgg19`` (or ``vgg19_bn``): :class:`VGG` with ``depth=19``."""

    def __init__(self, width=1.0, batch_norm=False, num_classes=1000):
        super().__init__(19, width, batch_norm, num_classes)


def fc_to_conv(vgg):
    """FCN "convolutionalization" (paper 1, §3.1): fc6 -> 7x7 conv6, fc7 -> 1x1 conv7.

    fc6 sees a flattened ``(C, 7, 7)`` pool5 map, so its ``(4096, C*49)`` weight
    *is* a ``(4096, C, 7, 7)`` kernel; slid over a larger map it gives the
    classifier's fc6 at every 7x7 window (stride 32), i.e. a dense output.
    No padding here: the caller chooses how to keep the output map large.
    Returns ``(conv6, conv7)`` holding copies of the weights.
    """
    fc6, fc7 = vgg.classifier[0], vgg.classifier[3]
    c5, hidden = vgg.out_channels, fc6.out_features
    conv6 = nn.Conv2d(c5, hidden, 7).to(fc6.weight)
    conv7 = nn.Conv2d(hidden, fc7.out_features, 1).to(fc7.weight)
    with torch.no_grad():
        conv6.weight.copy_(fc6.weight.view(hidden, c5, 7, 7))  # flatten order is (C, H, W)
        conv6.bias.copy_(fc6.bias)
        conv7.weight.copy_(fc7.weight.view(fc7.out_features, hidden, 1, 1))
        conv7.bias.copy_(fc7.bias)
    return conv6, conv7


# ----------------------------------------------------------------------------
# Loading a local torchvision checkpoint
# ----------------------------------------------------------------------------
def check_full_size(path, weights, width, blocks=None, full_blocks=None):
    """ImageNet weights fit only a full-size network (width 1 and, for a
    ResNet, its ``full_blocks``): a compact (toy) one is refused in one line
    that says what the weights need, before anything is read. ``weights``
    names them ("ResNet-152", "VGG-16")."""
    if width == 1.0 and blocks == full_blocks:
        return
    need = ["--width 1"] if width != 1.0 else []
    need += [f"{weights}'s blocks {full_blocks}"] if blocks != full_blocks else []
    have = f"width {width:g}" + (f", blocks {blocks}" if blocks != full_blocks else "")
    raise ValueError(f"--pretrained {path}: torchvision's {weights} weights fit only the paper's "
                     f"full-size network; it needs {' and '.join(need)} (this one has {have})")


def load_imagenet_weights(model, path):
    """Load torchvision ImageNet weights from the local file ``path`` into ``model`` (strict).

    Accepts a raw state dict or one wrapped as ``{'state_dict': ...}`` or
    ``{'model': ...}``, with or without DataParallel's ``module.`` prefix.
    Errors are one line: ``FileNotFoundError`` says what to download,
    ``ValueError`` names the file, the architecture and the first bad keys.
    """
    path, arch = Path(path), getattr(model, "arch", type(model).__name__)
    if not path.is_file():
        example = CHECKPOINT_NAMES.get(arch, f"{arch}-*.pth")
        raise FileNotFoundError(
            f"{path}: no such file; download torchvision's ImageNet {arch} weights "
            f"(e.g. {example}) and put them there; nothing is downloaded at run time")
    if getattr(model, "width", 1.0) != 1.0:
        raise ValueError(f"{path}: ImageNet weights exist only for width=1, "
                         f"but this {arch} has width={model.width}")
    try:  # weights_only: a checkpoint from the internet must not run code when unpickled
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch's messages span many lines; keep ours to one
        raise ValueError(f"{path}: not a readable torch checkpoint of {arch} weights "
                         f"({type(e).__name__})") from e
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict for {arch}, got {type(state).__name__}")
    state = {k.removeprefix("module."): v for k, v in state.items()}

    # Check ourselves so that the error is one readable line, not torch's list.
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
              if k in state and state[k].shape != v.shape]
    problems = [f"{len(v)} {what} {v[:3]}" for what, v in (
        ("missing keys", missing), ("unexpected keys", unexpected),
        ("shape mismatches (file vs model)", shapes)) if v]
    if problems:
        raise ValueError(f"{path} does not fit {arch}: " + "; ".join(problems))
    model.load_state_dict(state, strict=True)
    return model


def load_fcn_weights(vgg, fc6, fc7, path):
    """torchvision VGG-16 ImageNet weights (file ``path``) into an FCN [13]
    (paper 1's §3.1 detector): the conv blocks into ``vgg.features``, the
    classifier's fc6 / fc7 reshaped (``fc_to_conv``) into the convolutions
    ``fc6`` (7x7) and ``fc7`` (1x1)."""
    check_full_size(path, "VGG-16", vgg.width)
    full = VGG16(width=1.0)
    load_imagenet_weights(full, path)
    vgg.features.load_state_dict(full.features.state_dict())
    conv6, conv7 = fc_to_conv(full)
    fc6.weight.data.copy_(conv6.weight), fc6.bias.data.copy_(conv6.bias)
    fc7.weight.data.copy_(conv7.weight), fc7.bias.data.copy_(conv7.bias)


def load_resnet_features(resnet, path, depth=152):
    """torchvision ResNet-``depth`` ImageNet weights (file ``path``) into
    ``resnet`` without its classifier (``fc``), strictly: changed strides
    alter no parameter, so paper 1's stride-1 B5 (§3.2) loads them as is."""
    blocks = tuple(len(getattr(resnet, f"layer{k}")) for k in range(1, 5))
    check_full_size(path, f"ResNet-{depth}", resnet.width, blocks, RESNET_BLOCKS[depth])
    full = ResNet(depth=depth)
    load_imagenet_weights(full, path)
    resnet.load_state_dict({k: v for k, v in full.state_dict().items() if not k.startswith("fc.")}, strict=True)
