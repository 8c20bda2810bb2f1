"""The font of PIL-drawn labels: matplotlib's bundled DejaVu Sans, so PIL and matplotlib pictures match."""

from __future__ import annotations

from functools import lru_cache

from matplotlib import font_manager
from PIL import ImageFont


@lru_cache(maxsize=None)
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans at ``size`` pixels (PIL's built-in font if FreeType is unavailable)."""
    try:
        path = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans"), fallback_to_default=True)
        return ImageFont.truetype(path, size)
    except (OSError, ImportError):
        return ImageFont.load_default()
