"""The analyzer runs where torch, diffusers and transformers cannot be imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from synthetic_store import small_spec, write_store

ROOT = Path(__file__).resolve().parents[1]


def test_analyzer_runs_without_torch(tmp_path):
    write_store(tmp_path / "store", small_spec())
    fake = tmp_path / "fake"
    for name in ("torch", "diffusers", "transformers"):
        (fake / name).mkdir(parents=True)
        (fake / name / "__init__.py").write_text(f"raise ImportError('{name} is not allowed in the analyzer')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake), str(ROOT)])}
    script = (
        "import sys\n"
        "from analyzer.cli import main\n"
        "try:\n"
        f"    main([{str(tmp_path / 'store')!r}, '-o', {str(tmp_path / 'out')!r}, '--quiet'])\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        "loaded = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
        "print('ok')\n"
    )
    check = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True, text=True)
    assert "torch is not allowed" in check.stderr  # the fake really blocks torch
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")
    assert (tmp_path / "out" / "attention_analysis_report.md").is_file()
    assert (tmp_path / "out" / "attention_animation.gif").is_file()
