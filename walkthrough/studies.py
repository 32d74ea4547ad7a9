"""The studies behind the papers' claims: paper 2's in crowds, paper 1's Table 5 over seeds.

The paper's Table IV says parsing inside boxes beats the box-free parse of
Cao et al. [3] by 6.89 AP. The studies below measure that claim, and say
why it holds or not, person by person (``common.attribution``):

    python walkthrough/studies.py real       # perfect maps of real crowded annotations
    python walkthrough/studies.py sweep      # the toy, from crowds a box can resolve to the paper's regime
    python walkthrough/studies.py detector   # AP against the detector's misses and box noise
    python walkthrough/studies.py readings   # each reading the paper leaves open, one at a time
    python walkthrough/studies.py evaluation --checkpoint runs/toy/best.pt   # the tables + where people are lost
    python walkthrough/studies.py boxes --checkpoint runs/toy-head/best.pt   # §V: the network's own boxes
    python walkthrough/studies.py table5     # paper 1: Table 5 on seeds 0, 1, 2 (--seeds), the Totals' spread

``sweep``, ``detector`` and ``readings`` parse perfect maps ("oracle": no
network, seconds) and, with ``--checkpoint runs/toy/best.pt``, a trained
network's outputs as well. ``evaluation`` runs the script's own final
evaluation (``bottom_up_bbox.final_evaluation``) with the knobs that are not
the paper's (the simulated detector's rates ``--det-*``, ``--box-jitter``,
``--jitter-curve``) and reads the same per-image records for what the
paper's tables do not show: where each person was lost, what each component
did, time per image against the number of boxes, and Fig. 1's scenes. Each
prints its table and writes a JSON (``--out``, default ``runs/studies``).
The README's "Paper 2's claim in crowds" quotes their output.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import bottom_up_bbox as bub  # noqa: E402
from common import attribution, bub_eval, cli, coco_aic, harness, plotting  # noqa: E402
from common.bub_eval import JITTER_LEVELS, Row, results_json, score  # noqa: E402
from common.coco_eval import (bootstrap_ap, coco_box_ap, coco_keypoint_ap, keypoint_similarity, oks,  # noqa: E402
                               to_coco_results, write_json)
from common.detector import (DetectorModel, detector_boxes, gt_boxes, jitter_boxes, scene_size,  # noqa: E402
                             scored_people, simulated_detector)
from common.scenes import RecordScenes  # noqa: E402
from common.skeleton import MPII_TO_AIC  # noqa: E402
from common.toy import PAPER_REGIME, Regime, ToyScenes, sample_pose, with_neighbour  # noqa: E402

REAL = ROOT.parent / "shared" / "real_samples"
ROWS = {"full": "ours (full)", "greedy": "[3]", "no_nms": "ours without pose NMS",
        "no_completion": "ours without completion"}


# =============================================================================
# One evaluation: parse every image, score it, attribute every lost person
# =============================================================================
def real_sources(root=REAL):
    """{name: RecordScenes} of the real samples present under ``root``."""
    readers = {"coco": (coco_aic.read_coco, "coco/test_coco.json"),
               "aic": (coco_aic.read_aic, "aic/test_aic.json"),
               "crowdpose": (coco_aic.read_crowdpose, "crowdpose/test_crowdpose.json")}
    out = {}
    for name, (read, file) in readers.items():
        if (root / file).is_file():
            out[name] = RecordScenes(read(root / file, (root / file).parent), bub.Skeleton(name))
    return out


def oracle_maps(source, cfg, stride):
    """A perfect network: each image's ground-truth maps and fields."""
    return lambda i: oracle_prediction(source.load(i), source.skeleton, cfg, stride)


def network_maps(model, source, cfg, device="cpu"):
    """A trained network's outputs, computed once per image and kept."""
    cache = {}

    def pred(i):
        if i not in cache:
            scene = source.load(i, max_reduce=max(scene_size(source, i)) / cfg.test_size)
            cache[i] = model.infer(scene.image, scene.size, cfg, device)
        return cache[i]
    return pred


def evaluate(source, maps, cfg, boxes="gt", variants=("full", "greedy"), seed=0, tau=0.5):
    """Parse every image of ``source`` with each variant (Table IV's names)
    on ``boxes`` ("gt", or a ``DetectorModel`` simulated per image with
    ``seed``), from ``maps(i)`` (a ``Prediction``). Returns {"AP": {variant:
    AP}, "lost": {variant: {cause: people}}, "people", and "gts", "ids",
    "results" for ``bootstrap_ap``}."""
    sk = source.skeleton
    gts, ids, results, lost = [], [], {v: [] for v in variants}, {v: [] for v in variants}
    for i in range(len(source)):
        gt = source.ground_truth(i)
        gts += gt
        ids.append(source.image_id(i))
        pred = maps(i)
        if boxes == "gt":
            b = gt_boxes(gt)
            s = np.ones(len(b))
        else:
            d = simulated_detector(gt, scene_size(source, i), np.random.default_rng([seed, i, 1]), boxes)
            b, s = d[:, :4], d[:, 4]
        inputs = bub.candidates_and_scores(pred.maps, pred.fields, sk, cfg)
        parsed = bub.parse_variants(pred, b, sk, cfg, variants, inputs, s)
        for v, p in parsed.items():
            results[v] += to_coco_results(source.image_id(i), sk.to_dataset(p.keypoints), p.scores)
        for v, a in lost_people(parsed, pred, inputs[0], gt, sk, cfg, b, tau).items():
            lost[v] += a
    causes = {v: attribution.GREEDY_CAUSES if v == "greedy" else attribution.OURS_CAUSES for v in variants}
    return {"AP": {v: score(sk, gts, r, ids)["AP"] for v, r in results.items()},
            "lost": {v: {"missed": len(a), **attribution.count(a, causes[v])} for v, a in lost.items()},
            "people": len(scored_people(gts)), "gts": gts, "ids": ids, "results": results}


def paired(ev, a, b, sigmas, seed=0):
    """AP(a) - AP(b) with its 95 % paired bootstrap interval over images."""
    t = bootstrap_ap(ev["gts"], {a: ev["results"][a], b: ev["results"][b]}, ev["ids"], sigmas, reference=b,
                     seed=seed)[a]
    return {"diff": t["diff"], "lo": t["lo"], "hi": t["hi"]}


def lost_text(counts):
    parts = [f"{k} {n}" for k, n in counts.items() if k != "missed" and n]
    return f"{counts['missed']} missed" + (f" ({', '.join(parts)})" if parts else "")


def pct(x):
    return f"{100 * x:5.1f}"


# =============================================================================
# Oracles, crowds, attribution and component counts (paper 2, beyond its tables)
# =============================================================================
def best_oks(annotations, results, skeleton):
    """The mean, over the annotated people of one image, of each person's
    best OKS among ``results`` (COCO result dicts of that image): how well a
    row got this image's people, for choosing the figure's scenes."""
    people = scored_people(annotations)
    if not people or not results:
        return 0.0
    truth = np.array([a["keypoints"] for a in people], float).reshape(len(people), -1, 3)
    dt = np.array([r["keypoints"] for r in results], float).reshape(len(results), -1, 3)
    o = oks(dt, truth, [a["area"] for a in people], [a["bbox"] for a in people], skeleton.sigmas)
    return float(o.max(0).mean())


def component_counts(parsed, pred, cand, annotations, skeleton):
    """What each component of the method did on one image (§III-B to III-D),
    judged against the annotated people:

    * ``nms_removed``: poses pose NMS removed; ``nms_duplicates``: those whose
      person (OKS >= 0.5) is also matched by a kept pose -- true duplicates;
    * ``completed``: joints pose completion added; ``completed_judged``: of
      those, joints of a pose matched to a person who has that joint
      labelled; ``completed_right``: of those, within OKS 0.5 of the truth;
      ``completed_other``: of all completed joints, those that lie on
      another person's labelled joint -- a mistake OKS cannot see when the
      pose's own person has that joint unlabelled (a missing joint scores
      0, so any guess is free);
    * ``greedy_cross``: connections the box-free parse of [3] made between
      two different people (each candidate belongs to the person whose joint
      it lies within OKS 0.5 of); ``cross_refused``: of those, connections
      Algorithm 1 made in no box; ``ours_cross``: cross connections in our
      kept poses;
    * [3]'s fragmentation: ``greedy_lists`` person lists built,
      ``greedy_deleted`` of them deleted (< 4 joints or < 0.4 per joint),
      ``greedy_deleted_joints`` correctly placed joints (on someone's joint)
      in the deleted lists, ``greedy_split`` people whose joints lie in two
      or more lists, of ``people``.
    """
    J = len(skeleton.sigmas)                      # the evaluated joints (COCO: without the neck)
    people = scored_people(annotations)
    c = dict.fromkeys(("nms_removed", "nms_duplicates", "completed", "completed_judged", "completed_right",
                       "completed_other", "greedy_cross", "cross_refused", "ours_cross", "greedy_lists",
                       "greedy_deleted", "greedy_deleted_joints", "greedy_split", "people"), 0)
    full, greedy = parsed["full"], parsed["greedy"]
    c["nms_removed"], c["completed"] = len(full.suppressed), int(full.completed[:, :J].sum())
    c["greedy_lists"] = len(greedy.poses) + len(greedy.suppressed)
    c["greedy_deleted"], c["people"] = len(greedy.suppressed), len(people)
    if not people:
        return c
    truth = np.array([a["keypoints"] for a in people], float).reshape(len(people), -1, 3)[:, :J]
    area = np.array([a["area"] for a in people], float)
    box = np.array([a["bbox"] for a in people], float)

    def person_of(keypoints):                    # (P,) the matched person, -1 when OKS < 0.5
        if not len(keypoints):
            return np.zeros(0, int)
        o = oks(keypoints[:, :J], truth, area, box, skeleton.sigmas)
        return np.where(o.max(1) >= 0.5, o.argmax(1), -1)

    kept = person_of(full.keypoints)
    if full.suppressed:
        removed = np.stack([bub.to_keypoints(p, cand) for p in full.suppressed])
        removed[..., :2] = pred.to_image(removed[..., :2])
        c["nms_duplicates"] = int(sum(g >= 0 and g in kept for g in person_of(removed)))
    everyone = attribution.People(truth, area, box, skeleton.sigmas)
    # Whose joint each completed joint is (-1: nobody's), against the person its pose matched.
    done_owner = everyone.owners(np.where(full.completed[:, :J, None], full.keypoints[:, :J], 0))
    c["completed_other"] = int(((done_owner >= 0) & (done_owner != kept[:, None])).sum())
    lists = trace(greedy, pred, cand, skeleton, bub.Config(readings=bub.Readings(rank_score="own")))
    frag = attribution.fragmentation(lists, everyone)
    c["greedy_deleted_joints"], c["greedy_split"] = frag["deleted_joints"], frag["split"]
    for p, j in zip(*np.nonzero(full.completed[:, :J])):
        g = kept[p]
        if g >= 0 and truth[g, j, 2] > 0:
            c["completed_judged"] += 1
            d2 = ((full.keypoints[p, j, :2] - truth[g, j, :2]) ** 2).sum()
            sim = keypoint_similarity(d2, skeleton.sigmas[j], area[g])
            c["completed_right"] += int(sim >= 0.5)
    # Whose joint each candidate is: the person within OKS 0.5 of it, if any.
    owner = np.full(len(cand.score), -1)
    xy = pred.to_image(cand.xy)
    for i in np.flatnonzero(cand.joint < J):
        j = cand.joint[i]
        d2 = ((xy[i] - truth[:, j, :2]) ** 2).sum(-1)                   # to each person's joint j
        sim = keypoint_similarity(d2, skeleton.sigmas[j], area) * (truth[:, j, 2] > 0)
        owner[i] = sim.argmax() if sim.max() >= 0.5 else -1

    def cross(poses):
        edges = {(p.joints[a], p.joints[b]) for p in poses for a, b in skeleton.limbs
                 if p.joints[a] >= 0 and p.joints[b] >= 0}
        return {(a, b) for a, b in edges if owner[a] >= 0 and owner[b] >= 0 and owner[a] != owner[b]}, edges

    greedy_cross, _ = cross(greedy.poses)
    _, ours = cross(full.poses + full.suppressed)
    c["greedy_cross"] = len(greedy_cross)
    c["cross_refused"] = len(greedy_cross - ours)
    c["ours_cross"] = len(cross(full.poses)[0])
    return c


def trace(parse, pred, cand, skeleton, cfg, boxes=None):
    """A ``Parse`` (keypoints already in image px, ``parse_variants``) as the
    steps the person-loss attribution follows (``common.attribution.Trace``):
    every pose assembled, kept or removed; ``boxes``: the detector's boxes
    in image px, before extension (None: the box-free parse of [3])."""
    J, everyone = skeleton.eval_joints, parse.poses + parse.suppressed
    assembled = np.zeros((len(everyone), skeleton.J, 3), np.float32)
    for k, p in enumerate(everyone):
        assembled[k] = bub.to_keypoints(p, cand)
    assembled[..., :2] = np.where(assembled[..., 2:] > 0, pred.to_image(assembled[..., :2]), 0.0)
    final = assembled.copy()
    final[:len(parse.poses)] = parse.keypoints
    n = len(parse.poses)
    return attribution.Trace(
        assembled=assembled[:, :J], final=final[:, :J], kept=np.arange(len(everyone)) < n,
        score=np.r_[parse.scores, [bub.rank_score(p, cand, cfg) for p in parse.suppressed]],
        conf=np.array([p.conf for p in everyone], float), box=np.array([p.box for p in everyone], int),
        boxes=None if boxes is None else bub.extend_boxes(boxes, cfg.box_extend, cfg.readings.extend_per_side),
        detected=None if boxes is None else np.asarray(boxes, float).reshape(-1, 4),
        rival=np.array([-1] * n + [p.rival for p in parse.suppressed], int),
        distance=np.array([np.nan] * n + [p.d for p in parse.suppressed], float))


def lost_people(parsed, pred, cand, annotations, skeleton, cfg, boxes, tau=0.5):
    """Where each person of one image was lost (``common.attribution``), for
    each parse in ``parsed`` ({variant: Parse in image px}); ``boxes``: the
    detector's boxes in image px, before extension. Returns {variant: list
    of {"person", "cause", ...}}; the people are ``scored_people``."""
    people = scored_people(annotations)
    J = skeleton.eval_joints
    truth = attribution.People(np.array([a["keypoints"] for a in people], float).reshape(len(people), J, 3),
                               np.array([a["area"] for a in people], float),
                               np.array([a["bbox"] for a in people], float).reshape(-1, 4), skeleton.sigmas)
    found = np.c_[pred.to_image(cand.xy), cand.joint][cand.joint < J]
    return {v: attribution.attribute(trace(p, pred, cand, skeleton, cfg, None if v == "greedy" else boxes),
                                     truth, found, tau)
            for v, p in parsed.items()}


def oracle_prediction(scene, skeleton, cfg, stride):
    """What a perfect network would output for ``scene``: its ground-truth
    maps and fields (Eq. 1-4) at ``stride``, as a ``Prediction``."""
    W, H = scene.size
    h, w = -(-H // stride), -(-W // stride)
    maps = bub.confidence_maps(scene.keypoints, (h, w), stride, cfg.sigma)
    fields, _ = bub.direction_fields(scene.keypoints, skeleton.limbs, (h, w), stride, cfg.delta)
    return bub.Prediction(maps, fields, stride, (W, H), (w * stride, h * stride))


def random_crowd(rng, n, skeleton, cfg, size=(848, 480), stride=4, noise=0.02, scale=None):
    """A frame for timing and checking the parser (§IV-B3's "parsing time
    per frame" at the paper's 848 x 480): ``n`` people in random poses
    (``common.toy.sample_pose``), 120-330 px tall times ``scale`` (None: in
    proportion to the frame, W / 848), anywhere in the frame; their
    ground-truth maps and fields (sigma and delta scaled alike) plus
    Gaussian noise of std ``noise``, so that the NMS sees a realistic number
    of weak peaks. Returns the ``Prediction`` and the people's extended
    boxes in map px."""
    W, H = size
    s = W / 848 if scale is None else scale
    kp = np.zeros((n, skeleton.J, 3), np.float32)
    for k in range(n):
        height = rng.uniform(120 * s, 330 * s)
        centre = rng.uniform([60 * s, 60 * s + height / 2], [W - 60 * s, H - 60 * s])
        kp[k, :, :2] = (sample_pose(rng) * height + centre)[MPII_TO_AIC]
        kp[k, :, 2] = 2
    lo, hi = kp[..., :2].min(1), kp[..., :2].max(1)
    shape = (H // stride, W // stride)
    maps = bub.confidence_maps(kp, shape, stride, cfg.sigma * s)
    fields, _ = bub.direction_fields(kp, skeleton.limbs, shape, stride, cfg.delta * s)
    maps = np.clip(maps + rng.normal(0, noise, maps.shape), 0, 1).astype(np.float32)
    fields = (fields + rng.normal(0, noise, fields.shape)).astype(np.float32)
    pred = bub.Prediction(maps, fields, stride, (W, H), (W, H))
    return pred, pred.boxes_to_map(bub.extend_boxes(np.concatenate([lo, hi - lo], 1), cfg.box_extend))


def oracle_ap(source, skeleton, cfg, stride, variants=("full",)):
    """The oracle: AP of each variant parsing perfect maps and fields
    (``oracle_prediction``) inside the ground-truth boxes -- the ceiling the
    parse sets before any network error (README, "The toy world and the
    oracle")."""
    gts, ids, res = [], [], {v: [] for v in variants}
    for i in range(len(source)):
        gt = source.ground_truth(i)
        pred = oracle_prediction(source.load(i), skeleton, cfg, stride)
        gts += gt
        ids.append(source.image_id(i))
        for v, parse in bub.parse_variants(pred, gt_boxes(gt), skeleton, cfg, variants).items():
            res[v] += to_coco_results(source.image_id(i), skeleton.to_dataset(parse.keypoints), parse.scores)
    return {v: score(skeleton, gts, r, ids)["AP"] for v, r in res.items()}


def figure_fig1(model, source, cfg, skeleton, device, boxes, seed, topdown, per_image, path, jitter=0.2):
    """Fig. 1 (a-e) on the validation scenes: rows top-down (paper 1 in each
    box) / box-free [3] / ours, on the same boxes. Columns, chosen from
    ``per_image`` (each row's mean best OKS per annotated person):
    (1) among scenes with two people at box IoU > 0.3, the one where ours
    beats top-down most (overlapping people, Fig. 1 c-d); (2) the same
    scene with every box jittered by ``jitter`` (shift and
    tightness, Fig. 1 a-b); (3) the scene where ours beats [3] most
    (disconnected parts, mistakes carried across people, Fig. 1 a, c-e);
    (4) the scene where top-down beats ours most -- what the boxes cost."""
    def pick(f, rows=per_image):
        return max(rows, key=f)["image"]

    crowded = [r for r in per_image if r["crowded"]] or per_image
    overlap = pick(lambda r: r["ours"] - r["top-down"], crowded)
    columns = [(overlap, 0.0, "overlapping people: ours >> top-down"),
               (overlap, jitter, f"same, boxes jittered {jitter}"),
               (pick(lambda r: r["ours"] - r["[3]"]), 0.0, "ours >> [3]"),
               (pick(lambda r: r["top-down"] - r["ours"]), 0.0, "top-down >> ours")]
    fig, axes = plotting.plt.subplots(3, len(columns), figsize=(3 * len(columns), 9), squeeze=False)
    for col, (i, lv, title) in enumerate(columns):
        gt = source.ground_truth(i)
        scene = source.load(i, max_reduce=max(scene_size(source, i)) / cfg.test_size)
        pred = model.infer(scene.image, scene.size, cfg, device)
        det = pred.boxes if bub_eval.is_net(boxes) else detector_boxes(source, i, gt, boxes, seed)
        b = jitter_boxes(det[:, :4], np.random.default_rng([seed, i, 2]), lv) if lv else det[:, :4]
        parsed = bub.parse_variants(pred, b, skeleton, cfg, ("full", "greedy"))
        td, _ = topdown(scene.image, scene.factor, b, det[:, 4])
        W, H = scene.size
        for row, (kp, done, label) in enumerate([(td, None, "top-down (paper 1)"),
                                                 (parsed["greedy"].keypoints, None, "[3], no boxes"),
                                                 (parsed["full"].keypoints, parsed["full"].completed, "ours")]):
            ax = axes[row, col]
            ax.imshow(scene.image, extent=(-0.5, W - 0.5, H - 0.5, -0.5))
            if row != 1:
                plotting.draw_boxes(ax, b, ec="yellow", ls="--", lw=0.8)
            plotting.draw_poses(ax, kp, skeleton, done, lw=1.2)
            ax.set_xlim(-0.5, W - 0.5)
            ax.set_ylim(H - 0.5, -0.5)
            ax.axis("off")
            if row == 0:
                ax.set_title(f"{title}\n(scene {source.image_id(i)})", fontsize=8)
            if col == 0:
                ax.text(-0.05, 0.5, label, transform=ax.transAxes, rotation=90, va="center", ha="right", fontsize=9)
    fig.suptitle("Fig. 1: top-down / [3] / ours on the same boxes", fontsize=10)
    return plotting.save(fig, path)


# =============================================================================
# Beside the paper's tables: what each person and each component went through
# =============================================================================
# ``common.bub_eval.evaluate`` yields one record per image; the consumers
# below read them next to the script's tables (``final_evaluation(...,
# observe=...)``), so that every number here comes from the very parses the
# tables score.
class Attribution:
    """Where each missed person was lost (``lost_people``) for ours and [3]
    on the run's boxes and ours on ground-truth boxes, and what each
    component did (``component_counts``), summed over the records."""

    def __init__(self, skeleton, cfg):
        self.sk, self.cfg, self.gts, self.counts = skeleton, cfg, [], {}
        self.lost = {"ours": [], "[3]": []}

    def add(self, rec):
        self.gts += rec.gt
        P = rec.parses
        if Row("full") not in P or Row("greedy") not in P:
            return
        parsed = {"full": P[Row("full")], "greedy": P[Row("greedy")]}
        where = lost_people(parsed, rec.pred, rec.cand, rec.gt, self.sk, self.cfg, rec.boxes["run"])
        self.lost["ours"] += where["full"]
        self.lost["[3]"] += where["greedy"]
        if Row("full", True) in P:
            self.lost.setdefault("ours, gt boxes", []).extend(lost_people(
                {"full": P[Row("full", True)]}, rec.pred, rec.cand, rec.gt, self.sk, self.cfg, rec.boxes["gt"])["full"])
        for k, v in component_counts(parsed, rec.pred, rec.cand, rec.gt, self.sk).items():
            self.counts[k] = self.counts.get(k, 0) + v

    def result(self):
        lost = {k: {"missed": len(v), **attribution.count(v, attribution.GREEDY_CAUSES if k == "[3]"
                                                          else attribution.OURS_CAUSES)} for k, v in self.lost.items()}
        lost["people"] = len(scored_people(self.gts))
        return {"lost": lost, "components": self.counts}


class PerImage:
    """Time per image (ours and paper 1 in the boxes) and each row's mean best
    OKS per annotated person, image by image (for ``runtime_table`` and
    ``figure_fig1``)."""

    def __init__(self, skeleton):
        self.sk, self.runtime, self.per_image = skeleton, [], []

    def add(self, rec):
        if rec.pred is None or "topdown" not in rec.seconds:
            return
        truth = rec.boxes["gt"]
        self.runtime.append({"boxes": len(rec.boxes["run"]), "people": len(truth), **rec.seconds})
        rows = {"ours": "full", "[3]": "greedy", "top-down": "topdown"}
        self.per_image.append({"image": rec.index, "crowded": bool(with_neighbour(truth).any()),
                               **{k: best_oks(rec.gt, rec.results[Row(v)], self.sk) for k, v in rows.items()}})


def runtime_table(runtime):
    """{number of boxes: {"images", "ours", "topdown"}}: median ms per image."""
    out = {}
    for k in sorted({r["boxes"] for r in runtime}):
        sel = [r for r in runtime if r["boxes"] == k]
        out[k] = {"images": len(sel), "ours": 1000 * float(np.median([r["ours"] for r in sel])),
                  "topdown": 1000 * float(np.median([r["topdown"] for r in sel]))}
    return out


def print_attribution(res):
    """Where each person was lost, and what each component did."""
    lost = res["lost"]
    print(f"\nWhere each person was lost (OKS < 0.5 after COCO's matching; {lost['people']} people):")
    for k, counts in lost.items():
        if k != "people":
            steps = ", ".join(f"{attribution.CAUSE_TEXT[c]} {n}" for c, n in counts.items() if c != "missed" and n)
            print(f"  {k:<16} {counts['missed']:>4} missed: {steps or '-'}")
    c = res["components"]
    right = f"{100 * c['completed_right'] / c['completed_judged']:.0f} %" if c["completed_judged"] else "-"
    print(f"  what each component did:\n"
          f"    pose NMS removed {c['nms_removed']} poses, {c['nms_duplicates']} of them duplicates of a "
          f"matched person\n"
          f"    completion added {c['completed']} joints; of the {c['completed_judged']} on a matched person with that "
          f"joint labelled, {right} within OKS 0.5 of the truth; {c['completed_other']} on another person's joint\n"
          f"    [3] built {c['greedy_lists']} person lists and deleted {c['greedy_deleted']}, holding "
          f"{c['greedy_deleted_joints']} correctly placed joints; {c['greedy_split']} of {c['people']} people "
          f"were split over two or more lists; it joined two people {c['greedy_cross']} times (the boxes "
          f"refused {c['cross_refused']} of those; our kept poses: {c['ours_cross']})")


def script_flags(args):
    """The script's own flags for this study's evaluation (``--eval-only``)."""
    flags = ["--eval-only", "--checkpoint", args.checkpoint, "--data", args.data, "--toy-val", str(args.scenes),
             "--seed", str(args.seed), "--out", args.out]
    for name in ("data_root", "topdown", "boxes"):
        if getattr(args, name, None):
            flags += [f"--{name.replace('_', '-')}", getattr(args, name)]
    return flags


DETECTOR_FLAGS = ("shift", "scale", "dup", "fp", "miss", "threshold")


def study_evaluation(args):
    """The script's final evaluation of ``--checkpoint`` (Tables I-II, IV,
    Fig. 1), with the experiment-only knobs (``--det-*``, ``--box-jitter``,
    ``--jitter-curve``), and beside it, from the same per-image records:
    where each missed person was lost, what each component did and, with
    ``--topdown``, time per image against the number of boxes and the
    scenes of Fig. 1 (fig1.png)."""
    if not args.checkpoint:
        raise SystemExit("error: evaluation needs --checkpoint PATH (a bottom_up_bbox.py best.pt/last.pt)")
    bargs = bub.parse_args(script_flags(args))
    rt = harness.setup_runtime(bargs.device)
    torch.manual_seed(args.seed)                 # as the script's own run
    cfg, sk, model = bub.trained_model(bargs, rt.device)
    _, val = bub.load_sources(bargs, sk, cfg)
    settings = bub.evaluation_flags(bargs, cfg, sk, rt)
    given = {k: getattr(args, f"det_{k}") for k in DETECTOR_FLAGS if getattr(args, f"det_{k}") is not None}
    if given and not isinstance(settings["boxes"], DetectorModel):
        raise SystemExit(f"error: --det-{next(iter(given))}: a knob of the simulated detector, but the boxes are "
                         f"{bub_eval.boxes_text(settings['boxes'])}; add --boxes sim")
    if given:
        settings["boxes"] = replace(settings["boxes"], **given)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    studies = [Attribution(sk, cfg), PerImage(sk)]
    levels = cli.number_list(args.jitter_curve, "--jitter-curve", "0,0.1,0.2", kind="fraction")
    ev = bub.final_evaluation(model, val, cfg, sk, rt, out, observe=studies, jitter=levels,
                              box_jitter=args.box_jitter, **settings)
    res = {"config": asdict(cfg), **results_json(ev), **studies[0].result()}
    print_attribution(res)
    if settings["topdown"] is not None:
        res["runtime"], res["per_image"] = studies[1].runtime, studies[1].per_image
        res["runtime_by_people"] = runtime_table(res["runtime"])
        print("\n§IV-B3 -- time per image (ms, median; network forward included) against the number of "
              "people (detector boxes)\n  people  images      top-down          ours")
        for k, r in res["runtime_by_people"].items():
            print(f"  {k:>6}  {r['images']:>6}  {r['topdown']:12.1f}  {r['ours']:12.1f}")
        res["fig1"] = str(figure_fig1(model, val, cfg, sk, rt.device, settings["boxes"], args.seed,
                                      settings["topdown"], res["per_image"], out / "fig1.png"))
        print(f"  Fig. 1: {res['fig1']} (scenes chosen as its caption says)")
    return res


def study_boxes(args):
    """§V, the paper's future work: the network's own boxes (its box head)
    beside the simulated detector's and the ground truth, on the same
    scenes and the same maps. Box AP (COCO's box protocol) of the network's
    and the simulated detector's boxes; the full method's and [3]'s OKS AP
    on each box set, with the paired difference own - simulated (95 %
    bootstrap interval over scenes); where each missed person was lost on
    the network's boxes; and the time the head adds to an image's forward
    pass (the same network with and without it, interleaved)."""
    if not args.checkpoint:
        raise SystemExit("error: boxes needs --checkpoint PATH (a bottom_up_bbox.py best.pt with a box head)")
    bargs = bub.parse_args(script_flags(args))
    rt = harness.setup_runtime(bargs.device)
    torch.manual_seed(args.seed)
    cfg, sk, model = bub.trained_model(bargs, rt.device)
    if model.box_head is None:
        raise SystemExit(f"error: {args.checkpoint} has no box head (trained with --box-weight 0)")
    _, val = bub.load_sources(bargs, sk, cfg)
    rows = (Row("full"), Row("greedy"))
    poses, box_ap, gts, ids = {}, {}, [], []
    lost = Attribution(sk, cfg)
    for name, boxes in (("own", "net"), ("simulated", DetectorModel()), ("ground truth", "gt")):
        poses[name], dets = {"full": [], "greedy": []}, []
        for rec in bub_eval.evaluate(model, val, cfg, sk, rt.device, rows, bub.PARSER, boxes=boxes, seed=args.seed):
            if name == "own":
                gts, ids = gts + rec.gt, ids + [rec.image_id]
                lost.add(rec)
            for v in poses[name]:
                poses[name][v] += rec.results.get(Row(v), [])
            dets += [{"image_id": rec.image_id, "bbox": [float(x) for x in b], "score": float(c), "category_id": 1}
                     for b, c in zip(rec.boxes.get("run", ()), rec.boxes.get("scores", ()))]
        if name != "ground truth":
            box_ap[name] = coco_box_ap(gts, dets, ids)
    ap = {name: {v: coco_keypoint_ap(gts, r, ids, sk.sigmas)["AP"] for v, r in res.items()}
          for name, res in poses.items()}
    paired = bootstrap_ap(gts, {k: poses[k]["full"] for k in poses}, ids, sk.sigmas, reference="simulated",
                          seed=args.seed)
    res = {"box_ap": box_ap, "AP": ap, "own_vs_simulated": paired["own"], **lost.result(),
           "forward_ms": head_time(model, val, cfg, rt.device)}
    print(f"\n§V -- the network's own boxes ({len(ids)} scenes, {len(scored_people(gts))} people)")
    print("  box AP (COCO box protocol):  " + "  ".join(
        f"{k} AP {pct(v['AP'])}, AP50 {pct(v['AP50'])}, AR {pct(v['AR'])}" for k, v in box_ap.items()))
    for name, a in ap.items():
        print(f"  ours (full), {name} boxes: OKS AP {pct(a['full'])}   ([3], no boxes: {pct(a['greedy'])})")
    d = paired["own"]
    print(f"  own - simulated: {100 * d['diff']:+.1f} AP [{100 * d['lo']:+.1f}, {100 * d['hi']:+.1f}]")
    t = res["forward_ms"]
    print(f"  forward pass per image: {t['with_head']:.1f} ms with the head, {t['without']:.1f} ms without "
          f"(+{100 * (t['with_head'] / t['without'] - 1):.1f} %)")
    print_attribution(res)
    return res


def head_time(model, source, cfg, device, images=100, repeats=3):
    """Median ms of ``infer`` per image with the box head and without it (the
    same weights, the head detached), interleaved image by image so that a
    busy machine slows both alike."""
    head, times = model.box_head, {"with_head": [], "without": []}
    scenes = [source.load(i) for i in range(min(images, len(source)))]
    try:
        for _ in range(repeats):
            for scene in scenes:
                for key, h in (("with_head", head), ("without", None)):
                    model.box_head = h
                    t0 = time.perf_counter()
                    model.infer(scene.image, scene.size, cfg, device)
                    times[key].append(time.perf_counter() - t0)
    finally:
        model.box_head = head
    return {k: 1000 * float(np.median(v)) for k, v in times.items()}


# =============================================================================
# The studies
# =============================================================================
def study_real(args):
    """Perfect maps of the real crowded samples, ground-truth boxes, at
    stride 1 and 4: the chosen readings, the paper's literal ones, [3]; the
    lost people at OKS 0.5 and 0.9 (the AP runs from 0.5 to 0.95)."""
    out = {}
    for name, src in real_sources(Path(args.real)).items():
        for stride in getattr(args, "strides", (1, 4)):
            for reading, change in (("chosen", {}), ("literal", bub.PAPER_LITERAL)):
                cfg = bub.Config(data=name, readings=bub.Readings(**change))
                ev = evaluate(src, oracle_maps(src, cfg, stride), cfg, variants=tuple(ROWS))
                strict = evaluate(src, oracle_maps(src, cfg, stride), cfg, variants=("full", "greedy"), tau=0.9)
                key = f"{name} stride {stride} {reading}"
                out[key] = {"AP": ev["AP"], "lost": ev["lost"], "lost at 0.9": strict["lost"],
                            "people": ev["people"]}
                print(f"{key:<28} " + "  ".join(f"{ROWS[v]} {pct(a)}" for v, a in ev["AP"].items()))
                for v in ("full", "greedy"):
                    print(f"{'':<30}{ROWS[v]}: OKS 0.5 {lost_text(ev['lost'][v])}; "
                          f"OKS 0.9 {lost_text(strict['lost'][v])}")
    return out


SWEEP_OVERLAP = ((0.25, (0.35, 0.6)), (0.4, (0.25, 0.6)), (0.6, (0.2, 0.6)))   # max IoU, neighbour distance
SWEEP_TORSO = (0.0, 0.35, 0.7)


def sweep_regimes():
    """The crowd sweep's points: crowding (largest overlap of two people's
    boxes, with the neighbours it lets stand closer) x the chance of a hidden
    neck or torso, at the default heights; then the paper's regime as a whole
    (small people too)."""
    points = {f"overlap {o:.2f}, torso {t:.2f}": Regime(max_overlap=o, neighbour_dx=dx, torso_occlusion=t)
              for o, dx in SWEEP_OVERLAP for t in SWEEP_TORSO}
    points["paper regime (also small people)"] = PAPER_REGIME
    return points


def study_sweep(args):
    """Oracle (and trained) AP of ours and [3] at each point of the sweep,
    on ground-truth boxes and on the simulated detector, with the paired
    interval of ours - [3] and the lost people."""
    sk = bub.Skeleton("toy")
    model, cfg = load(args)
    out = {}
    points = sweep_regimes()
    if getattr(args, "quick", False):                    # the two ends only (make_figures --fast)
        points = {k: points[k] for k in (next(iter(points)), "paper regime (also small people)")}
    for label, regime in points.items():
        src = ToyScenes(args.seed + 1, args.scenes, cfg.input_size, sk, regime)
        row = {}
        sources = ([("oracle", oracle_maps(src, cfg, 4))]
                   + ([("trained", network_maps(model, src, cfg))] if model is not None else []))
        for maps_name, maps in sources:
            for boxes_name, boxes in (("gt boxes", "gt"), ("detector", DetectorModel())):
                ev = evaluate(src, maps, cfg, boxes, variants=("full", "greedy"), seed=args.seed)
                d = paired(ev, "full", "greedy", sk.sigmas, args.seed)
                row[f"{maps_name}, {boxes_name}"] = {"AP": ev["AP"], "ours - [3]": d, "lost": ev["lost"]}
                print(f"{label:<34} {maps_name:>7}, {boxes_name:<8}  ours {pct(ev['AP']['full'])}  "
                      f"[3] {pct(ev['AP']['greedy'])}  ours - [3] {100 * d['diff']:+5.1f} "
                      f"[{100 * d['lo']:+5.1f}, {100 * d['hi']:+5.1f}]   ours: {lost_text(ev['lost']['full'])}; "
                      f"[3]: {lost_text(ev['lost']['greedy'])}", flush=True)
        out[label] = {"regime": regime.__dict__, "people": ev["people"], **row}
    return out


DETECTOR_MISS = (0.0, 0.03, 0.1, 0.2, 0.3, 0.5)
DETECTOR_NOISE = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)


def study_detector(args):
    """AP of ours against the detector's miss rate (of large, visible people)
    and against its box noise (shift and scale x a factor), the other rates
    at the simulated detector's; [3] needs no boxes. The default detector
    is the point at miss 0.03, noise 1."""
    sk = bub.Skeleton("toy")
    model, cfg = load(args)
    src = ToyScenes(args.seed + 1, args.scenes, cfg.input_size, sk)
    base = DetectorModel()
    out = {}
    sources = ([("oracle", oracle_maps(src, cfg, 4))]
               + ([("trained", network_maps(model, src, cfg))] if model is not None else []))
    misses, noises = (((0.0, base.miss, 0.5), (0.0, 1.0, 3.0)) if getattr(args, "quick", False)
                      else (DETECTOR_MISS, DETECTOR_NOISE))
    for maps_name, maps in sources:
        greedy = evaluate(src, maps, cfg, "gt", variants=("greedy",))["AP"]["greedy"]
        gt = evaluate(src, maps, cfg, "gt", variants=("full",))["AP"]["full"]
        curves = {"[3] (no boxes)": greedy, "ours, ground-truth boxes": gt, "miss": {}, "noise": {}}
        for m in misses:
            curves["miss"][m] = evaluate(src, maps, cfg, replace(base, miss=m), ("full",), args.seed)["AP"]["full"]
        for k in noises:
            det = replace(base, shift=base.shift * k, scale=base.scale * k)
            curves["noise"][k] = evaluate(src, maps, cfg, det, ("full",), args.seed)["AP"]["full"]
        out[maps_name] = curves
        print(f"{maps_name}: [3] {pct(greedy)}, ours on ground-truth boxes {pct(gt)}")
        print("  miss rate  " + "  ".join(f"{m:5.2f}" for m in misses) + "\n  ours AP    "
              + "  ".join(pct(a) for a in curves["miss"].values()))
        print("  box noise  " + "  ".join(f"{k:5.1f}" for k in noises) + "\n  ours AP    "
              + "  ".join(pct(a) for a in curves["noise"].values()), flush=True)
    return out


def study_readings(args):
    """Each reading the paper leaves open, changed alone from the chosen
    default to the paper's literal one (and the literal set as a whole), on
    the toy (oracle and trained; ground-truth boxes and the detector) and on
    the real samples' oracle."""
    sk = bub.Skeleton("toy")
    model, cfg = load(args)
    src = ToyScenes(args.seed + 1, args.scenes, cfg.input_size, sk)
    changes = {"chosen": {}, **{f"{k} = {v!r}": {k: v} for k, v in bub.PAPER_LITERAL.items()},
               "extension 10 % in total": {"extend_per_side": False}, "box score used": {"use_box_score": True},
               "all literal": dict(bub.PAPER_LITERAL)}
    if getattr(args, "quick", False):
        changes = {k: changes[k] for k in ("chosen", "all literal")}
    out = {}
    maps = {"oracle": oracle_maps(src, cfg, 4)}
    if model is not None:
        maps["trained"] = network_maps(model, src, cfg)
    for label, change in changes.items():
        c = replace(cfg, readings=replace(cfg.readings, **change))
        row = {}
        for maps_name, m in maps.items():
            for boxes_name, boxes in (("gt boxes", "gt"), ("detector", DetectorModel())):
                ev = evaluate(src, m, c, boxes, ("full", "greedy"), args.seed)
                row[f"toy {maps_name}, {boxes_name}"] = {"AP": ev["AP"], "lost": ev["lost"]}
        for name, real in real_sources(Path(args.real)).items() if getattr(args, "real_readings", True) else ():
            rc = bub.Config(data=name, readings=bub.Readings(**change))
            row[f"{name} oracle"] = {"AP": evaluate(real, oracle_maps(real, rc, 4), rc, "gt", ("full", "greedy"))["AP"]}
        out[label] = row
        print(f"{label:<28} " + "  ".join(f"{k}: {pct(v['AP']['full'])} / {pct(v['AP']['greedy'])}"
                                          for k, v in row.items()), flush=True)
    return out


def study_table5(args):
    """Paper 1's Table 5 (``heatmap_regression.py --variant all``) on each of
    ``--seeds``: every seed its own training, validation and test figures
    and its own initialisation. Seed 0 is the default run's folders (reused
    when finished), seed S writes runs/toy-residual-table5-seedS. Prints each
    row's Total and occluded Total per seed, their mean and sd."""
    import heatmap_regression as hr
    tables = {}
    for seed in args.seeds:
        out = [] if seed == 0 else ["--out", str(ROOT / "runs" / f"toy-residual-table5-seed{seed}")]
        hr.main(["--variant", "all", "--seed", str(seed), *out])
        folder = ROOT / "runs" / ("toy-residual-table5" if seed == 0 else f"toy-residual-table5-seed{seed}")
        tables[seed] = json.loads((folder / "table5.json").read_text())
    out = {}
    print(f"\nTable 5 over seeds {', '.join(map(str, args.seeds))} (toy test figures, PCKh@0.5 Total; occluded):")
    for v, _, _ in hr.TABLE5_ROWS:
        tot = np.array([t["rows"][v]["all"]["Total"] for t in tables.values()])
        occ = np.array([t["rows"][v]["occluded"]["Total"] for t in tables.values()])
        sd = lambda x: float(x.std(ddof=1)) if len(x) > 1 else float("nan")         # noqa: E731
        out[v] = {"Total": tot.tolist(), "occluded": occ.tolist(), "mean": float(tot.mean()), "sd": sd(tot),
                  "occluded_mean": float(occ.mean()), "occluded_sd": sd(occ)}
        print(f"  {v:24s} " + " ".join(f"{x:5.1f}" for x in tot) + f"   mean {tot.mean():5.1f} sd {sd(tot):4.1f}"
              f"   occluded " + " ".join(f"{x:5.1f}" for x in occ) + f"   mean {occ.mean():5.1f} sd {sd(occ):4.1f}")
    return {"seeds": list(args.seeds), "rows": out}


def load(args):
    """(model or None, config): the checkpoint's, else the toy's defaults."""
    if not args.checkpoint:
        return None, bub.toy_config()
    cfg, _, model = bub.model_from_checkpoint(Path(args.checkpoint), "cpu")
    return model, cfg


STUDIES = {"real": study_real, "sweep": study_sweep, "detector": study_detector, "readings": study_readings,
           "evaluation": study_evaluation, "boxes": study_boxes, "table5": study_table5}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("study", choices=tuple(STUDIES))
    p.add_argument("--checkpoint", help="a bottom_up_bbox.py toy checkpoint: also parse its outputs")
    p.add_argument("--scenes", type=int, default=200, help="toy validation scenes per point (default 200)")
    p.add_argument("--seed", type=int, default=0, help="the toy run's seed: scenes of seed + 1 (default 0)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="table5: the seeds (default 0 1 2)")
    p.add_argument("--real", default=str(REAL), help=f"the real samples' folder (default {REAL})")
    p.add_argument("--out", default="runs/studies", help="folder for STUDY.json (default runs/studies)")
    g = p.add_argument_group("evaluation: the script's final evaluation with experiment-only knobs")
    g.add_argument("--data", choices=("toy", "coco", "aic", "crowdpose"), default="toy", help="the data set")
    g.add_argument("--data-root", help="folder of the COCO, AI Challenger or CrowdPose data set")
    g.add_argument("--topdown", metavar="CKPT", help="paper 1's cascade as the top-down row (a heatmap_regression.py "
                                                     "best.pt): also time per image and fig1.png")
    g.add_argument("--boxes", help="'gt', 'sim' (the simulated detector), 'net' (the network's own box head, "
                                   "the default where it has one) or a COCO detection-results JSON")
    for name, what in (("shift", "s.d. of a box's centre shift, x its size"),
                       ("scale", "s.d. of the log of its width and height"),
                       ("dup", "chance of a partial second box on a person (IoU 0.2-0.45)"),
                       ("fp", "false-positive candidates per image (Poisson mean)"),
                       ("miss", "chance a large, fully visible person gets no box"),
                       ("threshold", "score below which a box is not output")):
        g.add_argument(f"--det-{name}", type=float,
                       help=f"the simulated detector: {what} (default: {getattr(DetectorModel(), name)})")
    g.add_argument("--box-jitter", type=float, default=0.0,
                   help="shift and loosen/tighten the run's boxes by up to this fraction (Fig. 1 a-b)")
    g.add_argument("--jitter-curve", default=",".join(f"{x:g}" for x in JITTER_LEVELS),
                   help="jitter levels of the printed AP-vs-box-jitter curve ('' for none)")
    args = p.parse_args(argv)
    if min(args.seeds) < 0:
        p.error(f"--seeds {' '.join(map(str, args.seeds))}: expected seeds >= 0")
    if args.scenes < 1:
        p.error(f"--scenes {args.scenes}: expected a positive number of scenes")
    if args.checkpoint and not Path(args.checkpoint).is_file():
        p.error(f"--checkpoint {args.checkpoint}: no such file")
    for k in DETECTOR_FLAGS:                    # the evaluation's knobs, before any work
        try:
            replace(DetectorModel(), **({} if getattr(args, f"det_{k}") is None else {k: getattr(args, f"det_{k}")}))
        except ValueError as e:
            p.error(f"--det-{k}: {e}")
    try:
        cli.number_list(args.jitter_curve, "--jitter-curve", "0,0.1,0.2", kind="fraction")
        cli.check_numbers(args, {"box_jitter": "fraction"})
    except cli.UsageError as e:
        p.error(str(e))
    return args


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    t0 = time.time()
    res = STUDIES[args.study](args)
    path = Path(args.out) / f"{args.study}.json"
    write_json(path, {"seconds": time.time() - t0, "checkpoint": args.checkpoint, "scenes": args.scenes, **res})
    print(f"{time.time() - t0:.0f} s; {path}")
    return res


if __name__ == "__main__":
    main()


# =============================================================================
# Paper 1 (heatmap_regression.py): its argument for the cascade, measured
# =============================================================================
# Beyond the paper's tables: ``tests/benchmarks/bench_hr_mechanism.py`` and
# ``make_figures.py`` call it on a trained run's best.pt (README, "The
# paper's argument, measured"). Defined after ``main``: no command above uses it.
import heatmap_regression as hr  # noqa: E402
from common.metrics import NOT_SCORED  # noqa: E402
from common.skeleton import limb_joints  # noqa: E402
from common.transforms import values_at  # noqa: E402

# Detector confidence bins of ``stages_by_confidence`` (heatmap value at the truth).
CONFIDENCE_BINS = (0.0, 0.05, 0.2, 0.5, 1.01)


@torch.no_grad()
def stages_by_confidence(model, dataset, rt, flip_test=False):
    """The paper's argument for the cascade (§1, §3: the regressor helps
    where the detector is unsure), measured: every part PCKh's Total scores,
    binned by the detector's heatmap value at its true location, with the
    accuracy of the detector alone and of the cascade in each bin, for
    visible and occluded parts, and for limb vs torso-anchored joints.
    Returns rows ``(label, parts, detector %, cascade %)``."""
    det = hr.evaluate(model, dataset, rt, flip_test=flip_test, which="first")
    cas = hr.evaluate(model, dataset, rt, flip_test=flip_test)
    n, names = len(cas["index"]), tuple(dataset.cfg.joints)
    conf = np.full((n, len(names)), np.nan)
    for lo in range(0, n, 32):
        samples = [dataset[i] for i in cas["index"][lo:lo + 32]]
        first, _ = model(torch.stack([s["image"] for s in samples]))
        maps = model.first_maps(first)
        for b, s in enumerate(samples):
            conf[lo + b] = values_at(maps[b], s["kp_crop"].numpy(), model.stride)
    v = cas["gt"][..., 2].copy()
    v[:, [names.index(x) for x in NOT_SCORED if x in names]] = 0          # as the Total: never scored
    limbs = np.zeros(v.shape, bool)
    limbs[:, limb_joints(names)] = True
    rows = []
    for vis, kind in ((2, "visible"), (1, "occluded")):
        sel = [(f"{kind}, all", v == vis)]
        sel += [(f"{kind}, detector at truth {a:.2f}-{min(b, 1):.2f}", (v == vis) & (conf >= a) & (conf < b))
                for a, b in zip(CONFIDENCE_BINS[:-1], CONFIDENCE_BINS[1:])]
        sel += [(f"{kind}, limb joints", (v == vis) & limbs), (f"{kind}, torso-anchored joints", (v == vis) & ~limbs)]
        for label, m in sel:
            k = int(m.sum())
            rows.append((label, k, 100 * det["correct"][m].mean() if k else float("nan"),
                         100 * cas["correct"][m].mean() if k else float("nan")))
    return rows
