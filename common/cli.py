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
import argparse
import math
import os
import shlex
import sys
import tempfile
from pathlib import Path

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


# ----------------------------------------------------------------------------
# Help a person can read, and checking a command line before any work starts

class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """``--help`` with each flag's default at the end of its line, where the
    flag has one of its own (a flag that defaults to its config's value says
    so in its help)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (action.option_strings and "default" not in text
                and action.default not in (None, False, argparse.SUPPRESS)):
            text += " (default: %(default)s)"
        return text


def add_run_flags(parser, out_default, log_every=50, seeded="the toy data, the augmentation and the init"):
    """The flags that say how a run is driven, alike in both scripts, as the
    group "run": ``--out`` (``out_default``: what it defaults to, in words),
    ``--device``, ``--no-amp``, ``--seed`` (of what: ``seeded``),
    ``--log-every`` and ``--resume``. Returns the group."""
    g = parser.add_argument_group("run")
    g.add_argument("--out", help=f"output folder (default: {out_default})")
    g.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N")
    g.add_argument("--no-amp", action="store_true",
                   help="train in float32 (default: mixed precision on CUDA, and bfloat16 on CPUs with AMX)")
    g.add_argument("--seed", type=int, default=0, help=f"seed of {seeded}")
    g.add_argument("--log-every", type=int, default=log_every, help="progress line every N steps")
    g.add_argument("--resume", help="continue the training run of this last.pt, with its own flags")
    return g


# The flags both scripts define: the same name and kind of value, each in the
# same help group. Each script says in words what they mean for it (its data
# sets, its defaults): ``add_shared_flags``.
SHARED_FLAGS = (
    ("data", "--data", {"default": "toy"}),
    ("data", "--data-root", {}),
    ("data", "--toy-train", {"type": int}),
    ("data", "--toy-val", {"type": int}),
    ("model", "--width", {"type": float}),
    ("model", "--pretrained", {}),
    ("model", "--checkpoint", {}),
    ("training", "--batch-size", {"type": int}),
    ("training", "--input-size", {"type": int}),
    ("evaluation", "--eval-only", {"action": "store_true"}),
    ("evaluation", "--flip-test", {"action": argparse.BooleanOptionalAction, "default": None}),
    ("demo", "--demo", {"nargs": "+", "metavar": "IMAGE"}),
    ("demo", "--boxes", {}),
)
# What the numeric ones may hold (``check_numbers``).
SHARED_KINDS = {"toy_train": "count", "toy_val": "count", "width": "positive", "batch_size": "count",
                "input_size": "count"}


def add_shared_flags(parser, titles, helps, **changes):
    """The flags both scripts share (``SHARED_FLAGS``), in the help groups
    data, model, training, evaluation and demo, made here in that order and
    returned by name ({name: group}) for the script's own flags.

    ``titles``: {group: its title in this script's --help} (default: the
    name); ``helps``: {dest: what the flag means in this script}, one for
    every shared flag; ``changes``: {dest: argparse keywords} where the
    script's flag differs: ``--data``'s ``choices``, ``--demo``'s ``nargs``
    ("*" when no image means a synthetic one), a default of its own."""
    groups = {name: parser.add_argument_group(titles.get(name, name))
              for name in ("data", "model", "training", "evaluation", "demo")}
    for group, flag, kwargs in SHARED_FLAGS:
        dest = flag[2:].replace("-", "_")
        groups[group].add_argument(flag, help=helps[dest], **{**kwargs, **changes.get(dest, {})})
    return groups


def _finite(v):
    return isinstance(v, (int, float)) and math.isfinite(v)


# What a numeric flag may hold: (test, what the one-line error says was expected).
KINDS = {
    "positive": (lambda v: _finite(v) and v > 0, "a positive number"),
    "count": (lambda v: v >= 1, "a whole number >= 1"),
    "natural": (lambda v: v >= 0, "a whole number >= 0"),
    "nonnegative": (lambda v: _finite(v) and v >= 0, "a finite number >= 0"),
    "probability": (lambda v: _finite(v) and 0 <= v <= 1, "a probability in [0, 1]"),
    "fraction": (lambda v: _finite(v) and 0 <= v < 1, "a fraction in [0, 1)"),
}


def flag_of(dest, args=None):
    """The option that sets ``args.<dest>``: the parser's own name for it
    when ``args`` carries them (``args.flag_names``, set by the scripts'
    ``parse_args``: ``use_box_score`` -> ``--box-score``), else the dest
    spelled as an option (``box_jitter`` -> ``--box-jitter``)."""
    return getattr(args, "flag_names", {}).get(dest) or "--" + dest.replace("_", "-")


def check_numbers(args, kinds):
    """Each flag of ``kinds`` ({dest: kind of ``KINDS``}) that was given holds
    a value of its kind: one line naming the flag otherwise."""
    for dest, kind in kinds.items():
        value = getattr(args, dest, None)
        ok, expected = KINDS[kind]
        if value is not None and not ok(value):
            raise UsageError(f"{flag_of(dest, args)} {value}: expected {expected}")


def number_list(text, flag, example, kind="positive", cast=float):
    """A comma-separated flag value -> tuple of ``cast`` numbers, each of
    ``kind``; '' is the empty list, an empty element ('1,,') an error."""
    if not text.strip():
        return ()
    try:
        values = tuple(cast(x) for x in text.split(","))
    except ValueError:
        raise UsageError(f"{flag} {text!r}: expected numbers like {example}") from None
    ok, expected = KINDS[kind]
    if not all(ok(v) for v in values):
        raise UsageError(f"{flag} {text!r}: expected each to be {expected}, like {example}")
    return values


def list_values_with_minus(argv, flags):
    """``--flag -1,2`` -> ``--flag=-1,2`` for the list-valued ``flags``:
    argparse takes a value that starts with '-' and is not a plain number for
    an option, and would answer "expected one argument" instead of our check
    of the list."""
    argv = list(sys.argv[1:] if argv is None else argv)
    for i in range(len(argv) - 2, -1, -1):
        if argv[i] in flags and argv[i + 1].startswith("-") and argv[i + 1][1:2].isdigit():
            argv[i:i + 2] = [f"{argv[i]}={argv[i + 1]}"]
    return argv


def data_root(args):
    """``--data-root`` for ``--data``: a folder that exists, as a ``Path``
    (one line naming the flag otherwise)."""
    if not args.data_root:
        raise UsageError(f"--data {args.data} needs --data-root DIR (the data set's folder; see README)")
    root = Path(args.data_root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"--data-root {root}: no such directory")
    return root


def check_out_dir(path, flag="--out"):
    """``path`` can receive a run's files: a folder, or nothing yet below a
    folder this process can write in (probed with a temporary file that is
    removed at once). Returns it as a ``Path``; nothing is created."""
    p = Path(path).expanduser()
    try:                                      # a folder we may not even look into: PermissionError
        if p.exists() and not p.is_dir():
            raise UsageError(f"{flag} {path}: is a file; expected a folder (made if missing)")
        parent = p
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir():
            raise UsageError(f"{flag} {path}: {parent} is a file, not a folder")
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as e:
        raise UsageError(f"{flag} {path}: cannot write there ({e.strerror or type(e).__name__})") from None
    return p


# ----------------------------------------------------------------------------
# Resuming a run with the flags it was started with

# How a run is driven, not what it computes: free to change on --resume.
NOT_RUN_FLAGS = frozenset({"resume", "out", "device", "log_every", "given", "flag_names"})
# Files and folders: saved resolved, so that a resume from another folder
# finds them, and free to be given again (data moved to another disk).
PATH_FLAGS = frozenset({"data_root", "lsp_extended", "checkpoint", "pretrained", "topdown", "boxes",
                        "cmu_weights"})


def given_dests(parser, argv=None):
    """The ``dest`` of every option the command line ``argv`` names (parsed
    once more with every default suppressed), so that a resumed run can tell
    a flag given again from a default."""
    defaults = [(a, a.default) for a in parser._actions]
    try:
        for a, _ in defaults:
            a.default = argparse.SUPPRESS
        return frozenset(vars(parser.parse_args(argv)))
    finally:
        for a, d in defaults:
            a.default = d


def run_flags(args):
    """The flags that define a run (``vars(args)`` less ``NOT_RUN_FLAGS``),
    kept in its checkpoints so that ``--resume`` continues the same run."""
    flags = {k: v for k, v in vars(args).items() if k not in NOT_RUN_FLAGS}
    for k in PATH_FLAGS & flags.keys():
        if isinstance(flags[k], str) and flags[k] not in ("gt", "sim", "net"):   # --boxes gt / sim / net: not paths
            flags[k] = str(Path(flags[k]).expanduser().resolve())
    return flags


def resume_flags(args, saved, path):
    """Give ``args`` the saved run's flags. A flag given again must agree
    with the saved one (one line naming it otherwise); ``--out`` defaults to
    the checkpoint's folder. A checkpoint without saved flags (written
    before they were kept) runs with the flags as given, and says so."""
    if saved is None:
        print(f"note: {path} holds no saved flags (an older checkpoint): resuming with the flags given",
              flush=True)
    else:
        given = getattr(args, "given", frozenset())
        for dest, value in saved.items():
            if not hasattr(args, dest):
                continue                      # a flag this version no longer has
            now = getattr(args, dest)
            if dest in given and dest in PATH_FLAGS:
                continue                      # a moved file: the one given now
            if dest in given and now != value:
                raise UsageError(f"--resume {path}: {flag_of(dest, args)} {now} differs from the saved run's "
                                 f"{value}; leave it out (a resumed run keeps its flags) or start a new run")
            setattr(args, dest, value)
    if args.out is None:
        args.out = str(Path(path).parent)
    return args


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


_PROJECT = Path(__file__).resolve().parents[1]


def _origin(error, debug_env):
    """'' for an error the project raised itself (its message names the file
    or flag); for one raised inside a library (numpy, torch, PIL ...), where
    it was raised and how to see the traceback."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return ""
    where = Path(tb.tb_frame.f_code.co_filename).resolve()
    if where.is_relative_to(_PROJECT):
        return ""
    return f" (raised in {where.name}:{tb.tb_lineno}; {debug_env}=1 shows the traceback)"


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
        print(f"error: {e}{_origin(e, debug_env)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        if os.environ.get(debug_env):
            raise
        # Under torchrun every process gets the Ctrl-C; one of them speaks.
        if os.environ.get("RANK", "0") == "0":
            argv = sys.argv[1:] if argv is None else list(argv)
            print(interrupted_message(_script_of(run), argv), file=sys.stderr, flush=True)
        sys.exit(130)
