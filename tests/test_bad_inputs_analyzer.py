"""Every bad wan-analyze invocation: one `Error:` line, exit 1 (2 for click usage errors), nothing written.

Each row is a command line with placeholders ({store}, {out}, {file}, {dir}, {nope})
filled in per test; the run happens in an empty working directory, and every file
under the test's folder is compared before and after.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from synthetic_store import small_spec, write_store

from analyzer.cli import main

FPS = "frames per second, got"
USAGE = 2

CASES = [
    # frame rates: NaN, tiny, infinite, huge
    *[(["{store}", "-o", "{out}", f"--{kind}-fps", value], 1,
       f"{kind} frame rate (--{kind}-fps) must be between 0.1 and 100 {FPS} {shown}")
      for kind in ("step", "word")
      for value, shown in (("nan", "nan"), ("1e-9", "1e-09"), ("inf", "inf"), ("1000", "1000.0"))],
    # sizes of the pictures
    (["{store}", "-o", "{out}", "--sheet-frames", "1000000000"], 1,
     "sheet frames must be a whole number between 1 and 64, got 1000000000"),
    (["{store}", "-o", "{out}", "--sheet-frames", "0"], 1,
     "sheet frames must be a whole number between 1 and 64, got 0"),
    (["{store}", "-o", "{out}", "--overlay-width", "100000000"], 1,
     "overlay width must be a whole number between 16 and 4096, got 100000000"),
    (["{store}", "-o", "{out}", "--overlay-width", "8"], 1,
     "overlay width must be a whole number between 16 and 4096, got 8"),
    (["{store}", "-o", "{out}", "--heatmap-rows", "1000000000"], 1,
     "heatmap rows must be a whole number between 2 and 4096, got 1000000000"),
    # output directories no analysis may use
    (["{store}", "-o", ""], 1, "the output path is empty; name a directory for the pictures and the report"),
    (["{store}", "-o", "   ", "--overwrite"], 1, "the output path is empty"),
    (["{store}", "-o", "/proc/wan-analyze-test"], 1,
     "is under /proc, a kernel file system; choose a directory on disk"),
    (["{store}", "-o", "/proc", "--overwrite"], 1, "output directory /proc is under /proc, a kernel file system"),
    (["{store}", "-o", "/sys/kernel/wan-analyze"], 1, "is under /sys, a kernel file system"),
    (["{store}", "-o", "{store}/pictures"], 1, "is inside the store"),
    # stores that are not there, or not stores
    (["{nope}", "-o", "{out}"], 1, "no store at"),
    (["{file}", "-o", "{out}"], 1, "is not a readable Zarr store"),
    (["{dir}", "-o", "{out}"], 1, "is not a readable Zarr store"),
    (["info", "{nope}"], 1, "no store at"),
    (["info", "{file}"], 1, "is not a readable Zarr store"),
    # names the store does not have
    (["{store}", "-o", "{out}", "--words", "dog"], 1,
     "word 'dog' is not in the prompt; its words are 'a', 'red', 'cats'"),
    (["{store}", "-o", "{out}", "--tokens", "99"], 1, "token 99 does not exist; tokens are 0..5"),
    (["{store}", "-o", "{out}", "--tokens", "\u2581dog"], 1, "token '\u2581dog' is not in the prompt"),
    (["{store}", "-o", "{out}", "--steps", "9"], 1, "step 9 was not recorded; recorded steps: 0-2"),
    (["{store}", "-o", "{out}", "--steps", "7-9"], 1, "no step in '7-9' was recorded; recorded: 0-2"),
    (["{store}", "-o", "{out}", "--steps", "x"], 1, "cannot read step 'x'"),
    (["{store}", "-o", "{out}", "--layers", "7"], 1, "layer 7 was not recorded; recorded blocks: 0, 3"),
    (["{store}", "-o", "{out}", "--outputs", "pictures"], 1, "unknown output 'pictures'"),
    (["{store}", "-o", "{out}", "--branch", "uncond"], 1,
     "branch 'uncond' was not recorded; this store has cond"),
    # malformed options: click's usage errors
    (["{store}", "-o", "{out}", "--step-fps", "fast"], USAGE, "Invalid value for '--step-fps'"),
    (["{store}", "-o", "{out}", "--sheet-frames", "1.5"], USAGE, "Invalid value for '--sheet-frames'"),
    (["{store}"], USAGE, "Missing option '-o'"),
    (["{store}", "-o", "{out}", "--branch", "sideways"], USAGE, "Invalid value for '--branch'"),
    (["{store}", "-o", "{out}", "--normalize", "loud"], USAGE, "Invalid value for '--normalize'"),
    (["{store}", "-o", "{out}", "--image-format", "bmp"], USAGE, "Invalid value for '--image-format'"),
    (["{store}", "-o", "{out}", "--no-such-flag"], USAGE, "No such option '--no-such-flag'"),
    (["{store}", "-o", "{file}"], USAGE, "plain.txt' is a file"),
]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("bad-inputs") / "store"
    write_store(path, small_spec())
    return path


def _snapshot(*roots) -> dict:
    """Every file and folder under ``roots`` with its size and modification time."""
    entries = {}
    for root in roots:
        for path in [root, *root.rglob("*")]:
            info = path.lstat()
            entries[path] = (info.st_size, info.st_mtime_ns)
    return entries


@pytest.mark.parametrize("template, code, message", CASES, ids=[" ".join(c[0])[:60] for c in CASES])
def test_bad_invocation(store, tmp_path, monkeypatch, template, code, message):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (tmp_path / "plain.txt").write_text("not a store")
    (tmp_path / "empty").mkdir()
    places = {"store": str(store), "out": str(tmp_path / "out"), "file": str(tmp_path / "plain.txt"),
              "dir": str(tmp_path / "empty"), "nope": str(tmp_path / "nope")}
    args = [a.format(**places) for a in template]
    monkeypatch.chdir(cwd)  # "-o ''" would mean the working directory: it must stay empty
    before = _snapshot(tmp_path, store.parent)

    result = CliRunner().invoke(main, args)

    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1 and errors[0].strip() != "Error:", result.output
    if code == 1:
        assert lines == errors, result.output  # our own errors are exactly one line
    assert message in errors[0], errors[0]
    # nothing written anywhere, the output directory included: input is checked before any work
    assert _snapshot(tmp_path, store.parent) == before
    assert not (tmp_path / "out").exists()


def test_table_is_large_and_mixed():
    assert len(CASES) >= 20
    assert {code for _, code, _ in CASES} == {1, USAGE}


def test_out_of_memory_is_one_line(store, tmp_path, monkeypatch):
    import analyzer.run

    def too_big(*args, **kwargs):
        raise MemoryError("Unable to allocate 1.25 TiB for an array with shape (79872, 4096)")

    monkeypatch.setattr(analyzer.run, "analyze", too_big)
    result = CliRunner().invoke(main, [str(store), "-o", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().splitlines() == [
        f"Error: out of memory while analysing {store}: Unable to allocate 1.25 TiB for an array with shape "
        f"(79872, 4096); try --steps, --layers or fewer --outputs, or a machine with more memory"]
