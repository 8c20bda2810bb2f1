"""The two example scripts run offline on the tiny model and report success by exit code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300)


def test_self_check_passes():
    result = _run(str(EXAMPLES / "test_attention_visualization.py"), "--test_mode")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] == "PASS"
    assert "store:" in result.stdout and "outputs:" in result.stdout


def test_one_prompt_on_the_tiny_model(tmp_path):
    result = _run(str(EXAMPLES / "test_attention_visualization.py"), "--prompt", "A dog runs across the beach",
                  "--output_dir", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "run_000" / "store.zarr").is_dir()
    assert (tmp_path / "run_000" / "attention_analysis_report.md").is_file()


def test_example_runs_in_tiny_mode(tmp_path):
    result = _run(str(EXAMPLES / "example_attention_visualization.py"), "--tiny", "--output_dir", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run_000", "run_001", "run_002"]
    assert "plain:" in result.stdout
