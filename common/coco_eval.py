"""OKS keypoint metrics of paper 2 (Tables I-II): COCO AP and the AI Challenger score.

Both metrics score a predicted person against a ground-truth person with the
*object keypoint similarity*

    OKS = sum_i exp(-d_i^2 / (2 s^2 k_i^2)) [i scored] / sum_i [i scored],

where ``d_i`` is the distance between predicted and annotated joint ``i``,
``s^2`` the person's scale (an area) and ``k_i = 2 * sigma_i`` a per-joint
falloff (``common.skeleton``). They differ in what is scored and how:

* ``coco_keypoint_ap``: pycocotools' ``COCOeval(iouType='keypoints')``
  re-implemented in numpy, number for number (``tests/test_coco_eval.py``
  checks all ten statistics against pycocotools). Predictions are ranked by
  score, matched greedily to people at OKS thresholds .50:.05:.95, and AP
  is the area under the interpolated precision-recall curve.
* ``aic_score``: the AI Challenger 2017 ``keypoint_eval.py`` score. No ranking:
  each person's best OKS over all predictions, thresholded, divided by
  ``max(#people, #predictions)`` per image.

Inputs are COCO annotation and result dicts (``keypoints`` a flat ``x, y, v``
list, ``bbox`` ``[x, y, w, h]``) with COCO's ``v`` (2 visible, 1 occluded, 0
unlabelled); readers convert other data sets' flags.
"""
from __future__ import annotations

import json
from collections import defaultdict
from typing import NamedTuple

import numpy as np

from .atomic import atomic_write
from .skeleton import AIC_SIGMAS, COCO_SIGMAS

# pycocotools' COCOeval.Params.setKpParams. The thresholds are built with
# linspace exactly as there, so ``oks >= t`` agrees bit for bit (arange's
# accumulated step would not: its 0.75 is not pycocotools' 0.75).
OKS_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)
MAX_DETECTIONS = 20  # per image, highest scores first
AREA_RANGES = {"all": (0.0, 1e10), "medium": (32.0**2, 96.0**2), "large": (96.0**2, 1e10)}
# The box protocol (COCOeval.Params.setDetParams): 100 detections, a "small" range too.
MAX_BOX_DETECTIONS = 100
BOX_AREA_RANGES = {"all": (0.0, 1e10), "small": (0.0, 32.0**2), "medium": (32.0**2, 96.0**2),
                   "large": (96.0**2, 1e10)}


# ----------------------------------------------------------------------------
# Object keypoint similarity

def keypoint_similarity(sq_dist, sigmas, scale):
    """Per-joint ``exp(-d^2 / (2 s^2 k^2))`` with ``k = 2 sigma``, ``s^2 = scale``:
    OKS before the mean over joints (>= 0.5: "within OKS 0.5 of the truth")."""
    return np.exp(-(sq_dist / (2 * np.asarray(sigmas)) ** 2 / scale / 2))


def oks(dt_keypoints, gt_keypoints, gt_areas, gt_boxes, sigmas=COCO_SIGMAS):
    """``(D, G)`` OKS of every detection against every ground truth, as in
    pycocotools' ``COCOeval.computeOks``.

    ``dt_keypoints`` (D, J, 2 or 3): the detections' ``v`` is not used.
    ``gt_keypoints`` (G, J, 3), ``gt_areas`` (G,) (``s^2``; the annotation's
    segment area on COCO), ``gt_boxes`` (G, 4) xywh. Only labelled joints
    (``v > 0``, occluded included) are scored. A ground truth with no labelled
    joint scores all J joints by their distance to its box enlarged by the
    box size on every side, ``[x - w, x + 2w] x [y - h, y + 2h]`` (0 inside), so a
    detection on or near that person is a perfect match; such people are ignored
    by ``coco_keypoint_ap`` and only absorb detections.
    """
    dt = np.asarray(dt_keypoints, float)[:, None, :, :2]            # (D, 1, J, 2)
    gt = np.asarray(gt_keypoints, float)[None]                      # (1, G, J, 3)
    area = np.asarray(gt_areas, float)[None, :, None]               # (1, G, 1)
    x, y, w, h = np.asarray(gt_boxes, float).reshape(-1, 4).T
    labelled = gt[..., 2] > 0                                       # (1, G, J)
    has_labels = labelled.any(-1, keepdims=True)                    # (1, G, 1)

    to_joint = dt - gt[..., :2]
    lo = np.stack([x - w, y - h], -1)[None, :, None]                # (1, G, 1, 2)
    hi = np.stack([x + 2 * w, y + 2 * h], -1)[None, :, None]
    to_box = np.maximum(lo - dt, 0) + np.maximum(dt - hi, 0)
    delta = np.where(has_labels[..., None], to_joint, to_box)       # (D, G, J, 2)

    # np.spacing(1) (machine epsilon) keeps a zero-area person finite, as in pycocotools.
    sim = keypoint_similarity((delta ** 2).sum(-1), sigmas, area + np.spacing(1))  # (D, G, J)
    scored = labelled | ~has_labels
    return (sim * scored).sum(-1) / scored.sum(-1)


# ----------------------------------------------------------------------------
# COCO keypoint AP (pycocotools' COCOeval, iouType='keypoints')

def _by_image_and_category(dicts):
    groups = defaultdict(list)
    for d in dicts:
        groups[d["image_id"], d.get("category_id", 1)].append(d)
    return groups


def _keypoints(dicts):
    """(N, J, 3) array of the dicts' flat ``keypoints`` lists."""
    if not dicts:
        return np.zeros((0, 0, 3))
    return np.array([d["keypoints"] for d in dicts], float).reshape(len(dicts), -1, 3)


def _result_areas(results, keypoints):
    """The area ``COCO.loadRes`` gives each result: ``w * h`` of its ``bbox`` when
    it has one, else the area of the box spanned by *all* its keypoints (a
    joint left at (0, 0) stretches it)."""
    lo, hi = keypoints[..., :2].min(1), keypoints[..., :2].max(1)   # (D, 2)
    extent = np.prod(hi - lo, axis=-1)
    boxed = [float(r["bbox"][2]) * float(r["bbox"][3]) if r.get("bbox") else np.nan
             for r in results]
    return np.where(np.isnan(boxed), extent, boxed)


def _in_range(area, area_ranges):
    """(A, N): whether each area lies in each range, bounds included."""
    lo, hi = np.array(area_ranges).T[..., None]
    return (area >= lo) & (area <= hi)


class _ImageMatches(NamedTuple):
    """One image's matching, detections in score order (A area ranges, T thresholds)."""
    scores: np.ndarray      # (D,)
    matched: np.ndarray     # (A, T, D) bool
    dt_ignored: np.ndarray  # (A, T, D) bool: neither true nor false positive
    gt_ignored: np.ndarray  # (A, G) bool: not counted in recall


def _evaluate_image(gts, dts, sigmas, area_ranges, boxes=False):
    """Greedy matching on one image (``COCOeval.evaluateImg``), for every area
    range and OKS threshold at once; ``None`` when the image has neither ground
    truth nor detections (it then does not count at all). ``boxes``: the
    box protocol instead (``iouType='bbox'``): IoU for OKS, 100 detections,
    every non-crowd person scored."""
    if not gts and not dts:
        return None
    # A stable sort: tied detections keep their input order, like pycocotools' mergesort.
    dts = sorted(dts, key=lambda d: -d["score"])[:MAX_BOX_DETECTIONS if boxes else MAX_DETECTIONS]
    scores = np.array([d["score"] for d in dts], float)
    gt_area = np.array([g["area"] for g in gts], float)
    crowd = np.array([bool(g.get("iscrowd", 0)) for g in gts], bool)
    if boxes:
        unscored = crowd
        dt_area = np.array([d["bbox"][2] * d["bbox"][3] for d in dts], float)
        similarity = lambda: box_iou([d["bbox"] for d in dts], [g["bbox"] for g in gts], crowd)  # noqa: E731
    else:
        dt_kpts = _keypoints(dts)
        gt_kpts = _keypoints(gts)
        # pycocotools ignores crowds and people with no labelled joint in every area range.
        unscored = crowd | np.array([g.get("num_keypoints", np.count_nonzero(k[:, 2] > 0)) == 0
                                     for g, k in zip(gts, gt_kpts)], bool)
        dt_area = _result_areas(dts, dt_kpts) if dts else np.zeros(0)
        similarity = lambda: oks(dt_kpts, gt_kpts, gt_area, [g["bbox"] for g in gts], sigmas)  # noqa: E731
    gt_ignored = unscored | ~_in_range(gt_area, area_ranges)         # (A, G)

    A, T, D, G = len(area_ranges), len(OKS_THRESHOLDS), len(dts), len(gts)
    matched = np.zeros((A, T, D), bool)
    dt_ignored = np.zeros((A, T, D), bool)
    if D and G:
        sim = similarity()                                                   # (D, G)
        threshold = OKS_THRESHOLDS[:, None]                                  # (T, 1)
        ignored = gt_ignored[:, None, :]                                     # (A, 1, G)
        taken = np.zeros((A, T, G), bool)
        for d in range(D):  # sequential: a person matched by a higher score is taken
            # A crowd region may absorb any number of detections.
            free = (~taken | crowd) & (sim[d] >= threshold)                  # (A, T, G)
            # A scored person always wins over an ignored one; the ignored ones
            # are only tried when no scored person is close enough.
            scored = free & ~ignored
            candidates = np.where(scored.any(-1, keepdims=True), scored, free)
            # The best OKS; on a tie the later person, as pycocotools' ``<`` test lets it win.
            best = G - 1 - np.argmax(np.where(candidates, sim[d], -np.inf)[..., ::-1], axis=-1)
            hit = (np.arange(G) == best[..., None]) & candidates.any(-1, keepdims=True)
            taken |= hit
            matched[..., d] = hit.any(-1)
            dt_ignored[..., d] = (hit & ignored).any(-1)
    # An unmatched detection outside the area range is neither right nor wrong.
    dt_ignored |= ~matched & ~_in_range(dt_area, area_ranges)[:, None, :]
    return _ImageMatches(scores, matched, dt_ignored, gt_ignored)


def _precision_recall(images, a):
    """(T, R) interpolated precision and (T,) recall over ``images`` for area range
    ``a`` (``COCOeval.accumulate``); -1 when no ground truth is scored."""
    T, R = len(OKS_THRESHOLDS), len(RECALL_THRESHOLDS)
    n_gt = sum(np.count_nonzero(~e.gt_ignored[a]) for e in images)
    if n_gt == 0:
        return -np.ones((T, R)), -np.ones(T)
    scores = np.concatenate([e.scores for e in images])
    # Ties across images are broken by image order, then rank within the image.
    order = np.argsort(-scores, kind="mergesort")
    matched = np.concatenate([e.matched[a] for e in images], axis=1)[:, order]  # (T, N)
    ignored = np.concatenate([e.dt_ignored[a] for e in images], axis=1)[:, order]
    tp = np.cumsum(matched & ~ignored, axis=1)
    fp = np.cumsum(~matched & ~ignored, axis=1)
    recall = tp / n_gt
    precision = tp / (tp + fp + np.spacing(1))
    # Interpolation: precision at recall r is the best precision at any recall >= r.
    precision = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    interpolated = np.zeros((T, R))
    for t in range(T):
        # First ranked detection reaching each recall threshold; 0 beyond the last.
        k = np.searchsorted(recall[t], RECALL_THRESHOLDS, side="left")
        reached = k < len(scores)
        interpolated[t, reached] = precision[t, k[reached]]
    final_recall = recall[:, -1] if len(scores) else np.zeros(T)
    return interpolated, final_recall


def _mean_valid(x):
    """Mean over entries > -1 (pycocotools' summarize); -1 when there are none."""
    x = x[x > -1]
    return float(x.mean()) if x.size else -1.0


def _accumulate(gt_annotations, results, image_ids, area_ranges, sigmas=None, boxes=False):
    """``COCOeval.evaluate`` + ``accumulate``: (T, R, K, A) interpolated
    precision and (T, K, A) recall over categories K and ``area_ranges`` A
    (-1 where nothing is scored). ``image_ids`` None: the images with a
    ground truth."""
    gts = _by_image_and_category(gt_annotations)
    dts = _by_image_and_category(results)
    categories = sorted({c for _, c in gts})
    image_ids = sorted(set(i for i, _ in gts) if image_ids is None else set(image_ids))
    ranges = list(area_ranges.values())
    T, R, K, A = len(OKS_THRESHOLDS), len(RECALL_THRESHOLDS), len(categories), len(ranges)
    precision, recall = -np.ones((T, R, K, A)), -np.ones((T, K, A))
    for k, c in enumerate(categories):
        images = [_evaluate_image(gts.get((i, c), []), dts.get((i, c), []), sigmas, ranges, boxes=boxes)
                  for i in image_ids]
        images = [e for e in images if e is not None]
        for a in range(A if images else 0):
            precision[:, :, k, a], recall[:, k, a] = _precision_recall(images, a)
    return precision, recall


def coco_keypoint_ap(gt_annotations, results, image_ids=None, sigmas=COCO_SIGMAS):
    """COCO keypoint AP/AR as ``COCOeval(gt, gt.loadRes(results), 'keypoints')``
    reports them in ``stats``, as fractions.

    ``gt_annotations``: COCO annotation dicts (``image_id``, ``keypoints``,
    ``area``, ``bbox``, ``iscrowd``, ``num_keypoints``, optional
    ``category_id``, default 1). ``results``: COCO result dicts (``image_id``,
    ``keypoints``, ``score``, optional ``category_id``, default 1, optional
    ``bbox``). ``image_ids``: the evaluated images; pass every image you ran
    on, since detections on an image without people are false positives. It
    defaults to the images with a ground truth; results on other images are
    dropped. Inputs are not modified.

    What pycocotools does, and so this function:

    * A result's area (for the area ranges) is that of its ``bbox`` if it has
      one, else of the box spanned by all its keypoints (``COCO.loadRes``).
    * Per image, the 20 highest-scoring detections (stable sort) are matched,
      best score first, to the unmatched person of highest OKS >= t; crowds
      may be matched repeatedly. Crowds, people with ``num_keypoints == 0``
      and people outside the area range are "ignored": a detection matched to
      one counts neither as true nor false positive, and it gets one only if
      no scored person is within t. Unmatched detections outside the area
      range are ignored too.
    * Detections of all images are ranked by score (stable, images in sorted
      id order), precision is made monotone and read at recall 0:.01:1; AP is
      its mean over thresholds .50:.05:.95 and categories, AR the mean final
      recall. A statistic with no scored person is -1.

    Not replicated: pycocotools counts a match to a ground truth whose ``id``
    is 0 as no match (it stores ids as match flags); COCO ids start at 1, and
    so do the ids ``read_aic`` gives the official AIC layout's persons. And
    ``loadRes`` lets the *first* result decide whether all areas come from
    ``bbox``; here each result decides (the same unless some have one).
    """
    precision, recall = _accumulate(gt_annotations, results, image_ids, AREA_RANGES, sigmas=sigmas)
    r = {name: i for i, name in enumerate(AREA_RANGES)}
    # Exact equality, as pycocotools selects them: the linspace values are exact.
    t50, t75 = list(OKS_THRESHOLDS).index(0.5), list(OKS_THRESHOLDS).index(0.75)
    return {
        "AP": _mean_valid(precision[..., r["all"]]),
        "AP50": _mean_valid(precision[t50, ..., r["all"]]),
        "AP75": _mean_valid(precision[t75, ..., r["all"]]),
        "APM": _mean_valid(precision[..., r["medium"]]),
        "APL": _mean_valid(precision[..., r["large"]]),
        "AR": _mean_valid(recall[..., r["all"]]),
        "AR50": _mean_valid(recall[t50, ..., r["all"]]),
        "AR75": _mean_valid(recall[t75, ..., r["all"]]),
        "ARM": _mean_valid(recall[..., r["medium"]]),
        "ARL": _mean_valid(recall[..., r["large"]]),
    }


def box_iou(dt_boxes, gt_boxes, crowd=None):
    """``(D, G)`` IoU of xywh boxes, as pycocotools' ``maskUtils.iou`` for
    boxes: for a crowd ground truth the intersection is divided by the
    detection's area alone (a detection inside a crowd region is not
    penalised for the region's size)."""
    d = np.asarray(dt_boxes, float).reshape(-1, 4)
    g = np.asarray(gt_boxes, float).reshape(-1, 4)
    lo = np.maximum(d[:, None, :2], g[None, :, :2])
    hi = np.minimum(d[:, None, :2] + d[:, None, 2:], g[None, :, :2] + g[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
    area_d, area_g = np.prod(d[:, 2:], -1)[:, None], np.prod(g[:, 2:], -1)[None, :]
    crowd = np.zeros(len(g), bool) if crowd is None else np.asarray(crowd, bool)
    union = np.where(crowd[None, :], area_d, area_d + area_g - inter)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def coco_box_ap(gt_annotations, results, image_ids=None):
    """COCO box AP/AR (``COCOeval(gt, gt.loadRes(results), 'bbox')``'s
    ``stats`` 0-5 and 8: AP, AP50, AP75, APS, APM, APL, AR at 100 detections),
    as fractions. The keypoint protocol's matching (``_evaluate_image``)
    with IoU for OKS, 100 detections per image instead of 20, a "small" area
    range, and every non-crowd person scored (a box needs no keypoints).
    ``results``: dicts with ``image_id``, ``bbox`` (xywh) and ``score``; a
    person's ``area`` decides its range (COCO: the segment's area)."""
    precision, recall = _accumulate(gt_annotations, results, image_ids, BOX_AREA_RANGES, boxes=True)
    r = {name: i for i, name in enumerate(BOX_AREA_RANGES)}
    t50, t75 = list(OKS_THRESHOLDS).index(0.5), list(OKS_THRESHOLDS).index(0.75)
    return {"AP": _mean_valid(precision[..., r["all"]]), "AP50": _mean_valid(precision[t50, ..., r["all"]]),
            "AP75": _mean_valid(precision[t75, ..., r["all"]]), "APS": _mean_valid(precision[..., r["small"]]),
            "APM": _mean_valid(precision[..., r["medium"]]), "APL": _mean_valid(precision[..., r["large"]]),
            "AR": _mean_valid(recall[..., r["all"]])}


def bootstrap_ap(gt_annotations, results, image_ids, sigmas=COCO_SIGMAS, reference="full",
                 resamples=300, seed=0, level=0.95):
    """Paired bootstrap of AP differences over images.

    ``results``: {name: COCO result dicts}, all on the same ``image_ids``.
    Each resample draws len(image_ids) images with replacement -- the same
    draw for every name, so the differences are paired -- and recomputes
    each name's AP (area "all") from the per-image matchings, which do not
    change under resampling (COCO matches within an image only). Returns
    {name: {"AP", "diff", "lo", "hi"}}: the AP on all images, its difference
    from ``reference``'s, and the ``level`` percentile interval of that
    difference over the resamples.
    """
    gts = _by_image_and_category(gt_annotations)
    ranges = [AREA_RANGES["all"]]
    image_ids = sorted(set(image_ids))

    def per_image(res):
        dts = _by_image_and_category(res)
        return [_evaluate_image(gts.get((i, 1), []), dts.get((i, 1), []), sigmas, ranges) for i in image_ids]

    def ap(images):
        images = [e for e in images if e is not None]
        return _mean_valid(_precision_recall(images, 0)[0]) if images else -1.0

    matched = {name: per_image(res) for name, res in results.items()}
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(image_ids), (resamples, len(image_ids)))
    boot = {name: np.array([ap([m[i] for i in sorted(d)]) for d in draws]) for name, m in matched.items()}
    out, tail = {}, 100 * (1 - level) / 2
    for name, m in matched.items():
        diff = boot[name] - boot[reference]
        out[name] = {"AP": ap(m), "diff": ap(m) - ap(matched[reference]),
                     "lo": float(np.percentile(diff, tail)), "hi": float(np.percentile(diff, 100 - tail))}
    return out


def format_ap_table(rows):
    """Aligned text table of ``[(name, coco_keypoint_ap(...)), ...]`` in percent
    with one decimal, columns AP AP50 AP75 APM APL as in the paper's Tables
    I-II; an empty statistic (-1) prints as ``-``."""
    columns = ("AP", "AP50", "AP75", "APM", "APL")
    first = max([len(str(name)) for name, _ in rows] + [0])
    lines = [" " * first + "".join(f"  {c:>5}" for c in columns)]
    for name, stats in rows:
        cells = ["-" if stats[c] < 0 else f"{100 * stats[c]:.1f}" for c in columns]
        lines.append(f"{name!s:<{first}}" + "".join(f"  {s:>5}" for s in cells))
    return "\n".join(lines)


# ----------------------------------------------------------------------------
# AI Challenger keypoint score

def aic_score(gt_annotations, results, sigmas=AIC_SIGMAS, image_ids=None):
    """The AI Challenger 2017 keypoint score, as its official evaluation computes it.

    Source: ``Evaluation/keypoint_eval/keypoint_eval.py`` of
    github.com/AIChallenger/AI_Challenger_2017 (the version with
    ``np.max(oks, axis=1)``), which does, per image of the annotation file
    (``for image_id in annotations['image_ids']``: *every* reference image,
    those without people too):

    * OKS of every (person, prediction) pair with ``delta = 2 * sigmas``,
      ``scale`` = area of the person's box (cast to float32) plus 1, over that
      person's *visible* joints only (AIC flag 1 = our ``v == 2``; occluded
      joints are not scored): ``mean(exp(-d^2 / 2 / delta^2 / (scale + 1)))``.
      A person with no visible joint has OKS 0 with everything.
    * Each person keeps its best OKS over the predictions (a prediction may
      serve several people; there is no one-to-one matching and no use of
      scores), and the image counts ``max(#people, #predictions)`` entries, so
      extra predictions dilute the score (``oks_num += np.max(oks.shape)``):
      predictions on an image without people are all misses. An image
      without predictions counts its people with OKS 0.
    * score = mean over t in 0.50:0.05:0.95 of (#best OKS > t, strictly) / #entries.

    Not confirmed: the repository also holds older versions of this file
    (``AI_Challenger_eval_public/``, ``chuangxin_eval_public/`` and an earlier
    ``Evaluation/`` revision, as quoted in its issue #22 of 2017-09-27) that
    take the max over *people* per prediction (``axis=0``) and divide by
    ``scale`` without the ``+ 1``; which version scored the final leaderboard,
    and so the paper's Table I, is not recorded there.

    Inputs are the COCO dicts of ``coco_keypoint_ap`` (``bbox`` xywh, ``score``
    unused, ``iscrowd``/``area`` unused). ``image_ids``: the images of the
    reference set, those without people included (the person dicts cannot
    name them); pass them, as for ``coco_keypoint_ap``. Predictions on a
    reference image without people are misses; on an image outside the set
    they are dropped, as the official loop never visits it. Without
    ``image_ids`` the set is every image with a person *or* a prediction: the
    official one whenever predictions were made on reference images only (an
    empty image without predictions adds no entry either way). Returns -1
    when nothing is counted.
    """
    people, predictions = defaultdict(list), defaultdict(list)
    for g in gt_annotations:
        people[g["image_id"]].append(g)
    for r in results:
        predictions[r["image_id"]].append(r)
    # keypoint_eval.py: ``for image_id in annotations['image_ids']`` -- the reference file's images.
    reference = set(people) | set(predictions) if image_ids is None else set(image_ids)
    best, n_entries = [], 0
    for image in reference:
        gts, dts = people.get(image, []), predictions.get(image, [])
        # ``oks_num += np.max(oks.shape)``, or ``gt_n`` without predictions: with no
        # people, every prediction is an entry that no person's best OKS fills.
        n_entries += max(len(gts), len(dts))
        if not gts or not dts:
            continue
        gt, dt = _keypoints(gts), _keypoints(dts)                    # (G, J, 3), (P, J, 3)
        w, h = np.array([g["bbox"] for g in gts], float).reshape(-1, 4)[:, 2:].T
        scale = (w * h).astype(np.float32) + 1
        visible = gt[..., 2] == 2                                       # (G, J)
        sq_dist = ((dt[None, :, :, :2] - gt[:, None, :, :2]) ** 2).sum(-1)  # (G, P, J)
        sim = keypoint_similarity(sq_dist, sigmas, scale[:, None, None])
        oks_matrix = (sim * visible[:, None]).sum(-1) / np.maximum(visible.sum(-1), 1)[:, None]
        best.append(oks_matrix.max(axis=1))
    if n_entries == 0:
        return -1.0
    best = np.concatenate(best) if best else np.zeros(0)
    return float(np.mean([np.count_nonzero(best > t) / n_entries for t in OKS_THRESHOLDS]))


# ----------------------------------------------------------------------------
# Writing results

def coco_annotation(image_id, ann_id, keypoints, box, area, iscrowd=False):
    """A ground-truth person as a COCO annotation dict (for the evaluators)."""
    kp = np.asarray(keypoints, np.float32)
    return {"image_id": image_id, "id": int(ann_id), "category_id": 1, "iscrowd": int(iscrowd),
            "keypoints": kp.reshape(-1).tolist(), "num_keypoints": int((kp[:, 2] > 0).sum()),
            "bbox": [float(v) for v in box], "area": float(area)}


def to_coco_results(image_id, keypoints, scores, category_id=1):
    """COCO result dicts for one image's ``(N, J, 3)`` keypoints and ``(N,)`` scores.

    Coordinates are rounded to 0.01 px and the third column (``v`` or a
    per-joint confidence, unused by COCOeval) to 1e-4, far below annotation
    noise, to keep files small. Scores are kept exact: rounding would create
    ties, and tie order changes AP.
    """
    keypoints = np.asarray(keypoints, float)
    scores = np.asarray(scores, float).reshape(-1)
    if keypoints.ndim != 3 or keypoints.shape[-1] != 3 or len(keypoints) != len(scores):
        raise ValueError(f"keypoints must be (N, J, 3) with N = len(scores) = {len(scores)}, "
                         f"got {keypoints.shape}")
    rounded = np.concatenate([keypoints[..., :2].round(2), keypoints[..., 2:].round(4)], -1)
    image_id = image_id.item() if isinstance(image_id, np.generic) else image_id
    return [{"image_id": image_id, "category_id": int(category_id),
             "keypoints": k.reshape(-1).tolist(), "score": float(s)}
            for k, s in zip(rounded, scores)]


def _json_default(x):
    if isinstance(x, (np.generic, np.ndarray)):
        return x.tolist()
    raise TypeError(f"{type(x).__name__} is not JSON serialisable")


def write_json(path, obj):
    """Write ``obj`` as JSON to ``path`` atomically (numpy values allowed);
    on failure the old file stays (``common.atomic``)."""
    with atomic_write(path, "w") as f:
        json.dump(obj, f, default=_json_default)
    return path
    return path
