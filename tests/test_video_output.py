"""The video as a file: ``video.mp4`` (H.264) by default, and the animations as MP4 (``--animation-format mp4``).

Each MP4 decodes back (PyAV, whose wheel ships ffmpeg) to the store's frame count and size;
frames not recorded are grey, odd sizes padded to even, never scaled.
"""

from __future__ import annotations

import av
import numpy as np
import pytest
from analyzer_cli_helpers import run
from synthetic_store import small_spec, video_shape, write_store

from analyzer import output, overlays
from analyzer.outputs.video import DEFAULT_FPS, VIDEO
from analyzer.run import analyze


def decoded(path) -> tuple[list[np.ndarray], av.video.stream.VideoStream]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        assert stream.codec_context.name == "h264"
        return frames, stream


@pytest.fixture(scope="module")
def partial_store(tmp_path_factory):
    """A store whose video holds frames 0-2 and 5 only (recording interrupted)."""
    path = tmp_path_factory.mktemp("video") / "store"
    spec = small_spec(video_frames=[0, 1, 2, 5], status="interrupted", video_value=200)
    write_store(path, spec)
    return path, spec


def test_video_mp4_is_written_by_default_and_decodes_to_the_stores_frames(partial_store, tmp_path):
    store, spec = partial_store
    result = run(store, "-o", tmp_path / "out", "--quiet")
    assert result.exit_code == 0, result.output
    path = tmp_path / "out" / VIDEO
    frames, stream = decoded(path)
    count, height, width, _ = video_shape(spec)
    assert len(frames) == count
    assert all(f.shape == (height, width, 3) for f in frames)
    assert float(stream.average_rate) == DEFAULT_FPS
    # a written frame keeps its colour; a frame not recorded is the neutral grey (its label aside)
    assert abs(int(np.median(frames[0])) - 200) <= 3
    assert abs(int(np.median(frames[4])) - overlays.NOT_RECORDED_GREY) <= 3
    assert f"]({VIDEO})" in (tmp_path / "out" / "attention_analysis_report.md").read_text()


def test_the_stores_frame_rate_is_used(tmp_path):
    write_store(tmp_path / "store", small_spec(attributes={"fps": 24}))
    written = analyze(tmp_path / "store", tmp_path / "out", progress=False, outputs="video")
    _, stream = decoded(written["video"])
    assert float(stream.average_rate) == 24


def test_a_store_without_video_writes_no_mp4(tmp_path):
    write_store(tmp_path / "store", small_spec(video_value=0, status="interrupted"))
    written = analyze(tmp_path / "store", tmp_path / "out", progress=False, outputs="video,report")
    assert "video" not in written and not (tmp_path / "out" / VIDEO).exists()


def test_animations_as_mp4(partial_store, tmp_path):
    store, spec = partial_store
    written = analyze(store, tmp_path / "out", progress=False, outputs="animation,words", animation_format="mp4",
                      step_fps=4.0)
    frames, stream = decoded(written["animation"])
    assert written["animation"].suffix == ".mp4" and len(frames) == spec.num_steps
    assert float(stream.average_rate) == 4.0
    assert frames[0].shape[0] % 2 == 0 and frames[0].shape[1] % 2 == 0
    for path in written["words"]:
        frames, _ = decoded(path)
        assert path.suffix == ".mp4" and len(frames) == video_shape(spec)[0]
    report = analyze(store, tmp_path / "again", progress=False, outputs="animation,report",
                     animation_format="mp4")["report"].read_text()
    assert "![" not in report.split("### The steps as an animation", 1)[1].split("###", 1)[0]  # linked, not shown


def test_cli_accepts_mp4(partial_store, tmp_path):
    store, _ = partial_store
    result = run(store, "-o", tmp_path / "out", "--quiet", "--outputs", "animation", "--animation-format", "mp4")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "attention_animation.mp4").is_file()


def test_odd_sizes_are_padded_not_scaled(tmp_path):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (33, 47, 3), dtype=np.uint8) for _ in range(3)]
    path = output.write_mp4(iter(frames), tmp_path / "odd.mp4", 16.0)
    back, _ = decoded(path)
    assert len(back) == 3 and back[0].shape == (34, 48, 3)
    padded = output.even_pad(frames[0])
    assert padded.shape == (34, 48, 3) and np.array_equal(padded[:33, :47], frames[0])
