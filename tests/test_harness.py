"""Tests for common.harness: runtime, atomic checkpoints, exact resume, DDP."""
import importlib.util
import os
import random
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from common import harness as H

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_rt():
    return H.setup_runtime("cpu")


def test_setup_runtime_auto_is_cpu_here(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    rt = H.setup_runtime("auto")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the test describes the CPU-only case")
    assert rt.device == torch.device("cpu")
    # Mixed precision on a CPU: bfloat16, and only where AMX makes it fast.
    assert (rt.amp, rt.distributed, rt.world_size, rt.is_main) == (H.cpu_has_bf16_matmul(), False, 1, True)
    assert not H.make_scaler(rt).is_enabled()                   # bfloat16 needs no loss scaling


def test_cpu_mixed_precision_is_bfloat16_and_can_be_turned_off():
    on, off = H.setup_runtime("cpu", amp=True), H.setup_runtime("cpu", amp=False)
    conv = torch.nn.Conv2d(3, 4, 3)
    with H.autocast(on):
        assert conv(torch.randn(1, 3, 8, 8)).dtype == torch.bfloat16
    with H.autocast(off):
        assert conv(torch.randn(1, 3, 8, 8)).dtype == torch.float32
    assert not H.make_scaler(on).is_enabled() and not H.make_scaler(off).is_enabled()


def test_adam_is_fused_here_and_takes_the_plain_adams_steps(monkeypatch):
    """``adam``: the fused kernel (torch >= 2.4 on a CPU), updating exactly as
    the plain Adam does (to float rounding); where a torch has no fused
    kernel for the device, the plain one."""
    def steps(make):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 2))
        opt = make(net.parameters())
        for i in range(5):
            opt.zero_grad()
            net(torch.randn(4, 5, generator=torch.Generator().manual_seed(i))).pow(2).sum().backward()
            opt.step()
        return opt, torch.cat([p.detach().flatten() for p in net.parameters()])
    fused, a = steps(lambda p: H.adam(p, 1e-2))
    plain, b = steps(lambda p: torch.optim.Adam(p, lr=1e-2))
    assert fused.defaults["fused"] and not plain.defaults.get("fused")
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert not torch.equal(a, steps(lambda p: torch.optim.SGD(p, lr=1e-2))[1])      # the steps moved
    real = torch.optim.Adam

    def no_fused(params, lr, fused=None):
        if fused:
            raise RuntimeError("`fused=True` requires all the params to be floating point Tensors of "
                               "supported devices")
        return real(params, lr=lr)
    monkeypatch.setattr(torch.optim, "Adam", no_fused)
    assert not H.adam(torch.nn.Linear(2, 2).parameters(), 1e-3).defaults.get("fused")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_setup_runtime_refuses_cuda_without_gpu():
    for kwargs in ({"device": "cuda"}, {"device": "cuda:1"}):
        with pytest.raises(ValueError) as e:
            H.setup_runtime(**kwargs)
        assert "\n" not in str(e.value)


# ---------------------------------------------------------------- checkpoints

def test_save_overwrite_load_returns_latest(tmp_path):
    path = tmp_path / "sub" / "ckpt.pt"  # parent folder does not exist yet
    H.save_checkpoint(path, {"w": torch.zeros(3), "epoch": 1})
    H.save_checkpoint(path, {"w": torch.ones(3), "epoch": 2})
    state = H.load_checkpoint(path)
    assert state["epoch"] == 2 and torch.equal(state["w"], torch.ones(3))
    assert "_format" not in state
    assert os.listdir(tmp_path / "sub") == ["ckpt.pt"]


def test_crash_mid_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    H.save_checkpoint(path, {"epoch": 1})

    def dying_save(obj, f, *a, **k):  # a crash after part of the file is written
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(OSError):
        H.save_checkpoint(path, {"epoch": 2})
    monkeypatch.undo()
    assert H.load_checkpoint(path)["epoch"] == 1
    assert os.listdir(tmp_path) == ["ckpt.pt"]  # no temp file left behind


def test_load_garbage_and_foreign_and_missing(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint\n" * 10)
    foreign = tmp_path / "foreign.pt"
    torch.save({"a": torch.zeros(1)}, foreign)  # a valid torch file, not ours
    for p in (garbage, foreign):
        with pytest.raises(ValueError) as e:
            H.load_checkpoint(p)
        msg = str(e.value)
        assert p.name in msg and "\n" not in msg and "Traceback" not in msg
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        H.load_checkpoint(tmp_path / "missing.pt")


# ---------------------------------------------------------------- exact resume

class NoisyData(Dataset):
    """Augmentation drawing from all three global RNGs (num_workers=0)."""

    def __init__(self, n=40):
        g = torch.Generator().manual_seed(1)
        self.x, self.y = torch.randn(n, 4, generator=g), torch.randn(n, 1, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        noise = 0.1 * torch.randn(4) + float(np.random.randn()) * 0.01 + random.random() * 0.01
        return self.x[i] + noise, self.y[i]


def make_objects(init_seed):
    torch.manual_seed(init_seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(),
                                torch.nn.Dropout(0.3), torch.nn.Linear(16, 1))
    model = H.wrap_model(model, cpu_rt())
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    loader = H.make_loader(NoisyData(), 8, True, cpu_rt(), seed=7)
    return model, opt, sched, H.make_scaler(cpu_rt()), loader


def train_epochs(model, opt, sched, loader, epochs):
    for epoch in epochs:
        H.set_epoch(loader, epoch)
        for x, y in loader:
            loss = torch.nn.functional.mse_loss(model(x), y)
            H.check_finite(loss, f"epoch {epoch}")
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()


def seed_all(s):
    torch.manual_seed(s)
    np.random.seed(s)
    random.seed(s)


def test_resume_continues_identically(tmp_path):
    seed_all(0)
    model, opt, sched, _, loader = make_objects(0)
    train_epochs(model, opt, sched, loader, range(4))
    straight = [p.detach().clone() for p in model.parameters()]

    seed_all(0)
    model, opt, sched, scaler, loader = make_objects(0)
    train_epochs(model, opt, sched, loader, range(2))
    H.save_checkpoint(tmp_path / "c.pt", H.train_state(model, opt, sched, scaler, 2, 10, {"k": 1}))
    half = [p.detach().clone() for p in model.parameters()]

    seed_all(123)  # a new process: different RNGs, different initial weights
    model, opt, sched, scaler, loader = make_objects(1)
    epoch, step, extra = H.restore_train_state(H.load_checkpoint(tmp_path / "c.pt"),
                                               model, opt, sched, scaler)
    assert (epoch, step, extra) == (2, 10, {"k": 1})
    train_epochs(model, opt, sched, loader, range(epoch, 4))
    resumed = list(model.parameters())

    assert not torch.equal(half[0], straight[0])  # the last two epochs did change things
    for a, b in zip(straight, resumed):
        assert torch.equal(a, b)


class WorkerNoise(Dataset):
    def __len__(self):
        return 16

    def __getitem__(self, i):
        return torch.tensor([float(i), np.random.rand()])


def test_worker_augmentation_reproducible_and_distinct_across_workers():
    loader = H.make_loader(WorkerNoise(), 4, True, cpu_rt(), num_workers=2, seed=3)

    def epoch_values(epoch):
        H.set_epoch(loader, epoch)
        rows = torch.cat(list(loader))
        return dict(zip(rows[:, 0].tolist(), rows[:, 1].tolist()))

    e1, e1_again, e2 = epoch_values(1), epoch_values(1), epoch_values(2)
    assert e1 == e1_again  # same (seed, epoch) -> same order and same noise
    assert e1 != e2
    assert len(set(e1.values())) == 16  # two workers did not replay one stream


# ---------------------------------------------------------------- sanity, progress

@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_check_finite(bad):
    H.check_finite(torch.tensor(1.5), "ok")
    with pytest.raises(H.NonFiniteLoss) as e:
        H.check_finite(torch.tensor(bad), "detector step 17")
    assert "detector step 17" in str(e.value) and "\n" not in str(e.value)
    assert isinstance(e.value, RuntimeError)


def test_progress_line():
    lines, t = [], iter([0.0, 1.0, 3.0, 3.5])  # clock readings: start, then at each line
    prog = H.Progress("det", num_epochs=2, steps_per_epoch=4, log_every=2,
                      print_fn=lines.append, clock=lambda: next(t))
    for loss in (1.0, 2.0, 3.0, 3.0):
        prog.update(torch.tensor(loss), images=8)
    prog.start_epoch(1)
    # window 1: 2 steps, 16 images in 1 s; 6 steps left at 0.5 s -> 3 s
    # window 2: 2 steps, 16 images in 2 s; 4 steps left at 1 s -> 4 s
    assert lines == ["det epoch 1/2 step 2/4 loss 1.5000  16 img/s  ETA 00:03",
                     "det epoch 1/2 step 4/4 loss 3.0000  8 img/s  ETA 00:04"]
    quiet = H.Progress("det", 1, 1, rt=H.Runtime(torch.device("cpu"), rank=1, world_size=2),
                       print_fn=lines.append)
    quiet.update(1.0, images=1)
    assert len(lines) == 2  # rank 1 stays silent


# ---------------------------------------------------------------- real DDP on CPU

DDP_SCRIPT = textwrap.dedent('''
    import sys, torch
    from common import harness as H

    def run(rt):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
        model = H.wrap_model(net, rt)
        g = torch.Generator().manual_seed(1)
        data = torch.utils.data.TensorDataset(torch.randn(32, 4, generator=g),
                                              torch.randn(32, 1, generator=g))
        loader = H.make_loader(data, 8, True, rt, seed=3)  # global batch 8
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for epoch in range(2):
            H.set_epoch(loader, epoch)
            for x, y in loader:
                loss = torch.nn.functional.mse_loss(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
        return H.unwrap(model)

    if __name__ == "__main__":
        rt = H.setup_runtime("cpu")
        model = run(rt)
        mean_rank = H.all_reduce_mean(torch.tensor(float(rt.rank)), rt)
        torch.save({"params": [p.detach() for p in model.parameters()],
                    "mean_rank": mean_rank, "world": rt.world_size},
                   f"{sys.argv[1]}/rank{rt.rank}.pt")
        H.save_checkpoint(f"{sys.argv[1]}/ckpt.pt", {"rank": rt.rank})  # rank 0 only
        H.barrier(rt)
        H.cleanup_runtime(rt)
''')


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_cpu_processes_match_single_process(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1"}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(k, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1",
           "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), str(script), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]

    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert r0["world"] == r1["world"] == 2
    assert r0["mean_rank"].item() == r1["mean_rank"].item() == 0.5
    assert H.load_checkpoint(tmp_path / "ckpt.pt")["rank"] == 0
    for a, b in zip(r0["params"], r1["params"]):  # DDP keeps ranks in lockstep
        assert torch.equal(a, b)

    # One process on the whole global batch: DDP's gradient mean over two
    # half-batches equals the mean-loss gradient over the full batch.
    spec = importlib.util.spec_from_file_location("ddp_train", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    single = mod.run(H.Runtime(torch.device("cpu")))
    for a, b in zip(single.parameters(), r0["params"]):
        torch.testing.assert_close(a.detach(), b, rtol=0, atol=1e-6)


# ---------------------------------------------------------------- atomic writes, Ctrl-C

@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_write_keeps_the_users_umask(tmp_path, umask):
    from common.atomic import atomic_write
    old = os.umask(umask)
    try:
        with atomic_write(tmp_path / "results.json", "w") as f:
            f.write("{}")
    finally:
        os.umask(old)
    # As open() would create it: 0666 minus the umask (mkstemp alone gives 0600).
    assert (tmp_path / "results.json").stat().st_mode & 0o777 == 0o666 & ~umask


def test_ctrl_c_is_one_line_with_the_resume_command(tmp_path, capsys):
    from common import cli
    ckpt = tmp_path / "run" / "last.pt"

    def training(args):
        cli.note_checkpoint(ckpt)          # what a training loop does after writing last.pt
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as e:
        cli.run_reporting_errors(training, None, "NO_SUCH_DEBUG_VAR",
                                 argv=["--toy-train", "16", "--resume", "old.pt", "--out", "x y"])
    assert e.value.code == 130                              # 128 + SIGINT, the shell's convention
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("interrupted") and str(ckpt) in err
    # The command that continues: the same arguments, the old --resume replaced.
    assert f"--toy-train 16 --out 'x y' --resume {ckpt}" in err and "old.pt" not in err, err


def test_ctrl_c_before_any_checkpoint_says_so(capsys):
    from common import cli

    def interrupted(args):
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as e:
        cli.run_reporting_errors(interrupted, None, "NO_SUCH_DEBUG_VAR", argv=[])
    assert e.value.code == 130
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("interrupted") and "no checkpoint" in err, err


def test_override_takes_the_flags_that_were_given():
    from types import SimpleNamespace

    from common import cli
    cfg = SimpleNamespace(lr=1e-3, flip_test=True, epochs=5)
    args = SimpleNamespace(lr=2e-3, flip_test=False, epochs=None)          # --no-flip-test is a given False
    assert cli.override(cfg, args, ("lr", "flip_test", "epochs", "sigma")) is cfg
    assert (cfg.lr, cfg.flip_test, cfg.epochs) == (2e-3, False, 5) and not hasattr(cfg, "sigma")
