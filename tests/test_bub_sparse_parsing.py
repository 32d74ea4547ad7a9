"""Paper 2, parsing that stays linear in the crowd: the fast paths of the
parser against plain references kept here -- Eq. (5) scored pair by pair at
its own |Q| against the all-pairs computation padded to the longest pair
(the parser's code before it scored only in-box pairs), Algorithm 1 on the
image's ranked connection list against a sort of each box's own block,
pose NMS with its joint index against the comparison with every kept pose,
and the parse with in-box scores against the parse with every pair scored."""
import numpy as np
import pytest

import bottom_up_bbox as bub
from common import connections
from common.connections import SUPPORT_THRESHOLD, connection_scores
from common.detector import jitter_boxes
from walkthrough import studies


# ----------------------------------------------------------------------------- plain references
def dense_eq5(fields, cand, limbs):
    """Eq. (5) for every pair of every limb, all pairs of a limb padded to its
    longest pair's |Q| (the parser's former code)."""
    h, w = fields.shape[1:]
    score, support, length = [], [], []
    for c, (j1, j2) in enumerate(limbs):
        A, B = cand.by_joint[j1], cand.by_joint[j2]
        if len(A) == 0 or len(B) == 0:
            for out in (score, support, length):
                out.append(np.zeros((len(A), len(B)), np.float32))
            continue
        a = cand.xy[A][:, None, :]
        d = cand.xy[B][None, :, :] - a
        n = np.linalg.norm(d, axis=-1)
        nq = np.ceil(n).astype(np.int64) + 1
        k = np.arange(nq.max())
        t = k / np.maximum(nq[..., None] - 1, 1)
        valid = k < nq[..., None]
        qx = np.clip(np.rint(a[..., 0, None] + t * d[..., 0, None]), 0, w - 1).astype(np.int64)
        qy = np.clip(np.rint(a[..., 1, None] + t * d[..., 1, None]), 0, h - 1).astype(np.int64)
        unit = d / np.maximum(n, 1e-6)[..., None]
        cos = fields[2 * c][qy, qx] * unit[..., 0, None] + fields[2 * c + 1][qy, qx] * unit[..., 1, None]
        s = (cos * valid).sum(-1) / nq
        s[n < 1e-6] = 0.0
        score.append(s.astype(np.float32))
        inner = valid & (k > 0) & (k < nq[..., None] - 1)
        support.append((((cos > SUPPORT_THRESHOLD) & inner).sum(-1) / np.maximum(nq - 2, 1)).astype(np.float32))
        length.append(n.astype(np.float32))
    return score, support, length


def box_by_box(cand, scores, limbs, inside, link_threshold, box=-1):
    """Algorithm 1 sorting each box's own block of the score matrices."""
    J = len(cand.by_joint)
    persons, person_of = [], {}
    for c, (j1, j2) in enumerate(limbs):
        rows = np.flatnonzero(inside[cand.by_joint[j1]])
        cols = np.flatnonzero(inside[cand.by_joint[j2]])
        if len(rows) == 0 or len(cols) == 0:
            continue
        starts, ends = cand.by_joint[j1][rows], cand.by_joint[j2][cols]
        confidence = scores[c][np.ix_(rows, cols)]
        r, k = np.nonzero(confidence > link_threshold)
        L, used = [], set()
        for o in np.argsort(-confidence[r, k], kind="stable"):
            start, end = int(starts[r[o]]), int(ends[k[o]])
            if start not in used and end not in used:
                used.update((start, end))
                L.append((start, end, float(confidence[r[o], k[o]])))
        for start, end, conf in L:
            p = person_of.get(start)
            if p is None:
                persons.append(bub.Pose(np.full(J, -1), [], box))
                p = person_of[start] = len(persons) - 1
                persons[p].joints[j1] = start
            persons[p].joints[j2] = end
            persons[p].links.append(conf)
            person_of[end] = p
    return persons


def nms_against_every_kept_pose(poses, eta, reading="eq10"):
    kept, boxes = [], set()
    for p in sorted(poses, key=lambda p: -p.conf):
        if p.box in boxes or any(bub.pose_distance(p, k, reading) <= eta for k in kept):
            continue
        kept.append(p)
        boxes.add(p.box)
    return kept


def eq9_one_by_one(pose, cand, box, cfg):
    ids = pose.joints[pose.joints >= 0]
    span = cand.xy[ids].max(0) - cand.xy[ids].min(0)
    ratio = float(span[0] * span[1]) / max(float(box[2] * box[3]), 1e-6)
    s1, s2 = float(cand.score[ids].mean()), float(np.mean(pose.links))
    alpha, beta, gamma = cfg.eq9_weights
    return alpha * s1 + beta * s2 + gamma * min(ratio, 1.0)


# ----------------------------------------------------------------------------- inputs
def random_candidates(rng, counts, w, h):
    """Candidates per joint at random sub-pixel positions, some on whole
    pixels, on the map's border, and two at one place (a pair with d = 0)."""
    xy, score, joint = [], [], []
    for j, n in enumerate(counts):
        p = rng.uniform(0, [w - 1, h - 1], (n, 2))
        p[: n // 3] = np.rint(p[: n // 3])
        p[-1:, 0] = 0.0
        xy.append(p), score.append(np.sort(rng.uniform(0.1, 1, n))[::-1]), joint.append(np.full(n, j))
    xy[1][-1] = xy[0][-1]
    xy = np.concatenate(xy).astype(np.float32)
    joint = np.concatenate(joint)
    return bub.Candidates(xy, np.concatenate(score).astype(np.float32), joint,
                          [np.flatnonzero(joint == j) for j in range(len(counts))])


def crowd(rng, n, sk, cfg):
    """The parsing benchmark's frame (``bub.random_crowd``) at half its size."""
    pred, boxes = studies.random_crowd(rng, n, sk, cfg, (424, 240))
    return pred.maps, pred.fields, boxes


def same_poses(a, b):
    return [(p.joints.tolist(), p.links, p.box, p.conf) for p in a] == \
           [(p.joints.tolist(), p.links, p.box, p.conf) for p in b]


# ----------------------------------------------------------------------------- Eq. (5)
def test_eq5_pair_by_pair_matches_the_padded_all_pairs_reference(monkeypatch):
    rng = np.random.default_rng(0)
    h, w, limbs = 40, 70, np.array([[0, 1], [1, 2], [1, 3]])
    cand = random_candidates(rng, (9, 12, 7, 0), w, h)                  # joint 3: no candidates
    fields = rng.normal(0, 0.6, (2 * len(limbs), h, w)).astype(np.float32)
    conn = connection_scores(fields, cand, limbs, support=True)
    for got, want in zip(conn, dense_eq5(fields, cand, limbs)):
        assert [g.shape for g in got] == [x.shape for x in want]
    score, support, length = dense_eq5(fields, cand, limbs)
    for c in range(len(limbs)):
        np.testing.assert_allclose(conn.score[c], score[c], rtol=0, atol=1e-6)   # sums in another order
        np.testing.assert_array_equal(conn.support[c], support[c])
        np.testing.assert_array_equal(conn.length[c], length[c])
    # A subset is scored exactly as in the all-pairs call, the rest stays NaN;
    # scoring the rest into the same Connections later completes them.
    wanted = [rng.random(s.shape) < 0.4 for s in conn.score]
    part = connection_scores(fields, cand, limbs, wanted, support=True)
    for c in range(len(limbs)):
        for got, full in zip((part.score[c], part.support[c], part.length[c]),
                             (conn.score[c], conn.support[c], conn.length[c])):
            np.testing.assert_array_equal(got[wanted[c]], full[wanted[c]])
            assert np.isnan(got[~wanted[c]]).all()
    connection_scores(fields, cand, limbs, None, part, support=True)
    monkeypatch.setattr(connections, "EQ5_BLOCK", 37)                          # many blocks of samples
    blocks = connection_scores(fields, cand, limbs, support=True)
    for c in range(len(limbs)):
        for x in (part, blocks):
            for got, full in zip((x.score[c], x.support[c], x.length[c]),
                                 (conn.score[c], conn.support[c], conn.length[c])):
                np.testing.assert_array_equal(got, full)


def test_the_fast_eq5_is_the_plain_one_pair_by_pair():
    """``connection_scores`` (blocked, every pair at once) gives what the
    plain form of Eq. (5) in the script, ``connection_score``, gives for each
    pair alone."""
    rng = np.random.default_rng(3)
    h, w, limbs = 30, 50, np.array([[0, 1], [1, 2]])
    cand = random_candidates(rng, (6, 5, 4), w, h)
    fields = rng.normal(0, 0.6, (2 * len(limbs), h, w)).astype(np.float32)
    conn = connection_scores(fields, cand, limbs)
    for c, (j1, j2) in enumerate(limbs):
        for r, a in enumerate(cand.by_joint[j1]):
            for k, b in enumerate(cand.by_joint[j2]):
                plain = bub.connection_score(fields, c, cand.xy[a], cand.xy[b])
                assert plain == pytest.approx(conn.score[c][r, k], abs=1e-5)


def test_eq5_counts_support_only_when_asked_for():
    """Our parse reads Eq. (5) alone; [3]'s criterion also needs the support,
    counted when a parser asks: then the scores already held are recomputed
    bit for bit and the support filled in. Candidates outside the field are
    refused (Q is read without clipping)."""
    rng = np.random.default_rng(3)
    h, w, limbs = 30, 50, np.array([[0, 1], [1, 2]])
    cand = random_candidates(rng, (6, 8, 5), w, h)
    fields = rng.normal(0, 0.6, (2 * len(limbs), h, w)).astype(np.float32)
    want = connection_scores(fields, cand, limbs, support=True)
    lazy = connection_scores(fields, cand, limbs)
    assert all(np.isnan(x).all() for x in lazy.support)
    for c in range(len(limbs)):
        np.testing.assert_array_equal(lazy.score[c], want.score[c])
        np.testing.assert_array_equal(lazy.length[c], want.length[c])
    connection_scores(fields, cand, limbs, None, lazy, support=True)
    for c in range(len(limbs)):
        for got, full in zip((lazy.score[c], lazy.support[c], lazy.length[c]),
                             (want.score[c], want.support[c], want.length[c])):
            np.testing.assert_array_equal(got, full)
    cand.xy[0] = (w - 0.5, 3.0)                                          # half a pixel outside
    with pytest.raises(ValueError, match="must lie in the 50x30 field"):
        connection_scores(fields, cand, limbs)


# ----------------------------------------------------------------------------- Algorithm 1
def test_algorithm1_on_the_ranked_list_matches_a_sort_per_box():
    """Ties included: scores on a coarse grid, so that many are equal and the
    tie order (candidate order, as a box's own stable sort) is exercised."""
    rng = np.random.default_rng(1)
    limbs = np.array([[0, 1], [1, 2], [2, 3], [1, 4]])
    for trial in range(20):
        cand = random_candidates(rng, rng.integers(1, 8, 5), 50, 50)
        scores = [np.round(rng.uniform(-0.2, 1, (len(cand.by_joint[a]), len(cand.by_joint[b]))), 1)
                  .astype(np.float32) for a, b in limbs]
        ranked = bub.rank_connections(scores, cand, limbs, 0.2)
        for b in range(4):
            inside = rng.random(len(cand.score)) < 0.7
            want = box_by_box(cand, scores, limbs, inside, 0.2, b)
            assert same_poses(bub.parse_box(cand, scores, limbs, inside, 0.2, b), want)
            assert same_poses(bub.parse_box(cand, scores, limbs, inside, 0.2, b, ranked), want)


def test_in_box_scores_parse_like_every_pair_scored():
    """The full parse scores only pairs inside a common box (and those that
    completion along the field asks for): on crowds, with and without pose
    NMS and completion, it is the parse with every pair scored, and without
    completion the pairs it scored are exactly the in-box ones. The parse
    of [3] (every pair) likewise. Pose NMS with its joint index keeps what
    a comparison with every kept pose keeps; Eq. (9) at once equals Eq. (9)
    one pose at a time."""
    sk, cfg = bub.Skeleton("aic"), bub.Config(data="aic")
    rng = np.random.default_rng(2)
    for n in (3, 12):
        maps, fields, boxes = crowd(rng, n, sk, cfg)
        boxes = np.concatenate([boxes, jitter_boxes(boxes[:2], rng, 0.3)])   # duplicates
        cand, lazy = bub.candidates_and_scores(maps, fields, sk, cfg)
        every = connection_scores(fields, cand, sk.limbs)
        for nms, completion in ((True, True), (False, True), (True, False)):
            a = bub.parse_image(maps, fields, boxes, sk, cfg, nms, completion, cand, lazy)
            b = bub.parse_image(maps, fields, boxes, sk, cfg, nms, completion, cand, every)
            assert same_poses(a.poses, b.poses) and same_poses(a.suppressed, b.suppressed)
            np.testing.assert_array_equal(a.keypoints, b.keypoints)
            np.testing.assert_array_equal(a.scores, b.scores)
            np.testing.assert_array_equal(a.completed, b.completed)
        in_box = bub.pairs_in_boxes(cand, sk.limbs, bub.candidates_in_boxes(cand, boxes))
        assert all((~np.isnan(s) >= m).all() for s, m in zip(lazy.score, in_box))
        _, fresh = bub.candidates_and_scores(maps, fields, sk, cfg)
        bub.parse_image(maps, fields, boxes, sk, cfg, True, False, cand, fresh)
        assert all((~np.isnan(s) == m).all() for s, m in zip(fresh.score, in_box))
        assert sum(m.sum() for m in in_box) < sum(m.size for m in in_box)          # fewer than all
        a = bub.parse_greedy(maps, fields, sk, cfg, cand, lazy)
        b = bub.parse_greedy(maps, fields, sk, cfg, cand, every)
        assert same_poses(a.poses, b.poses) and np.array_equal(a.keypoints, b.keypoints)
        # Pose NMS and Eq. (9) on every pose of every box.
        inside = bub.candidates_in_boxes(cand, boxes)
        poses = [p for i in range(len(boxes)) for p in
                 bub.parse_box(cand, every.score, sk.limbs, inside[i], cfg.link_threshold, i)]
        confs = bub.pose_confidences(poses, cand, boxes[[p.box for p in poses]], cfg)
        np.testing.assert_allclose(confs, [eq9_one_by_one(p, cand, boxes[p.box], cfg) for p in poses], atol=1e-6)
        for p, conf in zip(poses, confs):
            p.conf = float(conf)
        for eta in (0.2, 0.5, 0.99, 1.0, 1.5):
            for reading in ("eq10", "own"):
                assert bub.pose_nms(poses, eta, reading) == nms_against_every_kept_pose(poses, eta, reading)
