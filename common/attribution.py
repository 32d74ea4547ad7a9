"""Where each person is lost: the one step of a parse that lost each missed person.

Paper 2 argues (§IV-B2, Table IV) that parsing inside boxes beats the
box-free parse of Cao et al. [3] because it "avoids the disconnected parts of
poses and the mistakes propagation across different poses". An AP difference
cannot say whether that is why. This module follows every annotated person
through the steps of a parse and names, for each person the parse missed,
the first step at which they were lost -- so that a table of AP differences
becomes a table of causes, counted person by person, that add up to the
misses.

A person is *missed* when COCO's matching (results by decreasing score, each
taking the unmatched person of highest OKS, at most ``MAX_DETECTIONS`` per
image) leaves them without a result of OKS >= ``tau``. The steps, in the
order a parse takes them:

Ours (Algorithm 1 in boxes, pose NMS, completion):
  ``no_box``           no box overlaps their annotated box by IoU >= 0.5
                       (before extension): the detector missed them
  ``network``          under half of their labelled joints has a candidate
                       (a map peak within OKS 0.5): the maps lost them
  ``outside_box``      their box (the one of highest IoU) holds too few of
                       their joints once extended: even a perfect parse of
                       the box alone stays below ``tau``
  ``box_took_neighbour``  their box's most confident pose is someone else's
  ``joined_neighbour`` the pose holding most of their joints also holds a
                       neighbour's joints (a cross-person connection)
  ``fragmented``       their joints were split over poses, or left unconnected
  ``nms``              a pose of OKS >= tau was assembled, but pose NMS (Eq.
                       9-11, or one pose per box) eliminated every such pose
  ``completion``       the kept pose matched before completion, not after it
                       (never, under OKS: a completed joint only fills one
                       that was missing, and both score 0 when wrong)
  ``matching``         a kept pose matches them, but the matching gave it to
                       a higher-ranked claim (a neighbour, a duplicate)

[3] (box-free greedy parse, lists deleted below 4 joints or 0.4 per joint):
  ``network``, ``joined_neighbour``, ``fragmented`` as above;
  ``deleted``          a list of OKS >= tau was built and then deleted;
  ``matching`` as above.

Everything is in image pixels and the data set's evaluated joints; the
parsers hand their steps over as a ``Trace`` (``bottom_up_bbox.trace_*``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .coco_eval import MAX_DETECTIONS, keypoint_similarity, oks

OURS_CAUSES = ("no_box", "network", "outside_box", "box_took_neighbour", "joined_neighbour", "fragmented",
               "nms", "completion", "matching")
GREEDY_CAUSES = ("network", "joined_neighbour", "fragmented", "deleted", "matching")
CAUSE_TEXT = {
    "no_box": "no box covers them",
    "network": "the maps found under half of their joints",
    "outside_box": "their joints lie outside the extended box",
    "box_took_neighbour": "their box's parse assembled a neighbour",
    "joined_neighbour": "their joints went into a neighbour's pose",
    "fragmented": "split into fragments / left unconnected",
    "nms": "pose NMS eliminated them",
    "completion": "completion spoiled them",
    "deleted": "their list was deleted (< 4 joints or < 0.4 per joint)",
    "matching": "their pose went to a higher-ranked claim",
}


@dataclass
class Trace:
    """What one parser did on one image (P poses it assembled, image px)."""
    assembled: np.ndarray      # (P, J, 3) each pose as assembled (before NMS, completion, deletion)
    final: np.ndarray          # (P, J, 3) as output (after completion); rows of removed poses unused
    kept: np.ndarray           # (P,) bool: output (survived NMS / [3]'s deletion rule)
    score: np.ndarray          # (P,) ranking score (what the AP ranks the output poses by)
    conf: np.ndarray           # (P,) the confidence pose NMS ranks by (Eq. 9; [3]: its own score)
    box: np.ndarray            # (P,) index of the box it was parsed in, -1: no box
    boxes: np.ndarray | None   # (B, 4) the extended boxes parsed in, x y w h; None: a box-free parse
    detected: np.ndarray | None  # (B, 4) the same boxes before extension, as the detector gave them
    rival: np.ndarray          # (P,) the pose whose elimination criterion removed it (-1: none or the box rule)
    distance: np.ndarray       # (P,) its Eq. (10) distance to that rival (NaN: none)


@dataclass
class People:
    """The scored people of one image and their OKS constants."""
    keypoints: np.ndarray      # (G, J, 3)
    areas: np.ndarray          # (G,) OKS scale s^2
    boxes: np.ndarray          # (G, 4)
    sigmas: np.ndarray         # (J,)

    def oks(self, keypoints):
        """(P, G) OKS of poses (P, J, >= 2) against the people."""
        if not len(keypoints) or not len(self.keypoints):
            return np.zeros((len(keypoints), len(self.keypoints)))
        return oks(keypoints, self.keypoints, self.areas, self.boxes, self.sigmas)

    def owners(self, keypoints):
        """(P, J) whose joint each pose joint is: the person whose same joint
        lies within OKS 0.5 of it (the nearest), -1 for none or a missing joint."""
        kp = np.asarray(keypoints, float)
        kp = kp.reshape(-1, self.keypoints.shape[1], kp.shape[-1])
        if not len(self.keypoints):
            return np.full(kp.shape[:2], -1)
        d2 = ((kp[:, None, :, :2] - self.keypoints[None, :, :, :2]) ** 2).sum(-1)    # (P, G, J)
        sim = keypoint_similarity(d2, self.sigmas, self.areas[None, :, None]) * (self.keypoints[None, ..., 2] > 0)
        owner = np.where(sim.max(1) >= 0.5, sim.argmax(1), -1)
        return np.where(kp[..., 2] > 0, owner, -1)


def coco_match(people, keypoints, scores, tau):
    """(G,) the output pose each person is matched to at OKS >= ``tau`` (-1:
    missed), as COCO's evaluation matches one image: poses by decreasing
    score, the first ``MAX_DETECTIONS``, each to the unmatched person of
    highest OKS."""
    matched = np.full(len(people.keypoints), -1)
    if not len(keypoints):
        return matched
    order = np.argsort(-np.asarray(scores), kind="stable")[:MAX_DETECTIONS]
    o = people.oks(np.asarray(keypoints)[order])
    for r, d in enumerate(order):
        free = np.where(matched < 0, o[r], -1.0)
        if free.max() >= tau:
            matched[free.argmax()] = d
    return matched


def _share(inside, labelled):
    return inside[labelled].sum() / max(labelled.sum(), 1)


def box_iou(a, b):
    """IoU of two x, y, w, h boxes."""
    lo, hi = np.maximum(a[:2], b[:2]), np.minimum(np.add(a[:2], a[2:]), np.add(b[:2], b[2:]))
    inter = float(np.prod(np.clip(hi - lo, 0, None)))
    return inter / max(float(a[2] * a[3] + b[2] * b[3]) - inter, 1e-12)


def in_box(keypoints, box):
    """(J,) bool: joints inside ``box`` (x, y, w, h)."""
    x, y = keypoints[:, 0], keypoints[:, 1]
    return (x >= box[0]) & (x <= box[0] + box[2]) & (y >= box[1]) & (y <= box[1] + box[3])


def attribute(trace, people, candidates=None, tau=0.5):
    """The step that lost each missed person (module docstring).

    ``candidates``: (N, 3) the candidate joints in image px (x, y, joint
    index), for the ``network`` step; None skips it (perfect maps).
    Returns a list of dicts, one per missed person: ``person`` (index),
    ``cause`` and, for ``nms``, ``rival`` (the eliminating pose's matched
    person, -1: none or a false pose; -2: one pose per box) and ``d``.
    """
    kept = np.flatnonzero(trace.kept)
    matched = coco_match(people, trace.final[kept], trace.score[kept], tau)
    missed = np.flatnonzero(matched < 0)
    if not len(missed):
        return []
    labelled = people.keypoints[..., 2] > 0                                   # (G, J)
    o_assembled = people.oks(trace.assembled)                                 # (P, G)
    o_final_kept = people.oks(trace.final[kept])                              # (K, G)
    o_kept_before = people.oks(trace.assembled[kept])
    owner = people.owners(trace.assembled)                                    # (P, J)
    found = _found_joints(people, candidates)
    out = []
    for g in missed:
        cause, extra = _ours_or_greedy(trace, people, g, labelled[g], o_assembled, o_kept_before, o_final_kept,
                                       owner, found, tau, kept)
        out.append({"person": int(g), "cause": cause, **extra})
    return out


def _found_joints(people, candidates):
    """(G, J) bool: a candidate of that joint lies within OKS 0.5 of it (None: all)."""
    if candidates is None:
        return np.ones(people.keypoints.shape[:2], bool)
    c = np.asarray(candidates, float).reshape(-1, 3)
    J = people.keypoints.shape[1]
    found = np.zeros(people.keypoints.shape[:2], bool)
    for j in range(J):
        xy = c[c[:, 2] == j, :2]
        if not len(xy):
            continue
        d2 = ((xy[:, None] - people.keypoints[None, :, j, :2]) ** 2).sum(-1)          # (N_j, G)
        found[:, j] = (keypoint_similarity(d2, people.sigmas[j], people.areas[None]) >= 0.5).any(0)
    return found


def _ours_or_greedy(trace, people, g, labelled, o_assembled, o_kept_before, o_final_kept, owner, found, tau,
                    kept):
    boxed = trace.boxes is not None
    truth = people.keypoints[g]
    if boxed:
        iou = np.array([box_iou(people.boxes[g], d) for d in trace.detected])
        if not len(iou) or iou.max() < 0.5:
            return "no_box", {}
    if _share(found[g], labelled) < 0.5:
        return "network", {}
    if (o_assembled[:, g].max() if len(o_assembled) else 0.0) < tau:         # never assembled
        if boxed:
            # Their box: the detection of highest IoU with theirs. Would a
            # perfect parse of it (extended) alone reach tau?
            b = int(iou.argmax())
            inside = in_box(truth, trace.boxes[b])
            perfect = np.where(inside[:, None], truth[:, :2], -1e6)          # their in-box joints, exact
            if people.oks(perfect[None])[0, g] < tau:
                return "outside_box", {}
            mine = np.flatnonzero(trace.box == b)
            if len(mine):
                top = mine[np.argmax(trace.conf[mine])]
                holds = np.bincount(owner[top][owner[top] >= 0], minlength=len(people.keypoints))
                if holds.max() > holds[g]:
                    return "box_took_neighbour", {}
        held = (owner == g).sum(1)                                            # (P,) their joints per pose
        if len(held) and held.max() > 0:
            p = int(held.argmax())
            if ((owner[p] >= 0) & (owner[p] != g)).any():
                return "joined_neighbour", {}
        return "fragmented", {}
    best_kept = o_kept_before[:, g].max() if len(o_kept_before) else 0.0
    if best_kept < tau:                                                       # assembled, then removed
        if not boxed:
            return "deleted", {}
        lost = np.flatnonzero((o_assembled[:, g] >= tau) & ~trace.kept)
        p = lost[np.argmax(o_assembled[lost, g])]
        r = int(trace.rival[p])
        if r < 0:
            return "nms", {"rival": -2, "d": None}                           # one pose per box
        k = np.flatnonzero(kept == r)
        whom = int(o_final_kept[k[0]].argmax()) if len(k) and o_final_kept[k[0]].max() >= tau else -1
        return "nms", {"rival": whom, "d": float(trace.distance[p])}
    if not ((o_final_kept[:, g] >= tau) & (o_kept_before[:, g] >= tau)).any():
        return "completion", {}
    return "matching", {}


def fragmentation(trace, people):
    """How a box-free parse split people (its ``trace``): ``lists`` built,
    ``deleted`` of them, ``deleted_joints`` correctly placed joints (on some
    person's joint) in the deleted lists, and ``split``: the people whose
    joints lie in two or more lists."""
    owner = people.owners(trace.assembled)                                # (P, J)
    per_person = [int((owner == g).any(1).sum()) for g in range(len(people.keypoints))]
    return {"lists": len(owner), "deleted": int((~trace.kept).sum()),
            "deleted_joints": int((owner[~trace.kept] >= 0).sum()), "split": sum(n >= 2 for n in per_person)}


def count(attributions, causes):
    """{cause: how many people it lost} over a list of ``attribute`` outputs."""
    c = dict.fromkeys(causes, 0)
    for a in attributions:
        c[a["cause"]] += 1
    return c
