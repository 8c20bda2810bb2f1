"""``wan-record batch``: many prompts, one store each, under torchrun (2 CPU processes, gloo) or alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from recorder import batch
from recorder.batch_cli import batch_command
from shared import schema
from shared.store import open_store, store_arrays, stored_bytes

HERE = Path(__file__).parent
DRIVER = HERE / "batch_driver.py"
TORCHRUN = Path(sys.executable).parent / "torchrun"
PROMPTS = ["a cat walks on the grass", "a dog runs on the beach", "# a comment, not a prompt",
           "", "A red car drives through the rain!", "two birds", "an old man reads a book", "the sea at night"]
SEED_BASE = 7
SMALL = ["--device", "cpu", "--dtype", "float32", "--height", "32", "--width", "48", "--frames", "9",
         "--steps", "2"]


def _env() -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env["PYTHONPATH"] = str(HERE.parent)
    return env


def _torchrun(model_dir, prompts: Path, outdir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(TORCHRUN), "--standalone", "--nproc-per-node", "2", str(DRIVER), str(prompts),
                           str(outdir), "--model", str(model_dir), "--seed", str(SEED_BASE), *SMALL],
                          capture_output=True, text=True, env=_env(), cwd=str(HERE.parent), timeout=600,
                          check=False)


def _catalog(outdir: Path) -> dict:
    return json.loads((outdir / batch.CATALOG_NAME).read_text())


def _mtimes(store: Path) -> dict:
    return {str(p.relative_to(store)): p.stat().st_mtime_ns for p in store.rglob("*") if p.is_file()}


def _set_status(store: Path, status: str) -> None:
    meta = json.loads((store / "zarr.json").read_text())
    meta["attributes"]["status"] = status
    (store / "zarr.json").write_text(json.dumps(meta))


@pytest.fixture(scope="module")
def study(tiny_model_dir, tmp_path_factory):
    """Two torchrun runs over six prompts: the first records them; before the second, store 2 is left at
    'recording' (a dead process) and store 3 at 'failed'."""
    root = tmp_path_factory.mktemp("batch")
    prompts = root / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    outdir = root / "study"
    started = time.perf_counter()
    first = _torchrun(tiny_model_dir, prompts, outdir)
    first_s = time.perf_counter() - started
    assert first.returncode == 0, first.stderr[-4000:]
    first_catalog = _catalog(outdir)
    stores = [outdir / item["store"] for item in first_catalog["stores"]]
    _set_status(stores[2], schema.STATUS_RECORDING)
    _set_status(stores[3], schema.STATUS_FAILED)
    before = {i: _mtimes(store) for i, store in enumerate(stores)}
    started = time.perf_counter()
    second = _torchrun(tiny_model_dir, prompts, outdir)
    second_s = time.perf_counter() - started
    assert second.returncode == 0, second.stderr[-4000:]
    print(f"first run {first_s:.1f} s, rerun {second_s:.1f} s")
    return {"outdir": outdir, "first": first, "first_catalog": first_catalog, "second": second,
            "second_catalog": _catalog(outdir), "stores": stores, "before": before}


def test_torchrun_records_every_prompt_once_and_catalogs_it(study):
    prompts = [p for p in PROMPTS if p and not p.startswith("#")]
    catalog = study["first_catalog"]
    assert catalog["jobs"] == 6 and catalog["ok"] == 6 and catalog["statuses"] == {"complete": 6}
    assert catalog["world_size"] == 2
    for i, (item, prompt) in enumerate(zip(catalog["stores"], prompts)):
        assert item["prompt"] == prompt and item["seed"] == SEED_BASE + i and item["index"] == i
        assert item["store"].startswith(f"{i:04d}-") and item["store"].endswith(".zarr")
        assert item["status"] == "complete" and item["action"] == "recorded" and item["error"] is None
        assert item["rank"] == i % 2  # jobs[rank::world_size]
        assert item["options"]["height"] == 32 and item["options"]["steps"] == 2
        root = open_store(study["outdir"] / item["store"])
        assert item["bytes"] == stored_bytes(root) > 0
        assert root.attrs["prompt"] == prompt and root.attrs["seed"] == SEED_BASE + i
    assert catalog["stores"][2]["store"] == "0002-a-red-car-drives-through-the-rain.zarr"
    assert sorted(p.name for p in study["outdir"].iterdir() if p.suffix == ".zarr") == \
        sorted(item["store"] for item in catalog["stores"])
    err = study["first"].stderr
    assert sum(": recorded in " in line for line in err.splitlines()) == 6, err[-3000:]


def test_rerun_skips_complete_stores_and_redoes_failed_and_abandoned_ones(study):
    catalog = study["second_catalog"]
    actions = [item["action"] for item in catalog["stores"]]
    assert actions == ["skipped", "skipped", "recorded", "recorded", "skipped", "skipped"]
    assert catalog["ok"] == 6 and catalog["statuses"] == {"complete": 6}
    for i in (0, 1, 4, 5):  # untouched: not one file written
        assert _mtimes(study["stores"][i]) == study["before"][i], i
    for i in (2, 3):
        assert open_store(study["stores"][i]).attrs["status"] == "complete"
    assert "redoing status 'recording'" in study["second"].stderr
    assert "redoing status 'failed'" in study["second"].stderr


@pytest.fixture
def one_thread():
    """torch on one CPU thread, as torchrun runs each process (OMP_NUM_THREADS=1): a CPU convolution may round
    differently on another number of threads, and the video then differs in a last bit."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_each_store_equals_a_single_process_recording(study, tiny_model_dir, tmp_path, one_thread):
    from recorder.loading import load_pipeline
    from recorder.record import GenerationRequest, record

    pipe = load_pipeline(str(tiny_model_dir), dtype="float32", device="cpu")
    for item in study["second_catalog"]["stores"]:
        reference = tmp_path / item["store"]
        record(pipe, GenerationRequest(item["prompt"], seed=item["seed"], height=32, width=48, num_frames=9,
                                       num_inference_steps=2), reference, model_id=str(tiny_model_dir),
               show_progress=False)
        want, got = open_store(reference), open_store(study["outdir"] / item["store"])
        for spec in store_arrays(want.attrs.asdict()):
            assert np.asarray(got[spec.path][...]).tobytes() == np.asarray(want[spec.path][...]).tobytes(), \
                (item["store"], spec.path)
        assert got.attrs["seed"] == want.attrs["seed"] and got.attrs["prompt"] == want.attrs["prompt"]


def test_one_failing_job_does_not_stop_the_others(tiny_model_dir, tmp_path, monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    outdir = tmp_path / "study"
    (outdir / "notours.zarr").mkdir(parents=True)
    (outdir / "notours.zarr" / "precious.txt").write_text("keep me")
    prompts = tmp_path / "jobs.jsonl"
    prompts.write_text("\n".join(json.dumps(line) for line in [
        {"prompt": "too tall", "height": 40},  # passes the checks up front; the model needs multiples of 16
        {"prompt": "somebody's directory", "name": "notours"},
        {"prompt": "a cat", "seed": 3, "name": "cat"},
    ]) + "\n")
    result = CliRunner().invoke(batch_command, [str(prompts), str(outdir), "--model", str(tiny_model_dir), *SMALL])
    assert result.exit_code == 1, result.output
    catalog = _catalog(outdir)
    by_name = {item["store"]: item for item in catalog["stores"]}
    assert by_name["cat.zarr"]["status"] == "complete" and by_name["cat.zarr"]["ok"]
    assert by_name["cat.zarr"]["seed"] == 3
    tall = by_name["0000-too-tall.zarr"]
    assert tall["status"] == batch.MISSING and tall["action"] == "failed" and "multiple of 16" in tall["error"]
    mine = by_name["notours.zarr"]
    assert mine["action"] == "failed" and "not a wan-attention store" in mine["error"]
    assert (outdir / "notours.zarr" / "precious.txt").read_text() == "keep me"
    failed = [line for line in result.output.splitlines() if line.startswith("failed: ")]
    assert len(failed) == 2, result.output

    # Nothing to record: no model loads. A complete store of another seed is never skipped nor replaced;
    # with --keep-failed a store that is not complete is left as it is.
    import recorder.loading

    monkeypatch.setattr(recorder.loading, "load_pipeline", lambda *a, **k: pytest.fail("the model was loaded"))
    prompts.write_text('{"prompt": "a cat", "seed": 4, "name": "cat"}\n{"prompt": "mine", "name": "notours"}\n')
    result = CliRunner().invoke(batch_command, [str(prompts), str(outdir), "--model", str(tiny_model_dir),
                                                "--keep-failed", *SMALL])
    assert result.exit_code == 1, result.output
    by_name = {item["store"]: item for item in _catalog(outdir)["stores"]}
    assert "holds another recording (seed 3, not 4)" in by_name["cat.zarr"]["error"]
    assert by_name["cat.zarr"]["status"] == "complete" and not by_name["cat.zarr"]["ok"]
    assert open_store(outdir / "cat.zarr").attrs["seed"] == 3
    assert "--overwrite-failed" in by_name["notours.zarr"]["error"]


def test_a_bad_line_is_one_line_before_any_model_loads(tmp_path, monkeypatch):
    import recorder.loading

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(recorder.loading, "load_pipeline", no_loading)
    prompts = tmp_path / "jobs.jsonl"
    prompts.write_text('{"prompt": "a cat"}\n{"prompt": "a dog", "seeed": 4}\n')
    result = CliRunner().invoke(batch_command, [str(prompts), str(tmp_path / "out"), "--model", "no/such-model"])
    assert result.exit_code == 2
    expected = f"Error: {prompts} line 2: unknown key 'seeed'; a line may give {', '.join(batch.JOB_KEYS)}"
    assert result.output.strip().splitlines() == [expected]
    assert not (tmp_path / "out").exists()
    prompts.write_text('{"prompt": "a cat"}\n\n{"prompt": "a dog", "steps": 0}\n')
    result = CliRunner().invoke(batch_command, [str(prompts), str(tmp_path / "out")])
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert f"{prompts} line 3: num_inference_steps must be at least 1" in result.output
    prompts.write_text('{"prompt": "a cat"}\n["a dog"]\n')
    result = CliRunner().invoke(batch_command, [str(prompts), str(tmp_path / "out")])
    assert result.exit_code == 2 and "line 2: a line must be a JSON object" in result.output


def test_parsing_names_and_seeds(tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("# study\n\n  Ünïcode prompt, with punctuation!  \n{not json in a .txt}\nsame\nsame\n")
    jobs = batch.make_jobs(str(prompts), str(tmp_path / "out"), batch.Defaults(seed=10))
    assert [job.name for job in jobs] == ["0000-unicode-prompt-with-punctuation.zarr", "0001-not-json-in-a-txt.zarr",
                                         "0002-same.zarr", "0003-same.zarr"]
    assert [job.request.seed for job in jobs] == [10, 11, 12, 13]
    assert [job.line for job in jobs] == [3, 4, 5, 6]
    assert jobs[0].request.prompt == "Ünïcode prompt, with punctuation!"
    assert batch.slug("x" * 100) == "x" * batch.SLUG_CHARS
    duplicate = tmp_path / "d.jsonl"
    duplicate.write_text('{"prompt": "a", "name": "n"}\n{"prompt": "b", "name": "n.zarr"}\n')
    with pytest.raises(batch.BatchError, match="line 2: the store name n.zarr is also line 1's"):
        batch.make_jobs(str(duplicate), str(tmp_path / "out"))
    options = tmp_path / "o.jsonl"
    options.write_text('{"prompt": "a", "layers": [0], "heads": "0,1", "branch": "both", "layer_mean": true}\n')
    (job,) = batch.make_jobs(str(options), str(tmp_path / "out"))
    assert job.config.layers == (0,) and job.config.heads == (0, 1) and job.config.branches == ("cond", "uncond")
    assert job.config.layer_mean is True
    options.write_text('{"prompt": "a", "branch": "both", "guidance": 1.0}\n')
    with pytest.raises(batch.BatchError, match="line 1: the uncond branch needs guidance_scale > 1"):
        batch.make_jobs(str(options), str(tmp_path / "out"))


def test_place_from_the_environment():
    assert batch.place_from_env({}) == batch.Place(0, 1, 0)
    assert batch.place_from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == batch.Place(3, 4, 1)
    with pytest.raises(batch.BatchError, match="RANK=4 and WORLD_SIZE=4"):
        batch.place_from_env({"RANK": "4", "WORLD_SIZE": "4"})
