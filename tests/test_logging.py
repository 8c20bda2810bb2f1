"""Python's logging, as the original feature documents it: quiet by default, detail at DEBUG."""

from __future__ import annotations

import logging

from synthetic_store import small_spec, write_store

from analyzer.run import analyze


def test_the_analyzer_logs_what_it_reads_and_writes_at_debug_and_nothing_by_default(tmp_path, caplog):
    write_store(tmp_path / "store", small_spec())
    with caplog.at_level(logging.WARNING):
        analyze(tmp_path / "store", tmp_path / "quiet", outputs="report", progress=False)
    assert not [r for r in caplog.records if r.name.startswith(("analyzer", "shared"))]
    with caplog.at_level(logging.DEBUG):
        analyze(tmp_path / "store", tmp_path / "loud", outputs="report", progress=False)
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("analyzer")]
    assert any(m.startswith("analysing ") and "3 steps" in m for m in messages), messages
    assert sum(m.startswith("read step") for m in messages) == 3, messages
    assert any(m.startswith("wrote report: ") for m in messages), messages


def test_the_recorder_logs_the_pad_key_check_and_its_writes_at_debug(tiny_pipe, small_request, tmp_path, caplog):
    from recorder.record import record

    with caplog.at_level(logging.DEBUG):
        record(tiny_pipe, small_request, tmp_path / "s.zarr", show_progress=False)
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("recorder")]
    checks = [m for m in messages if m.startswith("pad-key check, cond branch, layer ")]
    assert len(checks) == tiny_pipe.transformer.config.num_layers, messages  # once per layer, not per step
    assert any(m.startswith("write job took ") and "queued" in m for m in messages), messages
