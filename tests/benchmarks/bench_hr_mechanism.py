"""Paper 1's argument, measured: does the regression stage help exactly
where the part detector is unsure?

    python tests/benchmarks/bench_hr_mechanism.py [--checkpoint runs/toy-residual-detection+regression/best.pt]

§3 argues that the regressor, seeing the detector's heatmaps stacked with
the image, corrects the parts the detector finds weakly (occluded ones
above all). On the toy validation figures (500, seed 1, the run's own
settings and flip test), every annotated part is binned by the detector's
heatmap value at its true location (``confidence_at_truth``'s reading), and
in each bin the PCKh@0.5 accuracy of the detector alone (``which="first"``)
and of the cascade are compared (the parts PCKh's Total scores), for visible and occluded parts, for limb
joints (elbows, wrists, knees, ankles) and the rest (pinned by the torso),
with the relative error reduction 1 - err(cascade) / err(detector). No
training: it reads the default run's checkpoint.
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import heatmap_regression as hr  # noqa: E402
from common import harness  # noqa: E402
from common.metrics import NOT_SCORED  # noqa: E402
from common.transforms import to_stride  # noqa: E402

BINS = (0.0, 0.05, 0.2, 0.5, 1.01)


@torch.no_grad()
def detector_value_at_truth(model, dataset, n):
    """(n, J) the detector's heatmap at each part's true location (NaN: not
    annotated or outside the map)."""
    out = np.full((n, len(dataset.cfg.joints)), np.nan)
    for lo in range(0, n, 32):
        samples = [dataset[i] for i in range(lo, min(lo + 32, n))]
        first, _ = model(torch.stack([s["image"] for s in samples]))
        det = model.first_maps(first)
        h, w = det.shape[-2:]
        for b, s in enumerate(samples):
            kp = s["kp_crop"].numpy()
            xy = np.rint(to_stride(kp[:, :2], model.stride)).astype(int)
            for j, (x, y) in enumerate(xy):
                if kp[j, 2] > 0 and 0 <= x < w and 0 <= y < h:
                    out[lo + b, j] = float(det[b, j, y, x])
    return out


def row(label, det_ok, cas_ok):
    if not len(det_ok):
        return f"  {label:<34} {0:>6}"
    ed, ec = 1 - det_ok.mean(), 1 - cas_ok.mean()
    red = f"{100 * (1 - ec / ed):+6.0f} %" if ed > 0 else "     -"
    return f"  {label:<34} {len(det_ok):>6}  {100 * det_ok.mean():6.1f}  {100 * cas_ok.mean():6.1f}  {red}"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=str(ROOT / "runs" / "toy-residual-detection+regression" / "best.pt"))
    p.add_argument("--people", type=int, default=500)
    args = p.parse_args()
    rt = harness.setup_runtime("cpu")
    cfg, model = hr.model_from_checkpoint(args.checkpoint, "cpu")
    val = hr.PoseData(hr.ToySource(cfg.seed + 1, args.people), cfg, model.stride, train=False)
    det = hr.evaluate(model, val, rt, flip_test=cfg.flip_test, which="first")
    cas = hr.evaluate(model, val, rt, flip_test=cfg.flip_test)
    assert det["index"] == cas["index"] == list(range(len(val)))
    conf = detector_value_at_truth(model.eval(), val, len(val))
    v = cas["gt"][..., 2].copy()
    v[:, [cfg.joints.index(n) for n in NOT_SCORED if n in cfg.joints]] = 0     # as PCKh's Total: never scored
    limbs = np.zeros(v.shape, bool)
    limbs[:, hr.limb_joints(tuple(cfg.joints))] = True
    print(f"{args.checkpoint}: {len(val)} toy validation figures, PCKh@0.5 (%), flip test {cfg.flip_test}")
    print(f"  {'parts':<34} {'count':>6}  {'det.':>6}  {'casc.':>6}  error reduction")
    for vis, name in ((2, "visible"), (1, "occluded")):
        m = v == vis
        print(row(f"{name}, all", det["correct"][m], cas["correct"][m]))
        for lo, hi in zip(BINS[:-1], BINS[1:]):
            b = m & (conf >= lo) & (conf < hi)
            print(row(f"{name}, detector at truth {lo:.2f}-{min(hi, 1):.2f}", det["correct"][b], cas["correct"][b]))
        for sel, what in ((limbs, "limb joints"), (~limbs, "torso-anchored joints")):
            print(row(f"{name}, {what}", det["correct"][m & sel], cas["correct"][m & sel]))


if __name__ == "__main__":
    main()
