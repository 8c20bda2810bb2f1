"""Fixtures: one tiny random-weight Wan pipeline per session, built offline."""

from __future__ import annotations

import pytest
import zarr


@pytest.fixture(scope="session")
def tiny_pipe():
    from recorder.tiny import TinyConfig, build_tiny_pipeline

    return build_tiny_pipeline(TinyConfig())


@pytest.fixture(scope="session")
def tiny_two_expert_pipe():
    from recorder.tiny import TinyConfig, build_tiny_pipeline

    return build_tiny_pipeline(TinyConfig(two_experts=True, num_layers=3))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny pipeline saved with save_pretrained, loaded as --model DIR like a hub id."""
    from recorder.tiny import TinyConfig, save_tiny_pipeline

    return save_tiny_pipeline(tmp_path_factory.mktemp("models") / "tiny", TinyConfig())


@pytest.fixture
def small_request():
    from recorder.record import GenerationRequest

    return GenerationRequest("A cat walks on the grass, under a cloudy sky.", negative_prompt="blurry",
                             height=32, width=48, num_frames=9, num_inference_steps=3, guidance_scale=5.0)


@pytest.fixture(scope="session")
def reference(tiny_model_dir, tmp_path_factory):
    """An uninterrupted wan-record run with the arguments of tests/interrupted_runs.py, to compare against."""
    from interrupted_runs import start

    out = tmp_path_factory.mktemp("reference") / "ref.zarr"
    proc = start(tiny_model_dir, out, "never", 0, extra_env={"WAN_TEST_LOG_WRITES": str(out) + ".writes"})
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return zarr.open_group(str(out), mode="r")
