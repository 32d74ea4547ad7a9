"""The helpers both scripts train with (common.layers, harness.fit and its
parts, cli.add_run_flags), checked against hand-computed values."""
import argparse

import numpy as np
import pytest
import torch

from common import cli, harness
from common.layers import bilinear_kernel, ch, init_deconv_bilinear


def test_channel_widths_round_and_keep_a_floor():
    assert [ch(64, 0.25), ch(256, 1.0), ch(3, 0.1), ch(100, 0.125)] == [16, 256, 1, 12]
    assert ch(128, 0.01, least=4) == 4                      # a caller may ask for a larger floor


def test_bilinear_init_at_k_2s_is_fcns_filter_unnormalised():
    # FCN's 4x4 stride-2 filter, (1 - |x - 1.5| / 2) per axis: each output
    # pixel's weights already sum to 1, so the normalisation changes nothing.
    assert bilinear_kernel(4, 2).tolist() == [0.25, 0.75, 0.75, 0.25]
    up = torch.nn.ConvTranspose2d(3, 3, 4, stride=2, padding=1)
    init_deconv_bilinear(up)
    g = np.array([0.25, 0.75, 0.75, 0.25])
    assert torch.equal(up.weight[1, 1], torch.from_numpy(np.outer(g, g)).float())
    assert up.weight[0, 1].abs().sum() == 0 and up.bias.abs().sum() == 0
    # Upsampling a constant map gives the constant inside the border.
    y = up(torch.full((1, 3, 4, 4), 2.0))
    assert torch.allclose(y[..., 1:-1, 1:-1], torch.tensor(2.0))


def test_geometric_decay_runs_from_lr_to_lr_end():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-2)
    sched = harness.geometric_decay(opt, 1e-2, 1e-4, epochs=3)
    lrs = []
    for _ in range(3):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([1e-2, 1e-3, 1e-4])


class Pairs(torch.utils.data.Dataset):
    """y = 3 x: a batch is a dict with "image" and "broken", as the scripts' are."""

    def __len__(self):
        return 8

    def __getitem__(self, i):
        x = torch.tensor([float(i) / 8])
        return {"image": x, "y": 3 * x, "broken": i == 7}


def test_fit_trains_records_validates_and_keeps_last_and_best(tmp_path, capsys):
    torch.manual_seed(0)
    rt = harness.setup_runtime("cpu", amp=False)
    model = torch.nn.Linear(1, 1)
    loader = harness.make_loader(Pairs(), 4, True, rt, seed=0, drop_last=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    sched = harness.geometric_decay(opt, 0.5, 0.05, epochs=3)
    recorded, scores = [], iter([0.2, 0.9, 0.5])

    def step_loss(batch):
        return ((model(batch["image"]) - batch["y"]) ** 2).mean()

    def validate(epoch):
        return next(scores), {"epoch": epoch}

    best = harness.fit(model, loader, step_loss, opt, sched, harness.make_scaler(rt), rt, epochs=3,
                       out_dir=tmp_path, record=lambda e, loss, s: recorded.append((e, loss)), validate=validate,
                       name="toy", log_every=100)
    assert best == 0.9 and [e for e, _ in recorded] == [0, 1, 2]
    assert recorded[-1][1] < recorded[0][1]                            # it learns
    assert harness.load_checkpoint(tmp_path / "last.pt")["extra"] == {"epoch": 2}
    assert harness.load_checkpoint(tmp_path / "best.pt")["extra"] == {"epoch": 1}
    assert "toy epoch 1: skipped 1 unreadable image(s)" in capsys.readouterr().out


def test_load_model_refuses_another_scripts_checkpoint_in_one_line(tmp_path):
    path = tmp_path / "other.pt"
    harness.save_checkpoint(path, {"model": {}, "extra": {"cfg": {}}})       # no "config"
    with pytest.raises(ValueError, match=r"not a this-script checkpoint \(KeyError: 'config'\)") as e:
        harness.load_model(path, lambda d: (d, torch.nn.Linear(1, 1)), "this-script")
    assert "\n" not in str(e.value)


def test_run_flags_are_the_shared_group():
    p = argparse.ArgumentParser()
    cli.add_run_flags(p, "runs/x", log_every=7)
    args = p.parse_args(["--seed", "3", "--no-amp"])
    assert (args.out, args.device, args.no_amp, args.seed, args.log_every, args.resume) == (
        None, "auto", True, 3, 7, None)


def parser_of(parse_args):
    """The ArgumentParser a script's ``parse_args`` builds (caught before it parses)."""
    caught = {}

    def catch(self, args=None, namespace=None):
        caught["parser"] = self
        raise SystemExit(0)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(argparse.ArgumentParser, "parse_args", catch)
        with pytest.raises(SystemExit):
            parse_args([])
    return caught["parser"]


def flag_kinds(parser, flags):
    """What a command line means for each flag: its dest, action, type,
    nargs, choices, default and metavar (not its help, which is each script's)."""
    acts = parser._option_string_actions
    return {f: (acts[f].dest, type(acts[f]).__name__, acts[f].type, acts[f].nargs, acts[f].choices,
                acts[f].default, acts[f].metavar) for f in flags}


def test_shared_flags_mean_the_same_in_both_scripts():
    """``cli.add_shared_flags`` defines paper 2's shared flags, and with paper
    1's words and changes it defines paper 1's exactly as its own parser
    does, so that both scripts can take them from the one place."""
    import bottom_up_bbox as bub
    import heatmap_regression as hr
    shared = [flag for _, flag, _ in cli.SHARED_FLAGS]
    assert len(shared) == 13
    mine = parser_of(bub.parse_args)
    assert {a.dest for g in mine._action_groups for a in g._group_actions if a.option_strings} >= {
        f[2:].replace("-", "_") for f in shared}
    p = argparse.ArgumentParser()
    groups = cli.add_shared_flags(p, {}, {f[2:].replace("-", "_"): "" for f in shared},
                                  data={"choices": ("toy", "toy-crowd", "mpii", "lsp", "coco", "aic")},
                                  boxes={"metavar": "FILE"})
    assert list(groups) == ["data", "model", "training", "evaluation", "demo"]
    assert flag_kinds(p, shared) == flag_kinds(parser_of(hr.parse_args), shared)
