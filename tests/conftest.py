"""Shared test helpers."""
import os
import socket
import subprocess
import sys

import pytest


@pytest.fixture
def torchrun():
    """``torchrun(script, *args)``: run ``script`` in 2 CPU processes under
    torch.distributed.run (gloo, a free local port); returns the CompletedProcess."""
    def run(script, *args, timeout=240):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                               "--master_addr", "127.0.0.1", "--master_port", str(port), str(script), *args],
                              cwd=script.parent, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"})
    return run


@pytest.fixture
def one_line(capsys):
    """``one_line(main, argv, *words)``: a script's ``main(argv)``, run in
    this process, stops with exit status 2 and exactly one line on stderr,
    ``error: ...``, naming each of ``words``; returns that line. (In-process:
    no interpreter start and imports per case; the CLI tests keep a few real
    subprocesses to check the process itself.)"""
    def check(main, argv, *words):
        capsys.readouterr()
        with pytest.raises(SystemExit) as e:
            main(list(argv))
        err = capsys.readouterr().err.strip().splitlines()
        assert e.value.code == 2 and len(err) == 1 and err[0].startswith("error: "), err
        for w in words:
            assert w in err[0], err[0]
        return err[0]
    return check
