#!/usr/bin/env python
"""Every figure and every measured number of the two lectures in walkthrough/.

    python walkthrough/make_figures.py              # reuse runs/, train what is missing (the scripts' CLIs)
    python walkthrough/make_figures.py --no-train   # train nothing; a figure whose run is missing is a placeholder
    python walkthrough/make_figures.py --fast --out /tmp/wt   # tiny models in seconds (tests/test_walkthrough.py)

Runs it reuses (or makes with the scripts' own command lines, defaults only):

    runs/toy-residual-detection+regression/   python heatmap_regression.py                 (paper 1)
    runs/toy-crowd-residual-detection+regression/  python heatmap_regression.py --data toy-crowd
    runs/toy/                                 python bottom_up_bbox.py                     (paper 2)
    runs/toy-topdown/   python walkthrough/studies.py evaluation --checkpoint runs/toy/last.pt --boxes sim \\
                            --topdown runs/toy-crowd-residual-detection+regression/best.pt --out runs/toy-topdown
    runs/toy-residual-{detection,regression,regression+regression}/, runs/toy-residual-table5/
                                              python heatmap_regression.py --variant all   (Table 5)

Writes ``walkthrough/figures/*.png`` and ``walkthrough/figures/numbers.json``
and, in the full mode, brings the marked numbers and tables of the two texts
up to date from numbers.json. The conventions the texts and the test share:

* a number quoted from a run (or computed from the code) is followed by
  ``<!--n:KEY-->`` and equals ``numbers.json["numbers"][KEY]``, a string
  formatted here;
* a generated table sits between ``<!-- table:KEY -->`` and ``<!-- /table -->``
  and equals ``numbers.json["tables"][KEY]``;
* KEYs starting with ``code.`` depend on the code alone, not on a training
  run: ``--fast`` produces them identically, so the test can check that the
  committed texts still describe the modules (e.g. Tables 1-4).

A run that is missing (``--no-train``) leaves its figures as placeholder PNGs
that say what to run, and its numbers as "n/a"; the top-down evaluation is a
measurement, not training, and runs whenever its two checkpoints exist.
Time, measured on the 2-core machine: with every run present 284-305 s
(the studies of walkthrough/studies.py take 250-270 s of it); from nothing
1770 s, training the three default toy runs and evaluating the top-down row
(while tests shared the cores; alone the paper-2 run takes 464 s and paper
1's about 230 s).
The method figures of paper 2 (Eq. 5, Algorithm 1, pose NMS, completion)
read the default run's network outputs, or the ground truth without it.
"""
import argparse
import functools
import json
import math
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "walkthrough"))

import bottom_up_bbox as bub  # noqa: E402
import heatmap_regression as hr  # noqa: E402
from common import harness, plotting  # noqa: E402
from common.backbones import Bottleneck  # noqa: E402
from common.connections import connection_scores  # noqa: E402
from common.crops import body_px, crop_side  # noqa: E402
from common.detector import DetectorModel, detector_boxes, gt_boxes  # noqa: E402
from common.metrics import MATLAB_PARTS  # noqa: E402
from common.skeleton import joint_bones  # noqa: E402
from common.sources import ToySource, toy_stream  # noqa: E402
from common.topdown import TopDown  # noqa: E402
from common.toy import ToyScenes, box_ious  # noqa: E402
from common.transforms import from_stride, to_uint8  # noqa: E402

plt = plotting.plt
WALK = ROOT / "walkthrough"
TEXTS = (WALK / "heatmap_regression.md", WALK / "bottom_up_bbox.md")
VALUE = re.compile(r"[-+]?(?:\d+(?:\.\d+)?|n/a|never)")   # what a quoted number looks like
MAX_BYTES = 140_000          # figures stay small enough for a repository page
SCENES = 40                  # validation scenes searched for an example (full mode)


# =============================================================================
# Runs: reuse what exists, otherwise call the scripts' command lines
# =============================================================================
HR_TINY = ["--stage-epochs", "1,1,1", "--input-size", "64", "--batch-size", "8", "--log-every", "1000"]
RUNS = {  # name: (script, arguments, folder under runs/, tiny arguments for --fast, the file a finished run holds)
    "hr": ("heatmap_regression.py", [], "toy-residual-detection+regression",
           HR_TINY + ["--toy-train", "32", "--toy-val", "8"], "results.json"),
    "crowd": ("heatmap_regression.py", ["--data", "toy-crowd"], "toy-crowd-residual-detection+regression",
              HR_TINY + ["--toy-train", "6", "--toy-val", "3"], "results.json"),
    "bub": ("bottom_up_bbox.py", [], "toy",
            ["--toy-train", "16", "--toy-val", "4", "--epochs", "1", "--input-size", "96", "--test-size", "96",
             "--val-images", "2", "--log-every", "1000"], "results.json"),
    # The script's final evaluation with paper 1 as the top-down row, and
    # beside it where each person was lost, the component counts, time per
    # image and Fig. 1's scenes: walkthrough/studies.py evaluation.
    # The paper's protocol: boxes from a detector (the simulated one), not
    # the network's own (§V, README "The paper's future work").
    "topdown": ("walkthrough/studies.py", ["evaluation", "--checkpoint", "{bub}/last.pt", "--topdown", "{crowd}/best.pt",
                                           "--boxes", "sim"],
                "toy-topdown", ["--scenes", "4", "--jitter-curve", "0,0.2"], "evaluation.json"),
}
# Table 5's four rows, the "hr" run among them: ``--variant all`` trains the
# rows that are missing into their single runs' folders (full mode: the
# cascade is runs/toy-residual-detection+regression, reused) or under its
# --out (fast mode), and writes table5.json.
RUNS["hr-table5"] = ("heatmap_regression.py", ["--variant", "all"], "toy-residual-table5",
                     HR_TINY + ["--toy-train", "32", "--toy-val", "8"], "table5.json")
NEEDS = {"topdown": ("bub", "crowd")}
EVAL_ONLY = {"topdown"}           # measurements, not training: allowed under --no-train


class Context:
    """Where runs and figures live, what may be trained, and what was made."""

    def __init__(self, args):
        self.fast, self.out = args.fast, Path(args.out).resolve()
        self.train = not args.no_train
        self.runs = self.out / "runs" if self.fast else ROOT / "runs"
        self.hr_val = 32 if self.fast else 500         # validation figures (heatmap_regression.py's default)
        self.numbers, self.tables, self.figures, self.missing = {}, {}, {}, {}
        self.rt = harness.setup_runtime("cpu")
        self._made = {}

    def run(self, name):
        """The folder of run ``name`` when it holds what it must, else None."""
        if name in self._made:
            return self._made[name]
        script, args, folder, tiny, product = RUNS[name]
        path = self.runs / folder
        if name == "hr" and self.fast:
            path = self.runs / RUNS["hr-table5"][2] / "detection+regression"     # the fast Table 5's cascade
        if name == "hr" and not (path / product).is_file():
            self._made[name] = path if self.run("hr-table5") and (path / product).is_file() else None
            return self._made[name]
        if not (path / product).is_file():
            deps = [self.run(d) for d in NEEDS.get(name, ())]
            if None in deps or not (self.train or name in EVAL_ONLY):
                self._made[name] = None
                return None
            argv = [a.format(**{d: str(p) for d, p in zip(NEEDS.get(name, ()), deps)}) for a in args]
            # Table 5's rows go to their single runs' own folders in the full mode.
            argv += (tiny if self.fast else []) + (["--out", str(path)] if self.fast or name != "hr-table5" else [])
            print(f"[run] {script} {' '.join(argv)}", flush=True)
            t = time.time()
            if self.fast:             # in-process: no second interpreter start, same code path
                import studies                                  # walkthrough/studies.py
                {"heatmap_regression.py": hr, "bottom_up_bbox.py": bub}.get(script, studies).main(argv)
            else:
                subprocess.run([sys.executable, str(ROOT / script), *argv], cwd=ROOT, check=True)
            print(f"[run] {name}: {time.time() - t:.1f} s", flush=True)
        self._made[name] = path
        return path

    def results(self, name):
        path, product = self.run(name), RUNS[name][4]
        if path is None or not (path / product).is_file():
            return None
        return json.loads((path / product).read_text())

    def num(self, key, value):
        value = value if isinstance(value, str) else f"{value}"
        if not VALUE.fullmatch(value):
            raise ValueError(f"{key} = {value!r}: a quoted number must match {VALUE.pattern}")
        self.numbers[key] = value

    def save(self, fig, name, source):
        """Save a matplotlib figure as ``name`` (kept under MAX_BYTES)."""
        path = plotting.save(fig, self.out / name)
        shrink(path)
        self.figures[name] = source
        return path


def shrink(path):
    """A PNG over MAX_BYTES is re-encoded with a 256-colour palette, then
    scaled down until it fits: lecture figures, not print masters."""
    if path.stat().st_size <= MAX_BYTES:
        return
    img = Image.open(path).convert("RGB")
    scale = 1.0
    while True:
        w, h = int(img.width * scale), int(img.height * scale)
        small = img.resize((w, h), Image.LANCZOS) if scale < 1 else img
        small.quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
        if path.stat().st_size <= MAX_BYTES or scale < 0.3:
            return
        scale *= 0.85


def placeholder(ctx, name, why):
    """A figure whose run is missing: a small PNG that says what to run."""
    fig, ax = plt.subplots(figsize=(6, 1.6))
    ax.axis("off")
    ax.text(0.5, 0.5, f"{name}: not made yet\n{why}\nthen: python walkthrough/make_figures.py",
            ha="center", va="center", fontsize=10, wrap=True)
    ctx.save(fig, name, f"placeholder: {why}")
    ctx.missing[name] = why


def figure(ctx, name, needs, make):
    """Make figure ``name`` with ``make(ctx, *run folders)``, or a placeholder
    when one of the runs in ``needs`` is missing."""
    paths = [ctx.run(n) for n in needs]
    if None in paths:
        lacking = [RUNS[n][2] for n, p in zip(needs, paths) if p is None]
        return placeholder(ctx, name, "needs runs/" + ", runs/".join(lacking))
    t = time.time()
    make(ctx, *paths)
    print(f"  {name:28s} {time.time() - t:5.1f} s", flush=True)


# =============================================================================
# Paper 1, §3: the two kinds of target on one toy figure
# =============================================================================
def hr_targets(ctx):
    """§3: binary disks for visible parts only (detection, Eq. 1) and
    Gaussians for every annotated part (regression, Eq. 2), on the first
    validation figure with an occluded wrist or elbow."""
    cfg = hr.toy_config("residual")
    stride = 4                                     # ResidualDetector / HourglassRegressor output
    data = hr.PoseData(ToySource(cfg.seed + 1, 200), cfg, stride, train=False)
    names, occ = cfg.joints, []
    for i in range(len(data)):
        s = data[i]
        kp = s["kp_crop"].numpy()
        occ = [j for j, n in enumerate(names) if n[2:] in ("wrist", "elbow") and kp[j, 2] == 1
               and (0 <= kp[j, :2]).all() and (kp[j, :2] < cfg.input_size).all()]
        if occ and (kp[:, 2] == 2).sum() >= 10:
            break
    j = occ[0]
    det, reg = s["det"].numpy(), s["reg"].numpy()              # (J, h, w) at stride 4
    img = to_uint8(s["image"])
    ext = (-0.5, img.shape[1] - 0.5, img.shape[0] - 0.5, -0.5)
    scale = body_px(cfg.input_size) / 200.0
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.4))
    axes[0].imshow(img)
    plotting.draw_pose(axes[0], kp, joint_bones(names), names)
    axes[0].set_title(f"toy figure {i} (dashed = occluded)", fontsize=9)
    for ax, maps, title in ((axes[1], det, "detection targets (§3): disks,\nvisible parts only"),
                            (axes[2], reg, "regression targets (§3): Gaussians,\nevery annotated part")):
        ax.imshow(img)
        ax.imshow(maps.max(0), cmap="jet", alpha=0.55, vmin=0, vmax=1, extent=ext)
        ax.set_title(title, fontsize=9)
    axes[3].imshow(img)
    axes[3].imshow(reg[j], cmap="jet", alpha=0.55, vmin=0, vmax=1, extent=ext)
    axes[3].set_title(f"{names[j]} (OCCLUDED): disk map max {det[j].max():.0f},\n"
                      f"Gaussian max {reg[j].max():.2f}", fontsize=9)
    for ax in axes[1:]:
        ax.add_patch(plt.Circle(kp[j, :2], 9, fill=False, ec="white", lw=1.5, ls="--"))
    for ax in axes:
        ax.axis("off")
    ctx.save(fig, "hr_targets.png", "code: toy_config, PoseData, make_targets")
    ctx.num("code.hr.crop_px", cfg.input_size)
    ctx.num("code.hr.body_px", f"{body_px(cfg.input_size):.1f}")
    ctx.num("code.hr.radius_px", f"{cfg.disk_radius * scale:.1f}")
    ctx.num("code.hr.sigma_px", f"{cfg.sigma * scale:.1f}")
    ctx.num("code.hr.radius_map", f"{cfg.disk_radius * scale / stride:.2f}")
    ctx.num("code.hr.sigma_map", f"{cfg.sigma * scale / stride:.2f}")
    ctx.num("code.hr.paper_sigma_map", f"{5.0 * body_px(256) / 200 / 4:.2f}")
    ctx.num("code.hr.example_visible", int((kp[:, 2] == 2).sum()))
    ctx.num("code.hr.example_occluded", int((kp[:, 2] == 1).sum()))


# =============================================================================
# Paper 1, Tables 1-4: the architectures, read from the modules
# =============================================================================
# Each layer is a unit (kind, count, spec): conv / deconv (channels, kernel,
# stride), pool (kernel, stride), bottleneck (1x1, 3x3, 1x1 channels),
# upsample (). The paper's tables in the same form, copied from the paper;
# None = the paper does not say (matches anything).
PAPER_TABLES = {
    "Table 1": {"A1": [("conv", 2, (64, 3, 1)), ("pool", 1, (None, None))],
                "A2": [("conv", 2, (128, 3, 1)), ("pool", 1, (None, None))],
                "A3": [("conv", 3, (256, 3, 1)), ("pool", 1, (None, None))],
                "A4": [("conv", 3, (512, 3, 1)), ("pool", 1, (None, None))],
                "A5": [("conv", 3, (512, 1, 1)), ("pool", 1, (None, None))],
                "A6": [("conv", 1, (4096, 7, 1))], "A7": [("conv", 1, (4096, 1, 1))],
                "A8": [("conv", 1, (16, 1, 1))], "A9": [("upsample", 1, ())]},
    "Table 2": {"C1": [("conv", 1, (64, 9, 1))], "C2": [("conv", 1, (64, 13, 1))],
                "C3": [("conv", 1, (128, 13, 1))], "C4": [("conv", 1, (256, 15, 1))],
                "C5": [("conv", 1, (512, 1, 1))], "C6": [("conv", 1, (512, 1, 1))],
                "C7": [("conv", 1, (16, 1, 1))], "C8": [("deconv", 1, (16, 8, 4))]},
    "Table 3": {"B1": [("conv", 1, (64, 7, 2)), ("pool", 1, (3, 2))],
                "B2": [("bottleneck", 3, (64, 64, 256))], "B3": [("bottleneck", 8, (128, 128, 512))],
                "B4": [("bottleneck", 38, (256, 256, 1024))], "B5": [("bottleneck", 3, (512, 512, 2048))],
                "B6": [("conv", 1, (16, 1, 1))], "B7": [("deconv", 1, (16, 4, 4))]},
    "Table 4": {"D1": [("conv", 1, (64, 7, 2)), ("pool", 1, (2, 2))],
                "D2": [("bottleneck", 3, (None, None, None))],
                "D3": [("pool", 1, (2, 2)), ("bottleneck", 3, (None, None, None))],
                "D4": [("bottleneck", 3, (None, None, None))], "D5": [("deconv", 1, (256, 2, 2))],
                "D6": [("conv", 1, (512, 1, 1))], "D7": [("conv", 1, (16, 1, 1))]},
}
# Why a block differs from the paper (the docstrings of the classes say more).
ARCH_NOTES = {
    "A1": "the 380 px input is padded to 384, a multiple of 32, and the output cropped back",
    "A5": "the table's 1×1 is a typo: VGG-16's conv5 is 3×3",
    "A8": "Table 1 lists one, Fig. 3 draws three: on pool3, pool4 and fc7 (FCN-8s)",
    "A9": "`upsample`: fixed bilinear ×2, ×2, ×8, no parameters",
    "C1": "its input is average-pooled ×4 first (C8 upsamples ×4)",
    "B4": "ResNet-152 has 36 (ImageNet weights load)",
    "B5": "stride 1 (§3.2), so B5 stays at stride 16",
    "B7": "output stride 4, as the hourglass (see `ResidualDetector`)",
    "D1": "64 → 256 channels: one projection bottleneck, as in [19]",
    "D2": "at each of the {levels} levels",
    "D3": "at each of the {levels} levels",
    "D5": "at each of the {levels} levels",
}


def unit_of(m):
    if isinstance(m, (Bottleneck, hr.PreActBottleneck)):
        convs = [c for c in m.modules() if isinstance(c, torch.nn.Conv2d)][:3]
        return "bottleneck", tuple(c.out_channels for c in convs)
    if isinstance(m, torch.nn.ConvTranspose2d):
        return "deconv", (m.out_channels, m.kernel_size[0], m.stride[0])
    if isinstance(m, torch.nn.Conv2d):
        return "conv", (m.out_channels, m.kernel_size[0], m.stride[0])
    if isinstance(m, torch.nn.MaxPool2d):
        k, s = m.kernel_size, m.stride
        return "pool", (k if isinstance(k, int) else k[0], s if isinstance(s, int) else s[0])
    return None


def units(modules):
    """The layers of ``modules`` as units, identical neighbours grouped."""
    out = []

    def walk(m):
        u = unit_of(m)
        if u is not None:
            if out and out[-1][0] == u[0] and out[-1][2] == u[1]:
                out[-1] = (u[0], out[-1][1] + 1, u[1])
            else:
                out.append((u[0], 1, u[1]))
            return
        for c in m.children():
            walk(c)
    for m in modules:
        walk(m)
    return out


def fmt_units(us):
    """Units in the paper's Torch notation: (channels, kernel, stride)."""
    def one(kind, n, spec):
        q = lambda v: "?" if v is None else v                                         # noqa: E731
        k = lambda v: "?" if v is None else f"{v}×{v}"                               # noqa: E731
        body = {"conv": lambda: f"conv ({q(spec[0])}, {k(spec[1])}, {k(spec[2])})",
                "deconv": lambda: f"deconv ({q(spec[0])}, {k(spec[1])}, {k(spec[2])})",
                "pool": lambda: "pool" if spec == (None, None) else f"pool ({k(spec[0])}, {k(spec[1])})",
                "bottleneck": lambda: "bottleneck" if spec[0] is None else
                f"bottleneck [{spec[0]}, {spec[1]}, {spec[2]}]",
                "upsample": lambda: "bilinear upsample"}[kind]()
        return (f"{n}× " if n > 1 else "") + body
    return ", ".join(one(*u) for u in us)


def matches(ours, paper):
    if len(ours) != len(paper):
        return False
    for (k1, n1, s1), (k2, n2, s2) in zip(ours, paper):
        if k1 != k2 or n1 != n2 or any(b is not None and a != b for a, b in zip(s1, s2)):
            return False
    return True


def arch_table(ctx, key, net, x_shape, blocks, levels=None):
    """One of Tables 1-4 from the module: ``blocks`` = [(name, modules whose
    output is the block's output, modules described)]; output sizes by
    forward hooks on a meta tensor (no computation)."""
    shapes = {}
    hooks = []
    for name, outs, *_ in blocks:
        for m in outs:
            hooks.append(m.register_forward_hook(
                lambda mod, inp, out, name=name: shapes.setdefault(name, []).append(tuple(out.shape[1:]))))
    with torch.no_grad():
        final = net(torch.empty(x_shape, device="meta"))
    for h in hooks:
        h.remove()
    paper = PAPER_TABLES[key]
    lines = ["| block | layers (from the module) | output (C × H × W) | parameters | the paper's table | same? |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, outs, described, *counted in blocks:
        if name == "A9":
            us, out = [("upsample", 1, ())], [tuple(final.shape[1:])]
        else:
            us, out = units(described), shapes.get(name, [])
        seen = sorted(set(out), key=lambda s: -s[1])
        size = ", ".join(f"{c} × {h} × {w}" for c, h, w in seen)
        n = sum(p.numel() for m in (counted[0] if counted else described) for p in m.parameters())
        same = "yes" if matches(us, paper[name]) else "no"
        note = ARCH_NOTES.get(name, "").format(levels=levels)
        lines.append(f"| {name} | {fmt_units(us)} | {size} | {n / 1e6:.2f} M | {fmt_units(paper[name])} | "
                     f"{same}{': ' + note if note else ''} |")
    total = sum(p.numel() for p in net.parameters())
    lines.append(f"| total | | {' × '.join(str(v) for v in final.shape[1:])} | {total / 1e6:.2f} M | | |")
    ctx.tables[f"code.{key.lower().replace(' ', '')}"] = "\n".join(lines)
    return total


@functools.lru_cache(maxsize=1)
def paper_networks():
    """Paper 1's four networks at the paper's size, on the meta device (shapes,
    no memory), built once for Tables 1-4 and the resolution figure."""
    with torch.device("meta"):
        return (hr.VGGDetector(), hr.VGGRegressor(3 + hr.N_PARTS), hr.ResidualDetector(),
                hr.HourglassRegressor(3 + hr.N_PARTS))


def hr_fig1(ctx):
    """Fig. 1 as a block diagram of ``Cascade`` itself: the residual cascade
    at the paper's size (§3.2, 256 px), each arrow labelled with the tensor
    shape a meta-tensor forward pass gives, each loss where ``stage_loss``
    applies it."""
    cfg = hr.paper_config("residual")
    with torch.device("meta"):
        model = hr.Cascade(cfg)
    shapes = {}
    model.first.register_forward_hook(lambda m, i, o: shapes.__setitem__("first", tuple(o.shape[1:])))
    model.second.register_forward_hook(lambda m, i, o: (shapes.__setitem__("stacked", tuple(i[0].shape[1:])),
                                                        shapes.__setitem__("second", tuple(o.shape[1:]))))
    image = (3, cfg.input_size, cfg.input_size)
    model(torch.empty((1, *image), device="meta"))
    dims = lambda t: " × ".join(map(str, t))                                     # noqa: E731
    params = lambda m: f"{sum(p.numel() for p in m.parameters()) / 1e6:.1f} M parameters"   # noqa: E731
    fig, ax = plt.subplots(figsize=(11, 3.3))
    ax.set_xlim(0, 11)
    ax.set_ylim(0, 3.3)
    ax.axis("off")
    boxes = [(0.1, "image", dims(image), "tab:grey"),
             (2.2, "part detection\nsubnetwork (§3.2, Table 3)\n" + type(model.first).__name__,
              params(model.first), "tab:blue"),
             (4.6, "N heatmaps\nsigmoid, upsampled ×4", dims(shapes["first"]) + " → " +
              dims((shapes["first"][0], *image[1:])), "tab:blue"),
             (6.6, "stacked input\nimage, then heatmaps", dims(shapes["stacked"]), "tab:purple"),
             (8.7, "regression subnetwork\n(§3.2, Table 4)\n" + type(model.second).__name__,
              params(model.second) + "\n→ " + dims(shapes["second"]) + " maps", "tab:orange")]
    for x, title, sub, c in boxes:
        ax.add_patch(plt.Rectangle((x, 1.2), 1.9, 1.5, facecolor=c, alpha=0.18, edgecolor=c))
        ax.text(x + 0.95, 2.25, title, ha="center", va="center", fontsize=8)
        ax.text(x + 0.95, 1.45, sub, ha="center", va="center", fontsize=7, color="0.25")
    for (x, *_), (nx, *_) in zip(boxes[:-1], boxes[1:]):
        ax.annotate("", (nx, 1.95), (x + 1.9, 1.95), arrowprops=dict(arrowstyle="->", color="0.3"))
    # The image also goes straight to the stack (Fig. 1's skip).
    ax.annotate("", (7.55, 2.7), (1.05, 2.7), arrowprops=dict(arrowstyle="->", color="0.3",
                                                               connectionstyle="arc,angleA=90,angleB=90,armA=12,"
                                                                               "armB=12,rad=4"))
    ax.text(4.3, 3.15, "the image, stacked with the heatmaps", ha="center", fontsize=7, color="0.3")
    ax.text(5.55, 0.75, "Eq. (1): sigmoid cross-entropy against\ndisks at the visible parts only",
            ha="center", va="center", fontsize=7.5, color="tab:blue")
    ax.text(9.65, 0.75, "Eq. (2): squared error against\nGaussians at every annotated part",
            ha="center", va="center", fontsize=7.5, color="tab:orange")
    ax.set_title("Fig. 1 from the code: Cascade(paper_config(\"residual\")), shapes by a meta-tensor forward pass",
                 fontsize=9)
    ctx.save(fig, "hr_fig1.png", "code: Cascade, paper_config, meta tensors")


def hr_architectures(ctx):
    """Tables 1-4 from the paper-size modules (meta tensors: shapes, no memory)."""
    det, reg, rdet, hg = paper_networks()
    f, pi = det.vgg.features, det.vgg.pool_index
    cuts = [0] + [pi[f"pool{b}"] + 1 for b in range(1, 6)]
    a = [(f"A{b + 1}", [f[cuts[b + 1] - 1]], list(f[cuts[b]:cuts[b + 1]])) for b in range(5)]
    a += [("A6", [det.fc6], [det.fc6]), ("A7", [det.fc7], [det.fc7]),
          ("A8", [det.score_pool3, det.score_pool4, det.score_fc7],
           [det.score_pool3, det.score_pool4, det.score_fc7]), ("A9", [], [])]
    counts = {"vgg_det": arch_table(ctx, "Table 1", det, (1, 3, 380, 380), a)}
    convs = [m for m in reg.body if isinstance(m, torch.nn.Conv2d)]
    c = [(f"C{k + 1}", [m], [m]) for k, m in enumerate(convs)] + [("C8", [reg.up], [reg.up])]
    counts["vgg_reg"] = arch_table(ctx, "Table 2", reg, (1, 3 + hr.N_PARTS, 380, 380), c)
    r = rdet.resnet
    b = [("B1", [r.maxpool], [r.conv1, r.maxpool])]
    b += [(f"B{k + 2}", [getattr(r, f"layer{k + 1}")], [getattr(r, f"layer{k + 1}")]) for k in range(4)]
    b += [("B6", [rdet.score], [rdet.score]), ("B7", [rdet.up], [rdet.up])]
    counts["res_det"] = arch_table(ctx, "Table 3", rdet, (1, 3, 256, 256), b)
    levels, lv = [], hg.hourglass
    while isinstance(lv, hr.Hourglass):
        levels.append(lv)
        lv = lv.inner
    d = [("D1", [hg.d1], [hg.d1]),
         ("D2", [x.upper for x in levels], [levels[0].upper], [x.upper for x in levels]),
         ("D3", [x.down for x in levels], [levels[0].down], [x.down for x in levels]),
         ("D4", [levels[-1].inner], [levels[-1].inner]),
         ("D5", [x.up for x in levels], [levels[0].up], [x.up for x in levels]),
         ("D6", [hg.d6], [hg.d6]), ("D7", [hg.d7], [hg.d7])]
    counts["hourglass"] = arch_table(ctx, "Table 4", hg, (1, 3 + hr.N_PARTS, 256, 256), d, len(levels))
    for k, v in counts.items():
        ctx.num(f"code.hr.params.{k}", f"{v / 1e6:.1f}")
    ctx.num("code.hr.levels", len(levels))
    return counts


def hr_resolution(ctx):
    """The four networks' output stride block by block (the figure of §3.1/§3.2)."""
    n = 3 + hr.N_PARTS                                   # the regressors see the image and N maps
    det, reg, rdet, hg = paper_networks()
    nets = {"VGG-FCN detector (Table 1), 380 px": (det, 3, 380), "VGG regressor (Table 2)": (reg, n, 380),
            "residual detector (Table 3), 256 px": (rdet, 3, 256), "hourglass regressor (Table 4)": (hg, n, 256)}
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.0))
    for ax, (title, (net, channels, size)) in zip(axes, nets.items()):
        seq, hooks = [], []
        for m in net.modules():
            if unit_of(m) is not None and not isinstance(m, (Bottleneck, hr.PreActBottleneck)):
                hooks.append(m.register_forward_hook(lambda mod, i, o: seq.append((o.shape[1], o.shape[-1]))))
        with torch.no_grad():
            out = net(torch.empty((1, channels, size, size), device="meta"))
        for h in hooks:
            h.remove()
        seq.append((out.shape[1], out.shape[-1]))
        stride = [size / w for _, w in seq]
        ax.step(range(len(seq)), stride, where="post", color="tab:blue")
        ax.set_yscale("log", base=2)
        ax.set_yticks([1, 2, 4, 8, 16, 32, 64])
        ax.set_yticklabels(["1", "2", "4", "8", "16", "32", "64"])
        ax.invert_yaxis()
        ax.set_xlabel("layer (conv, pool, deconv) in order", fontsize=8)
        ax.set_title(f"{title}\nout: {out.shape[1]} x {out.shape[-2]} x {out.shape[-1]}", fontsize=9)
    axes[0].set_ylabel("output stride (px of input per map px)")
    ctx.save(fig, "hr_resolution.png", "code: Tables 1-4 modules, meta tensors")


# =============================================================================
# Paper 1, Fig. 2, the three training stages and Table 5, from the toy runs
# =============================================================================
def hr_val(ctx, cfg, model, seed):
    """The figures the toy run reports on: its held-out test stream."""
    return hr.PoseData(ToySource(toy_stream(seed, "test"), ctx.hr_val), cfg, model.stride, train=False)


def hr_fig2(ctx, run):
    """Fig. 2 from the toy cascade, and its claim in numbers over the
    validation figures (``confidence_at_truth``)."""
    cfg, model = hr.model_from_checkpoint(run / "best.pt", "cpu")
    data = hr_val(ctx, cfg, model, cfg.seed)
    stats, cases = hr.confidence_at_truth(model, data)
    path = hr.figure_fig2(model, data, ctx.out / "hr_fig2.png", cases)
    if path is None:                                     # no occluded limb joint in the tiny set
        return placeholder(ctx, "hr_fig2.png", "no validation figure with an occluded limb joint")
    shrink(path)
    ctx.figures["hr_fig2.png"] = f"{run.relative_to(ctx.runs.parent)}/best.pt: figure_fig2"
    for kind in ("visible", "occluded"):
        st = stats.get(kind, {"detection": float("nan"), "regression": float("nan"), "parts": 0})
        for net in ("detection", "regression"):
            ctx.num(f"hr.fig2.{kind}.{net}", "n/a" if st[net] != st[net] else f"{st[net]:.2f}")
        ctx.num(f"hr.fig2.{kind}.parts", st["parts"])
    ctx.num("hr.val_people", len(data))


def hr_stages(ctx, run):
    """The three stages of §3.2 "Training" on the toy: loss and validation
    Total per epoch, one colour per stage."""
    res = json.loads((run / "results.json").read_text())
    hist = res["history"]
    colours = {"detector": "tab:blue", "regressor": "tab:orange", "joint": "tab:green"}
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for i, h in enumerate(hist["loss"]):
        axes[0].plot(i + 1, h["loss"], "o", color=colours[h["stage"]])
    for i, v in enumerate(hist["val"]):
        axes[1].plot(i + 1, v["Total"], "o", color=colours[v["stage"]])
    for stage, c in colours.items():
        for ax, series, key in ((axes[0], hist["loss"], "loss"), (axes[1], hist["val"], "Total")):
            xs = [i + 1 for i, h in enumerate(series) if h["stage"] == stage]
            ax.plot(xs, [series[x - 1][key] for x in xs], "-", color=c, label=stage)
    for ax in axes:
        for e in hist["stage_ends"][:-1]:
            ax.axvline(e + 0.5, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("epoch (all stages)")
        ax.legend(fontsize=8)
    axes[0].set_yscale("log")
    axes[0].set_title("training loss: Eq. (1), then Eq. (2), then their sum", fontsize=9)
    axes[1].set_title("validation PCKh@0.5 Total: detector's maps, then the regressor's", fontsize=9)
    ctx.save(fig, "hr_stages.png", f"{run.relative_to(ctx.runs.parent)}/results.json: history")
    for stage in colours:
        last = [v["Total"] for v in hist["val"] if v["stage"] == stage]
        epochs = sum(1 for h in hist["loss"] if h["stage"] == stage)
        ctx.num(f"hr.stage.{stage}.total", f"{last[-1]:.1f}" if last else "n/a")
        ctx.num(f"hr.stage.{stage}.epochs", epochs)
    ctx.num("hr.seconds", f"{res['seconds']:.0f}")


def hr_pckh(ctx):
    """PCKh@0.5 in the toy's own pixels: the head size (``toy_head_size``)
    of the 500 test figures of seed 0 and what half of it is in the
    160 px figure, the 128 px crop and the stride-4 output map."""
    cfg = hr.toy_config("residual")
    src = ToySource(toy_stream(0, "test"), 500)
    head, crop = [], []
    for i in range(len(src)):
        _, _, kp, _, scale = src.load(i)
        head.append(src.norm(i, kp))
        crop.append(head[-1] * cfg.input_size / crop_side(scale))      # the crop's px per figure px
    head, crop = np.median(head), np.median(crop)
    ctx.num("code.hr.pckh.head_px", f"{head:.1f}")
    ctx.num("code.hr.pckh.tolerance_px", f"{0.5 * head:.1f}")
    ctx.num("code.hr.pckh.tolerance_crop_px", f"{0.5 * crop:.1f}")
    ctx.num("code.hr.pckh.tolerance_map_px", f"{0.5 * crop / 4:.1f}")
    ctx.num("code.hr.input_size", cfg.input_size)


def hr_table5(ctx, run):
    """Table 5's four rows on the toy's held-out test figures, from
    ``--variant all``'s table5.json: per part, visible / occluded, and each
    row's difference from the cascade with its 95 % bootstrap interval over
    people; then the spread of the Totals over the seeds that were run
    (``walkthrough/studies.py table5``)."""
    t5 = json.loads((run / "table5.json").read_text())
    cols = [c for c, _ in MATLAB_PARTS] + ["Total"]
    f = lambda x: "-" if x != x else f"{x:.1f}"                                       # noqa: E731
    d = lambda r: f"{r['diff']:+.1f} [{r['lo']:+.1f}, {r['hi']:+.1f}]"               # noqa: E731
    lines = [f"| toy test ({t5['people']} people), PCKh@0.5 | " + " | ".join(cols) +
             " | visible | **occluded** | vs cascade, all | vs cascade, occluded | paper, Total (MPII) |",
             "| --- " * (len(cols) + 6) + "|"]
    keys = {"detection+regression": "cascade", "detection": "detection", "regression": "regression",
            "regression+regression": "regression2"}
    rows = t5["rows"]
    for v, r in rows.items():
        first = v == "detection+regression"
        lines.append(f"| {r['label']} | " + " | ".join(f(r["all"][c]) for c in cols) +
                     f" | {f(r['visible']['Total'])} | **{f(r['occluded']['Total'])}** | "
                     f"{'-' if first else d(r['vs_cascade']['all'])} | "
                     f"{'-' if first else d(r['vs_cascade']['occluded'])} | {r['paper']} |")
        for part in ("all", "visible", "occluded"):
            ctx.num(f"hr.table5.{keys[v]}.{'total' if part == 'all' else part}", f(r[part]["Total"]))
            if not first:
                for k in ("diff", "lo", "hi"):
                    ctx.num(f"hr.table5.{keys[v]}.{part}.{k}", f"{r['vs_cascade'][part][k]:+.1f}")
        ctx.num(f"hr.table5.{keys[v]}.seconds", f"{r['seconds']:.0f}")
    ctx.num("hr.table5.people", t5["people"])
    ctx.num("hr.table5.seconds", f"{sum(r['seconds'] for r in rows.values()):.0f}")
    ctx.tables["hr.table5"] = "\n".join(lines)
    # Visible and occluded joints per part: where the rows differ.
    for part in ("visible", "occluded"):
        lines = [f"| toy test, {part} joints only | " + " | ".join(cols) + " |", "| --- " * (len(cols) + 1) + "|"]
        lines += [f"| {r['label']} | " + " | ".join(f(r[part][c]) for c in cols) + " |" for r in rows.values()]
        ctx.tables[f"hr.table5.{part}"] = "\n".join(lines)
    single = json.loads((Path(rows["detection"]["run"]) / "results.json").read_text())
    ctx.num("hr.table5.epochs", len(single["history"]["loss"]))
    # The spread over seeds: each seed's own training, validation and test
    # figures. A seed whose --variant all did not finish contributes the rows
    # it finished (each run's results.json: best.pt on the same test figures).
    seeds = {t5["seed"]: {v: (r["all"]["Total"], r["occluded"]["Total"]) for v, r in rows.items()}}
    for folder in sorted(ctx.runs.glob("toy-residual-table5-seed*")):
        seed = int(folder.name.rsplit("seed", 1)[1])
        if (folder / "table5.json").is_file():
            done = {v: (r["all"]["Total"], r["occluded"]["Total"])
                    for v, r in json.loads((folder / "table5.json").read_text())["rows"].items()}
        else:                     # only the cascade's run records its occluded joints
            done = {v: (r["final"]["Total"], r.get("occluded", {}).get("cascade", {}).get("Total", np.nan))
                    for v in rows if (folder / v / "results.json").is_file()
                    for r in [json.loads((folder / v / "results.json").read_text())]}
        seeds.setdefault(seed, done)
    lines = ["| PCKh@0.5 Total, toy test | " + " | ".join(f"seed {k}" for k in sorted(seeds)) +
             " | mean ± sd | occluded, mean ± sd |", "| --- " * (len(seeds) + 3) + "|"]
    sd = lambda x: f"{x.std(ddof=1):.1f}" if len(x) > 1 else "-"                  # noqa: E731
    for v, r in rows.items():
        tot = np.array([seeds[k][v][0] for k in sorted(seeds) if v in seeds[k]])
        occ = np.array([seeds[k][v][1] for k in sorted(seeds) if v in seeds[k]])
        occ = occ[~np.isnan(occ)]
        lines.append(f"| {r['label']} | " + " | ".join(f(seeds[k][v][0]) if v in seeds[k] else "-"
                                                      for k in sorted(seeds)) +
                     f" | {tot.mean():.1f} ± {sd(tot)} | {occ.mean():.1f} ± {sd(occ)} |")
    ctx.tables["hr.table5.seeds"] = "\n".join(lines)
    ctx.num("hr.table5.n_seeds", len(seeds))
    # The same rows as bars: all, visible, occluded joints.
    fig, ax = plt.subplots(figsize=(8, 2.4 + 0.45 * len(rows)))
    y = np.arange(len(rows))
    for k, (part, c) in enumerate((("all", "tab:grey"), ("visible", "tab:blue"), ("occluded", "tab:red"))):
        ax.barh(y + (k - 1) * 0.27, [r[part]["Total"] for r in rows.values()], 0.27, color=c,
                label=f"{part} joints")
    ax.set_yticks(y)
    ax.set_yticklabels([r["label"] for r in rows.values()], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"PCKh@0.5 Total (%), toy test figures (seed {t5['seed']})")
    ax.legend(fontsize=8, loc="lower right")
    ctx.save(fig, "hr_table5.png", f"{run.relative_to(ctx.runs.parent)}/table5.json")


def hr_mechanism(ctx, run):
    """The argument behind Table 5 and Fig. 2 (``stages_by_confidence``):
    the detector alone and the cascade, binned by the detector's heatmap
    value at the true part; visible and occluded parts."""
    import studies                                          # walkthrough/studies.py
    cfg, model = hr.model_from_checkpoint(run / "best.pt", "cpu")
    data = hr_val(ctx, cfg, model, cfg.seed)
    rows = studies.stages_by_confidence(model, data, ctx.rt, flip_test=cfg.flip_test)
    lines = ["| parts (PCKh's Total) | count | detector alone | cascade | error removed |", "| --- | --- | --- | --- | --- |"]
    for label, k, det, cas in rows:
        removed = f"{100 * (1 - (100 - cas) / (100 - det)):.0f} %" if k and det < 100 else "-"
        lines.append(f"| {label} | {k} | {pct(det / 100) if k else '-'} | {pct(cas / 100) if k else '-'} | {removed} |")
    ctx.tables["hr.mechanism"] = "\n".join(lines)
    # The cascade's own detector (stage 1, then the joint stage), as the run reports it.
    own = json.loads((run / "results.json").read_text())
    ctx.num("hr.table5.cascade_detector.total", f"{own['detection_only']['Total']:.1f}")
    for part in ("visible", "occluded"):
        ctx.num(f"hr.table5.cascade_detector.{part}", f"{own[part]['detection_only']['Total']:.1f}")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2), sharey=True)
    for ax, kind in zip(axes, ("visible", "occluded")):
        binned = [r for r in rows if r[0].startswith(f"{kind}, detector at truth")]
        x = np.arange(len(binned))
        for off, (col, name, c) in enumerate(((2, "detector alone", "tab:blue"), (3, "cascade", "tab:orange"))):
            ax.bar(x + (off - 0.5) * 0.38, [r[col] if r[1] else 0 for r in binned], 0.38, color=c, label=name)
        ax.set_xticks(x)
        ax.set_xticklabels([f"{r[0].split('truth ')[1]}\n({r[1]} parts)" for r in binned], fontsize=8)
        ax.set_xlabel("detector's heatmap value at the true part")
        ax.set_title(f"{kind} parts", fontsize=9)
    axes[0].set_ylabel("PCKh@0.5 (%)")
    axes[0].legend(fontsize=8, loc="upper left")
    ctx.save(fig, "hr_mechanism.png", f"{run.relative_to(ctx.runs.parent)}/best.pt: stages_by_confidence")


# =============================================================================
# Paper 2, Fig. 4: the tree
# =============================================================================
# A standing figure facing the camera (its right side on the image's left),
# only for drawing the tree.
TREE_LAYOUT = {"head_top": (0, -1.0), "neck": (0, -0.72), "r_shoulder": (-0.25, -0.66),
               "r_elbow": (-0.38, -0.36), "r_wrist": (-0.44, -0.06), "l_shoulder": (0.25, -0.66),
               "l_elbow": (0.38, -0.36), "l_wrist": (0.44, -0.06), "r_hip": (-0.15, -0.05),
               "r_knee": (-0.19, 0.38), "r_ankle": (-0.21, 0.8), "l_hip": (0.15, -0.05),
               "l_knee": (0.19, 0.38), "l_ankle": (0.21, 0.8)}


def bub_tree(ctx):
    sk = bub.Skeleton("toy")
    fig, (ax, tx) = plt.subplots(1, 2, figsize=(8, 5), gridspec_kw={"width_ratios": [1.1, 1]})
    xy = {n: np.array(TREE_LAYOUT[n]) for n in sk.joints}
    for c, (a, b) in enumerate(sk.limbs):
        p, q = xy[sk.joints[a]], xy[sk.joints[b]]
        side = sk.joints[b][:2]
        colour = plotting.LEFT if side == "l_" else plotting.RIGHT if side == "r_" else plotting.CENTRE
        ax.annotate("", q, p, arrowprops=dict(arrowstyle="-|>", color=colour, lw=2, shrinkA=5, shrinkB=5))
        m = (p + q) / 2
        ax.text(*m, str(c + 1), ha="center", va="center", fontsize=9,
                bbox=dict(boxstyle="circle,pad=0.2", fc="white", ec=colour))
    for n, p in xy.items():
        root = n == "neck"
        ax.plot(*p, "*" if root else "o", ms=14 if root else 6, color="gold" if root else "black",
                mec="black", zorder=3)
        ax.text(p[0] + (0.05 if p[0] >= 0 else -0.05), p[1], n, fontsize=7,
                ha="left" if p[0] >= 0 else "right", va="center")
    ax.set_xlim(-0.8, 0.8)
    ax.set_ylim(0.95, -1.12)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(f"{sk.J} joints, {sk.C} limbs, root = neck (star)", fontsize=9)
    tx.axis("off")
    order = "\n".join(f"{c + 1:2d}  {sk.joints[a]} -> {sk.joints[b]}" for c, (a, b) in enumerate(sk.limbs))
    tx.text(0, 1, "dfs_limbs(): Algorithm 1's order\n\n" + order, va="top", family="monospace", fontsize=9)
    ctx.save(fig, "bub_fig4_tree.png", "code: Skeleton('toy'), dfs_limbs")
    ctx.num("code.bub.joints", sk.J)
    ctx.num("code.bub.limbs", sk.C)


# =============================================================================
# Paper 2, Eq. (1)-(4): the targets where two people overlap
# =============================================================================
def overlap_choice(source, sk, cfg, n, stride=4):
    """(scene, limb, person A, person B, pixel) where two people's fields of
    one limb overlap most (Eq. 4 averages them) at a clear angle, among the
    first ``n`` scenes; scenes of at most 3 people first (a readable figure).
    Without any overlap: two people of one scene and a limb both have."""
    best = None
    for i in range(min(n, len(source))):
        kp, boxes, (W, H) = source.annotation(i)
        if len(kp) < 2:
            continue
        shape = (H // stride, W // stride)
        per = [bub.direction_fields(kp[k:k + 1], sk.limbs, shape, stride, cfg.delta)[1] for k in range(len(kp))]
        for a in range(len(kp)):
            for b in range(len(kp)):
                if a == b:
                    continue
                for c in np.flatnonzero((per[a] > 0).any((1, 2)) & (per[b] > 0).any((1, 2))):
                    j1, j2 = sk.limbs[c]
                    va = kp[a, j2, :2] - kp[a, j1, :2]
                    vb = kp[b, j2, :2] - kp[b, j1, :2]
                    if va @ vb / max(np.linalg.norm(va) * np.linalg.norm(vb), 1e-6) > 0.8:
                        continue                     # nearly parallel: the average shows little
                    both = (per[a][c] > 0) & (per[b][c] > 0)
                    key = (int(both.sum()) > 0, len(kp) <= 3, int(both.sum()))
                    if best is None or key > best[0]:
                        ys, xs = np.nonzero(both) if both.any() else np.nonzero(per[a][c] > 0)
                        best = (key, i, int(c), a, b, (int(xs[len(xs) // 2]), int(ys[len(ys) // 2])))
    return best


def zoom(ax, points, W, H, margin=12, least=56):
    """Show a square around ``points`` (image px), at least ``least`` px wide."""
    lo, hi = np.min(points, 0) - margin, np.max(points, 0) + margin
    side = max(least, *(hi - lo))
    c = (lo + hi) / 2
    x0, y0 = np.clip(c - side / 2, -0.5, None)
    ax.set_xlim(x0, min(x0 + side, W - 0.5))
    ax.set_ylim(min(y0 + side, H - 0.5), y0)


def quiver(ax, fields, c, stride, mask, colour, grid):
    X, Y = grid
    fx, fy = fields[2 * c], fields[2 * c + 1]
    ax.quiver(X[mask], Y[mask], fx[mask], fy[mask], color=colour, angles="xy", scale_units="xy",
              scale=1 / (0.8 * stride), width=0.006)


def bub_targets(ctx):
    """Eq. (1)-(4) on one validation scene (the default run's: 192 px, seed 1)."""
    cfg, sk = bub.toy_config(), bub.Skeleton("toy")
    source = ToyScenes(cfg.seed + 1, SCENES, cfg.input_size, sk)
    _, i, c, a, b, (px, py) = overlap_choice(source, sk, cfg, SCENES)
    scene = source.load(i)
    kp = scene.keypoints
    W, H = scene.size
    stride, shape = 4, (H // 4, W // 4)
    maps = bub.confidence_maps(kp, shape, stride, cfg.sigma)
    fields, count = bub.direction_fields(kp, sk.limbs, shape, stride, cfg.delta)
    fa, ca = bub.direction_fields(kp[a:a + 1], sk.limbs, shape, stride, cfg.delta)
    fb, cb = bub.direction_fields(kp[b:b + 1], sk.limbs, shape, stride, cfg.delta)
    ext = (-0.5, W - 0.5, H - 0.5, -0.5)
    grid = np.meshgrid(from_stride(np.arange(shape[1], dtype=np.float32), stride),
                       from_stride(np.arange(shape[0], dtype=np.float32), stride))
    j1, j2 = sk.limbs[c]
    fig, axes = plt.subplots(1, 4, figsize=(15, 4.2))
    axes[0].imshow(scene.image, extent=ext)
    plotting.draw_poses(axes[0], kp, sk)
    for k, col in ((a, "cyan"), (b, "magenta")):
        plotting.draw_boxes(axes[0], scene.boxes[k:k + 1], ec=col, lw=1.5)
    axes[0].set_title(f"validation scene {i}: person A (cyan), B (magenta)", fontsize=9)
    axes[1].imshow(scene.image, extent=ext)
    axes[1].imshow(maps[:sk.J].max(0), cmap="magma", alpha=0.8, vmin=0, vmax=1, extent=ext)
    axes[1].set_title(f"Eq. (1)-(2): S*_j = max over people,\nall joints shown, sigma = {cfg.sigma:g} px", fontsize=9)
    for ax in axes[2:]:
        ax.imshow(np.asarray(scene.image.convert("L")), cmap="gray", extent=ext, alpha=0.45)
    quiver(axes[2], fa, c, stride, ca[c] > 0, "darkcyan", grid)
    quiver(axes[2], fb, c, stride, cb[c] > 0, "darkmagenta", grid)
    axes[2].set_title(f"Eq. (3): L*_c,k for A and B, limb {c + 1}\n({sk.joints[j1]} -> {sk.joints[j2]}): "
                      f"unit vectors, 2 delta = {2 * cfg.delta:g} px wide", fontsize=9)
    quiver(axes[3], fields, c, stride, count[c] == 1, "black", grid)
    quiver(axes[3], fields, c, stride, count[c] >= 2, "red", grid)
    axes[3].set_title("Eq. (4): L*_c = their average;\nred: n_c(p) = 2, shorter than 1", fontsize=9)
    ends = np.stack([kp[a, j1, :2], kp[a, j2, :2], kp[b, j1, :2], kp[b, j2, :2]])
    for ax in axes[2:]:
        for k, col in ((a, "darkcyan"), (b, "darkmagenta")):
            ax.plot(*kp[k, [j1, j2], :2].T, "o", color=col, ms=4)
        zoom(ax, ends, W, H)
    for ax in axes:
        ax.axis("off")
    ctx.save(fig, "bub_eq1_4.png", "code: confidence_maps, direction_fields on ground truth")
    va = (kp[a, j2, :2] - kp[a, j1, :2]) / np.linalg.norm(kp[a, j2, :2] - kp[a, j1, :2])
    vb = (kp[b, j2, :2] - kp[b, j1, :2]) / np.linalg.norm(kp[b, j2, :2] - kp[b, j1, :2])
    two = count[c] >= 2
    if two.any():
        avg = np.array([fields[2 * c][py, px], fields[2 * c + 1][py, px]])
        assert np.allclose(avg, (va + vb) / 2, atol=1e-5), (avg, va, vb)      # Eq. (4), checked
    ctx.num("code.bub.eq4.scene", i)
    ctx.num("code.bub.eq4.limb", c + 1)
    ctx.num("code.bub.eq4.pixels", int(two.sum()))
    ctx.num("code.bub.eq4.angle", f"{math.degrees(math.acos(np.clip(va @ vb, -1, 1))):.0f}")
    ctx.num("code.bub.eq4.length", f"{np.linalg.norm((va + vb) / 2):.2f}")
    ctx.num("code.bub.sigma", f"{cfg.sigma:g}")
    ctx.num("code.bub.delta", f"{cfg.delta:g}")
    ctx.num("code.bub.sigma_sd", f"{cfg.sigma / math.sqrt(2):.1f}")


class Parser:
    """The validation scenes and what the parser reads from them: the default
    run's network outputs, or the ground-truth maps and fields when no run
    exists (``oracle``)."""

    def __init__(self, ctx, run, scenes):
        self.oracle = run is None
        if self.oracle:
            self.cfg, self.sk = bub.toy_config(), bub.Skeleton("toy")
            self.model, self.source_name = None, "ground-truth maps and fields (no runs/toy)"
        else:
            self.cfg, self.sk, self.model = bub.model_from_checkpoint(run / "last.pt", "cpu")
            self.source_name = f"{run.relative_to(ctx.runs.parent)}/last.pt"
        self.source = ToyScenes(self.cfg.seed + 1, scenes, self.cfg.input_size, self.sk)
        self.n = scenes
        self._pred = {}

    def pred(self, i):
        if i not in self._pred:
            scene = self.source.load(i)
            if self.oracle:
                W, H = scene.size
                maps = bub.confidence_maps(scene.keypoints, (H // 4, W // 4), 4, self.cfg.sigma)
                fields, _ = bub.direction_fields(scene.keypoints, self.sk.limbs, (H // 4, W // 4), 4, self.cfg.delta)
                self._pred[i] = bub.Prediction(maps, fields, 4, scene.size, scene.size)
            else:
                self._pred[i] = self.model.infer(scene.image, scene.size, self.cfg, "cpu")
        return self._pred[i]

    def detections(self, i):
        gt = self.source.ground_truth(i)
        return detector_boxes(self.source, i, gt, DetectorModel(), self.cfg.seed)


def eq5_samples(fields, a, b, c):
    """Eq. (5) by hand: the samples of Q (one per map pixel of ||d||, nearest
    pixel) and L_c(q) . d/||d|| at each."""
    d = b - a
    n = float(np.linalg.norm(d))
    nq = int(math.ceil(n)) + 1
    t = np.arange(nq) / max(nq - 1, 1)
    q = a[None] + t[:, None] * d[None]
    h, w = fields.shape[1:]
    qi = np.clip(np.rint(q).astype(int), 0, [w - 1, h - 1])
    L = np.stack([fields[2 * c][qi[:, 1], qi[:, 0]], fields[2 * c + 1][qi[:, 1], qi[:, 0]]], 1)
    return q, L @ (d / max(n, 1e-6))


def eq5_choice(p):
    """(scene, limb, A, B): A's limb is long enough to sample (|Q| >= 5) and
    the wrong segment, A's start joint to B's end joint, is as long as a limb
    can be and points elsewhere (>= 25 degrees); among those, the wrong segment that scores highest while the
    right one still scores 0.1 more -- the hardest case Eq. (5) gets right."""
    best = None
    for i in range(p.n):
        kp = p.source.annotation(i)[0]
        pred = p.pred(i)
        xy = pred.to_map(kp[..., :2].reshape(-1, 2)).reshape(kp.shape[0], kp.shape[1], 2)
        for c, (j1, j2) in enumerate(p.sk.limbs):
            for a in range(len(kp)):
                if min(kp[a, j1, 2], kp[a, j2, 2]) <= 0:
                    continue
                n_right = np.linalg.norm(xy[a, j2] - xy[a, j1])
                if n_right < 4:
                    continue
                right = eq5_samples(pred.fields, xy[a, j1], xy[a, j2], c)[1].mean()
                for b in range(len(kp)):
                    n_wrong = np.linalg.norm(xy[b, j2] - xy[a, j1])
                    if b == a or kp[b, j2, 2] <= 0 or not 0.6 * n_right <= n_wrong <= 1.6 * n_right:
                        continue
                    u, w = xy[a, j2] - xy[a, j1], xy[b, j2] - xy[a, j1]
                    if u @ w / (n_right * n_wrong) > 0.9:          # 25 degrees apart at least: two segments
                        continue
                    wrong = eq5_samples(pred.fields, xy[a, j1], xy[b, j2], c)[1].mean()
                    key = (right - wrong >= 0.1, wrong)
                    if best is None or key > best[0]:
                        best = (key, i, c, a, b)
    return best


def bub_eq5(ctx, p):
    """Eq. (5) along a right and a wrong candidate segment of one limb."""
    choice = eq5_choice(p)
    if choice is None:
        return placeholder(ctx, "bub_eq5.png", "no scene with two people in the scenes searched")
    _, i, c, a, b = choice
    scene, pred = p.source.load(i), p.pred(i)
    kp = scene.keypoints
    j1, j2 = p.sk.limbs[c]
    pts = pred.to_map(np.stack([kp[a, j1, :2], kp[a, j2, :2], kp[b, j2, :2]]))          # map px
    # The three joints as candidates, so that connection_scores computes Eq. (5);
    # in the map, as every candidate of find_candidates is.
    pts = np.clip(pts, 0, [pred.fields.shape[2] - 1, pred.fields.shape[1] - 1])
    cand = bub.Candidates(pts.astype(np.float32), np.ones(3, np.float32), np.array([j1, j2, j2]),
                          [np.array([0]) if j == j1 else np.array([1, 2]) if j == j2 else np.zeros(0, int)
                           for j in range(p.sk.J)])
    conn = connection_scores(pred.fields, cand, p.sk.limbs)
    s_right, s_wrong = (float(v) for v in conn.score[c][0])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), gridspec_kw={"width_ratios": [1, 1.3]})
    W, H = scene.size
    axes[0].imshow(np.asarray(scene.image.convert("L")), cmap="gray", alpha=0.5,
                   extent=(-0.5, W - 0.5, H - 0.5, -0.5))
    gx, gy = np.arange(pred.fields.shape[2]), np.arange(pred.fields.shape[1])
    grid = np.meshgrid(pred.to_image(np.stack([gx, gx], 1))[:, 0], pred.to_image(np.stack([gy, gy], 1))[:, 1])
    strong = np.hypot(pred.fields[2 * c], pred.fields[2 * c + 1]) > 0.1
    quiver(axes[0], pred.fields, c, W / pred.fields.shape[2], strong, "tab:blue", grid)
    for (lo, hi), s, col, name in (((0, 1), s_right, "green", "right"), ((0, 2), s_wrong, "red", "wrong")):
        q, v = eq5_samples(pred.fields, pts[lo], pts[hi], c)
        assert abs(v.mean() - s) < 1e-4, (v.mean(), s)                 # the figure's samples are Eq. (5)'s
        qi = pred.to_image(q)
        axes[0].plot(qi[:, 0], qi[:, 1], "-", color=col, lw=1.5)
        axes[0].scatter(qi[:, 0], qi[:, 1], c=v, cmap="RdYlGn", vmin=-1, vmax=1, s=22, edgecolors=col, zorder=3)
        axes[1].plot(np.linspace(0, 1, len(v)), v, "o-", color=col,
                     label=f"{name}: A's {p.sk.joints[j1]} to {'A' if name == 'right' else 'B'}'s "
                           f"{p.sk.joints[j2]}, |Q| = {len(v)}, s = {s:.2f}")
        axes[1].axhline(s, color=col, ls=":", lw=1)
        ctx.num(f"bub.eq5.{name}", f"{s:.2f}")
        ctx.num(f"bub.eq5.{name}_q", len(v))
    zoom(axes[0], pred.to_image(pts), W, H, margin=16)
    axes[0].axis("off")
    axes[0].set_title(f"scene {i}, limb {c + 1} ({p.sk.joints[j1]} -> {p.sk.joints[j2]}): the field (blue)\n"
                      f"and the samples q of Q on two segments (colour = L_c(q) . d/||d||)", fontsize=9)
    axes[1].set_xlabel("position of q along the segment (0 = the start joint)")
    axes[1].set_ylabel("L_c(q) . d / ||d||")
    axes[1].set_ylim(-1.1, 1.1)
    axes[1].legend(fontsize=8, loc="lower center")
    axes[1].set_title("Eq. (5): the score s is the mean of the samples (dotted); "
                      + ("ground-truth field" if p.oracle else "the network's field"), fontsize=9)
    ctx.save(fig, "bub_eq5.png", f"{p.source_name}: connection_scores")
    ctx.num("bub.eq5.scene", i)
    ctx.num("bub.eq5.limb", c + 1)


def boxes_map(p, pred, boxes):
    return pred.boxes_to_map(bub.extend_boxes(boxes, p.cfg.box_extend))


PERSON_COLOURS = ("tab:orange", "tab:cyan", "tab:purple", "tab:olive", "tab:pink", "tab:brown")


def bub_alg1(ctx, p):
    """Algorithm 1 limb by limb inside one box that holds its person and a
    fragment of a neighbour."""
    best = None
    for i in range(p.n):
        pred = p.pred(i)
        cand, conn = bub.candidates_and_scores(pred.maps, pred.fields, p.sk, p.cfg)
        bm = boxes_map(p, pred, gt_boxes(p.source.ground_truth(i)))
        inside = bub.candidates_in_boxes(cand, bm)
        connection_scores(pred.fields, cand, p.sk.limbs, bub.pairs_in_boxes(cand, p.sk.limbs, inside), conn)
        for k in range(len(bm)):
            poses = bub.parse_box(cand, conn.score, p.sk.limbs, inside[k], p.cfg.link_threshold, k)
            sizes = sorted((int((pp.joints >= 0).sum()) for pp in poses), reverse=True) + [0, 0]
            key = (len(poses) == 2, 2 <= sizes[1] <= 6, sizes[0], sizes[1])
            if best is None or key > best[0]:
                best = (key, i, k, cand, conn, bm[k], inside[k], pred)
    if best is None:
        return placeholder(ctx, "bub_alg1.png", "no box in the scenes searched")
    _, i, k, cand, conn, box, inside, pred = best
    limbs, thr, names = p.sk.limbs, p.cfg.link_threshold, p.sk.joints
    scene = p.source.load(i)
    W, H = scene.size
    grey = np.asarray(scene.image.convert("L"))
    lo, hi = pred.to_image(box[:2]), pred.to_image(box[:2] + box[2:])
    xy = pred.to_image(cand.xy)
    ids = np.flatnonzero(inside)
    fig, axes = plt.subplots(3, 5, figsize=(14, 9.6))
    axes = axes.ravel()
    before = []
    for step in range(len(limbs) + 1):
        ax = axes[step]
        ax.imshow(grey, cmap="gray", vmin=0, vmax=255, alpha=0.4, extent=(-0.5, W - 0.5, H - 0.5, -0.5))
        ax.add_patch(plt.Rectangle(lo, *(hi - lo), fill=False, ec="gold", ls="--", lw=1.2))
        ax.scatter(xy[ids, 0], xy[ids, 1], s=7, c="white", edgecolors="black", linewidths=0.4, zorder=2)
        upto = min(step + 1, len(limbs))
        poses = bub.parse_box(cand, conn.score[:upto], limbs[:upto], inside, thr, k)
        for n_p, pose in enumerate(poses):
            col = PERSON_COLOURS[n_p % len(PERSON_COLOURS)]
            for a, b in limbs[:upto]:
                if pose.joints[a] >= 0 and pose.joints[b] >= 0:
                    pa, pb = xy[pose.joints[a]], xy[pose.joints[b]]
                    ax.plot([pa[0], pb[0]], [pa[1], pb[1]], "-", color=col, lw=3, alpha=0.85)
        if step < len(limbs):
            j1, j2 = limbs[step]
            r1, r2 = cand.by_joint[j1], cand.by_joint[j2]
            sc, shown = conn.score[step], 0
            for u in range(len(r1)):
                for v in range(len(r2)):
                    if inside[r1[u]] and inside[r2[v]] and sc[u, v] > thr:
                        pa, pb = xy[r1[u]], xy[r2[v]]
                        ax.plot([pa[0], pb[0]], [pa[1], pb[1]], "--", color="black", lw=0.9)
                        ax.text(*(pa + pb) / 2, f"{sc[u, v]:.2f}", fontsize=6, color="black",
                                bbox=dict(fc="white", ec="none", alpha=0.6, pad=0.3))
                        shown += 1
            taken = sum(1 for q in poses if q.joints[j1] >= 0 and q.joints[j2] >= 0) - \
                sum(1 for q in before if q.joints[j1] >= 0 and q.joints[j2] >= 0)
            ax.set_title(f"limb {step + 1}: {names[j1]} -> {names[j2]}\n{shown} candidate(s) > {thr:g}, "
                         f"{taken} taken; {len(poses)} person list(s)", fontsize=8)
            before = poses
        else:
            sizes = ", ".join(str(int((q.joints >= 0).sum())) for q in poses)
            ax.set_title(f"the result: {len(poses)} person list(s)\nwith {sizes} joints", fontsize=8)
            ctx.num("bub.alg1.persons", len(poses))
            ctx.num("bub.alg1.joints", int(max(((q.joints >= 0).sum() for q in poses), default=0)))
        pad = 4
        ax.set_xlim(max(lo[0] - pad, -0.5), min(hi[0] + pad, W - 0.5))
        ax.set_ylim(min(hi[1] + pad, H - 0.5), max(lo[1] - pad, -0.5))
    for ax in axes:
        ax.axis("off")
    axes[-1].text(0, 0.5, "dashed: the limb's possible connections\n(both candidates in the box, Eq. (5)\n"
                  f"score > {thr:g}), with their scores\n\nthick: the person lists after the step,\n"
                  "one colour per person\n\ngold: the box, extended by 10 %", fontsize=8, va="center")
    fig.suptitle(f"Algorithm 1 in one box (scene {i}, box {k}), limb by limb in DFS order "
                 f"({'ground-truth maps' if p.oracle else 'the network'})", fontsize=10)
    fig.tight_layout()
    ctx.save(fig, "bub_alg1.png", f"{p.source_name}: parse_box, step by step")
    ctx.num("bub.alg1.scene", i)
    ctx.num("code.bub.link_threshold", f"{p.cfg.link_threshold:g}")


def eq9_terms(pose, cand, box, cfg):
    """Eq. (9) term by term, checked against ``pose_confidence``."""
    has = pose.joints >= 0
    s1 = float(cand.score[pose.joints[has]].mean())
    s2 = float(np.mean(pose.links)) if pose.links else 0.0
    xy = cand.xy[pose.joints[has]]
    span = xy.max(0) - xy.min(0)
    area = min(float(span[0] * span[1] / max(box[2] * box[3], 1e-6)), 1.0)
    alpha, beta, gamma = cfg.eq9_weights
    conf = alpha * s1 + beta * s2 + gamma * area
    assert abs(conf - bub.pose_confidence(pose, cand, box, cfg)) < 1e-4
    return s1, s2, area, conf


def bub_nms(ctx, p):
    """Pose NMS before and after on a scene where the simulated detector made
    a redundant box."""
    best = None
    for i in range(p.n):
        pred = p.pred(i)
        det = p.detections(i)
        parse = bub.parse_image(pred.maps, pred.fields, boxes_map(p, pred, det[:, :4]), p.sk, p.cfg,
                                completion=False)
        ious = box_ious(det[:, :4]) if len(det) else np.zeros((0, 0))
        for s in parse.suppressed:
            for kept in parse.poses:
                d = bub.pose_distance(s, kept, p.cfg.readings.nms_distance)
                # A redundant box: overlapping the kept pose's (partial duplicates lie at IoU 0.2-0.45).
                key = (bool(ious[s.box, kept.box] >= 0.2), d <= p.cfg.eta, -d)
                if best is None or key > best[0]:
                    best = (key, i, s, kept, d, parse, det)
    if best is None:
        return placeholder(ctx, "bub_nms.png", "pose NMS removed nothing in the scenes searched")
    _, i, removed, ref, d, parse, det = best
    pred = p.pred(i)
    bm = boxes_map(p, pred, det[:, :4])
    scene = p.source.load(i)
    cand = bub.find_candidates(pred.maps[:p.sk.J], p.cfg.peak_threshold)
    W, H = scene.size
    ext = (-0.5, W - 0.5, H - 0.5, -0.5)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.8), gridspec_kw={"width_ratios": [1, 1, 0.9]})
    allp = parse.poses + parse.suppressed
    for ax, poses, title in ((axes[0], allp, f"before pose NMS: {len(allp)} poses from "
                              f"{len(det)} boxes (Algorithm 1 in each)"),
                             (axes[1], parse.poses, f"after pose NMS: {len(parse.poses)} poses")):
        ax.imshow(scene.image, extent=ext)
        for pose in sorted(poses, key=lambda q: (q is ref) + 2 * (q is removed)):
            kp = bub.to_keypoints(pose, cand)
            kp[:, :2] = np.where(kp[:, 2:] > 0, pred.to_image(kp[:, :2]), 0)
            if pose is ref or pose is removed:
                col = "lime" if pose is ref else "red"
                x, y, w, h = bub.extend_boxes(det[pose.box, :4], p.cfg.box_extend)[0]
                ax.add_patch(plt.Rectangle((x, y), w, h, fill=False, ec=col, lw=2))
                ax.text(max(x, 0) + 1, max(y, 0) + 1, f"Conf {pose.conf:.2f}", color=col, fontsize=8,
                        weight="bold", va="top", bbox=dict(fc="black", ec="none", alpha=0.5, pad=0.5))
                for a, b in p.sk.limbs:
                    if kp[a, 2] > 0 and kp[b, 2] > 0:
                        ax.plot(kp[[a, b], 0], kp[[a, b], 1], "-", color=col, lw=3.5 if pose is ref else 1.5)
            else:
                plotting.draw_poses(ax, kp[None], p.sk, lw=1.0)
        ax.set_xlim(-0.5, W - 0.5)
        ax.set_ylim(H - 0.5, -0.5)
        ax.axis("off")
        ax.set_title(title, fontsize=9)
    t_ref, t_rem = eq9_terms(ref, cand, bm[ref.box], p.cfg), eq9_terms(removed, cand, bm[removed.box], p.cfg)
    iou = float(box_ious(det[[removed.box, ref.box], :4])[0, 1])
    if p.cfg.readings.nms_distance == "own":          # Y's own joints that Y' does not share, over n_Y
        differ = int(((removed.joints >= 0) & (removed.joints != ref.joints)).sum())
        n, formula = int((removed.joints >= 0).sum()), "n_Y"
    else:                                    # Eq. (10) as printed
        differ = int((ref.joints != removed.joints).sum())
        n, formula = max(int((ref.joints >= 0).sum()), int((removed.joints >= 0).sum())), "max(n_Y, n_Y')"
    axes[2].axis("off")
    alpha, beta, gamma = p.cfg.eq9_weights
    axes[2].text(0, 0.95, f"Eq. (9): Conf = {alpha:g} s1 + {beta:g} s2 + {gamma:g} S(B')/S(B)\n\n"
                 f"         s1    s2    S(B')/S(B)  Conf\n"
                 f"Y' kept  {t_ref[0]:.2f}  {t_ref[1]:.2f}  {t_ref[2]:.2f}        {t_ref[3]:.2f}\n"
                 f"Y        {t_rem[0]:.2f}  {t_rem[1]:.2f}  {t_rem[2]:.2f}        {t_rem[3]:.2f}\n\n"
                 f"Eq. (10): d(Y, Y') = {differ} / {n} = {d:.2f}  (over {formula})\n"
                 f"Eq. (11): d <= eta = {p.cfg.eta:g}: Y is eliminated\n\n"
                 f"the two detector boxes overlap by IoU {iou:.2f}\n"
                 f"(the simulated detector's partial duplicate, or a neighbour's box)",
                 family="monospace", fontsize=8.5, va="top")
    fig.suptitle(f"scene {i}: green = the reference pose Y', red = the pose it eliminates "
                 f"({'ground-truth maps' if p.oracle else 'the network'})", fontsize=10)
    ctx.save(fig, "bub_nms.png", f"{p.source_name}: pose_confidences, pose_distance, pose_nms")
    for key, v in (("scene", i), ("before", len(allp)), ("after", len(parse.poses)), ("boxes", len(det)),
                   ("conf_ref", f"{t_ref[3]:.2f}"), ("conf_removed", f"{t_rem[3]:.2f}"),
                   ("d", f"{d:.2f}"), ("s1", f"{t_ref[0]:.2f}"), ("s2", f"{t_ref[1]:.2f}"),
                   ("area", f"{t_ref[2]:.2f}"), ("area_removed", f"{t_rem[2]:.2f}"), ("iou", f"{iou:.2f}")):
        ctx.num(f"bub.nms.{key}", v)
    ctx.num("code.bub.eta", f"{p.cfg.eta:g}")
    for k, w in zip(("alpha", "beta", "gamma"), p.cfg.eq9_weights):
        ctx.num(f"code.bub.{k}", f"{w:g}")


def bub_completion(ctx, p):
    """Pose completion before and after, on the scene where it adds most."""
    best = None
    for i in range(p.n):
        pred = p.pred(i)
        det = p.detections(i)
        full = bub.parse_image(pred.maps, pred.fields, boxes_map(p, pred, det[:, :4]), p.sk, p.cfg)
        added = int(full.completed.sum())
        if best is None or added > best[0]:
            best = (added, i, det)
    added, i, det = best
    pred = p.pred(i)
    scene = p.source.load(i)
    parsed = bub.parse_variants(pred, det[:, :4], p.sk, p.cfg, ("no_completion", "full"))
    W, H = scene.size
    fig, axes = plt.subplots(1, 2, figsize=(10, 5.2))
    for ax, (v, title) in zip(axes, (("no_completion", "before completion (Algorithm 1 + pose NMS)"),
                                     ("full", "after completion (dashed, ringed: the joints it added)"))):
        ax.imshow(scene.image, extent=(-0.5, W - 0.5, H - 0.5, -0.5))
        plotting.draw_boxes(ax, bub.extend_boxes(det[:, :4], p.cfg.box_extend), ec="yellow", ls="--", lw=0.8)
        plotting.draw_poses(ax, parsed[v].keypoints, p.sk, parsed[v].completed if v == "full" else None)
        if v == "full" and parsed[v].completed.any():
            done = parsed[v].keypoints[parsed[v].completed]
            ax.scatter(done[:, 0], done[:, 1], s=90, facecolors="none", edgecolors="yellow", lw=1.5, zorder=4)
        n = int((parsed[v].keypoints[..., 2] > 0).sum())
        ax.set_title(f"{title}\n{len(parsed[v].keypoints)} poses, {n} joints", fontsize=9)
        ax.set_xlim(-0.5, W - 0.5)
        ax.set_ylim(H - 0.5, -0.5)
        ax.axis("off")
    fig.suptitle(f"scene {i} ({'ground-truth maps' if p.oracle else 'the network'})", fontsize=10)
    ctx.save(fig, "bub_completion.png", f"{p.source_name}: complete_poses")
    ctx.num("bub.completion.scene", i)
    ctx.num("bub.completion.added", added)


# =============================================================================
# Paper 2, §IV on the toy: Tables I, III, IV, the jitter curves, Fig. 1
# =============================================================================
PAPER_TABLE_III = (("6-stage + VGG", 6, "vgg", False, 51.29), ("6-stage + ResNet", 6, "resnet", False, 51.97),
                   ("3-stage + ResNet", 3, "resnet", False, 26.00), ("3-stage + ResNet + 2x", 3, "resnet", True, 27.42),
                   ("6-stage + ResNet + 2x", 6, "resnet", True, 54.73))


def bub_table3(ctx):
    """Table III's parameter counts from the paper-size modules (meta tensors)."""
    lines = ["| network (Table III) | flags | parameters (ours) | the paper's |", "| --- | --- | --- | --- |"]
    for name, stages, backbone, up, paper in PAPER_TABLE_III:
        cfg = bub.Config(data="aic", stages=stages, backbone=backbone, upsample=up)
        with torch.device("meta"):
            net = bub.PoseNetwork(cfg, bub.Skeleton("aic"))
        n = sum(q.numel() for q in net.parameters()) / 1e6
        flags = f"`--stages {stages} --backbone {backbone}{'' if up else ' --no-2x'}`"
        lines.append(f"| {name} | {flags} | {n:.2f} M | {paper:.2f} M |")
    ctx.tables["code.bub.table3"] = "\n".join(lines)


def pct(x):
    return "-" if x is None or x < 0 else f"{100 * x:.1f}"


def bub_tables(ctx, res):
    """Tables I and IV (and the crowded slice, the counts) from a results.json."""
    rows = res["results"]
    table = [("top-down: paper 1 in each box (`common.topdown.TopDown`)", "topdown"), ("box-free parse of [3] (`parse_greedy`)", "greedy"),
             ("ours (`parse_image`)", "full"), ("top-down, ground-truth boxes", "topdown, gt boxes"),
             ("ours, ground-truth boxes", "full, gt boxes")]
    paper = {"topdown": "62.25 (CPM)", "greedy": "59.14", "full": "66.03"}
    lines = ["| toy validation, simulated detector | AP | AP50 | AP75 | APM | APL | the paper's AP (AI Challenger) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for label, key in table:
        if key not in rows:
            continue
        r = rows[key]
        lines.append(f"| {label} | " + " | ".join(pct(r[c]) for c in ("AP", "AP50", "AP75", "APM", "APL")) +
                     f" | {paper.get(key, '-')} |")
        ctx.num(f"bub.ap.{key.replace(', ', '_').replace(' ', '_')}", pct(r["AP"]))
    ctx.tables["bub.table1"] = "\n".join(lines)
    paper_iv = {"greedy": ("59.14", "-6.89"), "no_nms": ("63.92", "-2.11"), "no_completion": ("64.34", "-1.69"),
                "full": ("66.03", "")}
    lines = ["| Table IV row | AP | difference [95 % interval] | the paper's AP | the paper's difference |",
             "| --- | --- | --- | --- | --- |"]
    for v, label in bub.VARIANTS.items():
        t = res["table_iv"][v]
        diff = "" if v == "full" else f"{100 * t['diff']:+.1f} [{100 * t['lo']:+.1f}, {100 * t['hi']:+.1f}]"
        lines.append(f"| {label} | {pct(t['AP'])} | {diff} | {paper_iv[v][0]} | {paper_iv[v][1]} |")
        if v != "full":
            ctx.num(f"bub.iv.{v}.diff", f"{100 * t['diff']:+.1f}")
    ctx.tables["bub.table4"] = "\n".join(lines)
    c = res.get("components", {})             # walkthrough/studies.py evaluation (the top-down run)
    for k, v in c.items():
        ctx.num(f"bub.count.{k}", v)
    ctx.num("bub.count.completed_right_pct",
            f"{100 * c['completed_right'] / c['completed_judged']:.0f}" if c.get("completed_judged") else "n/a")
    rt = res.get("runtime_by_people") or {}
    if rt:                                      # with the top-down row: time per image against boxes
        # From one box (no box: nothing for the top-down row to do) to the
        # most boxes that several images have (one image is no median).
        counts = [k for k in rt if int(k) >= 1 and rt[k]["images"] >= 5] or list(rt)
        few, many = min(counts, key=int), max(counts, key=int)
        for label, k in (("few", few), ("many", many)):
            ctx.num(f"bub.runtime.{label}.boxes", int(k))
            ctx.num(f"bub.runtime.{label}.ours", f"{rt[k]['ours']:.0f}")
            ctx.num(f"bub.runtime.{label}.topdown", f"{rt[k]['topdown']:.0f}")
    cr = res["crowded"]
    ctx.num("bub.crowded.people", cr["people"])
    for k in ("full", "greedy", "topdown"):
        ctx.num(f"bub.crowded.{k}", pct(cr[k]["AP"]) if k in cr else "n/a")
    ctx.num("bub.val_scenes", 4 if ctx.fast else bub.parse_args([]).toy_val)


LOST_COLUMNS = (("no_box", "no box"), ("network", "maps"), ("outside_box", "outside the box"),
                ("box_took_neighbour", "box took a neighbour"), ("joined_neighbour", "joined to a neighbour"),
                ("fragmented", "fragmented"), ("deleted", "list deleted"), ("nms", "pose NMS"),
                ("matching", "matching"))


def lost_table(lost, rows):
    """Markdown table of where the missed people were lost, one row per parse."""
    cols = [(k, label) for k, label in LOST_COLUMNS if any(lost[r].get(k, 0) for r, _ in rows)]
    lines = ["| parse | missed | " + " | ".join(label for _, label in cols) + " |",
             "| --- | --- |" + " --- |" * len(cols)]
    for r, label in rows:
        lines.append(f"| {label} | {lost[r]['missed']} | " + " | ".join(str(lost[r].get(k, 0)) for k, _ in cols) + " |")
    return "\n".join(lines)


def diff_text(d):
    return f"{100 * d['diff']:+.1f} [{100 * d['lo']:+.1f}, {100 * d['hi']:+.1f}]"


def bub_claim(ctx, res):
    """Table IV under each parser's own score and on ground-truth boxes, and
    where each missed person was lost (the run's results.json)."""
    for key, table, title, tag in (("table_iv_own", "bub.table4own", "own scores", "iv_own"),
                                   ("table_iv_gt", "bub.table4gt", "ground-truth boxes", "iv_gt")):
        if key not in res:
            continue
        lines = [f"| Table IV row, {title} | AP | difference [95 % interval] |", "| --- | --- | --- |"]
        for v, label in bub.VARIANTS.items():
            t = res[key][v]
            lines.append(f"| {label} | {pct(t['AP'])} | {'' if v == 'full' else diff_text(t)} |")
            if v != "full":
                ctx.num(f"bub.{tag}.{v}.diff", f"{100 * t['diff']:+.1f}")
        ctx.tables[table] = "\n".join(lines)
    if "lost" not in res:                     # walkthrough/studies.py evaluation (the top-down run)
        return
    lost = res["lost"]
    ctx.num("bub.lost.people", lost["people"])
    for k in ("ours", "[3]", "ours, gt boxes"):
        if k in lost:
            ctx.num(f"bub.lost.{k.replace(', ', '_').replace(' ', '_').strip('[]')}.missed", lost[k]["missed"])
    ctx.tables["bub.lost"] = lost_table(lost, [(r, label) for r, label in (
        ("ours", "ours, simulated detector"), ("ours, gt boxes", "ours, ground-truth boxes"),
        ("[3]", "[3], no boxes")) if r in lost])


def bub_studies(ctx, run_bub):
    """walkthrough/studies.py on the default run's network (and perfect maps):
    the real samples' oracle, the crowd sweep, the detector curves, the readings."""
    import studies                                          # walkthrough/studies.py
    args = SimpleNamespace(checkpoint=str(run_bub / "last.pt"), scenes=3 if ctx.fast else 200, seed=0,
                           real=str(studies.REAL), strides=(4,) if ctx.fast else (1, 4), real_readings=not ctx.fast,
                           quick=ctx.fast)
    real = studies.study_real(args)
    lines = ["| perfect maps, ground-truth boxes | people | ours (full) | [3] | without pose NMS | without completion "
             "| ours, the paper's literal reading |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for key, r in real.items():
        if key.endswith("chosen"):
            name, stride = key.split(" stride ")[0], key.split(" stride ")[1].split()[0]
            lit = real[key.replace("chosen", "literal")]["AP"]["full"]
            a = r["AP"]
            lines.append(f"| {name} sample, stride {stride} | {r['people']} | {pct(a['full'])} | {pct(a['greedy'])} | "
                         f"{pct(a['no_nms'])} | {pct(a['no_completion'])} | {pct(lit)} |")
            ctx.num(f"bub.real.{name}.s{stride}.full", pct(a["full"]))
            ctx.num(f"bub.real.{name}.s{stride}.literal", pct(lit))
            ctx.num(f"bub.real.{name}.s{stride}.greedy", pct(a["greedy"]))
    ctx.tables["bub.real"] = "\n".join(lines)
    sweep = studies.study_sweep(args)
    lines = ["| toy world (200 scenes each) | people | oracle, GT boxes: ours / [3] | trained, GT boxes: ours / [3] "
             "| ours - [3] [95 %] | trained, detector: ours / [3] | ours - [3] [95 %] |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for label, r in sweep.items():
        o, g, d = r["oracle, gt boxes"], r["trained, gt boxes"], r["trained, detector"]
        lines.append(f"| {label} | {r['people']} | {pct(o['AP']['full'])} / {pct(o['AP']['greedy'])} | "
                     f"{pct(g['AP']['full'])} / {pct(g['AP']['greedy'])} | {diff_text(g['ours - [3]'])} | "
                     f"{pct(d['AP']['full'])} / {pct(d['AP']['greedy'])} | {diff_text(d['ours - [3]'])} |")
    ctx.tables["bub.sweep"] = "\n".join(lines)
    first, paper = sweep[next(iter(sweep))], sweep["paper regime (also small people)"]
    for key, r in (("default", first), ("paper", paper)):
        for rows in ("oracle, gt boxes", "trained, gt boxes", "trained, detector"):
            tag = rows.replace(", ", "_").replace(" ", "_")
            ctx.num(f"bub.sweep.{key}.{tag}.diff", f"{100 * r[rows]['ours - [3]']['diff']:+.1f}")
    det = studies.study_detector(args)
    misses, noises = list(det["oracle"]["miss"]), list(det["oracle"]["noise"])
    lines = ["| detector | " + " | ".join(f"miss {m:g}" for m in misses) + " |", "| --- |" + " --- |" * len(misses)]
    for maps in det:
        lines.append(f"| ours, {maps} maps | " + " | ".join(pct(a) for a in det[maps]["miss"].values()) + " |")
    lines += ["", "| detector | " + " | ".join(f"noise x{k:g}" for k in noises) + " |",
              "| --- |" + " --- |" * len(noises)]
    for maps in det:
        lines.append(f"| ours, {maps} maps | " + " | ".join(pct(a) for a in det[maps]["noise"].values()) + " |")
    ctx.tables["bub.detector"] = "\n".join(lines)
    for maps in det:
        ctx.num(f"bub.detector.{maps}.greedy", pct(det[maps]["[3] (no boxes)"]))
        ctx.num(f"bub.detector.{maps}.gt", pct(det[maps]["ours, ground-truth boxes"]))
    readings = studies.study_readings(args)
    cols = [k for k in next(iter(readings.values()))]
    lines = ["| reading (ours; [3] where it changes) | " + " | ".join(cols) + " |", "| --- |" + " --- |" * len(cols)]
    for label, r in readings.items():
        lines.append(f"| {label} | " + " | ".join(pct(r[c]["AP"]["full"]) for c in cols) + " |")
    ctx.tables["bub.readings"] = "\n".join(lines)


def bub_jitter(ctx, res):
    """Fig. 1 (a-b) as curves: AP against box jitter, each box source, [3] flat."""
    jit, ref = res["jitter"], 100 * res["results"]["greedy"]["AP"]
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    style = {"simulated detector": ("tab:green", "-"), "ground-truth boxes": ("tab:green", "--"),
             "top-down, simulated detector": ("tab:red", "-"), "top-down, ground-truth boxes": ("tab:red", "--")}
    for name, curve in jit.items():
        col, ls = style.get(name, ("tab:grey", "-"))
        label = name if name.startswith("top-down") else f"ours, {name}"
        ax.plot(curve["levels"], [100 * a for a in curve["AP"]], ls, marker="o", color=col, label=label)
        x = curve["below [3] from"]
        key = name.replace("top-down, ", "topdown_").replace(" ", "_")
        ctx.num(f"bub.jitter.{key}.below", "never" if x is None else f"{x:.2f}")
        ctx.num(f"bub.jitter.{key}.at0", pct(curve["AP"][0]))
        ctx.num(f"bub.jitter.{key}.atmax", pct(curve["AP"][-1]))
    levels = next(iter(jit.values()))["levels"]
    ax.plot(levels, [ref] * len(levels), ":", color="tab:blue", label="[3], no boxes")
    ax.set_xlabel("jitter L: centre shift and size change up to L x box size")
    ax.set_ylabel("OKS AP (%)")
    ax.legend(fontsize=8)
    ax.set_title("Fig. 1 (a-b) on the toy: AP against box shift and tightness", fontsize=9)
    ctx.save(fig, "bub_jitter.png", "results.json: jitter")
    ctx.num("bub.jitter.max_level", f"{levels[-1]:g}")


def bub_training(ctx, res):
    h = res["history"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.0))
    axes[0].plot([x["epoch"] for x in h["loss"]], [x["loss"] for x in h["loss"]], "o-")
    axes[0].set_title("training loss, Eq. (8)", fontsize=9)
    axes[1].plot([x["epoch"] for x in h["val"]], [100 * x["AP"] for x in h["val"]], "o-", color="tab:green")
    axes[1].set_title("validation OKS AP (first scenes, ground-truth boxes)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("epoch")
    ctx.save(fig, "bub_training.png", "runs/toy/results.json: history")
    ctx.num("bub.epochs", len(h["loss"]))
    ctx.num("bub.seconds", f"{res['seconds']:.0f}")
    ctx.num("bub.val_last", f"{100 * h['val'][-1]['AP']:.1f}")


def bub_fig1(ctx, run_bub, run_crowd, run_topdown):
    import studies                                          # walkthrough/studies.py
    res = json.loads((run_topdown / "evaluation.json").read_text())
    cfg, sk, model = bub.model_from_checkpoint(run_bub / "last.pt", "cpu")
    n_val = len(res["per_image"])
    source = ToyScenes(cfg.seed + 1, n_val, cfg.input_size, sk)
    topdown = TopDown(run_crowd / "best.pt", sk, "cpu", hr, flip_test=cfg.flip_test)
    path = studies.figure_fig1(model, source, cfg, sk, ctx.rt.device, DetectorModel(), cfg.seed, topdown,
                               res["per_image"], ctx.out / "bub_fig1.png")
    shrink(path)
    ctx.figures["bub_fig1.png"] = "runs/toy/last.pt + paper 1 crowd run: studies.figure_fig1"


# =============================================================================
# The texts: quoted numbers and tables, kept equal to numbers.json
# =============================================================================
NUMBER = re.compile(r"(" + VALUE.pattern + r")<!--n:([^>\s]+)-->")
TABLE = re.compile(r"(<!-- table:(\S+) -->\n)(.*?)(\n<!-- /table -->)", re.S)


def text_keys(text):
    return [m.group(2) for m in NUMBER.finditer(text)], [m.group(2) for m in TABLE.finditer(text)]


def update_texts(ctx):
    """Bring every marked number and table of the two texts up to date;
    keys the texts quote that nothing produced become "n/a"."""
    for path in TEXTS:
        text = path.read_text()
        nums, tabs = text_keys(text)
        for k in nums:
            ctx.numbers.setdefault(k, "n/a")
        for k in tabs:
            ctx.tables.setdefault(k, "*(not measured yet: run `python walkthrough/make_figures.py`)*")
        new = NUMBER.sub(lambda m: ctx.numbers[m.group(2)] + f"<!--n:{m.group(2)}-->", text)
        new = TABLE.sub(lambda m: m.group(1) + ctx.tables[m.group(2)] + m.group(4), new)
        if new != text:
            path.write_text(new)
            print(f"updated {path.relative_to(ROOT)}")


# =============================================================================
# Main
# =============================================================================
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fast", action="store_true", help="tiny models trained in seconds, a few scenes (the test)")
    p.add_argument("--out", help="output folder (default walkthrough/figures; --fast needs one)")
    p.add_argument("--no-train", action="store_true", help="reuse runs only; missing ones leave placeholders")
    args = p.parse_args(argv)
    if args.fast and not args.out:
        p.error("--fast needs --out DIR (the committed figures come from the full mode)")
    args.out = args.out or str(WALK / "figures")
    return args


def main(argv=None):
    args = parse_args(argv)
    t0 = time.time()
    torch.manual_seed(0)
    if args.fast:
        # Tiny models: one thread is as fast as two, and far faster on a
        # machine whose cores are busy (threads wait for each other). Figures
        # at a third of the resolution: made by the same code, drawn faster.
        torch.set_num_threads(1)
        plotting.DPI = 40
    ctx = Context(args)
    ctx.out.mkdir(parents=True, exist_ok=True)
    print(f"{'fast' if ctx.fast else 'full'} mode: runs in {ctx.runs}, figures in {ctx.out}", flush=True)
    # Paper 1, in the lecture's order.
    figure(ctx, "hr_fig1.png", [], hr_fig1)
    figure(ctx, "hr_fig2.png", ["hr"], hr_fig2)
    figure(ctx, "hr_targets.png", [], hr_targets)
    hr_architectures(ctx)
    figure(ctx, "hr_resolution.png", [], hr_resolution)
    figure(ctx, "hr_stages.png", ["hr"], hr_stages)
    hr_pckh(ctx)
    figure(ctx, "hr_table5.png", ["hr-table5"], hr_table5)
    figure(ctx, "hr_mechanism.png", ["hr"], hr_mechanism)
    # Paper 2.
    res_bub, res_td = ctx.results("bub"), ctx.results("topdown")
    figure(ctx, "bub_fig1.png", ["bub", "crowd", "topdown"], bub_fig1)
    figure(ctx, "bub_fig4_tree.png", [], bub_tree)
    figure(ctx, "bub_eq1_4.png", [], bub_targets)
    # The parse figures read the default run's outputs. Without it, and in
    # the fast mode (whose tiny network finds nothing to parse), they read
    # the ground truth: the same code path from the candidates on.
    parser = Parser(ctx, None, 12) if ctx.fast else Parser(ctx, ctx.run("bub"), SCENES)
    for name, make in (("bub_eq5.png", bub_eq5), ("bub_alg1.png", bub_alg1), ("bub_nms.png", bub_nms),
                       ("bub_completion.png", bub_completion)):
        figure(ctx, name, [], lambda c, make=make: make(c, parser))
    bub_table3(ctx)
    res = res_td or res_bub
    if res is not None:
        bub_tables(ctx, res)
        figure(ctx, "bub_jitter.png", [], lambda c: bub_jitter(c, res))
    else:
        placeholder(ctx, "bub_jitter.png", "needs runs/toy")
    if res_bub is not None:
        figure(ctx, "bub_training.png", [], lambda c: bub_training(c, res_bub))
        bub_claim(ctx, res)
        t = time.time()
        bub_studies(ctx, ctx.run("bub"))
        print(f"  {'studies (tables)':28s} {time.time() - t:5.1f} s", flush=True)
    else:
        placeholder(ctx, "bub_training.png", "needs runs/toy")
    if not ctx.fast and ctx.out == (WALK / "figures").resolve():
        update_texts(ctx)
    summary = {"mode": "fast" if ctx.fast else "full", "numbers": dict(sorted(ctx.numbers.items())),
               "tables": dict(sorted(ctx.tables.items())), "figures": dict(sorted(ctx.figures.items())),
               "missing": ctx.missing}
    (ctx.out / "numbers.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"{len(ctx.figures)} figures, {len(ctx.numbers)} numbers, {len(ctx.tables)} tables in {ctx.out} "
          f"({time.time() - t0:.0f} s)" + (f"; placeholders: {', '.join(ctx.missing)}" if ctx.missing else ""))
    return summary


if __name__ == "__main__":
    main()
