"""Network forward time at 848 x 480 (paper 2, §IV-B3: 63 ms on a GTX 1080 Ti
for the 3-stage ResNet + 2x network; Table III lists all five variants).

    python tests/benchmarks/bench_bub_forward.py            # CPU (and CUDA if present)

Random weights (the time does not depend on them), batch 1, float32 on CPU;
on CUDA float32 and AMP. Median of 3 runs (CPU) or 10 (CUDA) after 2 warm-up runs.
"""
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import bottom_up_bbox as bub  # noqa: E402
import machine  # noqa: E402  (tests/benchmarks/machine.py: sys.path[0] is this folder)

VARIANTS = [(6, "vgg", False), (6, "resnet", False), (3, "resnet", False), (3, "resnet", True), (6, "resnet", True)]


@torch.no_grad()
def time_forward(net, device, amp=False, runs=None):
    runs = runs or (10 if device.type == "cuda" else 3)
    x = torch.randn(1, 3, 480, 848, device=device).contiguous(memory_format=torch.channels_last)
    times = []
    for i in range(runs + 2):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
            net(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return 1e3 * sorted(times[2:])[runs // 2]


def main():
    sk = bub.Skeleton("aic")
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} CPU threads"
          + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""))
    print(f"machine: {machine.speed_line()}", flush=True)
    for stages, backbone, up in VARIANTS:
        cfg = bub.Config(data="aic", stages=stages, backbone=backbone, upsample=up)
        net = bub.PoseNetwork(cfg, sk).eval().to(memory_format=torch.channels_last)
        n = sum(p.numel() for p in net.parameters()) / 1e6
        name = f"{stages}-stage + {backbone}" + (" + 2x" if up else "")
        row = f"{name:22s} {n:6.2f} M"
        for dev in devices:
            net.to(dev)
            row += f"  {dev.type} {time_forward(net, dev):8.1f} ms"
            if dev.type == "cuda":
                row += f"  cuda+amp {time_forward(net, dev, amp=True):6.1f} ms"
        print(row, flush=True)
        if os.environ.get("BENCH_QUICK"):
            break


if __name__ == "__main__":
    main()
