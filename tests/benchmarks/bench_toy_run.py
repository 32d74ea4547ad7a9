"""The default toy run, timed: wall time and final PCKh@0.5, with and without
the regression stage (``--variant detection``).

    python tests/benchmarks/bench_toy_run.py

Runs the real command lines in subprocesses, one after the other (never in
parallel: two trainings on two cores slow each other down several-fold).
"""
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import machine  # tests/benchmarks/machine.py (sys.path[0] is this folder)

ROOT = Path(__file__).resolve().parents[2]


def run(*extra):
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "heatmap_regression.py"), "--out", out, *extra],
                       check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t
        return wall, json.loads((Path(out) / "results.json").read_text())


def main():
    print(f"machine: {machine.speed_line()}", flush=True)   # measured before the trainings, not during
    wall, res = run()
    print(f"python heatmap_regression.py: {wall:.0f} s wall ({machine.at_reference(wall)}),"
          f" Total PCKh@0.5 {res['final']['Total']:.1f}"
          f" (its detector alone: {res['detection_only']['Total']:.1f});"
          f" occluded joints {res['occluded']['cascade']['Total']:.1f} vs detection only"
          f" {res['occluded']['detection_only']['Total']:.1f}")
    wall, res = run("--variant", "detection")
    print(f"python heatmap_regression.py --variant detection: {wall:.0f} s wall ({machine.at_reference(wall)}), "
          f"Total PCKh@0.5 {res['final']['Total']:.1f}")


if __name__ == "__main__":
    main()
