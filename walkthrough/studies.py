"""The studies behind the papers' claims: paper 2's in crowds, paper 1's Table 5 over seeds.

The paper's Table IV says parsing inside boxes beats the box-free parse of
Cao et al. [3] by 6.89 AP. The studies below measure that claim, and say
why it holds or not, person by person (``common.attribution``):

    python walkthrough/studies.py real       # perfect maps of real crowded annotations
    python walkthrough/studies.py sweep      # the toy, from crowds a box can resolve to the paper's regime
    python walkthrough/studies.py detector   # AP against the detector's misses and box noise
    python walkthrough/studies.py readings   # each reading the paper leaves open, one at a time
    python walkthrough/studies.py table5     # paper 1: Table 5 on seeds 0, 1, 2 (--seeds), the Totals' spread

``sweep``, ``detector`` and ``readings`` parse perfect maps ("oracle": no
network, seconds) and, with ``--checkpoint runs/toy/best.pt``, a trained
network's outputs as well. Each prints its table and writes a JSON (``--out``,
default ``runs/studies``). The README's "Paper 2's claim in crowds" quotes
their output.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import bottom_up_bbox as bub  # noqa: E402
from common import attribution, coco_aic  # noqa: E402
from common.coco_eval import bootstrap_ap, to_coco_results, write_json  # noqa: E402
from common.toy import PAPER_REGIME, Regime  # noqa: E402

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
            out[name] = bub.RecordScenes(read(root / file, (root / file).parent), bub.Skeleton(name))
    return out


def oracle_maps(source, cfg, stride):
    """A perfect network: each image's ground-truth maps and fields."""
    return lambda i: bub.oracle_prediction(source.load(i), source.skeleton, cfg, stride)


def network_maps(model, source, cfg, device="cpu"):
    """A trained network's outputs, computed once per image and kept."""
    cache = {}

    def pred(i):
        if i not in cache:
            scene = source.load(i, max_reduce=max(bub.scene_size(source, i)) / cfg.test_size)
            cache[i] = bub.infer(model, scene.image, scene.size, cfg, device)
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
            b = bub.gt_boxes(gt)
            s = np.ones(len(b))
        else:
            d = bub.simulated_detector(gt, bub.scene_size(source, i), np.random.default_rng([seed, i, 1]),
                                       replace(cfg, detector=boxes))
            b, s = d[:, :4], d[:, 4]
        inputs = bub.candidates_and_scores(pred.maps, pred.fields, sk, cfg)
        parsed = bub.parse_variants(pred, b, sk, cfg, variants, inputs, s)
        for v, p in parsed.items():
            results[v] += to_coco_results(source.image_id(i), sk.to_dataset(p.keypoints), p.scores)
        for v, a in bub.lost_people(parsed, pred, inputs[0], gt, sk, cfg, b, tau).items():
            lost[v] += a
    causes = {v: attribution.GREEDY_CAUSES if v == "greedy" else attribution.OURS_CAUSES for v in variants}
    return {"AP": {v: bub.score(sk, gts, r, ids)["AP"] for v, r in results.items()},
            "lost": {v: {"missed": len(a), **attribution.count(a, causes[v])} for v, a in lost.items()},
            "people": len(bub.scored_people(gts)), "gts": gts, "ids": ids, "results": results}


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
                cfg = replace(bub.Config(data=name), **change)
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
        src = bub.ToyScenes(args.seed + 1, args.scenes, cfg.input_size, sk, regime)
        row = {}
        sources = [("oracle", oracle_maps(src, cfg, 4))] + \
            ([("trained", network_maps(model, src, cfg))] if model is not None else [])
        for maps_name, maps in sources:
            for boxes_name, boxes in (("gt boxes", "gt"), ("detector", cfg.detector)):
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
    src = bub.ToyScenes(args.seed + 1, args.scenes, cfg.input_size, sk)
    base = cfg.detector
    out = {}
    sources = [("oracle", oracle_maps(src, cfg, 4))] + \
        ([("trained", network_maps(model, src, cfg))] if model is not None else [])
    misses, noises = ((0.0, base.miss, 0.5), (0.0, 1.0, 3.0)) if getattr(args, "quick", False) else \
        (DETECTOR_MISS, DETECTOR_NOISE)
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
    src = bub.ToyScenes(args.seed + 1, args.scenes, cfg.input_size, sk)
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
        c = replace(cfg, **change)
        row = {}
        for maps_name, m in maps.items():
            for boxes_name, boxes in (("gt boxes", "gt"), ("detector", c.detector)):
                ev = evaluate(src, m, c, boxes, ("full", "greedy"), args.seed)
                row[f"toy {maps_name}, {boxes_name}"] = {"AP": ev["AP"], "lost": ev["lost"]}
        for name, real in real_sources(Path(args.real)).items() if getattr(args, "real_readings", True) else ():
            rc = replace(bub.Config(data=name), **change)
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
           "table5": study_table5}


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
    args = p.parse_args(argv)
    if min(args.seeds) < 0:
        p.error(f"--seeds {' '.join(map(str, args.seeds))}: expected seeds >= 0")
    if args.scenes < 1:
        p.error(f"--scenes {args.scenes}: expected a positive number of scenes")
    if args.checkpoint and not Path(args.checkpoint).is_file():
        p.error(f"--checkpoint {args.checkpoint}: no such file")
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
            conf[lo + b] = hr.at_truth(maps[b], s["kp_crop"].numpy(), model.stride)
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
