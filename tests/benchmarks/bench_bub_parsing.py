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

Two more tables say why the time grows as it does. "Where the time goes":
each step of our parse (timed by wrapping the module's functions) beside
the work it does per frame -- candidates, in-box pairs, Eq. (5) samples,
connections Algorithm 1 walks in its boxes (a connection counts once per
box that holds it), poses it assembles -- and the time per unit of work.
"Constant density": 20 people in 848x480 against 40 people of the same
sizes in 1696x480, so that a box holds as many people in both.
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
from common.connections import connection_scores  # noqa: E402
from walkthrough import studies  # noqa: E402
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
            pred, boxes = studies.random_crowd(rng, n, sk, cfg, (W, H), STRIDE)
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
    breakdown(sk, cfg)
    constant_density(sk, cfg)


# The steps of ``parse_image``: the module functions each one calls (Eq. 5
# includes finding the in-box pairs it scores).
STEPS = {"candidates": ("find_candidates",),
         "Eq. 5": ("candidates_in_boxes", "pairs_in_boxes", "connection_scores"),
         "Alg. 1": ("rank_connections", "parse_box"),
         "Eq. 9+NMS": ("pose_confidences", "pose_nms"),
         "completion": ("complete_poses",)}


def timed_steps():
    """Wrap the functions of ``STEPS`` in ``bub`` (``parse_image`` looks them
    up at call time) so that each call adds its time to its step's clock.
    Returns the clocks and a function that restores the originals."""
    clock, saved = dict.fromkeys(STEPS, 0.0), {}
    for step, names in STEPS.items():
        for name in names:
            saved[name] = fn = getattr(bub, name)

            def timed(*args, _fn=fn, _step=step, **kwargs):
                t = time.perf_counter()
                try:
                    return _fn(*args, **kwargs)
                finally:
                    clock[_step] += time.perf_counter() - t
            setattr(bub, name, timed)
    return clock, lambda: [setattr(bub, name, fn) for name, fn in saved.items()]


def work(pred, boxes, parse, sk, cfg):
    """What the parse of one frame had to do (untimed): candidates, in-box
    pairs, Eq. (5) samples, connections walked in the boxes, poses."""
    cand, conn = bub.candidates_and_scores(pred.maps, pred.fields, sk, cfg)
    inside = bub.candidates_in_boxes(cand, boxes)
    connection_scores(pred.fields, cand, sk.limbs, bub.pairs_in_boxes(cand, sk.limbs, inside), conn)
    scored = [~np.isnan(s) for s in conn.score]
    samples = sum((np.ceil(n[m]) + 1).sum() for n, m in zip(conn.length, scored))
    ranked = bub.rank_connections(conn.score, cand, sk.limbs, cfg.link_threshold)
    walked = (inside[:, ranked.start] & inside[:, ranked.end]).sum()
    return (len(cand.score), sum(m.sum() for m in scored), samples, walked,
            len(parse.poses) + len(parse.suppressed))


def breakdown(sk, cfg, sizes=(10, 20, 40), frames=30):
    rng = np.random.default_rng(1)
    print(f"\nwhere the time goes: ms per frame (median of {frames}) and the work done (mean per frame)")
    cols = list(STEPS) + ["other"]
    units = ["cands", "pairs", "samples", "in-box conn.", "poses"]
    print(f"{'people':>6} " + " ".join(f"{c:>10}" for c in cols) + " | " + " ".join(f"{u:>12}" for u in units))
    rows = {}
    for n in sizes:
        times, done = [], []
        for _ in range(frames):
            pred, boxes = studies.random_crowd(rng, n, sk, cfg, (W, H), STRIDE)
            clock, restore = timed_steps()
            t = time.perf_counter()
            try:
                parse = bub.parse_image(pred.maps, pred.fields, boxes, sk, cfg)
            finally:
                total = time.perf_counter() - t
                restore()
            times.append([clock[c] for c in STEPS] + [total - sum(clock.values())])
            done.append(work(pred, boxes, parse, sk, cfg))
        rows[n] = 1e3 * np.median(times, 0), np.mean(done, 0)
        print(f"{n:>6} " + " ".join(f"{v:>10.2f}" for v in rows[n][0]) + " | "
              + " ".join(f"{v:>12.0f}" for v in rows[n][1]), flush=True)
    a, b = rows[20], rows[40]
    print("growth 20 -> 40 " + " ".join(f"{c} {y / x:.1f}x" for c, x, y in zip(cols, a[0], b[0]))
          + " | " + " ".join(f"{u} {y / x:.1f}x" for u, x, y in zip(units, a[1], b[1])))
    for n in sizes:   # time per unit of work: constant when a step is linear in its work
        ms, w = rows[n]
        print(f"{n:>6} people: Eq. 5 {1e6 * ms[1] / w[2]:.1f} ns per sample, Algorithm 1 "
              f"{1e6 * ms[2] / w[3]:.0f} ns per in-box connection, Eq. 9 + NMS + completion "
              f"{1e3 * (ms[3] + ms[4]) / w[4]:.2f} us per pose")


def constant_density(sk, cfg, frames=30):
    rng = np.random.default_rng(2)
    median = {}
    for n, width in ((20, W), (40, 2 * W)):
        ts = []
        for _ in range(frames):
            pred, boxes = studies.random_crowd(rng, n, sk, cfg, (width, H), STRIDE, scale=1.0)
            t = time.perf_counter()
            bub.parse_image(pred.maps, pred.fields, boxes, sk, cfg)
            ts.append(time.perf_counter() - t)
        median[n] = 1e3 * np.median(ts)
    print(f"\nconstant density (people 120-330 px tall): 20 people in {W}x{H} {median[20]:.2f} ms, "
          f"40 in {2 * W}x{H} {median[40]:.2f} ms: growth {median[40] / median[20]:.2f}x")


if __name__ == "__main__":
    main()
