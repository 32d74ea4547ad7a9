"""How crowded the toy scenes of paper 2 are, beside the real COCO sample,
measured by the same code (``common.toy.scene_stats``), and what perfect
maps parse to (the oracle: ground-truth maps and fields at stride 4,
ground-truth boxes, the toy's OKS constants).

    python tests/benchmarks/bench_bub_crowding.py

Not timed: no machine figure needed.
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import bottom_up_bbox as bub  # noqa: E402
from walkthrough import studies  # noqa: E402
from common import coco_aic  # noqa: E402
from common.toy import ToyScenes, scene_stats  # noqa: E402

REAL = ROOT.parent / "shared" / "real_samples" / "coco"


def line(name, s):
    return (f"{name}: {s['people']:.2f} people per image; {100 * s['neighbour']:.0f} % of people have a "
            f"neighbour at box IoU > 0.3 ({100 * s['overlap']:.0f} % of images hold such a pair)")


def main():
    sk, cfg = bub.Skeleton("toy"), bub.toy_config()
    val = ToyScenes(1, 200, cfg.input_size, sk)          # the default run's validation scenes
    kp, boxes = zip(*[val.annotation(i)[:2] for i in range(len(val))])
    print(line("toy validation scenes (200)", scene_stats(kp, boxes)))
    print(f"  oracle parse at stride 4: AP {100 * studies.oracle_ap(val, sk, cfg, 4)['full']:.1f}")
    if (REAL / "test_coco.json").is_file():
        records = coco_aic.read_coco(REAL / "test_coco.json", REAL)
        people = [~r.iscrowd for r in records]
        s = scene_stats([r.keypoints[k] for r, k in zip(records, people)],
                        [r.boxes[k] for r, k in zip(records, people)])
        print(line(f"real COCO sample ({len(records)} images)", s))
    else:
        print(f"real COCO sample: {REAL} not found")


if __name__ == "__main__":
    main()
