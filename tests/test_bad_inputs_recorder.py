"""Every bad recorder input, on the command line and in the Python API: one line, an exit code, no store.

Each bad ``wan-record`` invocation must print exactly one ``Error: ...`` line (exit 1), or
click's usage text with one ``Error:`` line (exit 2, a malformed option), never a
traceback, and must leave nothing at OUTPUT. The cases marked ``before_load`` must fail
without the model being loaded (a spy on the loader counts the loads); ``after_load``
cases need the model's shape and must still fail before any store exists.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import time

import pytest
import torch
from click.testing import CliRunner

import recorder.loading
from recorder import inputs
from recorder.cli import main
from recorder.errors import RecordError, RecordInterrupted

SMALL = ["--height", "32", "--width", "48", "--frames", "9", "--steps", "2", "--device", "cpu",
         "--dtype", "float32"]
PROMPT = "a red car"
OFFLINE = {"HF_HUB_OFFLINE": "1"}
HAS_CUDA = torch.cuda.is_available()

PARSE, BEFORE, AFTER = "parse", "before_load", "after_load"

# (id, extra arguments, exit code, fragment of the Error line, stage, OUTPUT or None for tmp/s.zarr)
# In arguments and OUTPUT, {tmp} is the test's directory and {model} the tiny model's.
CASES = [
    # --device
    ("device-tpu", ["--device", "tpu"], 1, "--device tpu is not a device; use auto, cpu, cuda", BEFORE, None),
    ("device-empty", ["--device", ""], 1, "--device '' is not a device", BEFORE, None),
    ("device-upper", ["--device", "CUDA"], 1, "--device CUDA is not a device", BEFORE, None),
    ("device-bad-index", ["--device", "cuda:x"], 1, "--device cuda:x is not a device", BEFORE, None),
    ("device-negative-index", ["--device", "cuda:-1"], 1, "--device cuda:-1 is not a device", BEFORE, None),
    ("device-leading-zero", ["--device", "cuda:01"], 1, "--device cuda:01 is not a device", BEFORE, None),
    ("device-absent-gpu", ["--device", "cuda:99"], 1, "torch sees", BEFORE, None),
    ("device-cuda-without-gpu", ["--device", "cuda"], 1, "torch sees no CUDA GPU", BEFORE, None,
     pytest.mark.skipif(HAS_CUDA, reason="this machine has a GPU")),
    # OUTPUT
    ("output-empty", [], 1, "the output path is empty", BEFORE, ""),
    ("output-blank", [], 1, "the output path is empty", BEFORE, "   "),
    ("output-proc", [], 1, "not a place for a store", BEFORE, "/proc/wan-attention-test.zarr"),
    ("output-sys", [], 1, "not a place for a store", BEFORE, "/sys/wan-attention-test.zarr"),
    ("output-dev", [], 1, "not a place for a store", BEFORE, "/dev/wan-attention-test.zarr"),
    ("output-under-a-file", [], 1, "is a file, not a directory", BEFORE, "{tmp}/a_file/s.zarr"),
    ("output-name-too-long", [], 1, "longer than", BEFORE, "{tmp}/" + "n" * 300 + "/s.zarr"),
    ("output-zip", [], 1, "never a zip, which cannot rewrite its keys", BEFORE, "{tmp}/out.zip"),
    ("output-url-unreachable", ["--storage-option", "endpoint_url=http://127.0.0.1:9", "--storage-option", "key=k",
                                "--storage-option", "secret=s"], 1, "cannot reach s3://bucket/s.zarr", BEFORE,
     "s3://bucket/s.zarr"),
    ("output-storage-option-local", ["--storage-option", "anon=true"], 1, "applies to URLs", BEFORE, None),
    ("storage-option-no-equals", ["--storage-option", "anon"], 2, "takes KEY=VALUE", PARSE, None),
    ("output-exists", [], 1, "already exists; choose another output or pass --overwrite", BEFORE,
     "{tmp}/existing"),
    ("output-is-a-file", [], 2, "is a file", PARSE, "{tmp}/a_file"),
    # sizes, frames, steps, text length
    ("frames-huge", ["--frames", "100001"], 1, "num_frames must be at least 1 and at most 10001 (--frames)",
     BEFORE, None),
    ("frames-zero", ["--frames", "0"], 1, "num_frames must be at least 1 and at most 10001", BEFORE, None),
    ("frames-negative", ["--frames", "-5"], 1, "got -5", BEFORE, None),
    ("height-zero", ["--height", "0"], 1, "height must be at least 1 and at most 8192 (--height)", BEFORE, None),
    ("height-huge", ["--height", "8208"], 1, "height must be at least 1 and at most 8192", BEFORE, None),
    ("width-negative", ["--width", "-16"], 1, "width must be at least 1 and at most 8192 (--width)", BEFORE, None),
    ("width-huge", ["--width", "100000"], 1, "width must be at least 1 and at most 8192", BEFORE, None),
    ("steps-zero", ["--steps", "0"], 1, "num_inference_steps must be at least 1 and at most 10000 (--steps)",
     BEFORE, None),
    ("steps-huge", ["--steps", "10001"], 1, "num_inference_steps must be at least 1 and at most 10000", BEFORE,
     None),
    ("text-length-zero", ["--max-sequence-length", "0"], 1,
     "max_sequence_length must be at least 1 and at most 512 (--max-sequence-length)", BEFORE, None),
    ("text-length-huge", ["--max-sequence-length", "100000"], 1, "at most 512", BEFORE, None),
    ("text-length-negative", ["--max-sequence-length", "-1"], 1, "at most 512", BEFORE, None),
    # memory bound
    ("chunk-zero", ["--query-chunk-mb", "0"], 1, "--query-chunk-mb must be at least 1 and at most 1048576", BEFORE,
     None),
    ("chunk-negative", ["--query-chunk-mb", "-1"], 1, "--query-chunk-mb must be at least 1", BEFORE, None),
    ("chunk-huge", ["--query-chunk-mb", "1048577"], 1, "at most 1048576", BEFORE, None),
    # guidance
    ("guidance-nan", ["--guidance", "nan"], 1, "guidance_scale must be a finite number (--guidance), got nan",
     BEFORE, None),
    ("guidance-inf", ["--guidance", "inf"], 1, "guidance_scale must be a finite number", BEFORE, None),
    ("guidance-minus-inf", ["--guidance", "-inf"], 1, "got -inf", BEFORE, None),
    ("guidance-2-nan", ["--guidance-2", "nan"], 1, "guidance_scale_2 must be a finite number (--guidance-2)",
     BEFORE, None),
    ("guidance-2-inf", ["--guidance-2", "inf"], 1, "guidance_scale_2 must be a finite number", BEFORE, None),
    ("guidance-2-one-expert", ["--guidance-2", "3"], 1, "only for a two-expert model", AFTER, None),
    ("uncond-without-guidance", ["--branch", "both", "--guidance", "1"], 1,
     "uncond branch needs guidance_scale > 1", BEFORE, None),
    ("uncond-with-low-guidance", ["--branch", "both", "--guidance", "0.5"], 1,
     "uncond branch needs guidance_scale > 1", BEFORE, None),
    # seed
    ("seed-2-pow-70", ["--seed", str(2**70)], 1, "seed must be an integer from 0 to 2**64-1", BEFORE, None),
    ("seed-2-pow-64", ["--seed", str(2**64)], 1, f"got {2**64}", BEFORE, None),
    ("seed-negative", ["--seed", "-1"], 1, "seed must be an integer from 0 to 2**64-1", BEFORE, None),
    # capture options
    ("stride-zero", ["--step-stride", "0"], 1, "step stride must be at least 1", BEFORE, None),
    ("stride-negative", ["--step-stride", "-2"], 1, "step stride must be at least 1", BEFORE, None),
    ("heads-negative", ["--heads", "-1"], 1, "heads [-1] are negative (--heads)", BEFORE, None),
    ("heads-duplicate", ["--heads", "0,1,0"], 1, "heads [0] are listed more than once", BEFORE, None),
    ("layers-negative", ["--layers", "1,-3"], 1, "layers [-3] are negative (--layers)", BEFORE, None),
    ("layers-duplicate", ["--layers", "1,1"], 1, "layers [1] are listed more than once", BEFORE, None),
    ("layers-huge", ["--layers", str(2**40)], 1, "are not indices of any model", BEFORE, None),
    ("layers-absent", ["--layers", "7"], 1, "layers [7] do not exist", AFTER, None),
    ("heads-absent", ["--heads", "0,9"], 1, "heads [9] do not exist", AFTER, None),
    ("height-not-multiple", ["--height", "40"], 1, "height 40 is not a positive multiple of 16", AFTER, None),
    # the model
    ("model-garbage", ["--model", "not a model"], 1, "no model directory at 'not a model', and it is not a hub id",
     BEFORE, None),
    ("model-missing-path", ["--model", "{tmp}/nope"], 1, "no model directory at {tmp}/nope", BEFORE, None),
    ("model-empty", ["--model", ""], 1, "--model '' is empty", BEFORE, None),
    ("model-bad-hub-id", ["--model", "a--b/c"], 1, "not a hub id", BEFORE, None),
    ("model-a-file", ["--model", "{tmp}/a_file"], 1, "is a file, not a model directory", BEFORE, None),
    ("model-not-a-pipeline", ["--model", "{tmp}"], 1, "has no model_index.json", BEFORE, None),
    ("model-unknown-hub-id-offline", ["--model", "someone/does-not-exist"], 1,
     "someone/does-not-exist is not in the local Hugging Face cache and HF_HUB_OFFLINE is set", BEFORE, None),
    # click's own usage errors: exit 2
    ("heads-not-integers", ["--heads", "x"], 2, "--heads must be comma-separated integers", PARSE, None),
    ("layers-empty", ["--layers", ","], 2, "--layers is empty", PARSE, None),
    ("mantissa-too-many", ["--mantissa-bits", "11"], 2, "--mantissa-bits", PARSE, None),
    ("mantissa-negative", ["--mantissa-bits", "-1"], 2, "--mantissa-bits", PARSE, None),
    ("branch-unknown", ["--branch", "all"], 2, "--branch", PARSE, None),
    ("dtype-unknown", ["--dtype", "float64"], 2, "--dtype", PARSE, None),
    ("frames-not-a-number", ["--frames", "many"], 2, "--frames", PARSE, None),
    ("guidance-not-a-number", ["--guidance", "strong"], 2, "--guidance", PARSE, None),
    ("steps-fractional", ["--steps", "1.5"], 2, "--steps", PARSE, None),
]
PARAMS = [pytest.param(*case[1:6], id=case[0], marks=case[6:]) for case in CASES]


@pytest.fixture
def loads(monkeypatch):
    """Counts the times a pipeline's weights are read (recorder.loading._from_pretrained)."""
    calls = []
    real = recorder.loading._from_pretrained

    def counting(*args, **kwargs):
        calls.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(recorder.loading, "_from_pretrained", counting)
    return calls


def _fill(text: str, tmp_path, model_dir) -> str:
    return text.replace("{tmp}", str(tmp_path)).replace("{model}", str(model_dir))


def _invoke(args, env=None):
    return CliRunner(env=env).invoke(main, [str(a) for a in args])


def assert_one_error_line(result, code: int, fragment: str, only_line: bool = True) -> str:
    """The contract: the exit code, no traceback, exactly one ``Error:`` line, holding ``fragment``.

    Exit 1 (ours): with ``only_line``, the Error line is the whole output; otherwise (a model was
    loaded, and its progress bars went to stderr) it is the last line. Exit 2 (click's usage
    errors): click's usage text, with one Error line.
    """
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    assert fragment in errors[0], errors[0]
    if code == 2:
        assert lines[0].startswith("Usage:"), result.output
    elif only_line:
        assert lines == errors, result.output
    else:
        assert lines[-1] == errors[0], result.output
    return errors[0]


@pytest.mark.parametrize("extra, code, fragment, stage, output", PARAMS)
def test_bad_recorder_invocation(tiny_model_dir, tmp_path, monkeypatch, loads, extra, code, fragment, stage, output):
    (tmp_path / "a_file").write_text("not a directory")
    (tmp_path / "existing").mkdir()
    (tmp_path / "existing" / "keep.txt").write_text("precious")
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    out = str(tmp_path / "s.zarr") if output is None else _fill(output, tmp_path, tiny_model_dir)
    before = sorted(os.listdir(tmp_path))

    extra = [_fill(a, tmp_path, tiny_model_dir) for a in extra]
    options = dict(zip(SMALL[::2], SMALL[1::2]))
    args = ["--model", str(tiny_model_dir), "--prompt", PROMPT]
    for name, value in options.items():
        if name not in extra:
            args += [name, value]
    started = time.perf_counter()
    result = _invoke([*args, *extra, out], env=OFFLINE)
    elapsed = time.perf_counter() - started

    assert_one_error_line(result, code, _fill(fragment, tmp_path, tiny_model_dir), only_line=stage != AFTER)
    if stage in (PARSE, BEFORE):
        assert loads == [], "the model was loaded before the input was refused"
        assert elapsed < 30
    else:
        assert loads, "this case needs the model; it should fail right after loading it"
    # Nothing was created or changed: not at OUTPUT, not beside it, not in the working directory.
    assert sorted(os.listdir(tmp_path)) == before
    assert os.listdir(work) == []
    if out.strip() and not out.startswith("s3:") and output not in ("{tmp}/existing", "{tmp}/a_file"):
        assert not os.path.lexists(out)
    assert os.listdir(tmp_path / "existing") == ["keep.txt"]
    assert (tmp_path / "a_file").read_text() == "not a directory"


def test_the_table_is_large_and_its_ids_are_unique():
    ids = [case[0] for case in CASES]
    assert len(ids) >= 45
    assert len(set(ids)) == len(ids)


def test_missing_prompt_is_a_usage_error(tmp_path):
    result = _invoke(["--model", str(tmp_path), *SMALL, str(tmp_path / "s.zarr")])
    assert_one_error_line(result, 2, "Missing option '--prompt'")
    assert not (tmp_path / "s.zarr").exists()


@pytest.mark.parametrize("model", ["someone/does-not-exist", "not a model"])
def test_unknown_model_fails_fast_with_one_line_even_online(tmp_path, monkeypatch, model):
    """Without HF_HUB_OFFLINE: one metadata request at most, no retries, one line (no network here, or a 401)."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.chdir(tmp_path)
    started = time.perf_counter()
    result = _invoke(["--model", model, "--prompt", PROMPT, *SMALL, "s.zarr"])
    elapsed = time.perf_counter() - started
    line = assert_one_error_line(result, 1, "")
    assert elapsed < 25, f"took {elapsed:.1f} s"
    if model == "not a model":
        assert "no model directory at 'not a model', and it is not a hub id" in line
    else:
        assert any(text in line for text in (
            "no model someone/does-not-exist on the Hugging Face hub",
            "cannot reach the Hugging Face hub to download someone/does-not-exist",
            "not in the local Hugging Face cache and HF_HUB_OFFLINE is set",  # set in huggingface_hub at import
        )), line
    assert not (tmp_path / "s.zarr").exists()


# --- failures during the run: one line and the right exit code -----------------------------------

@pytest.fixture
def loaded_tiny(monkeypatch, tiny_pipe):
    """load_pipeline returns the session's tiny pipeline at once."""
    monkeypatch.setattr(recorder.loading, "load_pipeline", lambda model, dtype, device: tiny_pipe)
    return tiny_pipe


def _record_args(tmp_path):
    return ["--model", str(tmp_path), "--prompt", PROMPT, *SMALL, str(tmp_path / "s.zarr")]


def test_interrupted_recording_exits_with_the_signal_code(tmp_path, monkeypatch, loaded_tiny):
    (tmp_path / "model_index.json").write_text("{}")

    def interrupted(*args, **kwargs):
        raise RecordInterrupted("interrupted by SIGTERM; the store keeps steps 0..3", "SIGTERM", 143)

    monkeypatch.setattr("recorder.record.record", interrupted)
    result = _invoke(_record_args(tmp_path))
    assert_one_error_line(result, 143, "interrupted by SIGTERM; the store keeps steps 0..3")


def test_ctrl_c_before_recording_is_one_line_and_130(tmp_path, monkeypatch):
    (tmp_path / "model_index.json").write_text("{}")

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(recorder.loading, "load_pipeline", ctrl_c)
    result = _invoke(_record_args(tmp_path))
    assert_one_error_line(result, 130, "interrupted by SIGINT, before the recording started; no store was written")
    assert not (tmp_path / "s.zarr").exists()


@pytest.mark.parametrize("error, fragment", [
    (OSError(28, "No space left on device", "/data/s.zarr"), "No space left on device: /data/s.zarr"),
    (RuntimeError("CUDA out of memory.\nTried to allocate 2 GiB"), "RuntimeError: CUDA out of memory."),
    (ValueError("a model that is not Wan\nmore detail"), "a model that is not Wan"),
    (RecordError("one line from the recorder"), "one line from the recorder"),
])
def test_any_error_in_the_run_is_one_line(tmp_path, monkeypatch, loaded_tiny, error, fragment):
    (tmp_path / "model_index.json").write_text("{}")

    def failing(*args, **kwargs):
        raise error

    monkeypatch.setattr("recorder.record.record", failing)
    line = assert_one_error_line(_invoke(_record_args(tmp_path)), 1, fragment)
    assert "more detail" not in line and "Tried to allocate" not in line


def test_a_traceback_can_be_asked_for(tmp_path, monkeypatch, loaded_tiny):
    (tmp_path / "model_index.json").write_text("{}")

    def failing(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("recorder.record.record", failing)
    monkeypatch.setenv("WAN_ATTENTION_TRACEBACK", "1")
    result = _invoke(_record_args(tmp_path))
    assert isinstance(result.exception, RuntimeError)


# --- the Python API: refused before loading or generating ----------------------------------------

def test_api_from_pretrained_refuses_before_loading(tiny_model_dir, monkeypatch, loads):
    from recorder import WanT2V

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RecordError, match="not a hub id"):
        WanT2V.from_pretrained("not a model")
    with pytest.raises(RecordError, match="is not in the local Hugging Face cache"):
        WanT2V.from_pretrained("someone/does-not-exist")
    with pytest.raises(RecordError, match="device_map: --device tpu is not a device"):
        WanT2V.from_pretrained(tiny_model_dir, device_map="tpu")
    with pytest.raises(RecordError, match="device_map must be None, 'auto' or a device string"):
        WanT2V.from_pretrained(tiny_model_dir, device_map=3)
    with pytest.raises(RecordError, match="dtype float64 is not one of bfloat16, float16, float32"):
        WanT2V.from_pretrained(tiny_model_dir, dtype=torch.float64)
    assert loads == []


API_BAD_GENERATE = [
    (dict(guidance_scale=math.nan), "guidance_scale must be a finite number"),
    (dict(guidance_scale_2=math.inf), "guidance_scale_2 must be a finite number"),
    (dict(guidance_scale_2=3.0), "only for a two-expert model"),
    (dict(seed=2**70), "seed must be an integer from 0 to 2**64-1"),
    (dict(seed=1.5), "seed must be an integer"),
    (dict(num_frames=0), "num_frames must be at least 1"),
    (dict(num_frames=9.0), "num_frames must be an integer"),
    (dict(height=True), "height must be an integer"),
    (dict(width=2**20), "width must be at least 1 and at most 8192"),
    (dict(num_inference_steps=-1), "num_inference_steps must be at least 1"),
    (dict(max_sequence_length=513), "max_sequence_length must be at least 1 and at most 512"),
    (dict(negative_prompt=None), "negative_prompt must be a string"),
]


@pytest.mark.parametrize("visualize", [False, True], ids=["plain", "recorded"])
@pytest.mark.parametrize("kwargs, fragment", API_BAD_GENERATE)
def test_api_generate_refuses_before_the_pipeline_runs(tiny_pipe, tmp_path, monkeypatch, visualize, kwargs,
                                                       fragment):
    from recorder import WanT2V

    def must_not_run(*args, **kwargs):
        raise AssertionError("the pipeline ran")

    monkeypatch.setattr("recorder.api.generate_plain", must_not_run)
    monkeypatch.setattr("recorder.api.record", must_not_run)
    model = WanT2V(tiny_pipe, model_id="tiny", show_progress=False)
    if visualize:
        model.enable_attention_visualization(tmp_path / "runs")
    sizes = dict(num_frames=9, height=32, width=48, num_inference_steps=2, guidance_scale=5.0)
    with pytest.raises(RecordError, match=re.escape(fragment)):
        model.generate("a red car", **{**sizes, **kwargs})
    assert not (tmp_path / "runs").exists()


def test_api_recorded_generate_refuses_uncond_without_guidance(tiny_pipe, tmp_path, monkeypatch):
    from recorder import WanT2V
    from recorder.capture import CaptureConfig

    monkeypatch.setattr("recorder.api.record", lambda *a, **k: pytest.fail("recorded"))
    model = WanT2V(tiny_pipe, model_id="tiny", show_progress=False)
    model.enable_attention_visualization(tmp_path / "runs", capture_config=CaptureConfig(branches=("cond", "uncond")))
    with pytest.raises(RecordError, match="uncond branch needs guidance_scale > 1"):
        model.generate("a red car", num_frames=9, height=32, width=48, num_inference_steps=2, guidance_scale=1.0)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("config_kwargs, fragment", [
    (dict(heads=(0, 0)), "heads [0] are listed more than once"),
    (dict(layers=(-1,)), "layers [-1] are negative"),
    (dict(layers=()), "layers is empty"),
    (dict(query_chunk_bytes=0), "query_chunk_bytes must be at least 1"),
    (dict(query_chunk_bytes=2**41), "query_chunk_bytes must be at least 1 and at most"),
    (dict(layer_mean="yes"), "layer_mean must be True or False"),
])
def test_api_refuses_a_bad_capture_config_when_enabled(tiny_pipe, tmp_path, config_kwargs, fragment):
    from recorder import WanT2V
    from recorder.capture import CaptureConfig

    model = WanT2V(tiny_pipe, model_id="tiny", show_progress=False)
    with pytest.raises(RecordError, match=re.escape(fragment)):
        model.enable_attention_visualization(tmp_path / "runs", capture_config=CaptureConfig(**config_kwargs))
    assert not model.attention_visualization_enabled
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("output_dir, fragment", [
    ("/proc/wan-attention-runs", "not a place for a store"),
    ("", "output_dir is empty"),
    ("{tmp}/a_file", "is a file, not a directory"),
    ("{tmp}/a_file/runs", "is a file, not a directory"),
])
def test_api_refuses_an_output_dir_where_no_store_can_go(tiny_pipe, tmp_path, output_dir, fragment):
    from recorder import WanT2V

    (tmp_path / "a_file").write_text("x")
    model = WanT2V(tiny_pipe, model_id="tiny", show_progress=False)
    with pytest.raises(RecordError, match=fragment):
        model.enable_attention_visualization(output_dir.replace("{tmp}", str(tmp_path)))
    assert not model.attention_visualization_enabled


# --- the checks themselves ----------------------------------------------------------------------

def _request(**fields):
    from recorder.record import GenerationRequest

    return GenerationRequest(**{"prompt": "a cat", **fields})


@pytest.mark.parametrize("fields", [
    {}, dict(num_frames=1), dict(num_frames=inputs.MAX_FRAMES), dict(seed=0), dict(seed=2**64 - 1),
    dict(height=8192, width=16), dict(num_inference_steps=10000), dict(max_sequence_length=1),
    dict(max_sequence_length=512), dict(guidance_scale=-3.0, guidance_scale_2=1e6), dict(prompt=""),
])
def test_valid_edge_requests_pass_every_time(fields):
    request = _request(**fields)
    assert inputs.check_generation_request(request) is None
    assert inputs.check_generation_request(request) is None  # record() checks again: no state, same answer


def test_the_seed_bound_is_what_torch_takes():
    generator = torch.Generator("cpu")
    generator.manual_seed(inputs.MAX_SEED)
    with pytest.raises((RuntimeError, ValueError)):
        generator.manual_seed(inputs.MAX_SEED + 1)
    with pytest.raises(RecordError):
        inputs.check_generation_request(_request(seed=inputs.MAX_SEED + 1))


def test_valid_capture_configs_pass_every_time():
    from recorder.capture import CaptureConfig

    for config in (CaptureConfig(), CaptureConfig(heads=(0, 3), layers=(29, 0), layer_mean=True,
                                                  branches=("cond", "uncond"), step_stride=5,
                                                  query_chunk_bytes=1024)):
        assert inputs.check_capture_config(config) is None
        assert inputs.check_capture_config(config) is None


@pytest.mark.parametrize("bits", [11, -1, 2.5, True, "3"])
def test_storage_precision_outside_0_to_10_is_one_line(bits):
    with pytest.raises(RecordError, match=r"mantissa bits must be an integer 0\.\.10 \(--mantissa-bits\)"):
        inputs.check_storage(bits)
    assert inputs.check_storage(0).mantissa_bits == 0


def test_capture_config_rules_of_its_own_are_reused_as_one_line():
    """CaptureConfig.__post_init__'s rules, met by a config changed after construction, become RecordError."""
    from recorder.capture import CaptureConfig

    config = CaptureConfig()
    object.__setattr__(config, "branches", ("uncond",))
    with pytest.raises(RecordError, match="branches must be 'cond' or 'cond,uncond'"):
        inputs.check_capture_config(config)


@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_devices_that_exist_are_accepted(device):
    expected = ("cuda" if HAS_CUDA else "cpu") if device == "auto" else device
    assert inputs.check_device(device) == expected


def test_inputs_do_not_import_torch():
    code = "import sys, recorder.inputs; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_locate_model_uses_the_cache_and_the_hub_once(monkeypatch):
    """Cached: loaded from the cache (no request). Offline and not cached: refused. Else one request."""
    requests = []
    monkeypatch.setattr(recorder.loading, "check_on_hub", requests.append)
    monkeypatch.setattr(recorder.loading, "in_hub_cache", lambda model: model == "owner/cached")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    assert recorder.loading.locate_model("owner/cached") is True
    assert requests == []
    assert recorder.loading.locate_model("owner/elsewhere") is False
    assert requests == ["owner/elsewhere"]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert recorder.loading.locate_model("owner/cached") is True
    with pytest.raises(RecordError, match="HF_HUB_OFFLINE is set"):
        recorder.loading.locate_model("owner/elsewhere")
    assert requests == ["owner/elsewhere"]
