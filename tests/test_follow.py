"""``wan-analyze --follow`` against the real recorder in another process, writing its steps slowly."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest
from interrupted_runs import HERE, STEPS, start

from analyzer.follow import Progress, follow
from shared import schema


def test_follow_refreshes_as_steps_complete_and_ends_with_the_recording(tiny_model_dir, tmp_path):
    store = tmp_path / "slow.zarr"
    # each step's "complete" flag waits 1.5 s: its chunks are on disk well before the step counts
    recorder = start(tiny_model_dir, store, "never", 0,
                     extra_env={"WAN_TEST_SLOW_KEY": "steps/complete", "WAN_TEST_SLOW_S": "1.5"})
    deadline = time.monotonic() + 120
    while not (store / "zarr.json").exists():
        assert recorder.poll() is None and time.monotonic() < deadline, recorder.stderr.read()
        time.sleep(0.1)
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    follower = subprocess.run(
        [sys.executable, "-m", "analyzer.cli", str(store), "-o", str(tmp_path / "live"), "--follow",
         "--follow-interval", "0.2", "--quiet", "--outputs", "steps,words,report"],
        capture_output=True, text=True, env=env, cwd=str(HERE.parent), timeout=300)
    _, err = recorder.communicate(timeout=300)
    assert recorder.returncode == 0, err
    assert follower.returncode == 0, follower.stderr
    rounds = [(int(m[1]), m[2]) for m in re.finditer(r"follow: (\d+) of \d+ steps complete, status '(\w+)'",
                                                      follower.stderr)]
    counts = [count for count, _ in rounds]
    assert len(rounds) >= 3, follower.stderr  # it showed the recording while it ran, more than once
    assert counts == sorted(counts) and rounds[0][1] == schema.STATUS_RECORDING
    assert rounds[-1] == (STEPS, schema.STATUS_COMPLETE)
    report = (tmp_path / "live" / "attention_analysis_report.md").read_text()
    assert "Status: complete" in report
    assert len(list((tmp_path / "live").glob("attention_step_*.png"))) == STEPS


class _Store:
    """A scripted sequence of what the store looks like at each look."""

    def __init__(self, looks: list[Progress]):
        self.looks = looks
        self.analysed: list[Progress] = []


@pytest.mark.parametrize("looks, analysed", [
    # nothing complete yet: no analysis until there is; the final status gets one last analysis
    ([Progress("recording", 0, 4), Progress("recording", 2, 4), Progress("recording", 2, 4),
      Progress("recording", 4, 4), Progress("complete", 4, 4)], [2, 4, 4]),
    # already finished: one analysis
    ([Progress("complete", 3, 3)], [3]),
    # interrupted with what it had: the last analysis says so
    ([Progress("recording", 1, 5), Progress("interrupted", 1, 5)], [1, 1]),
])
def test_follow_analyses_only_when_something_changed(monkeypatch, tmp_path, looks, analysed):
    from analyzer import follow as module

    script = _Store(list(looks))
    current = {}

    def look(location, storage_options=None):
        current["now"] = script.looks.pop(0)
        return current["now"]

    def fake_analyze(location, out_dir, **options):
        script.analysed.append(current["now"].complete)
        return {"report": "r"}

    monkeypatch.setattr(module, "recording_progress", look)
    monkeypatch.setattr(module, "analyze", fake_analyze)
    assert follow("store", tmp_path, interval=0, sleep=lambda s: None, say=lambda line: None) == {"report": "r"}
    assert script.analysed == analysed
