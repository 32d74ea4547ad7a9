"""walkthrough/make_figures.py --fast, timed: the lectures' every figure and
number from tiny models (the bar: 30 s at the reference speed).

    python tests/benchmarks/bench_make_figures_fast.py

Runs the real command line in a subprocess, one thread, as
tests/test_walkthrough.py does; prints the machine's speed line first.
"""
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import machine  # tests/benchmarks/machine.py (sys.path[0] is this folder)

ROOT = Path(__file__).resolve().parents[2]


def main():
    print(f"machine: {machine.speed_line()}", flush=True)
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "walkthrough" / "make_figures.py"), "--fast", "--out", out],
                       check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
                       env={**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"})
        wall = time.perf_counter() - t
    f = machine.speed_ratio()
    at_ref = f"{wall / f:.1f} s at the reference speed" if f else "reference speed unknown"
    print(f"make_figures.py --fast: {wall:.1f} s wall ({at_ref}; bar 30 s)")


if __name__ == "__main__":
    main()
