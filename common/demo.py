"""Photos in, poses out: paper 1's ``--demo``, one person per crop.

Each photo is cropped the way training crops a person
(``common.crops.box_center_scale``: 1.25 x a box's longer side onto the
input): around each box of a COCO detection-results file, or -- without
boxes -- around the one roughly centred person assumed to fill the photo's
height (as MPII's test protocol gives a rough centre and scale). Each photo
gets an overlay PNG and a JSON of the joints, in the file's pixels, names
beside.

The network comes in as a callable, ``pose(crop) -> (xy, score)``: a
normalised crop ``(1, 3, S, S)`` to its joints ``(J, 2)`` in crop pixels and a
score per joint. So this module knows no method: ``heatmap_regression.py``
passes its cascade, flip test and decoding. Here rather than in the script:
finding, decoding, cropping and writing photos is the bench the method runs
on, not the method.
"""
from pathlib import Path

import numpy as np

from . import coco_aic, plotting
from .cli import UsageError, check_out_dir
from .coco_eval import write_json
from .harness import load_checkpoint
from .crops import box_center_scale, crop_side
from .skeleton import joint_bones
from .transforms import (apply_affine, crop_matrix, image_files, image_ids, image_size, invert_affine,
                         open_for_network, open_image, to_tensor, warp_image)


def demo_inputs(args):
    """``--demo``'s inputs, checked in the order a user meets them: the
    photos (``--demo``: files or folders), ``--checkpoint``, ``--out``
    (default runs/demo), ``--boxes``. Returns (files, out folder, boxes)."""
    files = image_files(args.demo)
    if not args.checkpoint:
        raise UsageError("--demo needs --checkpoint PATH (a best.pt written by training)")
    out = check_out_dir(args.out or Path("runs") / "demo")
    return files, out, read_boxes(args.boxes)


def note_if_toy(checkpoint):
    """A network trained on toy figures (its saved ``--data``) means little
    on a photo: say so."""
    trained_on = (load_checkpoint(checkpoint)["extra"].get("flags") or {}).get("data", "")
    if trained_on.startswith("toy"):
        print(f"note: {checkpoint} was trained on --data {trained_on}; on a photo its pose means little", flush=True)


def read_boxes(boxes_file):
    """``--boxes FILE``: {image_id: (K, 5) boxes and scores}, or None without it."""
    return coco_aic.read_detections(Path(boxes_file).expanduser()) if boxes_file else None


def pose_photos(files, dets, pose, input_size, names, out, boxes_file=None):
    """The pose of each person in each of ``files``: in each of its boxes
    (``dets``, from ``read_boxes(boxes_file)``) or, with ``dets`` None, the
    one who fills it. One photo alone with one person: its joints printed too."""
    for path, image_id in zip(files, image_ids(files)):
        size = image_size(path)
        if size is None:
            open_image(path)                   # unreadable or too large: its one line
        boxes = None                           # the person fills the photo (see demo_crops)
        if dets is not None:
            boxes = dets.get(image_id, np.zeros((0, 5)))[:, :4]
            if not len(boxes):
                print(f"warning: --boxes {boxes_file} has no boxes for image_id {image_id} ({path.name})",
                      flush=True)
        people = pose_photo(path, image_id, size, boxes, pose, input_size, names, out, boxes_file)
        if len(files) == 1 and len(people) == 1:
            for name, (px, py, c) in zip(names, people[0]):
                print(f"  {name:11s} x {px:7.1f}  y {py:7.1f}  score {c:.2f}")


def demo_crops(path, size, boxes, input_size):
    """The photo, decoded only as large as its crops need (a 100 Mpx JPEG in
    a fraction of a second), the factor (file px -> decoded px) and each
    person's crop (image -> crop affine), cropped as training crops a person
    (``box_center_scale``). Without ``boxes`` the person is assumed to fill
    the photo's height, centred."""
    need = None if boxes is None else min((crop_side(box_center_scale(b)[1]) for b in boxes), default=None)
    img, size = open_for_network(path, size[1] * input_size / need if need else input_size, by_height=True)
    f = np.array(img.size, np.float64) / np.array(size)                  # file px -> decoded px
    if boxes is None:
        w, h = img.size
        return img, f, [crop_matrix(np.array([(w - 1) / 2, (h - 1) / 2]), crop_side(h / 200.0), input_size)]
    crops = []
    for b in boxes:
        c, scale = box_center_scale(b)                                   # the file's pixels
        crops.append(crop_matrix((c + 0.5) * f - 0.5, crop_side(scale * f[1]), input_size))
    return img, f, crops


def pose_photo(path, image_id, size, boxes, pose, input_size, names, out, boxes_file=None):
    """One photo of ``pose_photos``: each crop's pose, drawn and written
    (JSON, the file's pixels). Returns the people: per joint [x, y, score]."""
    import matplotlib.pyplot as plt
    names = tuple(names)
    img, f, crops = demo_crops(path, size, boxes, input_size)
    fig, ax = plt.subplots(figsize=(6, 6 * img.height / img.width))
    ax.imshow(img)
    people = []
    for A in crops:
        xy, score = pose(to_tensor(warp_image(img, A, input_size))[None])
        xy = apply_affine(invert_affine(A), xy)
        plotting.draw_pose(ax, np.concatenate([xy, np.full((len(names), 1), 2.0)], 1), joint_bones(names),
                           names, dashed_occluded=False)
        full = (xy + 0.5) / f - 0.5                                      # the file's pixels
        people.append([[round(float(x), 2), round(float(y), 2), round(float(c), 4)]
                       for (x, y), c in zip(full, score)])
    ax.axis("off")
    ax.set_title(f"{len(people)} person(s)" + ("" if boxes is None else f" in the boxes of {Path(boxes_file).name}")
                 + " (blue left, red right)", fontsize=9)
    figure = plotting.save(fig, out / f"{path.stem}_pose.png")
    write_json(out / f"{path.stem}_pose.json",
               {"image": str(path), "image_id": image_id, "size": list(size), "joints": list(names),
                "people": [{"box": None if boxes is None else [float(v) for v in b], "keypoints": kp}
                           for b, kp in zip(boxes if boxes is not None else [None], people)]})
    print(f"{path.name}: {len(people)} person(s); {figure} and {out / (path.stem + '_pose.json')}", flush=True)
    return people
