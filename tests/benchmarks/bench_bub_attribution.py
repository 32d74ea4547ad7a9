"""Where the toy run's AP is lost: the network's maps or its fields?

    python tests/benchmarks/bench_bub_attribution.py [runs/toy/last.pt]

On the default run's 200 validation scenes (its last.pt: the network its
tables were computed with), with ground-truth boxes, the
full parse is scored (OKS AP, the toy's CrowdPose constants) on four inputs:
the network's maps and fields; its maps with perfect fields; perfect maps
(``oracle_prediction``) with its fields; both perfect (the oracle). Then
the maps' recall: the fraction of labelled joints, visible and occluded,
with a candidate of that joint (a local maximum above the peak threshold)
within 0.1 x the person's box height.

Not timed: no machine figure needed.
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import bottom_up_bbox as bub  # noqa: E402
from common.bub_eval import score  # noqa: E402
from common.coco_eval import to_coco_results  # noqa: E402
from common.detector import gt_boxes  # noqa: E402
from common.toy import ToyScenes  # noqa: E402
from walkthrough import studies  # noqa: E402


def main(path=ROOT / "runs" / "toy" / "last.pt"):
    cfg, sk, model = bub.model_from_checkpoint(path, "cpu")
    val = ToyScenes(1, 200, cfg.input_size, sk)          # the default run's validation scenes
    inputs = ("network maps + network fields", "network maps + perfect fields",
              "perfect maps + network fields", "perfect maps + perfect fields")
    res, gts, ids = {k: [] for k in inputs}, [], []
    found, labelled = np.zeros(3), np.zeros(3)               # by v = 1, 2 (index 0 unused)
    for i in range(len(val)):
        scene, gt = val.load(i), val.ground_truth(i)
        net = model.infer(scene.image, scene.size, cfg, torch.device("cpu"), scales=(1.0,))
        ora = studies.oracle_prediction(scene, sk, cfg, net.stride)
        assert ora.maps.shape == net.maps.shape and ora.base == net.base, "map grids differ"
        preds = {inputs[0]: net, inputs[1]: bub.Prediction(net.maps, ora.fields, net.stride, net.size, net.base),
                 inputs[2]: bub.Prediction(ora.maps, net.fields, net.stride, net.size, net.base),
                 inputs[3]: ora}
        boxes = gt_boxes(gt)
        for name, pred in preds.items():
            parse = bub.parse_variants(pred, boxes, sk, cfg, ("full",))["full"]
            res[name] += to_coco_results(val.image_id(i), sk.to_dataset(parse.keypoints), parse.scores)
        gts += gt
        ids.append(val.image_id(i))
        # Recall of the network's candidates, per labelled joint.
        cand = bub.find_candidates(net.maps[:sk.J], cfg.peak_threshold)
        xy = net.to_image(cand.xy)
        for kp, box in zip(scene.keypoints, scene.boxes):
            for j in np.flatnonzero(kp[:, 2] > 0):
                v = int(kp[j, 2])
                near = np.linalg.norm(xy[cand.by_joint[j]] - kp[j, :2], axis=1) < 0.1 * box[3]
                labelled[v] += 1
                found[v] += bool(near.any())
    for name in inputs:
        print(f"{name:32s} AP {100 * score(sk, gts, res[name], ids)['AP']:.1f}")
    print(f"candidates within 0.1 x height: visible joints {100 * found[2] / labelled[2]:.0f} %, "
          f"occluded {100 * found[1] / labelled[1]:.0f} %")


if __name__ == "__main__":
    main(*sys.argv[1:])
