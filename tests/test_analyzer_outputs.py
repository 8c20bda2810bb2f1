"""The pictures: every classic file present, sizes, frame counts, and the winning region where it should be."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from synthetic_store import Synthetic, small_spec, video_shape, write_store

from analyzer import heatmaps, overlays
from analyzer.run import analyze


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs")
    write_store(root / "store", small_spec())
    return root / "out", analyze(root / "store", root / "out", progress=False)


def frames_of(path) -> list[np.ndarray]:
    with Image.open(path) as image:
        frames = []
        for i in range(image.n_frames):
            image.seek(i)
            frames.append(np.asarray(image.convert("RGB"), dtype=np.int16))
        return frames


def test_classic_file_names(outputs):
    out, written = outputs
    names = {p.name for p in out.iterdir()}
    assert {"attention_step_000.png", "attention_step_001.png", "attention_step_002.png", "attention_montage.png",
            "attention_animation.gif", "attention_analysis_report.md"} <= names
    assert {"word_contact_sheet.png", "token_segmentation.png", "padding_mass.png", "layer_profile.png",
            "head_ranking.png"} <= names
    for key in ("montage", "animation", "report", "word_sheet", "segmentation", "padding", "layers", "heads"):
        assert written[key].is_file() and written[key].stat().st_size > 0, key


def test_step_images_and_animation(outputs):
    out, written = outputs
    sizes = set()
    for path in written["steps"]:
        with Image.open(path) as image:
            sizes.add(image.size)
            pixels = np.asarray(image.convert("RGB"))
            assert pixels.std() > 10  # not blank
    assert len(sizes) == 1  # one layout for every step
    with Image.open(written["animation"]) as gif:
        assert gif.n_frames == 3
    with Image.open(written["montage"]) as montage:
        width, height = sizes.pop()
        assert montage.width >= 2 * min(width, 800) * 0.5 and montage.height > 0


def test_step_heatmap_shows_the_owner_block(outputs):
    """Step 0: frames 0-1 belong to "red" (token 1), frame 2 to "cat" (2), frame 3 to "a" (0).

    Each (token column, frame rows) cell centre is the colour map's top colour exactly
    where the token owns the frame, and its bottom colours elsewhere.
    """
    out, written = outputs

    image = np.asarray(Image.open(written["steps"][0]).convert("RGB")).astype(int)
    top, low = heatmaps._LUT[255].astype(int), heatmaps._LUT[int(0.04 / 0.7 * 255 + 0.5)].astype(int)
    near = lambda colour: np.abs(image - colour).sum(axis=2) < 12  # noqa: E731
    # the heatmap: the rows and columns filled with those two colours (the colour bar has each in a few rows only)
    either = near(top) | near(low)
    columns, rows = either.sum(axis=0), either.sum(axis=1)
    xs, ys = np.nonzero(columns > columns.max() / 2)[0], np.nonzero(rows > rows.max() / 2)[0]
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    owner = {0: 1, 1: 1, 2: 2, 3: 0}
    for frame in range(4):
        for token in range(6):
            x = int(x0 + (token + 0.5) * (x1 - x0) / 6)
            y = int(y0 + (frame + 0.5) * (y1 - y0) / 4)
            expected = top if owner[frame] == token else low
            assert np.abs(image[y, x] - expected).sum() < 12, (frame, token)


def test_word_animations_one_frame_per_video_frame(outputs):
    out, written = outputs
    n_frames = video_shape(small_spec())[0]
    assert [p.name for p in written["words"]] == ["word_000_a.gif", "word_001_red.gif", "word_002_cats.gif"]
    for path in written["words"]:
        assert path.parent.name == "words"
        with Image.open(path) as gif:
            assert gif.n_frames == n_frames


def test_word_overlay_lights_its_frames(outputs):
    """"a" owns latent frame 3 (pixel frames 9-12) at two of three steps: only those frames are tinted."""
    out, written = outputs
    frames = frames_of(written["words"][0])
    caption = overlays.caption_height(frames[0].shape[1])
    deviation = [np.abs(f[caption:] - 128).mean() for f in frames]
    lit, unlit = deviation[9:], deviation[:9]
    assert min(lit) > 5 * max(unlit)


def test_overlay_follows_the_region_inside_a_frame(tmp_path):
    """Token "red" owns the left half of every frame; its overlay is coloured there and grey on the right."""
    grid = (2, 4, 8)
    owners = np.zeros((2, *grid), dtype=np.int64)
    owners[..., :4] = 1
    write_store(tmp_path / "store", Synthetic(owners=owners))
    written = analyze(tmp_path / "store", tmp_path / "out", progress=False, words="red",
                      outputs="words,segmentation")
    frame = frames_of(written["words"][0])[0]
    frame = frame[overlays.caption_height(frame.shape[1]):]
    left, right = frame[:, : frame.shape[1] // 2 - 8], frame[:, frame.shape[1] // 2 + 8:]
    assert np.abs(left - 128).mean() > 40
    assert np.abs(right - 128).mean() < 10
    assert "segmentation" in written and "report" not in written


@pytest.mark.parametrize("normalize", ["per-step", "per-frame", "per-word"])
def test_normalize_modes_and_formats(tmp_path, normalize):
    write_store(tmp_path / "store", small_spec())
    written = analyze(tmp_path / "store", tmp_path / "out", progress=False, normalize=normalize,
                      outputs="words,montage,animation", image_format="webp", animation_format="webp")
    assert written["montage"].suffix == ".webp" and written["animation"].suffix == ".webp"
    with Image.open(written["words"][0]) as anim:
        assert anim.n_frames == video_shape(small_spec())[0]
    if normalize == "per-frame":
        # every latent frame on its own scale: even frames where "a" is weak are tinted
        frames = frames_of(written["words"][0])
        assert np.abs(frames[0][20:] - 128).mean() > 5


def test_segmentation_colours_do_not_wrap():
    """Above 256 words an 8-bit index wrapped (257 looked like 1); tab20 alone repeated every 20 words."""
    from analyzer import overlays

    frame = np.zeros((2, 4, 3), dtype=np.uint8)
    tinted = overlays.segment_overlay(frame, np.array([[1, 257], [0, 20]]), (4, 2))
    assert tinted[0, 0].tolist() == tinted[0, 1].tolist()  # one latent cell -> two pixels, one colour
    assert tinted[0, 0].tolist() != tinted[0, 2].tolist()  # 1 vs 257
    assert tinted[1, 0].tolist() != tinted[1, 2].tolist()  # 0 vs 20
    assert overlays.SEGMENT_COLOUR_COUNT >= 60
    assert len({overlays.segment_colour(u) for u in range(overlays.SEGMENT_COLOUR_COUNT)}) == \
        overlays.SEGMENT_COLOUR_COUNT


@pytest.mark.parametrize("width", [48, 64, 100, 200, 320, 832])
def test_not_recorded_label_fits_its_frame(width):
    """The label is drawn whole, centred, on every frame width the outputs use (it was cut at 64 pixels)."""
    grey = np.full((60, width, 3), overlays.NOT_RECORDED_GREY, dtype=np.uint8)
    ink = overlays.mark_not_recorded(grey).min(axis=2) > 200  # the white text
    columns = np.flatnonzero(ink.any(axis=0))
    assert columns.size, "no label drawn"
    assert columns[0] >= 1 and columns[-1] <= width - 2  # not cut at either edge
    assert abs((columns[0] + columns[-1]) / 2 - width / 2) <= 3  # centred


def test_segmentation_legend_says_when_colours_repeat():
    from analyzer import overlays

    few = overlays.legend_strip([f"w{i}" for i in range(overlays.SEGMENT_COLOUR_COUNT)], 4000)
    many = overlays.legend_strip([f"w{i}" for i in range(overlays.SEGMENT_COLOUR_COUNT + 1)], 4000)
    assert many.height > few.height  # the note's line


def test_step_pass_keeps_small_panels():
    """The montage keeps each step's matrix, rows reduced; the animation frame is kept as a compressed PNG."""
    from analyzer.outputs import animation, montage
    from analyzer.streaming import run_step_jobs

    image = Image.new("RGB", (900, 700), "white")
    image.info[heatmaps.HEATMAP_INFO] = np.ones((256, 12), dtype=np.float32)
    # what the pass runs on each step's picture, in one encoder job, for the montage and the animation
    panel, frame = run_step_jobs(image, 0, ((montage.panel, (montage.PANEL_ROWS,)), (animation.frame, ())))
    assert panel.shape == (montage.PANEL_ROWS, 12) and np.allclose(panel, 1.0)
    assert isinstance(frame, bytes) and len(frame) < 100_000
    with Image.open(io.BytesIO(frame)) as decoded:
        assert decoded.width == animation.FRAME_WIDTH == 800


def test_montage_layout_adapts():
    from analyzer.outputs import montage

    assert montage.columns(1) == 1 and montage.columns(8) == 4 and montage.columns(50) == 9
    assert montage.columns(100) == montage.MAX_COLUMNS
    shown = montage.shown_positions(250)
    assert len(shown) == montage.MAX_PANELS and shown[0] == 0 and shown[-1] == 249
    assert montage.shown_positions(12) == list(range(12))


def test_many_steps_montage_and_animation(tmp_path):
    from synthetic_store import owner_blocks

    owners = owner_blocks(10, (2, 2, 2), [1, 2])
    write_store(tmp_path / "store", small_spec(owners=owners))
    written = analyze(tmp_path / "store", tmp_path / "out", progress=False, outputs="montage,animation",
                      animation_format="webp")
    with Image.open(written["animation"]) as animation:
        assert animation.n_frames == 10 and animation.width <= 800
    with Image.open(written["montage"]) as montage:
        assert 1000 <= montage.width <= 2600 and montage.height > 600
        assert montage.mode == "P"  # the step pictures' palette: cheap to compress


def test_word_views_scratch_folder_removed_on_error(tmp_path):
    """The video shared with worker processes lives in a scratch folder: gone even when the run fails."""
    from concurrent.futures import Future

    from analyzer.options import Options
    from analyzer.reader import StoreView
    from analyzer.selection import select_units
    from analyzer.word_views import WordViews

    class InPlaceWorkers:  # says it has workers, so the video goes to a scratch file, but runs jobs here
        workers = 1

        def submit(self, fn, *args):
            future = Future()
            future.set_result(fn(*args))
            return future

    write_store(tmp_path / "store", small_spec())
    view = StoreView(tmp_path / "store")
    units = select_units(view, None, None)
    maps = np.zeros((len(units), *view.grid))
    (tmp_path / "out").mkdir()
    with pytest.raises(RuntimeError, match="later failure"):
        with WordViews(view, units, maps, Options(), tmp_path / "out", InPlaceWorkers(), animations=True,
                       sheet=True) as views:
            scratch = views._scratch.name
            assert (Path(scratch) / "video.npy").is_file()
            raise RuntimeError("later failure")
    assert not Path(scratch).exists()
    views.close()  # twice is fine
