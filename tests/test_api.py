"""WanT2V, the original feature's API, on the tiny model: exactness, state, runs and timings."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from shared import schema
from shared.schema import Attr
from shared.store import open_store

PROMPT = "A cat walks on the grass, under a cloudy sky."
SIZES = dict(num_frames=9, height=32, width=48, num_inference_steps=2, guidance_scale=5.0)
TIMING_KEYS = {"text_encoding_s", "denoising_step_s", "decoding_s", "generation_s", "total_s", "num_frames",
               "num_frames_requested", "height", "width", "num_inference_steps", "notes", "attention_visualization"}
RECORDING_KEYS = {"capture_s", "write_s", "analysis_s", "run_dir", "store", "outputs"}


@pytest.fixture
def model(tiny_pipe):
    from recorder import WanT2V

    return WanT2V(tiny_pipe, model_id="tiny", show_progress=False)


def _attention_state(pipe):
    """Everything the API could leave behind: processors, hooks, instance-level method wrappers."""
    transformers = [t for t in (pipe.transformer, getattr(pipe, "transformer_2", None)) if t is not None]
    processors = [id(block.attn1.processor) for t in transformers for block in t.blocks]
    processors += [id(block.attn2.processor) for t in transformers for block in t.blocks]
    hooks = [(len(t._forward_pre_hooks), len(t._forward_hooks)) for t in transformers]
    wrapped = ["encode_prompt" in vars(pipe), "decode" in vars(pipe.vae), "step" in vars(pipe.scheduler)]
    return processors, hooks, wrapped


def test_import_recorder_does_not_import_torch():
    code = "import sys, recorder; assert 'torch' not in sys.modules; assert recorder.WanT2V.__name__ == 'WanT2V'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_same_video_with_and_without_visualization(model, tmp_path):
    plain, plain_timing = model.generate(PROMPT, **SIZES)
    model.enable_attention_visualization(tmp_path / "runs", outputs="report")
    recorded, recorded_timing = model.generate(PROMPT, **SIZES)
    model.disable_attention_visualization()
    again, _ = model.generate(PROMPT, **SIZES)
    assert plain.shape == (9, 32, 48, 3)
    assert np.array_equal(plain, recorded)
    assert np.array_equal(plain, again)
    assert not plain_timing["attention_visualization"] and recorded_timing["attention_visualization"]
    stored = open_store(recorded_timing["store"])[schema.VIDEO.path][:]
    assert np.array_equal(stored, (recorded * 255).round().astype(np.uint8))


def test_enable_disable_restores_the_exact_pipeline(model, tmp_path):
    before = _attention_state(model.pipe)
    model.enable_attention_visualization(tmp_path / "runs", outputs="report")
    assert model.attention_visualization_enabled
    assert _attention_state(model.pipe) == before  # nothing is installed between calls
    model.generate(PROMPT, **SIZES)
    assert _attention_state(model.pipe) == before
    model.disable_attention_visualization()
    assert not model.attention_visualization_enabled
    assert _attention_state(model.pipe) == before
    model.generate(PROMPT, **SIZES)
    assert _attention_state(model.pipe) == before
    assert not (tmp_path / "runs" / "run_001").exists()  # the plain call recorded nothing


def test_two_calls_make_two_stores_and_never_overwrite(model, tmp_path):
    runs = tmp_path / "runs"
    (runs / "run_000").mkdir(parents=True)
    (runs / "run_000" / "mine.txt").write_text("an earlier run")
    model.enable_attention_visualization(runs, outputs="report,montage")
    _, first = model.generate(PROMPT, **SIZES)
    _, second = model.generate("A red car drives down a long road.", **SIZES)
    assert first["run_dir"] == str(runs / "run_001") and second["run_dir"] == str(runs / "run_002")
    assert (runs / "run_000" / "mine.txt").read_text() == "an earlier run"
    assert open_store(first["store"]).attrs[Attr.PROMPT] == PROMPT
    assert open_store(second["store"]).attrs[Attr.PROMPT] == "A red car drives down a long road."
    for timing in (first, second):
        assert set(timing["outputs"]) == {"report", "montage"}
        assert os.path.dirname(timing["outputs"]["report"]) == timing["run_dir"]


def test_generate_with_attention_visualization_is_one_shot(model, tmp_path):
    video, timing = model.generate_with_attention_visualization(PROMPT, output_dir=tmp_path / "once", **SIZES)
    assert not model.attention_visualization_enabled
    root = open_store(timing["store"])
    assert root.attrs[Attr.STATUS] == schema.STATUS_COMPLETE
    assert root[schema.STEP_COMPLETE.path][:].all()
    expected = {"report", "steps", "montage", "animation", "words", "word_sheet", "segmentation", "padding",
                "layers", "heads", "video", "statistics", "viewer"}
    assert set(timing["outputs"]) == expected
    for written in timing["outputs"].values():
        for path in written if isinstance(written, list) else [written]:
            assert os.path.isfile(path)
    assert video.shape[0] == timing["num_frames"]


@pytest.mark.parametrize("visualize", [False, True])
def test_timing_info_has_every_documented_key(model, tmp_path, visualize):
    if visualize:
        model.enable_attention_visualization(tmp_path / "runs", outputs="report")
    _, timing = model.generate(PROMPT, **SIZES)
    expected = TIMING_KEYS | (RECORDING_KEYS if visualize else set())
    assert set(timing) == expected
    steps = timing["denoising_step_s"]
    assert len(steps) == SIZES["num_inference_steps"]
    seconds = [timing[k] for k in expected if k.endswith("_s") and k != "denoising_step_s"] + steps
    assert all(s >= 0 for s in seconds)
    assert timing["text_encoding_s"] > 0 and timing["decoding_s"] > 0 and all(s > 0 for s in steps)
    parts = timing["text_encoding_s"] + sum(steps) + timing["decoding_s"]
    assert parts <= timing["generation_s"] <= timing["total_s"]
    if visualize:
        assert timing["generation_s"] + timing["analysis_s"] <= timing["total_s"]
        assert timing["store"] == os.path.join(timing["run_dir"], "store.zarr")


@pytest.mark.parametrize("visualize", [False, True])
def test_frame_count_not_4k_plus_1_is_rounded_and_said(model, tmp_path, visualize):
    if visualize:
        model.enable_attention_visualization(tmp_path / "runs", outputs="report")
    with pytest.warns(UserWarning, match="not 4k\\+1"):
        video, timing = model.generate(PROMPT, **{**SIZES, "num_frames": 10})
    assert video.shape[0] == 9 == timing["num_frames"]
    assert timing["num_frames_requested"] == 10
    assert len(timing["notes"]) == 1
    with pytest.warns(UserWarning, match="16 is not 4k\\+1; Wan generates 17"):
        model.generate(PROMPT, **{**SIZES, "num_frames": 16, "num_inference_steps": 1})
    if visualize:
        assert open_store(timing["store"]).attrs[Attr.NUM_FRAMES_REQUESTED] == 10


def test_generate_passes_request_fields_and_refuses_others(model):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a, _ = model.generate(PROMPT, seed=1, negative_prompt="blurry", **SIZES)
    b, _ = model.generate(PROMPT, seed=2, negative_prompt="blurry", **SIZES)
    assert not np.array_equal(a, b)
    with pytest.raises(TypeError, match="unknown arguments: fps"):
        model.generate(PROMPT, fps=8, **SIZES)


def test_from_pretrained_accepts_torch_dtype_and_dtype(tiny_model_dir):
    import torch

    from recorder import WanT2V

    by_torch_dtype = WanT2V.from_pretrained(tiny_model_dir, torch_dtype=torch.float32, show_progress=False)
    by_dtype = WanT2V.from_pretrained(tiny_model_dir, dtype="float32", device_map="auto", show_progress=False)
    assert by_torch_dtype.pipe.transformer.dtype == by_dtype.pipe.transformer.dtype == torch.float32
    assert by_torch_dtype.pipe.vae.dtype == torch.float32
    assert by_torch_dtype.pipe.transformer.device.type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert by_dtype.pipe.transformer.device.type == expected
    a, _ = by_torch_dtype.generate(PROMPT, **SIZES)
    assert a.shape == (9, 32, 48, 3)
    with pytest.raises(ValueError, match="disagree"):
        WanT2V.from_pretrained(tiny_model_dir, torch_dtype=torch.float32, dtype="bfloat16")


def test_unknown_analyzer_options_are_refused_before_generating(tmp_path):
    from recorder.api import WanT2V

    model = WanT2V(pipe=None)
    with pytest.raises(TypeError, match="unknown analyzer options: colour"):
        model.enable_attention_visualization(tmp_path, colour="red")
    from analyzer.errors import AnalyzerError

    with pytest.raises(AnalyzerError, match="unknown output 'montages'"):
        model.enable_attention_visualization(tmp_path, outputs="report,montages")
    assert not model.attention_visualization_enabled
