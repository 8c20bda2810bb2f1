"""``wan-record batch`` as a script that torchrun can start: ``torchrun ... tests/batch_driver.py PROMPTS OUTDIR ...``."""

from __future__ import annotations

from recorder.batch_cli import batch_command

if __name__ == "__main__":
    batch_command(prog_name="wan-record batch")
