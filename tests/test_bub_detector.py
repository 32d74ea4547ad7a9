"""The simulated detector (``common.detector``) errs at its documented rates.

Its rates are set against YOLOv2's published figures (the module docstring):
these tests measure each one on many draws, so that a change of a rate, or of
the code that applies it, cannot pass unnoticed.
"""
from dataclasses import replace

import numpy as np
import pytest

from common.coco_eval import coco_annotation
from common.detector import YOLO_NMS_IOU, DetectorModel, box_iou, simulate, simulated_detector

TRUTH = np.array([[20, 30, 40, 100], [90, 20, 50, 120]], float)     # two large people, 192 px image
EXACT = DetectorModel(shift=0, scale=0, dup=0, fp=0, miss=0, miss_occluded=0, miss_small=0, threshold=0)


def draws(model, truth=TRUTH, occluded=(0.0, 0.0), n=3000, seed=0):
    rng = np.random.default_rng(seed)
    return [simulate(model, truth, occluded, (192, 192), rng) for _ in range(n)]


def test_localisation_is_as_loose_as_yolov2s():
    """Of the boxes with IoU >= 0.5 with their person, 44 % (YOLOv2's
    AP75 / AP50 = 19.2 / 44.0) reach 0.75."""
    model = replace(DetectorModel(), dup=0, fp=0, miss=0, miss_occluded=0, miss_small=0, threshold=0)
    ious = np.array([box_iou(TRUTH[0], d[0, :4]) for d in draws(model, TRUTH[:1], (0.0,))])
    good = ious >= 0.5
    assert good.mean() > 0.95
    assert (ious[good] >= 0.75).mean() == pytest.approx(0.44, abs=0.03)


def test_misses_grow_for_hidden_and_small_people():
    model = replace(DetectorModel(), dup=0, fp=0, threshold=0)
    kept = np.mean([len(d) for d in draws(model, TRUTH[:1], (0.0,))])
    assert kept == pytest.approx(1 - model.miss, abs=0.015)
    hidden = np.mean([len(d) for d in draws(model, TRUTH[:1], (0.5,))])
    assert hidden == pytest.approx(1 - model.miss - 0.5 * model.miss_occluded, abs=0.025)
    small = np.array([[20, 30, 10, 0.15 * 192]])                        # half of the "small" height
    tiny = np.mean([len(d) for d in draws(model, small, (0.0,))])
    assert tiny == pytest.approx(1 - model.miss - 0.5 * model.miss_small, abs=0.025)
    worst = min(1.0, model.miss + model.miss_occluded + model.miss_small)     # height 0, all hidden
    assert model.miss_chance([0.0, 1.0], [1.0, 0.0]).tolist() == pytest.approx([worst, model.miss])


def test_duplicates_are_partial_boxes_below_the_detectors_nms():
    model = replace(EXACT, dup=1)
    for d in draws(model, TRUTH[:1], (0.0,), n=200):
        assert len(d) in (1, 2)
        if len(d) == 2:
            assert 0.2 <= box_iou(d[0, :4], d[1, :4]) <= YOLO_NMS_IOU and d[1, 4] < d[0, 4]
    assert np.mean([len(d) == 2 for d in draws(model, TRUTH[:1], (0.0,), n=200)]) > 0.95


def test_false_positives_are_scored_and_thresholded():
    fp = replace(EXACT, fp=2.0)
    n = np.array([len(d) - 2 for d in draws(fp)])
    assert n.mean() == pytest.approx(2.0, abs=0.1)
    above = replace(fp, threshold=0.3)
    m = np.array([len(d) - 2 for d in draws(above)])                    # false scores U(0, 0.6): half pass
    assert m.mean() == pytest.approx(1.0, abs=0.08)
    assert all((d[:, 4] >= 0.3).all() for d in draws(replace(DetectorModel(), threshold=0.3), n=200))


def test_exact_detector_and_seeds():
    np.testing.assert_allclose(draws(EXACT, n=1)[0][:, :4], TRUTH)
    a, b = draws(DetectorModel(), n=5, seed=3), draws(DetectorModel(), n=5, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    with pytest.raises(ValueError, match="miss = 2"):
        DetectorModel(miss=2)
    with pytest.raises(ValueError, match="shift = nan"):
        DetectorModel(shift=float("nan"))


def test_script_detector_reads_occlusion_from_the_annotations():
    """``bottom_up_bbox.simulated_detector`` hands each scored person's
    occluded share to the model: a fully occluded person is missed at
    ``miss + miss_occluded``."""
    kp = np.zeros((14, 3))
    kp[:, :2], kp[:, 2] = 50, 1                                           # every joint occluded
    gt = [coco_annotation(0, 1, kp, TRUTH[0], 4000)]
    model = replace(DetectorModel(), dup=0, fp=0, miss_small=0, threshold=0)
    rng = np.random.default_rng(1)
    kept = np.mean([len(simulated_detector(gt, (192, 192), rng, model)) for _ in range(3000)])
    assert kept == pytest.approx(1 - model.miss - model.miss_occluded, abs=0.025)
