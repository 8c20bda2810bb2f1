"""Where the outputs go and in which format: file names, image and animation writers."""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib.figure import Figure
from PIL import Image

from analyzer.errors import AnalyzerError

IMAGE_FORMATS = ("png", "jpg", "webp")
ANIMATION_FORMATS = ("gif", "webp")

# The classic names, kept from the original WAN attention-visualization feature.
REPORT = "attention_analysis_report.md"
MONTAGE = "attention_montage"
ANIMATION = "attention_animation"
STEP = "attention_step_{index:03d}"
WORD_SHEET = "word_contact_sheet"
SEGMENTATION = "token_segmentation"
PADDING = "padding_mass"
LAYER_PROFILE = "layer_profile"
HEAD_RANKING = "head_ranking"
WORDS_DIR = "words"


def prepare_directory(path: str | Path, overwrite: bool) -> Path:
    """Create the output directory; refuse a non-empty one unless ``overwrite``.

    With ``overwrite`` the files this run writes replace those of the same name; other
    files in the directory are left alone (we never delete what we did not write).
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise AnalyzerError(f"output {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise AnalyzerError(f"output directory {out} is not empty; choose another or pass --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    return out


def save_image(image: Image.Image, path: Path, image_format: str) -> Path:
    """Write a still picture; PNG is compressed lightly, because writing dozens of them must stay fast."""
    target = path.with_name(f"{path.name}.{image_format}")
    if image_format == "png":
        image.save(target, format="PNG", compress_level=3)
    elif image_format == "jpg":
        image.convert("RGB").save(target, format="JPEG", quality=90)
    else:
        image.save(target, format="WEBP", quality=90)
    return target


def save_figure(figure: Figure, path: Path, image_format: str, dpi: int = 100) -> Path:
    """Render a matplotlib figure and write it through :func:`save_image`."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    buffer.seek(0)
    with Image.open(buffer) as image:
        return save_image(image.convert("RGB"), path, image_format)


def save_animation(frames: list[Image.Image], path: Path, animation_format: str, frame_ms: int) -> Path:
    """Write frames as a looping animation, one frame each (GIF frames get their own 256-colour palette)."""
    target = path.with_name(f"{path.name}.{animation_format}")
    if animation_format == "gif":
        # fast octree: a good 256-colour palette per frame at a twentieth of median cut's cost
        frames = [f.quantize(colors=256, method=Image.Quantize.FASTOCTREE) for f in frames]
        frames[0].save(target, format="GIF", save_all=True, append_images=frames[1:], duration=frame_ms,
                       loop=0, optimize=False, disposal=1)
    else:
        frames[0].save(target, format="WEBP", save_all=True, append_images=frames[1:], duration=frame_ms,
                       loop=0, quality=80, method=0)
    return target
