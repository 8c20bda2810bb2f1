"""The benchmarks run (tiny sizes), so they cannot rot; their numbers are not asserted here."""

from __future__ import annotations

import sys

import pytest

pytest.importorskip("attention_map_diffusers", reason="the peer is installed by the Makefile")


def test_every_benchmark_runs_at_smoke_size(tmp_path):
    from benchmarks import run_all

    results = run_all.main(["--smoke", "--json", str(tmp_path / "smoke.json")])
    assert set(results) == {"overhead", "memory", "store", "analyzer"}
    overhead = results["overhead"]
    assert overhead["video_bit_identical"] is True
    assert overhead["recorded_seconds"]["median"] > 0
    assert overhead["peer_seconds"] is not None or overhead["peer_info"]["budget_exceeded"]
    assert {r["mode"] for r in results["memory"]["rows"]} == {"ours", "peer"}
    assert [r["mantissa_bits"] for r in results["store"]["rows"]] == [10, 7, 5, 3]
    assert results["store"]["rows"][0]["max_abs_error"] == 0.0
    assert results["analyzer"]["analyze_s"] > 0
    if sys.platform == "linux":  # the CPU of every process of the analysis, counted by a subreaper
        assert results["analyzer"]["analyze_cpu_s"] > 0
    assert (tmp_path / "smoke.json").exists()
