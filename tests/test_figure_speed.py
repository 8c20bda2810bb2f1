"""What keeps the pictures cheap, as properties (no timing): the step pictures and the montage share one
palette, which the animation keeps; the montage is composed in numpy and PIL and still keeps every text inside
the picture and apart at awkward sizes, each panel in the colour map's colours; the matplotlib figures are laid
out by hand, draw unhinted text, and still keep every text inside the figure at awkward sizes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.font_manager import FontProperties
from figure_checks import clipped, drawn_text_problems
from PIL import Image

from analyzer import fonts, heatmaps, ticks
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


MONTAGE_AWKWARD = {
    "one panel": lambda: montage.montage_picture([np.ones((96, 30), dtype=np.float32)],
                                                 ["step 0 \u00b7 t=1000 \u00b7 high-noise"], layers="block 3"),
    "per panel": lambda: montage.montage_picture([np.full((96, 30), i + 1e-4, dtype=np.float32) for i in range(4)],
                                                 [f"step {i} \u00b7 t={999 - i}" for i in range(4)], "per-panel"),
    "one of many, long title": lambda: montage.montage_picture([np.ones((96, 30), dtype=np.float32)],
                                                               ["step 0 \u00b7 t=1000"], "per-panel", 250,
                                                               "mean over 40 layers (blocks 0..39)"),
    "tiny values": lambda: montage.montage_picture([np.full((3, 2), 3e-7, dtype=np.float32)] * 3,
                                                   [f"step {i}" for i in range(3)]),
    "labels too long": lambda: montage.montage_picture([np.ones((96, 30), dtype=np.float32)] * 100,
                                                       [f"step {i} \u00b7 " + "x" * 60 for i in range(100)]),
}


@pytest.mark.parametrize("case", list(MONTAGE_AWKWARD))
def test_montage_keeps_every_text_inside_and_apart(case):
    picture = MONTAGE_AWKWARD[case]()
    assert not drawn_text_problems(picture), case
    assert in_step_palette(picture.image)  # a palette image: a fifth of the PNG compression of an RGB one
    assert len(picture.ticks) >= 3 and picture.title and all(p.label.startswith("step ") for p in picture.panels)


def test_montage_records_every_ink_it_draws():
    """What the montage says it drew is all it drew: every pixel that is not white lies in a text's box, a
    framed panel, the framed colour bar or a tick mark (so the layout checks see everything)."""
    rng = np.random.default_rng(0)
    picture = montage.montage_picture([rng.random((96, 30)).astype(np.float32) for _ in range(12)],
                                      [f"step {i} \u00b7 t={1000 - 20 * i}" for i in range(12)], layers="block 3")
    ink = np.asarray(picture.image) != montage.WHITE
    for left, upper, right, lower in [box for _, box in picture.texts]:
        ink[upper:lower, left:right] = False
    for left, upper, right, lower in [p.box for p in picture.panels] + [picture.bar_box]:
        ink[upper - 1:lower + 1, left - 1:right + 1] = False
    _, upper, right, lower = picture.bar_box
    ink[upper:lower, right + 1:right + 1 + montage.TICK_LENGTH] = False
    assert not ink.any(), np.argwhere(ink)[:5]


@pytest.mark.parametrize("scale", ["shared", "per-panel"])
def test_montage_panels_show_their_matrices_in_the_colour_map(scale):
    """Known matrices: each panel's pixels are colour-map colours, its brightest cell where its maximum is, and
    the colours follow the scale (shared: a quarter of the top is a quarter up the map; per panel: each to 1)."""
    first = np.zeros((8, 5), dtype=np.float32)
    first[2, 3], first[5, 1] = 1.0, 0.5
    second = first[::-1, ::-1] * 0.25  # its maximum at (5, 1)
    picture = montage.montage_picture([first, second], ["step 0 \u00b7 t=1000", "step 1 \u00b7 t=990"], scale)
    indices = np.asarray(picture.image)
    shared = scale == "shared"
    assert [p.value_range for p in picture.panels] == ([(0.0, 1.0)] * 2 if shared else [(0.0, 1.0), (0.0, 0.25)])
    second_top = round(0.25 * (heatmaps.LEVELS - 1)) if shared else heatmaps.LEVELS - 1
    for matrix, panel, top_level in [(first, picture.panels[0], heatmaps.LEVELS - 1),
                                     (second, picture.panels[1], second_top)]:
        left, upper, right, lower = panel.box
        region = indices[upper:lower, left:right]
        assert (region < heatmaps.LEVELS).all()  # colour-map colours only: no grey, no frame inside
        rows, cols = np.nonzero(region == region.max())
        # the cell each pixel shows, nearest neighbour: pixel centres scaled onto the matrix
        cell = np.unique(np.stack([((rows + 0.5) * 8 / (lower - upper)).astype(int),
                                   ((cols + 0.5) * 5 / (right - left)).astype(int)], axis=1), axis=0)
        assert cell.tolist() == [list(np.unravel_index(matrix.argmax(), matrix.shape))]
        assert region.max() == top_level and region.min() == 0
        rgb = np.asarray(picture.image.convert("RGB"))
        assert rgb[upper + rows[0], left + cols[0]].tolist() == heatmaps.PALETTE[top_level].tolist()
        assert (indices[upper - 1, left - 1:right + 1] == heatmaps.BLACK).all()  # the frame
    _, bar_upper, _, bar_lower = picture.bar_box
    bar = indices[bar_upper:bar_lower, picture.bar_box[0]]
    assert bar[0] == heatmaps.LEVELS - 1 and bar[-1] == 0 and (np.diff(bar.astype(int)) <= 0).all()


AWKWARD = {
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
    chosen = ticks.round_ticks(4.006, 6, 2.769)
    assert [label for _, label in chosen] == ["3.00", "3.25", "3.50", "3.75", "4.00"]
    assert [label for _, label in ticks.round_ticks(0.0085)] == ["0.000", "0.002", "0.004", "0.006", "0.008"]
