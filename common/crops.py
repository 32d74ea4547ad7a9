"""The person crop both papers use: MPII's convention, and boxes read into it.

MPII gives each person a ``center`` and a ``scale`` = the person's height /
200 px. The crop is a square of side 1.25 x 200 x scale around the centre
(HRNet's margin), so a person of scale 1 measures 256 / 1.25 = 204.8 px in a
256 px crop -- "a body size of 200 px" in paper 1's words, which is what its
target sizes (§3) are given for. A data set with person boxes instead (the
toy scenes, COCO, AI Challenger, a detector's output) is cropped by the same
rule with the box's longer side standing in for the height
(``box_center_scale``): paper 1 trains on such crops and paper 2's top-down
baseline runs paper 1 in each detector box cropped alike.
"""
import numpy as np

BOX_MARGIN = 1.25          # crop side / person height (HRNet's MPII margin)


def crop_side(scale, zoom=1.0):
    """Side in image pixels of the square crop around a person of MPII
    ``scale`` (height / 200 px): 1.25 x the height, divided by an
    augmentation ``zoom`` (zooming in by s shrinks the box: the person
    appears s x larger). Training, evaluation and the demos all crop so."""
    return 200.0 * scale * BOX_MARGIN / zoom


def body_px(input_size):
    """Height in crop pixels of the person the crop is centred on."""
    return input_size / BOX_MARGIN


def box_center_scale(box):
    """The crop of a person given by a box -- one convention for every
    box-based data set (paper 1's ``--data toy-crowd``, ``coco``, ``aic``)
    and for paper 2's top-down baseline, which crops detector boxes with it.

    ``box`` = (x, y, w, h) in image pixels. Returns ``(center (2,), scale)``:
    the box centre and ``scale = max(w, h) / 200``, so that ``crop_side(scale)``
    is a square of 1.25 x the box's longer side around the centre -- MPII's
    convention with the box's longer side standing in for the person's
    height (a box is the tightest frame of a person; BOX_MARGIN adds the same
    context an MPII crop has). A degenerate box is taken as 1 px, so the crop
    is never empty. COCO boxes are continuous coordinates half a pixel off
    ours (see ``common.coco_aic``); detector boxes share that frame and half
    a pixel is far below a box's precision, so no offset is applied --
    training and top-down inference crop alike, which is what matters.
    """
    x, y, w, h = (float(v) for v in np.asarray(box, dtype=np.float64).reshape(4))
    center = np.array([x + w / 2, y + h / 2])
    return center, max(w, h, 1.0) / 200.0
