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

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import heatmap_regression as hr  # noqa: E402
from common import harness  # noqa: E402
from common.sources import ToySource, toy_stream  # noqa: E402
from walkthrough import studies  # noqa: E402


def reduction(det, cas):
    """Relative error reduction 1 - err(cascade) / err(detector), in %."""
    return f"{100 * (1 - (100 - cas) / (100 - det)):+6.0f} %" if det < 100 else "     -"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=str(ROOT / "runs" / "toy-residual-detection+regression" / "best.pt"))
    p.add_argument("--people", type=int, default=500)
    args = p.parse_args()
    rt = harness.setup_runtime("cpu")
    cfg, model = hr.model_from_checkpoint(args.checkpoint, "cpu")
    test = hr.PoseData(ToySource(toy_stream(cfg.seed, "test"), args.people), cfg, model.stride, train=False)
    rows = studies.stages_by_confidence(model.eval(), test, rt, flip_test=cfg.flip_test)
    print(f"{args.checkpoint}: {len(test)} toy test figures, PCKh@0.5 (%), flip test {cfg.flip_test}")
    print(f"  {'parts':<40} {'count':>6}  {'det.':>6}  {'casc.':>6}  error reduction")
    for label, k, d, c in rows:
        print(f"  {label:<40} {k:>6}  {d:6.1f}  {c:6.1f}  {reduction(d, c) if k else ''}")


if __name__ == "__main__":
    main()
