"""What the box head (paper 2's §V future work, ``--box-weight``) costs the toy
run: a training step with and without it, the per-epoch threshold
calibration, and the flip-tested forward pass of one validation scene.

    python tests/benchmarks/bench_box_head.py

The same weights with and without the head, timed interleaved step by step
(so that a machine that slows down slows both alike), the toy's settings
(``toy_config``: batch 4, 192 px, bfloat16 autocast where the CPU has AMX,
as ``harness.setup_runtime`` chooses). Medians. Run it alone: two PyTorch
jobs on two cores stall each other.
"""
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import bottom_up_bbox as bub  # noqa: E402
from common import harness  # noqa: E402
from common.scenes import TrainScenes  # noqa: E402
from common.toy import ToyScenes  # noqa: E402
import machine  # noqa: E402  (tests/benchmarks/machine.py: sys.path[0] is this folder)


def main(steps=40, scenes=40):
    print(f"machine: {machine.speed_line()}", flush=True)
    rt = harness.setup_runtime("cpu")
    sk = bub.Skeleton("toy")
    cfg = replace(bub.toy_config(), box_weight=1.0)
    torch.manual_seed(0)
    model = bub.PoseNetwork(cfg, sk)
    harness.for_training(model, rt)
    head = model.box_head
    opt = torch.optim.Adam(model.parameters(), cfg.lr)
    source = ToyScenes(cfg.seed, 200, cfg.input_size, sk)
    data = TrainScenes(source, cfg, sk, model.stride, bub.make_targets)
    batches = [torch.utils.data.default_collate([data[4 * b + k] for k in range(cfg.batch_size)]) for b in range(8)]

    def step(batch, with_head):                                  # one step of bub.train
        model.box_head = head if with_head else None
        loss = bub.batch_loss(model, batch, cfg, rt, with_head)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    times = {True: [], False: []}
    for i in range(steps + 4):
        for with_head in (True, False):
            t = time.perf_counter()
            step(batches[i % len(batches)], with_head)
            if i >= 4:                                           # the first steps warm up
                times[with_head].append(time.perf_counter() - t)
    model.box_head = head
    train_with, train_without = (1000 * float(np.median(times[k])) for k in (True, False))
    t = time.perf_counter()
    bub.calibrate_box_threshold(model, source, cfg, rt.device)
    calibration = time.perf_counter() - t
    model.eval()
    images = [source.load(i) for i in range(scenes)]
    fwd = {True: [], False: []}
    for scene in images + images:
        for with_head in (True, False):
            model.box_head = head if with_head else None
            t = time.perf_counter()
            model.infer(scene.image, scene.size, cfg, rt.device)
            fwd[with_head].append(time.perf_counter() - t)
    model.box_head = head
    fwd_with, fwd_without = (1000 * float(np.median(fwd[k])) for k in (True, False))
    n_steps = cfg.epochs * (2000 // cfg.batch_size)              # the default run: 2000 scenes, 9 epochs
    extra = n_steps * (train_with - train_without) / 1000 + cfg.epochs * calibration
    print(f"training step (batch {cfg.batch_size}, {cfg.input_size} px): {train_with:.1f} ms with the head, "
          f"{train_without:.1f} ms without (+{100 * (train_with / train_without - 1):.1f} %)")
    print(f"threshold calibration ({bub.CALIBRATION_SCENES} training scenes, after each epoch): {calibration:.1f} s")
    print(f"forward, one 192 px scene with the flip test: {fwd_with:.1f} ms with the head, {fwd_without:.1f} ms "
          f"without (+{100 * (fwd_with / fwd_without - 1):.1f} %)")
    print(f"the head's cost in the default run ({n_steps} steps, {cfg.epochs} calibrations): about {extra:.0f} s "
          f"here ({machine.at_reference(extra)})")


if __name__ == "__main__":
    main()
