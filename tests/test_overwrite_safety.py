"""--overwrite replaces only a wan-attention store that no live process is writing; creation has one winner."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import zarr

from shared import schema
from shared.ownership import LOCK_NAME
from shared.store import BranchLayout, StoreError, StoreLayout, create_recording_store, create_store

LAYOUT = StoreLayout(num_steps=2, layer_blocks=(0,), grid=(1, 2, 2), num_heads=1,
                     branches=(BranchLayout("cond", 3),), video_shape=(1, 16, 16, 3),
                     attributes={schema.Attr.PROMPT: "first"})


def _files(directory: Path) -> set[str]:
    return {str(p.relative_to(directory)) for p in directory.rglob("*")}


@pytest.mark.parametrize("path", ["", "   "])
def test_an_empty_output_path_is_refused(path):
    with pytest.raises(StoreError, match="output path is empty"):
        create_recording_store(path, LAYOUT, overwrite=True)


def test_the_working_directory_and_its_parents_are_never_replaced(tmp_path, monkeypatch):
    work = tmp_path / "work" / "here"
    work.mkdir(parents=True)
    (work / "precious.txt").write_text("keep me")
    monkeypatch.chdir(work)
    for path in (".", "..", str(tmp_path), "./", str(work)):
        with pytest.raises(StoreError, match="working directory or one of its parents"):
            create_recording_store(path, LAYOUT, overwrite=True)
    assert (work / "precious.txt").read_text() == "keep me"


def test_a_directory_that_is_not_a_store_is_never_replaced(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "holiday.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(StoreError, match="not a wan-attention store"):
        create_recording_store(folder, LAYOUT, overwrite=True)
    assert _files(folder) == {"holiday.jpg"}
    other = tmp_path / "other.zarr"
    zarr.open_group(str(other), mode="w").attrs["schema"] = "someone-elses"
    before = _files(other)
    with pytest.raises(StoreError, match="not a wan-attention store"):
        create_recording_store(other, LAYOUT, overwrite=True)
    assert _files(other) == before
    afile = tmp_path / "notes.txt"
    afile.write_text("x")
    with pytest.raises(StoreError, match="not a wan-attention store"):
        create_recording_store(afile, LAYOUT, overwrite=True)
    assert afile.read_text() == "x"


def test_an_empty_directory_is_taken_with_overwrite_only(tmp_path):
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(StoreError, match="already exists"):
        create_recording_store(tmp_path / "empty.zarr", LAYOUT)
    create_recording_store(tmp_path / "empty.zarr", LAYOUT, overwrite=True).release()
    assert zarr.open_group(str(tmp_path / "empty.zarr"), mode="r").attrs[schema.Attr.SCHEMA] == schema.SCHEMA_NAME


def test_an_existing_path_is_refused_without_overwrite(tmp_path):
    create_store(tmp_path / "s.zarr", LAYOUT)
    with pytest.raises(StoreError, match="already exists"):
        create_recording_store(tmp_path / "s.zarr", LAYOUT)


def test_overwrite_replaces_a_finished_store_and_keeps_files_it_did_not_make(tmp_path):
    path = tmp_path / "s.zarr"
    create_store(path, LAYOUT)
    (path / "README-by-user.txt").write_text("mine")
    new = StoreLayout(**{**LAYOUT.__dict__, "attributes": {schema.Attr.PROMPT: "second"}})
    store = create_recording_store(path, new, overwrite=True)
    store.release()
    assert "replaced a store" in store.replaced
    assert zarr.open_group(str(path), mode="r").attrs[schema.Attr.PROMPT] == "second"
    assert (path / "README-by-user.txt").read_text() == "mine"


def test_a_live_recording_is_never_replaced(tmp_path):
    path = tmp_path / "live.zarr"
    live = create_recording_store(path, LAYOUT)
    before = {p: (path / p).stat().st_mtime_ns for p in _files(path) if (path / p).is_file()}
    try:
        # Another process: flock is per open file, so this is what a second wan-record sees.
        code = textwrap.dedent(f"""
            from shared.store import create_recording_store, StoreError, StoreLayout
            import pickle, sys
            try:
                create_recording_store({str(path)!r}, pickle.loads({__import__('pickle').dumps(LAYOUT)!r}),
                                       overwrite=True)
            except StoreError as exc:
                print(exc); sys.exit(3)
        """)
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                cwd=str(Path(__file__).parent.parent))
        assert result.returncode == 3, result.stderr
        assert "is being recorded by pid" in result.stdout and str(os.getpid()) in result.stdout
        after = {p: (path / p).stat().st_mtime_ns for p in _files(path) if (path / p).is_file()}
        assert after == before
    finally:
        live.release()
    assert not (path / LOCK_NAME).exists()


def test_a_stale_lock_from_a_dead_process_is_recognised_and_reported(tmp_path):
    path = tmp_path / "stale.zarr"
    code = ("from shared.store import create_recording_store; import pickle, os; "
            f"create_recording_store({str(path)!r}, pickle.loads({__import__('pickle').dumps(LAYOUT)!r})); "
            "os._exit(0)")  # dies holding the lock, as after SIGKILL
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(Path(__file__).parent.parent))
    assert (path / LOCK_NAME).exists()
    assert zarr.open_group(str(path), mode="r").attrs[schema.Attr.STATUS] == schema.STATUS_RECORDING
    store = create_recording_store(path, LAYOUT, overwrite=True)
    store.release()
    assert "left at status 'recording'" in store.replaced and "no longer running" in store.replaced


def _race(path: str, prompt: str, start, results) -> None:
    layout = StoreLayout(**{**LAYOUT.__dict__, "attributes": {schema.Attr.PROMPT: prompt}})
    start.wait()
    try:
        create_recording_store(path, layout).release()
        results.put((prompt, "won"))
    except StoreError as exc:
        results.put((prompt, str(exc)))


@pytest.mark.parametrize("attempt", range(8))
def test_two_creators_at_once_exactly_one_wins(tmp_path, attempt):
    path = str(tmp_path / "race.zarr")
    ctx = multiprocessing.get_context("fork")
    start, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(path, name, start, results)) for name in ("alpha", "beta")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    outcome = dict(results.get(timeout=5) for _ in procs)
    winners = [name for name, what in outcome.items() if what == "won"]
    assert len(winners) == 1, outcome
    loser = next(what for what in outcome.values() if what != "won")
    assert "already exists" in loser and "\n" not in loser
    assert zarr.open_group(path, mode="r").attrs[schema.Attr.PROMPT] == winners[0]
