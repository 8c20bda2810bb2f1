"""The kill matrix: SIGKILL, SIGTERM, SIGINT (once, twice) and SIGHUP at known moments of a real recording.

Each run is the real ``wan-record`` CLI in a child process (tests/record_until_paused.py),
paused at a chosen write so that the signal lands at a known point. After it, the store
must open (unless it was killed while being created), every step marked complete must
equal, byte for byte, the same step of an uninterrupted run with the same seed, and
wan-analyze must render what was kept and name what is missing.
"""

from __future__ import annotations

import signal
import time

import pytest
import zarr
from interrupted_runs import STEPS, analyze, assert_complete_steps_equal_reference, start, wait_paused

from shared import schema
from shared.ownership import LOCK_NAME
from shared.store import StoreError, open_store

@pytest.mark.parametrize("after_steps", [0, 2, 5])
def test_sigkill_after_a_step_keeps_every_complete_step(tiny_model_dir, reference, tmp_path, after_steps):
    out = tmp_path / "killed.zarr"
    proc = start(tiny_model_dir, out, "steps/complete/c/0", after_steps + 1)
    wait_paused(proc)
    proc.kill()
    proc.wait()
    complete = assert_complete_steps_equal_reference(out, reference)
    assert complete == list(range(after_steps))
    root = zarr.open_group(str(out), mode="r")
    assert root.attrs[schema.Attr.STATUS] == schema.STATUS_RECORDING  # nobody could mark it
    result = analyze(out, tmp_path)
    if after_steps == 0:
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert "complete" in result.output
    else:
        assert result.exit_code == 0, result.output
        report = (tmp_path / "analysis" / "attention_analysis_report.md").read_text()
        first_missing = after_steps
        assert f"{first_missing}-{STEPS - 1}" in report or f"{first_missing}" in report
        steps_drawn = sorted((tmp_path / "analysis").glob("attention_step_*.png"))
        assert len(steps_drawn) == after_steps


def test_sigkill_during_creation_leaves_a_store_that_overwrite_recognises(tiny_model_dir, reference, tmp_path):
    out = tmp_path / "half.zarr"
    proc = start(tiny_model_dir, out, "cond/attention/zarr.json", 1)
    wait_paused(proc)
    proc.kill()
    proc.wait()
    with pytest.raises(StoreError, match="lacks the array"):
        open_store(out)
    assert (out / LOCK_NAME).exists()  # the owner record of a dead process: a stale lock
    again = start(tiny_model_dir, out, "never", 0, extra=["--overwrite"])
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert "no longer running" in err
    assert assert_complete_steps_equal_reference(out, reference) == list(range(STEPS))


def test_sigkill_during_the_video_write_keeps_the_steps_and_says_which_frames_exist(
        tiny_model_dir, reference, tmp_path):
    out = tmp_path / "video.zarr"
    # Held at the second flag write: one frame is marked on disk and no other mark can land, whatever frame
    # chunks the writers finish meanwhile (a pause at a frame's chunk left the marks racing the kill).
    proc = start(tiny_model_dir, out, f"/{schema.VIDEO_WRITTEN.path}/c/", 2)
    wait_paused(proc)
    proc.kill()
    proc.wait()
    complete = assert_complete_steps_equal_reference(out, reference)
    assert complete == list(range(STEPS))
    written = zarr.open_group(str(out), mode="r")[schema.VIDEO_WRITTEN.path][:]
    assert written.sum() == 1 < len(written)
    result = analyze(out, tmp_path)
    assert result.exit_code == 0, result.output
    report = (tmp_path / "analysis" / "attention_analysis_report.md").read_text()
    assert "partial" in report.lower()


@pytest.mark.parametrize("signals, gap", [
    ([signal.SIGTERM], 0.0),
    ([signal.SIGHUP], 0.0),
    ([signal.SIGINT], 0.0),
    ([signal.SIGINT, signal.SIGINT], 0.0),
    ([signal.SIGINT, signal.SIGINT], 0.7),
    ([signal.SIGTERM, signal.SIGINT, signal.SIGTERM], 0.2),
])
def test_stop_signals_flush_and_mark_the_store_interrupted(tiny_model_dir, reference, tmp_path, signals, gap):
    out = tmp_path / "stopped.zarr"
    # Paused in the writer thread before step 2's flag: the main thread is computing or
    # waiting on the queue when the signal lands; the queue holds step 2 and more.
    proc = start(tiny_model_dir, out, "steps/complete/c/0", 3)  # held until communicate(), after the signals
    wait_paused(proc)
    for i, signum in enumerate(signals):
        if i:
            time.sleep(gap)
        proc.send_signal(signum)
    _, err = proc.communicate(timeout=300)
    first = signal.Signals(signals[0])
    assert proc.returncode == 128 + first.value, err
    error_lines = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1 and f"interrupted by {first.name}" in error_lines[0], err
    assert "Traceback" not in err
    root = zarr.open_group(str(out), mode="r")
    assert root.attrs[schema.Attr.STATUS] == schema.STATUS_INTERRUPTED
    assert root.attrs[schema.Attr.INTERRUPTED_BY] == first.name
    assert root.attrs[schema.Attr.ENDED_AT]
    assert not (out / LOCK_NAME).exists()
    complete = assert_complete_steps_equal_reference(out, reference)
    assert len(complete) >= 2  # the two flagged before the pause, plus what the flush wrote
    result = analyze(out, tmp_path)
    assert result.exit_code == 0, result.output


def test_a_second_recorder_cannot_overwrite_a_live_recording(tiny_model_dir, reference, tmp_path):
    out = tmp_path / "live.zarr"
    first = start(tiny_model_dir, out, "steps/complete/c/0", 2)  # held until the second has tried
    wait_paused(first)
    second = start(tiny_model_dir, out, "never", 0, extra=["--overwrite"])
    _, err = second.communicate(timeout=300)
    assert second.returncode == 1, err
    lines = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "is being recorded by pid" in lines[0] and str(first.pid) in lines[0], err
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    root = zarr.open_group(str(out), mode="r")
    assert root.attrs[schema.Attr.STATUS] == schema.STATUS_COMPLETE
    assert assert_complete_steps_equal_reference(out, reference) == list(range(STEPS))
