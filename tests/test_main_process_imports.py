"""The analyzer's main process reads and draws with PIL only: importing it pulls no matplotlib.

matplotlib costs a third of a second of import before the analysis can start reading; the
figures drawn with it run in the encoder processes, which preload it
(``analyzer.encoders.WORKER_PRELOAD``).
"""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_analysis_and_its_command_line_imports_no_matplotlib():
    probe = ("import sys, analyzer.run, analyzer.cli, analyzer.streaming, analyzer.outputs; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_encoder_processes_preload_matplotlib():
    from analyzer import encoders

    assert any(name.startswith("matplotlib") for name in encoders.WORKER_PRELOAD)
