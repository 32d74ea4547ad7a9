"""Image reading and the affine crop every data path goes through.

Convention (see ``common/__init__``): pixel centres sit at integer coordinates,
so an image of width W spans ``[-0.5, W - 0.5]``. A crop of side ``box`` px
around ``center`` maps that square onto an ``out x out`` image whose pixels
span ``[-0.5, out - 0.5]``; hence the ``out / 2 - 0.5`` below.

A map at stride ``s`` (a network output ``s`` times smaller than its input)
has pixel ``k`` covering input pixels ``s*k .. s*k + s - 1``, so its centre is
input coordinate ``s*k + (s - 1) / 2``. ``to_stride``/``from_stride`` convert;
``values_at`` reads maps at joints and ``gaussian_blur`` smooths maps (paper
1's decoding and Fig. 2's numbers use them: map arithmetic, not method).
"""
import math
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

# Decompression-bomb guard: a pose photo never needs more pixels than this, so
# a larger file is refused in one line instead of exhausting memory. PIL's own
# guard (a warning above ~89 Mpx, an error above twice that) is silenced in
# ``open_image``, which checks the size from the header before decoding.
MAX_PIXELS = 120_000_000


class ImageError(ValueError):
    """An image file that cannot be used; the message is one line naming it."""


def open_image(path, max_reduce=1.0):
    """Open ``path`` as an RGB ``PIL.Image`` and return ``(image, factor)``.

    ``factor`` is how much the returned image is smaller than the file
    (1, 2, 4 or 8). For JPEGs, libjpeg can decode at 1/2, 1/4 or 1/8 scale
    (``Image.draft``) far faster than at full size; ``max_reduce`` is how
    much smaller the caller can afford -- for a crop, its box side over its
    output side (an MPII person box of 800 px cropped to 256 px affords 3, so
    a 1/2 decode). This keeps the data pipeline above 200 samples/s per core.
    Grayscale, palette, RGBA and 16-bit files are converted to 8-bit RGB.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
        w0, h0 = img.size
        if w0 * h0 > MAX_PIXELS:
            img.close()
            raise ImageError(f"{path}: image of {w0}x{h0} px is larger than "
                             f"{MAX_PIXELS} px; downscale it first")
        if img.format == "JPEG" and max_reduce >= 2:
            k = 1
            while k < 8 and 2 * k <= max_reduce:
                k *= 2
            if k > 1:
                img.draft("RGB", (math.ceil(w0 / k), math.ceil(h0 / k)))
        if img.mode in ("I;16", "I;16B", "I;16L", "I"):
            # 16-bit: keep the 8 most significant bits rather than clipping.
            arr = np.asarray(img, dtype=np.uint32) >> 8
            img = Image.fromarray(arr.astype(np.uint8))
        img = img.convert("RGB")
        img.load()
    except Image.DecompressionBombError:
        raise ImageError(f"{path}: image larger than {MAX_PIXELS} px; downscale it first") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ImageError(f"{path}: not a readable image "
                         f"({type(e).__name__}: {str(e).splitlines()[0]})") from None
    factor = w0 / img.size[0]
    return img, factor


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def image_files(names, flag="--demo"):
    """Command-line image arguments -> image files, a folder giving its
    images in name order (one line for a missing file or an empty folder)."""
    files = []
    for name in names:
        path = Path(name).expanduser()
        if path.is_dir():
            found = sorted(f for f in path.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise FileNotFoundError(f"{flag} {name}: a folder with no image in it ({', '.join(IMAGE_SUFFIXES)})")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{flag} {name}: image file not found")
    # Outputs are named after the file's stem: two images of one stem would
    # overwrite each other's.
    stems = {}
    for f in files:
        if f.stem in stems:
            raise ValueError(f"{flag}: {stems[f.stem]} and {f} share the name {f.stem!r}, and with it their "
                             f"output files; rename one")
        stems[f.stem] = f
    return files


def image_ids(files):
    """COCO's integer image ids for ``files``: the file name's number where it
    is one (COCO's own files: 000000000785.jpg -> 785), else numbers above
    the largest of those, in order, so that no two images share an id."""
    numbered = [int(f.stem) for f in files if f.stem.isdigit()]
    nxt = max(numbered, default=0)
    ids = []
    for f in files:
        if f.stem.isdigit():
            ids.append(int(f.stem))
        else:
            nxt += 1
            ids.append(nxt)
    return ids


def image_size(path):
    """(width, height) from the file's header without decoding it; None when
    the header cannot be read (``open_image`` then says why in one line)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as im:
                return im.size
        except (Image.DecompressionBombError, UnidentifiedImageError, OSError, SyntaxError):
            return None


def open_for_network(path, side, by_height=False):
    """``(image, size)``: ``path`` decoded and shrunk so that its longer side
    (its height, ``by_height``) is about ``side`` px (never enlarged), and
    the file's full (width, height). A network that resizes its input to
    ``side`` anyway sees the same pixels, and a 100 Mpx JPEG costs a fraction
    of a second and a few MB instead of seconds and gigabytes (``open_image``
    decodes it at 1/8). Coordinates on the returned image map to the file's
    by ``size``."""
    size = image_size(path)
    measure = (lambda wh: wh[1]) if by_height else max
    img, _ = open_image(path, max_reduce=measure(size) / side if size else 1.0)
    if measure(img.size) > side:
        f = side / measure(img.size)
        img = img.resize((max(1, round(img.width * f)), max(1, round(img.height * f))), Image.BILINEAR)
    return img, size or img.size


def crop_matrix(center, box, out, rot_deg=0.0, flip=False):
    """The 2x3 affine ``A`` mapping source pixels to crop pixels.

    The square of side ``box`` px centred on ``center`` (rotated by
    ``rot_deg`` counter-clockwise in the image) becomes an ``out x out`` crop;
    with ``flip`` the crop is mirrored left-right afterwards. Apply with
    ``apply_affine(A, xy)``.
    """
    s = out / box
    t = math.radians(rot_deg)
    # Image y points down, so a counter-clockwise rotation on screen is a
    # clockwise one in (x, y): rotate the content by +t <=> rotate points by -t.
    c, si = math.cos(t), math.sin(t)
    R = np.array([[c, si], [-si, c]]) * s
    A = np.zeros((2, 3))
    A[:, :2] = R
    A[:, 2] = out / 2 - 0.5 - R @ np.asarray(center, dtype=np.float64)
    if flip:
        A[0] = -A[0]
        A[0, 2] += out - 1  # x -> (out - 1) - x
    return A


def invert_affine(A):
    """Inverse of a 2x3 affine (crop -> source)."""
    R_inv = np.linalg.inv(A[:, :2])
    return np.concatenate([R_inv, -R_inv @ A[:, 2:]], axis=1)


def apply_affine(A, xy):
    """Apply a 2x3 affine to points ``(..., 2)``."""
    xy = np.asarray(xy, dtype=np.float64)
    return xy @ A[:, :2].T + A[:, 2]


def warp_image(img, A, out, factor=1.0):
    """Crop ``img`` (a PIL image) with the source->crop affine ``A``.

    ``factor`` is ``open_image``'s reduction: ``A`` is expressed in the
    file's full-resolution pixels, the image may be ``factor`` times smaller.
    Returns a ``(out, out, 3)`` uint8 array. Outside the image is black.
    """
    if factor != 1.0:
        # Full-res pixel p sits at reduced pixel (p + 0.5) / f - 0.5.
        S = np.array([[factor, 0, (factor - 1) / 2], [0, factor, (factor - 1) / 2]])
        A = A @ np.vstack([S, [0, 0, 1]])
    # Large downscales alias badly with bilinear sampling; PIL's box
    # ``reduce`` first gives an anti-aliased (and cheaper) source.
    k = int(1.0 / np.sqrt(abs(np.linalg.det(A[:, :2]))))
    if k >= 2:
        img = img.reduce(k)
        S = np.array([[k, 0, (k - 1) / 2], [0, k, (k - 1) / 2]])
        A = A @ np.vstack([S, [0, 0, 1]])
    # PIL samples the source at (a x + b y + c, ...) for each crop pixel and
    # measures both in pixel-corner coordinates (centre = index + 0.5).
    B = invert_affine(A)
    c = B[:, 2] + 0.5 - B[:, :2].sum(axis=1) * 0.5
    data = (B[0, 0], B[0, 1], c[0], B[1, 0], B[1, 1], c[1])
    return np.asarray(img.transform((out, out), Image.AFFINE, data, resample=Image.BILINEAR))


# Both papers' backbones were pre-trained on ImageNet with these statistics.
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def to_tensor(image):
    """An (H, W, 3) uint8 image -> (3, H, W) float tensor, ImageNet-normalised."""
    import torch  # late: the rest of this module needs only numpy and PIL
    # The same float32 arithmetic as in numpy (bit for bit), at a third of the time.
    x = torch.tensor(np.asarray(image)).permute(2, 0, 1).float()   # a copy: PIL's arrays are read-only
    mean, std = (torch.from_numpy(v)[:, None, None] for v in (IMAGENET_MEAN, IMAGENET_STD))
    return ((x / 255.0 - mean) / std).contiguous()


def to_uint8(image):
    """The inverse, for display: (3, H, W) tensor -> (H, W, 3) uint8."""
    x = image.detach().cpu().permute(1, 2, 0).numpy() * IMAGENET_STD + IMAGENET_MEAN
    return (np.clip(x, 0, 1) * 255).astype(np.uint8)


def to_stride(xy, stride):
    """Input-pixel coordinates -> coordinates on a map of the given stride."""
    return (np.asarray(xy, dtype=np.float64) - (stride - 1) / 2) / stride


def from_stride(xy, stride):
    """Map coordinates at ``stride`` -> input-pixel coordinates."""
    return np.asarray(xy, dtype=np.float64) * stride + (stride - 1) / 2


def values_at(maps, keypoints, stride):
    """(J,) each map of ``maps`` (J, h, w; stride ``stride``) at its joint of
    ``keypoints`` (J, 3; input px), read at the nearest map pixel; NaN where
    the joint is not annotated (v = 0) or falls outside the map."""
    kp = np.asarray(keypoints)
    h, w = maps.shape[-2:]
    out = np.full(len(kp), np.nan)
    for j, (x, y) in enumerate(np.rint(to_stride(kp[:, :2], stride)).astype(int)):
        if kp[j, 2] > 0 and 0 <= x < w and 0 <= y < h:
            out[j] = float(maps[j, y, x])
    return out


def gaussian_blur(m, sigma):
    """(K, h, w) maps (a torch tensor) smoothed by a Gaussian of std ``sigma``
    px (separable, 3 sigma wide, borders replicated); ``sigma`` 0: unchanged."""
    import torch  # late: the rest of this module needs only numpy and PIL
    import torch.nn.functional as F
    if sigma <= 0:
        return m
    r = max(1, int(3 * sigma + 0.5))
    k = torch.exp(-torch.arange(-r, r + 1.0) ** 2 / (2 * sigma ** 2))
    k = (k / k.sum()).to(m)
    x = F.pad(m[:, None], (r, r, r, r), mode="replicate")
    x = F.conv2d(F.conv2d(x, k.view(1, 1, 1, -1)), k.view(1, 1, -1, 1))
    return x[:, 0]
