"""Atomic file writes: checkpoints, results and figures are never half-written.

The bytes go to a temporary file in the destination's folder, reach the disk
(fsync), and only then is the file renamed onto its destination. A rename
within one file system is atomic, so a reader -- or a crash, or a NaN that
stops a run -- sees the old file or the new one, never half of one.

Permissions: ``mkstemp`` creates its file readable by its owner only (0600),
a safety for secrets that checkpoints and figures do not need. The file is
given what ``open()`` would have given it, ``0666 & ~umask``, so a results
folder shared with a group stays readable as the user's umask says.
"""
import os
import tempfile
from contextlib import contextmanager


def _umask():
    """The process's umask. POSIX can read it only by setting it, so set it
    back at once (this runs on the main thread, where files are written)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_write(path, mode="wb"):
    """``with atomic_write(path) as f: ...`` writes ``path`` atomically.

    If the block raises, the temporary file is removed and ``path`` is left
    as it was. The temporary file keeps ``path``'s suffix.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.splitext(path)[1])
    try:
        with os.fdopen(fd, mode) as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())  # as open() would; mkstemp gives 0600
            yield f
            f.flush()
            os.fsync(f.fileno())  # bytes on disk before the rename makes them visible
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
