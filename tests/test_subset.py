"""``wan-analyze subset``: a smaller store of the same schema, whose statistics equal the full store's selection."""

from __future__ import annotations

import os

import numpy as np
import pytest
import zarr
from click.testing import CliRunner
from synthetic_store import Synthetic, owner_blocks, small_spec, write_store

from analyzer import streaming
from analyzer.commands.subset import subset_command
from analyzer.encoders import Encoders
from analyzer.errors import AnalyzerError
from analyzer.reader import StoreView
from analyzer.run import analyze, check_options
from analyzer.selection import select
from analyzer.subset import subset_store
from analyzer.word_views import read_small_video
from shared import schema
from shared.check import check_store
from shared.precision import round_mantissa
from shared.schema import Attr, RecordOption
from shared.store import RESERVE_BYTES, StoreError, open_store, stored_bytes

SUBSET_OF = Attr.SUBSET_OF

ATTENTION = schema.attention("cond").path
PADDING = schema.padding_mass("cond").path
HEADS = (schema.head_entropy("cond").path, schema.head_token_mass("cond").path,
         schema.head_padding_mass("cond").path)


def rich_spec(**overrides) -> Synthetic:
    """Five steps, three layers (blocks 0, 3, 7), a video that is not the analyzer's grey."""
    grid = (4, 4, 6)
    owners = owner_blocks(5, grid, [1, 1, 2, 0])
    owners[1] = 2
    owners[3, :, :, :3] = 4
    values = dict(owners=owners, layer_blocks=(0, 3, 7), own=(0.6, 0.8, 0.45), num_heads=3, video_value=200)
    values.update(overrides)
    return Synthetic(**values)


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    path = tmp_path_factory.mktemp("full") / "full.zarr"
    write_store(path, rich_spec())
    return path


def analysis_of(location, **options):
    """The statistics the analyzer computes (no pictures): the streaming pass alone."""
    opts, _ = check_options({"progress": False, **options})
    selection = select(StoreView(location, opts.branch), opts)
    with Encoders(0, 0) as encoders:
        analysis, _ = streaming.run_pass(selection, {}, encoders, 0.0)
    return analysis


def statistics(analysis) -> dict:
    stats = analysis.stats
    values = {
        "token_mass": stats.token_mass(), "spatial_entropy": stats.spatial_entropy(),
        "steps_won": stats.steps_won(), "location_win_share": stats.location_win_share(),
        "modal_winner": stats.modal_winner(), "winner_stability": stats.winner_stability(),
        "unit_maps": stats.unit_maps(), "padding": stats.padding_by_step_layer(),
        "winners": analysis.winners, "segment_share": analysis.segment_share,
        "steps": [s.index for s in analysis.steps],
        "heads": [(h.layer_block, h.head, h.entropy, h.padding, h.top_token, h.top_token_mass)
                  for h in analysis.heads],
    }
    values.update({f"head_{k}": v for k, v in stats.head_means().items()})
    if analysis.layer_profile is not None:
        values["layer_profile"] = analysis.layer_profile
    return values


def assert_same(a: dict, b: dict, rtol: float = 0.0, atol: float = 0.0):
    assert a.keys() == b.keys()
    for key in a:
        if key in ("heads", "steps"):
            assert len(a[key]) == len(b[key]), key
            for x, y in zip(a[key], b[key]):
                np.testing.assert_allclose(np.asarray(x, dtype=float), np.asarray(y, dtype=float), rtol=rtol,
                                           atol=atol, err_msg=key)
        else:
            np.testing.assert_allclose(np.asarray(a[key], dtype=float), np.asarray(b[key], dtype=float), rtol=rtol,
                                       atol=atol, err_msg=key)


@pytest.mark.parametrize("steps, layers", [(None, None), ("1,3-4", None), (None, "3,7"), ("0,2", "0")])
def test_statistics_equal_the_full_store_over_the_same_selection(tmp_path, full, steps, layers):
    out = subset_store(full, tmp_path / "sub.zarr", steps=steps, layers=layers)
    assert check_store(out).ok
    expected = statistics(analysis_of(full, steps=steps, layers=layers))
    got = statistics(analysis_of(out))
    assert_same(expected, got)  # the same float16 values, reduced in the same order: equal
    view = StoreView(out)
    assert [s.index for s in view.steps] == expected["steps"]
    assert view.layer_blocks == [b for b in (0, 3, 7) if layers is None or str(b) in layers.split(",")]


def test_layer_mean_is_the_mean_over_layers_within_float16_rounding(tmp_path, full):
    out = subset_store(full, tmp_path / "mean.zarr", layers="0,7", layer_mean=True)
    assert check_store(out).ok
    src, sub = open_store(full), open_store(out)
    assert [int(b) for b in sub[schema.LAYER_BLOCK.path][:]] == [-1]
    options = sub.attrs[Attr.RECORD_OPTIONS]
    assert options[RecordOption.LAYER_REDUCTION] == "mean" and options[RecordOption.LAYERS] == [0, 7]
    for path in (ATTENTION, PADDING):
        layers = src[path][:][:, [0, 2]].astype(np.float32)
        expected = ((layers[:, 0] + layers[:, 1]) / np.float32(2)).astype(np.float16)[:, None]
        assert np.array_equal(sub[path][:], expected), path
    for path in HEADS:
        layers = src[path][:][:, [0, 2]]
        np.testing.assert_array_equal(sub[path][:], ((layers[:, 0] + layers[:, 1]) / np.float32(2))[:, None])
    # the analyzer reads it as a store of the layer mean; its statistics are the full store's over those layers
    view = StoreView(out)
    assert not view.layers_separate
    expected = statistics(analysis_of(full, layers="0,7"))
    got = statistics(analysis_of(out))
    expected.pop("layer_profile")
    for key in ("padding", "heads", "head_entropy", "head_token_mass", "head_padding"):
        expected.pop(key), got.pop(key)  # per layer in the full store, one row in the mean
    assert_same(expected, got, rtol=2e-3, atol=1e-4)


def test_mantissa_bits_round_like_numpy_and_the_recorder(tmp_path, full):
    out = subset_store(full, tmp_path / "m3.zarr", mantissa_bits=3)
    assert check_store(out).ok
    src, sub = open_store(full), open_store(out)
    for path in (ATTENTION, PADDING):
        assert np.array_equal(sub[path][:].view(np.int16), round_mantissa(src[path][:], 3).view(np.int16)), path
    for path in HEADS:  # float32 summaries are not rounded (nor does the recorder round them)
        np.testing.assert_array_equal(sub[path][:], src[path][:])
    options = sub.attrs[Attr.RECORD_OPTIONS]
    assert options[RecordOption.MANTISSA_BITS] == 3
    assert options == schema.record_options([0, 3, 7], mantissa_bits=3)
    analysis_of(out)  # the analyzer accepts the rounded values
    # a store of 3 bits cannot be made 5 again
    with pytest.raises(AnalyzerError, match="keeps 3 mantissa bits"):
        subset_store(out, tmp_path / "m5.zarr", mantissa_bits=5)
    assert not (tmp_path / "m5.zarr").exists()


def test_numpy_round_mantissa_equals_the_recorders_bit_for_bit():
    torch = pytest.importorskip("torch")
    from recorder.precision import round_mantissa as torch_round

    patterns = np.arange(0, 0x8000, dtype=np.int16)  # every float16 with the sign bit clear (inf, NaN too)
    values = patterns.view(np.float16)
    for bits in range(schema.FLOAT16_MANTISSA_BITS + 1):
        ours = round_mantissa(values, bits).view(np.int16)
        theirs = torch_round(torch.from_numpy(values.copy()), bits).view(torch.int16).numpy()
        assert np.array_equal(ours, theirs), bits
    with pytest.raises(TypeError):
        round_mantissa(values.astype(np.float32), 3)
    with pytest.raises(ValueError):
        round_mantissa(values, 11)


def test_no_video_is_smaller_and_draws_grey_frames(tmp_path):
    source = tmp_path / "interrupted.zarr"
    write_store(source, rich_spec(status=schema.STATUS_INTERRUPTED, complete=[True, True, True, True, False]))
    with_video = subset_store(source, tmp_path / "with.zarr")
    without = subset_store(source, tmp_path / "without.zarr", video=False)
    assert check_store(without).ok
    assert stored_bytes(open_store(without)) < stored_bytes(open_store(with_video))
    view = StoreView(without)
    assert not view.video_written.any()
    small = read_small_video(view, (8, 8))
    assert (small == 128).all()  # the analyzer's grey, not the source's 200
    assert (read_small_video(StoreView(with_video), (8, 8)) == 200).all()
    written = analyze(without, tmp_path / "out", progress=False, outputs="word_sheet,report")
    assert "report" in written


def test_no_video_subset_of_a_complete_store_analyses(tmp_path, full):
    without = subset_store(full, tmp_path / "without.zarr", video=False)
    assert check_store(without).ok
    StoreView(without)


def test_attributes_say_what_it_was_cut_from(tmp_path, full):
    out = subset_store(full, tmp_path / "sub.zarr", steps="1-3", layers="3,7", mantissa_bits=4)
    sub, src = open_store(out).attrs.asdict(), open_store(full).attrs.asdict()
    cut = sub[SUBSET_OF]
    assert cut["source"] == str(full)
    assert cut["steps"] == [1, 2, 3] and cut["layers"] == [3, 7] and cut["layer_mean"] is False
    assert cut["branches"] == ["cond"] and cut["mantissa_bits"] == 4 and cut["video"] is True
    assert cut["made_at"] and cut["steps_left_out"] == []
    assert sub[Attr.STATUS] == src[Attr.STATUS] == schema.STATUS_COMPLETE
    for key in (Attr.PROMPT, Attr.SEED, Attr.MODEL_ID, Attr.LATENT_GRID, Attr.STARTED_AT):
        assert sub[key] == src[key]
    assert sub[Attr.RECORD_OPTIONS][RecordOption.STEP_STRIDE] == 1
    assert sub[Attr.SCHEMA_VERSION] == schema.SCHEMA_VERSION
    cond_src, cond_sub = open_store(full)["cond"], open_store(out)["cond"]
    assert cond_sub.attrs.asdict() == cond_src.attrs.asdict()
    assert np.array_equal(cond_sub["token_ids"][:], cond_src["token_ids"][:])


def test_incomplete_steps_are_left_out_and_said(tmp_path):
    source = tmp_path / "partial.zarr"
    write_store(source, rich_spec(status=schema.STATUS_INTERRUPTED, complete=[True, False, True, True, False]))
    out = subset_store(source, tmp_path / "sub.zarr", steps="0-2")
    attrs = open_store(out).attrs.asdict()
    assert attrs[SUBSET_OF]["steps"] == [0, 2] and attrs[SUBSET_OF]["steps_left_out"] == [1]
    assert attrs[Attr.STATUS] == schema.STATUS_INTERRUPTED  # a subset of a partial recording is still one
    assert [s.index for s in StoreView(out).steps] == [0, 2]
    assert check_store(out).ok


def test_stride_is_kept_only_when_the_steps_are_the_strides(tmp_path):
    source = tmp_path / "strided.zarr"
    write_store(source, rich_spec(attributes={
        Attr.NUM_INFERENCE_STEPS: 10, Attr.RECORD_OPTIONS: schema.record_options([0, 3, 7], step_stride=2)}))
    zarr.open_group(str(source), mode="r+")[schema.STEP_INDEX.path][:] = [0, 2, 4, 6, 8]  # what wan-record writes
    assert [s.index for s in StoreView(source).steps] == [0, 2, 4, 6, 8]
    first = subset_store(source, tmp_path / "first.zarr", steps="0-4")
    assert open_store(first).attrs[Attr.RECORD_OPTIONS][RecordOption.STEP_STRIDE] == 2
    assert [s.index for s in StoreView(first).steps] == [0, 2, 4]
    later = subset_store(source, tmp_path / "later.zarr", steps="4,8")
    assert open_store(later).attrs[Attr.RECORD_OPTIONS][RecordOption.STEP_STRIDE] == 1
    assert [s.index for s in StoreView(later).steps] == [4, 8]
    assert_same(statistics(analysis_of(source, steps="4,8")), statistics(analysis_of(later)))


def test_bad_choices_are_one_line_errors(tmp_path, full):
    with pytest.raises(AnalyzerError, match="step 9 was not recorded"):
        subset_store(full, tmp_path / "a.zarr", steps="9")
    with pytest.raises(AnalyzerError, match="layer 5 was not recorded"):
        subset_store(full, tmp_path / "b.zarr", layers="5")
    with pytest.raises(AnalyzerError, match="cond or all"):
        subset_store(full, tmp_path / "c.zarr", branch="uncond")
    assert not any(tmp_path.iterdir())


def test_existing_out_and_zip_out_are_refused(tmp_path, full):
    existing = tmp_path / "exists"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    result = CliRunner().invoke(subset_command, [str(full), str(existing), "--quiet"])
    assert result.exit_code == 1 and "already exists" in result.output
    assert (existing / "keep.txt").read_text() == "mine"
    result = CliRunner().invoke(subset_command, [str(full), str(tmp_path / "s.zip"), "--quiet"])
    assert result.exit_code == 1 and "wan-analyze pack" in result.output
    assert not (tmp_path / "s.zip").exists()
    with pytest.raises(StoreError, match="pack"):
        subset_store(full, tmp_path / "t.ZIP")


def test_the_command_prints_the_output_and_its_size(tmp_path, full):
    out = tmp_path / "mean.zarr"
    result = CliRunner().invoke(subset_command, [str(full), str(out), "--layer-mean", "--steps", "0-2",
                                                 "--mantissa-bits", "3", "--no-video", "--quiet"])
    assert result.exit_code == 0, result.output
    assert str(out) in result.output and "from" in result.output
    attrs = open_store(out).attrs.asdict()
    assert attrs[SUBSET_OF]["layer_mean"] and attrs[SUBSET_OF]["mantissa_bits"] == 3
    assert not attrs[SUBSET_OF]["video"]
    result = CliRunner().invoke(subset_command, [str(full), str(tmp_path / "x.zarr"), "--mantissa-bits", "11"])
    assert result.exit_code == 2


def test_both_branches_are_kept_or_cond_alone(tmp_path):
    source = tmp_path / "two.zarr"
    write_store(source, small_spec(branches=("cond", "uncond")))
    both = subset_store(source, tmp_path / "both.zarr")
    cond = subset_store(source, tmp_path / "cond.zarr", branch="cond")
    assert open_store(both).attrs[Attr.RECORD_OPTIONS][RecordOption.BRANCHES] == ["cond", "uncond"]
    assert open_store(cond).attrs[Attr.RECORD_OPTIONS][RecordOption.BRANCHES] == ["cond"]
    assert "uncond" not in open_store(cond)
    assert check_store(both).ok and check_store(cond).ok
    assert_same(statistics(analysis_of(source, branch="uncond")), statistics(analysis_of(both, branch="uncond")))


def test_a_failure_midway_leaves_no_complete_status(tmp_path, full, monkeypatch):
    import analyzer.subset as subset

    def broken(values, bits):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(subset, "round_mantissa", broken)
    out = tmp_path / "broken.zarr"
    with pytest.raises(OSError):
        subset_store(full, out, mantissa_bits=3)
    attrs = open_store(out).attrs.asdict()
    assert attrs[Attr.STATUS] == schema.STATUS_FAILED
    assert "No space left" in attrs[Attr.ERROR]


def test_a_subset_or_export_of_a_live_recording_is_never_left_recording(tmp_path):
    from analyzer.export_hdf5 import export_hdf5

    write_store(tmp_path / "live.zarr", small_spec(status=schema.STATUS_RECORDING, complete=[True, True, False]))
    cut = open_store(subset_store(tmp_path / "live.zarr", tmp_path / "cut.zarr"))
    assert cut.attrs[Attr.STATUS] == schema.STATUS_INTERRUPTED
    assert cut.attrs[Attr.INTERRUPTED_BY] == "wan-analyze subset"
    assert zarr.open_group(str(tmp_path / "cut.zarr"), mode="r").metadata.consolidated_metadata is not None
    with pytest.raises(StoreError, match="still being recorded"):
        export_hdf5(tmp_path / "live.zarr", tmp_path / "live.h5")
    assert not list(tmp_path.glob("*.h5*")) and not list(tmp_path.glob(".live.h5*"))


def _used_kib(mount_point) -> int:
    disk = os.statvfs(mount_point)
    return (disk.f_blocks - disk.f_bfree) * disk.f_frsize // 1024


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root; the test above covers the status")
def test_a_subset_onto_a_disk_that_fills_up_is_marked_failed(full, tmp_path, tmpfs, monkeypatch):
    import analyzer.subset as subset

    # What the subset takes on tmpfs (whole pages per file), measured on a roomy one: made, then created alone.
    roomy = tmpfs(64 * 1024)
    subset_store(full, roomy / "whole.zarr")
    whole = _used_kib(roomy)
    def stop_after_creating(*args):
        raise OSError(28, "stop after creating")

    with monkeypatch.context() as patch:
        patch.setattr(subset, "_copy", stop_after_creating)
        with pytest.raises(OSError):
            subset_store(full, roomy / "created.zarr")
    created = _used_kib(roomy) - whole
    assert 0 < created < whole

    # Room for the creation and its reserve, and half the copy: the copy fills the disk.
    disk = tmpfs(created + RESERVE_BYTES // 1024 + (whole - created) // 2)
    with pytest.raises(OSError, match="No space left on device"):
        subset_store(full, disk / "cut.zarr")
    attrs = open_store(disk / "cut.zarr").attrs.asdict()
    assert attrs[Attr.STATUS] == schema.STATUS_FAILED  # the reserve made room for it
    assert "No space left on device" in attrs[Attr.ERROR]
