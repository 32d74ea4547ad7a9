"""Backbones must be torchvision, key for key, so ImageNet checkpoints load strictly.

The oracle is torchvision itself as published: its documented parameter counts
and literal key names/shapes of its checkpoints. Full-size models are built on
the meta device (no memory, no init cost) unless a test needs real numbers.
"""
import pytest
import torch

from common.backbones import (VGG, VGG16, VGG19, ResNet, fc_to_conv,
                              load_imagenet_weights)

# torchvision's model docs ("num_params" of the IMAGENET1K_V1 weights).
TORCHVISION_PARAMS = {18: 11_689_512, 34: 21_797_672, 50: 25_557_032,
                      101: 44_549_160, 152: 60_192_808}


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def on_meta(cls, *args, **kw):
    with torch.device("meta"):
        return cls(*args, **kw)


@pytest.mark.parametrize("depth", sorted(TORCHVISION_PARAMS))
def test_resnet_parameter_count_matches_torchvision(depth):
    assert n_params(on_meta(ResNet, depth)) == TORCHVISION_PARAMS[depth]


def test_vgg16_parameter_count_matches_torchvision():
    assert n_params(on_meta(VGG16)) == 138_357_544


def test_literal_torchvision_keys_and_shapes():
    r152 = {k: tuple(v.shape) for k, v in on_meta(ResNet, 152).state_dict().items()}
    assert r152["layer3.35.conv2.weight"] == (256, 256, 3, 3)
    assert r152["layer1.0.downsample.0.weight"] == (256, 64, 1, 1)
    assert r152["layer4.2.bn3.running_var"] == (2048,)
    assert r152["fc.weight"] == (1000, 2048)
    assert "layer3.36.conv1.weight" not in r152 and "layer1.1.downsample.0.weight" not in r152
    r50 = on_meta(ResNet, 50).state_dict()
    # 16 bottlenecks x (3 convs + 3 BN x 5 tensors) + 4 downsamples x (1 + 5)
    # + conv1 + bn1 (5) + fc (2) = 288 + 24 + 6 + 2.
    assert len(r50) == 320
    r18 = on_meta(ResNet, 18).state_dict()
    assert tuple(r18["layer2.0.downsample.0.weight"].shape) == (128, 64, 1, 1)
    assert "layer1.0.conv3.weight" not in r18 and "layer1.0.downsample.0.weight" not in r18
    vgg = {k: tuple(v.shape) for k, v in on_meta(VGG16).state_dict().items()}
    assert vgg["features.28.weight"] == (512, 512, 3, 3)
    assert vgg["features.0.weight"] == (64, 3, 3, 3)
    assert vgg["classifier.0.weight"] == (4096, 25088)
    assert vgg["classifier.6.weight"] == (1000, 4096)
    conv_idx = sorted({int(k.split(".")[1]) for k in vgg if k.startswith("features.")})
    assert conv_idx == [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    assert len(vgg) == 32  # 13 convs + 3 linears, weight and bias each
    bn = on_meta(VGG16, batch_norm=True)
    assert isinstance(bn.features[1], torch.nn.BatchNorm2d) and len(bn.features) == 44


@pytest.mark.parametrize("dilate, stride", [((False, False, False), 32),
                                            ((False, False, True), 16),
                                            ((False, True, True), 8)])
def test_resnet50_output_stride(dilate, stride):
    net = ResNet(50, replace_stride_with_dilation=dilate).eval()
    with torch.no_grad():
        out = net.features(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 2048, 64 // stride, 64 // stride)
    assert net.strides["layer4"] == stride


def test_dilation_follows_torchvision_previous_dilation_rule():
    # First block of a dilated stage keeps the previous dilation, the rest the new one.
    net = on_meta(ResNet, 50, replace_stride_with_dilation=(False, True, True))
    assert net.layer2[0].conv2.stride == (2, 2)
    assert net.layer3[0].conv2.dilation == (1, 1) and net.layer3[0].conv2.stride == (1, 1)
    assert net.layer3[1].conv2.dilation == (2, 2) and net.layer3[1].conv2.padding == (2, 2)
    assert net.layer4[0].conv2.dilation == (2, 2)
    assert net.layer4[2].conv2.dilation == (4, 4)
    assert net.layer4[0].downsample[0].stride == (1, 1)


@pytest.mark.parametrize("depth", [18, 50])
def test_compact_resnet_runs_and_reports_its_shapes(depth):
    net = ResNet(depth, width=0.25, blocks=(1, 1, 2, 1), num_classes=7).eval()
    x = torch.randn(2, 3, 64, 96)  # multiples of 32: every stride divides evenly
    with torch.no_grad():
        maps, logits = net.features(x, return_all=True), net(x)
    assert logits.shape == (2, 7)
    for name, m in maps.items():
        s = net.strides[name]
        assert m.shape == (2, net.out_channels[name], 64 // s, 96 // s), name
    assert net.out_channels["layer4"] == (128 if depth == 18 else 512)
    assert len(net.layer3) == 2


def test_vgg16_stages_and_compact_forward():
    net = VGG16(width=0.25).eval()
    with torch.no_grad():
        st, logits = net.stages(torch.randn(1, 3, 64, 64)), net(torch.randn(1, 3, 64, 64))
    assert {k: tuple(v.shape) for k, v in st.items()} == {
        "pool3": (1, 64, 8, 8), "pool4": (1, 128, 4, 4), "pool5": (1, 128, 2, 2)}
    assert logits.shape == (1, 1000)
    assert net.classifier[0].in_features == 128 * 49 and net.classifier[0].out_features == 1024


def test_fc_to_conv_equals_the_fully_connected_layers():
    torch.manual_seed(0)
    net = VGG16(width=1 / 16).eval()  # pool5 has 32 channels, fc hidden 256
    conv6, conv7 = fc_to_conv(net)
    fc6, fc7 = net.classifier[0], net.classifier[3]
    # On a 7x7 map conv6 is exactly fc6 of the flattened map.
    x = torch.randn(2, 32, 7, 7)
    with torch.no_grad():
        torch.testing.assert_close(conv6(x).flatten(1), fc6(x.flatten(1)), rtol=1e-5, atol=1e-5)
        h = torch.randn(2, 256, 3, 3)
        torch.testing.assert_close(conv7(h)[:, :, 1, 2], fc7(h[:, :, 1, 2]), rtol=1e-5, atol=1e-5)
        # On a larger map it is fc6 on every 7x7 window: the dense "FCN" output.
        big = torch.randn(1, 32, 9, 10)
        dense = conv6(big)  # (1, 256, 3, 4)
        torch.testing.assert_close(dense[0, :, 2, 1], fc6(big[:, :, 2:9, 1:8].flatten(1))[0],
                                   rtol=1e-5, atol=1e-5)
    assert conv6.weight.data_ptr() != fc6.weight.data_ptr()  # copies, not views


def test_load_round_trip_and_wrapped_checkpoints(tmp_path):
    src, dst = ResNet(18), ResNet(18)
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(src.state_dict(), path)
    load_imagenet_weights(dst, path)
    for (k, a), (_, b) in zip(src.state_dict().items(), dst.state_dict().items()):
        assert torch.equal(a, b), k
    # {'state_dict': {'module.' + key: ...}} as written by DataParallel training scripts.
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in src.state_dict().items()}}, wrapped)
    other = load_imagenet_weights(ResNet(18), wrapped)
    assert torch.equal(other.conv1.weight, src.conv1.weight)


def test_load_errors_are_one_line(tmp_path):
    small = VGG16(width=1 / 16)
    state = small.state_dict()
    renamed = tmp_path / "renamed.pth"
    torch.save({("classifier.6.weights" if k == "classifier.6.weight" else k): v
                for k, v in state.items()}, renamed)
    # width != 1 is refused before the file is even read.
    with pytest.raises(ValueError, match="width") as err:
        load_imagenet_weights(small, renamed)
    assert "\n" not in str(err.value)

    r18 = on_meta(ResNet, 18)  # key/shape checks need no real weights
    r34_file = tmp_path / "r34.pth"
    torch.save(on_meta(ResNet, 34).state_dict(), r34_file)
    with pytest.raises(ValueError) as err:
        load_imagenet_weights(r18, r34_file)
    msg = str(err.value)
    assert "\n" not in msg and str(r34_file) in msg and "resnet18" in msg
    assert "layer1.2.conv1.weight" in msg  # first unexpected key

    r50_file = tmp_path / "r50.pth"
    sd = on_meta(ResNet, 50).state_dict()
    sd["layer4.0.conv2.weights"] = sd.pop("layer4.0.conv2.weight")  # a renamed key
    torch.save(sd, r50_file)
    with pytest.raises(ValueError) as err:
        load_imagenet_weights(on_meta(ResNet, 50), r50_file)
    msg = str(err.value)
    assert "\n" not in msg and str(r50_file) in msg and "layer4.0.conv2.weights" in msg

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError) as err:
        load_imagenet_weights(on_meta(ResNet, 50), garbage)
    assert "\n" not in str(err.value) and str(garbage) in str(err.value)

    missing = tmp_path / "nope" / "resnet152.pth"
    with pytest.raises(FileNotFoundError) as err:
        load_imagenet_weights(on_meta(ResNet, 152), missing)
    msg = str(err.value)
    assert "\n" not in msg and str(missing) in msg and "resnet152-394f9c45.pth" in msg


# ----------------------------------------------------------------------------
# VGG-19 (torchvision cfg "E"): paper 2's Table III baseline, OpenPose (Cao et
# al. 2017), runs on "the first 10 layers of VGG-19", conv1_1 ... conv4_2.
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("batch_norm, count", [(False, 143_667_240), (True, 143_678_248)])
def test_vgg19_parameter_count_matches_torchvision(batch_norm, count):
    net = on_meta(VGG, 19, batch_norm=batch_norm)
    assert n_params(net) == count
    assert net.arch == ("vgg19_bn" if batch_norm else "vgg19")
    assert n_params(on_meta(VGG19, batch_norm=batch_norm)) == count


def test_vgg_generic_class_keeps_vgg16():
    assert issubclass(VGG16, VGG) and issubclass(VGG19, VGG)
    assert n_params(on_meta(VGG, 16)) == 138_357_544
    assert n_params(on_meta(VGG16, batch_norm=True)) == 138_365_992  # torchvision vgg16_bn
    assert on_meta(VGG16).arch == "vgg16" and on_meta(VGG16, batch_norm=True).arch == "vgg16_bn"
    assert list(on_meta(VGG, 16).state_dict()) == list(on_meta(VGG16).state_dict())
    with pytest.raises(ValueError, match="depth"):
        VGG(17)


def test_vgg19_literal_torchvision_keys_and_shapes():
    net = on_meta(VGG19)
    sd = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert sd["features.0.weight"] == (64, 3, 3, 3)
    assert sd["features.16.weight"] == (256, 256, 3, 3)   # conv3_4, not in VGG-16
    assert sd["features.19.weight"] == (512, 256, 3, 3)   # conv4_1
    assert sd["features.21.weight"] == (512, 512, 3, 3)   # conv4_2, OpenPose's last VGG conv
    assert sd["features.34.weight"] == (512, 512, 3, 3)   # conv5_4, the last conv
    assert sd["features.34.bias"] == (512,)
    assert sd["classifier.0.weight"] == (4096, 25088)
    assert sd["classifier.6.weight"] == (1000, 4096)
    conv_idx = sorted({int(k.split(".")[1]) for k in sd if k.startswith("features.")})
    assert conv_idx == [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
    assert len(sd) == 38 and len(net.features) == 37  # 16 convs + 3 linears; 16 x 2 + 5
    assert net.conv_names() == ["conv1_1", "conv1_2", "conv2_1", "conv2_2",
                                "conv3_1", "conv3_2", "conv3_3", "conv3_4",
                                "conv4_1", "conv4_2", "conv4_3", "conv4_4",
                                "conv5_1", "conv5_2", "conv5_3", "conv5_4"]
    assert [net.conv_index[n] for n in net.conv_names()] == conv_idx
    assert net.pool_index == {"pool1": 4, "pool2": 9, "pool3": 18, "pool4": 27, "pool5": 36}
    assert net.layer_index["conv4_2"] == 22  # its ReLU
    bn = on_meta(VGG19, batch_norm=True)
    bsd = {k: tuple(v.shape) for k, v in bn.state_dict().items()}
    assert len(bn.features) == 53 and len(bsd) == 16 * 2 + 16 * 5 + 6
    assert bsd["features.49.weight"] == (512, 512, 3, 3)   # conv5_4 with BN
    assert bsd["features.50.running_var"] == (512,)
    assert bn.conv_index["conv4_2"] == 30 and bn.layer_index["conv4_2"] == 32
    assert isinstance(bn.features[31], torch.nn.BatchNorm2d)


def test_vgg19_conv4_2_prefix_is_openpose_stem_stride_8_512_channels():
    # Full width, but only ``features`` is materialized (the fc layers stay on meta).
    net = on_meta(VGG, 19)
    net.features.to_empty(device="cpu")
    torch.manual_seed(0)
    with torch.no_grad():
        for p in net.features.parameters():
            p.normal_(0, 0.01)
    stem = net.features_prefix("conv4_2")
    assert sum(isinstance(m, torch.nn.Conv2d) for m in stem) == 10
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in stem) == 3
    assert isinstance(stem[-1], torch.nn.ReLU) and len(stem) == 23
    assert stem[21] is net.features[21]  # shares the (loadable) modules
    assert net.strides["conv4_2"] == 8 and net.channels["conv4_2"] == 512
    x = torch.randn(1, 3, 40, 56)
    with torch.no_grad():
        out = net.features_until(x, "conv4_2")
        torch.testing.assert_close(stem(x), out)
    assert out.shape == (1, 512, 5, 7)
    assert (out >= 0).all()  # ends with conv4_2's ReLU


@pytest.mark.parametrize("depth, batch_norm", [(16, False), (19, False), (19, True)])
def test_compact_vgg_every_named_layer_has_its_stride_and_channels(depth, batch_norm):
    net = VGG(depth, width=1 / 16, batch_norm=batch_norm).eval()
    x = torch.randn(1, 3, 64, 32)
    with torch.no_grad():
        for name in net.layer_index:
            s = net.strides[name]
            assert net.features_until(x, name).shape == (1, net.channels[name], 64 // s, 32 // s)
        st = net.stages(x)
    assert st["pool5"].shape == (1, net.out_channels, 2, 1)
    assert net.channels["conv4_2"] == 32 and net.strides["pool3"] == 8
    with pytest.raises(ValueError) as err:
        net.features_until(x, "conv4_5")
    assert "\n" not in str(err.value) and "conv4_5" in str(err.value)


def test_vgg19_strict_load_round_trip(tmp_path):
    # Values need not be trained: one constant per key exposes any mix-up of keys.
    src = on_meta(VGG19).to_empty(device="cpu")
    with torch.no_grad():
        for i, t in enumerate(src.state_dict().values()):
            t.fill_(i + 1)
    path = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save(src.state_dict(), path)
    dst = load_imagenet_weights(on_meta(VGG19).to_empty(device="cpu"), path)
    for (k, a), (_, b) in zip(src.state_dict().items(), dst.state_dict().items()):
        assert torch.equal(a, b), k
    # conv4_2 = the 10th conv, features.21: its weight is key 18 (0-based), filled with 19.
    assert list(src.state_dict()).index("features.21.weight") == 18
    assert torch.equal(dst.features_prefix("conv4_2")[21].weight, torch.full((512, 512, 3, 3), 19.))
    del src, dst

    with pytest.raises(FileNotFoundError) as err:  # the message names torchvision's file
        load_imagenet_weights(on_meta(VGG19), tmp_path / "nope.pth")
    assert "vgg19-dcbb9e9d.pth" in str(err.value)
    with pytest.raises(FileNotFoundError) as err:
        load_imagenet_weights(on_meta(VGG, 19, batch_norm=True), tmp_path / "nope.pth")
    assert "vgg19_bn-c79401a0.pth" in str(err.value)
    # A VGG-16 checkpoint does not fit VGG-19 (one line, names the arch).
    v16 = tmp_path / "vgg16.pth"
    torch.save(on_meta(VGG16).state_dict(), v16)
    with pytest.raises(ValueError) as err:
        load_imagenet_weights(on_meta(VGG19), v16)
    assert "\n" not in str(err.value) and "vgg19" in str(err.value)
