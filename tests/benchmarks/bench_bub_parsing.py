"""Parsing time per frame (paper 2, §IV-B3: "the average pose parsing time
per frame is 24 ms" on an i7-7700K): candidates + Eq. (5) + Algorithm 1 +
pose NMS + completion, next to the box-free greedy parse of [3] on the same
maps, for 1, 5, 10, 20 and 40 people in an 848 x 480 frame, maps at the
network's output stride (4).

    taskset -c 0 python tests/benchmarks/bench_bub_parsing.py

Issue 10's bars for the full parse, at the reference speed of
``../shared/tools/machine_speed.py`` (the "at ref." column: our time divided
by the machine line's factor): <= 4 / 8 / 16 ms for 10 / 20 / 40 people,
and a growth from 20 to 40 people of at most 2.2x (linear in the crowd).
"Eq. 5 pairs": the candidate pairs our parse scores (those inside a common
box), of all the pairs the parse of [3] scores.

The maps are what a good network would output: the ground-truth maps and
fields of randomly posed people (``bub.random_crowd``: 120-330 px tall),
plus noise (std 0.02) so that the NMS sees a realistic number of weak
peaks. One thread (torch and numpy), median of 30 frames.
"""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import bottom_up_bbox as bub  # noqa: E402
import machine  # noqa: E402  (tests/benchmarks/machine.py: sys.path[0] is this folder)

W, H, STRIDE = 848, 480, 4


def main():
    torch.set_num_threads(1)
    sk, cfg = bub.Skeleton("aic"), bub.Config(data="aic")
    rng = np.random.default_rng(0)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, one thread; "
          f"maps {W // STRIDE}x{H // STRIDE} (stride {STRIDE}) for an {W}x{H} frame")
    print(f"machine: {machine.speed_line()}", flush=True)
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cores) != 1:
        print(f"warning: not pinned to one core (cores {cores}); run it under taskset -c 0")
    f = machine.speed_ratio() or 1.0
    print(f"{'people':>6} {'ours (ms)':>10} {'at ref.':>8} {'greedy [3] (ms)':>16} {'poses':>6} {'Eq. 5 pairs':>16}")
    median = {}
    for n in (1, 5, 10, 20, 40):
        ours, greedy, found, pairs = [], [], [], []
        for _ in range(30):
            pred, boxes = bub.random_crowd(rng, n, sk, cfg, (W, H), STRIDE)
            t = time.perf_counter()
            kp = bub.parse_image(pred.maps, pred.fields, boxes, sk, cfg).keypoints
            ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            bub.parse_greedy(pred.maps, pred.fields, sk, cfg)
            greedy.append(time.perf_counter() - t)
            found.append(len(kp))
            cand, _ = bub.candidates_and_scores(pred.maps, pred.fields, sk, cfg)          # untimed: the count
            in_box = bub.pairs_in_boxes(cand, sk.limbs, bub.candidates_in_boxes(cand, boxes))
            pairs.append((sum(m.sum() for m in in_box), sum(m.size for m in in_box)))
        median[n] = 1e3 * np.median(ours)
        print(f"{n:>6} {median[n]:>10.2f} {median[n] / f:>8.2f} {1e3 * np.median(greedy):>16.2f} "
              f"{np.mean(found):>6.1f} {np.mean(pairs, 0)[0]:>7.0f} of {np.mean(pairs, 0)[1]:>5.0f}", flush=True)
    print(f"growth from 20 to 40 people: {median[40] / median[20]:.2f}x (ours)")


if __name__ == "__main__":
    main()
