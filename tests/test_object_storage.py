"""Record into and analyze from a real S3 endpoint (moto's server mode on 127.0.0.1).

What is checked: a recording into ``s3://`` equals the same recording on disk, array by
array; the analyzer's numbers from S3 equal those from disk; a remote read fetches the
metadata in one request (the consolidated copy a finished recording has) and, for a
one-word analysis of one step, only that step's chunks; an existing remote store is
never replaced unless it is ours and finished.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import zarr
from click.testing import CliRunner
from object_storage import MotoServer, moto_available

from analyzer.cli import main as analyze_main
from analyzer.run import analyze
from shared import schema
from shared.schema import Attr
from shared.store import StoreError, create_store, open_store

pytestmark = pytest.mark.skipif(not moto_available(), reason="moto[server] and s3fs are not installed")


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = MotoServer(tmp_path_factory.mktemp("moto") / "requests.log")
    server.make_bucket("studio")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def recorded(s3, tiny_pipe, tmp_path_factory):
    """One request recorded twice: into S3 and onto disk."""
    from recorder.capture import CaptureConfig
    from recorder.record import GenerationRequest, record

    request = GenerationRequest("A cat walks on the grass, under a cloudy sky.", negative_prompt="blurry",
                                height=32, width=48, num_frames=9, num_inference_steps=3, guidance_scale=5.0)
    config = CaptureConfig(branches=("cond", "uncond"))
    url = "s3://studio/runs/cat.zarr"
    local = tmp_path_factory.mktemp("local") / "cat.zarr"
    remote = record(tiny_pipe, request, url, config, storage_options=s3.storage_options(), show_progress=False)
    on_disk = record(tiny_pipe, request, local, config, show_progress=False)
    return {"url": url, "local": str(local), "remote": remote, "on_disk": on_disk}


def _arrays(root: zarr.Group) -> dict[str, np.ndarray]:
    return {path: member[:] for path, member in root.members(max_depth=None) if isinstance(member, zarr.Array)}


def test_a_recording_into_s3_equals_the_same_recording_on_disk(s3, recorded):
    remote = open_store(recorded["url"], s3.storage_options())
    local = open_store(recorded["local"])
    assert remote.attrs[Attr.STATUS] == schema.STATUS_COMPLETE
    remote_arrays, local_arrays = _arrays(remote), _arrays(local)
    assert remote_arrays.keys() == local_arrays.keys()
    for path, values in local_arrays.items():
        assert np.array_equal(remote_arrays[path], values, equal_nan=True), path
    assert np.array_equal(recorded["remote"].frames, recorded["on_disk"].frames)
    # the finished store carries its metadata consolidated in the root zarr.json
    assert remote.metadata.consolidated_metadata is not None
    assert remote["cond"].attrs.asdict() == local["cond"].attrs.asdict()


def test_analysis_from_s3_equals_the_analysis_from_disk(s3, recorded, tmp_path, monkeypatch):
    for name, value in s3.env().items():  # credentials and endpoint the usual way: the environment
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(analyze_main, [recorded["url"], "-o", str(tmp_path / "remote"), "--quiet",
                                               "--outputs", "steps,words,report"])
    assert result.exit_code == 0, result.output
    analyze(recorded["local"], tmp_path / "local", outputs="steps,words,report")

    def numbers(folder):
        text = (folder / "attention_analysis_report.md").read_text()
        text = re.sub(r"\d{4}-\d\d-\d\dT[\d:+]+", "TIME", text)  # the two recordings' end times
        return [line for line in text.splitlines() if not line.startswith("Store ")]  # where, when, how long

    assert numbers(tmp_path / "remote") == numbers(tmp_path / "local")


def test_a_one_word_analysis_reads_the_metadata_once_and_only_the_chunks_it_needs(s3, recorded, tmp_path):
    url = recorded["url"]
    mark = s3.mark()
    analyze(url, tmp_path / "one", outputs="words", words="cat", steps="1", storage_options=s3.storage_options())
    got = [r for r in s3.requests_since(mark) if r.method == "GET" and r.key]
    store_prefix = "runs/cat.zarr/"
    keys = [r.key[len(store_prefix):] for r in got if r.key.startswith(store_prefix)]
    metadata = [k for k in keys if k.endswith("zarr.json")]
    assert metadata == ["zarr.json"], metadata  # the consolidated root: every other zarr.json comes with it
    attention = [k for k in keys if k.startswith("cond/attention/c/")]
    assert attention, keys
    # step 1 is position 1 on the step axis; no other step's map is fetched, and no uncond chunk at all
    assert {k.split("/")[3] for k in attention} == {"1"}, attention
    assert not [k for k in keys if k.startswith("uncond/")], keys
    layers = open_store(url, s3.storage_options())[schema.attention("cond").path].shape[1]
    assert len(attention) == layers  # one chunk per (step, layer) at this size


def test_an_existing_remote_store_is_replaced_only_when_ours_and_finished(s3, recorded, tmp_path):
    from synthetic_store import small_spec, write_store

    options = s3.storage_options()
    with pytest.raises(StoreError, match="already exists"):
        create_store(recorded["url"], _layout_of(tmp_path), storage_options=options)
    # a foreign object under the prefix: never replaced
    import s3fs

    fs = s3fs.S3FileSystem(**options)
    fs.pipe("studio/theirs/notes.txt", b"not a store")
    with pytest.raises(StoreError, match="not a wan-attention store"):
        create_store("s3://studio/theirs", _layout_of(tmp_path), overwrite=True, storage_options=options)
    assert fs.cat("studio/theirs/notes.txt") == b"not a store"
    # a store left at status "recording": object storage cannot tell whether its recorder runs
    write_store(tmp_path / "busy.zarr", small_spec(status=schema.STATUS_RECORDING))
    fs.put(str(tmp_path / "busy.zarr"), "studio/busy.zarr", recursive=True)
    with pytest.raises(StoreError, match="cannot tell whether its recorder"):
        create_store("s3://studio/busy.zarr", _layout_of(tmp_path), overwrite=True, storage_options=options)
    # a finished store of ours, with a file of someone else's beside its keys: the store goes, the file stays
    write_store(tmp_path / "done.zarr", small_spec())
    fs.put(str(tmp_path / "done.zarr"), "studio/done.zarr", recursive=True)
    fs.pipe("studio/done.zarr/README.txt", b"keep me")
    fs.pipe("studio/done.zarr/video/clip.mp4", b"mine too")  # under a store name, yet not the store's
    root = create_store("s3://studio/done.zarr", _layout_of(tmp_path), overwrite=True, storage_options=options)
    assert root.attrs[Attr.STATUS] == schema.STATUS_RECORDING
    assert fs.cat("studio/done.zarr/README.txt") == b"keep me"
    assert fs.cat("studio/done.zarr/video/clip.mp4") == b"mine too"


def test_wan_record_into_s3_then_validate_it_there(s3, tiny_model_dir):
    from recorder.cli import main as record_main

    url = "s3://studio/cli/run.zarr"
    args = ["--model", str(tiny_model_dir), "--device", "cpu", "--dtype", "float32", "--prompt", "a dog on a beach",
            "--height", "32", "--width", "48", "--frames", "9", "--steps", "2", url, *_options(s3)]
    result = CliRunner().invoke(record_main, args)
    assert result.exit_code == 0, result.output
    assert f"recorded {url}" in result.output
    result = CliRunner().invoke(analyze_main, ["validate", url, "--quiet", *_options(s3)])
    assert result.exit_code == 0, result.output
    assert "2 of 2" in result.output and "problems:  none" in result.output
    # a second recording onto it is refused before the model loads
    result = CliRunner().invoke(record_main, args)
    assert result.exit_code == 1 and "already exists" in result.output


def test_xarray_opens_a_finished_store_without_a_consolidation_warning(recorded):
    xr = pytest.importorskip("xarray")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # xarray warns (RuntimeWarning) when the metadata is not consolidated
        dataset = xr.open_zarr(recorded["local"], group="cond")
    assert dataset["attention"].dims == schema.attention("cond").dims


def test_bad_remote_locations_are_one_line(s3, tmp_path):
    runner = CliRunner()
    result = runner.invoke(analyze_main, ["info", "s3://studio/nothing-here.zarr", *_options(s3)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert re.search(r"Error: s3://studio/nothing-here.zarr is not a readable Zarr store", result.output)
    result = runner.invoke(analyze_main, ["info", "gs://bucket/run.zarr"])
    assert result.exit_code == 1 and "gcsfs" in result.output, result.output
    result = runner.invoke(analyze_main, ["info", str(tmp_path), "--storage-option", "anon=true"])
    assert result.exit_code == 1 and "applies to URLs" in result.output, result.output


def _options(s3) -> list[str]:
    return [arg for key, value in (("endpoint_url", s3.endpoint), ("key", "testing"), ("secret", "testing"))
            for arg in ("--storage-option", f"{key}={value}")]


def _layout_of(tmp_path):
    from shared.store import BranchLayout, StoreLayout

    return StoreLayout(num_steps=1, layer_blocks=(0,), grid=(1, 2, 2), num_heads=1,
                       branches=(BranchLayout("cond", 2),), video_shape=(1, 16, 16, 3),
                       attributes={Attr.NUM_FRAMES: 1, Attr.HEIGHT: 16, Attr.WIDTH: 16})
