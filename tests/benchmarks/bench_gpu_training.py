"""Training throughput of the full-size residual cascade (§3.2: ResNet-152
detector + hourglass regressor) at 256x256, batch 8 and 32, fp32 and AMP.

    python tests/benchmarks/bench_gpu_training.py [--steps 20]

Joint-stage steps (both networks, both losses) on random data: images/s.
Needs CUDA; on a machine without it, it says so and exits.
"""
import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import heatmap_regression as hr  # noqa: E402
import machine  # noqa: E402  (tests/benchmarks/machine.py: sys.path[0] is this folder)
from common import harness  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=20)
    args = p.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure")
        return
    torch.backends.cudnn.benchmark = True
    print(torch.cuda.get_device_name())
    print(f"machine: {machine.speed_line()}", flush=True)   # CPU figure, measured before any timing
    for amp in (False, True):
        rt = harness.Runtime(device=torch.device("cuda"), amp=amp)
        for batch in (8, 32):
            cfg = hr.paper_config("residual")
            model = hr.Cascade(cfg).cuda().to(memory_format=torch.channels_last).train()
            opt = torch.optim.RMSprop(model.parameters(), lr=1e-5)
            scaler = harness.make_scaler(rt)
            x = torch.randn(batch, 3, 256, 256, device="cuda").contiguous(memory_format=torch.channels_last)
            b = {"image": x, "det": (torch.rand(batch, 16, 64, 64, device="cuda") > 0.99).float(),
                 "reg": torch.rand(batch, 16, 64, 64, device="cuda"), "mask": torch.ones(batch, 16, device="cuda")}
            joint = cfg.stages[-1]
            for i in range(args.steps + 5):
                if i == 5:
                    torch.cuda.synchronize()
                    t = time.perf_counter()
                with harness.autocast(rt):
                    loss = hr.stage_loss(model, model, joint, b)
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            torch.cuda.synchronize()
            ips = batch * args.steps / (time.perf_counter() - t)
            print(f"batch {batch:3d} {'AMP ' if amp else 'fp32'}: {ips:7.1f} images/s (joint stage)")


if __name__ == "__main__":
    main()
