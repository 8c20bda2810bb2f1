"""Running the real wan-record CLI in a child process that pauses at a chosen write, and checking what it left."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from shared import schema
from shared.store import open_store

HERE = Path(__file__).parent
DRIVER = HERE / "record_until_paused.py"
STEPS = 6


def _args(model_dir, out) -> list[str]:
    return ["--model", str(model_dir), "--device", "cpu", "--dtype", "float32", "--prompt", "a cat on the grass",
            "--height", "32", "--width", "48", "--frames", "9", "--steps", str(STEPS), "--seed", "3", str(out)]


_started: list[subprocess.Popen] = []


def start(model_dir, out, key: str, count: int, pause: float = 240.0, extra=(), extra_env=None) -> subprocess.Popen:
    """The recorder in a child process, held at the ``count``-th write of ``key`` until the test closes its stdin
    (``communicate()`` does) or ``pause`` seconds pass; see tests/record_until_paused.py."""
    env = {**os.environ, "PYTHONPATH": str(HERE.parent), **(extra_env or {})}
    proc = subprocess.Popen([sys.executable, str(DRIVER), key, str(count), str(pause), "--", *extra,
                             *_args(model_dir, out)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=str(HERE.parent))
    _started.append(proc)
    return proc


def kill_leftovers() -> None:
    """Kill the recorders a failed test left behind (paused ones would wake up in a later test's time)."""
    while _started:
        proc = _started.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            pipe.close()


def wait_paused(proc: subprocess.Popen, timeout: float = 180.0) -> str:
    """The key the recorder is held at; fails (and kills it) when it ends or has not paused within ``timeout``.

    Lines are read in a thread, which stops at the pause: a plain ``readline`` would wait
    for ever on a child that hangs before it.
    """
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in proc.stdout:
            lines.put(line)
            if line.startswith("PAUSED"):
                return
        lines.put("")  # the end: the child exited

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            proc.kill()
            line = f"(nothing within {timeout:.0f} s)"
            break
        if not line or line.startswith("PAUSED"):
            break
    reader.join()
    assert line.startswith("PAUSED"), f"never paused {line}; exit {proc.wait()}: {proc.stderr.read()[-2000:]}"
    return line.split(" ", 1)[1].strip()


def assert_complete_steps_equal_reference(out: Path, reference) -> list[int]:
    root = open_store(out)
    complete = np.flatnonzero(root[schema.STEP_COMPLETE.path][:]).tolist()
    for path in (schema.attention("cond").path, schema.padding_mass("cond").path, schema.head_entropy("cond").path,
                 schema.head_token_mass("cond").path, schema.STEP_TIMESTEP.path, schema.STEP_INDEX.path):
        for step in complete:
            got, want = root[path][step], reference[path][step]
            assert np.asarray(got).tobytes() == np.asarray(want).tobytes(), (path, step)
    written = root[schema.VIDEO_WRITTEN.path][:]
    for frame in np.flatnonzero(written):
        assert np.array_equal(root[schema.VIDEO.path][frame], reference[schema.VIDEO.path][frame]), frame
    return complete


def analyze(out: Path, tmp_path: Path):
    from click.testing import CliRunner

    from analyzer.cli import main

    return CliRunner().invoke(main, [str(out), "-o", str(tmp_path / "analysis"), "--quiet",
                                     "--outputs", "report,steps,words"])
