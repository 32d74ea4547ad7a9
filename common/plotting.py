"""Figures: poses drawn over images, heatmap panels, training curves, and
paper 2's scene figure (boxes, poses, maps, fields) and curves.

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
