"""A paper's table as training runs: one run per row, each in its own folder.

An ablation table (paper 1's Table 5) compares variants trained alike.
``row_runs`` plans one run per row -- the command line with one flag set to
the row's value, in a folder of its own -- and reuses a row whose folder
already holds a finished run with exactly these flags, so a table is
completed by rerunning its command; a folder holding a run with other flags
is refused before anything is trained. Bookkeeping, not method: the script
keeps what trains and prints the table, this module which folder is which.
"""
import argparse
from pathlib import Path

from . import cli, harness


def row_runs(args, flag, values, default_out):
    """[(value, its run's args, reuse)] for each of ``values`` of ``args.<flag>``.

    A row's run is ``args`` with ``<flag>`` = value, into ``--out``/VALUE
    (without ``--out``: ``default_out(value)``, the folder the single run
    would write). ``reuse``: its folder holds a finished run (``best.pt`` and
    ``results.json``) with these very flags (``cli.run_flags``)."""
    plan = []
    for value in values:
        sub = argparse.Namespace(**vars(args))
        setattr(sub, flag, value)
        sub.out = str(cli.check_out_dir(Path(args.out) / value if args.out else default_out(value)))
        best, done = Path(sub.out) / "best.pt", Path(sub.out) / "results.json"
        reuse = False
        if best.is_file():
            if harness.load_checkpoint(best)["extra"].get("flags") != cli.run_flags(sub):
                raise cli.UsageError(f"{cli.flag_of(flag, args)} all: {sub.out} holds a run with other flags; "
                                     f"give another --out (or remove that folder)")
            reuse = done.is_file()
        plan.append((value, sub, reuse))
    return plan


def train_rows(plan, run, table):
    """Each row of ``row_runs``' plan: its finished run reused (and said so),
    or trained now by ``run(its args)``; ``table`` names the table."""
    for value, sub, reuse in plan:
        print(f"\n=== {table}, {value}: " + (f"reusing the finished run in {sub.out}" if reuse
                                              else f"training into {sub.out}"), flush=True)
        if not reuse:
            run(sub)
