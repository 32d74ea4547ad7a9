"""Joint orders, left/right flip pairs and data-set mappings.

One place for every skeleton the two papers use. Orders are the data sets'
own, so that predictions can be written back in their native layout.
"""
import numpy as np

# MPII Human Pose, 16 joints, in the order of its annotation files
# (joint ids 0..15 of the official release and of the HRNet/mmpose JSON).
MPII_JOINTS = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle",
    "pelvis", "thorax", "upper_neck", "head_top",
    "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist",
)

# Leeds Sports Pose, 14 joints, in the order of its joints.mat.
LSP_JOINTS = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle",
    "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist",
    "neck", "head_top",
)

# LSP index -> MPII index. LSP's "neck" is MPII's "upper_neck"; MPII's pelvis
# and thorax have no LSP counterpart and stay unannotated (v = 0), which is
# how §3.1 "stopping the backpropagation for the missing points" is realised.
LSP_TO_MPII = np.array([0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15, 8, 9])

# The columns of the paper's Tables 5-7 and the joints (by name) averaged into
# each. "Head" is the head top, as in the MPII evaluation code used by
# HRNet/mmpose; pelvis and thorax are not scored (the official MPII protocol).
TABLE_PARTS = (
    ("Head", ("head_top",)),
    ("Shoulder", ("l_shoulder", "r_shoulder")),
    ("Elbow", ("l_elbow", "r_elbow")),
    ("Wrist", ("l_wrist", "r_wrist")),
    ("Hip", ("l_hip", "r_hip")),
    ("Knee", ("l_knee", "r_knee")),
    ("Ankle", ("l_ankle", "r_ankle")),
)


def flip_permutation(names):
    """Index array ``perm`` such that ``kpts[perm]`` swaps every ``l_``/``r_`` pair.

    A horizontal flip mirrors x and turns a left joint into a right one, so the
    joint axis must be permuted too. ``perm`` is an involution (perm[perm] = id).
    """
    index = {n: i for i, n in enumerate(names)}
    perm = []
    for n in names:
        if n.startswith("l_"):
            perm.append(index["r_" + n[2:]])
        elif n.startswith("r_"):
            perm.append(index["l_" + n[2:]])
        else:
            perm.append(index[n])
    return np.array(perm)


MPII_FLIP = flip_permutation(MPII_JOINTS)
LSP_FLIP = flip_permutation(LSP_JOINTS)

# Bones for drawing single-person MPII poses: (parent, child) by name.
MPII_BONES = (
    ("head_top", "upper_neck"), ("upper_neck", "thorax"), ("thorax", "pelvis"),
    ("thorax", "r_shoulder"), ("r_shoulder", "r_elbow"), ("r_elbow", "r_wrist"),
    ("thorax", "l_shoulder"), ("l_shoulder", "l_elbow"), ("l_elbow", "l_wrist"),
    ("pelvis", "r_hip"), ("r_hip", "r_knee"), ("r_knee", "r_ankle"),
    ("pelvis", "l_hip"), ("l_hip", "l_knee"), ("l_knee", "l_ankle"),
)


def bone_indices(names, bones):
    """Bones given by joint names -> ``(K, 2)`` int array of joint indices."""
    index = {n: i for i, n in enumerate(names)}
    return np.array([(index[a], index[b]) for a, b in bones])
