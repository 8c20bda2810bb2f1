"""What keeps the pictures cheap, as properties (no timing): the step pictures share one palette, which the
animation keeps; the matplotlib figures are laid out by hand, draw unhinted text, and still keep every text
inside the figure at awkward sizes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.font_manager import FontProperties
from figure_checks import clipped
from PIL import Image

from analyzer import fonts, heatmaps
from analyzer.outputs import animation, heads, layers, montage, padding
from analyzer.statistics import HeadStat, row_blocks


def step_renderer(n_tokens: int) -> heatmaps.StepHeatmap:
    grid = (4, 8, 8)
    return heatmaps.StepHeatmap([f"\u2581tok{i}" for i in range(n_tokens)], row_blocks(4 * 8 * 8, 64), grid,
                                "mean over 2 layers (blocks 0..1)")


def in_step_palette(image: Image.Image) -> bool:
    return image.mode == "P" and np.array_equal(np.asarray(image.getpalette()[:768], dtype=np.uint8),
                                                heatmaps.PALETTE.reshape(-1))


def test_step_picture_is_a_palette_image_with_the_colour_map_exact():
    renderer = step_renderer(6)
    matrix = np.zeros((64, 6), dtype=np.float32)
    matrix[:, 2] = 0.5  # one column at the top of the scale, the rest at its bottom
    picture = renderer.render(matrix, heatmaps.step_title(3, 625.0, 0))
    assert in_step_palette(picture) and picture.width <= animation.FRAME_WIDTH
    assert np.array_equal(picture.info[heatmaps.HEATMAP_INFO], matrix)
    rgb = np.asarray(picture.convert("RGB"))
    left, upper, right, lower = renderer.box
    middle = (upper + lower) // 2
    column = lambda token: left + int((token + 0.5) * (right - left) / 6)  # noqa: E731
    assert rgb[middle, column(2)].tolist() == heatmaps._LUT[255].tolist()
    assert rgb[middle, column(0)].tolist() == heatmaps._LUT[0].tolist()
    assert len(np.unique(np.asarray(picture)[:upper - 1])) > 2  # the title's anti-aliased greys


def test_frames_stay_in_the_palette_and_the_gif_keeps_their_colours(tmp_path):
    narrow, wide = step_renderer(6), step_renderer(60)
    rng = np.random.default_rng(0)
    pictures = [r.render(rng.random((64, n)).astype(np.float32), heatmaps.step_title(i, 900.0 - i, 0))
                for i, (r, n) in enumerate([(narrow, 6), (narrow, 6), (narrow, 6)])]
    frames = [animation.frame(p, i) for i, p in enumerate(pictures)]
    for encoded in frames:
        with Image.open(io.BytesIO(encoded)) as image:
            assert in_step_palette(image)
    shrunk = animation.frame(wide.render(rng.random((64, 60)).astype(np.float32), "step 0"), 0)
    with Image.open(io.BytesIO(shrunk)) as image:
        assert image.width == animation.FRAME_WIDTH and in_step_palette(image)

    gif = animation.write(frames, tmp_path / "steps", "gif", 250)
    with Image.open(gif) as written:
        assert written.n_frames == len(pictures)
        for i, picture in enumerate(pictures):
            written.seek(i)
            assert np.array_equal(np.asarray(written.convert("RGB")), np.asarray(picture.convert("RGB")))


def head(block: int, number: int, entropy: float) -> HeadStat:
    return HeadStat(layer_block=block, head=number, entropy=entropy, padding=0.1, top_token=0, top_token_mass=0.5)


AWKWARD = {
    "one panel": lambda: montage.montage_figure([np.ones((96, 30), dtype=np.float32)],
                                                ["step 0 \u00b7 t=1000 \u00b7 high-noise"], layers="block 3"),
    "per panel": lambda: montage.montage_figure([np.full((96, 30), i + 1e-4, dtype=np.float32) for i in range(4)],
                                                [f"step {i} \u00b7 t={999 - i}" for i in range(4)], "per-panel"),
    "one head": lambda: heads.head_figure([head(0, 0, 2.0)], np.array([[2.0]]), [0], ["\u2581cat"]),
    "many heads": lambda: heads.head_figure([head(b, h, 3.0 + 0.001 * (12 * b + h)) for b in range(40)
                                             for h in range(40)], np.full((40, 40), 3.0), list(range(40)),
                                            ["\u2581cat"]),
    "one layer": lambda: padding.padding_figure(list(range(5)), np.full((5, 1), 3e-6), [-1]),
    "tiny padding": lambda: padding.padding_figure(list(range(200)), np.full((200, 40), 1e-7), list(range(40))),
    "long words": lambda: layers.layer_profile_figure(np.full((2, 3), 1 / 3), [0, 1],
                                                      ["antidisestablishmentarianism", "x", "supercalifragilistic"]),
    "many words": lambda: layers.layer_profile_figure(np.full((40, 60), 1 / 60), list(range(40)),
                                                      [f"word{i}" for i in range(60)]),
}


@pytest.mark.parametrize("case", list(AWKWARD))
def test_hand_layout_keeps_every_text_inside(case):
    figure = AWKWARD[case]()
    assert figure.get_layout_engine() is None  # laid out by hand: no engine measuring every label again
    assert isinstance(figure, fonts.LeanFigure)
    FigureCanvasAgg(figure).draw()
    assert not clipped(figure), case


def test_measured_text_agrees_with_matplotlib():
    renderer = FigureCanvasAgg(fonts.LeanFigure(dpi=100)).get_renderer()
    for text, points in [("step 49 \u00b7 t=20 \u00b7 low-noise", 9), ("0.0080", 10), ("block 29", 7),
                         ("Cross-attention of each analysed step: shared colour scale", 13)]:
        width = renderer.get_text_width_height_descent(text, FontProperties(size=points), ismath=False)[0] / 100
        assert width <= fonts.text_inches(text, points) <= width * 1.12, text


def test_round_ticks_from_a_bottom():
    ticks = heatmaps.round_ticks(4.006, 6, 2.769)
    assert [label for _, label in ticks] == ["3.00", "3.25", "3.50", "3.75", "4.00"]
    assert [label for _, label in heatmaps.round_ticks(0.0085)] == ["0.000", "0.002", "0.004", "0.006", "0.008"]
