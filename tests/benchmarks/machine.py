"""This machine's speed figure, printed beside every benchmark's timings.

    import machine          # the benchmark's own folder is sys.path[0] when run as a script
    print(f"machine: {machine.speed_line()}")

speed_line() runs ../shared/tools/machine_speed.py (relative to the repository
root) once per process, in a subprocess, and returns its one printed line,
e.g. "22.9 steps/s; reference 14.5: a budget of T s is T x 0.63 s here".
It trains a small network for ~7 s on 2 threads, so call it before timing,
never while something is being timed. speed_ratio() is the F of "T x F s
here" (reference steps/s / this machine's), or None when it is unknown.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[3] / "shared" / "tools" / "machine_speed.py"
_line = None  # cached: the script is run at most once per benchmark run


def speed_line():
    global _line
    if _line is None:
        if not SCRIPT.is_file():
            _line = "machine speed: ../shared/tools/machine_speed.py not found"
        else:
            # drop the caller's thread limits (bench_bub_parsing sets OMP_NUM_THREADS=1):
            # the script pins its own 2 threads and must measure the same way everywhere
            env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
            p = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, env=env)
            out = p.stdout.strip().splitlines()
            if p.returncode == 0 and out:
                _line = out[-1].strip()
            else:
                err = (p.stderr.strip().splitlines() or ["no output"])[-1]
                _line = f"machine speed: machine_speed.py failed (exit {p.returncode}): {err}"
    return _line


def speed_ratio():
    """F in "a budget of T s is T x F s here", as a float; None if not measured."""
    m = re.search(r"T x ([0-9.]+) s here", speed_line())
    return float(m.group(1)) if m else None


def at_reference(wall):
    """A wall time in seconds restated at the reference machine's speed (wall / F)."""
    f = speed_ratio()
    return f"{wall / f:.0f} s at reference speed" if f else "reference-speed time unknown"
