"""``wan-analyze pack`` and zips in both layouts: values, dims, attributes and the analysis survive."""

from __future__ import annotations

import os
import re
import zipfile

import numpy as np
import pytest
import zarr
from click.testing import CliRunner
from synthetic_store import small_spec, write_store

from analyzer.cli import main
from analyzer.run import analyze
from shared import schema
from shared.schema import Attr
from shared.store import RESERVE_NAME, StoreError, open_store


def _arrays(root: zarr.Group) -> dict[str, tuple]:
    return {path: (member[:], tuple(member.metadata.dimension_names or ()), member.chunks)
            for path, member in root.members(max_depth=None) if isinstance(member, zarr.Array)}


def _same_store(a: zarr.Group, b: zarr.Group) -> None:
    assert a.attrs.asdict() == b.attrs.asdict()
    for branch in ("cond", "uncond"):
        if branch in a:
            assert a[branch].attrs.asdict() == b[branch].attrs.asdict()
    arrays_a, arrays_b = _arrays(a), _arrays(b)
    assert arrays_a.keys() == arrays_b.keys()
    for path, (values, dims, chunks) in arrays_a.items():
        assert np.array_equal(values, arrays_b[path][0], equal_nan=True), path
        assert (dims, chunks) == arrays_b[path][1:], path


def _report_numbers(folder) -> list[str]:
    text = (folder / "attention_analysis_report.md").read_text()
    return [line for line in text.splitlines() if not line.startswith("Store ")]


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "s.zarr"
    write_store(path, small_spec(branches=("cond", "uncond"), complete=[True, False, True], video_frames=[0, 1],
                                 status=schema.STATUS_INTERRUPTED))
    return path


def test_pack_writes_one_zip_that_reads_as_the_store(store, tmp_path):
    (store / ".unrelated.partial").write_bytes(b"half a write")
    result = CliRunner().invoke(main, ["pack", str(store), str(tmp_path / "s.zip"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert re.search(r"packed .* keys, [\d.]+ MiB, status 'interrupted'", result.output)
    names = zipfile.ZipFile(tmp_path / "s.zip").namelist()
    assert names[0] == "zarr.json"
    assert not [n for n in names if n.startswith(".") or "/." in n or RESERVE_NAME in n]
    packed = open_store(tmp_path / "s.zip")
    assert packed.metadata.consolidated_metadata is not None
    _same_store(open_store(store), packed)
    analyze(store, tmp_path / "from-dir", outputs="steps,words,report", progress=False)
    analyze(tmp_path / "s.zip", tmp_path / "from-zip", outputs="steps,words,report", progress=False)
    assert _report_numbers(tmp_path / "from-zip") == _report_numbers(tmp_path / "from-dir")


def test_a_zip_of_the_folder_opens_like_a_zip_of_its_contents(store, tmp_path):
    """``zip -r s.zip s.zarr``: the store in one folder inside the zip."""
    with zipfile.ZipFile(tmp_path / "folder.zip", "w") as archive:
        for path in sorted(store.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                archive.write(path, f"s.zarr/{path.relative_to(store)}")
    _same_store(open_store(store), open_store(tmp_path / "folder.zip"))
    analyze(tmp_path / "folder.zip", tmp_path / "out", outputs="steps,report", progress=False)
    assert (tmp_path / "out" / "attention_analysis_report.md").exists()
    # two stores in one zip: which one is meant cannot be guessed
    with zipfile.ZipFile(tmp_path / "two.zip", "w") as archive:
        for folder in ("a.zarr", "b.zarr"):
            archive.write(store / "zarr.json", f"{folder}/zarr.json")
    with pytest.raises(StoreError, match=r"holds 2 stores \('a.zarr', 'b.zarr'\); unzip it"):
        open_store(tmp_path / "two.zip")
    with zipfile.ZipFile(tmp_path / "none.zip", "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(StoreError, match="holds no zarr.json"):
        open_store(tmp_path / "none.zip")


def test_a_recording_in_progress_is_packed_only_with_force_and_marked_interrupted(tmp_path):
    source = tmp_path / "live.zarr"
    write_store(source, small_spec(status=schema.STATUS_RECORDING, complete=[True, True, False]))
    result = CliRunner().invoke(main, ["pack", str(source), str(tmp_path / "live.zip"), "--quiet"])
    assert result.exit_code == 1 and "still being recorded" in result.output and "--force" in result.output
    assert not (tmp_path / "live.zip").exists()
    result = CliRunner().invoke(main, ["pack", str(source), str(tmp_path / "live.zip"), "--quiet", "--force"])
    assert result.exit_code == 0, result.output
    assert "marked 'interrupted'" in result.output
    packed = open_store(tmp_path / "live.zip")
    assert packed.attrs[Attr.STATUS] == schema.STATUS_INTERRUPTED
    assert "--force" in packed.attrs[Attr.INTERRUPTED_BY]
    assert open_store(source).attrs[Attr.STATUS] == schema.STATUS_RECORDING  # the source is not touched
    assert packed[schema.STEP_COMPLETE.path][:].tolist() == [True, True, False]


@pytest.mark.parametrize("name, fragment", [
    ("exists.zip", "already exists; choose another output"),
    ("s.tar", "a pack is a .zip file"),
    ("missing-folder/s.zip", "does not exist"),
])
def test_pack_refuses_outputs_it_must_not_write(store, tmp_path, name, fragment):
    (tmp_path / "exists.zip").write_bytes(b"someone's file")
    result = CliRunner().invoke(main, ["pack", str(store), str(tmp_path / name), "--quiet"])
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and fragment in errors[0], result.output
    assert (tmp_path / "exists.zip").read_bytes() == b"someone's file"
    assert sorted(os.listdir(tmp_path)) == ["exists.zip", "s.zarr"]


def test_pack_of_a_missing_store_is_one_line(tmp_path):
    result = CliRunner().invoke(main, ["pack", str(tmp_path / "nope.zarr"), str(tmp_path / "out.zip")])
    assert result.exit_code == 1 and "Error: no store at" in result.output
    assert not (tmp_path / "out.zip").exists()


def test_pack_leaves_out_half_written_keys_and_never_removes_another_packs_file(store, tmp_path):
    stale = store / "cond" / "attention" / "c" / ".0.1f2e.partial"  # what a killed recorder leaves
    stale.write_bytes(b"half a chunk")
    theirs = tmp_path / ".busy.zip.partial"
    theirs.write_bytes(b"another pack at work")
    result = CliRunner().invoke(main, ["pack", str(store), str(tmp_path / "busy.zip"), "--quiet"])
    assert result.exit_code == 1 and "already exists (another pack writing" in result.output, result.output
    assert theirs.read_bytes() == b"another pack at work" and not (tmp_path / "busy.zip").exists()
    result = CliRunner().invoke(main, ["pack", str(store), str(tmp_path / "s.zip"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert not [n for n in zipfile.ZipFile(tmp_path / "s.zip").namelist() if "partial" in n]
