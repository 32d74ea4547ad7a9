"""Paper 2's evaluation bench: every row of its tables, parsed image by image and scored.

§IV-B: every row of the tables is one parse of the same validation images,
scored by the same OKS AP. A row is a typed value (``Row``: method, boxes,
jitter, score); ``evaluate`` parses each image once per row and yields it
(an ``ImageRecord``); the tables gather the records (``Tally``,
``paper_tables``) and print them (``print_tables``), and the studies beyond
the paper's tables (``walkthrough/studies.py``) read the same records.

Here rather than in ``bottom_up_bbox.py``: looping over images, boxes and
rows, scoring and printing say nothing the paper says. What is the paper's
-- Table IV's rows and the parse each one runs -- stays in the script
(``VARIANTS``, ``parse_variants``) and comes in as a ``Parser``; this
module imports no script.
"""
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np

from .coco_eval import aic_score, bootstrap_ap, coco_keypoint_ap, format_ap_table, to_coco_results
from .detector import DetectorModel, detector_boxes, gt_boxes, jitter_boxes, scene_size, scored_people
from .skeleton import AIC_JOINTS, AIC_SIGMAS
from .toy import with_neighbour
from .transforms import ImageError


class Parser(NamedTuple):
    """The paper's parse, as the evaluation calls it (``bottom_up_bbox.PARSER``)."""
    prepare: Callable     # (maps, fields, skeleton, cfg) -> inputs: candidates and Eq. (5), once per image
    parse: Callable       # (pred, boxes, skeleton, cfg, variants, inputs, box_scores) -> {variant: Parse}
    variants: dict        # Table IV's rows {name: label}, in the paper's order; "full" is the method


def score(skeleton, gts, results, image_ids):
    """OKS AP (COCO's protocol) with the data set's OKS constants -- CrowdPose's
    for the toy -- and, for AI Challenger's 14 joints (AIC and the toy), its
    official score with its own constants. On the toy that score is printed
    for comparison only: AIC's constants are too strict for its sizes."""
    res = coco_keypoint_ap(gts, results, image_ids=image_ids, sigmas=skeleton.sigmas)
    if skeleton.joints == AIC_JOINTS:
        res["AIC score"] = aic_score(gts, results, sigmas=AIC_SIGMAS, image_ids=image_ids)
    return res


@dataclass(frozen=True)
class Row:
    """One row of the tables: a parse on one set of boxes."""
    method: str                  # a Table IV row (``Parser.variants``), or "topdown" (paper 1 in each box)
    gt_boxes: bool = False       # on the ground-truth boxes instead of the run's boxes
    jitter: float = None         # Fig. 1 (a-b): those boxes jittered by this level (``jitter_boxes``)
    own_score: bool = False      # ranked by the parser's own score (Eq. 9 / [3]'s), not ``rank_score``

    @property
    def key(self):
        """The row's name in results.json: "full", "greedy, gt boxes",
        "jitter 0.20", "topdown jitter 0.20", "no_nms, own score" ..."""
        name = self.method
        if self.jitter is not None:
            name = ("jitter" if self.method == "full" else f"{self.method} jitter") + f" {self.jitter:.2f}"
        return name + (", gt boxes" if self.gt_boxes else "") + (", own score" if self.own_score else "")


# Fig. 1 (a-b): the levels of the AP-against-box-jitter curve the run prints.
JITTER_LEVELS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)


def table_rows(cfg, boxes, variants, topdown=False, jitter=JITTER_LEVELS):
    """The rows of the final evaluation: Table IV's (Tables I-II's "full" and
    "greedy" among them) on the run's boxes, under each parser's own score
    too, and -- when the run's boxes are not the ground truth -- on
    ground-truth boxes (the upper bound); the top-down row on the same boxes;
    Fig. 1 (a-b)'s curve, ours on each box set and the top-down row's on the
    run's boxes. ``variants``: Table IV's rows (``Parser.variants``)."""
    with_gt = not (isinstance(boxes, str) and boxes == "gt")
    methods = tuple(variants) + (("topdown",) if topdown else ())
    rows = [Row(m) for m in methods]
    if cfg.readings.rank_score != "own":
        rows += [Row(v, own_score=True) for v in variants]
    if with_gt:
        rows += [Row(m, gt_boxes=True) for m in methods]
    for lv in jitter:
        rows += [Row("full", jitter=lv)] + ([Row("full", True, lv)] if with_gt else [])
        rows += [Row("topdown", jitter=lv)] if topdown else []
    return tuple(rows)


@dataclass
class ImageRecord:
    """One validation image as ``evaluate`` parsed it."""
    index: int
    image_id: int
    gt: list                     # its COCO annotations
    results: dict = field(default_factory=dict)   # {Row: COCO results of this image}
    parses: dict = field(default_factory=dict)    # {Row: Parse (image px)}, the rows without jitter
    pred: object = None          # the network's outputs, a ``Prediction`` (None: the image could not be read)
    cand: object = None          # its ``Candidates``
    boxes: dict = field(default_factory=dict)     # {"run": (N, 4), "gt": (K, 4)} image px, before
    #                                               extension; "scores": the run's boxes' (N,)
    seconds: dict = field(default_factory=dict)   # {"ours": forward + parse, "topdown": paper 1 in the boxes}


def evaluate(model, source, cfg, skeleton, device, rows, parser, boxes="gt", scales=None, limit=None, seed=0,
             topdown=None, box_jitter=0.0):
    """Parse every validation image once per row of ``rows`` with the
    paper's ``parser``; yields one ``ImageRecord`` per image, in order.

    ``boxes``: "gt", a ``DetectorModel``, a detection file's boxes
    (``detector_boxes``) or "net" (the network's own, ``Prediction.boxes``), jittered by ``box_jitter`` when given; ``topdown``:
    a ``TopDown`` for the "topdown" rows. Time per image is measured from
    the image to our poses (forward, candidates, Eq. 5, the full parse) and
    for paper 1 in the run's boxes."""
    n = len(source) if limit is None else min(limit, len(source))
    for i in range(n):
        rec = ImageRecord(i, source.image_id(i), source.ground_truth(i))
        try:
            scene = source.load(i, max_reduce=max(scene_size(source, i)) / cfg.test_size)
        except (ImageError, FileNotFoundError) as e:
            warnings.warn(f"skipping image {rec.image_id}: {e}")
            yield rec                                        # scored as a miss
            continue
        det = None if is_net(boxes) else detector_boxes(source, i, rec.gt, boxes, seed)
        t0 = time.perf_counter()
        rec.pred = model.infer(scene.image, scene.size, cfg, device, scales)
        if det is None:                                   # paper 2's §V: the network's own boxes, same pass
            det = rec.pred.boxes
        rec.boxes = {"run": det[:, :4], "gt": gt_boxes(rec.gt), "scores": det[:, 4]}
        if box_jitter:
            rec.boxes["run"] = jitter_boxes(rec.boxes["run"], np.random.default_rng([seed, i, 3]), box_jitter)
        inputs = parser.prepare(rec.pred.maps, rec.pred.fields, skeleton, cfg)
        rec.cand = inputs[0]
        parse_rows(rec, rows, skeleton, cfg, parser, inputs, det[:, 4], t0)
        if topdown is not None:
            topdown_rows(rec, rows, skeleton, topdown, scene, det[:, 4])
        jitter_rows(rec, rows, skeleton, cfg, parser, inputs, seed, topdown, scene, det[:, 4])
        yield rec


def add_results(rec, row, skeleton, keypoints, scores):
    rec.results[row] = to_coco_results(rec.image_id, skeleton.to_dataset(keypoints), scores)


def parse_rows(rec, rows, skeleton, cfg, parser, inputs, box_scores, t0):
    """Our rows without jitter on one image: the full method on the run's
    boxes first (timed from ``t0``), then the other Table IV rows, then
    those on ground-truth boxes ([3]'s parse has no boxes: the same parse)."""
    pred = rec.pred
    run = [r.method for r in rows if r.jitter is None and not r.gt_boxes and r.method in parser.variants]
    run = list(dict.fromkeys(run))
    parsed = parser.parse(pred, rec.boxes["run"], skeleton, cfg, ("full",) if "full" in run else (), inputs,
                          box_scores)
    rec.seconds["ours"] = time.perf_counter() - t0
    parsed.update(parser.parse(pred, rec.boxes["run"], skeleton, cfg, tuple(v for v in run if v != "full"),
                               inputs, box_scores))
    for v, parse in parsed.items():
        rec.parses[Row(v)] = parse
        add_results(rec, Row(v), skeleton, parse.keypoints, parse.scores)
        if Row(v, own_score=True) in rows:
            add_results(rec, Row(v, own_score=True), skeleton, parse.keypoints, [p.conf for p in parse.poses])
    on_gt = [r.method for r in rows if r.gt_boxes and r.jitter is None and r.method in parser.variants]
    if on_gt:
        parsed = parser.parse(pred, rec.boxes["gt"], skeleton, cfg, tuple(v for v in on_gt if v != "greedy"),
                              inputs)
        if "greedy" in on_gt:
            parsed["greedy"] = rec.parses[Row("greedy")]            # [3] has no boxes to change
        for v, parse in parsed.items():
            rec.parses[Row(v, True)] = parse
            add_results(rec, Row(v, True), skeleton, parse.keypoints, parse.scores)


def topdown_rows(rec, rows, skeleton, topdown, scene, box_scores):
    """Paper 1 in the run's boxes (timed) and in the ground-truth boxes."""
    t0 = time.perf_counter()
    add_results(rec, Row("topdown"), skeleton, *topdown(scene.image, scene.factor, rec.boxes["run"], box_scores))
    rec.seconds["topdown"] = time.perf_counter() - t0
    if Row("topdown", True) in rows:
        b = rec.boxes["gt"]
        add_results(rec, Row("topdown", True), skeleton, *topdown(scene.image, scene.factor, b, np.ones(len(b))))


def jitter_rows(rec, rows, skeleton, cfg, parser, inputs, seed, topdown, scene, box_scores):
    """Fig. 1 (a-b): the full method on each box set jittered by each level,
    and paper 1 on the run's boxes jittered alike."""
    levels = list(dict.fromkeys(r.jitter for r in rows if r.jitter is not None))
    for lv in levels:
        for which, gt in (("run", False), ("gt", True)):
            if Row("full", gt, lv) not in rows:
                continue
            # The same draw at every level (one seed per image), scaled by
            # the level: the curve shows the boxes getting worse, not noise.
            jb = jitter_boxes(rec.boxes[which], np.random.default_rng([seed, rec.index, 2]), lv)
            p = parser.parse(rec.pred, jb, skeleton, cfg, ("full",), inputs)["full"]
            add_results(rec, Row("full", gt, lv), skeleton, p.keypoints, p.scores)
            if topdown is not None and not gt and Row("topdown", jitter=lv) in rows:
                add_results(rec, Row("topdown", jitter=lv), skeleton,
                            *topdown(scene.image, scene.factor, jb, box_scores))


class Tally:
    """What the tables keep of ``evaluate``'s records: the ground truth, the
    image ids and each row's COCO results (the maps are not kept)."""

    def __init__(self, rows):
        self.rows, self.gts, self.crowd_gts, self.ids = rows, [], [], []
        self.results = {r: [] for r in rows}

    def add(self, rec):
        self.gts += rec.gt
        self.crowd_gts += crowded_slice(rec.gt)
        self.ids.append(rec.image_id)
        for r, res in rec.results.items():
            self.results[r] += res
        return rec

    def ap(self, skeleton, row):
        return score(skeleton, self.gts, self.results[row], self.ids)


def paper_tables(tally, skeleton, variants, seed=0):
    """The numbers of the paper's tables from a ``Tally``: {"rows": {Row: AP
    dict}}, "table_iv" (each Table IV row's AP difference from the full
    method, 95 % bootstrap interval over images), "table_iv_own" (ranked by
    each parser's own score) and "table_iv_gt" (on ground-truth boxes) when
    evaluated, and "crowded": Fig. 1 (c-d), the full method, [3] and the
    top-down row on the people with a neighbour at box IoU > 0.3
    (``crowded_slice``). ``variants``: Table IV's rows (``Parser.variants``)."""
    t = tally
    out = {"rows": {r: t.ap(skeleton, r) for r in t.rows}}
    for key, variant in (("table_iv", {}), ("table_iv_own", {"own_score": True}), ("table_iv_gt", {"gt_boxes": True})):
        if all(Row(v, **variant) in t.results for v in variants):
            table = {v: t.results[Row(v, **variant)] for v in variants}
            out[key] = bootstrap_ap(t.gts, table, t.ids, skeleton.sigmas, reference="full", seed=seed)
    out["crowded"] = {m: coco_keypoint_ap(t.crowd_gts, t.results[Row(m)], t.ids, skeleton.sigmas)
                      for m in ("full", "greedy", "topdown") if Row(m) in t.results}
    out["crowded"]["people"] = len(scored_people(t.crowd_gts))
    return out


def crossing(levels, aps, reference):
    """The jitter level at which a curve first falls below ``reference``,
    linearly interpolated between the measured levels; None if it never does."""
    for k in range(len(levels)):
        if aps[k] < reference:
            if k == 0:
                return float(levels[0])
            a, b = aps[k - 1] - reference, aps[k] - reference
            return float(levels[k - 1] + a / (a - b) * (levels[k] - levels[k - 1]))
    return None


def crowded_slice(annotations, iou=0.3):
    """The annotations of one image for the crowded slice (Fig. 1 c-d): people
    with a neighbour at box IoU > ``iou`` are scored; everyone else becomes a
    crowd region (``iscrowd = 1``), so a detection on them counts neither as
    right nor as wrong, exactly as COCO treats its crowds (pycocotools agrees)."""
    people = scored_people(annotations)
    near = with_neighbour(np.array([a["bbox"] for a in people]).reshape(-1, 4), iou)
    slice_ = [dict(a, iscrowd=int(not c)) for a, c in zip(people, near)]
    return slice_ + [a for a in annotations if a not in people]


DATA_NAMES = {"toy": ("toy scenes", "CrowdPose's OKS constants, scale 0.53 x box area"),
              "coco": ("COCO val", "COCO's OKS constants, scale = segment area"),
              "aic": ("AI Challenger val", "AI Challenger's OKS constants"),
              "crowdpose": ("CrowdPose", "CrowdPose's OKS constants, scale 0.53 x box area")}


def boxes_text(boxes, flag=None):
    """What a box source is called in the tables' titles."""
    if isinstance(boxes, DetectorModel):
        return "simulated detector"
    if is_net(boxes):
        return "the network's own boxes (§V)"
    return "ground-truth boxes" if boxes == "gt" else f"boxes from {flag}"


def is_net(boxes):
    """Whether a box source is the network's own box head ("net")."""
    return isinstance(boxes, str) and boxes == "net"


def print_tables_i_ii(ev, data, n, what, cfg):
    """Tables I-II's layout: the top-down row, [3], ours, and on ground-truth boxes."""
    rows = ev["rows"]
    name, oks_note = DATA_NAMES[data]
    table = ([("top-down: paper 1 in each box", rows[Row("topdown")])] if Row("topdown") in rows else [])
    table += [("box-free parse of [3]", rows[Row("greedy")]), ("ours (full)", rows[Row("full")])]
    table += [(f"{label}, ground-truth boxes (upper bound)", rows[Row(m, True)])
              for m, label in (("topdown", "top-down"), ("full", "ours")) if Row(m, True) in rows]
    print(f"\nTables I-II layout -- OKS AP (%) on {n} {name}, {what}, scales {cfg.scales} "
          f"({oks_note})\n" + format_ap_table(table))
    if "AIC score" in rows[Row("full")]:
        note = ", AIC constants: for comparison only, too strict for toy sizes" if data == "toy" else ""
        print(f"AI Challenger score (its official keypoint_eval.py{note}): "
              f"{100 * rows[Row('full')]['AIC score']:.2f}")


def print_table_iv(ev, what, n, cfg, variants):
    """Table IV (both scores when both were scored, and on ground-truth boxes)."""
    common = f"ranked by {'Eq. (9) / [3] own' if cfg.readings.rank_score == 'own' else 'the common score'}"
    scores = [("table_iv", what, common)]
    if "table_iv_own" in ev:
        scores.append(("table_iv_own", what, "each parser ranked by its own score (Eq. 9 / [3]'s)"))
    if "table_iv_gt" in ev:
        scores.append(("table_iv_gt", "ground-truth boxes", common))
    for key, what, how in scores:
        print(f"\nTable IV -- analysis of each component (AP %, {what}, {how}); difference from the "
              f"full method with its 95 % bootstrap interval over {n} images (300 resamples)")
        for v, label in variants.items():
            t = ev[key][v]
            diff = "" if v == "full" else f"   {100 * t['diff']:+5.1f}  [{100 * t['lo']:+5.1f}, {100 * t['hi']:+5.1f}]"
            print(f"  {label:<28} {100 * t['AP']:5.1f}{diff}")


def print_crowded(ev):
    cr = ev["crowded"]
    rows = ([("top-down: paper 1 in each box", cr["topdown"])] if "topdown" in cr else [])
    rows += [("box-free parse of [3]", cr["greedy"]), ("ours (full)", cr["full"])]
    print(f"\nFig. 1 (c-d) -- the crowded slice: {cr['people']} people with a neighbour at box IoU > 0.3 "
          f"(the others scored as crowd regions)\n" + format_ap_table(rows))


def jitter_curves(ev, what):
    """Fig. 1 (a-b): AP against box jitter for each method and box set, beside
    the box-free parse of [3]; prints the table and each curve's crossing."""
    rows = ev["rows"]
    levels = list(dict.fromkeys(r.jitter for r in rows if r.jitter is not None))
    if not levels:
        return {}
    ref = rows[Row("greedy")]["AP"]
    columns = [(m, gt, (f"top-down, {w}" if m == "topdown" else w), f"{label}, {w}")
               for gt, w in ((False, what), (True, "ground-truth boxes")) for m, label in
               (("full", "ours"), ("topdown", "top-down")) if Row(m, gt, levels[0]) in rows]
    width = max(20, *(len(c[3]) for c in columns))
    print("\nFig. 1 (a-b) -- AP (%) vs box jitter (centre shift and size change up to the level x box "
          "size)\n  level " + "".join(f"  {c[3]:>{width}}" for c in columns) + f"  {'[3], no boxes':>14}")
    for lv in levels:
        print(f"  {lv:5.2f} " + "".join(f"  {100 * rows[Row(m, gt, lv)]['AP']:{width}.1f}"
                                      for m, gt, _, _ in columns) + f"  {100 * ref:14.1f}")
    curves = {}
    for m, gt, key, label in columns:
        aps = [rows[Row(m, gt, lv)]["AP"] for lv in levels]
        x = crossing(levels, aps, ref)
        curves[key] = {"levels": levels, "AP": aps, "below [3] from": x}
        print(f"  {label}: " + (f"falls below [3] at jitter {x:.2f}" if x is not None else
                                f"stays above [3] up to jitter {levels[-1]:.2f}"))
    return curves


def print_tables(ev, data, n, what, cfg, variants):
    """Print the paper's tables from ``paper_tables``'s ``ev`` (``n`` images of
    ``data`` on the boxes ``what`` names): Tables I-II, Table IV, the crowded
    slice and Fig. 1 (a-b)'s curves, which are returned (``jitter_curves``)."""
    print_tables_i_ii(ev, data, n, what, cfg)
    print_table_iv(ev, what, n, cfg, variants)
    print_crowded(ev)
    return jitter_curves(ev, what)


def results_json(ev):
    """``final_evaluation``'s output as results.json holds it (rows by name)."""
    return {"results": {r.key: ap for r, ap in ev["rows"].items()}, **{k: v for k, v in ev.items() if k != "rows"}}
