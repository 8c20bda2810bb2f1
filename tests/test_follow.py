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
    store, gate = tmp_path / "slow.zarr", tmp_path / "gate"
    gate.mkdir()
    # The recorder writes step n's "complete" flag only once the test has put go-<n> in the gate, which it
    # does after each of the follower's rounds: the follower sees every step arrive, on any machine.
    recorder = start(tiny_model_dir, store, "never", 0,
                     extra_env={"WAN_TEST_GATE_KEY": "steps/complete/c/", "WAN_TEST_GATE_DIR": str(gate)})
    (gate / "go-1").touch()
    deadline = time.monotonic() + 120
    while not (store / "zarr.json").exists():
        assert recorder.poll() is None and time.monotonic() < deadline, recorder.stderr.read()
        time.sleep(0.1)
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    follower = subprocess.Popen(
        [sys.executable, "-m", "analyzer.cli", str(store), "-o", str(tmp_path / "live"), "--follow",
         "--follow-interval", "0.2", "--quiet", "--outputs", "steps,words,report"],
        stderr=subprocess.PIPE, text=True, env=env, cwd=str(HERE.parent))
    rounds, said = [], []
    for line in follower.stderr:
        said.append(line)
        found = re.match(r"follow: (\d+) of \d+ steps complete, status '(\w+)'", line)
        if found:
            rounds.append((int(found[1]), found[2]))
            (gate / f"go-{len(rounds) + 1}").touch()
    assert follower.wait(timeout=300) == 0, "".join(said)
    _, err = recorder.communicate(timeout=300)
    assert recorder.returncode == 0, err
    counts = [count for count, _ in rounds]
    # one round per step while it recorded, then the final status (once more if it came after the last step)
    assert counts[:STEPS] == list(range(1, STEPS + 1)), "".join(said)
    assert {status for _, status in rounds[:STEPS - 1]} == {schema.STATUS_RECORDING}
    assert rounds[-1] == (STEPS, schema.STATUS_COMPLETE) and len(rounds) in (STEPS, STEPS + 1)
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
