"""COCO / AI Challenger readers on fixtures written in the real file formats,
the real COCO samples, and segmentation masks against pycocotools.

Fixture numbers are written as the files hold them; the expected values next
to them are what the readers must return (our v, x y w h boxes).
"""
import contextlib
import copy
import io
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.coco_aic import (DataError, find_annotation_files, read_aic, read_coco,
                             read_detections, segmentation_mask)
from common.coco_eval import coco_keypoint_ap
from common.skeleton import AIC_JOINTS, AIC_SIGMAS, COCO_JOINTS

REAL = Path(__file__).parents[1] / ".." / "shared" / "real_samples" / "coco"
A = {n: i for i, n in enumerate(AIC_JOINTS)}
C = {n: i for i, n in enumerate(COCO_JOINTS)}


def one_line_error(exc_type, fn, *args, match, **kwargs):
    with pytest.raises(exc_type) as e:
        fn(*args, **kwargs)
    msg = str(e.value)
    assert "\n" not in msg, msg
    for m in [match] if isinstance(match, str) else match:
        assert m in msg, msg
    return msg


def flat(joints, n, **given):
    """Flat [x, y, v] * n list with ``given`` joints set, the rest (0, 0, fill)."""
    fill = given.pop("_fill", 0)
    out = [[0, 0, fill] for _ in range(n)]
    for name, xyv in given.items():
        out[joints[name]] = list(xyv)
    return [v for xyv in out for v in xyv]


def write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


# ------------------------------------------------------------------------ COCO
CROWD_RLE = {"counts": [0, 3, 27, 3, 1167], "size": [30, 40]}  # column-major: rows 0-2 of columns 0-1


def coco_fixture(tmp_path, **overrides):
    person = {"id": 101, "image_id": 7, "category_id": 1, "iscrowd": 0, "num_keypoints": 3,
              "keypoints": flat(C, 17, nose=(12, 5, 2), l_eye=(13, 4, 1), l_ear=(5, 6, 0),
                                r_ankle=(20, 28, 2)),   # l_ear: junk x, y with v = 0
              "bbox": [10.2, 3.2, 12.5, 25.5], "area": 200.5,
              "segmentation": [[10.2, 3.2, 22.7, 3.2, 22.7, 28.7, 10.2, 28.7]]}
    crowd = {"id": 102, "image_id": 7, "category_id": 1, "iscrowd": 1, "num_keypoints": 0,
             "keypoints": [0] * 51, "bbox": [0, 0, 2, 3], "area": 6, "segmentation": CROWD_RLE}
    unlabelled = {"id": 103, "image_id": 7, "category_id": 1, "iscrowd": 0, "num_keypoints": 0,
                  "keypoints": [0] * 51, "bbox": [30, 10, 4, 6], "area": 24,
                  "segmentation": [[30, 10, 34, 10, 34, 16]]}
    not_person = {"id": 104, "image_id": 7, "category_id": 2, "bbox": [1, 1, 1, 1], "area": 1}
    data = {"info": {}, "licenses": [],
            "images": [{"id": 7, "file_name": "000000000007.jpg", "width": 40, "height": 30},
                       {"id": 9, "file_name": "000000000009.jpg", "width": 20, "height": 10}],
            "annotations": [person, not_person, crowd, unlabelled],
            "categories": [{"id": 1, "name": "person", "keypoints": list(COCO_JOINTS), "skeleton": []}]}
    data.update(overrides)
    (tmp_path / "val2017").mkdir(exist_ok=True)
    return write(tmp_path / "annotations" / "person_keypoints_val2017.json", data), tmp_path / "val2017"


def test_coco_keeps_crowds_unlabelled_persons_and_empty_images(tmp_path):
    a, b = read_coco(*coco_fixture(tmp_path))
    assert (a.image, a.image_id, a.width, a.height) == (str(tmp_path / "val2017" / "000000000007.jpg"), 7, 40, 30)
    assert a.keypoints.shape == (3, 17, 3) and a.keypoints.dtype == np.float32
    np.testing.assert_array_equal(a.keypoints[0, [C["nose"], C["l_eye"], C["r_ankle"]]],
                                  [[12, 5, 2], [13, 4, 1], [20, 28, 2]])
    np.testing.assert_array_equal(a.keypoints[0, C["l_ear"]], [0, 0, 0])  # junk under v = 0 cleared
    assert a.keypoints[0, :, 2].sum() == 5 and not a.keypoints[1:].any()
    np.testing.assert_allclose(a.boxes, [[10.2, 3.2, 12.5, 25.5], [0, 0, 2, 3], [30, 10, 4, 6]], rtol=1e-6)
    np.testing.assert_array_equal(a.areas, np.float32([200.5, 6, 24]))
    np.testing.assert_array_equal(a.iscrowd, [False, True, False])
    assert a.ann_ids.dtype == np.int64 and a.ann_ids.tolist() == [101, 102, 103]  # 104 is not a person
    assert a.segmentations[1] == CROWD_RLE and a.segmentations[2] == [[30, 10, 34, 10, 34, 16]]
    # The image without persons stays, with empty arrays of the right shapes.
    assert (b.image_id, b.width, b.height, b.segmentations) == (9, 20, 10, [])
    assert b.keypoints.shape == (0, 17, 3) and b.boxes.shape == (0, 4)
    assert b.areas.shape == b.iscrowd.shape == b.ann_ids.shape == (0,)


def test_coco_fixture_masks_by_hand(tmp_path):
    a, _ = read_coco(*coco_fixture(tmp_path))
    crowd = segmentation_mask(a.segmentations[1], 30, 40)
    expected = np.zeros((30, 40), bool)
    expected[0:3, 0:2] = True
    np.testing.assert_array_equal(crowd, expected)
    # Pixel (r, c) is sampled at (c + .5, r + .5) of the polygon: columns
    # 10..22 (10.5..22.5 in [10.2, 22.7]) and rows 3..28.
    box = segmentation_mask(a.segmentations[0], 30, 40)
    expected[:] = False
    expected[3:29, 10:23] = True
    np.testing.assert_array_equal(box, expected)
    assert not segmentation_mask(None, 30, 40).any()


@pytest.mark.parametrize("change, match", [
    (lambda d: d.pop("images"), "expected a COCO JSON object with 'images' and 'annotations'"),
    (lambda d: d["annotations"][0]["keypoints"].pop(), "annotation 101: expected 'keypoints' as 51"),
    (lambda d: d["annotations"][0]["keypoints"].__setitem__(2, 3), "annotation 101: keypoint 0 has v = 3"),
    (lambda d: d["annotations"][0]["bbox"].__setitem__(3, -1), "annotation 101: negative bbox"),
    (lambda d: d["annotations"][0].__setitem__("image_id", 8), "image_id 8 is not in 'images'"),
    (lambda d: d["annotations"][2].__setitem__("area", None), "annotation 102: expected 'area'"),
    (lambda d: d["images"][1].pop("height"), "images[1]: expected 'id', 'file_name', 'width' and 'height'"),
    (lambda d: d["categories"][0]["keypoints"].pop(), "category 1 has 16 keypoints, expected 17"),
])
def test_coco_malformed_is_one_line_naming_the_file(tmp_path, change, match):
    json_path, images = coco_fixture(tmp_path)
    data = json.loads(json_path.read_text())
    change(data)
    write(json_path, data)
    one_line_error(DataError, read_coco, json_path, images, match=[str(json_path), match])


def test_coco_missing_files_say_what_to_download(tmp_path):
    json_path, images = coco_fixture(tmp_path)
    one_line_error(FileNotFoundError, read_coco, tmp_path / "nope.json", images,
                   match=["nope.json", "cocodataset.org"])
    one_line_error(FileNotFoundError, read_coco, json_path, tmp_path / "train2017",
                   match=["train2017", "image folder", "cocodataset.org"])
    write(json_path, "")
    one_line_error(DataError, read_coco, json_path, images, match=[str(json_path), "empty file"])
    write(json_path, "{oops")
    one_line_error(DataError, read_coco, json_path, images, match=[str(json_path), "not valid JSON"])


# ---------------------------------------------------------- AI Challenger
IMG1, IMG2 = "3a7e1c0ffee5d4c3b2a1908f7e6d5c4b3a291807", "ff00aa"
# Official layout: v 1 visible / 2 occluded / 3 not labelled; boxes x1 y1 x2 y2.
HUMANS = {
    IMG1: {
        "human2": (flat(A, 14, neck=(30, 31, 1), _fill=3), [0, 0, 50, 60]),
        "human10": (flat(A, 14, l_ankle=(60, 190, 2), _fill=3), [40, 20, 70, 199]),
        "human1": (flat(A, 14, r_shoulder=(100, 50, 1), r_elbow=(110, 80, 2), r_wrist=(7, 8, 3),
                        head_top=(105, 10, 1), neck=(104, 40, 2), _fill=3), [80, 5, 140, 200]),
    },
    IMG2: {"human1": (flat(A, 14, head_top=(0, 0, 1), _fill=3), [0, 0, 10, 12])},
}
SIZES = {IMG1: (160, 210), IMG2: (64, 48)}
# What both layouts must give for IMG1, persons in the order human1, human2, human10.
EXPECTED_BOXES = [[80, 5, 60, 195], [0, 0, 50, 60], [40, 20, 30, 179]]
EXPECTED_AREAS = [60 * 195, 50 * 60, 30 * 179]


def aic_images(tmp_path):
    folder = tmp_path / "keypoint_validation_images_20170911"
    folder.mkdir(exist_ok=True)
    for image_id, size in SIZES.items():
        Image.new("RGB", size).save(folder / f"{image_id}.jpg")
    return folder


def aic_official(tmp_path, entries=None):
    entries = entries or [{"url": f"http://www.sinaimg.cn/{i}.jpg", "image_id": i,
                           "keypoint_annotations": {h: kp for h, (kp, _) in humans.items()},
                           "human_annotations": {h: box for h, (_, box) in humans.items()}}
                          for i, humans in HUMANS.items()]
    return write(tmp_path / "keypoint_validation_annotations_20170911.json", entries), aic_images(tmp_path)


def aic_converted(tmp_path):
    """The same persons as mmpose's COCO-style aic_val.json holds them."""
    images, anns = [], []
    for n, (image_id, humans) in enumerate(HUMANS.items(), start=1):
        w, h = SIZES[image_id]
        images.append({"id": n, "file_name": f"{image_id}.jpg", "width": w, "height": h})
        for name in sorted(humans, key=lambda s: (len(s), s)):
            kp, (x1, y1, x2, y2) = humans[name]
            kp = np.array(kp).reshape(14, 3)
            v = np.array([0, 2, 1, 0])[kp[:, 2]]
            kp = np.where(v[:, None] > 0, np.c_[kp[:, :2], v], 0)
            anns.append({"id": 10 * n + len(anns), "image_id": n, "category_id": 1, "iscrowd": 0,
                         "num_keypoints": int((v > 0).sum()), "keypoints": kp.ravel().tolist(),
                         "bbox": [x1, y1, x2 - x1, y2 - y1]})
    data = {"images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "person", "keypoints": list(AIC_JOINTS)}]}
    return write(tmp_path / "annotations" / "aic_val.json", data), aic_images(tmp_path)


def test_aic_official_flags_boxes_and_order(tmp_path):
    first, second = read_aic(*aic_official(tmp_path))
    assert first.image_id == IMG1
    assert first.image == str(tmp_path / "keypoint_validation_images_20170911" / f"{IMG1}.jpg")
    assert (first.width, first.height) == (160, 210)      # from the JPEG header
    k = first.keypoints
    assert k.shape == (3, 14, 3) and k.dtype == np.float32
    # human1: flags 1 -> 2 (visible), 2 -> 1 (occluded), 3 -> (0, 0, 0) even with x, y given
    np.testing.assert_array_equal(k[0, [A["r_shoulder"], A["r_elbow"], A["r_wrist"], A["head_top"], A["neck"]]],
                                  [[100, 50, 2], [110, 80, 1], [0, 0, 0], [105, 10, 2], [104, 40, 1]])
    assert (k[0, :, 2] > 0).sum() == 4
    np.testing.assert_array_equal(k[1, A["neck"]], [30, 31, 2])       # human2
    np.testing.assert_array_equal(k[2, A["l_ankle"]], [60, 190, 1])   # human10 comes last
    assert (k[1:, :, 2] > 0).sum() == 2
    np.testing.assert_array_equal(first.boxes, EXPECTED_BOXES)        # x1 y1 x2 y2 -> x y w h
    np.testing.assert_array_equal(first.areas, EXPECTED_AREAS)
    # A running index over the file from 1, as COCO's ids (pycocotools never matches an id 0).
    assert first.ann_ids.tolist() == [1, 2, 3] and second.ann_ids.tolist() == [4]
    assert not first.iscrowd.any() and first.segmentations == [None] * 3
    # A joint at pixel (0, 0) that is labelled stays labelled: 0-based, unchanged.
    np.testing.assert_array_equal(second.keypoints[0, A["head_top"]], [0, 0, 2])
    assert (second.width, second.height) == (64, 48)


def test_aic_both_layouts_agree(tmp_path):
    official = read_aic(*aic_official(tmp_path))
    converted = read_aic(*aic_converted(tmp_path))
    assert [r.image_id for r in converted] == [1, 2]
    assert converted[0].ann_ids.tolist() == [10, 11, 12] and converted[1].ann_ids.tolist() == [23]
    for o, c in zip(official, converted):
        assert (o.image, o.width, o.height) == (c.image, c.width, c.height)
        np.testing.assert_array_equal(o.keypoints, c.keypoints)
        np.testing.assert_array_equal(o.boxes, c.boxes)
        np.testing.assert_array_equal(o.areas, c.areas)      # box w*h in both layouts
        assert c.segmentations == [None] * len(c.ann_ids) and not c.iscrowd.any()
    np.testing.assert_array_equal(converted[0].boxes, EXPECTED_BOXES)


def as_ground_truth(records):
    """COCO annotation dicts of the records' persons, built as ``bottom_up_bbox.coco_annotation``
    builds them for the evaluators: ``id`` from the record's ``ann_ids``."""
    return [{"image_id": r.image_id, "id": int(i), "category_id": 1, "iscrowd": int(crowd),
             "keypoints": kp.reshape(-1).tolist(), "num_keypoints": int((kp[:, 2] > 0).sum()),
             "bbox": [float(v) for v in box], "area": float(area)}
            for r in records
            for i, kp, box, area, crowd in zip(r.ann_ids, r.keypoints, r.boxes, r.areas, r.iscrowd)]


def pycocotools_stats(image_ids, gts, results, sigmas):
    """``COCOeval(iouType='keypoints').stats`` with ``sigmas`` as ``kpt_oks_sigmas``."""
    cocoeval = pytest.importorskip("pycocotools.cocoeval", reason="pycocotools is the test oracle")
    from pycocotools.coco import COCO
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": [{"id": i} for i in image_ids], "annotations": copy.deepcopy(gts),
                      "categories": [{"id": 1, "name": "person"}]}
        gt.createIndex()
        ev = cocoeval.COCOeval(gt, gt.loadRes(copy.deepcopy(results)), iouType="keypoints")
        ev.params.kpt_oks_sigmas = np.asarray(sigmas)
        ev.params.imgIds = list(image_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


def test_aic_official_records_score_with_pycocotools(tmp_path):
    # pycocotools keeps a matched ground truth's id as its match flag, so a person with
    # id 0 is never matched: with ids from 0, perfect predictions scored AP 0.564 here.
    records = read_aic(*aic_official(tmp_path))
    gts = as_ground_truth(records)
    ids = [r.image_id for r in records]
    assert sorted(g["id"] for g in gts) == [1, 2, 3, 4]
    perfect = [{"image_id": g["image_id"], "category_id": 1, "keypoints": g["keypoints"], "score": 1.0}
               for g in gts]
    theirs = pycocotools_stats(ids, gts, perfect, AIC_SIGMAS)
    ours = coco_keypoint_ap(gts, perfect, image_ids=ids, sigmas=AIC_SIGMAS)
    assert theirs[0] == pytest.approx(1.0) and ours["AP"] == pytest.approx(1.0)
    # Imperfect predictions (a shifted copy of each person, one person missed): the
    # ten statistics agree too.
    shifted = [{**p, "keypoints": (np.array(p["keypoints"]) + [3, -2, 0] * 14).tolist(), "score": 0.5 + 0.1 * k}
               for k, p in enumerate(perfect)]
    results = perfect[1:] + shifted
    theirs = pycocotools_stats(ids, gts, results, AIC_SIGMAS)
    ours = coco_keypoint_ap(gts, results, image_ids=ids, sigmas=AIC_SIGMAS)
    np.testing.assert_allclose(list(ours.values()), theirs, atol=1e-9)
    assert 0 < ours["AP"] < 1


def test_aic_without_images_and_wrong_files(tmp_path):
    json_path, images = aic_official(tmp_path)
    (images / f"{IMG2}.jpg").unlink()
    one_line_error(FileNotFoundError, read_aic, json_path, images, match=[f"{IMG2}.jpg", "read_sizes=False"])
    records = read_aic(json_path, images, read_sizes=False)
    assert [(r.width, r.height) for r in records] == [(0, 0), (0, 0)]
    # A COCO reader refuses the 14-joint file, and v = 3 left in a converted file is caught.
    conv, _ = aic_converted(tmp_path)
    one_line_error(DataError, read_coco, conv, images, match=[str(conv), "14 keypoints, expected 17"])
    data = json.loads(conv.read_text())
    data["annotations"][0]["keypoints"][5] = 3
    write(conv, data)
    one_line_error(DataError, read_aic, conv, images,
                   match=[str(conv), "annotation 10: keypoint 1 has v = 3", "not labelled"])


# CrowdPose: 14 joints too, in COCO's layout, but in another order (its JSON's category).
CROWDPOSE_JOINTS = ["left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist",
                    "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
                    "right_ankle", "head", "neck"]
# AIC's joints as mmpose spells them (its AicDataset docstring and aic.py dataset info).
MMPOSE_AIC_JOINTS = ["right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
                     "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee",
                     "left_ankle", "head_top", "neck"]


def with_joint_names(json_path, names):
    data = json.loads(json_path.read_text())
    if names is None:
        data["categories"][0].pop("keypoints")
    else:
        data["categories"][0]["keypoints"] = names
    write(json_path, data)


@pytest.mark.parametrize("names", [
    MMPOSE_AIC_JOINTS,
    [n.replace("_", " ").title() for n in MMPOSE_AIC_JOINTS],             # "Right Shoulder", "Head Top"
    ["shoulder_R", "elbow_R", "wrist_R", "shoulder_L", "elbow_L", "wrist_L", "hip_R", "knee_R",
     "ankle_R", "hip_L", "knee_L", "ankle_L", "headtop", "Neck"],
    None,                                                                # no names: nothing to check
])
def test_aic_joint_names_in_aic_order_read(tmp_path, names):
    json_path, images = aic_converted(tmp_path)
    expected = read_aic(json_path, images)
    with_joint_names(json_path, names)
    for a, b in zip(read_aic(json_path, images), expected):
        np.testing.assert_array_equal(a.keypoints, b.keypoints)


@pytest.mark.parametrize("names, match", [
    (CROWDPOSE_JOINTS, "keypoint 0 is 'left_shoulder', expected 'right_shoulder'"),
    # AIC's names with left and right swapped: as wrong as any other order.
    ([n.replace("right", "x").replace("left", "right").replace("x", "left") for n in MMPOSE_AIC_JOINTS],
     "keypoint 0 is 'left_shoulder', expected 'right_shoulder'"),
    (MMPOSE_AIC_JOINTS[:12] + ["head", "neck"], "keypoint 12 is 'head', expected 'head_top'"),
])
def test_aic_refuses_another_14_joint_order(tmp_path, names, match):
    json_path, images = aic_converted(tmp_path)
    with_joint_names(json_path, names)
    one_line_error(DataError, read_aic, json_path, images,
                   match=[str(json_path), match, "AI Challenger's 14 joints in its order"])


def test_coco_refuses_its_joints_in_another_order(tmp_path):
    json_path, images = coco_fixture(tmp_path)
    data = json.loads(json_path.read_text())
    names = data["categories"][0]["keypoints"]
    names[5:7] = names[6], names[5]                  # shoulders swapped
    write(json_path, data)
    one_line_error(DataError, read_coco, json_path, images,
                   match=[str(json_path), "keypoint 5 is 'r_shoulder', expected 'left_shoulder'",
                          "COCO's 17 joints in its order"])


@pytest.mark.parametrize("change, match", [
    (lambda e: e[0]["keypoint_annotations"]["human1"].pop(),
     f"image {IMG1}: human1: expected 'keypoint_annotations' as 42"),
    (lambda e: e[0]["keypoint_annotations"]["human2"].__setitem__(2, 0), "human2: keypoint 0 has flag 0"),
    (lambda e: e[0]["human_annotations"].pop("human10"), "'human_annotations' has ['human1', 'human2']"),
    (lambda e: e[1]["human_annotations"].__setitem__("human1", [10, 0, 0, 12]), "human1: box corners not ordered"),
    (lambda e: e[1].pop("image_id"), "entry 1: expected 'image_id'"),
    (lambda e: e.append(dict(e[0])), f"image_id {IMG1} appears twice"),
])
def test_aic_official_malformed(tmp_path, change, match):
    json_path, images = aic_official(tmp_path)
    entries = json.loads(json_path.read_text())
    change(entries)
    write(json_path, entries)
    one_line_error(DataError, read_aic, json_path, images, match=[str(json_path), match])


def test_aic_neither_layout(tmp_path):
    json_path, images = aic_official(tmp_path)
    write(json_path, "42")
    one_line_error(DataError, read_aic, json_path, images,
                   match=[str(json_path), "official AI Challenger list", "COCO-style"])
    one_line_error(FileNotFoundError, read_aic, tmp_path / "x.json", images, match=["x.json", "AI Challenger"])


# -------------------------------------------------------- real COCO samples
@pytest.fixture
def real():
    path = REAL / "test_coco.json"
    if not path.exists():
        pytest.skip(f"real COCO samples not found at {path}")
    return path, json.loads(path.read_text())


def test_real_coco_samples(real):
    path, raw = real
    records = read_coco(path, REAL)
    assert [r.image_id for r in records] == [im["id"] for im in raw["images"]] == [785, 40083, 196141, 197388]
    assert sum(len(r.ann_ids) for r in records) == len(raw["annotations"]) == 14
    anns = {a["id"]: a for a in raw["annotations"]}
    for r in records:
        assert Path(r.image).exists()
        for k, i in enumerate(r.ann_ids):
            np.testing.assert_array_equal(r.keypoints[k], np.reshape(anns[i]["keypoints"], (17, 3)))
            np.testing.assert_allclose(r.boxes[k], anns[i]["bbox"], rtol=1e-6)
            np.testing.assert_allclose(r.areas[k], anns[i]["area"], rtol=1e-6)
            assert anns[i]["image_id"] == r.image_id and r.segmentations[k] == anns[i]["segmentation"]
    assert sum((r.keypoints[..., 2] > 0).sum(axis=1).tolist().count(0) for r in records) == 2  # kept


def test_real_coco_against_pycocotools(real):
    coco_mod = pytest.importorskip("pycocotools.coco", reason="pycocotools is the test oracle")
    path, _ = real
    coco = coco_mod.COCO(str(path))
    ours_total = ref_total = 0
    for r in read_coco(path, REAL):
        assert r.ann_ids.tolist() == coco.getAnnIds(imgIds=r.image_id, catIds=[1])
        for i, seg in zip(r.ann_ids, r.segmentations):
            polys = [np.reshape(p, (-1, 2)) for p in seg]
            ours, ref = segmentation_mask(seg, r.height, r.width), coco.annToMask(coco.anns[i]).astype(bool)
            rows, cols = np.nonzero(ours ^ ref)
            # pycocotools snaps vertices to 1/5 px: disagreements only on the
            # outline, at pixel centres (c + .5, r + .5) within 0.3 px of it.
            centres = np.c_[cols + 0.5, rows + 0.5]
            assert all(outline_distance(centres, polys) < 0.3), i
            assert len(rows) <= max(5, 0.02 * ref.sum()), i
            ours_total, ref_total = ours_total + ours.sum(), ref_total + ref.sum()
    # No bias (PIL's polygon fill would grow the masks by ~3%; see segmentation_mask).
    assert abs(ours_total - ref_total) <= 0.002 * ref_total, (ours_total, ref_total)


def outline_distance(points, polygons):
    """Distance of each point to the nearest edge of any polygon."""
    best = np.full(len(points), np.inf)
    for xy in polygons:
        a, b = xy, np.roll(xy, -1, axis=0)
        ab = b - a
        t = np.clip(((points[:, None] - a) * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12), 0, 1)
        d = np.linalg.norm(points[:, None] - (a + t[..., None] * ab), axis=-1).min(axis=1)
        best = np.minimum(best, d)
    return best


# ----------------------------------------------------------------- RLE
def test_compressed_rle_by_hand():
    # 2 x 2, column-major [1, 1, 0, 0]: counts 0, 2, 2 -> "0", "2", "2".
    np.testing.assert_array_equal(segmentation_mask({"size": [2, 2], "counts": "022"}, 2, 2), [[1, 0], [1, 0]])
    # Counts 0, 5, 1, 2: the 4th is stored as 2 - 5 = -3 -> 29 (sign bit 16 set) -> chr(48 + 29) = "M".
    expected = [[1, 1], [1, 0], [1, 1], [1, 1]]
    np.testing.assert_array_equal(segmentation_mask({"size": [4, 2], "counts": "051M"}, 4, 2), expected)
    mask_api = pytest.importorskip("pycocotools.mask")
    np.testing.assert_array_equal(mask_api.decode({"size": [4, 2], "counts": b"051M"}), expected)


def uncompressed_counts(mask):
    """Independent run lengths, zeros first, column-major (what COCO crowds store)."""
    runs = [(v, len(list(g))) for v, g in itertools.groupby(mask.T.ravel().tolist())]
    counts = [0] if runs and runs[0][0] else []
    return counts + [n for _, n in runs]


def test_rle_against_pycocotools_on_random_masks():
    mask_api = pytest.importorskip("pycocotools.mask", reason="pycocotools is the test oracle")
    rng = np.random.default_rng(0)
    for i in range(150):
        h, w = (int(n) for n in rng.integers(1, 90, size=2))
        if i % 3 == 0:      # blobs: long runs, multi-character and negative deltas
            cy, cx, ry, rx = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(1, h), rng.uniform(1, w)
            yy, xx = np.mgrid[:h, :w]
            mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
        else:               # noise at a random density, incl. all-empty and all-full
            mask = rng.random((h, w)) < [0.0, 1.0, rng.random()][i % 3 if i < 3 else 2]
        rle = mask_api.encode(np.asfortranarray(mask, dtype=np.uint8))
        compressed = {"size": [h, w], "counts": rle["counts"].decode("ascii")}
        np.testing.assert_array_equal(segmentation_mask(compressed, h, w), mask)
        uncompressed = {"size": [h, w], "counts": uncompressed_counts(mask)}
        ref = mask_api.decode(mask_api.frPyObjects(uncompressed, h, w)).astype(bool)
        np.testing.assert_array_equal(ref, mask)
        np.testing.assert_array_equal(segmentation_mask(uncompressed, h, w), ref)


def test_rle_of_real_person_masks(real):
    """test_coco.json has no crowd: encode its real person masks as crowds do."""
    mask_api = pytest.importorskip("pycocotools.mask", reason="pycocotools is the test oracle")
    path, _ = real
    for r in read_coco(path, REAL):
        for seg in r.segmentations:
            rle = mask_api.merge(mask_api.frPyObjects(seg, r.height, r.width))
            ref = mask_api.decode(rle).astype(bool)
            string = {"size": [r.height, r.width], "counts": rle["counts"].decode("ascii")}
            np.testing.assert_array_equal(segmentation_mask(string, r.height, r.width), ref)
            listed = {"size": [r.height, r.width], "counts": uncompressed_counts(ref)}
            np.testing.assert_array_equal(segmentation_mask(listed, r.height, r.width), ref)


@pytest.mark.parametrize("seg, match", [
    ({"size": [3, 2], "counts": "022"}, "does not match the image (2, 2)"),
    ({"size": [2, 2], "counts": [0, 2, 1]}, "counts sum to 3, expected 2 * 2"),
    ({"size": [2, 2], "counts": "02\x7f"}, "expected characters '0'..'o'"),
    ({"size": [2, 2], "counts": "02R"}, "ends in the middle of a count"),        # "R" = 34: more follows
    ({"size": [2, 2], "counts": [0, -1, 5]}, "non-negative integers"),
    ([[0, 0, 1]], "flat lists of x, y numbers"),
    ("polygon", "polygon list, an RLE dict or None"),
])
def test_bad_segmentations(seg, match):
    one_line_error(ValueError, segmentation_mask, seg, 2, 2, match=match)


def test_polygon_outside_or_clipped():
    assert not segmentation_mask([[-9, -9, -5, -9, -5, -5]], 4, 4).any()
    # A triangle covering the image and beyond: every pixel centre is inside.
    assert segmentation_mask([[-10, -10, 30, -10, -10, 30]], 4, 5).all()


# ------------------------------------------------------------ detections
def test_detections_good_empty_and_filtered(tmp_path):
    dets = [{"image_id": 785, "category_id": 1, "bbox": [-5.0, 10.0, 900.0, 30.5], "score": 0.9},  # off-image
            {"image_id": 785, "category_id": 18, "bbox": [1, 1, 1, 1], "score": 0.99},         # a dog
            {"image_id": 40083, "bbox": [1, 2, 3, 4], "score": 0.5},                            # no category
            {"image_id": 785, "category_id": 1, "bbox": [0, 0, 0, 0], "score": 0.1},
            {"image_id": IMG1, "category_id": 1, "bbox": [5, 6, 7, 8], "score": 1}]
    path = write(tmp_path / "dets.json", dets)
    out = read_detections(path)
    assert list(out) == [785, 40083, IMG1]
    np.testing.assert_array_equal(out[785], np.float32([[-5, 10, 900, 30.5, 0.9], [0, 0, 0, 0, 0.1]]))
    assert out[785].dtype == np.float32 and out[40083].tolist() == [[1, 2, 3, 4, 0.5]]  # kept as a person
    assert out[IMG1].shape == (1, 5)
    picked = read_detections(path, image_ids=[40083, 5])
    assert list(picked) == [40083, 5] and picked[5].shape == (0, 5)
    assert read_detections(write(tmp_path / "none.json", "[]")) == {}


@pytest.mark.parametrize("text, match", [
    ("", "empty file"),
    ("[{", "not valid JSON"),
    ('{"image_id": 1}', "expected a JSON list of detections"),
    ('[{"image_id": 1, "bbox": [0, 0, 1, 1]}]',
     "detection 0: expected an object with 'image_id', 'bbox' and 'score'"),
    ('[{"image_id": 1, "bbox": [0, 0, -1, 1], "score": 1}]', "detection 0: negative box width or height"),
    ('[{"image_id": 1, "bbox": [0, 0, 1, 1], "score": 1}, {"image_id": 1, "bbox": [0, 0, 1, -2], "score": 1}]',
     "detection 1: negative box width or height"),
    ('[{"image_id": 1, "bbox": [0, 0, 1, 1], "score": 1}, {"image_id": 1, "bbox": [0, 0, 1, NaN], "score": 1}]',
     "detection 1: expected 'bbox' as 4 finite numbers"),
    ('[{"image_id": 1, "bbox": [0, 0, 1], "score": 1}]', "expected 'bbox' as 4 finite numbers"),
    ('[{"image_id": 1.5, "bbox": [0, 0, 1, 1], "score": 1}]', "expected 'image_id' as an integer or string"),
])
def test_detections_malformed(tmp_path, text, match):
    path = write(tmp_path / "dets.json", text)
    one_line_error(DataError, read_detections, path, match=[str(path), match])


def test_detections_missing_file(tmp_path):
    one_line_error(FileNotFoundError, read_detections, tmp_path / "dets.json", match=["dets.json", "detector"])


# ------------------------------------------------------------- locations
def touch(root, json_rel, images_rel):
    write(root / json_rel, "{}")
    (root / images_rel).mkdir(parents=True, exist_ok=True)
    return root / json_rel, root / images_rel


def test_find_coco_and_aic_layouts(tmp_path):
    coco = touch(tmp_path / "coco", "annotations/person_keypoints_val2017.json", "val2017")
    assert find_annotation_files("coco", tmp_path / "coco", "val") == coco
    # Official validation archive.
    folder = "ai_challenger_keypoint_validation_20170911"
    val = touch(tmp_path / "aic", f"{folder}/keypoint_validation_annotations_20170911.json",
                f"{folder}/keypoint_validation_images_20170911")
    assert find_annotation_files("aic", tmp_path / "aic", "val") == val
    # Official training archive (folder dated 20170909) ...
    folder = "ai_challenger_keypoint_train_20170909"
    train = touch(tmp_path / "aic", f"{folder}/keypoint_train_annotations_20170909.json",
                  f"{folder}/keypoint_train_images_20170902")
    assert find_annotation_files("aic", tmp_path / "aic", "train") == train
    # ... and mmpose's converted JSON wins over the official one once present.
    conv = write(tmp_path / "aic" / "annotations" / "aic_train.json", "{}")
    assert find_annotation_files("aic", tmp_path / "aic", "train") == (conv, train[1])
    # mmpose's docs name the training folder ..._20170902.
    other = touch(tmp_path / "aic2", "annotations/aic_train.json",
                  "ai_challenger_keypoint_train_20170902/keypoint_train_images_20170902")
    assert find_annotation_files("aic", tmp_path / "aic2", "train") == other


def test_find_reports_every_path_tried(tmp_path):
    msg = one_line_error(FileNotFoundError, find_annotation_files, "aic", tmp_path, "val",
                         match=[str(tmp_path / "annotations" / "aic_val.json"),
                                "keypoint_validation_annotations_20170911.json", "AI Challenger"])
    assert msg.split(": tried ")[1].count("; ") == 1  # the converted and the official layout
    one_line_error(FileNotFoundError, find_annotation_files, "coco", tmp_path, "train",
                   match=["person_keypoints_train2017.json", "train2017/", "cocodataset.org"])
    one_line_error(ValueError, find_annotation_files, "mpii", tmp_path, "val", match="'mpii'")
