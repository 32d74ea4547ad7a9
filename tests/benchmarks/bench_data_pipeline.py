"""Data pipeline throughput on one core: JPEG file -> augmented 256x256 crop
-> both targets of §3 (detection disks, regression Gaussians) at stride 4.

    python tests/benchmarks/bench_data_pipeline.py [--n 400]

Uses MPII-sized photos (1280x720 JPEGs written to a temporary folder, people
of MPII-like scale ~3-4) and, when present, the real MPII samples in
../shared/real_samples/mpii. One process, one torch thread: per-core speed.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import heatmap_regression as hr  # noqa: E402
import machine  # noqa: E402  (tests/benchmarks/machine.py: sys.path[0] is this folder)
from common.datasets import PersonRecord, read_mpii_json  # noqa: E402
from common.sources import RecordSource  # noqa: E402


def throughput(records, n):
    cfg = hr.paper_config("residual")                   # 256 px, random augmentation
    data = hr.PoseData(RecordSource(records, mpii_shift=True), cfg, stride=4, train=True)
    data[0]
    t = time.perf_counter()
    for i in range(n):
        data[i % len(data)]
    return n / (time.perf_counter() - t)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=400)
    args = p.parse_args()
    print(f"machine: {machine.speed_line()}", flush=True)
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as d:
        records = []
        for i in range(20):
            path = Path(d) / f"{i}.jpg"
            img = (rng.random((720, 1280, 3)) * 40 + np.linspace(0, 200, 1280)[None, :, None]).astype(np.uint8)
            Image.fromarray(img).save(path, quality=90)
            kp = np.concatenate([rng.uniform([500, 150], [800, 650], (16, 2)), np.full((16, 1), 2)], 1)
            records.append(PersonRecord(str(path), kp.astype(np.float32),
                                        np.array([640, 400], np.float32), float(rng.uniform(2.5, 4.0))))
        print(f"1280x720 JPEGs: {throughput(records, args.n):.0f} samples/s on one core")
    real = Path(__file__).resolve().parents[3] / "shared" / "real_samples" / "mpii"
    if (real / "test_mpii.json").is_file():
        recs = read_mpii_json(real / "test_mpii.json", real)
        print(f"real MPII samples: {throughput(recs, args.n):.0f} samples/s on one core")


if __name__ == "__main__":
    main()
