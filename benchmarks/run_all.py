"""All benchmarks in one command; prints each table and writes one JSON.

    python -m benchmarks.run_all --json benchmarks/results/cpu.json          # this machine (CPU)
    python -m benchmarks.run_all --gpu --json benchmarks/results/gpu.json    # on a GPU
    python -m benchmarks.run_all --smoke                                     # seconds; part of make test

1. recording overhead: plain / ours / ours without the store / attention-map-diffusers
2. host memory against the number of steps (2, 8, 32), each run in its own process
3. store cost per (step, layer) for each precision option, and the writer's throughput
4. analyzer on a full-size synthetic store: wall time against one read of the attention array
"""

from __future__ import annotations

import argparse

from benchmarks import analyzer_speed, memory_vs_steps, record_overhead, store_cost
from benchmarks.common import write_json

PLANS = {
    "cpu": {
        "overhead": ["--preset", "cpu-small", "--repeats", "3", "--capture-only", "--peer"],
        "memory": ["--steps", "2,8,32", "--layers", "2"],
        "store": [],
        "analyzer": [],
    },
    "gpu": {
        "overhead": ["--preset", "gpu-480p", "--repeats", "2", "--capture-only", "--peer"],
        "memory": None,  # host memory is the CPU plan's question; the GPU plan reports device memory above
        "store": [],
        "analyzer": None,  # the analyzer runs on laptops: measured by the CPU plan
    },
    "smoke": {
        "overhead": ["--preset", "smoke", "--repeats", "1", "--capture-only", "--peer"],
        "memory": ["--steps", "1,2", "--modes", "ours,peer", "--layers", "1", "--height", "32", "--width", "48",
                   "--frames", "5"],
        "store": ["--grid", "2,3,4", "--tokens", "5", "--chunks", "2"],
        "analyzer": ["--steps", "2", "--layers", "2", "--height", "32", "--width", "48", "--frames", "5"],
    },
}
RUNNERS = {"overhead": record_overhead.main, "memory": memory_vs_steps.main, "store": store_cost.main,
           "analyzer": analyzer_speed.main}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", action="store_true", help="the GPU plan (480x832, 81 frames, bf16, 30 layers)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check that the benchmarks run")
    parser.add_argument("--only", default=None, help="comma-separated subset of: " + ",".join(RUNNERS))
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    plan = PLANS["smoke" if args.smoke else "gpu" if args.gpu else "cpu"]
    wanted = args.only.split(",") if args.only else list(RUNNERS)
    results = {}
    for name in wanted:
        if plan.get(name) is None:
            continue
        print(f"\n== {name} ==", flush=True)
        results[name] = RUNNERS[name](plan[name])
    write_json(args.json, results)
    return results


if __name__ == "__main__":
    main()
