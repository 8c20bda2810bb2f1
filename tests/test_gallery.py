"""The gallery: every output rendered for a demo-size and a real-size store, checked as a person would look.

Every matplotlib figure is caught just before it is saved (``analyzer.output.save_figure``,
with the encoders kept in this process) and drawn, and the montage and the step pictures' frame
(drawn with PIL) are caught with the record of where they put each thing
(``montage.montage_picture``, ``heatmaps.StepHeatmap``): no text may leave a figure (a clipped
title or label) or touch another, the heatmaps have a colour scale, the montage has one label
per panel and one colour scale, the head ranking is sorted and names layer and head. The PIL
pictures are checked for their colour scale and legend, the segmentation palette for distinct
colours, and the report for its summary, clean tokens and no expert on a one-expert model.
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
from figure_checks import clipped, drawn_text_problems, step_picture_problems
from synthetic_store import owner_blocks, small_spec, write_store

from analyzer import encoders, heatmaps, output, overlays, palette, run
from analyzer.outputs import montage
from analyzer.run import analyze

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.analyzer_speed import build_store  # noqa: E402

SAVE_FIGURE = output.save_figure  # the real ones, whatever a test patched in before
MONTAGE_PICTURE = montage.montage_picture
STEP_HEATMAP = heatmaps.StepHeatmap
DEMO_STEPS = 8
REAL_STEPS = 50


class InProcess(encoders.Encoders):
    """The encoders without worker processes, so that the figures can be caught here."""

    def __init__(self, work_pixels: int, workers: int | None = None):
        super().__init__(work_pixels, workers=0)


def render_all(store: Path, out: Path, monkeypatch) -> tuple[dict, dict[str, Figure], list]:
    """What the analysis wrote, its matplotlib figures by file name, and its montage pictures as drawn."""
    figures: dict[str, Figure] = {}
    montages: list[montage.MontagePicture] = []
    save = SAVE_FIGURE

    def catch(figure: Figure, path: Path, image_format: str) -> Path:
        FigureCanvasAgg(figure).draw()  # laid out as it is saved
        figures[Path(path).stem] = figure
        return save(figure, path, image_format)

    def catch_montage(*args, **kwargs) -> montage.MontagePicture:
        montages.append(MONTAGE_PICTURE(*args, **kwargs))
        return montages[-1]

    monkeypatch.setattr(output, "save_figure", catch)
    monkeypatch.setattr(montage, "montage_picture", catch_montage)
    monkeypatch.setattr(run, "Encoders", InProcess)
    return analyze(store, out, progress=False), figures, montages


def step_frames_made(monkeypatch) -> list:
    """The step pictures' frames (``heatmaps.StepHeatmap``) the analyses make from now on, as they are made."""
    made = []

    class Caught(STEP_HEATMAP):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(heatmaps, "StepHeatmap", Caught)
    return made


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
            steps = step_frames_made(monkeypatch)
            results[name] = render_all(store, root / f"{name}-out", monkeypatch)
            results[f"{name} step frames"] = steps
    return results


@pytest.mark.parametrize("size", ["demo", "real"])
def test_no_text_leaves_any_figure(gallery, size):
    _, figures, montages = gallery[size]
    assert {"head_ranking", "padding_mass", "layer_profile"} <= {Path(n).stem for n in figures}
    for name, figure in figures.items():
        assert not clipped(figure), f"{name}: {clipped(figure)}"
    assert len(montages) == 1 and not drawn_text_problems(montages[0]), drawn_text_problems(montages[0])


@pytest.mark.parametrize("size", ["demo", "real"])
def test_step_pictures_keep_every_text_inside_and_apart(gallery, size):
    written, _, _ = gallery[size]
    (frame,) = gallery[f"{size} step frames"]  # one frame, drawn once, for every step
    assert not step_picture_problems(frame), step_picture_problems(frame)
    labels = [label for label, _ in frame.texts]
    assert "text token (key)" in labels and "attention weight" in labels and "f0" in labels
    for path in written["steps"]:
        with Image.open(path) as image:
            assert image.size == frame.template.shape[::-1]


@pytest.mark.parametrize("size", ["demo", "real"])
def test_heatmaps_have_a_colour_scale(gallery, size):
    _, figures, _ = gallery[size]
    for name, figure in figures.items():
        if any(isinstance(a, AxesImage) for ax in figure.axes for a in ax.get_images()):
            assert any(hasattr(ax, "_colorbar") for ax in figure.axes), f"{name} has no colour bar"


@pytest.mark.parametrize("size,steps", [("demo", DEMO_STEPS), ("real", REAL_STEPS)])
def test_montage_one_label_per_panel_one_scale(gallery, size, steps):
    written, _, (picture,) = gallery[size]
    with Image.open(written["montage"]) as image:  # the picture caught is the one written
        assert np.array_equal(np.asarray(image), np.asarray(picture.image))
    assert len(picture.panels) == steps
    labels = [p.label for p in picture.panels]
    assert len(set(labels)) == steps and all(label.startswith("step ") for label in labels)
    drawn = [text for text, _ in picture.texts]
    assert sorted(t for t in drawn if t.startswith("step ")) == sorted(labels)  # the label is a panel's only text
    assert [box for text, box in picture.texts if text.startswith("step ")] == [p.label_box for p in picture.panels]
    ranges = {p.value_range for p in picture.panels}
    assert len(ranges) == 1 and next(iter(ranges))[0] == 0.0  # one colour scale, from 0, for every panel
    ticks = [value for value, _ in picture.ticks]
    assert len(ticks) >= 3 and all(abs(t * 1e4 - round(t * 1e4)) < 1e-6 for t in ticks)  # round values
    assert max(ticks) <= next(iter(ranges))[1] and [label for _, label in picture.ticks] == \
        [t for t in drawn if t in {label for _, label in picture.ticks}]  # each value drawn on the bar, once
    assert picture.title.startswith("Cross-attention of each analysed step") and "shared colour scale" in picture.title
    assert "attention weight (one scale for every panel)" in drawn and any(t.startswith("How to read") for t in drawn)


@pytest.mark.parametrize("expert", ["", " \u00b7 high-noise"])
def test_montage_stays_legible_at_100_steps(expert):
    matrices = [np.random.default_rng(i).random((96, 30)).astype(np.float32) for i in range(100)]
    labels = [f"step {i} \u00b7 t={1000 - 10 * i}{expert}" for i in range(100)]
    picture = montage.montage_picture(matrices, labels)
    assert picture.image.width <= 2600
    assert min(p.box[2] - p.box[0] for p in picture.panels) >= 150  # panels large enough to see
    assert [p.label for p in picture.panels] == labels  # whole, not shortened
    assert not drawn_text_problems(picture)  # labels apart from each other and every other text, none cut
    # not shrunk to fit: the ink of "step 0 \u00b7 t=1000" is 12 pixels tall when set at 12 pixels, 11 at 11
    assert min(p.label_box[3] - p.label_box[1] for p in picture.panels) >= 12


@pytest.mark.parametrize("size", ["demo", "real"])
def test_head_ranking_is_a_sorted_named_ranking(gallery, size):
    _, figures, _ = gallery[size]
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
    written, _, _ = gallery[size]
    with Image.open(written["word_sheet"]) as sheet:
        bottom = np.asarray(sheet.convert("RGB"))[-40:]
        assert len({tuple(p) for p in bottom.reshape(-1, 3)}) > 50  # the colour-scale bar under the sheet
    with Image.open(written["segmentation"]) as segmentation:
        pixels = np.asarray(segmentation.convert("RGB"))
        swatches = {overlays.segment_colour(u) for u in range(3)}
        found = {tuple(p) for p in pixels[-40:].reshape(-1, 3)}
        assert swatches <= found  # the legend's swatches


def test_report_reads_in_ten_seconds(gallery):
    written, _, _ = gallery["real"]
    report = Path(written["report"]).read_text(encoding="utf-8")
    head = report.split("| Field |")[0]
    assert "**Summary**" in head and "Most attended words" in head and "text entropy" in head
    assert "\u2581" not in report  # tokens as clean text
    assert "high-noise" not in report and "| Expert |" not in report  # one expert (Wan 2.1-like)
    assert report.count("How to read this:") >= 6
    demo = Path(gallery["demo"][0]["report"]).read_text(encoding="utf-8")
    assert "| Expert |" in demo  # experts 0 then 1: a two-expert model
