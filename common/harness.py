"""The training harness both scripts share: device, AMP, DDP, data loading,
checkpoints, progress. Nothing here knows about poses. A loop with it reads:

    rt = setup_runtime(args.device)
    model, scaler = wrap_model(Net(), rt), make_scaler(rt)
    loader = make_loader(train_set, args.batch_size, True, rt, seed=args.seed)
    for epoch in range(start_epoch, epochs):
        set_epoch(loader, epoch)                  # new, reproducible data order
        for x, y in loader:
            with autocast(rt):
                loss = criterion(model(x.to(rt.device)), y.to(rt.device))
            check_finite(loss, f"epoch {epoch} step {step}")
            ...scaler.scale(loss).backward(); scaler.step(opt); scaler.update()
        if rt.is_main:
            save_checkpoint(path, train_state(model, opt, sched, scaler, epoch + 1, step))
    cleanup_runtime(rt)

Run it under ``torchrun --nproc_per_node N`` and the same code trains data-parallel.
"""
import contextlib
import os
import random
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from .atomic import atomic_write

CHECKPOINT_FORMAT = "humanpose-checkpoint-v1"  # marks files written by save_checkpoint


# ----------------------------------------------------------------------------
# Runtime: which device, which rank, AMP or not

@dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    distributed: bool = False
    amp: bool = False

    @property
    def is_main(self):
        return self.rank == 0


def setup_runtime(device="auto", amp=None):
    """Pick the device and, under ``torchrun``, join the process group.

    device: 'auto' (CUDA if available, else CPU), 'cpu', 'cuda' or 'cuda:K';
    under torchrun each process uses cuda:LOCAL_RANK whatever K says.
    amp: mixed-precision training (``autocast``): float16 on CUDA, bfloat16
    on a CPU. None -> on for CUDA, and on a CPU whose cores multiply
    bfloat16 matrices in hardware (``cpu_has_bf16_matmul``); off otherwise.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device) if device.split(":")[0] in ("cpu", "cuda") else None
    if dev is None:
        raise ValueError(f"device {device!r} not supported; use 'auto', 'cpu', 'cuda' or 'cuda:K'")
    if dev.type == "cuda" and (dev.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"device {device!r} requested but only {torch.cuda.device_count()} "
                         "CUDA device(s) are available; use --device cpu")
    if amp is None:
        amp = dev.type == "cuda" or cpu_has_bf16_matmul()
    amp = bool(amp)

    # torchrun sets these three; a plain `python script.py` does not.
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    if world_size <= 1:
        return Runtime(device=dev, amp=amp)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank)  # one GPU per process
        torch.cuda.set_device(dev)
    # NCCL is the fast GPU all-reduce; gloo is the one that works on CPU.
    # MASTER_ADDR / MASTER_PORT come from the environment (env:// init).
    dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return Runtime(dev, rank, world_size, local_rank, True, amp)


def cleanup_runtime(rt):
    if rt.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(rt):
    if rt.distributed:
        dist.barrier()


def all_reduce_mean(tensor, rt):
    """Mean of ``tensor`` over ranks (a new tensor; the input is not modified)."""
    if not rt.distributed:
        return tensor
    out = tensor.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / rt.world_size


# ----------------------------------------------------------------------------
# Model, AMP

def wrap_model(model, rt):
    """Move to the device; wrap in DDP, which averages gradients over ranks
    during backward(), so every rank takes the same optimiser step."""
    model = model.to(rt.device)
    if rt.distributed:
        ids = [rt.device.index] if rt.device.type == "cuda" else None
        model = DistributedDataParallel(model, device_ids=ids)
    return model


def unwrap(model):
    """The plain module inside a DDP wrapper: save its state_dict, so that
    checkpoints load without DDP's 'module.' key prefix."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def cpu_has_bf16_matmul():
    """Intel AMX: the CPU's tiles multiply bfloat16 matrices in hardware.
    Measured on the toy networks (2 cores): training steps 1.5-2x faster
    than float32. Elsewhere bfloat16 is emulated, and slower."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(probe and probe())


def autocast(rt):
    """Mixed precision for the forward pass and loss of a training step:
    float16 on CUDA, bfloat16 on a CPU (``setup_runtime``'s ``amp``).
    Evaluation stays float32."""
    if not rt.amp:
        return contextlib.nullcontext()
    return torch.autocast(rt.device.type, dtype=torch.float16 if rt.device.type == "cuda" else torch.bfloat16)


def for_training(model, rt):
    """Prepare ``model`` (in place) for a training run: NHWC ("channels
    last") convolutions, ~2x faster on CPU (oneDNN) and the tensor cores'
    layout on GPU, the maths unchanged; under DDP on GPUs, SyncBatchNorm,
    which takes BatchNorm's statistics over the whole global batch (as on
    one GPU) instead of each process's share of it."""
    model.to(memory_format=torch.channels_last)
    if rt.distributed and rt.device.type == "cuda":
        nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def make_scaler(rt):
    # float16 gradients underflow; the scaler multiplies the loss before backward
    # and undoes it before the step. bfloat16 has float32's range and needs no
    # scaling. Disabled, it is a transparent pass-through.
    return torch.amp.GradScaler("cuda", enabled=rt.amp and rt.device.type == "cuda")


def adam(params, lr):
    """``torch.optim.Adam``, with the fused kernel where this torch has one
    for the parameters' device (CPU: torch >= 2.4): the same update in one
    pass over the parameters instead of several (measured: 2.6 ms instead of
    5.4 ms a step for paper 2's 1.2 M-parameter toy network on a CPU)."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError):   # no fused kernel here: the plain one
        return torch.optim.Adam(params, lr=lr)


def geometric_decay(optimizer, lr, lr_end, epochs):
    """The learning rate "progressively decreasing" from ``lr`` (the
    optimiser's) at the first epoch to ``lr_end`` at the last, geometrically:
    call ``step()`` once after every epoch."""
    n = max(epochs - 1, 1)
    ratio = lr_end / lr
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: ratio ** (min(e, n) / n))


# ----------------------------------------------------------------------------
# Data

def _mix_seed(*ints):
    """One 63-bit seed from several ints, well mixed (seed, epoch, rank)."""
    return int(np.random.SeedSequence(list(ints)).generate_state(2, np.uint64)[0] >> np.uint64(1))


def sample_rng(seed, epoch, index):
    """A numpy Generator for one sample's augmentation. Datasets that draw from it
    get augmentations that depend only on (seed, epoch, index), whatever the
    number of workers or ranks."""
    return np.random.default_rng([seed, epoch, index])


def make_loader(dataset, batch_size, shuffle, rt, num_workers=0, seed=0, drop_last=False):
    """DataLoader over this rank's share of ``dataset``.

    batch_size is the GLOBAL batch (the paper's number): each rank loads
    batch_size // world_size, and DDP's gradient averaging makes the step equal
    to one step on the whole batch. The order is a permutation derived from
    (seed, epoch) only (call set_epoch before each epoch), so a resume needs no
    sampler state. DistributedSampler is used even for one process: one code
    path. Without drop_last it pads ranks to equal length by repeating samples,
    so evaluate in one process (or drop the duplicates).
    """
    if batch_size % rt.world_size:
        raise ValueError(f"global batch {batch_size} is not divisible by {rt.world_size} ranks")
    sampler = DistributedSampler(dataset, num_replicas=rt.world_size, rank=rt.rank,
                                 shuffle=shuffle, seed=seed, drop_last=drop_last)
    # Each worker's torch, numpy and `random` RNGs are seeded by torch with
    # base_seed + worker_id (distinct per worker). base_seed is drawn from this
    # generator, which set_epoch reseeds from (seed, epoch, rank): worker
    # augmentation is reproducible and the global torch RNG is not consumed.
    generator = torch.Generator().manual_seed(_mix_seed(seed, 0, rt.rank))
    return DataLoader(dataset, batch_size=batch_size // rt.world_size, sampler=sampler,
                      num_workers=num_workers, pin_memory=rt.device.type == "cuda",
                      drop_last=drop_last, generator=generator)


class EpochDataset(torch.utils.data.Dataset):
    """Base of a map-style dataset over ``self.source`` whose random
    augmentation depends on the epoch: ``set_epoch`` (below) tells it, and
    ``sample_rng(seed, self.epoch, index)`` draws from it."""
    epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return len(self.source)


def training_loader(dataset, batch_size, rt, model, seed=0, most_workers=4):
    """Shuffled training batches of ``dataset`` (``make_loader``) that never
    hand BatchNorm one image: the last incomplete batch is dropped (the order
    changes every epoch: nobody is always left out), and a batch that would
    still give one process's BatchNorm a single image is refused in one line.
    SyncBatchNorm (DDP on GPUs) pools its statistics over all processes;
    plain BatchNorm sees one process's share of the batch."""
    from .cli import UsageError               # cli imports this module: imported when first needed
    share = 1 if rt.distributed and rt.device.type == "cuda" else rt.world_size
    smallest = min(batch_size, len(dataset)) // share
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()) and smallest < 2:
        raise UsageError(f"BatchNorm needs 2 or more images per batch; got {smallest} (--batch-size "
                         f"{batch_size}, {len(dataset)} training people, {rt.world_size} process(es))")
    return make_loader(dataset, batch_size, True, rt, seed=seed, num_workers=loader_workers(rt, most_workers),
                       drop_last=len(dataset) >= batch_size)


def loader_workers(rt, most=4):
    """Data-loading processes: on a GPU machine decoding must keep up with
    the GPU; on a CPU, extra processes would compete with the training maths
    for the same cores (measured: slower on 2 cores)."""
    return min(most, os.cpu_count() or 1) if rt.device.type == "cuda" else 0


def set_epoch(loader, epoch):
    """Call at the start of every epoch. DistributedSampler shuffles with
    seed + epoch: without this call every epoch would repeat epoch 0's order.
    Also reseeds worker RNGs and tells the dataset (if it has set_epoch)."""
    sampler = loader.sampler
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
    if isinstance(sampler, DistributedSampler) and loader.generator is not None:
        loader.generator.manual_seed(_mix_seed(sampler.seed, epoch, sampler.rank))
    if hasattr(loader.dataset, "set_epoch"):
        loader.dataset.set_epoch(epoch)


# ----------------------------------------------------------------------------
# Checkpoints

def save_checkpoint(path, state):
    """Write ``state`` (a dict) to ``path`` atomically; a no-op on ranks != 0.

    Ranks hold identical weights, so one writer suffices (several would clobber
    each other). The write is atomic (``common.atomic``): a run stopped by a
    crash or a NaN keeps its last good checkpoint.
    """
    if dist.is_initialized() and dist.get_rank() != 0:
        return
    with atomic_write(path) as f:
        torch.save({**state, "_format": CHECKPOINT_FORMAT}, f)


def _is_zip_start(path):
    """Whether ``path`` begins as torch.save's zip archive does."""
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def load_checkpoint(path, map_location="cpu"):
    """The dict given to save_checkpoint. weights_only=True: loading a file
    cannot run code, so a checkpoint holds tensors and plain Python only."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # pickle/zip/EOF errors: the file is not ours
        # A file cut short (an interrupted copy) fails in the zip reader.
        what = "truncated or corrupt" if os.path.getsize(path) and _is_zip_start(path) else "not a checkpoint"
        raise ValueError(f"{path}: {what}: cannot be read as a checkpoint of this project "
                         f"({type(e).__name__})") from None
    if not isinstance(state, dict) or state.pop("_format", None) != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a checkpoint written by this project")
    return state


def error_line(error):
    """An exception as one short line: its type and the first line of its text."""
    return f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"


def load_model(path, build, what):
    """``(config, model)`` from a checkpoint whose ``extra["config"]`` holds the
    run's config as a dict: ``build(that dict) -> (config, untrained model)``,
    then the saved weights. A file that is not such a checkpoint (the other
    script's, another version's) is one line saying it is not ``what``."""
    ckpt = load_checkpoint(path)
    try:
        cfg, model = build(ckpt["extra"]["config"])
        model.load_state_dict(ckpt["model"])
    except (KeyError, TypeError, RuntimeError) as e:
        raise ValueError(f"{path}: not a {what} checkpoint ({error_line(e)})") from None
    return cfg, model


def resume_weights(path, model):
    """``--resume PATH``: the checkpoint, its weights loaded into ``model``;
    one line if they do not fit this run's network."""
    ckpt = load_checkpoint(path)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise ValueError(f"--resume {path}: does not fit this run's network ({error_line(e)})") from None
    return ckpt


def _rng_state():
    np_state = np.random.get_state()  # ('MT19937', uint32[624], pos, has_gauss, gauss)
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state):
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def train_state(model, optimizer, scheduler, scaler, epoch, step, extra=None):
    """Everything a resume needs to continue exactly as if never stopped.

    epoch: the epoch to start from on resume (= epochs completed); step: the
    global step count. extra: your own plain data (args, best metric). Data
    order is a function of (seed, epoch), so no sampler state is stored.
    Under DDP the RNG states are rank 0's and every rank gets them back: exact
    when all ranks were seeded alike (the usual setup).
    """
    return {"model": unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "scaler": scaler.state_dict() if scaler is not None else None,
            "epoch": epoch, "step": step, "extra": extra or {}, "rng": _rng_state()}


def restore_train_state(ckpt, model, optimizer, scheduler=None, scaler=None):
    """Load a train_state() dict into fresh objects; returns (epoch, step, extra)."""
    unwrap(model).load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    if scheduler is not None and ckpt["scheduler"] is not None:
        scheduler.load_state_dict(ckpt["scheduler"])
    if scaler is not None and ckpt["scaler"]:  # {} when saved with AMP off
        scaler.load_state_dict(ckpt["scaler"])
    _set_rng_state(ckpt["rng"])
    return ckpt["epoch"], ckpt["step"], ckpt["extra"]


# ----------------------------------------------------------------------------
# Progress and sanity

class NonFiniteLoss(RuntimeError):
    pass


def check_finite(loss, where):
    """Raise NonFiniteLoss if ``loss`` holds NaN or inf. Costs one GPU sync."""
    loss = torch.as_tensor(loss)
    if not torch.isfinite(loss).all():
        value = loss.detach().float().mean().item()
        raise NonFiniteLoss(f"non-finite loss ({value}) at {where}; "
                            "stopping (the last checkpoint on disk is untouched)")


def optimizer_step(loss, optimizer, scaler, where):
    """One training step: stop on a non-finite loss (naming ``where``), then
    backward through the AMP scaler (a pass-through without AMP) and step."""
    check_finite(loss, where)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


class Progress:
    """One line per ``log_every`` steps and at the end of each epoch (rank 0):

        detector epoch 2/10 step 50/400 loss 0.0123  412 img/s  ETA 13:07

    loss is the mean over the steps since the last line; img/s is measured over
    the same window (all ranks together); ETA is for the rest of the stage.
    """

    def __init__(self, stage, num_epochs, steps_per_epoch, rt=None, log_every=50,
                 print_fn=None, clock=time.perf_counter):
        self.stage, self.num_epochs, self.steps = stage, num_epochs, steps_per_epoch
        self.world = rt.world_size if rt is not None else 1
        self.quiet = rt is not None and not rt.is_main
        self.log_every, self.clock = log_every, clock
        self.print = print_fn or (lambda s: print(s, flush=True))
        self.start_epoch(0)

    def start_epoch(self, epoch):
        self.epoch, self.step = epoch, 0
        self._loss, self._n, self._images, self._t0 = 0.0, 0, 0, self.clock()

    def update(self, loss, images):
        """Record one step: its loss and this rank's number of images."""
        self.step += 1
        self._loss += float(loss)
        self._n, self._images = self._n + 1, self._images + images
        if self.step % self.log_every == 0 or self.step == self.steps:
            self._emit()

    def _emit(self):
        now = self.clock()
        dt = max(now - self._t0, 1e-9)
        left = (self.num_epochs - self.epoch - 1) * self.steps + (self.steps - self.step)
        eta = int(round(left * dt / self._n))
        if not self.quiet:
            self.print(f"{self.stage} epoch {self.epoch + 1}/{self.num_epochs} "
                       f"step {self.step}/{self.steps} loss {self._loss / self._n:.4f}  "
                       f"{self._images * self.world / dt:.0f} img/s  "
                       f"ETA {eta // 60:02d}:{eta % 60:02d}")
        self._loss, self._n, self._images, self._t0 = 0.0, 0, 0, now


# ----------------------------------------------------------------------------
# The epoch loop

def train_steps(loader, step_loss, optimizer, scaler, progress, rt, where):
    """One pass over ``loader``: each batch (a dict with "image" and "broken",
    the samples whose file could not be read) moved to the device, its loss
    ``step_loss(batch)`` (forward and loss, under ``autocast`` where the
    caller wants it), one optimiser step. Returns (mean loss, broken samples)."""
    total, n, skipped = 0.0, 0, 0
    for step, batch in enumerate(loader):
        skipped += int(batch["broken"].sum())
        batch = {k: v.to(rt.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
        loss = step_loss(batch)
        optimizer_step(loss, optimizer, scaler, f"{where} step {step + 1}")
        total, n = total + loss.item(), n + 1
        progress.update(loss.item(), batch["image"].shape[0])
    return total / max(n, 1), skipped


def fit(model, loader, step_loss, optimizer, scheduler, scaler, rt, *, epochs, out_dir, validate, record,
        start=0, offset=0, name="train", log_every=50, frozen=(), best=-float("inf")):
    """The epoch loop of both scripts' ``train``; what is a paper's own is
    given: ``step_loss`` (batch -> loss), ``frozen`` (modules that stay in
    eval mode: fixed BatchNorm statistics), ``record`` and ``validate``.

    Epochs ``start .. epochs - 1``, each: a new data order and augmentation
    (``set_epoch(offset + epoch)``: ``offset`` counts the epochs of earlier
    stages, so that no stage replays another's crops), the steps, one
    ``scheduler.step()``, ``record(epoch, mean loss, seconds)`` on every
    process; then on the main one ``validate(epoch) -> (score, extra)``,
    ``last.pt`` (atomically) and, when ``score`` beats ``best``, ``best.pt``,
    both holding ``extra``. Returns the best score."""
    from .cli import note_checkpoint          # cli imports this module: imported when first needed
    progress = Progress(name, epochs, len(loader), rt, log_every=log_every)
    for epoch in range(start, epochs):
        set_epoch(loader, offset + epoch)
        progress.start_epoch(epoch)
        t0 = time.time()
        model.train()
        for m in frozen:
            m.eval()
        loss, skipped = train_steps(loader, step_loss, optimizer, scaler, progress, rt, f"{name} epoch {epoch + 1}")
        scheduler.step()
        if skipped:
            print(f"  {name} epoch {epoch + 1}: skipped {skipped} unreadable image(s)", flush=True)
        record(epoch, loss, time.time() - t0)
        if rt.is_main:
            score, extra = validate(epoch)
            state = train_state(model, optimizer, scheduler, scaler, epoch + 1, 0, extra)
            save_checkpoint(out_dir / "last.pt", state)
            if score > best:
                best = score
                save_checkpoint(out_dir / "best.pt", state)
            # Only now is the epoch complete on disk: a Ctrl-C from here on
            # resumes from last.pt with best.pt already written.
            note_checkpoint(out_dir / "last.pt")      # what a Ctrl-C offers to --resume
        barrier(rt)
    return best
