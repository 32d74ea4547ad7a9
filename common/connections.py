"""Paper 2's Eq. (5) for many candidate pairs at once: the fast form.

``bottom_up_bbox.connection_score`` computes Eq. (5) for one pair as the
paper writes it. The parse needs it for thousands of pairs per image, so
``connection_scores`` computes the very same numbers (the same Q, |Q| =
ceil(||d||) + 1 points, each read at its nearest pixel; tested against the
plain form) for every pair asked for at once: the samples of all pairs
laid end to end and summed in cache-sized blocks (``eq5_sums``), into a
``Connections`` that several parsers share, so that no pair is scored
twice. With ``support`` it also counts the samples that agree with the
limb, which only the criterion of Cao et al. [3] reads.

Here rather than in ``bottom_up_bbox.py``: this is numerics -- the fused
kernel beside the script's plain form, as nanoGPT calls a fused attention
beside its manual one. Which pairs are scored (Algorithm 1, line 2: those
inside a common box) is the paper's and stays in the script.
"""
from typing import NamedTuple

import numpy as np


# [3]'s released code samples the field at 10 points per pair and counts a
# point as support when its dot product exceeds 0.05 (its ``thre2``).
SUPPORT_THRESHOLD = 0.05


class Connections(NamedTuple):
    """Eq. (5) of candidate pairs, per limb: C matrices each, of shape
    (candidates of j1, candidates of j2) in ``Candidates.by_joint`` order.
    NaN marks a pair that has not been scored (see ``connection_scores``):
    it is never a connection, as NaN > t is false."""
    score: list           # Eq. (5): the mean of L_c(q) . d/||d|| over Q
    support: list         # the fraction of Q where L_c(q) . d/||d|| > SUPPORT_THRESHOLD
    #                       (only [3]'s criterion reads it: NaN until asked for)
    length: list          # ||d|| in map pixels


def unscored(cand, limbs):
    """``Connections`` of ``cand`` with no pair scored yet (all NaN)."""
    def nan():
        return [np.full((len(cand.by_joint[a]), len(cand.by_joint[b])), np.nan, np.float32) for a, b in limbs]
    return Connections(nan(), nan(), nan())


def connection_scores(fields, cand, limbs, pairs=None, conn=None, support=False):
    """Eq. (5) for candidate pairs of every limb at once: the fast form of
    ``connection_score`` (the same Q, |Q| proportional to ||d||, each pair at
    its own |Q|), the samples of all pairs laid end to end and summed in
    cache-sized blocks (``eq5_sums``). Also returned: ||d||, and with
    ``support`` -- read only by the criterion of [3], ``greedy_connections``
    -- the fraction of Q that supports the connection.

    ``pairs``: per limb, a bool (candidates of j1, candidates of j2) matrix
    of the pairs to score; None: every pair. ``conn``: ``Connections`` to
    fill in place -- the pairs it already holds (with ``support``: those
    whose support it holds) are not scored again, so parsers that share an
    image's ``Connections`` share their work. Pairs not asked for stay NaN.
    """
    conn = unscored(cand, limbs) if conn is None else conn
    if pairs is None:
        pairs = [np.ones(s.shape, bool) for s in conn.score]
    # The pairs still to do: not yet scored -- or, when [3]'s parse asks for
    # support, not yet given their support (ours may have scored them already).
    have = conn.support if support else conn.score
    todo = [np.nonzero(want & np.isnan(s)) for want, s in zip(pairs, have)]          # (rows, cols) per limb
    count = [len(r) for r, _ in todo]
    if sum(count) == 0:
        return conn
    h, w = fields.shape[1:]
    if ((cand.xy < 0) | (cand.xy > [w - 1, h - 1])).any():
        raise ValueError(f"connection_scores: candidates must lie in the {w}x{h} field (map pixels)")
    limb = np.repeat(np.arange(len(limbs)), count)                                   # (P,) the pairs to score
    a = np.concatenate([cand.xy[cand.by_joint[j1][r]] for (j1, _), (r, _) in zip(limbs, todo)])    # (P, 2)
    d = np.concatenate([cand.xy[cand.by_joint[j2][k]] for (_, j2), (_, k) in zip(limbs, todo)]) - a
    n = np.linalg.norm(d, axis=-1)                                                    # (P,) ||d||
    nq = np.ceil(n).astype(np.int64) + 1                                              # (P,) |Q|
    total, inner = np.zeros(len(n)), np.zeros(len(n))
    # The pairs' samples lie end to end, a block of about EQ5_BLOCK at a time.
    end = np.cumsum(nq)
    cuts = np.unique(np.r_[0, np.searchsorted(end, np.arange(EQ5_BLOCK, end[-1], EQ5_BLOCK)), len(n)])
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        part = slice(lo, hi)
        total[part], inner[part] = eq5_sums(fields, a[part], d[part], n[part], nq[part], limb[part], support)
    s = total / nq                                                                    # Eq. (5)
    s[n < 1e-6] = 0.0                                                                 # no direction to compare
    first = np.cumsum(count) - count
    for c, (r, k) in enumerate(todo):                                                 # back into the matrices
        part = slice(first[c], first[c] + count[c])
        conn.score[c][r, k], conn.length[c][r, k] = s[part], n[part]
        if support:                                                                   # [3]'s criterion only
            conn.support[c][r, k] = inner[part] / np.maximum(nq[part] - 2, 1)
    return conn


EQ5_BLOCK = 32768   # samples per block: the arrays of one block stay in the CPU's cache


def eq5_sums(fields, a, d, n, nq, limb, support=False):
    """For P segments from a (P, 2) along d (P, 2) (length n, |Q| = nq
    samples) in the field of ``limb`` (P,): the sum over Q of
    L_c(q) . d/||d||, and with ``support`` the number of interior points of
    Q where it exceeds SUPPORT_THRESHOLD (else 0). The P sample sets lie end
    to end in one array: sample i is point k[i] of its segment."""
    h, w = fields.shape[1:]
    first = np.cumsum(nq) - nq                                                        # (P,) where each Q starts
    k = np.arange(nq.sum()) - np.repeat(first, nq)                                    # (S,)
    t = k / np.repeat(np.maximum(nq - 1, 1), nq)                                      # 0 ... 1 along d
    # The nearest pixel. Both ends lie in the field (``connection_scores``
    # checks), so every point between them does: no sample needs clipping.
    x = np.rint(np.repeat(a[:, 0], nq) + t * np.repeat(d[:, 0], nq))
    y = np.rint(np.repeat(a[:, 1], nq) + t * np.repeat(d[:, 1], nq))
    y *= w
    y += x
    at = y.astype(np.int64) + np.repeat(2 * limb * h * w, nq)   # L_c(q)'s x component in the flat fields
    flat = fields.reshape(-1)
    unit = d / np.maximum(n, 1e-6)[:, None]
    cos = flat[at] * np.repeat(unit[:, 0], nq)
    at += h * w                                                                       # ... its y component
    cos += flat[at] * np.repeat(unit[:, 1], nq)                                       # (S,) L_c(q) . d/||d||
    total = np.add.reduceat(cos, first, dtype=np.float64)
    if not support:
        return total, 0
    # Support is counted on the interior of Q (all points but the two ends):
    # the field's rectangle ends exactly at the two joints (Eq. 3), so the
    # end samples fall outside it about half of the time -- 2 of 10 at [3]'s
    # resolution, 2 of 4-6 on a toy forearm at stride 4, which would fail
    # the 80 % test on its own.
    ok = np.cumsum(cos > SUPPORT_THRESHOLD, dtype=np.int32)          # ok[i]: supporting samples up to i
    last = first + nq - 1
    return total, np.where(nq > 2, ok[np.maximum(last - 1, 0)] - ok[first], 0)
