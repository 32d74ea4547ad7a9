"""PCKh (MPII) and PCK (LSP): the accuracy numbers of paper 1, Tables 5-7.

Both metrics ask one question per annotated joint: is the prediction within
``threshold * norm`` pixels of the ground truth? They differ only in ``norm``:

* **PCKh@0.5** (MPII): ``norm`` = head size = 0.6 * diagonal of the annotated
  head box (see ``common.datasets.read_mpii_head_sizes``).
* **PCK@0.2** (LSP): ``norm`` = torso size = ||left shoulder - right hip||
  (``torso_size`` below).

Conventions shared with the official evaluation code, each cited where used:
``<=`` at the threshold, only annotated joints count (occluded ones included),
pelvis and thorax are never scored on MPII, and "Total" pools every scored
joint, so joints annotated more often weigh more.
"""
from __future__ import annotations

import numpy as np

from .skeleton import MPII_JOINTS, TABLE_PARTS

# The official MATLAB tables (MPII's evalMPII genTablePCK.m, and the LSP PCK
# code of Chen & Yuille, bearpaw/eval_pose utils/eval_pck.m) average upper neck
# and head top into "Head". HRNet/mmpose's Python MPII evaluation, which
# skeleton.TABLE_PARTS follows, uses the head top alone. The Totals agree.
# Pass ``parts=MATLAB_PARTS`` to part_table to reproduce the official layout.
MATLAB_PARTS = (("Head", ("upper_neck", "head_top")),) + TABLE_PARTS[1:]

# Never scored on MPII: the official annolist2matrix keeps 14 of 16 joints and
# HRNet masks indices 6:8 ("PCKh.mask[6:8] = True"). LSP has no such joints.
NOT_SCORED = ("pelvis", "thorax")

# The columns of paper 1's Tables 5-7: those numbers come from the official
# MATLAB evaluation code (MPII's genTablePCK.m; the LSP PCK code), whose
# "Head" is the mean of upper neck and head top (LSP: neck and head top).
HEAD_NOTE = "Head = mean of upper neck and head top, as in the MPII / LSP evaluation code"


def torso_size(keypoints, names=MPII_JOINTS):
    """PCK's normaliser on LSP: distance from the left shoulder to the right hip.

    The definition of Sapp & Taskar (CVPR'13) as implemented in the LSP PCK
    code most papers report with (bearpaw/eval_pose, utils/eval_pck.m:
    ``refDist = norm(gt(:,10) - gt(:,3))``, i.e. LSP joints 10 = left shoulder
    and 3 = right hip, 1-based). ``keypoints`` is ``(..., J, 3)``; the result
    is ``(...)``, NaN where either joint is not annotated.
    """
    k = np.asarray(keypoints, dtype=np.float64)
    ls, rh = k[..., names.index("l_shoulder"), :], k[..., names.index("r_hip"), :]
    d = np.linalg.norm(ls[..., :2] - rh[..., :2], axis=-1)
    return np.where((ls[..., 2] > 0) & (rh[..., 2] > 0), d, np.nan)


def pck(pred, gt, norm, threshold, mask=None):
    """Percentage of Correct Keypoints, per joint.

    A joint counts as correct iff ``||pred - gt|| <= threshold * norm``. The
    ``<=`` is the official one: MPII's computePCK.m (``d <= range(k)``), HRNet's
    ``scaled_uv_err <= threshold`` and eval_pck.m for LSP all use it.

    Args:
        pred: ``(N, J, 2)`` predicted ``(x, y)`` (extra trailing columns such
            as a score are ignored). NaN predictions count as wrong, as in the
            official code (``pred(isnan(pred)) = inf``).
        gt: ``(N, J, 3)`` ground truth; only joints with ``v > 0`` are scored.
        norm: ``(N,)`` per-person normaliser in pixels (head or torso size).
        threshold: fraction of ``norm`` (0.5 for PCKh, 0.2 for PCK).
        mask: optional ``(N, J)`` bool, further restricting which ground-truth
            joints count, e.g. ``gt[..., 2] == 2`` for visible joints only or
            ``gt[..., 2] == 1`` for occluded ones.

    Returns:
        ``(rate, correct)``: ``rate`` is ``(J,)`` in [0, 1], NaN for a joint
        with nothing to score; ``correct`` is ``(N, J)`` bool, False wherever
        a joint is not scored.
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    norm = np.asarray(norm, dtype=np.float64).reshape(-1)
    if gt.ndim != 3 or gt.shape[2] < 3:
        raise ValueError(f"gt must be (N, J, 3) with x, y, v; got shape {gt.shape}")
    if pred.ndim != 3 or pred.shape[:2] != gt.shape[:2] or pred.shape[2] < 2:
        raise ValueError(f"pred must be (N, J, 2) matching gt {gt.shape[:2]}; got shape {pred.shape}")
    if norm.shape != (gt.shape[0],):
        raise ValueError(f"norm must be (N,) = ({gt.shape[0]},); got shape {norm.shape}")
    scored = gt[..., 2] > 0
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != scored.shape:
            raise ValueError(f"mask must be (N, J) = {scored.shape}; got shape {mask.shape}")
        scored &= mask
    # A person whose normaliser is unknown cannot be scored; saying so beats
    # silently counting all of their joints as wrong (or right).
    bad = scored.any(axis=1) & ~(np.isfinite(norm) & (norm > 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"norm must be positive and finite for every scored person; person {i} has {norm[i]}")

    dist = np.linalg.norm(pred[..., :2] - gt[..., :2], axis=-1)  # (N, J) pixels
    with np.errstate(invalid="ignore"):  # NaN distances compare False = wrong
        correct = (dist <= threshold * norm[:, None]) & scored
    count = scored.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(count > 0, correct.sum(axis=0) / count, np.nan)
    return rate, correct


def pckh(pred, gt, head_size, threshold=0.5, mask=None):
    """PCKh@0.5 for MPII: ``pck`` normalised by the head size (Andriluka et al.
    CVPR'14: 50% of the head segment length). Returns ``(rate, correct)``."""
    return pck(pred, gt, head_size, threshold, mask)


def pck_torso(pred, gt, torso, threshold=0.2, mask=None):
    """PCK@0.2 for LSP: ``pck`` normalised by the torso size (``torso_size``).
    Returns ``(rate, correct)``."""
    return pck(pred, gt, torso, threshold, mask)


def part_table(correct, gt, names=MPII_JOINTS, mask=None, parts=TABLE_PARTS,
               not_scored=NOT_SCORED):
    """One row of the paper's Tables 5-7, in percent: ``{"Head": .., ..., "Total": ..}``.

    * A part column (``Shoulder`` ...) is the plain mean of its joints' own
      rates, left and right weighted equally, as in HRNet's
      ``0.5 * (PCKh[lsho] + PCKh[rsho])`` and the official genTablePCK.m. A
      joint with nothing to score (e.g. no occluded heads in an "occluded
      only" subset) is left out of the mean; a part with none at all is NaN.
    * ``Total`` pools all scored joints except ``not_scored``: the number
      correct over the number annotated. That is the official "Total"
      (computePCK.m: mean over all 14 joints' distances) and equals HRNet's
      "Mean" = sum(PCKh * jnt_count / sum(jnt_count)), pelvis and thorax
      masked. Note that it includes the upper neck, which no column shows.

    Args:
        correct: ``(N, J)`` bool from ``pck``.
        gt: ``(N, J, 3)``; which joints were annotated.
        names: joint names of the ``J`` axis.
        mask: the same optional subset mask that was given to ``pck``.
        parts: ``(column, joint names)`` pairs; ``MATLAB_PARTS`` for the
            official layout (Head = upper neck and head top).
    """
    correct = np.asarray(correct, dtype=bool)
    scored = np.asarray(gt)[..., 2] > 0
    if mask is not None:
        scored &= np.asarray(mask, dtype=bool)
    if correct.shape != scored.shape:
        raise ValueError(f"correct {correct.shape} and gt {scored.shape[:2]} must match")
    correct = correct & scored  # a subset mask given here applies to both
    hits, count = correct.sum(axis=0), scored.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(count > 0, 100.0 * hits / count, np.nan)

    row = {}
    for column, joints in parts:
        r = rate[[names.index(j) for j in joints]]
        row[column] = float(np.mean(r[~np.isnan(r)])) if (~np.isnan(r)).any() else float("nan")
    keep = np.array([n not in not_scored for n in names])
    total = count[keep].sum()
    row["Total"] = float(100.0 * hits[keep].sum() / total) if total else float("nan")
    return row


def table_columns(joints):
    """The columns of a Table 5-style row for ``joints``: (column, joint names).

    MPII (and LSP, mapped into it): the official MATLAB columns
    (``MATLAB_PARTS``, Head = upper neck and head top). COCO and AI
    Challenger have no PCK table of their own; the same body columns are
    kept and "Head" averages the head joints the data set has (COCO: nose,
    eyes, ears; AIC: head top and neck, as LSP's Head is neck and head top).
    """
    joints = tuple(joints)
    if joints == MPII_JOINTS:
        return MATLAB_PARTS
    head = tuple(n for n in joints if n in ("head_top", "upper_neck", "neck", "nose", "l_eye", "r_eye",
                                            "l_ear", "r_ear"))
    body = tuple((c, tuple(n for n in names if n in joints)) for c, names in MATLAB_PARTS[1:])
    return (("Head", head),) + tuple((c, names) for c, names in body if names)


def head_note(joints):
    """What "Head" means in a table of ``table_columns(joints)``."""
    if tuple(joints) == MPII_JOINTS:
        return HEAD_NOTE
    return "Head = mean of " + ", ".join(dict(table_columns(joints))["Head"])


def format_table(rows):
    """Aligned text table of ``{row name: part_table(...)}``, one decimal like
    the paper; NaN prints as ``-``. Columns are taken from the first row."""
    if not rows:
        return ""
    columns = list(next(iter(rows.values())))
    first = max(len(str(n)) for n in rows)
    widths = [max(len(c), 5) for c in columns]
    lines = [" " * first + "".join(f"  {c:>{w}}" for c, w in zip(columns, widths))]
    for name, row in rows.items():
        cells = ["-" if np.isnan(row[c]) else f"{row[c]:.1f}" for c in columns]
        lines.append(f"{name:<{first}}" + "".join(f"  {s:>{w}}" for s, w in zip(cells, widths)))
    return "\n".join(lines)


def bootstrap_total(correct, gt, names=MPII_JOINTS, reference=None, mask=None, resamples=1000, seed=0,
                    level=0.95, not_scored=NOT_SCORED):
    """Paired bootstrap over people of ``part_table``'s Total and its
    differences from a reference row (Table 5's intervals).

    ``correct``: {row name: ``(N, J)`` bool from ``pck``}, every row scored on
    the same N people in the same order. Each resample draws N people with
    replacement -- the same draw for every row, so the differences are
    paired -- and recomputes each Total as part_table does (joints correct
    over joints scored, ``not_scored`` left out, ``mask`` as in ``pck``).
    Returns {name: {"Total", "diff", "lo", "hi"}}: the Total on all people,
    its difference from ``reference``'s (the first row by default) and the
    ``level`` percentile interval of that difference, in points.
    """
    names = tuple(names)
    scored = np.asarray(gt)[..., 2] > 0
    if mask is not None:
        scored &= np.asarray(mask, dtype=bool)
    scored &= np.array([n not in not_scored for n in names])
    reference = reference if reference is not None else next(iter(correct))
    hits = {k: (np.asarray(c, dtype=bool) & scored).sum(axis=1) for k, c in correct.items()}    # (N,) each
    count = scored.sum(axis=1)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(count), (resamples, len(count)))
    with np.errstate(invalid="ignore", divide="ignore"):
        total = {k: 100.0 * h.sum() / count.sum() for k, h in hits.items()}
        boot = {k: 100.0 * h[draws].sum(axis=1) / count[draws].sum(axis=1) for k, h in hits.items()}
    out, tail = {}, 100 * (1 - level) / 2
    for k in correct:
        diff = boot[k] - boot[reference]
        finite = diff[np.isfinite(diff)]
        lo, hi = (np.percentile(finite, (tail, 100 - tail)) if len(finite) else (np.nan, np.nan))
        out[k] = {"Total": float(total[k]), "diff": float(total[k] - total[reference]),
                  "lo": float(lo), "hi": float(hi)}
    return out
