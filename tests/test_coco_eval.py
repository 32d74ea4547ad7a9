"""OKS metrics: COCO AP against pycocotools, the AI Challenger score and OKS by hand."""
import contextlib
import copy
import io
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from common.coco_eval import (aic_score, coco_keypoint_ap, format_ap_table, oks,
                              to_coco_results, write_json)
from common.skeleton import AIC_SIGMAS

STATS = ("AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL")
REAL_COCO = Path(__file__).parents[1] / ".." / "shared" / "real_samples" / "coco"
J = 17


def pycocotools_stats(images, gt_annotations, results):
    """The ten ``COCOeval(iouType='keypoints').stats``, named, from the official code."""
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": copy.deepcopy(images), "annotations": copy.deepcopy(gt_annotations),
                      "categories": [{"id": 1, "name": "person"}]}
        gt.createIndex()
        dt = gt.loadRes(copy.deepcopy(results))  # loadRes adds area/bbox/id in place
        ev = COCOeval(gt, dt, iouType="keypoints")
        ev.params.imgIds = sorted(img["id"] for img in images)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return dict(zip(STATS, ev.stats))


def assert_stats_equal(ours, theirs):
    for name in STATS:
        assert ours[name] == pytest.approx(theirs[name], abs=1e-6), name


def noisy_copy(rng, kp, box, area, scale):
    """A prediction near ``kp`` (J, 3): labelled joints moved by ``scale * sqrt(area)``
    px of Gaussian noise, unlabelled ones placed anywhere in the box."""
    x, y, w, h = box
    xy = np.where(kp[:, 2:] > 0, kp[:, :2],
                  np.stack([x + rng.uniform(0, w, J), y + rng.uniform(0, h, J)], -1))
    xy = xy + rng.normal(0, scale * math.sqrt(area), (J, 2))
    return np.concatenate([xy, np.ones((J, 1))], -1)


def synthetic_coco(seed, with_bbox=False):
    """Random people and predictions covering every branch of COCOeval.

    Images 1-2 have no people but do have detections; image 3 has 25 detections
    (more than maxDets = 20); people are small, medium and large, some are crowds,
    some have no labelled joint; scores are rounded to 0.1 so that many tie.
    """
    rng = np.random.default_rng(seed)
    images, gts, preds = [], [], []
    for image_id in range(1, 13):
        images.append({"id": image_id, "width": 640, "height": 480})
        n_people = 0 if image_id <= 2 else 6 if image_id == 3 else rng.integers(1, 6)
        poses = []
        for _ in range(n_people):
            h = rng.choice([20.0, 60.0, 150.0]) * rng.uniform(0.7, 1.4)  # small / medium / large
            w = h * rng.uniform(0.4, 1.0)
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            kp = np.stack([x + rng.uniform(0, w, J), y + rng.uniform(0, h, J),
                           rng.choice([0, 1, 2], J, p=[0.3, 0.2, 0.5])], -1)
            if rng.random() < 0.15:
                kp[:, 2] = 0
            kp[kp[:, 2] == 0, :2] = 0  # COCO stores unlabelled joints as (0, 0, 0)
            area = w * h * rng.uniform(0.4, 0.9)
            gts.append({"id": len(gts) + 1, "image_id": image_id, "category_id": 1,
                        "keypoints": kp.ravel().tolist(), "area": area, "bbox": [x, y, w, h],
                        "iscrowd": int(rng.random() < 0.12),
                        "num_keypoints": int(np.count_nonzero(kp[:, 2]))})
            for _ in range(rng.integers(0, 3) if image_id != 3 else 3):  # duplicates too
                scale = rng.choice([0.01, 0.03, 0.06, 0.1, 0.3])
                poses.append(noisy_copy(rng, kp, (x, y, w, h), area, scale))
        n_false = 7 if image_id == 3 else rng.integers(image_id <= 2, 3)
        for _ in range(n_false):  # false positives anywhere, any size
            s = rng.uniform(10, 200)
            x, y = rng.uniform(0, 600), rng.uniform(0, 440)
            poses.append(np.stack([x + rng.uniform(0, s, J), y + rng.uniform(0, s, J),
                                   np.ones(J)], -1))
        for pose in poses:
            preds.append({"image_id": image_id, "category_id": 1,
                          "keypoints": pose.ravel().tolist(), "score": round(rng.random(), 1)})
            if with_bbox:  # a detector box, whose area replaces the keypoint extent
                lo = pose[:, :2].min(0) - rng.uniform(0, 30, 2)
                hi = pose[:, :2].max(0) + rng.uniform(0, 30, 2)
                preds[-1]["bbox"] = [*lo, *(hi - lo)]
    return images, gts, preds


# ----------------------------------------------------------------------------
# COCO AP: pycocotools as the oracle

@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("with_bbox", [False, True])
def test_matches_pycocotools_on_synthetic_data(seed, with_bbox):
    images, gts, preds = synthetic_coco(seed, with_bbox)
    assert sum(p["image_id"] == 3 for p in preds) > 20
    assert any(g["iscrowd"] for g in gts) and any(g["num_keypoints"] == 0 for g in gts)
    theirs = pycocotools_stats(images, gts, preds)
    ours = coco_keypoint_ap(gts, preds, image_ids=[img["id"] for img in images])
    assert_stats_equal(ours, theirs)
    # A meaningful case: every area range is populated and AP is far from 0 and 1.
    assert all(ours[k] > 0 for k in ("APM", "APL")) and 0.1 < ours["AP"] < 0.9


def test_images_without_people_count_only_when_passed():
    images, gts, preds = synthetic_coco(0)
    everything = coco_keypoint_ap(gts, preds, image_ids=[img["id"] for img in images])
    people_only = coco_keypoint_ap(gts, preds)  # default: images 1-2 are left out
    assert_stats_equal(people_only, pycocotools_stats(images[2:], gts,
                                                      [p for p in preds if p["image_id"] > 2]))
    assert people_only["AP"] > everything["AP"]  # their detections were false positives


def test_inputs_are_not_modified():
    _, gts, preds = synthetic_coco(0, with_bbox=True)
    before = copy.deepcopy((gts, preds))
    coco_keypoint_ap(gts, preds)
    assert (gts, preds) == before


def perturbed_predictions(rng, gts):
    """Noisy copies of ~80% of the scored people plus a few shifted false positives."""
    preds = []
    for g in gts:
        kp = np.reshape(g["keypoints"], (J, 3)).astype(float)
        if g["num_keypoints"] == 0 or rng.random() < 0.2:
            continue
        scale = rng.choice([0.01, 0.03, 0.08])
        preds.append({"image_id": g["image_id"], "category_id": 1, "score": rng.random(),
                      "keypoints": noisy_copy(rng, kp, g["bbox"], g["area"], scale).ravel().tolist()})
        if rng.random() < 0.3:
            fp = np.array(preds[-1]["keypoints"]).reshape(J, 3) + [rng.uniform(-80, 80),
                                                                   rng.uniform(-80, 80), 0]
            preds.append({"image_id": g["image_id"], "category_id": 1, "score": rng.random(),
                          "keypoints": fp.ravel().tolist()})
    return preds


@pytest.mark.skipif(not (REAL_COCO / "test_coco.json").is_file(),
                    reason=f"real COCO samples not found in {REAL_COCO}")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_pycocotools_on_real_annotations(seed):
    data = json.loads((REAL_COCO / "test_coco.json").read_text())
    preds = perturbed_predictions(np.random.default_rng(seed), data["annotations"])
    theirs = pycocotools_stats(data["images"], data["annotations"], preds)
    ours = coco_keypoint_ap(data["annotations"], preds, [img["id"] for img in data["images"]])
    assert_stats_equal(ours, theirs)
    assert 0 < ours["AP"] < 1


def test_perfect_predictions_score_one():
    images, gts, _ = synthetic_coco(5)
    scored = [g for g in gts if g["num_keypoints"] > 0 and not g["iscrowd"]]
    preds = [{"image_id": g["image_id"], "keypoints": g["keypoints"], "score": 1.0} for g in scored]
    stats = coco_keypoint_ap(gts, preds, [img["id"] for img in images])
    assert all(stats[k] == pytest.approx(1.0) for k in STATS)
    # One of them moved away: a miss and a false positive, so below 1.
    preds[0] = {**preds[0], "keypoints": (np.array(preds[0]["keypoints"]) + 500).tolist()}
    assert coco_keypoint_ap(gts, preds)["AP"] < 1


def test_no_scored_people_is_minus_one():
    gt = {"id": 1, "image_id": 1, "keypoints": [0] * 3 * J, "area": 100.0, "bbox": [0, 0, 10, 10],
          "iscrowd": 0, "num_keypoints": 0}
    stats = coco_keypoint_ap([gt], [{"image_id": 1, "keypoints": [5] * 3 * J, "score": 0.5}])
    assert all(stats[k] == -1 for k in STATS)


def test_ties_between_people_go_to_the_later_one():
    # Two people without labelled joints (ignored) whose enlarged boxes both contain
    # detection d1, so it has OKS 1 with each; pycocotools' ``<`` test gives it the
    # later one, g2. d2 is inside g2's enlarged box only: g2 being taken, d2 is a
    # false positive. d0 matches the one scored person, g0.
    def gt(id, box, kpts, num_keypoints):
        return {"id": id, "image_id": 1, "category_id": 1, "area": 2000.0, "bbox": box,
                "iscrowd": 0, "num_keypoints": num_keypoints, "keypoints": kpts}
    g0 = gt(1, [300, 300, 40, 50], np.ravel([(310 + j, 320 + j, 2) for j in range(J)]).tolist(), J)
    g1 = gt(2, [0, 0, 40, 50], [0] * 3 * J, 0)    # enlarged: x, y in [-40, 80] x [-50, 100]
    g2 = gt(3, [60, 0, 40, 50], [0] * 3 * J, 0)   # enlarged: [20, 140] x [-50, 100]
    gts = [g0, g1, g2]

    def det(x, y, score):
        return {"image_id": 1, "category_id": 1, "keypoints": [x, y, 1] * J, "score": score}
    preds = [det(50, 20, 0.99), det(120, 20, 0.95), {**det(0, 0, 0.9), "keypoints": g0["keypoints"]}]
    # Ranked: d1 ignored, d2 false positive, d0 true positive: precision 1/2 at recall 1.
    stats = coco_keypoint_ap(gts, preds)
    assert stats["AP"] == pytest.approx(0.5) and stats["AR"] == 1.0
    assert_stats_equal(stats, pycocotools_stats([{"id": 1}], gts, preds))


def test_oks_exactly_at_a_threshold():
    # Two labelled joints, one exact and one far off (exp underflows to 0): OKS is
    # exactly 0.5. COCO matches at OKS >= t, AI Challenger counts OKS > t.
    gt_kp = np.zeros((J, 3))
    gt_kp[:2] = [(100, 100, 2), (120, 100, 2)]
    dt_kp = gt_kp.copy()
    dt_kp[1, 0] += 1e4
    gt = {"id": 1, "image_id": 1, "keypoints": gt_kp.ravel().tolist(), "area": 900.0,
          "bbox": [90, 90, 30, 30], "iscrowd": 0, "num_keypoints": 2}
    pred = {"image_id": 1, "keypoints": dt_kp.ravel().tolist(), "score": 1.0}
    stats = coco_keypoint_ap([gt], [pred])
    assert stats["AP50"] == pytest.approx(1.0) and stats["AP75"] == 0.0
    assert stats["AP"] == pytest.approx(0.1)
    assert aic([gt], [pred], np.full(J, 0.05)) == 0.0
    gt_kp[2] = dt_kp[2] = (110, 110, 2)  # a third, exact joint: OKS 2/3 > .50-.65
    assert aic([{**gt, "keypoints": gt_kp.ravel().tolist()}],
               [{**pred, "keypoints": dt_kp.ravel().tolist()}], np.full(J, 0.05)) == 0.4


# ----------------------------------------------------------------------------
# OKS by hand

def test_oks_by_hand():
    sigmas = np.array([0.1, 0.1])      # k = 2 * sigma = 0.2, k^2 = 0.04
    gt = np.array([[[10, 10, 2], [20, 20, 1]],     # both joints labelled (occluded counts)
                   [[10, 10, 2], [0, 0, 0]],       # second joint unlabelled
                   [[0, 0, 0], [0, 0, 0]]], float)  # no label: the box rule
    areas = np.array([100.0, 100.0, 100.0])        # s^2
    boxes = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [10, 10, 10, 20]], float)
    dt = np.array([[[13, 10, 0], [20, 20, 0]],     # joint 0 off by 3 px
                   [[35, 0, 0], [20, 20, 0]]], float)
    # exp(-d^2 / (2 s^2 k^2)): d = 3 -> exp(-9 / 8) ; d = 0 -> 1.
    e3 = math.exp(-9 / 8)
    # Box [10, 10, 10, 20] enlarged: x in [0, 30], y in [-10, 50]. (35, 0) is 5 px
    # to the right: exp(-25 / 8); (20, 20) is inside: 1. (13, 10), (20, 20): inside.
    e5 = math.exp(-25 / 8)
    expected = [[(e3 + 1) / 2, e3, 1.0],
                [(math.exp(-(25**2 + 10**2) / 8) + 1) / 2, math.exp(-(25**2 + 10**2) / 8),
                 (e5 + 1) / 2]]
    np.testing.assert_allclose(oks(dt, gt, areas, boxes, sigmas), expected, rtol=1e-12)
    assert oks(dt[:0], gt, areas, boxes, sigmas).shape == (0, 3)


def test_oks_matches_pycocotools_compute_oks():
    pytest.importorskip("pycocotools")
    from pycocotools.cocoeval import COCOeval
    images, gts, preds = synthetic_coco(7)
    gts = [g for g in gts if g["image_id"] == 3]
    preds = sorted([p for p in preds if p["image_id"] == 3], key=lambda p: -p["score"])[:20]
    ev = COCOeval(iouType="keypoints")
    ev._gts, ev._dts = {(3, 1): gts}, {(3, 1): preds}
    theirs = ev.computeOks(3, 1)
    ours = oks(np.reshape([p["keypoints"] for p in preds], (len(preds), J, 3)),
               np.reshape([g["keypoints"] for g in gts], (len(gts), J, 3)),
               [g["area"] for g in gts], [g["bbox"] for g in gts])
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)


# ----------------------------------------------------------------------------
# AI Challenger score: the official keypoint_eval.py as the oracle

# The constants keypoint_eval.py holds (its ``delta`` is twice these), copied from it.
OFFICIAL_SIGMAS = np.array([0.01388152, 0.01515228, 0.01057665, 0.01417709, 0.01497891, 0.01402144,
                            0.03909642, 0.03686941, 0.01981803, 0.03843971, 0.03412318, 0.02415081,
                            0.01291456, 0.01236173])


def official_compute_oks(anno, predict, delta):
    """keypoint_eval.py's ``compute_oks`` in Python 3: (people, predictions) OKS
    of one image, on the official layouts (AIC flag 1 = visible; boxes x1 y1 x2 y2)."""
    humans = list(anno["keypoint_annos"])
    oks_matrix = np.zeros((len(humans), len(predict)))
    if len(predict) == 0:
        return oks_matrix.T
    for i, key in enumerate(humans):
        anno_keypoints = np.reshape(anno["keypoint_annos"][key], (-1, 3))
        visible = anno_keypoints[:, 2] == 1
        bbox = anno["human_annos"][key]
        scale = np.float32((bbox[3] - bbox[1]) * (bbox[2] - bbox[0]))
        if np.sum(visible) == 0:
            continue  # OKS 0 with every prediction
        for j, predict_keypoints in enumerate(predict.values()):
            predict_keypoints = np.reshape(predict_keypoints, (-1, 3))
            dis = np.sum((anno_keypoints[visible, :2] - predict_keypoints[visible, :2]) ** 2, axis=1)
            oks_matrix[i, j] = np.mean(np.exp(-dis / 2 / delta[visible] ** 2 / (scale + 1)))
    return oks_matrix


def official_keypoint_eval(reference, submission, sigmas=OFFICIAL_SIGMAS):
    """keypoint_eval.py's ``load_annotations``, ``load_predictions`` and
    ``keypoint_eval`` in Python 3: the score of ``submission`` (a list of
    ``{"image_id", "keypoint_annotations": {human: [x, y, v] * J}}``) against
    ``reference`` (the annotation file's list). The loop runs over *every*
    image of the reference file; people of an image without a prediction entry
    score 0, and an image with predictions counts max(#people, #predictions)."""
    delta = 2 * np.asarray(sigmas)
    annotations = {a["image_id"]: {"human_annos": a["human_annotations"],
                                   "keypoint_annos": a["keypoint_annotations"]} for a in reference}
    predictions = {p["image_id"]: p["keypoint_annotations"] for p in submission}
    oks_all, oks_num = np.zeros(0), 0
    for image_id in annotations:  # for every annotation in the test/validation set
        if image_id in predictions:
            oks_matrix = official_compute_oks(annotations[image_id], predictions[image_id], delta)
            oks_all = np.concatenate((oks_all, np.max(oks_matrix, axis=1)), axis=0)
            oks_num += np.max(oks_matrix.shape)
        else:
            gt_n = len(annotations[image_id]["human_annos"])
            oks_all = np.concatenate((oks_all, np.zeros(gt_n)), axis=0)
            oks_num += gt_n
    return np.mean([np.sum(oks_all > t) / np.float32(oks_num) for t in np.linspace(0.5, 0.95, 10)])


def official_files(gt_annotations, results, reference_ids):
    """Our COCO dicts in the official layouts: v 2 / 1 / 0 -> AIC flag 1 / 2 / 3,
    boxes x y w h -> x1 y1 x2 y2; every image of ``reference_ids`` in the reference
    file, those without people too; results grouped per image."""
    reference = {i: {"image_id": i, "keypoint_annotations": {}, "human_annotations": {}}
                 for i in reference_ids}
    for g in gt_annotations:
        kp = np.reshape(g["keypoints"], (-1, 3)).astype(float)
        flags = np.array([3, 2, 1])[kp[:, 2].astype(int)]
        x, y, w, h = g["bbox"]
        humans = reference[g["image_id"]]
        name = f"human{len(humans['keypoint_annotations']) + 1}"
        humans["keypoint_annotations"][name] = np.c_[kp[:, :2], flags].ravel().tolist()
        humans["human_annotations"][name] = [x, y, x + w, y + h]
    submission = {}
    for r in results:
        humans = submission.setdefault(r["image_id"], {"image_id": r["image_id"], "keypoint_annotations": {}})
        humans["keypoint_annotations"][f"human{len(humans['keypoint_annotations']) + 1}"] = r["keypoints"]
    return list(reference.values()), list(submission.values())


def aic(gt_annotations, results, sigmas, image_ids=None):
    """``aic_score``, checked against the official code on the same input. Without
    ``image_ids`` the reference set is every image with a person or a prediction."""
    ours = aic_score(gt_annotations, results, sigmas, image_ids=image_ids)
    ids = image_ids if image_ids is not None else \
        list(dict.fromkeys([g["image_id"] for g in gt_annotations] + [r["image_id"] for r in results]))
    theirs = official_keypoint_eval(*official_files(gt_annotations, results, ids), sigmas)
    assert ours == pytest.approx(theirs, abs=1e-12)
    return ours


def aic_probe(seed, n_images=16, n_empty=5):
    """Official-layout reference and submission: images ``img0``.. ``img{n_empty-1}``
    have no person but do carry predictions (false positives); the others have 1-5
    people (some with no visible joint), found with noise, missed, duplicated, and
    some images have no prediction entry at all."""
    rng = np.random.default_rng(seed)
    reference, submission = [], []
    for n in range(n_images):
        image_id = f"img{n}"
        kps, boxes, preds = {}, {}, {}
        for k in range(0 if n < n_empty else rng.integers(1, 6)):
            w, h = rng.integers(20, 200, 2)
            x1, y1 = rng.integers(0, 400, 2)
            xy = np.c_[rng.integers(x1, x1 + w, 14), rng.integers(y1, y1 + h, 14)]
            flags = rng.choice([1, 2, 3], 14, p=[0.6, 0.2, 0.2]) if rng.random() > 0.1 else np.full(14, 2)
            kps[f"human{k + 1}"] = np.c_[xy, flags].ravel().tolist()
            boxes[f"human{k + 1}"] = [int(x1), int(y1), int(x1 + w), int(y1 + h)]
            for _ in range(rng.choice([0, 1, 1, 1, 2])):  # missed, found, found twice
                noisy = xy + rng.normal(0, rng.choice([0.003, 0.01, 0.02]) * np.sqrt(w * h), (14, 2))
                preds[f"human{len(preds) + 1}"] = np.c_[noisy, np.ones(14)].ravel().tolist()
        for _ in range(rng.integers(1, 3) if n < n_empty else rng.choice([0, 0, 1])):  # false positives
            xy = rng.uniform(0, 500, 2) + rng.uniform(0, 100, (14, 2))
            preds[f"human{len(preds) + 1}"] = np.c_[xy, np.ones(14)].ravel().tolist()
        reference.append({"image_id": image_id, "keypoint_annotations": kps, "human_annotations": boxes})
        if preds and rng.random() > 0.1:
            submission.append({"image_id": image_id, "keypoint_annotations": preds})
    return reference, submission


def coco_dicts(reference, submission):
    """The official layouts as our COCO dicts (flags 1 / 2 / 3 -> v 2 / 1 / 0, boxes
    x1 y1 x2 y2 -> x y w h), as the AIC reader gives them."""
    gts = []
    for a in reference:
        for name, kp in a["keypoint_annotations"].items():
            kp = np.reshape(kp, (14, 3))
            x1, y1, x2, y2 = a["human_annotations"][name]
            gts.append({"image_id": a["image_id"], "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "keypoints": np.c_[kp[:, :2], np.array([0, 2, 1, 0])[kp[:, 2]]].ravel().tolist()})
    results = [{"image_id": p["image_id"], "keypoints": kp, "score": 1.0}
               for p in submission for kp in p["keypoint_annotations"].values()]
    return gts, results


def test_official_constants():
    np.testing.assert_array_equal(AIC_SIGMAS, OFFICIAL_SIGMAS)


@pytest.mark.parametrize("seed", range(4))
def test_aic_matches_official_with_images_without_people(seed):
    reference, submission = aic_probe(seed)
    gts, results = coco_dicts(reference, submission)
    ids = [a["image_id"] for a in reference]
    theirs = official_keypoint_eval(reference, submission)
    assert 0.2 < theirs < 0.9  # a meaningful probe
    # The predictions on images without people count as misses, as officially.
    assert aic_score(gts, results, image_ids=ids) == pytest.approx(theirs, abs=1e-12)
    # So they do by default too: the reference set is then every image with a person
    # or a prediction, the official one when predictions are made on reference images.
    assert aic_score(gts, results) == pytest.approx(theirs, abs=1e-12)
    # And they matter: dropping them (the images with people only) scores higher.
    with_people = [a for a in reference if a["keypoint_annotations"]]
    assert official_keypoint_eval(with_people, submission) > theirs + 0.01


def test_aic_ignores_predictions_outside_the_reference_set():
    reference, submission = aic_probe(0)
    outside = {"image_id": "not-in-reference", "keypoint_annotations": {"human1": [5.0, 5.0, 1.0] * 14}}
    gts, results = coco_dicts(reference, submission + [outside])
    ids = [a["image_id"] for a in reference]
    theirs = official_keypoint_eval(reference, submission + [outside])
    assert theirs == official_keypoint_eval(reference, submission)  # the official loop skips it
    assert aic_score(gts, results, image_ids=ids) == pytest.approx(theirs, abs=1e-12)
    # Image ids given twice, or a reference image with neither people nor predictions, change nothing.
    assert aic_score(gts, results, image_ids=ids + ids[:3] + ["blank"]) == pytest.approx(theirs, abs=1e-12)


# ----------------------------------------------------------------------------
# AI Challenger score by hand (each also checked against the official code)

def person(image_id, joints, box):
    """An AIC-style person in COCO dict form: ``joints`` a list of (x, y, v)."""
    return {"image_id": image_id, "keypoints": np.ravel(joints).tolist(), "bbox": box}


SIGMAS = np.array([0.05, 0.05])  # delta = 0.1


def test_aic_extra_prediction_is_penalised_and_occluded_joints_are_not_scored():
    a = person(1, [(0, 0, 2), (5, 5, 2)], [0, 0, 10, 9])      # scale 90 + 1
    b = person(1, [(50, 50, 2), (60, 60, 1)], [40, 40, 20, 20])  # joint 1 occluded; scale 401
    exact_a = person(1, [(0, 0, 1), (5, 5, 1)], None)
    near_b = person(1, [(51.6, 50, 1), (0, 0, 1)], None)      # 1.6 px off; occluded joint wrong
    extra = person(1, [(300, 300, 1), (300, 300, 1)], None)
    oks_b = math.exp(-1.6**2 / 2 / 0.1**2 / 401)               # 0.7268: above .50-.70, not .75
    assert 0.7 < oks_b < 0.75
    # Best OKS per person: 1 and oks_b. Thresholds .5-.7 pass both, .75-.95 only a.
    assert aic([a, b], [exact_a, near_b], SIGMAS) == pytest.approx((5 * 2 + 5 * 1) / 10 / 2)
    # The extra prediction makes it max(2, 3) = 3 entries: 1.5 / 3.
    assert aic([a, b], [exact_a, near_b, extra], SIGMAS) == pytest.approx(0.5)


@pytest.mark.parametrize("target, expected", [(0.3, 0.0), (0.52, 0.1), (0.72, 0.5),
                                              (0.93, 0.9), (0.99, 1.0)])
def test_aic_oks_to_score_thresholds(target, expected):
    # One person, one prediction at OKS ``target``: the score is the fraction of
    # thresholds .50:.05:.95 strictly below it.
    scale = 2 * 2 + 1  # a small box, where the official "+ 1" matters
    d = math.sqrt(-math.log(target) * 2 * 0.1**2 * scale)
    gt = person(7, [(100, 100, 2), (120, 100, 2)], [90, 90, 2, 2])
    pred = person(7, [(100 + d, 100, 1), (120 + d, 100, 1)], None)
    assert aic([gt], [pred], SIGMAS) == pytest.approx(expected)


def test_aic_unmatched_people_and_one_prediction_serving_two():
    a = person(1, [(0, 0, 2), (5, 5, 2)], [0, 0, 10, 10])
    invisible = person(1, [(0, 0, 1), (5, 5, 0)], [0, 0, 10, 10])  # OKS 0, yet counted
    exact = person(1, [(0, 0, 1), (5, 5, 1)], None)
    assert aic([a, invisible], [exact], SIGMAS) == pytest.approx(0.5)
    # No one-to-one matching: one prediction is the best match of two people.
    assert aic([a, copy.deepcopy(a)], [exact], SIGMAS) == pytest.approx(1.0)
    # An image with people but no prediction counts them as misses.
    other = person(2, [(0, 0, 2), (5, 5, 2)], [0, 0, 10, 10])
    assert aic([a, other], [exact], SIGMAS) == pytest.approx(0.5)


# ----------------------------------------------------------------------------
# Results files and the table

def test_to_coco_results_round_trip_scores_one():
    _, gts, _ = synthetic_coco(9)
    gts = [g for g in gts if g["image_id"] == 4 and g["num_keypoints"] > 0 and not g["iscrowd"]]
    kpts = np.reshape([g["keypoints"] for g in gts], (len(gts), J, 3))
    results = to_coco_results(np.int64(4), kpts + 0.001, np.linspace(1, 0.5, len(gts)))
    assert json.loads(json.dumps(results)) == results  # plain Python types only
    written = np.reshape([r["keypoints"] for r in results], kpts.shape)
    np.testing.assert_allclose(written, kpts + 0.001, atol=0.005)
    np.testing.assert_array_equal(written[..., :2], np.round(written[..., :2], 2))  # 0.01 px
    assert coco_keypoint_ap(gts, results)["AP"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="N, J, 3"):
        to_coco_results(1, kpts[:, :, :2], np.ones(len(gts)))


def test_write_json_is_atomic(tmp_path):
    path = tmp_path / "results.json"
    write_json(path, {"AP": np.float32(0.5), "kpts": np.arange(3)})
    assert json.loads(path.read_text()) == {"AP": 0.5, "kpts": [0, 1, 2]}
    with pytest.raises(TypeError):
        write_json(path, {"AP": 0.7, "bad": object()})  # fails half-way through
    assert json.loads(path.read_text())["AP"] == 0.5
    assert os.listdir(tmp_path) == ["results.json"]


def test_format_ap_table():
    stats = dict.fromkeys(STATS, 0.5)
    table = format_ap_table([("ours", {**stats, "AP": 0.6543, "APM": -1.0}), ("baseline", stats)])
    header, ours, base = table.splitlines()
    assert header.split() == ["AP", "AP50", "AP75", "APM", "APL"]
    assert ours.split() == ["ours", "65.4", "50.0", "50.0", "-", "50.0"]
    assert base.split() == ["baseline"] + ["50.0"] * 5
    assert len({len(line) for line in table.splitlines()}) == 1  # aligned


def test_bootstrap_ap_is_paired_and_centred_on_the_plain_ap():
    """``bootstrap_ap``: the AP it reports is ``coco_keypoint_ap``'s; a row
    identical to the reference differs by exactly 0 in every resample; a row
    that is worse on every image has an interval entirely below 0."""
    from common.coco_eval import bootstrap_ap
    rng = np.random.default_rng(1)
    gts, good, bad = [], [], []
    for i in range(1, 41):
        for k in range(2):
            kp = np.concatenate([rng.uniform(0, 100, (17, 2)), np.full((17, 1), 2)], 1)
            gts.append({"image_id": i, "id": 10 * i + k, "category_id": 1, "iscrowd": 0, "num_keypoints": 17,
                        "keypoints": kp.ravel().tolist(), "bbox": [0, 0, 100, 100], "area": 5000.0})
            for out, noise in ((good, 1.0), (bad, 6.0)):
                p = kp.copy()
                p[:, :2] += rng.normal(0, noise, (17, 2))
                out.append({"image_id": i, "category_id": 1, "keypoints": p.ravel().tolist(), "score": rng.random()})
    ids = list(range(1, 41))
    b = bootstrap_ap(gts, {"full": good, "same": list(good), "worse": bad}, ids, reference="full", resamples=200)
    assert b["full"]["AP"] == pytest.approx(coco_keypoint_ap(gts, good, ids)["AP"], abs=1e-12)
    assert b["same"]["diff"] == 0 and b["same"]["lo"] == 0 and b["same"]["hi"] == 0
    assert b["worse"]["diff"] < 0 and b["worse"]["lo"] <= b["worse"]["diff"] <= b["worse"]["hi"] < 0


# ----------------------------------------------------------------------------
# COCO box AP (issue 22's box head is scored with it): pycocotools' bbox mode as the oracle

BOX_STATS = {"AP": 0, "AP50": 1, "AP75": 2, "APS": 3, "APM": 4, "APL": 5, "AR": 8}


def synthetic_boxes(seed):
    """Three images: people of every size (small ones included), a crowd
    region, an image without people, noisy boxes with random scores, misses
    and false positives, and more than 20 detections on one image."""
    rng = np.random.default_rng(seed)
    images = [{"id": i, "width": 640, "height": 480} for i in (1, 2, 3)]
    gts, preds, aid = [], [], 1
    for img in (1, 3):
        for k in range(12 if img == 3 else 6):
            w, h = (rng.uniform(8, 30, 2) if k % 3 == 0 else (rng.uniform(30, 200), rng.uniform(40, 300)))
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            crowd = int(img == 1 and k == 0)
            gts.append({"id": aid, "image_id": img, "category_id": 1, "bbox": [x, y, w, h], "iscrowd": crowd,
                        "area": w * h * rng.uniform(0.5, 1.0)})
            aid += 1
            for _ in range(rng.integers(0, 3)):             # 0-2 detections per person
                j = rng.normal(0, 0.06, 4) * [w, h, w, h]
                preds.append({"image_id": img, "category_id": 1, "score": float(rng.uniform()),
                              "bbox": [x + j[0], y + j[1], max(2.0, w + j[2]), max(2.0, h + j[3])]})
    for img, n in ((2, 6), (3, 12)):                        # false positives
        for _ in range(n):
            w, h = rng.uniform(5, 150, 2)
            preds.append({"image_id": img, "category_id": 1, "score": float(rng.uniform()),
                          "bbox": [float(rng.uniform(0, 400)), float(rng.uniform(0, 300)), w, h]})
    return images, gts, preds


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_box_ap_matches_pycocotools_bbox_mode(seed):
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    from common.coco_eval import coco_box_ap

    images, gts, preds = synthetic_boxes(seed)
    assert sum(p["image_id"] == 3 for p in preds) > 20 and any(g["iscrowd"] for g in gts)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": copy.deepcopy(images), "annotations": copy.deepcopy(gts),
                      "categories": [{"id": 1, "name": "person"}]}
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(copy.deepcopy(preds)), iouType="bbox")
        ev.params.imgIds = [1, 2, 3]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    ours = coco_box_ap(gts, preds, image_ids=[1, 2, 3])
    for name, i in BOX_STATS.items():
        assert ours[name] == pytest.approx(ev.stats[i], abs=1e-12), name
    assert all(0.05 < ours[k] < 0.95 for k in ("AP", "APS", "APM", "APL"))   # every range populated


def test_box_iou_by_hand():
    from common.coco_eval import box_iou
    a, b = [0, 0, 2, 2], [1, 1, 2, 2]                          # overlap 1, union 7
    assert box_iou([a], [b])[0, 0] == pytest.approx(1 / 7)
    assert box_iou([a], [b], crowd=[True])[0, 0] == pytest.approx(1 / 4)   # over the detection's area
    assert box_iou([a], [[5, 5, 1, 1]])[0, 0] == 0.0
