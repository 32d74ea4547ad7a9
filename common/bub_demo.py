"""Paper 2's demo: the poses of everyone in photos, or in a fresh toy scene.

Per image a figure (``plotting.figure_scene``: the boxes and our poses, the
maps, the fields, the box-free parse of [3]) and a COCO-results JSON; for
several images one results file for them all; and beside them, once, the
joint order of every ``keypoints`` list (joints.json). The boxes come from
a detection file when one is given, from the ground truth on a synthetic
scene, and otherwise from the box-free parse of [3] (``person_boxes``, the
documented fallback).

Here rather than in ``bottom_up_bbox.py``: image files, image ids and JSON
files say nothing the paper says. The parse is the script's, passed in (a
``common.bub_eval.Parser``), and so is §IV-A's box extension.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import plotting
from .coco_eval import to_coco_results, write_json
from .detector import gt_boxes
from .toy import ToyScenes
from .transforms import image_ids, open_for_network


@dataclass
class Demo:
    """A trained network (ours or Cao et al.'s) and how its outputs are read."""
    model: object                 # a network with ``infer`` (``bottom_up_bbox.PoseNetwork``, ``CaoNetwork``)
    cfg: object                   # its ``Config``, with the reading flags applied
    skeleton: object
    parser: object                # the paper's parse (``bottom_up_bbox.PARSER``)
    extend: Callable              # §IV-A's box extension (``bottom_up_bbox.extend_boxes``)
    device: object
    out: Path                     # the folder the files go to
    flag: str = None              # ``--boxes`` as given (None, "gt", "net" or a detection file)
    seed: int = 0                 # of the synthetic scene
    by_height: bool = False       # the image's height at ``test_size`` (Cao et al.'s input), not its longer side

    def run(self, files, dets=None):
        """Every image of ``files`` (paths; none: a fresh toy scene), with a
        detection file's {image_id: (N, 5)} boxes ``dets``. Returns every
        person's COCO result."""
        # COCO results carry no joint names: they go beside them, once.
        write_json(self.out / "joints.json", {"joints": list(self.skeleton.dataset_joints),
                                              "keypoints": "x, y, score per joint in this order, image px "
                                                           "(COCO results)"})
        everyone = []
        ids = image_ids(files)
        for k, path in enumerate(files or [None]):
            everyone += self.image(path, ids[k] if files else 0, dets, len(files))
        if len(files) > 1:
            write_json(self.out / "results_coco.json", everyone)
            print(f"{len(files)} images, {len(everyone)} people: all in {self.out / 'results_coco.json'}")
        return everyone

    @property
    def own(self):
        """Whether the network's own box head gives the boxes (paper 2's §V):
        it has one, and ``--boxes`` is not given or says "net"."""
        return getattr(self.model, "box_head", None) is not None and self.flag in (None, "net")

    def load(self, path):
        """(image, full-resolution size, name, boxes or None) of a photo, or of
        a fresh toy scene (``path`` None) with its ground-truth boxes."""
        cfg = self.cfg
        if path is None:
            scene = ToyScenes(self.seed + 7919, 1, cfg.input_size, self.skeleton)
            # Without a box head, the toy scene's ground-truth boxes stand in for a detector.
            boxes = gt_boxes(scene.ground_truth(0)) if self.flag == "gt" or self.flag is None and not self.own else None
            return scene.load(0).image, (cfg.input_size, cfg.input_size), "toy_scene", boxes
        # A long side far above the network's input is decoded smaller (a
        # JPEG at 1/2, 1/4 or 1/8) and then resized: a 100 MP photo costs
        # what a 2 MP one does; the poses come back in the file's pixels.
        image, size = open_for_network(path, cfg.test_size * max(cfg.scales), by_height=self.by_height)
        return image, size, path.stem, None

    def file_boxes(self, dets, image_id, name, n_files):
        """A detection file's boxes (N, 4) of one image; a file with one image's
        boxes serves a lone image whatever its id; none: a warning, no box."""
        mine = dets.get(image_id)
        if mine is None and len(dets) == 1 and n_files <= 1:              # a file made for this one image
            mine = next(iter(dets.values()))
        if mine is None:
            print(f"warning: --boxes {self.flag} has no boxes for image_id {image_id} ({name}); "
                  f"no person will be found in it", flush=True)
        return np.zeros((0, 4)) if mine is None else mine[:, :4]

    def parse(self, image, size, boxes=None):
        """(network outputs, {"greedy", "full"}: ``Parse`` in image px, boxes)
        of one image, parsed in ``boxes`` (N, 4) or, with None, in the
        network's own boxes (``own``) or else the box-free parse's extents."""
        cfg, sk, parse = self.cfg, self.skeleton, self.parser.parse
        pred = self.model.infer(image, size, cfg, self.device)
        if boxes is None and self.own:
            boxes = pred.boxes[:, :4]
        inputs = self.parser.prepare(pred.maps, pred.fields, sk, cfg)
        greedy = parse(pred, np.zeros((0, 4)), sk, cfg, ("greedy",), inputs)["greedy"]
        if boxes is None:
            # No detector: the documented fallback, the extents of the box-free
            # parse of [3], each extended by 10% per side (then by 10% again by
            # the parser, as any detector's box would be).
            boxes = self.extend(person_boxes(greedy.keypoints), 0.1)
        return pred, {"greedy": greedy, **parse(pred, boxes, sk, cfg, ("full",), inputs)}, boxes

    def figure(self, image, pred, parsed, boxes, name, title=""):
        """``plotting.figure_scene`` of one parsed image, as NAME.png in ``out``."""
        return plotting.figure_scene(image, pred, self.extend(boxes, self.cfg.box_extend), parsed, self.skeleton,
                                     self.out / f"{name}.png", title=title)

    def image(self, path, image_id, dets, n_files):
        """The demo on one photo (``path``), or on a fresh toy scene (None)."""
        sk = self.skeleton
        image, size, name, boxes = self.load(path)
        if dets is not None:
            boxes = self.file_boxes(dets, image_id, name, n_files)
        fallback = boxes is None and not self.own
        source = ("from the network's box head" if boxes is None and self.own else
                  "from the extents of [3]'s parse (no detector given)" if fallback else "given")
        pred, parsed, boxes = self.parse(image, size, boxes)
        kp, conf = parsed["full"].keypoints, parsed["full"].scores
        title = f"{len(kp)} person(s) in boxes {source}"
        figure = self.figure(image, pred, parsed, boxes, f"{name}_poses", title)
        results = to_coco_results(image_id, sk.to_dataset(kp), conf)
        for r in results:
            r["file_name"] = name if path is None else path.name
        write_json(self.out / f"{name}_results.json", results)
        print(f"{name}: {len(kp)} person(s) in {len(boxes)} box(es) {source}; figure {figure}; "
              f"COCO results {self.out / (name + '_results.json')}", flush=True)
        return results


def person_boxes(keypoints):
    """Each pose's joints' extent (P, 4: x, y, w, h): the demo's boxes when no
    detector is given, from the poses of the box-free parse."""
    boxes = []
    for kp in keypoints:
        xy = kp[kp[:, 2] > 0, :2]
        lo, hi = xy.min(0), xy.max(0)
        boxes.append([*lo, *(hi - lo)])
    return np.array(boxes, np.float32).reshape(-1, 4)
