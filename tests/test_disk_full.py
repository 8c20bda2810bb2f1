"""Write errors at every phase: a full disk (real tmpfs, and a file system that fails after N bytes) and a
read-only one. Each gives one ``Error:`` line naming the store and the cause, never a traceback; the
status says "failed" with the reason wherever the store can still be written; complete steps stay intact.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import zarr

from shared import schema
from interrupted_runs import STEPS, assert_complete_steps_equal_reference, start, wait_paused


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, err
    return lines[0]


def _run(model_dir, out, env=None, key="never", count=0):
    proc = start(model_dir, out, key, count, extra_env=env)
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err


def _phase_budgets(reference_dir: Path) -> dict[str, int]:
    """Bytes written before each phase, from the write log of an uninterrupted run (tests/conftest.py)."""
    log = [line.split(" ", 1) for line in Path(str(reference_dir) + ".writes").read_text().splitlines()]

    def before(key: str, count: int) -> int:
        return [int(n) for n, path in log if key in path][count - 1]

    return {"creation": 2_000, "steps": before("steps/complete/c/0", 3), "video": before("/video/c/", 3)}


@pytest.mark.parametrize("phase", ["creation", "steps", "video"])
def test_a_file_system_that_fills_up_at_each_phase(tiny_model_dir, reference, tmp_path, phase):
    out = tmp_path / "full.zarr"
    budget = _phase_budgets(Path(reference.store.root))[phase]
    code, err = _run(tiny_model_dir, out, {"WAN_TEST_FAIL_AFTER_BYTES": str(budget)})
    assert code == 1, err
    line = _one_error_line(err)
    assert str(out) in line and "No space left on device" in line, line
    if phase == "creation":
        assert "cannot create the store" in line
        assert not out.exists()  # what the failed creation wrote is removed; nothing else was there
        return
    root = zarr.open_group(str(out), mode="r")
    assert root.attrs[schema.Attr.STATUS] == schema.STATUS_FAILED
    assert "No space left on device" in root.attrs[schema.Attr.ERROR]
    complete = assert_complete_steps_equal_reference(out, reference)
    if phase == "video":
        assert complete == list(range(STEPS))
    else:
        assert 0 < len(complete) < STEPS


def test_a_read_only_file_system_fails_with_one_line(tiny_model_dir, reference, tmp_path):
    out = tmp_path / "ro.zarr"
    code, err = _run(tiny_model_dir, out, {"WAN_TEST_FAIL_AFTER_BYTES": "0", "WAN_TEST_FAIL_ERRNO": "EROFS"})
    assert code == 1
    assert "Read-only file system" in _one_error_line(err)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root; the fake file system covers this")
@pytest.mark.parametrize("size_kib, phase", [(1100, "creation"), (1300, "recording")])
def test_a_real_full_disk(tiny_model_dir, reference, tmp_path, tmpfs, size_kib, phase):
    # The store holds ~330 KiB of files on tmpfs plus the 1 MiB it sets aside while recording.
    disk = tmpfs(size_kib)
    out = disk / "s.zarr"
    code, err = _run(tiny_model_dir, out)
    assert code == 1, err
    line = _one_error_line(err)
    assert str(out) in line and "No space left on device" in line, line
    if phase == "creation":
        assert "cannot create the store" in line and not out.exists()
        return
    root = zarr.open_group(str(out), mode="r")
    assert root.attrs[schema.Attr.STATUS] == schema.STATUS_FAILED  # the reserve made room for it
    assert_complete_steps_equal_reference(out, reference)


@pytest.mark.skipif(os.geteuid() != 0, reason="remounting needs root; the fake EROFS test covers the message")
def test_a_file_system_remounted_read_only_mid_run(tiny_model_dir, reference, tmp_path, tmpfs):
    disk = tmpfs(16 * 1024)
    out = disk / "s.zarr"
    proc = start(tiny_model_dir, out, "steps/complete/c/0", 3)  # held until communicate(), after the remount
    wait_paused(proc)
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err
    line = _one_error_line(err)
    assert str(out) in line and "Read-only file system" in line and "could not be updated" in line, line
    root = zarr.open_group(str(out), mode="r")
    assert root.attrs[schema.Attr.STATUS] == schema.STATUS_RECORDING  # nothing can be written there any more
    assert assert_complete_steps_equal_reference(out, reference) == [0, 1]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root; the fake EROFS test covers the message")
def test_an_output_on_a_read_only_file_system(tiny_model_dir, tmp_path, tmpfs):
    disk = tmpfs(1024, "ro")
    code, err = _run(tiny_model_dir, disk / "s.zarr")
    assert code == 1
    line = _one_error_line(err)
    assert "cannot create the store" in line and ("Read-only file system" in line or "not writable" in line), line
    assert not (disk / "s.zarr").exists()
