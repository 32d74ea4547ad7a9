"""Small helpers shared by ``heatmap_regression.py`` and ``bottom_up_bbox.py``.

Nothing in this package is specific to either paper's method; the paper logic
lives in the two scripts. The conventions below hold everywhere and are tested:

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
