"""Small helpers shared by ``heatmap_regression.py`` and ``bottom_up_bbox.py``,
and each paper's lab bench.

The papers' methods live in the two scripts. Here are what both need and
neither is about (skeletons, images and crops, data sets, the toy, metrics,
backbones, the training harness, figures, the command line) and the bench
around paper 2's method: its boxes (``detector``), images and augmentation
(``scenes``), the fast form of its Eq. (5) (``connections``), the rows,
records and printed tables of its evaluation (``bub_eval``), its demo
(``bub_demo``), paper 1 as its top-down row (``topdown``), Cao et al.'s
conventions (``openpose``). Nothing here imports a script: what needs the
method is given it (a ``bub_eval.Parser``, ``make_targets``, paper 1's code).
The conventions below hold everywhere and are tested:

* Coordinates are ``(x, y)`` in pixels, 0-based, with pixel centres at integer
  coordinates (pixel ``(0, 0)`` covers ``[-0.5, 0.5]^2``). Readers of 1-based
  data (MPII's MATLAB files, LSP) convert when they read.
* Keypoints are float arrays of shape ``(..., J, 3)`` holding ``x, y, v`` with
  COCO's meaning of ``v``: 0 = not annotated, 1 = annotated but occluded,
  2 = annotated and visible.
* Heatmaps are ``(B, J, H, W)``; direction fields ``(B, 2C, H, W)`` (x then y
  per limb). A map at stride ``s`` has pixel ``(i, j)`` centred on input pixel
  ``(s*j + (s-1)/2, s*i + (s-1)/2)``; see ``common.transforms``.
"""
