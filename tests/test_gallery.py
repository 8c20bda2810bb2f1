"""The gallery: every output rendered for a demo-size and a real-size store, checked as a person would look.

Every matplotlib figure is caught just before it is saved (``analyzer.output.save_figure``,
with the encoders kept in this process) and drawn: no text may leave the figure (a clipped
title or label), the heatmaps have a colour scale, the montage has one label per panel and
one colour scale, the head ranking is sorted and names layer and head. The PIL pictures are
checked for their colour scale and legend, the segmentation palette for distinct colours,
and the report for its summary, clean tokens and no expert on a one-expert model.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from PIL import Image
from figure_checks import clipped
from synthetic_store import owner_blocks, small_spec, write_store

from analyzer import encoders, output, overlays, palette, run
from analyzer.run import analyze

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.analyzer_speed import build_store  # noqa: E402

SAVE_FIGURE = output.save_figure  # the real one, whatever a test patched in before
DEMO_STEPS = 8
REAL_STEPS = 50


class InProcess(encoders.Encoders):
    """The encoders without worker processes, so that the figures can be caught here."""

    def __init__(self, work_pixels: int, workers: int | None = None):
        super().__init__(work_pixels, workers=0)


def render_all(store: Path, out: Path, monkeypatch) -> tuple[dict, dict[str, Figure]]:
    figures: dict[str, Figure] = {}
    save = SAVE_FIGURE

    def catch(figure: Figure, path: Path, image_format: str) -> Path:
        FigureCanvasAgg(figure).draw()  # laid out as it is saved
        figures[Path(path).stem] = figure
        return save(figure, path, image_format)

    monkeypatch.setattr(output, "save_figure", catch)
    monkeypatch.setattr(run, "Encoders", InProcess)
    return analyze(store, out, progress=False), figures


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    root = tmp_path_factory.mktemp("gallery")
    demo = root / "demo.zarr"
    write_store(demo, small_spec(owners=owner_blocks(DEMO_STEPS, (2, 2, 2), [1, 2])))
    real = root / "real.zarr"
    build_store(str(real), steps=REAL_STEPS, layers=2)
    results = {}
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name, store in (("demo", demo), ("real", real)):
            results[name] = render_all(store, root / f"{name}-out", monkeypatch)
    return results


@pytest.mark.parametrize("size", ["demo", "real"])
def test_no_text_leaves_any_figure(gallery, size):
    _, figures = gallery[size]
    assert {"attention_montage", "head_ranking", "padding_mass", "layer_profile"} <= {Path(n).stem for n in figures}
    for name, figure in figures.items():
        assert not clipped(figure), f"{name}: {clipped(figure)}"


@pytest.mark.parametrize("size", ["demo", "real"])
def test_heatmaps_have_a_colour_scale(gallery, size):
    _, figures = gallery[size]
    for name, figure in figures.items():
        if any(isinstance(a, AxesImage) for ax in figure.axes for a in ax.get_images()):
            assert any(hasattr(ax, "_colorbar") for ax in figure.axes), f"{name} has no colour bar"


@pytest.mark.parametrize("size,steps", [("demo", DEMO_STEPS), ("real", REAL_STEPS)])
def test_montage_one_label_per_panel_one_scale(gallery, size, steps):
    _, figures = gallery[size]
    figure = figures["attention_montage"]
    panels = [ax for ax in figure.axes if ax.get_images() and not hasattr(ax, "_colorbar")]
    assert len(panels) == steps
    titles = [ax.get_title() for ax in panels]
    assert len(set(titles)) == steps and all(t.startswith("step ") for t in titles)
    for ax in panels:  # the title is the panel's only label
        assert not ax.get_xlabel() and not ax.get_ylabel()
        assert not [t for t in ax.get_xticklabels() + ax.get_yticklabels() if t.get_text()]
    assert len({ax.get_images()[0].get_clim() for ax in panels}) == 1
    bar = [ax for ax in figure.axes if hasattr(ax, "_colorbar")]
    assert len(bar) == 1
    ticks = [t for t in bar[0].get_yticks() if bar[0].get_ylim()[0] <= t <= bar[0].get_ylim()[1]]
    assert len(ticks) >= 3 and all(abs(t * 1e4 - round(t * 1e4)) < 1e-6 for t in ticks)  # round values
    assert figure.get_suptitle()


def test_montage_stays_legible_at_100_steps():
    from analyzer.outputs import montage

    matrices = [np.random.default_rng(i).random((96, 30)).astype(np.float32) for i in range(100)]
    figure = montage.montage_figure(matrices, [f"step {i} \u00b7 t={1000 - 10 * i}" for i in range(100)])
    FigureCanvasAgg(figure).draw()
    width, height = figure.get_size_inches() * figure.dpi
    assert width <= 2600
    panel = [ax for ax in figure.axes if ax.get_images() and not hasattr(ax, "_colorbar")][0]
    assert panel.get_window_extent().width >= 150  # a panel large enough to see
    titles = [t for ax in figure.axes for t in [ax.title] if t.get_text()]
    renderer = figure.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in titles]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


@pytest.mark.parametrize("size", ["demo", "real"])
def test_head_ranking_is_a_sorted_named_ranking(gallery, size):
    _, figures = gallery[size]
    figure = figures["head_ranking"]
    assert "Head ranking" in figure.get_suptitle()
    ranking = figure.axes[0]
    labels = [t.get_text() for t in ranking.get_yticklabels()]
    assert labels[0].startswith("1. block ") and ", head " in labels[0]
    points = [line for line in ranking.get_lines() if line.get_marker() == "o"][0]
    values = np.asarray(points.get_xdata(), dtype=float)
    values = values[np.isfinite(values)]
    assert (np.diff(values) >= 0).all()


def test_segmentation_palette_distinct_for_60_words():
    colours = np.array([overlays.segment_colour(u) for u in range(60)])
    assert palette.min_distance(colours) >= 20  # CIELAB units; tab20+tab20b+tab20c had pairs 3.6 apart
    legend = overlays.legend_strip([f"word{i}" for i in range(60)], 1600)
    assert legend.width == 1600 and legend.height >= 24 * 3


@pytest.mark.parametrize("size", ["demo", "real"])
def test_pictures_carry_their_scale_and_legend(gallery, size):
    written, _ = gallery[size]
    with Image.open(written["word_sheet"]) as sheet:
        bottom = np.asarray(sheet.convert("RGB"))[-40:]
        assert len({tuple(p) for p in bottom.reshape(-1, 3)}) > 50  # the colour-scale bar under the sheet
    with Image.open(written["segmentation"]) as segmentation:
        pixels = np.asarray(segmentation.convert("RGB"))
        swatches = {overlays.segment_colour(u) for u in range(3)}
        found = {tuple(p) for p in pixels[-40:].reshape(-1, 3)}
        assert swatches <= found  # the legend's swatches


def test_report_reads_in_ten_seconds(gallery):
    written, _ = gallery["real"]
    report = Path(written["report"]).read_text(encoding="utf-8")
    head = report.split("| Field |")[0]
    assert "**Summary**" in head and "Most attended words" in head and "text entropy" in head
    assert "\u2581" not in report  # tokens as clean text
    assert "high-noise" not in report and "| Expert |" not in report  # one expert (Wan 2.1-like)
    assert report.count("How to read this:") >= 6
    demo = Path(gallery["demo"][0]["report"]).read_text(encoding="utf-8")
    assert "| Expert |" in demo  # experts 0 then 1: a two-expert model
