"""The cheap per-word drawing keeps what the pictures say: blending, captions, GIF frames and contact-sheet cells.

Properties, not timings: the fixed-point blend is the float blend to a couple of grey levels,
a caption strip carries its own frame's text, a stack of frames quantised at once is the same
GIF as frames quantised one by one, and the contact-sheet cells do not depend on whether the
animation is written.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib import colormaps
from PIL import Image

from analyzer import output, overlays
from analyzer.word_views import captions, write_word_animation

RNG = np.random.default_rng(7)


def _float_blend(frame: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """The overlay as a float computation: colour of the heat over the frame, opacity 0.65 x heat."""
    colour = colormaps[overlays.HEAT_COLORMAP](heat)[..., :3] * 255
    alpha = overlays.OVERLAY_ALPHA * heat[..., None]
    return frame * (1 - alpha) + colour * alpha


def test_blend_matches_the_float_blend():
    heat = RNG.random((40, 60)).astype(np.float32)
    frames = RNG.integers(0, 256, (3, 40, 60, 3), dtype=np.uint8)
    blended = overlays.blend(frames, overlays.heat_layer(heat))
    assert blended.dtype == np.uint8 and blended.shape == frames.shape
    # heat in 256 levels (a level's colour, the colour map's steepest step) and opacity in 1/256ths
    assert np.abs(blended - _float_blend(frames, heat)).max() <= 4
    assert np.abs(blended - _float_blend(frames, heat)).mean() <= 0.5
    assert np.array_equal(blended[1], overlays.blend(frames[1], overlays.heat_layer(heat)))  # a stack = each frame


def test_zero_heat_leaves_the_frame_and_full_heat_covers_the_extremes():
    frames = np.stack([np.zeros((8, 8, 3), np.uint8), np.full((8, 8, 3), 255, np.uint8)])
    assert np.array_equal(overlays.blend(frames, overlays.heat_layer(np.zeros((8, 8)))), frames)
    full = overlays.blend(frames, overlays.heat_layer(np.ones((8, 8))))  # no overflow at white under full heat
    assert np.abs(full.astype(int) - _float_blend(frames, np.ones((8, 8)))).max() <= 1.5
    clipped = overlays.blend(frames, overlays.heat_layer(np.full((8, 8), 3.0)))  # heat above 1 counts as 1
    assert np.array_equal(clipped, full)


@pytest.mark.parametrize("width", [64, 160, 320, 640])
def test_each_caption_carries_its_own_frame(width):
    written = np.array([True] * 9 + [False] * 4)
    latent = np.array([0] + [1 + (p - 1) // 4 for p in range(1, 13)])
    strips = captions("cat", width, written, latent)
    assert strips.shape == (13, overlays.caption_height(width), width, 3) and strips.dtype == np.uint8
    assert len({strip.tobytes() for strip in strips}) == 13  # every frame's number is drawn
    again = captions("cat", width, written, latent)
    assert np.array_equal(strips, again)  # the cached text is laid down the same way every time
    dog = captions("dog", width, written, latent)
    assert not np.array_equal(strips[0], dog[0])  # the word is drawn too


def test_caption_text_stays_left_of_the_colour_scale():
    """A label too long for the strip is shortened; nothing is drawn over the colour scale."""
    width = 320
    base = overlays.caption_strips(width, "", [""])[0]
    long = overlays.caption_strips(width, "x" * 200, ["frame 80 (not recorded) latent 20"])[0]
    scale_left = width - 60 - 14 - 12  # the "0" of the scale and the bar to its right
    assert np.array_equal(long[:, scale_left:], base[:, scale_left:])
    assert (long[:, :scale_left] > 0).any()


def test_a_stack_quantised_at_once_is_the_same_gif_as_frame_by_frame(tmp_path, monkeypatch):
    frames = RNG.integers(0, 256, (7, 30, 40, 3), dtype=np.uint8)
    monkeypatch.setattr(output, "QUANTIZE_PIXELS", 3 * 30 * 40)  # blocks of three frames: the seams are exercised
    stacked = output.save_animation(frames, tmp_path / "stacked", "gif", 100)
    single = output.save_animation([Image.fromarray(f) for f in frames], tmp_path / "single", "gif", 100)
    assert stacked.read_bytes() == single.read_bytes()
    with Image.open(stacked) as gif:
        assert gif.n_frames == 7


@pytest.mark.parametrize("animation_format", ["webp", "mp4"])
def test_a_stack_writes_every_frame_in_the_other_formats(tmp_path, animation_format):
    frames = np.repeat(np.linspace(0, 255, 6, dtype=np.uint8)[:, None, None, None], 3, axis=3)
    frames = np.broadcast_to(frames, (6, 16, 24, 3)).copy()
    path = output.save_animation(frames, tmp_path / "anim", animation_format, 100)
    if animation_format == "webp":
        with Image.open(path) as anim:
            assert anim.n_frames == 6
    else:
        assert path.stat().st_size > 0


def test_png_stays_lossless(tmp_path):
    image = Image.fromarray(RNG.integers(0, 256, (50, 70, 3), dtype=np.uint8))
    path = output.save_image(image, tmp_path / "still", "png")
    with Image.open(path) as back:
        assert np.array_equal(np.asarray(back.convert("RGB")), np.asarray(image))


def test_sheet_cells_do_not_depend_on_the_animation(tmp_path):
    ramp = np.linspace(0, 255, 40).astype(np.uint8)  # smooth frames: the GIF palette holds them closely
    video = np.stack([np.stack([np.broadcast_to(ramp, (24, 40)), np.full((24, 40), 20 * p, np.uint8),
                                np.broadcast_to(ramp[::-1], (24, 40))], axis=2) for p in range(9)])
    written = np.array([True] * 6 + [False] * 3)
    latent = np.array([0, 1, 1, 1, 1, 2, 2, 2, 2])
    maps = RNG.random((3, 3, 5)).astype(np.float32)
    sampled = [0, 4, 8]
    path, with_animation = write_word_animation(video, written, latent, sampled, maps, "cat", tmp_path / "cat",
                                                "gif", 100)
    none, alone = write_word_animation(video, written, latent, sampled, maps, "cat", None, "gif", 100)
    assert none is None and len(alone) == 3
    assert all(np.array_equal(a, b) for a, b in zip(with_animation, alone))
    with Image.open(path) as gif:
        assert gif.n_frames == 9
        gif.seek(4)
        body = np.asarray(gif.convert("RGB"), dtype=int)[overlays.caption_height(40):]
    candidates = [overlays.blend(video[p], overlays.heat_layer(overlays.upsample(maps[latent[p]], (40, 24))))
                  for p in range(9)]
    distances = [np.abs(body - c).mean() for c in candidates]
    assert int(np.argmin(distances)) == 4 and distances[4] < 8  # its frame under its map, to the palette's precision


def test_gif_palette_buffer_is_what_pil_decodes():
    """The tall picture is cut back into frames at the right rows."""
    frames = np.zeros((3, 4, 5, 3), np.uint8)
    for i in range(3):
        frames[i] = (80 * i, 0, 255 - 80 * i)
    palette = output.shared_palette(frames)
    images = output.quantize_stack(frames, palette)
    for frame, image in zip(frames, images):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        assert np.abs(np.asarray(Image.open(buffer).convert("RGB"), dtype=int) - frame).max() <= 8
