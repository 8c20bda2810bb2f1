"""``wan-analyze validate``: a clean store passes; a damaged chunk, a lost chunk, a missing store fail, by name."""

from __future__ import annotations

import re

import functools
import http.server
import os
import threading
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from corrupt import ATTENTION, PADDING, chunk_file, chunk_key, flip_bit
from synthetic_store import small_spec, write_store

from analyzer.commands.validate import validate_command
from shared import schema
from shared.check import check_store


def run(*args):
    return CliRunner().invoke(validate_command, [*map(str, args), "--quiet"])


@pytest.fixture
def store(tmp_path) -> Path:
    path = tmp_path / "s.zarr"
    write_store(path, small_spec())
    return path


@pytest.fixture
def served(tmp_path):
    """``tmp_path`` over HTTP on 127.0.0.1; yields the base URL."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_clean_store_passes_with_a_summary(store):
    result = run(store)
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"wan-attention-store {schema.SCHEMA_VERSION}" in out and "complete" in out
    assert "3 of 3 complete" in out
    assert "13 of 13 frames written" in out
    assert re.search(r"(\d+) of \1 present decoded", out), out
    assert "problems:  none" in out
    report = check_store(store)
    assert report.ok and report.complete_steps == [0, 1, 2] and report.bytes_checked > 0


def test_a_flipped_bit_names_the_array_and_the_chunk(store):
    flip_bit(chunk_file(store, ATTENTION), 40, 3)
    result = run(store)
    assert result.exit_code == 1, result.output
    key = chunk_key(ATTENTION)  # c/1/0/0/0/0/0
    lines = [line for line in result.output.splitlines() if line.startswith(f"{ATTENTION} {key}:")]
    assert len(lines) == 1, result.output
    assert "checksum" in lines[0]
    assert "problems:  1" in result.output
    # --quick decodes nothing: the same store passes
    quick = run(store, "--quick")
    assert quick.exit_code == 0, quick.output
    assert "not decoded (--quick)" in quick.output


def test_a_deleted_chunk_of_a_complete_step_is_a_problem_even_quick(store):
    path = Path(store) / PADDING / "c/2/1/0/0/0"
    os.remove(path)
    for extra in ((), ("--quick",)):
        result = run(store, *extra)
        assert result.exit_code == 1, result.output
        assert f"{PADDING} c/2/1/0/0/0: step 2 is marked complete" in result.output


def test_a_chunk_missing_from_an_incomplete_step_is_no_problem(tmp_path):
    path = tmp_path / "partial.zarr"
    write_store(path, small_spec(complete=[True, True, False], status="interrupted"))
    result = run(path)
    assert result.exit_code == 0, result.output
    assert "2 of 3 complete (pipeline steps 0-1)" in result.output


def test_extra_keys_are_notes_not_failures(store):
    (Path(store) / "stray.txt").write_text("x")
    result = run(store)
    assert result.exit_code == 0, result.output
    assert "note:" in result.output and "stray.txt" in result.output


@pytest.mark.parametrize("make", ["missing", "plain directory", "plain file"])
def test_no_store_is_one_line(tmp_path, make):
    target = tmp_path / "x"
    if make == "plain directory":
        target.mkdir()
        (target / "a.txt").write_text("hello")
    elif make == "plain file":
        target.write_text("hello")
    result = run(target)
    assert result.exit_code not in (0, None)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output


def _zip(store: Path, target: Path, folder: bool) -> Path:
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(store.rglob("*")):
            if path.is_file():
                name = path.relative_to(store.parent if folder else store).as_posix()
                archive.write(path, name)
    return target


@pytest.mark.parametrize("folder", [False, True], ids=["keys at the root", "one folder"])
def test_a_zip_validates_and_its_damage_is_found(tmp_path, store, folder):
    result = run(_zip(store, tmp_path / "clean.zip", folder))
    assert result.exit_code == 0, result.output
    assert re.search(r"(\d+) of \1 present decoded", result.output), result.output
    flip_bit(chunk_file(store, ATTENTION), 40, 3)
    result = run(_zip(store, tmp_path / "damaged.zip", folder))
    assert result.exit_code == 1, result.output
    assert f"{ATTENTION} {chunk_key(ATTENTION)}:" in result.output


def test_over_http(tmp_path, served):
    write_store(tmp_path / "s.zarr", small_spec())
    result = run(f"{served}/s.zarr")
    assert result.exit_code == 0, result.output
    assert re.search(r"(\d+) of \1 present decoded", result.output), result.output
    flip_bit(chunk_file(tmp_path / "s.zarr", ATTENTION), 40, 3)
    os.remove(tmp_path / "s.zarr" / PADDING / "c/2/1/0/0/0")
    result = run(f"{served}/s.zarr")
    assert result.exit_code == 1, result.output
    assert f"{ATTENTION} {chunk_key(ATTENTION)}:" in result.output
    assert f"{PADDING} c/2/1/0/0/0:" in result.output
    assert run(f"{served}/missing.zarr").exit_code not in (0, None)


def test_storage_option_on_a_local_path_is_refused(store):
    result = CliRunner().invoke(validate_command, [str(store), "--storage-option", "anon=true"])
    assert result.exit_code not in (0, None)
    assert "--storage-option applies to URLs" in result.output


def test_nothing_is_written(store):
    flip_bit(chunk_file(store, ATTENTION), 40, 3)
    before = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in Path(store).rglob("*")}
    run(store)
    after = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in Path(store).rglob("*")}
    assert before == after


def test_a_damaged_step_flag_is_one_problem(store):
    flip_bit(Path(store) / "steps/complete/c/0", 20, 1)
    result = run(store)
    assert result.exit_code == 1, result.output
    assert result.output.count("steps/complete c/0:") == 1, result.output


def test_a_hostile_store_text_is_escaped(tmp_path):
    path = tmp_path / "s.zarr"
    write_store(path, small_spec())
    os.remove(path / PADDING / "c/2/1/0/0/0")
    hostile = tmp_path / "h\x1b[31m.zarr"
    os.rename(path, hostile)
    result = run(hostile)
    assert "\x1b" not in result.output and "\\x1b" in result.output
