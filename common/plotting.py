"""Figures: poses drawn over images, heatmap panels, training curves, and
paper 2's scene figure (boxes, poses, maps, fields) and curves.

The figures a paper script draws after every run (``stage_curves``,
``pose_grid``, paper 1's ``fig2`` and its ``map_panel``) are here with the drawing primitives:
they are pictures of what the method computed, not the method, and a reader
of the script needs their names, not their matplotlib calls.

Matplotlib with the non-interactive Agg backend (no display needed); every
figure is written atomically (temporary file, then ``os.replace``) so that an
interrupted run never leaves half a PNG behind.
"""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .atomic import atomic_write  # noqa: E402
from .skeleton import joint_bones  # noqa: E402
from .transforms import to_stride  # noqa: E402

LEFT, RIGHT, CENTRE = "tab:blue", "tab:red", "tab:green"


# Resolution of saved figures (``walkthrough/make_figures.py --fast`` lowers
# it: its figures are checked for being made, not read).
DPI = 110


def save(fig, path):
    """Save ``fig`` to ``path`` atomically (``common.atomic``) and close it."""
    path = Path(path)
    try:
        with atomic_write(path) as f:
            fig.savefig(f, format=path.suffix.lstrip(".") or "png", dpi=DPI, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def draw_pose(ax, keypoints, bones, names, dashed_occluded=True, lw=2.0, alpha=1.0):
    """Draw ``(J, 3)`` keypoints and ``(K, 2)`` bones: left side blue, right red.
    Bones touching an occluded joint (v = 1) are dashed, as in the paper's
    Fig. 2; unannotated joints (v = 0) are not drawn."""
    kp = np.asarray(keypoints)
    for a, b in bones:
        if kp[a, 2] <= 0 or kp[b, 2] <= 0:
            continue
        side = names[b][:2]
        colour = LEFT if side == "l_" else RIGHT if side == "r_" else CENTRE
        style = "--" if dashed_occluded and min(kp[a, 2], kp[b, 2]) == 1 else "-"
        ax.plot(kp[[a, b], 0], kp[[a, b], 1], style, color=colour, lw=lw, alpha=alpha)
    shown = kp[:, 2] > 0
    ax.scatter(kp[shown, 0], kp[shown, 1], s=8, c="white", edgecolors="black", linewidths=0.5, zorder=3)


def image_grid(n, size=2.2, aspect=1.0):
    """A figure with ``n`` image axes in a near-square grid, axes off; each
    cell ``size`` wide and ``size / aspect`` high, so that images of that
    width-to-height ratio fill their cells instead of floating in blank bands."""
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * size, rows * size / aspect), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return fig, list(axes.flat)


def curves(series, path, xlabel="epoch", title=None, marks=()):
    """Line plots: ``series`` is ``{panel title: {line label: (x, y)}}``;
    ``marks`` are x positions drawn as vertical lines (e.g. stage ends). An
    x axis of epochs gets whole-number ticks; every point is a marker, so a
    one-epoch stage reads as a point of the same series, not a stray dot."""
    from matplotlib.ticker import MaxNLocator
    fig, axes = plt.subplots(1, len(series), figsize=(5 * len(series), 3.6), squeeze=False)
    for ax, (panel, lines) in zip(axes.flat, series.items()):
        for label, (x, y) in lines.items():
            ax.plot(x, y, marker="o", ms=4, label=label)
        for m in marks:
            ax.axvline(m, color="grey", lw=0.8, ls=":")
        ax.set_title(panel)
        ax.set_xlabel(xlabel)
        if "epoch" in xlabel and "jitter" not in panel:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return save(fig, path)


# ----------------------------------------------------------------------------
# Paper 2: poses of a crowd, its maps and fields, its curves

def draw_poses(ax, keypoints, skeleton, completed=None, lw=1.5):
    """Poses (P, J, 3: x, y, score) in image px on paper 2's tree
    (``skeleton.limbs``, ``skeleton.joints``); completed joints dashed."""
    for p, kp in enumerate(keypoints):
        v = np.where(kp[:, 2] > 0, 2.0, 0.0)
        if completed is not None:
            v[completed[p]] = 1.0                    # drawn dashed, like an occluded joint
        draw_pose(ax, np.concatenate([kp[:, :2], v[:, None]], 1), skeleton.limbs,
                           skeleton.joints, lw=lw)


def draw_boxes(ax, boxes, **style):
    for x, y, w, h in np.asarray(boxes).reshape(-1, 4):
        ax.add_patch(plt.Rectangle((x, y), w, h, fill=False, **style))


def field_colours(fields):
    """Direction fields as colour: hue = direction, brightness = length (the
    strongest limb at each pixel)."""
    import matplotlib.colors as mcolors
    f = fields.reshape(-1, 2, *fields.shape[1:])
    mag = np.linalg.norm(f, axis=1)                                  # (C, h, w)
    c = mag.argmax(0)
    fx = np.take_along_axis(f[:, 0], c[None], 0)[0]
    fy = np.take_along_axis(f[:, 1], c[None], 0)[0]
    hue = (np.arctan2(fy, fx) / (2 * np.pi)) % 1.0
    return mcolors.hsv_to_rgb(np.stack([hue, np.ones_like(hue), np.clip(mag.max(0), 0, 1)], -1))


def figure_scene(image, pred, boxes, parsed, skeleton, path, title=""):
    """Paper 2's Fig. 2 for one image: the boxes (as the parse extended them)
    and its poses, the confidence maps, the direction fields, and the
    box-free parse of [3] on the same outputs (``pred``, a ``Prediction``).
    ``parsed``: ``parse_variants`` with at least "full" and "greedy"."""
    J = skeleton.J
    W, H = pred.size
    extent = (-0.5, W - 0.5, H - 0.5, -0.5)
    fig, axes = image_grid(4, size=4.0, aspect=W / H)
    axes[0].imshow(image, extent=extent)
    draw_boxes(axes[0], boxes, ec="yellow", ls="--", lw=1)
    draw_poses(axes[0], parsed["full"].keypoints, skeleton, parsed["full"].completed)
    axes[0].set_title("boxes + Algorithm 1, NMS, completion\n(dashed: limbs to a completed joint; "
                      "blue left, red right)", fontsize=9)
    axes[1].imshow(image, extent=extent)
    axes[1].imshow(pred.maps[:J].max(0), extent=extent, cmap="magma", alpha=0.7, vmin=0, vmax=1)
    axes[1].set_title("confidence maps (max over joints)", fontsize=9)
    axes[2].imshow(field_colours(pred.fields), extent=extent)
    axes[2].set_title("direction fields (hue = direction)", fontsize=9)
    axes[3].imshow(image, extent=extent)
    draw_poses(axes[3], parsed["greedy"].keypoints, skeleton)
    axes[3].set_title("box-free greedy parse of [3]", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return save(fig, path)


def figure_curves(history, jitter, reference, path):
    """Training loss, validation AP per epoch, and AP against box jitter for
    each box source with the box-free parse of [3] as a flat reference."""
    series = {"training loss (Eq. 8)": {"loss": ([h["epoch"] for h in history["loss"]],
                                                  [h["loss"] for h in history["loss"]])},
              "validation OKS AP": {"AP": ([h["epoch"] for h in history["val"]],
                                           [100 * h["AP"] for h in history["val"]])}}
    if jitter:
        lines = {f"ours, {w}": (c["levels"], [100 * a for a in c["AP"]]) for w, c in jitter.items()}
        lv = next(iter(jitter.values()))["levels"]
        lines["[3], no boxes"] = (lv, [100 * reference] * len(lv))
        series["AP vs box jitter (Fig. 1 a-b)"] = lines
    return curves(series, path)
def stage_curves(history, path, loss_label="training loss"):
    """A staged training run's curves (``heatmap_regression.train``'s
    history): the loss per epoch, each stage its own line, beside the
    validation Total; the stage ends dotted."""
    loss = {}
    for i, h in enumerate(history["loss"]):
        x, y = loss.setdefault(h["stage"], ([], []))
        x.append(i + 1), y.append(h["loss"])
    val = {"Total": ([i + 1 for i in range(len(history["val"]))], [v["Total"] for v in history["val"]])}
    return curves({loss_label: loss, "validation Total": val}, path, xlabel="epoch (all stages)",
                  marks=[e + 0.5 for e in history["stage_ends"][:-1]])


def pose_grid(images, poses, names, path, n=12, title="predictions (blue = left, red = right)"):
    """Up to ``n`` images ``(H, W, 3)``, each with its pose ``(J, 2)`` (image
    px; joints ``names``) drawn over it, in an ``image_grid`` of ``n`` cells."""
    names = tuple(names)
    fig, axes = image_grid(n)
    for ax, img, xy in zip(axes, images, poses):
        ax.imshow(img)
        draw_pose(ax, np.concatenate([xy, np.full((len(names), 1), 2.0)], 1), joint_bones(names), names,
                  dashed_occluded=False)
    fig.suptitle(title)
    return save(fig, path)


def map_panel(ax, img, m, xy, stride, r_near, title):
    """One map ``m`` (at ``stride``) over its crop ``img``, the true part
    ``xy`` (crop px) ringed, as paper 1's Fig. 2 shows them. Each panel on its
    own scale (a weak map stays visible); the numbers compare maps on a common
    footing: the value at the true part and the highest value within
    ``r_near`` map px of it, each over the map's own maximum."""
    top = max(float(m.max()), 1e-6)
    ax.imshow(img)
    ax.imshow(m, cmap="viridis", alpha=0.6, vmin=0, vmax=top,
              extent=(-0.5, img.shape[1] - 0.5, img.shape[0] - 0.5, -0.5))
    tx, ty = to_stride(xy, stride)
    yy, xx = np.mgrid[:m.shape[0], :m.shape[1]]
    near = m[(xx - tx) ** 2 + (yy - ty) ** 2 <= r_near ** 2]
    at = m[int(np.clip(np.rint(ty), 0, m.shape[0] - 1)), int(np.clip(np.rint(tx), 0, m.shape[1] - 1))]
    ax.add_patch(plt.Circle(xy, 6, fill=False, ec="white", lw=1.5))
    ax.set_title(f"{title}\nmax {top:.2f}; at truth {at / top:.2f} x max, "
                 f"near it {(near.max() if near.size else 0) / top:.2f}", fontsize=8)


def fig2(img, kp, pred, maps, parts, names, stride, r_near, path):
    """Paper 1's Fig. 2 as a 2 x 3 figure of one crop ``img``: its ground
    truth ``kp`` (J, 3; dashed: occluded) and the cascade's pose ``pred``
    (J, 2), both in crop px; then, for ``parts`` (a visible and an occluded
    joint), the detection heatmap (row 1) and the regression confidence map
    (row 2) of ``maps`` = (det, reg), each (J, h, w) at ``stride``, as
    ``map_panel``s."""
    names = tuple(names)
    bones = joint_bones(names)
    fig, axes = plt.subplots(2, 3, figsize=(9.6, 6.6))
    for ax, pose, title in ((axes[0, 0], kp, "ground truth (dashed: occluded)"),
                            (axes[1, 0], np.concatenate([pred, kp[:, 2:]], 1),
                             "the cascade's pose (decoded from row 2)")):
        ax.imshow(img)
        draw_pose(ax, pose, bones, names)
        ax.set_title(title, fontsize=9)
    for r, (m, label) in enumerate(zip(maps, ("detection heatmap", "regression map"))):
        for c, j in enumerate(parts):
            map_panel(axes[r, c + 1], img, m[j], kp[j, :2], stride, r_near,
                      f"{label}: {names[j]} ({'visible' if c == 0 else 'OCCLUDED'})")
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle("Fig. 2: detection (row 1) vs regression (row 2), the true part ringed; the median occluded case",
                 fontsize=10)
    return save(fig, path)
