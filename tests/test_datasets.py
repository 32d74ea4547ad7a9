"""Readers on fixtures written in the real file formats, plus the real MPII samples.

Every fixture number is 1-based as in the files; the expected values next to
them are the 0-based ones the readers must return.
"""
import json
from pathlib import Path

import numpy as np
import pytest

scipy_io = pytest.importorskip("scipy.io", reason="the .mat readers need scipy")

from common.datasets import (HEAD_APPROX, DataError, approx_head_size, mpii_crop_box,  # noqa: E402
                             read_lsp, read_mpii_head_sizes, read_mpii_json, read_mpii_mat)
from common.skeleton import MPII_JOINTS  # noqa: E402

J = {n: i for i, n in enumerate(MPII_JOINTS)}
REAL = Path(__file__).parents[1] / ".." / "shared" / "real_samples" / "mpii"
EMPTY = np.zeros((0, 0))  # MATLAB's []


def one_line_error(exc_type, fn, *args, match, **kwargs):
    with pytest.raises(exc_type) as e:
        fn(*args, **kwargs)
    assert match in str(e.value) and "\n" not in str(e.value), str(e.value)


# ----------------------------------------------------------------- HRNet JSON
def write_hrnet_json(tmp_path, records=None):
    joints = [[10.0 + k + 1, 20.0 + k + 1] for k in range(16)]  # 0-based: (10 + k, 20 + k)
    joints[0] = [-1.0, -1.0]                                     # r_ankle not annotated
    records = records or [
        {"image": "a.jpg", "center": [101.0, 51.0], "scale": 2.0,
         "joints": joints, "joints_vis": [0] + [1] * 15},
        {"image": "b.jpg", "center": [-1.0, -1.0], "scale": -1.0},  # test.json style
    ]
    (tmp_path / "images").mkdir(exist_ok=True)
    path = tmp_path / "valid.json"
    path.write_text(json.dumps(records))
    return path


def write_gt_valid(path, boxes):
    n = len(boxes)
    scipy_io.savemat(path, {
        "headboxes_src": np.array(boxes, float).transpose(1, 2, 0),  # (2, 2, N)
        "jnt_missing": np.zeros((16, n)), "pos_gt_src": np.zeros((16, 2, n)),
        "dataset_joints": np.array([["rank", "rkne", "rhip", "lhip", "lkne", "lank", "pelv", "thor",
                                     "neck", "head", "rwri", "relb", "rsho", "lsho", "lelb", "lwri"]],
                                   dtype=object)})
    return path


def test_mpii_json_converts_to_zero_based(tmp_path):
    a, b = read_mpii_json(write_hrnet_json(tmp_path), tmp_path / "images")
    assert a.image == str(tmp_path / "images" / "a.jpg") and a.name == "a.jpg"
    assert a.keypoints.shape == (16, 3) and a.keypoints.dtype == np.float32
    np.testing.assert_array_equal(a.keypoints[1], [11, 21, 2])   # file: (12, 22)
    np.testing.assert_array_equal(a.keypoints[0], [0, 0, 0])     # (-1, -1), vis 0
    np.testing.assert_array_equal(a.center, [100, 50])
    assert a.scale == 2.0 and a.head_size is None
    assert np.isnan(b.center).all() and np.isnan(b.scale) and not b.keypoints[:, 2].any()


def test_mpii_crop_box_is_hrnets_adjustment():
    c, s = mpii_crop_box(np.array([100.0, 50.0]), 2.0)
    np.testing.assert_allclose(c, [100, 80])                     # + 15 * 2 px down
    assert s == 2.5                                              # x 1.25


def test_gt_valid_head_sizes(tmp_path):
    mat = write_gt_valid(tmp_path / "gt_valid.mat", [[(10, 20), (40, 60)], [(0, 0), (6, 8)]])
    np.testing.assert_allclose(read_mpii_head_sizes(mat), [0.6 * 50, 0.6 * 10])
    a, b = read_mpii_json(write_hrnet_json(tmp_path), tmp_path / "images", gt_valid_mat=mat)
    assert (a.head_size, b.head_size) == pytest.approx((30.0, 6.0))
    bad = write_gt_valid(tmp_path / "three.mat", [[(0, 0), (1, 1)]] * 3)
    one_line_error(DataError, read_mpii_json, write_hrnet_json(tmp_path), tmp_path / "images",
                   gt_valid_mat=bad, match="three.mat")
    scipy_io.savemat(tmp_path / "nokey.mat", {"boxes": np.zeros((2, 2, 1))})
    one_line_error(DataError, read_mpii_head_sizes, tmp_path / "nokey.mat", match="headboxes_src")


def test_approx_head_size():
    k = np.zeros((16, 3))
    k[J["upper_neck"]] = (10, 40, 2)
    k[J["head_top"]] = (10, 0, 2)
    assert approx_head_size(k) == pytest.approx(HEAD_APPROX * 40)
    k[J["head_top"], 2] = 0
    assert np.isnan(approx_head_size(k))


# ------------------------------------------------------- official RELEASE .mat
def struct_array(rows, fields):
    """What savemat writes as a 1 x n MATLAB struct array; absent values -> []."""
    a = np.zeros((1, len(rows)), dtype=[(f, object) for f in fields])
    for i, row in enumerate(rows):
        for f in fields:
            a[f][0, i] = row.get(f, EMPTY)
    return a


def write_release(path):
    # Image 1 (train): person 1 with a head box and several points whose
    # is_visible takes MPII's forms 1, '0', '1' and []; person 2 without points.
    points = struct_array([
        {"id": 0, "x": 11, "y": 21, "is_visible": 1},
        {"id": 9, "x": 51, "y": 61, "is_visible": "0"},     # occluded
        {"id": 8, "x": 41, "y": 71},                        # is_visible []
        {"id": 13, "x": 31.5, "y": 41, "is_visible": "1"},
    ], ["id", "x", "y", "is_visible"])
    rect_fields = ["x1", "y1", "x2", "y2", "annopoints", "objpos", "scale"]
    rects1 = struct_array([
        {"x1": 100, "y1": 50, "x2": 130, "y2": 90, "annopoints": {"point": points},
         "objpos": {"x": 201, "y": 301}, "scale": 3.0},
        {"objpos": {"x": 50, "y": 60}, "scale": 1.5},
    ], rect_fields)
    # Image 2 (train): one person (1x1 struct -> squeezed), one point, no
    # is_visible field at all. Image 3 (test): objpos and scale only.
    one_point = struct_array([{"id": 5, "x": 8, "y": 9}], ["id", "x", "y"])
    rects2 = struct_array([{"x1": 0, "y1": 0, "x2": 6, "y2": 8, "annopoints": {"point": one_point},
                            "objpos": {"x": 5, "y": 5}, "scale": 1.0}], rect_fields)
    rects3 = struct_array([{"objpos": {"x": 100, "y": 100}, "scale": 2.0}], ["objpos", "scale"])
    annolist = struct_array([
        {"image": {"name": "000000001.jpg"}, "annorect": rects1, "frame_sec": 10, "vididx": 1},
        {"image": {"name": "000000002.jpg"}, "annorect": rects2},
        {"image": {"name": "000000003.jpg"}, "annorect": rects3},
    ], ["image", "annorect", "frame_sec", "vididx"])
    single = np.empty((3, 1), dtype=object)                 # a cell array
    single[:, 0] = [np.array([[1]]), EMPTY, np.array([[1]])]
    act = struct_array([{"act_id": 1, "cat_name": "sports", "act_name": "running"}] * 3,
                       ["cat_name", "act_name", "act_id"])
    scipy_io.savemat(path, {"RELEASE": {"annolist": annolist, "img_train": np.array([[1, 1, 0]]),
                                        "single_person": single, "act": act,
                                        "video_list": np.array([["abc"]], dtype=object)}})
    return path


def test_mpii_mat_train(tmp_path):
    (tmp_path / "images").mkdir()
    recs = read_mpii_mat(write_release(tmp_path / "release.mat"), tmp_path / "images")
    assert [r.name for r in recs] == ["000000001.jpg", "000000002.jpg"]  # no-points person skipped
    k = recs[0].keypoints
    np.testing.assert_array_equal(k[J["r_ankle"]], [10, 20, 2])      # is_visible 1
    np.testing.assert_array_equal(k[J["head_top"]], [50, 60, 1])     # '0' -> occluded
    np.testing.assert_array_equal(k[J["upper_neck"]], [40, 70, 2])   # [] -> annotated
    np.testing.assert_array_equal(k[J["l_shoulder"]], [30.5, 40, 2])  # '1'
    assert (k[:, 2] > 0).sum() == 4 and not k[J["pelvis"]].any()
    np.testing.assert_array_equal(recs[0].center, [200, 300])
    assert recs[0].scale == 3.0 and recs[0].head_size == pytest.approx(0.6 * 50)
    np.testing.assert_array_equal(recs[1].keypoints[J["l_ankle"]], [7, 8, 2])  # no field
    assert recs[1].head_size == pytest.approx(6.0)


def test_mpii_mat_splits(tmp_path):
    (tmp_path / "images").mkdir()
    path = write_release(tmp_path / "release.mat")
    test = read_mpii_mat(path, tmp_path / "images", split="test")
    assert len(test) == 1 and test[0].head_size is None and not test[0].keypoints[:, 2].any()
    single = read_mpii_mat(path, tmp_path / "images", single_person_only=True)
    assert [r.name for r in single] == ["000000001.jpg"]
    assert len(read_mpii_mat(path, tmp_path / "images", split="all")) == 4
    with pytest.raises(ValueError):
        read_mpii_mat(path, tmp_path / "images", split="val")
    scipy_io.savemat(tmp_path / "other.mat", {"annolist": np.zeros(3)})
    one_line_error(DataError, read_mpii_mat, tmp_path / "other.mat", tmp_path / "images",
                   match="other.mat")


def test_mpii_mat_with_the_valid_json_list_is_the_papers_split_with_real_visibility(tmp_path):
    """The .mat's visibility with §4.2's validation persons (HRNet's
    valid.json): heatmap_regression.py --data mpii with both files present."""
    import heatmap_regression as hr
    from common.datasets import split_mpii_by_list
    from common.sources import load_sources
    (tmp_path / "images").mkdir()
    write_release(tmp_path / "mpii_human_pose_v1_u12_1.mat")
    (tmp_path / "annot").mkdir()
    listed = [{"image": "000000001.jpg", "center": [201.0, 301.0], "scale": 3.0,   # the .mat's objpos, 1-based
               "joints": [[-1.0, -1.0]] * 16, "joints_vis": [0] * 16}]
    (tmp_path / "annot" / "valid.json").write_text(json.dumps(listed))
    train, val, test = load_sources(hr.parse_args(["--data", "mpii", "--data-root", str(tmp_path)]))
    assert test is val                                                     # §4.2 reports the validation split
    assert [r.name for r in val.records] == ["000000001.jpg"] and [r.name for r in train.records] == ["000000002.jpg"]
    k = val.records[0].keypoints
    assert k[J["head_top"], 2] == 1 and k[J["r_ankle"], 2] == 2           # the .mat's is_visible, not the JSON's
    assert val.records[0].head_size == pytest.approx(0.6 * 50)             # the .mat's head box
    listed[0]["center"] = [250.0, 301.0]                                   # not a person of this .mat
    (tmp_path / "annot" / "valid.json").write_text(json.dumps(listed))
    one_line_error(DataError, split_mpii_by_list, read_mpii_mat(tmp_path / "mpii_human_pose_v1_u12_1.mat",
                                                                tmp_path / "images"),
                   read_mpii_json(tmp_path / "annot" / "valid.json", tmp_path / "images"),
                   match="not the same release")


# ------------------------------------------------------------------------ LSP
def write_lsp(tmp_path):
    root, ext = tmp_path / "lsp", tmp_path / "lspet"
    (root / "images").mkdir(parents=True)
    (ext / "images").mkdir(parents=True)
    j = np.arange(14, dtype=float)
    i = np.arange(2000, dtype=float)
    joints = np.zeros((3, 14, 2000))
    joints[0] = (j + 2)[:, None]                       # 0-based x = j + 1
    joints[1] = 2 * j[:, None] + 3 + i[None, :]        # 0-based y = 2j + 2 + image index
    joints[2, 6] = 1                                   # LSP r_wrist: 1 = OCCLUDED
    scipy_io.savemat(root / "joints.mat", {"joints": joints})
    e = np.zeros((14, 3, 3))
    e[:, 0], e[:, 1] = (j + 2)[:, None], (j + 3)[:, None]
    e[:, 2, :2] = 1                                    # 1 = visible
    e[0, 2, 1] = 0                                     # image 2: r_ankle not located
    scipy_io.savemat(ext / "joints.mat", {"joints": e})  # image 3: nothing -> skipped
    return root, ext


def test_lsp_conversion_and_split(tmp_path):
    root, ext = write_lsp(tmp_path)
    train, test = read_lsp(root, "train"), read_lsp(root, "test")
    assert len(train) == len(test) == 1000
    assert train[0].name == "im0001.jpg" and test[0].name == "im1001.jpg"
    k = test[0].keypoints                                     # image index 1000
    np.testing.assert_array_equal(k[J["upper_neck"]], [13, 2 * 12 + 1002, 2])  # LSP neck
    np.testing.assert_array_equal(k[J["head_top"]], [14, 2 * 13 + 1002, 2])
    np.testing.assert_array_equal(k[J["l_wrist"]], [12, 2 * 11 + 1002, 2])
    assert k[J["r_wrist"], 2] == 1                            # the inverted flag
    assert not k[J["pelvis"]].any() and not k[J["thorax"]].any()
    np.testing.assert_allclose(test[0].center, [7.5, 15 + 1000])
    assert test[0].scale == pytest.approx(26 / 200)
    # Torso = ||l_shoulder (10, 20+i) - r_hip (3, 6+i)|| = sqrt(7^2 + 14^2).
    assert test[0].torso_size == pytest.approx(np.hypot(7, 14))


def test_lsp_extended(tmp_path):
    root, ext = write_lsp(tmp_path)
    recs = read_lsp(root, "train", extended_root=ext)
    assert len(recs) == 1002 and [r.name for r in recs[-2:]] == ["im00001.jpg", "im00002.jpg"]
    np.testing.assert_array_equal(recs[-2].keypoints[J["r_knee"]], [2, 3, 2])
    np.testing.assert_array_equal(recs[-1].keypoints[J["r_ankle"]], [0, 0, 0])
    assert len(read_lsp(root, "test", extended_root=ext)) == 1000   # train data only


def test_lsp_wrong_layout(tmp_path):
    root, _ = write_lsp(tmp_path)
    scipy_io.savemat(root / "joints.mat", {"joints": np.zeros((14, 3, 2000))})  # LSPet layout
    one_line_error(DataError, read_lsp, root, "train", match="joints.mat")


# ------------------------------------------------------------------ bad input
def test_missing_files(tmp_path):
    path = write_hrnet_json(tmp_path)
    one_line_error(FileNotFoundError, read_mpii_json, tmp_path / "nope.json", tmp_path,
                   match="nope.json")
    one_line_error(FileNotFoundError, read_mpii_json, path, tmp_path / "pics", match="pics")
    one_line_error(FileNotFoundError, read_mpii_mat, tmp_path / "x.mat", tmp_path, match="x.mat")
    one_line_error(FileNotFoundError, read_lsp, tmp_path / "lsp", "train", match="lsp")


def test_malformed_json(tmp_path):
    (tmp_path / "images").mkdir()
    bad = tmp_path / "broken.json"
    bad.write_text('[{"image": "a.jpg", ')
    one_line_error(DataError, read_mpii_json, bad, tmp_path / "images", match="broken.json")
    bad.write_text('{"image": "a.jpg"}')
    one_line_error(DataError, read_mpii_json, bad, tmp_path / "images", match="list")
    rec = {"image": "a.jpg", "center": [1, 2], "scale": 1.0,
           "joints": [[0, 0]] * 15, "joints_vis": [1] * 16}
    one_line_error(DataError, read_mpii_json, write_hrnet_json(tmp_path, [rec]),
                   tmp_path / "images", match="valid.json: record 0: expected 'joints'")
    rec.update(joints=[[0, 0]] * 16, center=[1])
    one_line_error(DataError, read_mpii_json, write_hrnet_json(tmp_path, [rec]),
                   tmp_path / "images", match="'center'")


def test_scipy_is_optional(tmp_path, monkeypatch):
    path = write_gt_valid(tmp_path / "gt_valid.mat", [[(0, 0), (1, 1)]])
    monkeypatch.setitem(__import__("sys").modules, "scipy.io", None)
    one_line_error(ImportError, read_mpii_head_sizes, path, match="needs scipy (pip install scipy)")


# --------------------------------------------------------- real MPII samples
def test_real_mpii_samples():
    if not (REAL / "test_mpii.json").exists():
        pytest.skip(f"real samples not found at {REAL} (../shared/real_samples is outside the repo)")
    from PIL import Image
    recs = read_mpii_json(REAL / "test_mpii.json", REAL)
    assert len(recs) == 5
    for r in recs:
        w, h = Image.open(r.image).size
        ann = r.keypoints[r.keypoints[:, 2] > 0]
        assert len(ann) >= 14
        assert (ann[:, 0] >= 0).all() and (ann[:, 0] < w).all(), r.name
        assert (ann[:, 1] >= 0).all() and (ann[:, 1] < h).all(), r.name
        assert 0 <= r.center[0] < w and 0 <= r.center[1] < h
        # MPII's scale is 6 head segments / 200 (see approx_head_size).
        assert approx_head_size(r.keypoints) == pytest.approx(HEAD_APPROX * 200 * r.scale / 6, rel=1e-4)
    # Two samples lack both ankles: stored as (0, 0, 0), not the file's (-1, -1).
    assert sum((r.keypoints[[0, 5]] == 0).all() for r in recs) == 2
