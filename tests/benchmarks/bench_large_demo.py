"""Both demos on a 10000 x 10000 px JPEG: wall time and peak memory.

    python tests/benchmarks/bench_large_demo.py [--bub-checkpoint runs/toy/best.pt]
        [--hr-checkpoint runs/toy-residual-detection+regression/best.pt]

Each demo runs as its own command line (Python start and imports included),
one after the other; peak memory is the child's maximum resident set. The
photo is made once (smooth colour noise, so that libjpeg compresses it as a
photo) in a temporary folder. The issue's bar: <= 5 s and <= 1.5 GB at the
reference speed.
"""
import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import machine  # tests/benchmarks/machine.py (sys.path[0] is this folder)

ROOT = Path(__file__).resolve().parents[2]


def photo(path, side=10_000):
    small = np.random.default_rng(0).integers(0, 255, (side // 100, side // 100, 3), np.uint8)
    Image.fromarray(small).resize((side, side), Image.BILINEAR).save(path, quality=85)


# Runs a command and prints its peak memory (kB): RUSAGE_CHILDREN of a fresh
# process holds that one child's maximum resident set alone.
WRAP = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "sys.stderr.write(r.stderr); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
        "sys.exit(r.returncode)")


def timed(cmd):
    """(wall seconds, peak GB) of ``cmd``."""
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", WRAP, *cmd], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if r.returncode:
        sys.exit(f"{' '.join(cmd)} failed: {r.stderr.strip()[-500:]}")
    return wall, int(r.stdout.split()[-1]) / 1e6


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bub-checkpoint", default=str(ROOT / "runs" / "toy" / "best.pt"))
    p.add_argument("--hr-checkpoint", default=str(ROOT / "runs" / "toy-residual-detection+regression" / "best.pt"))
    args = p.parse_args()
    print(f"machine: {machine.speed_line()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "big.jpg"
        photo(big)
        for script, ckpt in (("bottom_up_bbox.py", args.bub_checkpoint), ("heatmap_regression.py", args.hr_checkpoint)):
            wall, gb = timed([sys.executable, str(ROOT / script), "--demo", str(big), "--checkpoint", ckpt,
                              "--out", str(Path(tmp) / script)])
            f = machine.speed_ratio()
            at_ref = f"{wall / f:.1f} s at the reference speed" if f else "reference speed unknown"
            print(f"{script} --demo (10000 x 10000 JPEG): {wall:.1f} s wall ({at_ref}), peak memory {gb:.2f} GB",
                  flush=True)


if __name__ == "__main__":
    main()
