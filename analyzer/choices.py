"""The names a user chooses from (outputs, formats, normalisations), in one light module.

The command line builds its options from these without importing matplotlib or Pillow,
and :mod:`analyzer.run`, :mod:`analyzer.output` and :mod:`analyzer.overlays` check against the same lists.
"""

from __future__ import annotations

OUTPUT_KINDS = ("steps", "montage", "animation", "report", "words", "segmentation", "padding", "layers", "heads")
IMAGE_FORMATS = ("png", "jpg", "webp")
ANIMATION_FORMATS = ("gif", "webp")
NORMALISATIONS = ("global", "per-step", "per-frame", "per-word")
