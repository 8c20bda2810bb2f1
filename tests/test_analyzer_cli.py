"""The command line: the default command, `info`, and one clear line for every bad input."""

from __future__ import annotations

import shutil

import pytest
import zarr
from analyzer_cli_helpers import assert_one_line_error, run
from synthetic_store import small_spec, write_store

from shared.schema import Attr


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "store"
    write_store(path, small_spec())
    return path


def test_default_command_needs_no_name(store, tmp_path):
    result = run(store, "-o", tmp_path / "out", "--quiet", "--outputs", "report,steps")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "attention_analysis_report.md").is_file()
    assert (tmp_path / "out" / "attention_step_002.png").is_file()
    assert not (tmp_path / "out" / "attention_montage.png").exists()


def test_explicit_analyze_name_and_step_layer_selection(store, tmp_path):
    result = run("analyze", store, "-o", tmp_path / "out", "--quiet", "--steps", "0,2", "--layers", "3",
                 "--outputs", "steps,report")
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "out").glob("attention_step_*.png"))
    assert names == ["attention_step_000.png", "attention_step_002.png"]
    report = (tmp_path / "out" / "attention_analysis_report.md").read_text()
    assert "| Layers analysed | 3 |" in report
    # layer 3 alone: owner 0.8 of 0.9, so the top share of step 0 is (0.5*0.8 + 0.5*0.02) / 0.9
    row = next(line for line in report.splitlines() if line.startswith("| 0 | 1000.00 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[5] == "1: red"  # the token as text, without the tokenizer's marker
    assert float(cells[6]) == pytest.approx((0.5 * 0.8 + 0.5 * 0.02) / 0.9, abs=3e-4)


def test_info(store):
    result = run("info", store)
    assert result.exit_code == 0, result.output
    assert "status:    complete" in result.output
    assert "complete: 0-2; missing: none" in result.output
    assert "words:     a, red, cats" in result.output


def test_missing_store(tmp_path):
    assert_one_line_error(run(tmp_path / "nope", "-o", tmp_path / "out"), "no store at")
    assert_one_line_error(run("info", tmp_path / "nope"), "no store at")


def test_not_a_zarr_store(tmp_path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "x.txt").write_text("hello")
    assert_one_line_error(run("info", tmp_path / "plain"), "not a readable Zarr store")


def _copy_with(store, tmp_path, **attrs):
    copy = tmp_path / "copy"
    shutil.copytree(store, copy)
    zarr.open_group(copy, mode="r+").attrs.update(attrs)
    return copy


def test_wrong_schema_refused(store, tmp_path):
    copy = _copy_with(store, tmp_path, **{Attr.SCHEMA: "someone-elses-store"})
    assert_one_line_error(run(copy, "-o", tmp_path / "out"), "not a wan-attention store")


def test_newer_major_version_refused(store, tmp_path):
    copy = _copy_with(store, tmp_path, **{Attr.SCHEMA_VERSION: "2.0"})
    assert_one_line_error(run(copy, "-o", tmp_path / "out"), "schema version 2.0", "upgrade")
    newer_minor = _copy_with(store, tmp_path / "minor", **{Attr.SCHEMA_VERSION: "1.7"})
    assert run("info", newer_minor).exit_code == 0


def test_missing_array_refused(store, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(store, copy)
    shutil.rmtree(copy / "cond" / "padding_mass")
    assert_one_line_error(run(copy, "-o", tmp_path / "out"), "lacks the array cond/padding_mass")


@pytest.mark.parametrize("args, fragments", [
    (["--words", "dog"], ["word 'dog' is not in the prompt", "'red'"]),
    (["--tokens", "99"], ["token 99 does not exist"]),
    (["--tokens", "\u2581dog"], ["is not in the prompt"]),
    (["--layers", "7"], ["layer 7 was not recorded", "0, 3"]),
    (["--steps", "9"], ["step 9 was not recorded", "0-2"]),
    (["--steps", "x"], ["cannot read step 'x'"]),
    (["--outputs", "pictures"], ["unknown output 'pictures'"]),
    (["--branch", "uncond"], ["branch 'uncond' was not recorded"]),
    (["--sheet-frames", "0"], ["sheet frames must be a whole number between 1 and 64, got 0"]),
])
def test_bad_selection(store, tmp_path, args, fragments):
    assert_one_line_error(run(store, "-o", tmp_path / "out", "--quiet", *args), *fragments)
    assert not (tmp_path / "out").exists()  # nothing is written before the input is known to be good


def test_non_empty_output_needs_overwrite(store, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert_one_line_error(run(store, "-o", out, "--quiet"), "not empty", "--overwrite")
    result = run(store, "-o", out, "--quiet", "--overwrite", "--outputs", "report")
    assert result.exit_code == 0, result.output
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "attention_analysis_report.md").is_file()


def test_zip_store(store, tmp_path):
    archive = shutil.make_archive(str(tmp_path / "store"), "zip", root_dir=store)
    result = run(archive, "-o", tmp_path / "out", "--quiet", "--outputs", "report")
    assert result.exit_code == 0, result.output
    assert "Missing steps: none." in (tmp_path / "out" / "attention_analysis_report.md").read_text()


def test_tokens_are_accepted_as_typed_or_as_the_store_spells_them(tmp_path):
    from synthetic_store import small_spec, write_store

    from analyzer.errors import AnalyzerError
    from analyzer.reader import StoreView
    from analyzer.selection import select_units

    write_store(tmp_path / "store", small_spec())  # tokens: ▁a ▁red ▁cat s . </s>
    view = StoreView(tmp_path / "store")
    assert [u.tokens for u in select_units(view, None, "cat")] == [(2,)]
    assert [u.tokens for u in select_units(view, None, "\u2581cat,s")] == [(2,), (3,)]
    with pytest.raises(AnalyzerError, match=r"token 'dog' is not in the prompt; its tokens are 'a', 'red', 'cat'"):
        select_units(view, None, "dog")
