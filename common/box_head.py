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
Eq. (6) is for a joint's map (CenterNet uses a focal loss instead), plus
the L1 error of size and offset at the centre pixels (CenterNet's), summed
over the image and averaged over the batch like Eq. (8); it joins Eq. (8)
with one weight. Measured on the toy (README, "The paper's future work"):
the squared error leaves C's peaks low, and the 0.3 threshold then drops
people whose centre the head did find. Decoding (``decode_boxes``):
peaks of C (3 x 3 maximum, as CenterNet), their size and offset, then
greedy box NMS (IoU) and a score threshold.
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
THRESHOLD = 0.3       # decoding: centre peaks below it are not boxes (the simulated detector's 0.3)
NMS_IOU = 0.5         # decoding: greedy box NMS at IoU 0.5, as CenterNet's optional NMS and YOLOv2's


class BoxHead(nn.Module):
    """The head: one 3 x 3 convolution on what a next stage would read (F and
    the last stage's maps and fields, at stride 8), the stage branches' 2x
    deconvolution when the network has one, and a 1 x 1 to the five outputs.
    Kept this small on purpose: a stage branch (three 3 x 3 convolutions,
    two 1 x 1) would add a third of the toy network's time, and the head
    reads features the stages already made.

    The size outputs start at the log of ``size_prior`` (input px): an L1
    loss on log sizes moves an Adam-trained bias by about the learning rate
    per step, so from zero it would take thousands of steps to reach a
    person's log size of ~4."""

    def __init__(self, cin, width, upsample, size_prior):
        super().__init__()
        c = ch(128, width, least=4)
        layers = [nn.Conv2d(cin, c, 3, padding=1), nn.ReLU(inplace=True)]
        if upsample:
            deconv = nn.ConvTranspose2d(c, c, 4, stride=2, padding=1)
            init_deconv_bilinear(deconv)
            layers += [deconv, nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)
        self.out = nn.Conv2d(c, CHANNELS, 1)
        with torch.no_grad():
            self.out.bias[1:3] = float(np.log(size_prior))

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
