"""Nothing lost, nothing trusted blindly: every corruption of a store is one exact line, or a skipped step.

Each test writes a synthetic store, damages it directly with zarr (or on disk), and
checks the analyzer's exact one-line error; with --skip-corrupt, that the report lists
the step and the pictures come from the others.
"""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
import zarr
from analyzer_cli_helpers import assert_one_line_error, run
from PIL import Image
from synthetic_store import owner_blocks, small_spec, write_store

from analyzer import output, overlays
from analyzer.errors import AnalyzerError
from analyzer.integrity import row_sum_tolerance
from analyzer.overlays import NOT_RECORDED_GREY
from analyzer.run import analyze
from analyzer.text import markdown, ranges
from analyzer.word_views import write_word_animation
from shared import schema
from shared.schema import Attr, RecordOption

REPORT = "attention_analysis_report.md"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("integrity") / "store"
    write_store(path, small_spec(video_value=200))
    return path


def _copy(store, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(store, copy)
    return copy


def _set(store, path: str, index, value) -> None:
    zarr.open_group(store, mode="r+")[path][index] = value


def _analyze(store, tmp_path, *args, out: str = "out"):
    return run(store, "-o", tmp_path / out, "--quiet", *args)


def _report(tmp_path, out: str = "out") -> str:
    return (tmp_path / out / REPORT).read_text()


def _error(store, message: str) -> str:
    return f"Error: {store}: {message}"


def assert_exact_error(result, line: str) -> None:
    assert_one_line_error(result)
    assert result.output.strip() == line


# --- 1. values checked as they stream ----------------------------------------------------------

VALUE_CASES = [
    pytest.param("cond/attention", (1, 0, 0, 0, 0, 2), 60000.0,
                 "cond/attention at step 1: probability 60000 at layer block 0, frame 0, y 0, x 0, token 2 is "
                 "outside [0, 1] (chunk c/1/0/0/0/0/0)", id="probability-60000"),
    pytest.param("cond/attention", (2, 1, 1, 2, 3, 0), -0.5,
                 "cond/attention at step 2: probability -0.5 at layer block 3, frame 1, y 2, x 3, token 0 is "
                 "outside [0, 1] (chunk c/2/1/0/0/0/0)", id="negative-probability"),
    pytest.param("cond/attention", (1, 0, 3, 0, 5, 2), 0.875,
                 "cond/attention + cond/padding_mass at step 1: the tokens and padding of layer block 0, frame 3, "
                 "y 0, x 5 sum to 1.27496, not 1 (tolerance 0.00097698 for 10 mantissa bits) (chunk c/1/0/0/0/0/0)",
                 id="row-sum-1.27"),
    pytest.param("cond/attention", (0, 1, 2, 1, 1, 4), np.inf,
                 "cond/attention at step 0: probability inf at layer block 3, frame 2, y 1, x 1, token 4 is outside "
                 "[0, 1] (chunk c/0/1/0/0/0/0)", id="infinite-probability"),
]


@pytest.mark.parametrize("path, index, value, message", VALUE_CASES)
def test_bad_value_is_one_exact_line(store, tmp_path, path, index, value, message):
    copy = _copy(store, tmp_path)
    _set(copy, path, index, value)
    assert_exact_error(_analyze(copy, tmp_path), _error(copy, message))
    assert not (tmp_path / "out" / REPORT).exists()


@pytest.mark.parametrize("path, index, value, message", VALUE_CASES)
def test_skip_corrupt_leaves_the_step_out_and_says_why(store, tmp_path, path, index, value, message):
    copy = _copy(store, tmp_path)
    _set(copy, path, index, value)
    result = _analyze(copy, tmp_path, "--skip-corrupt")
    assert result.exit_code == 0, result.output
    step = index[0]
    report = _report(tmp_path)
    assert "## Skipped steps" in report
    listed = [line for line in report.splitlines() if line.startswith("- step ")]
    assert listed == [f"- step {step} (position {step}): {markdown(message)}"]
    kept = [s for s in range(3) if s != step]
    assert f"2 analysed ({ranges(kept)}); 1 skipped as corrupt ({step})" in report
    pictures = sorted(p.name for p in (tmp_path / "out").glob("attention_step_*.png"))
    assert pictures == [f"attention_step_{s:03d}.png" for s in kept]
    with Image.open(tmp_path / "out" / "attention_animation.gif") as gif:
        assert gif.n_frames == 2


def test_negative_zero_is_a_zero_probability(store, tmp_path):
    """float16 -0.0 has its sign bit set, which the fast decoding reads as invalid; it is a valid 0."""
    copy = _copy(store, tmp_path)
    attention = zarr.open_group(copy, mode="r+")[schema.attention("cond").path]
    block = np.array(attention[1, 0])
    block[0, 0, 0, 1] += block[0, 0, 0, 0]  # the row still sums to 1
    block[0, 0, 0, 0] = np.float16(-0.0)
    attention[1, 0] = block
    written = analyze(copy, tmp_path / "out", progress=False, outputs="report,steps")
    assert [p.name for p in written["steps"]] == [f"attention_step_{s:03d}.png" for s in range(3)]
    report = written["report"].read_text()
    assert "Skipped steps" not in report and "nan" not in report.lower()


def test_negative_padding_mass(store, tmp_path):
    copy = _copy(store, tmp_path)
    padding = zarr.open_group(copy, mode="r+")[schema.padding_mass("cond").path]
    padding[0, 0] = -padding[0, 0]
    assert_exact_error(_analyze(copy, tmp_path), _error(
        copy, "cond/padding_mass at step 0: padding mass -0.0999756 at layer block 0, frame 0, y 0, x 0 is negative "
              "(chunk c/0/0/0/0/0)"))


def test_row_sum_tolerance_follows_the_mantissa_bits(store, tmp_path):
    """A row 0.0008 over 1 is float16 rounding at 10 bits; 0.0015 is not; 0.05 is rounding at 3 bits."""
    assert row_sum_tolerance(10, 6) == pytest.approx(2 * (2**-11 + 7 * 2**-25))
    assert row_sum_tolerance(3, 6) == pytest.approx(2 * (2**-4 + 7 * 2**-18))

    def with_excess(excess: float, bits: int | None = None):
        copy = tmp_path / f"copy-{excess}-{bits}"
        shutil.copytree(store, copy)
        root = zarr.open_group(copy, mode="r+")
        attention = root[schema.attention("cond").path]
        for layer in (0, 1):  # both layers, so that the layer mean is off by as much as each layer
            attention[0, layer, 0, 0, 0, 0] = float(attention[0, layer, 0, 0, 0, 0]) + excess
        if bits is not None:
            root.attrs[Attr.RECORD_OPTIONS] = {**root.attrs[Attr.RECORD_OPTIONS], RecordOption.MANTISSA_BITS: bits}
        return run(copy, "-o", tmp_path / f"out-{excess}-{bits}", "--quiet", "--outputs", "report")

    assert with_excess(0.0008).exit_code == 0
    assert_one_line_error(with_excess(0.0015), "sum to 1.00", "not 1 (tolerance 0.00097698 for 10 mantissa bits)")
    assert with_excess(0.05, bits=3).exit_code == 0
    assert_one_line_error(with_excess(0.05), "not 1 (tolerance 0.00097698 for 10 mantissa bits)")


def test_nan_in_a_complete_step_names_the_missing_chunk(store, tmp_path):
    copy = _copy(store, tmp_path)
    (copy / "cond" / "attention" / "c" / "2" / "1" / "0" / "0" / "0" / "0").unlink()
    assert_exact_error(_analyze(copy, tmp_path), _error(
        copy, "cond/attention at step 2: NaN at layer block 3, frame 0, y 0, x 0, token 0 although the step is marked "
              "complete (its chunk c/2/1/0/0/0/0 is missing: never written, or deleted)"))


@pytest.mark.parametrize("path, value, message", [
    (schema.STEP_TIMESTEP.path, np.nan, "steps/timestep at step 2 is NaN although the step is marked complete"),
    (schema.STEP_SIGMA.path, np.nan, "steps/sigma at step 2 is NaN although the step is marked complete"),
    (schema.STEP_INDEX.path, -1, "steps/index at position 2 is -1 (never written) although the step is marked "
                                 "complete"),
])
def test_bad_bookkeeping_of_a_complete_step(store, tmp_path, path, value, message):
    copy = _copy(store, tmp_path)
    _set(copy, path, 2, value)
    assert_exact_error(_analyze(copy, tmp_path), _error(copy, message))
    result = _analyze(copy, tmp_path, "--skip-corrupt", "--outputs", "report", out="skipped")
    assert result.exit_code == 0, result.output
    assert f"- step 2 (position 2): {message}" in _report(tmp_path, "skipped")


def test_duplicate_step_indices_are_refused_not_overwritten(tmp_path):
    write_store(tmp_path / "store", small_spec(owners=owner_blocks(4, (4, 4, 6), [1, 1, 2, 0])))
    _set(tmp_path / "store", schema.STEP_INDEX.path, slice(None), np.array([0, 1, 1, 1], dtype=np.int32))
    message = "steps/index: step 1 is recorded at positions 1, 2, 3, each marked complete"
    assert_exact_error(_analyze(tmp_path / "store", tmp_path), _error(tmp_path / "store", message))
    result = _analyze(tmp_path / "store", tmp_path, "--skip-corrupt", out="skipped")
    assert result.exit_code == 0, result.output
    report = _report(tmp_path, "skipped")
    assert [line for line in report.splitlines() if line.startswith("- step ")] == [
        f"- step 1 (position {p}): {message}" for p in (1, 2, 3)]
    assert sorted(p.name for p in (tmp_path / "skipped").glob("attention_step_*")) == ["attention_step_000.png"]


@pytest.mark.parametrize("path, index, message", [
    ("cond/head_entropy", (1, 0, 0), "cond/head_entropy at step 1: NaN at layer block 0, head 0 although the step is "
                                     "marked complete"),
    ("cond/head_token_mass", (2, 1, 1, 4), "cond/head_token_mass at step 2: NaN at layer block 3, head 1, token 4 "
                                           "although the step is marked complete"),
    ("cond/head_padding_mass", (0, 1, 0), "cond/head_padding_mass at step 0: NaN at layer block 3, head 0 although "
                                          "the step is marked complete"),
])
def test_nan_per_head_summary_of_a_complete_step(store, tmp_path, path, index, message):
    copy = _copy(store, tmp_path)
    _set(copy, path, index, np.nan)
    # even when neither the head ranking nor the report is asked for: the step is not trusted
    assert_exact_error(_analyze(copy, tmp_path, "--outputs", "steps"), _error(copy, message))


def test_deleted_per_head_chunk_reads_as_nan(store, tmp_path):
    copy = _copy(store, tmp_path)
    (copy / "cond" / "head_entropy" / "c" / "1" / "0" / "0").unlink()
    assert_exact_error(_analyze(copy, tmp_path), _error(
        copy, "cond/head_entropy at step 1: NaN at layer block 0, head 0 although the step is marked complete"))


@pytest.mark.parametrize("blocks, entry", [([0, -2], 1), ([-2, -2], 0)])
def test_layer_block_fill_value_is_not_a_layer_mean(store, tmp_path, blocks, entry):
    copy = _copy(store, tmp_path)
    _set(copy, schema.LAYER_BLOCK.path, slice(None), np.asarray(blocks, dtype=np.int32))
    line = _error(copy, f"layers/block entry {entry} is -2, the fill value: its chunk was never written, or was "
                        f"deleted")
    assert_exact_error(_analyze(copy, tmp_path, "--skip-corrupt"), line)  # not a step: never skipped
    assert_exact_error(run("info", copy), line)


def test_deleted_layer_block_chunk(store, tmp_path):
    copy = _copy(store, tmp_path)
    (copy / "layers" / "block" / "c" / "0").unlink()
    assert_exact_error(_analyze(copy, tmp_path), _error(
        copy, "layers/block entry 0 is -2, the fill value: its chunk was never written, or was deleted"))


def test_deleted_token_ids_chunk(store, tmp_path):
    copy = _copy(store, tmp_path)
    (copy / "cond" / "token_ids" / "c" / "0").unlink()
    line = _error(copy, "cond/token_ids entry 0 is -1, the fill value: its chunk was never written, or was deleted")
    assert_exact_error(_analyze(copy, tmp_path), line)
    assert_exact_error(run("info", copy), line)


def test_every_step_skipped_is_an_error(store, tmp_path):
    copy = _copy(store, tmp_path)
    for step in range(3):
        _set(copy, "cond/attention", (step, 0, 0, 0, 0, 2), 60000.0)
    assert_exact_error(_analyze(copy, tmp_path, "--skip-corrupt"), _error(
        copy, "every selected step is corrupt (3 skipped); the first: cond/attention at step 0: probability 60000 at "
              "layer block 0, frame 0, y 0, x 0, token 2 is outside [0, 1] (chunk c/0/0/0/0/0/0)"))


def test_skip_corrupt_through_the_python_api(store, tmp_path):
    copy = _copy(store, tmp_path)
    _set(copy, "cond/attention", (0, 1, 0, 0, 0, 0), 2.0)
    with pytest.raises(AnalyzerError, match=r"cond/attention at step 0: probability 2 at layer block 3"):
        analyze(copy, tmp_path / "strict", progress=False, outputs="report")
    written = analyze(copy, tmp_path / "lenient", progress=False, outputs="report,steps", skip_corrupt=True)
    assert [p.name for p in written["steps"]] == ["attention_step_001.png", "attention_step_002.png"]
    assert "- step 0 (position 0): cond/attention at step 0: probability 2 at layer block 3" in \
        written["report"].read_text()


# --- 2. checksums and decoding -------------------------------------------------------------------

def _flip_a_bit(path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


CHECKSUM = "ValueError: Stored and computed checksum do not match."


@pytest.mark.parametrize("array, chunk", [
    ("cond/attention", "c/1/1/0/0/0/0"),  # the second chunk the step reads: found by reading chunk by chunk
    ("cond/padding_mass", "c/1/0/0/0/0"),
    ("cond/head_token_mass", "c/1/0/0/0"),
])
def test_flipped_bit_names_the_array_and_the_chunk_key(store, tmp_path, array, chunk):
    copy = _copy(store, tmp_path)
    _flip_a_bit(copy / array / chunk)
    prefix = _error(copy, f"cannot read {array} chunk {chunk} at step 1 (branch cond): {CHECKSUM}")
    result = _analyze(copy, tmp_path)
    assert_one_line_error(result)
    assert result.output.startswith(prefix), result.output

    result = _analyze(copy, tmp_path, "--skip-corrupt", "--outputs", "report,steps", out="skipped")
    assert result.exit_code == 0, result.output
    reason = f"cannot read {array} chunk {chunk} at step 1 (branch cond): {CHECKSUM}"
    assert f"- step 1 (position 1): {markdown(reason)}" in _report(tmp_path, "skipped")
    assert not (tmp_path / "skipped" / "attention_step_001.png").exists()
    assert (tmp_path / "skipped" / "attention_step_002.png").exists()


def test_a_corrupt_chunk_of_a_layer_not_selected_is_never_read(store, tmp_path):
    copy = _copy(store, tmp_path)
    _flip_a_bit(copy / "cond" / "attention" / "c" / "1" / "1" / "0" / "0" / "0" / "0")
    result = _analyze(copy, tmp_path, "--layers", "0", "--outputs", "report")
    assert result.exit_code == 0, result.output


def test_truncated_video_chunk_is_an_error_even_with_skip_corrupt(store, tmp_path):
    copy = _copy(store, tmp_path)
    chunk = copy / "video" / "c" / "5" / "0" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:10])
    result = _analyze(copy, tmp_path, "--skip-corrupt")
    assert_one_line_error(result, "cannot read video chunk c/5/0/0/0 frame 5: ")


# --- 4. missing steps as ranges, and the status ------------------------------------------------

def test_missing_steps_are_ranges_in_report_and_info(tmp_path):
    complete = [s in (0, 1, 2, 10, 11) for s in range(12)]
    write_store(tmp_path / "store", small_spec(owners=owner_blocks(12, (4, 4, 6), [1, 1, 2, 0]), complete=complete,
                                              status=schema.STATUS_RECORDING))
    result = _analyze(tmp_path / "store", tmp_path, "--outputs", "report")
    assert result.exit_code == 0, result.output
    report = _report(tmp_path)
    assert "Missing steps: steps 3-9 missing (7 of 12 recorded)." in report
    assert "3, 4, 5" not in report
    info = run("info", tmp_path / "store")
    assert "complete: 0-2, 10-11; missing: 3-9" in info.output


ENDED = "2025-01-01T01:00:00Z"


@pytest.mark.parametrize("status, attrs, sentence", [
    (schema.STATUS_INTERRUPTED,
     {Attr.INTERRUPTED_BY: "SIGTERM", Attr.ENDED_AT: ENDED, Attr.ERROR: "stopped by SIGTERM"},
     f"interrupted by SIGTERM at {ENDED}: stopped by SIGTERM; what was written before is kept."),
    (schema.STATUS_FAILED, {Attr.ENDED_AT: ENDED, Attr.ERROR: "CUDA out of memory"},
     f"failed at {ENDED}: CUDA out of memory."),
    (schema.STATUS_RECORDING, {},
     "recording: the store may still be being written (or its recorder stopped without saying so); steps "
     "completed after this read are not in it."),
    (schema.STATUS_COMPLETE, {Attr.ENDED_AT: ENDED}, f"complete: the recording finished at {ENDED}."),
])
def test_status_is_stated(tmp_path, status, attrs, sentence):
    write_store(tmp_path / "store", small_spec(status=status, attributes=attrs))
    result = _analyze(tmp_path / "store", tmp_path, "--outputs", "report")
    assert result.exit_code == 0, result.output
    assert f"Status: {sentence}" in _report(tmp_path)
    assert f"status:    {sentence}" in run("info", tmp_path / "store").output


# --- 5. partial video ------------------------------------------------------------------------------

PARTIAL = ("The video is partial: frames 0-4 of 13 exist; frames 5-12 were not recorded and are drawn as a neutral "
           "grey background labelled \"frame not recorded\" under the maps, never as black frames.")


def _dark_fraction(image: Image.Image) -> float:
    """Share of the frame (below its caption strip) in the label's dark band colour."""
    body = np.asarray(image.convert("RGB")).astype(int)
    body = body[overlays.caption_height(body.shape[1]):]
    return float((np.abs(body - 40).max(axis=2) <= 12).mean())


def test_partial_video_from_video_written(tmp_path):
    write_store(tmp_path / "store", small_spec(video_value=200, video_frames=list(range(5)),
                                              status=schema.STATUS_INTERRUPTED))
    written = analyze(tmp_path / "store", tmp_path / "out", progress=False, outputs="report,words")
    report = written["report"].read_text()
    assert PARTIAL in report
    assert "| Frames | 13 generated; 13 in the store, 5 written |" in report
    info = run("info", tmp_path / "store").output
    assert "partial: frames 0-4 of 13 written, frames 5-12 not recorded (video_written)" in info
    with Image.open(written["words"][0]) as gif:
        gif.seek(0)
        recorded = gif.convert("RGB")
        gif.seek(12)
        missing = gif.convert("RGB")
    assert _dark_fraction(recorded) == 0.0
    assert _dark_fraction(missing) > 0.05  # the "frame not recorded" band
    body = np.asarray(missing).astype(int)
    body = body[overlays.caption_height(body.shape[1]):]
    assert (body.max(axis=2) < 16).mean() == 0.0  # nothing of it is black


def test_video_written_false_for_some_frames(store, tmp_path):
    copy = _copy(store, tmp_path)
    flags = np.ones(13, dtype=bool)
    flags[5:] = False
    _set(copy, schema.VIDEO_WRITTEN.path, slice(None), flags)
    # a complete store wrote every frame: these flags contradict its status
    assert_exact_error(_analyze(copy, tmp_path), _error(
        copy, "video_written marks frames 5-12 as not written although the status is complete"))
    zarr.open_group(copy, mode="r+").attrs[Attr.STATUS] = schema.STATUS_INTERRUPTED
    written = analyze(copy, tmp_path / "interrupted", progress=False, outputs="report,words")
    assert PARTIAL in written["report"].read_text()


def test_written_frame_with_a_deleted_chunk_is_corruption(store, tmp_path):
    copy = _copy(store, tmp_path)
    (copy / "video" / "c" / "5" / "0" / "0" / "0").unlink()
    assert_exact_error(_analyze(copy, tmp_path, "--skip-corrupt"), _error(
        copy, "video frame 5 is marked written (video_written) but its chunk c/5/0/0/0 is missing: the store is "
              "corrupt"))


def test_complete_store_whose_video_written_chunk_is_lost(store, tmp_path):
    """A complete store has every frame: flags saying none is written are damage, not an absent video."""
    copy = _copy(store, tmp_path)
    (copy / "video_written" / "c" / "0").unlink()
    line = _error(copy, "video_written marks frames 0-12 as not written although the status is complete: its chunk "
                        "c/0 is missing (deleted)")
    assert_exact_error(_analyze(copy, tmp_path), line)
    assert_exact_error(run("info", copy), line)


def test_no_video_is_never_drawn_black(tmp_path):
    write_store(tmp_path / "store", small_spec(video_value=0, status=schema.STATUS_RECORDING))
    written = analyze(tmp_path / "store", tmp_path / "out", progress=False, outputs="report,words")
    assert ("The store holds no video frame (video\\_written): every frame of the per-word views is drawn as a "
            "neutral grey background") in written["report"].read_text()
    with Image.open(written["word_sheet"]) as sheet:
        pixels = np.asarray(sheet.convert("RGB"))
    assert (pixels.max(axis=2) < 16).sum() < 0.01 * pixels.shape[0] * pixels.shape[1]  # only text is black


def _as_schema_1_0(store, status: str) -> None:
    root = zarr.open_group(store, mode="r+")
    root.attrs.update({Attr.SCHEMA_VERSION: "1.0", Attr.STATUS: status})


def test_schema_1_0_video_exists_exactly_when_complete(store, tmp_path):
    recording = _copy(store, tmp_path / "recording")
    _as_schema_1_0(recording, schema.STATUS_RECORDING)  # its frames are there, but a 1.0 store cannot say so
    report = analyze(recording, tmp_path / "out1", progress=False, outputs="report,words")["report"].read_text()
    assert "The store holds no video frame (status 'recording' of a 1.0 store)" in report

    complete = _copy(store, tmp_path / "complete")
    _as_schema_1_0(complete, schema.STATUS_COMPLETE)
    report = analyze(complete, tmp_path / "out2", progress=False, outputs="report,words")["report"].read_text()
    assert "| Frames | 13 generated; 13 in the store, 13 written |" in report
    assert "not recorded" not in report
    (complete / "video" / "c" / "3" / "0" / "0" / "0").unlink()
    assert_exact_error(run(complete, "-o", tmp_path / "out3", "--quiet"), _error(
        complete, "video frame 3 is marked written (status 'complete' of a 1.0 store) but its chunk c/3/0/0/0 is "
                  "missing: the store is corrupt"))


def test_word_animation_labels_exactly_the_frames_not_recorded(tmp_path):
    video = np.full((3, 48, 96, 3), 200, dtype=np.uint8)
    video[1] = NOT_RECORDED_GREY
    maps = np.zeros((1, 2, 2))  # no heat: a recorded frame is shown exactly as it is
    _, row = write_word_animation(video, np.array([True, False, True]), np.zeros(3, dtype=np.int64), [0, 1, 2],
                                     maps, "cat", tmp_path / "cat", "webp", 100)
    assert np.array_equal(row[0], video[0]) and np.array_equal(row[2], video[2])
    assert not np.array_equal(row[1], video[1])
    assert _dark_fraction(Image.fromarray(np.vstack([np.zeros((20, 96, 3), np.uint8), row[1]]))) > 0.1


# --- 6. hostile text -------------------------------------------------------------------------------

_RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@pytest.fixture
def hostile(tmp_path):
    owners = np.zeros((2, 2, 2, 4), dtype=np.int64)
    owners[:, 1] = 2
    tokens = ["\u2581../../etc/x", "a/b\x00c", "\u2581cat\x1b[2J", "\u2581..", "</s>"]
    attributes = {Attr.MODEL_ID: "evil\x1b]0;title\x07/model", Attr.ERROR: "\x1b[31mboom\x9b1m | *x*",
                  Attr.INTERRUPTED_BY: "\x1b[1mSIGTERM\u202e"}
    prompt = "a\x1b[2J cat\x9b31m \u202eevil\x00"
    write_store(tmp_path / "store", small_spec(owners=owners, tokens=tokens, prompt=prompt,
                                              status=schema.STATUS_INTERRUPTED, attributes=attributes))
    return tmp_path / "store"


def test_info_shows_control_characters_as_escapes(hostile):
    result = run("info", hostile)
    assert result.exit_code == 0, result.output
    assert not _RAW_CONTROL.search(result.output), repr(result.output)
    assert "prompt:    a\\x1b[2J cat\\x9b31m \\u202eevil\\x00" in result.output
    assert "model:     evil\\x1b]0;title\\x07/model (WanPipeline)" in result.output
    assert "status:    interrupted by \\x1b[1mSIGTERM\\u202e: \\x1b[31mboom\\x9b1m | *x*;" in result.output
    assert "\u2581cat\\x1b[2J" in result.output


def test_report_escapes_markdown_and_control_characters(hostile, tmp_path):
    written = analyze(hostile, tmp_path / "out", progress=False, include_special=True)
    report = written["report"].read_text()
    assert not _RAW_CONTROL.search(report.replace("\n", "")), repr(_RAW_CONTROL.search(report))
    assert "| Prompt | a\\\\x1b\\[2J cat\\\\x9b31m \\\\u202eevil\\\\x00 |" in report
    assert "\\\\x1b\\[31mboom\\\\x9b1m \\| \\*x\\*" in report


def test_file_names_from_tokens_stay_in_the_output_directory(hostile, tmp_path):
    out = tmp_path / "out"
    before = {p for p in tmp_path.rglob("*")}
    written = analyze(hostile, out, progress=False, include_special=True, tokens="0,1,2,3")
    created = {p for p in tmp_path.rglob("*")} - before
    assert created and all(p == out or out in p.parents for p in created)
    for path in written["words"]:
        assert path.resolve().parent == (out / "words").resolve()
        assert re.fullmatch(r"token_\d{3}(_[A-Za-z0-9_-]+)?\.gif", path.name), path.name


@pytest.mark.parametrize("name", ["../x", "a/b", "..", ".", "", "x\x00y", "/etc/passwd"])
def test_confined_refuses_names_that_leave_the_directory(tmp_path, name):
    with pytest.raises(AnalyzerError, match="would leave the output directory"):
        output.confined(tmp_path, name)
    assert output.confined(tmp_path, "word_001_cat") == tmp_path / "word_001_cat"


def test_error_lines_show_store_text_as_escapes(hostile, tmp_path):
    result = run(hostile, "-o", tmp_path / "out", "--quiet", "--tokens", "\u2581dog")
    assert_one_line_error(result, "is not in the prompt", "\\x1b[2J")
    assert not _RAW_CONTROL.search(result.output)
