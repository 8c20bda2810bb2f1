"""Where the outputs go and how pictures become files: the output directory, image, figure and animation writers.

Each output kind names its own files (:mod:`analyzer.outputs`); this module writes them.
"""

from __future__ import annotations

import io
import os
import zlib
from collections.abc import Callable, Iterable
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps

from analyzer.errors import AnalyzerError

if TYPE_CHECKING:  # matplotlib is imported where figures are drawn (encoder processes), not with the module
    from matplotlib.figure import Figure

PALETTE_SAMPLES = 8


# Kernel file systems: a directory there is no place for pictures (writes fail, or change the system).
_VIRTUAL_ROOTS = (Path("/proc"), Path("/sys"), Path("/dev"))
_DEV_EXCEPTIONS = (Path("/dev/shm"),)  # a tmpfs: a real, if volatile, place for files


def check_directory(path: str | os.PathLike, store: str | os.PathLike | None = None) -> None:
    """Refuse, before the store is read, an output path no analysis may write to.

    An empty path would mean the working directory; a path under /proc, /sys or /dev is a
    kernel file system; a path inside a local store would mix pictures into its keys.
    """
    text = os.fspath(path)
    if not text.strip():
        raise AnalyzerError("the output path is empty; name a directory for the pictures and the report")
    if "\x00" in text:
        raise AnalyzerError("the output path contains a NUL character")
    real = Path(os.path.realpath(text))
    for root in _VIRTUAL_ROOTS:
        if (real == root or root in real.parents) and not any(e == real or e in real.parents for e in _DEV_EXCEPTIONS):
            raise AnalyzerError(f"output directory {text} is under {root}, a kernel file system; "
                                f"choose a directory on disk")
    if store is not None and "://" not in os.fspath(store) and os.path.isdir(store):
        store_real = Path(os.path.realpath(store))
        if real == store_real or store_real in real.parents:
            raise AnalyzerError(f"output directory {text} is inside the store {os.fspath(store)}; choose a "
                                f"directory outside it")


def confined(directory: Path, name: str) -> Path:
    """``directory / name``, refused unless it stays directly inside ``directory`` (names come from the store)."""
    path = directory / name
    if os.sep in name or (os.altsep and os.altsep in name) or "\x00" in name or name in ("", ".", "..") \
            or path.resolve().parent != directory.resolve():
        raise AnalyzerError(f"file name {name!r} would leave the output directory {directory}")
    return path


def prepare_directory(path: str | Path, overwrite: bool) -> Path:
    """Create the output directory; refuse a non-empty one unless ``overwrite``.

    With ``overwrite`` the files this run writes replace those of the same name; other
    files in the directory are left alone (we never delete what we did not write).
    """
    out = Path(path)
    try:
        if out.exists() and not out.is_dir():
            raise AnalyzerError(f"output {out} exists and is not a directory")
        if out.is_dir() and any(out.iterdir()) and not overwrite:
            raise AnalyzerError(f"output directory {out} is not empty; choose another or pass --overwrite")
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a read-only or virtual file system, no permission, a missing drive
        raise AnalyzerError(f"cannot use output directory {out}: {exc.strerror or exc}") from None
    return out


def save_image(image: Image.Image, path: Path, image_format: str) -> Path:
    """Write a still picture; PNG is compressed lightly, because writing dozens of them must stay fast.

    zlib's run-length strategy (Z_RLE), meant for PNG's filtered rows, is both faster and
    smaller than its default strategy at level 1 on frames, sheets and figures alike.
    """
    target = path.with_name(f"{path.name}.{image_format}")
    if image_format == "png":
        image.save(target, format="PNG", compress_level=1, compress_type=zlib.Z_RLE)
    elif image_format == "jpg":
        image.convert("RGB").save(target, format="JPEG", quality=90)
    else:
        image.save(target, format="WEBP", quality=90)
    return target


def save_figure(figure: Figure, path: Path, image_format: str) -> Path:
    """Draw a matplotlib figure (at its own dpi) into its RGBA buffer and write it through :func:`save_image`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # only where figures are drawn

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return save_image(Image.fromarray(np.asarray(canvas.buffer_rgba())).convert("RGB"), path, image_format)


def draw_and_save(draw: Callable[..., Figure], args: tuple, path: Path, image_format: str) -> Path:
    """Draw ``draw(*args)`` and write it with :func:`save_figure`: an encoder job, so the figure is drawn there."""
    return save_figure(draw(*args), path, image_format)


def fit_width(image: Image.Image, width: int) -> Image.Image:
    """``image`` shrunk to at most ``width`` pixels wide, its aspect kept; a narrower one is returned as it is.

    Bilinear: the pictures shrink by a few percent, where Lanczos costs twice as much for nothing.
    """
    if image.width <= width:
        return image
    return ImageOps.contain(image, (width, image.height), Image.Resampling.BILINEAR)


def _image(frame: Image.Image | bytes | np.ndarray) -> Image.Image:
    """A frame given as an image, as encoded bytes (what the step pass keeps to stay small) or as an array."""
    if isinstance(frame, Image.Image):
        return frame
    if isinstance(frame, np.ndarray):
        return Image.fromarray(np.ascontiguousarray(frame))
    with Image.open(io.BytesIO(frame)) as image:
        return image.convert("RGB")


def save_animation(frames: list[Image.Image | bytes] | np.ndarray, path: Path, animation_format: str,
                   frame_ms: int) -> Path:
    """Write frames (images, encoded images, or one (n, h, w, 3) uint8 array) as a looping animation (GIF frames
    share one 256-colour palette).

    Encoded frames are decoded one at a time; a GIF holds them only in palette mode.
    """
    target = path.with_name(f"{path.name}.{animation_format}")
    if animation_format == "mp4":
        return write_mp4((f if isinstance(f, np.ndarray) else np.asarray(_image(f).convert("RGB")) for f in frames),
                         target, 1000 / frame_ms)
    if animation_format == "gif":
        palette = shared_palette(frames)
        if isinstance(frames, np.ndarray):
            frames = quantize_stack(frames, palette)
        else:
            frames = [_image(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
        frames[0].save(target, format="GIF", save_all=True, append_images=frames[1:], duration=frame_ms,
                       loop=0, optimize=False, disposal=1)
    else:
        frames = [_image(f) for f in frames]
        frames[0].save(target, format="WEBP", save_all=True, append_images=frames[1:], duration=frame_ms,
                       loop=0, quality=80, method=0)
    return target


QUANTIZE_PIXELS = 1 << 22  # frames quantised in one call: few calls, and PIL's copy of them stays small


def quantize_stack(frames: np.ndarray, palette: Image.Image) -> list[Image.Image]:
    """Frames (n, h, w, 3) uint8 mapped onto ``palette`` (no dithering), each a palette-mode image.

    The frames are stacked into tall pictures and mapped a block at a time: the same pixels as
    mapping each frame, without a call per frame.
    """
    count, height, width = frames.shape[:3]
    per_call = max(1, QUANTIZE_PIXELS // max(1, height * width))
    images = []
    for start in range(0, count, per_call):
        block = np.ascontiguousarray(frames[start:start + per_call])
        tall = Image.fromarray(block.reshape(-1, width, 3)).quantize(palette=palette, dither=Image.Dither.NONE)
        images.extend(tall.crop((0, i * height, width, (i + 1) * height)) for i in range(len(block)))
    return images


def shared_palette(frames: list[Image.Image | bytes] | np.ndarray, samples: int = PALETTE_SAMPLES) -> Image.Image:
    """A 256-colour palette (fast octree) of a strip of up to ``samples`` frames spread over the animation.

    Mapping every frame onto one palette costs a third of building a palette per frame,
    and the frames of one animation share their colours (one video, one colour map).
    """
    spread = np.unique(np.linspace(0, len(frames) - 1, min(samples, len(frames))).round())
    picked = [_image(frames[round(i)]) for i in spread]
    strip = Image.new("RGB", (sum(f.width for f in picked), max(f.height for f in picked)))
    x = 0
    for frame in picked:
        strip.paste(frame.convert("RGB"), (x, 0))
        x += frame.width
    return strip.quantize(colors=256, method=Image.Quantize.FASTOCTREE)


# --- MP4 (H.264) through PyAV, whose wheel ships ffmpeg with libx264: no system ffmpeg needed ----------

MP4_CODEC = "libx264"
MP4_PIXEL_FORMAT = "yuv420p"  # what every player decodes; it needs an even width and height
# x264's fastest preset, at the same quality target (crf 20): a third of veryfast's CPU on the 480x832
# benchmark video (0.76 against 2.27 s) for a file about four times larger (4.1 against 1.0 MiB for 81
# frames); the store keeps the exact frames, the MP4 is for watching.
MP4_PRESET = "ultrafast"


def even_pad(frame: np.ndarray, width: int | None = None, height: int | None = None) -> np.ndarray:
    """``frame`` (h, w, 3) uint8 padded (its last row and column repeated, never scaled) to ``width`` x
    ``height``, by default its own size rounded up to even numbers (what H.264 in yuv420p needs)."""
    h, w = frame.shape[:2]
    width = width if width is not None else w + w % 2
    height = height if height is not None else h + h % 2
    if (w, h) == (width, height):
        return frame
    if w > width or h > height:
        raise ValueError(f"a {w}x{h} frame does not fit a {width}x{height} video")
    return np.pad(frame, ((0, height - h), (0, width - w), (0, 0)), mode="edge")


def mp4_rate(fps: float) -> Fraction:
    """A frame rate as the rational number the container stores (0.1 to 100 frames per second)."""
    return Fraction(fps).limit_denominator(1001)


def write_mp4(frames: Iterable[np.ndarray], target: Path, fps: float) -> Path:
    """Encode RGB frames (h, w, 3) uint8, one at a time, as an H.264 MP4 at ``fps``; return ``target``.

    The video takes the first frame's size rounded up to even numbers; every frame is padded
    to it (a smaller one with its edge repeated). Memory holds one frame, whatever the count.
    """
    try:
        import av  # the encoder: only where an MP4 is written
    except ImportError:  # pragma: no cover - a base dependency
        raise AnalyzerError("writing MP4 needs PyAV (pip install av), whose wheel ships the H.264 encoder") from None
    container = None
    stream = None
    try:
        for frame in frames:
            frame = np.ascontiguousarray(np.asarray(frame, dtype=np.uint8)[..., :3])
            if container is None:
                container = av.open(str(target), mode="w")
                stream = container.add_stream(MP4_CODEC, rate=mp4_rate(fps))
                h, w = frame.shape[:2]
                stream.width, stream.height = w + w % 2, h + h % 2
                stream.pix_fmt = MP4_PIXEL_FORMAT
                stream.options = {"crf": "20", "preset": MP4_PRESET}
            padded = even_pad(frame, stream.width, stream.height)
            for packet in stream.encode(av.VideoFrame.from_ndarray(padded, format="rgb24")):
                container.mux(packet)
        if container is None:
            raise AnalyzerError(f"no frame to write into {target}")
        for packet in stream.encode():
            container.mux(packet)
    finally:
        if container is not None:
            container.close()
    return target
