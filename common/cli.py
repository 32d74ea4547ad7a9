"""The command-line contract both scripts keep: bad input is one line.

A user's mistake (a missing file, a malformed annotation, a bad flag) is
reported as ``error: <one line naming the file or flag>`` on stderr with
exit status 2, never a traceback. Setting the environment variable named by
``debug_env`` re-raises instead, for developers.
"""
import os
import sys

from .harness import NonFiniteLoss


class UsageError(ValueError):
    """Bad command-line input; reported as one line."""


def run_reporting_errors(run, args, debug_env):
    """``run(args)``; user errors become one line on stderr and exit 2.

    ImageError and DataError are ValueErrors, UsageError too: the three
    families below cover every error our readers and checks raise.
    """
    try:
        return run(args)
    except (FileNotFoundError, ValueError, NonFiniteLoss) as e:
        if os.environ.get(debug_env):
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
