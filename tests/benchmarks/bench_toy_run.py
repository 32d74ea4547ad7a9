"""The default toy run and Table 5's four rows, timed: wall time and the
PCKh@0.5 Totals on the held-out test figures.

    python tests/benchmarks/bench_toy_run.py

Runs the real command lines in subprocesses, one after the other (never in
parallel: two trainings on two cores slow each other down several-fold):
``python heatmap_regression.py`` (bar: 5 minutes at the reference speed),
then ``--variant all`` into the same folder, which reuses that run as its
first row and trains the other three (bar for all four: 15 minutes).
"""
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import machine  # tests/benchmarks/machine.py (sys.path[0] is this folder)

ROOT = Path(__file__).resolve().parents[2]


def run(out, *extra):
    t = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "heatmap_regression.py"), "--out", str(out), *extra],
                   check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main():
    print(f"machine: {machine.speed_line()}", flush=True)   # measured before the trainings, not during
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        wall = run(out / "detection+regression")
        res = json.loads((out / "detection+regression" / "results.json").read_text())
        print(f"python heatmap_regression.py: {wall:.0f} s wall ({machine.at_reference(wall)}),"
              f" {res['split']} Total PCKh@0.5 {res['final']['Total']:.1f}"
              f" (its detector alone: {res['detection_only']['Total']:.1f});"
              f" occluded joints {res['occluded']['cascade']['Total']:.1f} vs its detector"
              f" {res['occluded']['detection_only']['Total']:.1f}", flush=True)
        rest = run(out, "--variant", "all")
        t5 = json.loads((out / "table5.json").read_text())
        print(f"python heatmap_regression.py --variant all (the three other rows): {rest:.0f} s wall; "
              f"all four rows {wall + rest:.0f} s ({machine.at_reference(wall + rest)})")
        for v, r in t5["rows"].items():
            d = r["vs_cascade"]["all"]
            print(f"  {r['label']:28s} {r['seconds']:5.0f} s  Total {r['all']['Total']:5.1f}  occluded "
                  f"{r['occluded']['Total']:5.1f}  vs cascade {d['diff']:+5.1f} [{d['lo']:+5.1f}, {d['hi']:+5.1f}]")
        print(f"machine after: {machine.speed_line()}")


if __name__ == "__main__":
    main()
