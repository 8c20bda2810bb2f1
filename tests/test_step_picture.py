"""The step picture's frame, drawn with numpy and PIL once per analysis (``heatmaps.StepHeatmap``): every text
inside the picture and apart from the others at any number of tokens and frames, every token label shown drawn
under its column, every mark it makes recorded; render() writing only where the frame keeps room for it; and
the colour bar's round values the same as matplotlib's MaxNLocator picks."""

from __future__ import annotations

import ast
import inspect

import numpy as np
import pytest
from figure_checks import step_picture_areas, step_picture_problems
from hypothesis import example, given, settings
from hypothesis import strategies as st
from matplotlib.ticker import MaxNLocator

from analyzer import heatmaps, text, ticks
from analyzer.statistics import row_blocks
from shared.words import token_text

WHITE = len(heatmaps.PALETTE) - 1
LONG = "\u2581" + "antidisestablishmentarianism"


def renderer(n_tokens: int, grid=(4, 8, 8), rows: int = 64, layer_label: str = "mean over 2 layers (blocks 0..1)",
             token=lambda i: f"\u2581tok{i}") -> heatmaps.StepHeatmap:
    frames, height, width = grid
    return heatmaps.StepHeatmap([token(i) for i in range(n_tokens)], row_blocks(frames * height * width, rows),
                                grid, layer_label)


AWKWARD = {  # renderer()'s arguments
    "one token, one frame": dict(n_tokens=1, grid=(1, 4, 4), rows=16),
    "the synthetic store": dict(n_tokens=6, grid=(4, 4, 4), rows=96),
    "30 tokens, 21 frames": dict(n_tokens=30, grid=(21, 30, 52), rows=256),
    "33 tokens of long words": dict(n_tokens=33, grid=(21, 30, 52), rows=256, token=lambda i: LONG),
    "96 tokens of long words": dict(n_tokens=96, grid=(21, 30, 52), rows=256, token=lambda i: LONG + str(i)),
    "97 tokens: every other label": dict(n_tokens=97, grid=(21, 30, 52), rows=256, token=lambda i: "W" * 20),
    "512 tokens": dict(n_tokens=512, grid=(21, 30, 52), rows=256),
    "more frames than rows": dict(n_tokens=12, grid=(41, 4, 4), rows=16),
    "100 frames": dict(n_tokens=8, grid=(100, 4, 4), rows=400),
    "bare and odd tokens": dict(n_tokens=5, token=lambda i: ["\u2581", " ", "$x$", "</s>", "\u200b"][i]),
    "the layers kept as one mean": dict(n_tokens=3, layer_label=heatmaps.layer_label([-1])),
}


def shown_labels(tokens: list[str]) -> list[str]:
    every = -(-len(tokens) // heatmaps.MAX_TOKEN_LABELS)
    return [text.plain_label(token_text(t) or t, 16) for t in tokens[::every]]


@pytest.mark.parametrize("case", list(AWKWARD))
def test_every_text_inside_and_apart(case):
    picture = renderer(**AWKWARD[case])
    assert not step_picture_problems(picture), case
    height, width = picture.template.shape
    assert height == heatmaps.HEIGHT and width == round(heatmaps.picture_width(AWKWARD[case]["n_tokens"]) * 100)
    left, upper, right, lower = picture.box
    assert right - left >= 300 and lower - upper >= 300, case  # the matrix keeps most of the picture


@pytest.mark.parametrize("n_tokens", [1, 6, 30, 96, 97, 200])
def test_every_token_label_shown_is_drawn_under_its_column(n_tokens):
    tokens = [f"\u2581word{i}" for i in range(n_tokens)]
    picture = heatmaps.StepHeatmap(tokens, row_blocks(4 * 8 * 8, 64), (4, 8, 8), "layer: block 3")
    labels = shown_labels(tokens)
    drawn = picture.texts[:len(labels)]
    assert [label for label, _ in drawn] == labels
    left, _, right, lower = picture.box
    every = -(-n_tokens // heatmaps.MAX_TOKEN_LABELS)
    for i, (label, (box_left, box_upper, box_right, _)) in enumerate(drawn):
        centre = left + (i * every + 0.5) * (right - left) / n_tokens
        assert abs((box_left + box_right) / 2 - centre) <= 2, label  # on its column, reading upwards
        assert box_upper > lower + heatmaps.TICK_LENGTH, label  # under the axes and their tick marks


def test_frame_labels_at_the_first_row_of_their_frames():
    """Four frames of 64 video tokens in 96 rows: frame f starts in row 24 f, its label centred on that row's top."""
    picture = renderer(6, (4, 8, 8), 96)
    _, upper, _, lower = picture.box
    frames = {label: box for label, box in picture.texts if label in {"f0", "f1", "f2", "f3"}}
    assert sorted(frames) == ["f0", "f1", "f2", "f3"]
    for f, (_, box_upper, box_right, box_lower) in enumerate(frames[f"f{f}"] for f in range(4)):
        row_top = upper + round(24 * f * (lower - upper) / 96)
        assert abs((box_upper + box_lower) / 2 - row_top) <= 2, f
        assert box_right <= picture.box[0] - 1 - heatmaps.TICK_LENGTH


def test_the_frame_records_every_mark_it_makes():
    """Every pixel of the frame that is not white lies in a text's box, the framed axes or colour bar, or a tick
    mark: so the layout checks see everything the frame draws."""
    for case in ("the synthetic store", "30 tokens, 21 frames", "97 tokens: every other label"):
        picture = renderer(**AWKWARD[case])
        ink = picture.template != WHITE
        for _, (left, upper, right, lower) in picture.texts + step_picture_areas(picture)[:4]:
            ink[upper:lower, left:right] = False
        assert not ink.any(), (case, np.argwhere(ink)[:5])


@pytest.mark.parametrize("top", [0.0, 3e-7, 1e-5, 0.0085, 0.7, 1.0, 1234.5])
def test_render_writes_only_in_the_axes_and_its_rooms(top):
    """A step's picture is the frame with the matrix in the axes, the title over them and the colour bar's values
    beside it, nothing else changed: whatever the values and the title."""
    picture = renderer(30, (21, 30, 52), 256)
    matrix = np.random.default_rng(0).random((256, 30)).astype(np.float32) * top
    image = picture.render(matrix, heatmaps.step_title(999, 1000.0, 1, True))
    changed = np.asarray(image) != picture.template
    left, upper, right, lower = picture.box
    assert (np.asarray(image)[upper:lower, left:right] < heatmaps.LEVELS).all()  # colour-map colours only
    for room_left, room_upper, room_right, room_lower in [picture.box, picture.title_room, picture.value_room]:
        assert changed[room_upper:room_lower, room_left:room_right].any()
        changed[room_upper:room_lower, room_left:room_right] = False
    assert not changed.any(), np.argwhere(changed)[:5]


def test_the_colour_bar_runs_the_map_from_bottom_to_top_framed():
    picture = renderer(6)
    left, upper, right, lower = picture.colorbar_box
    bar = picture.template[upper:lower, left:right]
    assert (bar == bar[:, :1]).all() and bar[0, 0] == heatmaps.LEVELS - 1 and bar[-1, 0] == 0
    assert (np.diff(bar[:, 0].astype(int)) <= 0).all()
    assert (picture.template[[upper - 1, lower], left - 1:right + 1] == heatmaps.BLACK).all()
    assert (picture.template[upper - 1:lower + 1, [left - 1, right]] == heatmaps.BLACK).all()


def test_heatmaps_draws_without_matplotlib():
    """heatmaps.py imports no matplotlib of its own (the fonts module finds DejaVu Sans through it, lazily)."""
    tree = ast.parse(inspect.getsource(heatmaps))
    imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    imported += [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module]
    assert not [name for name in imported if name.split(".")[0] == "matplotlib"]


def matplotlib_ticks(top: float, count: int = 5, bottom: float = 0.0) -> list[tuple[float, str]]:
    """round_ticks as it was, on matplotlib's MaxNLocator: what the re-implementation must give to the bit."""
    return ticks.labelled_ticks(MaxNLocator(nbins=count, steps=[1, 2, 2.5, 5, 10]).tick_values(bottom, top),
                                   top, bottom)


def same_ticks(top: float, count: int, bottom: float) -> None:
    ours, theirs = ticks.round_ticks(top, count, bottom), matplotlib_ticks(top, count, bottom)
    assert [label for _, label in ours] == [label for _, label in theirs]
    assert [value for value, _ in ours] == [float(value) for value, _ in theirs]


@settings(max_examples=2000, deadline=None)
@given(st.floats(-7, 4.5).map(lambda e: 10 ** e) | st.floats(3e-7, 1e4))
@example(3e-7)
@example(1e4)
@example(0.0085)
@example(1.0)
@example(0.7)
@example(2.5e-3)
def test_round_ticks_as_matplotlib_from_zero(top):
    """The step pictures' and the montage's colour bars: from 0 to a top anywhere from 3e-7 to 1e4."""
    same_ticks(top, 5, 0.0)


@settings(max_examples=2000, deadline=None)
@given(st.floats(0, 8), st.floats(-7, 1).map(lambda e: 10 ** e), st.sampled_from([5, 6]))
@example(2.769, 4.006 - 2.769, 6)
@example(3.0, 1e-7, 6)
@example(-0.5, 1.0, 6)
@example(1234.5, 1e-6, 6)
def test_round_ticks_as_matplotlib_from_a_bottom(bottom, span, count):
    """The head ranking's entropy bar: from the lowest entropy to the highest, however close (then an offset
    keeps matplotlib's ticks precise), or half a nat either side of a single value."""
    same_ticks(bottom + span, count, bottom)
