"""Person boxes from the pose network itself: paper 2's future work (§V).

"It would be interesting to explore the possibility of training our network
with the human detector in an end-to-end manner." Paper 2 takes its boxes
from a separate detector (YOLOv2). Here the boxes come from a head on the
same features as the confidence maps and direction fields, trained in the
same run. Not from the paper: the head follows CenterNet (Zhou, Wang and
Krähenbühl, "Objects as Points", 2019), chosen over box corners as two
extra "joints" joined by a field because a box is then one peak, read by
the same kind of peak finding as a joint, and its size is regressed where
the peak is (no corner pairing to get wrong in a crowd, where corners of
neighbours lie close together).

Three outputs at the maps' stride s, all in the conventions of the joints'
maps (``common.transforms.to_stride``: map pixel j is centred on input
pixel s j + (s - 1) / 2):

* a centre map C, the person's box centre as one more confidence map,
  ``exp(-||p - c||^2 / sigma^2)`` exactly as a joint's Eq. (1), with sigma
  a fixed share of the box's size (``SIGMA_SHARE``), so that a large person
  is not a needle and a small one not a blob;
* the box's log width and log height (input pixels) at the centre's pixel
  (a log: an error of 10 % weighs the same for a 20 px and a 200 px person;
  CenterNet regresses raw sizes);
* the centre's sub-pixel offset from that pixel, in map pixels.

Loss (``box_loss``): the squared error of C over every known pixel, as
Eq. (6) is for a joint's map, plus the L1 error of size and offset at the
centre pixels (CenterNet's), summed over the image and averaged over the
batch like Eq. (8); it joins Eq. (8) with one weight. CenterNet puts a
penalty-reduced focal loss on C instead; measured on the toy (README, "The
paper's future work"), in the toy's 9 epochs it left C as broad blobs, one
3 x 3 maximum for several people (box recall 0.39 at any threshold),
where the squared error gives a peak near 90 % of the people, low ones.

Decoding (``decode_boxes``): peaks of C (3 x 3 maximum, as CenterNet),
their size and offset, then greedy box NMS (IoU) and a score threshold.
How high a peak must be depends on how the head was trained (the squared
error leaves peaks well below 1), so the threshold is not a constant:
``choose_threshold`` sets it where the boxes' F1 at IoU 0.5 is highest on
training scenes (``bottom_up_bbox.calibrate_box_threshold``, after every
epoch), and the head keeps it with its weights (``BoxHead.threshold``).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .coco_eval import box_iou
from .layers import ch, init_deconv_bilinear
from .transforms import from_stride, to_stride

SIGMA_SHARE = 0.1     # sigma of the centre peak = 0.1 x sqrt(w h) (input px); at least one map pixel
CHANNELS = 5          # centre, log w, log h, offset x, offset y
THRESHOLD = 0.3       # decoding: a head's threshold until it is calibrated (the simulated detector's 0.3)
FLOOR = 0.02          # the lowest threshold ``choose_threshold`` considers
NMS_IOU = 0.5         # decoding: greedy box NMS at IoU 0.5, as CenterNet's optional NMS and YOLOv2's


class BoxHead(nn.Module):
    """The head: one 3 x 3 convolution on what a next stage would read (F and
    the last stage's maps and fields, at stride 8), the stage branches' 2x
    deconvolution when the network has one, and a 1 x 1 to the five outputs.
    Its width is CenterNet's head for a ResNet backbone, 64 channels (x the
    network's width multiplier): a stage branch (three 3 x 3 convolutions,
    two 1 x 1) would add a third of the toy network's time, and the head
    reads features the stages already made; at 128 channels it added 11 %
    to the toy's forward pass (README).

    The size outputs start at the log of ``size_prior`` (input px): an L1
    loss on log sizes moves an Adam-trained bias by about the learning rate
    per step, so from zero it would take thousands of steps to reach a
    person's log size of ~4. ``threshold``, the decoding threshold of its
    centre map, is saved with the weights (``choose_threshold``)."""

    def __init__(self, cin, width, upsample, size_prior):
        super().__init__()
        c = ch(64, width, least=4)
        layers = [nn.Conv2d(cin, c, 3, padding=1), nn.ReLU(inplace=True)]
        if upsample:
            deconv = nn.ConvTranspose2d(c, c, 4, stride=2, padding=1)
            init_deconv_bilinear(deconv)
            layers += [deconv, nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)
        self.out = nn.Conv2d(c, CHANNELS, 1)
        with torch.no_grad():
            self.out.bias[1:3] = float(np.log(size_prior))
        self.register_buffer("threshold", torch.tensor(THRESHOLD))

    def forward(self, x):
        return self.out(self.body(x))


def box_targets(boxes, shape, stride, sigma_share=SIGMA_SHARE):
    """Targets of one image, ``(6, h, w)``: the centre map, log width, log
    height, offset x, offset y and the weight that marks each person's
    centre pixel (where size and offset are supervised), for person
    ``boxes`` (K, 4: x, y, w, h in input pixels). Two centres on one pixel:
    the later person keeps it (the earlier is then learnt from the centre
    map alone)."""
    h, w = shape
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    t = np.zeros((CHANNELS + 1, h, w), np.float32)
    xs, ys = from_stride(np.arange(w), stride), from_stride(np.arange(h), stride)
    for x, y, bw, bh in b:
        if bw <= 0 or bh <= 0:
            continue
        c = np.array([x + bw / 2, y + bh / 2])
        sigma = max(sigma_share * np.sqrt(bw * bh), stride)
        g = np.exp(-((xs[None, :] - c[0]) ** 2 + (ys[:, None] - c[1]) ** 2) / sigma ** 2)
        t[0] = np.maximum(t[0], g)
        u = to_stride(c, stride)                          # the centre in map pixels
        j, i = np.round(u).astype(int)
        if 0 <= i < h and 0 <= j < w:
            t[1:3, i, j] = np.log([bw, bh])
            t[3:5, i, j] = u - (j, i)
            t[5, i, j] = 1.0
    return t


def box_loss(pred, target, known=None):
    """The head's loss for a batch: ``pred`` (B, 5, h, w) = centre map,
    log w, log h, offset x, offset y; ``target`` (B, 6, h, w) as
    ``box_targets`` gives them; ``known`` (B, 1, h, w): 0 where nobody
    annotated (crowd regions: Eq. 6's W). Squared error of the centre map
    over the known pixels plus L1 of size and offset at the centre pixels,
    summed per image, averaged over the images (as Eq. 8 is here)."""
    pred, target = pred.float(), target.float()
    known = 1.0 if known is None else known
    at_centre = target[:, 5:6]
    l_centre = ((pred[:, :1] - target[:, :1]) ** 2 * known).sum()
    l_size_offset = ((pred[:, 1:5] - target[:, 1:5]).abs() * at_centre).sum()
    return (l_centre + l_size_offset) / pred.shape[0]


def unmirror_boxes(pred):
    """The head's output (B, 5, h, w) for a mirrored input -> that for the
    input itself, as ``unmirror`` does for the maps: x mirrored back, the
    offset's x negated (a centre at u in the mirror is at w - 1 - u, and its
    pixel at w - 1 - round(u)); sizes do not change under a mirror."""
    pred = pred.flip(-1)
    return torch.cat([pred[:, :3], -pred[:, 3:4], pred[:, 4:]], 1)


@torch.no_grad()
def decode_boxes(pred, stride, threshold=THRESHOLD, top_k=50, nms_iou=NMS_IOU):
    """Person boxes (N, 5: x, y, w, h, score in input pixels) from one
    image's head output ``pred`` (5, h, w): peaks of the centre map that are
    the maximum of their 3 x 3 neighbourhood and at least ``threshold`` (at
    most ``top_k``), each with the size and offset read at its pixel, then
    greedy NMS: a box overlapping a higher-scoring kept one by IoU above
    ``nms_iou`` is dropped."""
    pred = torch.as_tensor(pred).float()
    c = pred[0]
    peak = (c == F.max_pool2d(c[None, None], 3, stride=1, padding=1)[0, 0]) & (c >= threshold)
    scores = c[peak]
    order = torch.argsort(scores, descending=True)[:top_k]
    i, j = (t[order] for t in torch.nonzero(peak, as_tuple=True))
    scores = scores[order].numpy().astype(np.float64)
    u = np.stack([j.numpy() + pred[3, i, j].numpy(), i.numpy() + pred[4, i, j].numpy()], 1)
    centre = from_stride(u, stride)
    wh = np.exp(np.stack([pred[1, i, j].numpy(), pred[2, i, j].numpy()], 1).astype(np.float64))
    boxes = np.concatenate([centre - wh / 2, wh, scores[:, None]], 1).reshape(-1, 5)
    return box_nms(boxes, nms_iou)


def rescale_boxes(boxes, factor):
    """Boxes (N, 4+: x, y, w, h, ...) from one pixel grid to another ``factor``
    (x, y) times finer, in the pixel-centre convention of the joints
    (``Prediction.to_image``: x -> (x + 0.5) f - 0.5); the other columns kept."""
    b = np.array(boxes, np.float64)                                       # a copy
    b[:, :2] = (b[:, :2] + 0.5) * factor - 0.5
    b[:, 2:4] *= factor
    return b


def box_nms(boxes, iou):
    """Greedy NMS of (N, 5) x, y, w, h, score rows (any order): the kept
    rows, highest score first."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 5)
    boxes = boxes[np.argsort(-boxes[:, 4], kind="stable")]
    overlap = box_iou(boxes[:, :4], boxes[:, :4])
    keep = []
    for k in range(len(boxes)):
        if all(overlap[k, m] <= iou for m in keep):
            keep.append(k)
    return boxes[keep]


def choose_threshold(boxes, truths, iou=0.5, floor=FLOOR):
    """The decoding threshold at which the boxes' F1 at IoU >= ``iou`` is
    highest: ``boxes``, per image, the (N, 5) boxes decoded at ``floor``
    (x, y, w, h, score); ``truths``, per image, the (K, 4) true boxes. Each
    image's boxes are matched greedily as COCO's AP matches them (highest
    score first, each true box once, to the free one it overlaps most; no
    crowd regions: the truths are the scored people's boxes), so that
    a threshold t keeps exactly the matches of the boxes scoring >= t; every
    box's score is a candidate (ties: the higher threshold). Chosen on
    training scenes, never on the scenes that are scored."""
    scores, hits, n_true = [], [], 0
    for b, t in zip(boxes, truths):
        b = np.asarray(b, np.float64).reshape(-1, 5)
        t = np.asarray(t, np.float64).reshape(-1, 4)
        b = b[np.argsort(-b[:, 4], kind="stable")]
        free = np.ones(len(t), bool)
        overlap = box_iou(b[:, :4], t) if len(t) else np.zeros((len(b), 0))
        for k in range(len(b)):
            o = np.where(free, overlap[k], -1.0)
            m = int(np.argmax(o)) if len(t) else -1
            hit = m >= 0 and o[m] >= iou
            if hit:
                free[m] = False
            scores.append(b[k, 4])
            hits.append(hit)
        n_true += len(t)
    if not scores:
        return float(floor)
    order = np.argsort(-np.asarray(scores), kind="stable")
    s, tp = np.asarray(scores)[order], np.cumsum(np.asarray(hits)[order])
    kept = np.arange(1, len(s) + 1)
    f1 = 2 * tp / (kept + n_true)                      # 2 TP / (2 TP + FP + FN)
    last = np.r_[s[1:] < s[:-1], True]                 # a threshold keeps every box of its score
    f1 = np.where(last, f1, -1.0)
    best = np.flatnonzero(f1 == f1.max())[0]           # the first = the highest threshold
    return float(max(s[best], floor))
