"""The output registry: every output kind is one entry, and adding one is one module.

A toy kind, defined here and registered through ``analyzer.outputs.register``, shows up
in ``--outputs`` (its help and its accepted names), is rendered by ``analyze()`` (with the
step pictures it asked the streaming pass for), comes back under its name and is listed
in the report. Every registered kind renders on a synthetic store.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from analyzer_cli_helpers import assert_one_line_error, run
from synthetic_store import small_spec, write_store

from analyzer import outputs
from analyzer.errors import AnalyzerError
from analyzer.outputs import Context, Output, Plan
from analyzer.run import analyze, check_options

TOY_FILE = "toy_steps.txt"


def toy_step(image, index: int, prefix: str) -> str:
    """The toy's per-step job: one line per step picture (module level, so a worker process could run it)."""
    return f"{prefix} {index}: {image.width}x{image.height}"


def toy_per_step(plan: Plan):
    return toy_step, ("step",)


def toy_render(ctx: Context) -> Path:
    path = ctx.out / TOY_FILE
    path.write_text("\n".join(ctx.step_values["toy"]) + "\n", encoding="utf-8")
    return path


TOY = Output("toy", "Toy listing of the step pictures", f"{TOY_FILE}, one line per analysed step", toy_render,
             per_step=toy_per_step)


@pytest.fixture
def toy():
    outputs.register(TOY)
    try:
        yield TOY
    finally:
        outputs.unregister("toy")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("registry") / "store"
    write_store(path, small_spec())
    return path


def test_toy_kind_is_in_outputs_help_and_accepted(toy, store, tmp_path):
    help_text = run(store, "-o", tmp_path / "unused", "--help").output
    assert "toy" in help_text.split("--outputs", 1)[1]
    result = run(store, "-o", tmp_path / "out", "--quiet", "--outputs", "toy")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [TOY_FILE]


def test_toy_kind_is_rendered_returned_under_its_name_and_in_the_report(toy, store, tmp_path):
    written = analyze(store, tmp_path / "out", progress=False, outputs="toy,report", steps="0,2")
    assert set(written) == {"toy", "report"}
    assert written["toy"] == tmp_path / "out" / TOY_FILE
    lines = written["toy"].read_text().splitlines()
    assert [line.split(":")[0] for line in lines] == ["step 0", "step 2"]  # each analysed step's picture, in order
    report = written["report"].read_text()
    assert f"### {TOY.title}\n\n[{TOY_FILE.replace('_', chr(92) + '_')}]({TOY_FILE})" in report


def test_toy_kind_is_part_of_all_outputs(toy, store, tmp_path):
    written = analyze(store, tmp_path / "out", progress=False)
    assert set(written) == set(outputs.names())
    assert written["toy"].is_file()


def test_unknown_output_names_the_registered_kinds(store, tmp_path):
    with pytest.raises(AnalyzerError, match="unknown output 'toy'; choose from " + ", ".join(outputs.names())):
        check_options({"outputs": "report,toy"})
    assert_one_line_error(run(store, "-o", tmp_path / "out", "--outputs", "toy"), "unknown output 'toy'")


@pytest.mark.parametrize("name", ["", "a,b", " padded", "report"])
def test_register_refuses_a_bad_or_taken_name(name):
    with pytest.raises(ValueError):
        outputs.register(Output(name, "Title", "file", toy_render))
    assert outputs.names().count("report") == 1


@pytest.mark.parametrize("kind", outputs.registered(), ids=lambda kind: kind.name)
def test_every_registered_kind_renders(store, tmp_path, kind):
    written = analyze(store, tmp_path / "out", progress=False, outputs=kind.name)
    assert set(written) == {kind.name, *kind.includes}
    files = written[kind.name] if isinstance(written[kind.name], list) else [written[kind.name]]
    assert files and all(p.is_file() and p.stat().st_size > 0 for p in files)
    assert all(tmp_path / "out" in p.parents for p in files)


def test_every_kind_is_described_in_the_cli_and_the_api(store, tmp_path):
    help_text = " ".join(run(store, "-o", tmp_path / "unused", "--help").output.split())
    doc = analyze.__doc__
    for kind in outputs.registered():
        assert kind.name in help_text
        assert f"{kind.name}: {kind.files}" in doc


def test_words_brings_its_contact_sheet_and_the_sheet_comes_alone(store, tmp_path):
    assert set(analyze(store, tmp_path / "a", progress=False, outputs="words")) == {"words", "word_sheet"}
    assert set(analyze(store, tmp_path / "b", progress=False, outputs="word_sheet")) == {"word_sheet"}
    assert not (tmp_path / "b" / "words").exists()
