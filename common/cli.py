"""The command-line contract both scripts keep: bad input is one line.

A user's mistake (a missing file, a malformed annotation, a bad flag) is
reported as ``error: <one line naming the file or flag>`` on stderr with
exit status 2, never a traceback. Setting the environment variable named by
``debug_env`` re-raises instead, for developers.

Ctrl-C is not a mistake, but it gets the same courtesy: one line saying
where the last checkpoint is and the command that continues from it, exit
status 130 (128 + SIGINT, what a shell reports for a Ctrl-C). The training
loops tell this module where that checkpoint is (``note_checkpoint``) each
time they write it; nothing else needs to know.
"""
import os
import shlex
import sys

from .harness import NonFiniteLoss

# Where a Ctrl-C would resume from: the last ``last.pt`` a training loop wrote
# in this run (None before the first one). Set by ``note_checkpoint``, reset
# by ``run_reporting_errors`` at the start of every run.
_last_checkpoint = None


class UsageError(ValueError):
    """Bad command-line input; reported as one line."""


def override(cfg, args, names):
    """Each flag of ``names`` that was given (not None) replaces the config
    field of the same name; a flag absent from ``args`` (a run mode without
    it) leaves its field alone. Returns ``cfg``."""
    for name in names:
        if getattr(args, name, None) is not None:
            setattr(cfg, name, getattr(args, name))
    return cfg


def note_checkpoint(path):
    """Record that ``path`` now holds a complete, resumable checkpoint.

    Call it right after writing ``last.pt`` (atomically, so the file is the
    old one or the new one, never half of one): an interrupted run then says
    ``--resume path``.
    """
    global _last_checkpoint
    _last_checkpoint = os.fspath(path)


def resume_command(script, argv, checkpoint):
    """The command line that continues a run: ``python SCRIPT ARGV --resume
    CHECKPOINT``, any ``--resume`` of ``argv`` replaced; ``torchrun`` with
    the same number of processes when the run was distributed."""
    kept, skip = [], False
    for a in argv:
        if skip or a.startswith("--resume="):
            skip = False
            continue
        skip = a == "--resume"                        # drop the flag and its value
        if not skip:
            kept.append(a)
    launcher = ["python"]
    if int(os.environ.get("WORLD_SIZE", 1)) > 1:     # torchrun sets these
        launcher = ["torchrun", "--nproc_per_node", os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"])]
    return shlex.join([*launcher, script, *kept, "--resume", os.fspath(checkpoint)])


def interrupted_message(script, argv):
    """The one line printed for a Ctrl-C."""
    if _last_checkpoint is None:
        return "interrupted (Ctrl-C) before any epoch ended: no checkpoint to resume from"
    return (f"interrupted (Ctrl-C); last checkpoint (last completed epoch): {_last_checkpoint}; "
            f"continue with: {resume_command(script, argv, _last_checkpoint)}")


def _script_of(run):
    """The path of the script that defines ``run``, relative to the current
    folder when it lies below it (what the user would type)."""
    path = getattr(sys.modules.get(run.__module__), "__file__", None) or sys.argv[0]
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def run_reporting_errors(run, args, debug_env, argv=None):
    """``run(args)``; user errors become one line on stderr and exit 2, a
    Ctrl-C one line and exit 130.

    ImageError and DataError are ValueErrors, UsageError too: the three
    families below cover every error our readers and checks raise. ``argv``:
    the arguments ``args`` were parsed from (default ``sys.argv[1:]``), for
    the ``--resume`` command of an interrupted run.
    """
    global _last_checkpoint
    _last_checkpoint = None
    try:
        return run(args)
    except (FileNotFoundError, ValueError, NonFiniteLoss) as e:
        if os.environ.get(debug_env):
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        if os.environ.get(debug_env):
            raise
        # Under torchrun every process gets the Ctrl-C; one of them speaks.
        if os.environ.get("RANK", "0") == "0":
            argv = sys.argv[1:] if argv is None else list(argv)
            print(interrupted_message(_script_of(run), argv), file=sys.stderr, flush=True)
        sys.exit(130)
