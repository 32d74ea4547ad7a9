"""CPU time per image of paper 2 with Cao et al.'s released COCO network
(``--cmu-weights``, issue 12), measured without the real file: fake weights
with its exact names and shapes (the time of the network does not depend on
their values).

    python tests/benchmarks/bench_bub_cmu.py

On one real COCO photo (``../shared/real_samples/coco/000000197388.jpg``,
640 x 392, 5 people), at the default test size (the height at 368 px, as
Cao et al.: 601 x 368 at scale 1.0), median of 3 runs after one warm-up:

* network: ``CaoNetwork.infer`` (their preprocessing, the 6-stage VGG network,
  resampling, the mapping onto our tree) at the paper's scales 0.7/1/1.3,
  and at scale 1 alone;
* parsing: candidates, Eq. (5), the box-free parse of [3] (the demo's
  fallback boxes) and Algorithm 1 + pose NMS + completion in those boxes, on
  the ground-truth maps and fields of the photo at stride 8 -- the parse
  depends on the number of peaks, and random weights give noise maps with
  hundreds of peaks per joint that no trained network outputs;
* the whole ``--demo`` command (Python start, reading the 209 MB file,
  network, parse, figure, JSON), with the fake weights: its parse runs on
  noise maps, so this is an upper bound.
"""
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import bottom_up_bbox as bub  # noqa: E402
import machine  # noqa: E402  (tests/benchmarks/machine.py: sys.path[0] is this folder)
from common import coco_aic, openpose  # noqa: E402
from common.bub_demo import person_boxes  # noqa: E402
from common.scenes import RecordScenes  # noqa: E402
from common.transforms import open_image  # noqa: E402

REAL = ROOT.parent / "shared" / "real_samples" / "coco"
PHOTO = "000000197388.jpg"                  # 5 annotated people
RUNS = 3


def fake_state(model):
    """Random He-scaled weights under Cao et al.'s names (``cao_name_map``),
    in their layout: what ``body_pose_model.pth`` holds, values aside."""
    g = torch.Generator().manual_seed(0)
    own = model.state_dict()
    state = {}
    for ours, theirs in openpose.cao_name_map(model).items():
        shape = own[ours].shape
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        state[theirs] = torch.randn(shape, generator=g) * ((2.0 / fan_in) ** 0.5 if len(shape) > 1 else 0.05)
    return state


def median_time(fn):
    fn()                                                   # warm-up
    times = []
    for _ in range(RUNS):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[RUNS // 2]


def main():
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"{torch.get_num_threads()} torch threads; load average {os.getloadavg()[0]:.2f}")
    print(f"machine: {machine.speed_line()}", flush=True)
    model = bub.CaoNetwork()
    state = fake_state(model)
    model.load_state_dict(openpose.cao_state_dict(model, state), strict=True)
    model = model.to(memory_format=torch.channels_last).eval()
    cfg, sk = bub.cao_config(), bub.Skeleton("coco")
    image, _ = open_image(REAL / PHOTO)

    for scales in ((0.7, 1.0, 1.3), (1.0,)):
        t = median_time(lambda: model.infer(image, image.size, cfg, "cpu", scales))
        print(f"network, scales {scales}: {t:.2f} s per image", flush=True)

    src = RecordScenes(coco_aic.read_coco(REAL / "test_coco.json", REAL), sk)
    i = next(k for k in range(len(src)) if Path(src.records[k].image).name == PHOTO)
    scene = src.load(i)
    pred = model.infer(image, image.size, cfg, "cpu", (1.0,))      # the grid of the default test size
    h, w = pred.maps.shape[1:]
    W, H = scene.size
    kp = scene.keypoints.copy()
    kp[..., :2] = (kp[..., :2] + 0.5) * np.array(pred.base) / np.array([W, H]) - 0.5   # image px -> input px
    maps = bub.confidence_maps(kp, (h, w), 8, cfg.sigma)
    fields, _ = bub.direction_fields(kp, sk.limbs, (h, w), 8, cfg.delta)
    truth = bub.Prediction(maps, fields, 8, (W, H), pred.base)

    def parse():
        inputs = bub.candidates_and_scores(truth.maps, truth.fields, sk, cfg)
        greedy = bub.parse_variants(truth, np.zeros((0, 4)), sk, cfg, ("greedy",), inputs)["greedy"]
        boxes = bub.extend_boxes(person_boxes(greedy.keypoints), 0.1)
        return len(bub.parse_variants(truth, boxes, sk, cfg, ("full",), inputs)["full"].keypoints)

    t = median_time(parse)
    print(f"parsing ({parse()} people, ground-truth maps at stride 8): {1e3 * t:.1f} ms per image", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / openpose.CAO_FILE
        torch.save(state, weights)

        def demo():
            subprocess.run([sys.executable, str(ROOT / "bottom_up_bbox.py"), "--demo", str(REAL / PHOTO),
                            "--cmu-weights", str(weights), "--out", tmp], cwd=ROOT, check=True,
                           capture_output=True)

        t = median_time(demo)
    print(f"the whole --demo command, fake weights (parse on noise maps): {t:.1f} s", flush=True)


if __name__ == "__main__":
    main()
