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


# ----------------------------------------------------------------------------
# Paper 2: AI Challenger and COCO
# ----------------------------------------------------------------------------
# AI Challenger keypoints, 14 joints, in the order of its annotation files
# (keypoint_annotations: 14 x (x, y, v), this order).
AIC_JOINTS = (
    "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle",
    "head_top", "neck",
)

# COCO person keypoints, 17 joints, in the order of person_keypoints_*.json.
COCO_JOINTS = (
    "nose", "l_eye", "r_eye", "l_ear", "r_ear",
    "l_shoulder", "r_shoulder", "l_elbow", "r_elbow", "l_wrist", "r_wrist",
    "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle",
)

# Per-keypoint OKS constants. COCO: pycocotools' COCOeval.Params kpt_oks_sigmas.
COCO_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62,
                        1.07, 1.07, .87, .87, .89, .89]) / 10.0
# AI Challenger: the constants of its official keypoint_eval.py, which uses
# ``delta = 2 * sigma`` (see common.coco_eval.aic_score).
AIC_SIGMAS = np.array([0.01388152, 0.01515228, 0.01057665, 0.01417709, 0.01497891,
                       0.01402144, 0.03909642, 0.03686941, 0.01981803, 0.03843971,
                       0.03412318, 0.02415081, 0.01291456, 0.01236173])

# The toy scenes of paper 2 (14 joints, AI Challenger's order, people about
# 60-170 px tall). AI Challenger's constants were fitted to its annotators'
# spread on photos of people ten times larger and reach OKS 0.5 only within
# 2-3 px at toy sizes, under one map pixel at stride 4: a metric the toy
# cannot be scored with. CrowdPose (Li et al., CVPR 2019) annotates the very
# same 14 joints; its evaluation (crowdposetools / xtcocotools, use_area=False)
# takes COCO's constants for the 12 body joints and 0.079 for head top and
# neck, listed there in the order l/r shoulder, elbow, wrist, hip, knee,
# ankle, head, neck:  [.79 .79 .72 .72 .62 .62 1.07 1.07 .87 .87 .89 .89 .79 .79] / 10.
# Here in AI Challenger's order. Its OKS scale s^2 is 0.53 x the box area
# (``CROWDPOSE_AREA_PER_BOX``), not a segment area.
CROWDPOSE_SIGMAS = np.array([.79, .72, .62, .79, .72, .62,
                             1.07, .87, .89, 1.07, .87, .89, .79, .79]) / 10.0
CROWDPOSE_AREA_PER_BOX = 0.53
# CrowdPose's own files (``--data crowdpose``): the same 14 joints in its
# order, and the constants above in that order, as crowdposetools lists them.
CROWDPOSE_JOINTS = (
    "l_shoulder", "r_shoulder", "l_elbow", "r_elbow", "l_wrist", "r_wrist",
    "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle", "head_top", "neck",
)
CROWDPOSE_OWN_SIGMAS = CROWDPOSE_SIGMAS[[AIC_JOINTS.index(n) for n in CROWDPOSE_JOINTS]]

# MPII index of each AI Challenger joint (the toy figures have MPII's 16
# joints; paper 2 uses AI Challenger's 14). AIC's "neck" is MPII's upper neck.
MPII_TO_AIC = np.array([MPII_JOINTS.index(n if n != "neck" else "upper_neck") for n in AIC_JOINTS])

AIC_FLIP = flip_permutation(AIC_JOINTS)
COCO_FLIP = flip_permutation(COCO_JOINTS)


class JointLayout:
    """One data set's joints as paper 2's network orders them (its channels;
    ``bottom_up_bbox.Skeleton`` adds the tree of limbs).

    ``joints``: the data set's own order (so predictions map back without a
    table), plus ``neck`` appended for COCO. ``eval_joints``: how many
    leading joints the data set's evaluation scores. ``sigmas``: its OKS
    constants. ``flip``: the left/right permutation of the joints.
    """

    def __init__(self, data):
        self.data = data                                   # "toy", "coco", "aic" or "crowdpose"
        # "coco": a head of nose, eyes and ears; "aic": the 14 joints with a
        # head top (AI Challenger, CrowdPose in its own order, the toy's figures).
        self.kind = "coco" if data == "coco" else "aic"
        self.joints = tuple({"coco": COCO_JOINTS + ("neck",), "crowdpose": CROWDPOSE_JOINTS}.get(data, AIC_JOINTS))
        self.eval_joints = len(COCO_JOINTS) if self.kind == "coco" else len(AIC_JOINTS)
        # OKS constants: each data set's own; the toy's are CrowdPose's, a
        # published set for these 14 joints that fits the toy's sizes
        # (``CROWDPOSE_SIGMAS`` says why not AIC's).
        self.sigmas = {"coco": COCO_SIGMAS, "aic": AIC_SIGMAS, "toy": CROWDPOSE_SIGMAS,
                       "crowdpose": CROWDPOSE_OWN_SIGMAS}[data]
        self.flip = flip_permutation(self.joints)

    @property
    def J(self):
        return len(self.joints)

    def from_dataset(self, keypoints):
        """Data-set keypoints (K, J_data, 3) -> network joints (K, J, 3).

        COCO: append the neck, the midpoint of the shoulders, annotated when
        both shoulders are (v = the smaller of the two flags).
        """
        kp = np.asarray(keypoints, np.float32)
        if self.kind != "coco":
            return kp.copy()
        ls, rs = kp[:, COCO_JOINTS.index("l_shoulder")], kp[:, COCO_JOINTS.index("r_shoulder")]
        both = (ls[:, 2] > 0) & (rs[:, 2] > 0)
        neck = np.zeros((len(kp), 1, 3), np.float32)
        neck[both, 0, :2] = (ls[both, :2] + rs[both, :2]) / 2
        neck[both, 0, 2] = np.minimum(ls[both, 2], rs[both, 2])
        return np.concatenate([kp, neck], 1)

    @property
    def dataset_joints(self):
        """The data set's joints, in its order: what ``to_dataset`` keeps."""
        return self.joints[:self.eval_joints]

    def to_dataset(self, keypoints):
        """Network joints -> the data set's joints, for evaluation (drops the neck)."""
        return np.asarray(keypoints)[..., :self.eval_joints, :]

# Bones for drawing single-person poses of the other two data sets, (parent,
# child) by name; ``common.plotting.draw_pose`` colours a bone by its child's
# side. COCO: the 19 bones of its own file (``categories[0]['skeleton']`` of
# person_keypoints_*.json, 1-based there). AI Challenger: the 13 limbs of
# paper 2's tree (Fig. 4: rooted at the neck, hips hung from it).
COCO_BONES = (
    ("l_knee", "l_ankle"), ("l_hip", "l_knee"), ("r_knee", "r_ankle"), ("r_hip", "r_knee"),
    ("l_hip", "r_hip"), ("l_shoulder", "l_hip"), ("r_shoulder", "r_hip"), ("l_shoulder", "r_shoulder"),
    ("l_shoulder", "l_elbow"), ("r_shoulder", "r_elbow"), ("l_elbow", "l_wrist"), ("r_elbow", "r_wrist"),
    ("l_eye", "r_eye"), ("nose", "l_eye"), ("nose", "r_eye"), ("l_eye", "l_ear"), ("r_eye", "r_ear"),
    ("l_ear", "l_shoulder"), ("r_ear", "r_shoulder"),
)
AIC_BONES = (
    ("neck", "head_top"),
    ("neck", "r_shoulder"), ("r_shoulder", "r_elbow"), ("r_elbow", "r_wrist"),
    ("neck", "l_shoulder"), ("l_shoulder", "l_elbow"), ("l_elbow", "l_wrist"),
    ("neck", "r_hip"), ("r_hip", "r_knee"), ("r_knee", "r_ankle"),
    ("neck", "l_hip"), ("l_hip", "l_knee"), ("l_knee", "l_ankle"),
)

# Each skeleton's drawing bones, keyed by its joint-name tuple.
BONES = {MPII_JOINTS: MPII_BONES, COCO_JOINTS: COCO_BONES, AIC_JOINTS: AIC_BONES}


# ----------------------------------------------------------------------------
# Any skeleton, by its joint names
# ----------------------------------------------------------------------------
def joint_flip(joints):
    """The permutation that swaps left and right parts (``l_`` <-> ``r_``) of
    a skeleton given by its names: ``flip_permutation`` of ``tuple(joints)``."""
    return flip_permutation(tuple(joints))


def joint_bones(joints):
    """(K, 2) joint indices of the bones drawn for ``joints`` (none for a
    skeleton ``BONES`` does not know)."""
    bones = BONES.get(tuple(joints), ())
    return bone_indices(joints, bones) if bones else np.zeros((0, 2), int)


def limb_joints(names):
    """Indices of the limb joints (elbows, wrists, knees, ankles): where an
    occluded part must be inferred from context (a hidden hip is still pinned
    down by the torso), so where paper 1's Fig. 2 claim is judged."""
    return [j for j, n in enumerate(names) if n[2:] in ("elbow", "wrist", "knee", "ankle")]
