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
