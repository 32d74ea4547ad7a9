"""The default toy run of paper 2, timed: wall time, OKS AP, Table IV under
one score and under each parser's own, the crowded slice, the jitter curves.

    python tests/benchmarks/bench_bub_toy_run.py

Runs the real command line in a subprocess (never next to another training:
two trainings on two cores slow each other down several-fold).
"""
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import machine  # tests/benchmarks/machine.py (sys.path[0] is this folder)

ROOT = Path(__file__).resolve().parents[2]


def main():
    print(f"machine: {machine.speed_line()}", flush=True)   # measured before the training, not during
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "bottom_up_bbox.py"), "--out", out],
                       check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t
        print(f"wall time {wall:.0f} s here ({machine.at_reference(wall)})")
        res = json.loads((Path(out) / "results.json").read_text())
    report(res, wall)


def report(res, wall):
    """What the run's results.json holds (where each person was lost and what
    each component did are the evaluation study's: walkthrough/studies.py
    evaluation --checkpoint runs/toy/last.pt)."""
    r = res["results"]
    print(f"python bottom_up_bbox.py: {wall:.0f} s wall; OKS AP (%): "
          + ", ".join(f"{k} {100 * v['AP']:.1f}" for k, v in r.items()))
    print(f"AI Challenger score (full, AIC's constants): {100 * r['full']['AIC score']:.1f}")
    for key, score in (("table_iv", "one score"), ("table_iv_own", "own scores"),
                       ("table_iv_gt", "one score, ground-truth boxes")):
        print(f"Table IV, {score} (AP, difference from full, 95 % bootstrap interval): "
              + "; ".join(f"{k} {100 * t['AP']:.1f} {100 * t['diff']:+.1f} [{100 * t['lo']:+.1f}, {100 * t['hi']:+.1f}]"
                          for k, t in res[key].items()))
    print("crowded slice AP: " + ", ".join(f"{k} {100 * res['crowded'][k]['AP']:.1f}" for k in ("full", "greedy"))
          + f" ({res['crowded']['people']} people)")
    for name, c in res["jitter"].items():
        print(f"jitter curve, {name}: below [3] from {c['below [3] from']}")
    thresholds = [v["box_threshold"] for v in res["history"]["val"] if "box_threshold" in v]
    if thresholds:
        print(f"box head's decoding threshold after each epoch: {', '.join(f'{t:.2f}' for t in thresholds)}")

if __name__ == "__main__":
    main()
