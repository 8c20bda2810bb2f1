"""Fixtures: one tiny random-weight Wan pipeline per session, built offline; a small real tmpfs."""

from __future__ import annotations

import subprocess
from pathlib import Path

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


@pytest.fixture
def tmpfs(tmp_path):
    """Mount a small tmpfs of the size the test asks for (root only); unmounted afterwards."""
    mounted = []

    def mount(size_kib: int, *options: str) -> Path:
        point = tmp_path / f"tmpfs{len(mounted)}"
        point.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join([f"size={size_kib}k", *options]), "tmpfs",
                                 str(point)], capture_output=True, text=True)
        if result.returncode:
            pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip() or 'not root'}); "
                        "the fake full file systems cover the same paths")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


@pytest.fixture(autouse=True)
def _no_recorder_outlives_its_test():
    yield
    from interrupted_runs import kill_leftovers

    kill_leftovers()
