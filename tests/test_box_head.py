"""The box head (paper 2's future work, common.box_head): targets, loss and
decoding by hand on small cases."""
import numpy as np
import pytest
import torch

from common.box_head import FLOOR, box_loss, box_nms, box_targets, choose_threshold, decode_boxes, unmirror_boxes


def as_prediction(targets):
    """Targets read as the head's output (the weight channel dropped)."""
    return torch.from_numpy(targets[:5])


@pytest.mark.parametrize("stride", [4, 8])
def test_boxes_round_trip_through_their_targets(stride):
    """Boxes -> targets -> the targets read as a prediction -> the same boxes."""
    boxes = np.array([[10.3, 20.7, 40.0, 90.5], [100.0, 30.0, 25.5, 60.25], [60.0, 110.0, 70.0, 30.0]])
    targets = box_targets(boxes, (48, 48), stride)
    out = decode_boxes(as_prediction(targets), stride, threshold=0.5)
    # Scores: the centre map at the centre's pixel, below 1 by the sub-pixel offset.
    assert len(out) == 3 and (out[:, 4] > 0.75).all() and (out[:, 4] <= 1).all()
    got = out[np.argsort(out[:, 0])][:, :4]
    assert np.allclose(got, boxes[np.argsort(boxes[:, 0])], atol=1e-4)


def test_targets_by_hand():
    # One 40 x 80 box centred on input pixel (21.5, 41.5) = map pixel (5, 10) at stride 4.
    t = box_targets([[1.5, 1.5, 40.0, 80.0]], (24, 16), 4)
    assert t.shape == (6, 24, 16)
    centre, size, offset, weight = t[:1], t[1:3], t[3:5], t[5:]
    assert centre.shape == (1, 24, 16) and size.shape == offset.shape == (2, 24, 16)
    assert weight.sum() == 1 and weight[0, 10, 5] == 1
    assert centre[0, 10, 5] == pytest.approx(1.0)
    assert np.allclose(size[:, 10, 5], np.log([40.0, 80.0])) and np.allclose(offset[:, 10, 5], 0.0)
    # sigma = 0.1 sqrt(40 x 80) = 5.66 px: one map pixel (4 px) away, exp(-16 / 32).
    assert centre[0, 10, 6] == pytest.approx(np.exp(-16 / 32.0), rel=1e-5)
    # A box centred between pixels keeps its fraction in the offset.
    # centre x = 3 + 43 / 2 = 24.5 px -> map x (24.5 - 1.5) / 4 = 5.75: pixel 6, offset -0.25.
    t = box_targets([[3.0, 0.0, 43.0, 80.0]], (24, 16), 4)
    assert t[5, 10, 6] == 1 and t[3, 10, 6] == pytest.approx(-0.25)


def test_loss_by_hand():
    target = torch.from_numpy(box_targets([[8.0, 8.0, 16.0, 16.0]], (8, 8), 4))[None]
    pred = target[:, :5].clone()
    assert box_loss(pred, target) == 0
    worse = pred.clone()
    worse[0, 0, 0, 0] += 0.5          # centre map off by 0.5 at one pixel: 0.25
    i, j = torch.nonzero(target[0, 5])[0]
    worse[0, 1, i, j] += 0.2          # log width off by 0.2 at the centre: 0.2
    worse[0, 3, 0, 0] += 9.0          # offset off where nobody's centre is: not counted
    assert box_loss(worse, target).item() == pytest.approx(0.25 + 0.2)
    # Averaged over the batch: the same image twice gives the same loss.
    assert box_loss(worse.repeat(2, 1, 1, 1), target.repeat(2, 1, 1, 1)).item() == pytest.approx(0.45)
    # A pixel nobody annotated (a crowd region, Eq. 6's W = 0) does not count.
    known = torch.ones(1, 1, 8, 8)
    known[0, 0, 0, 0] = 0
    assert box_loss(worse, target, known).item() == pytest.approx(0.2)


def test_unmirror_boxes_is_exact():
    """The head's targets of a mirrored image, unmirrored, are those of the
    image: the same boxes decode from both."""
    boxes = np.array([[10.3, 20.7, 40.0, 90.5], [100.0, 30.0, 25.5, 60.25]])
    W = 48 * 4
    mirrored = boxes.copy()
    mirrored[:, 0] = W - 1 - boxes[:, 0] - boxes[:, 2]    # centres mirror as pixels do: c -> W - 1 - c
    t = torch.from_numpy(box_targets(boxes, (48, 48), 4)[:5])[None]
    tm = torch.from_numpy(box_targets(mirrored, (48, 48), 4)[:5])[None]
    back = unmirror_boxes(tm)
    got = decode_boxes(back[0], 4, threshold=0.5)
    want = decode_boxes(t[0], 4, threshold=0.5)
    assert np.allclose(got[np.argsort(got[:, 0])], want[np.argsort(want[:, 0])], atol=1e-4)


def test_decoding_threshold_and_nms():
    boxes = np.array([[0, 0, 10, 10, 0.9], [1, 1, 10, 10, 0.8], [50, 50, 10, 10, 0.7], [0, 0, 10, 10, 0.2]])
    kept = box_nms(boxes, 0.5)
    assert kept[:, 4].tolist() == [0.9, 0.7]          # the 0.8 and the 0.2 overlap the 0.9 (IoU 0.68, 1.0)
    assert len(box_nms(boxes, 0.99)) == 3
    pred = as_prediction(box_targets([[10.0, 10.0, 40.0, 40.0]], (16, 16), 4))
    pred[0] *= 0.4
    assert len(decode_boxes(pred, 4, threshold=0.5)) == 0 and len(decode_boxes(pred, 4, threshold=0.3)) == 1


def test_threshold_is_where_the_f1_is_highest():
    """Two images, matched as COCO matches (score order, each truth once):
    scores 0.9 hit, 0.6 miss, 0.5 miss (a second box on a taken truth),
    0.45 hit, 0.4 hit; 3 true boxes. F1 = 2 TP / (kept + 3) at each
    threshold: 0.5, 0.4, 0.33, 0.57, 0.75 -> 0.4."""
    truths = [np.array([[0, 0, 10, 10], [50, 50, 10, 10]]), np.array([[0, 0, 20, 20]])]
    boxes = [np.array([[0, 0, 10, 10, 0.9], [50, 50, 10, 10, 0.4], [100, 100, 10, 10, 0.6], [1, 1, 10, 10, 0.5]]),
             np.array([[0, 0, 20, 20, 0.45]])]
    assert choose_threshold(boxes, truths) == pytest.approx(0.4)
    # Without the 0.4 and its truth: 0.9 H, 0.6 M, 0.5 M, 0.45 H of 2 truths, F1 2/3, 1/2, 2/5, 2/3:
    # a tie goes to the higher threshold (fewer boxes for the same F1).
    boxes[0] = boxes[0][[0, 2, 3]]
    truths[0] = truths[0][:1]
    assert choose_threshold(boxes, truths) == pytest.approx(0.9)
    # A threshold keeps every box of its score: two boxes at 0.5, one a miss, are kept or dropped together.
    tied = [np.array([[0, 0, 10, 10, 0.5], [80, 80, 10, 10, 0.5]])]
    assert choose_threshold(tied, [np.array([[0, 0, 10, 10]])]) == pytest.approx(0.5)
    # No boxes at all: the floor.
    assert choose_threshold([np.zeros((0, 5))], [np.array([[0, 0, 10, 10]])]) == FLOOR
