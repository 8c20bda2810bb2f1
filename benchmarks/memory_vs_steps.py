"""Host memory against the number of steps: ours should be flat, a keep-in-memory capture grows.

    python -m benchmarks.memory_vs_steps [--steps 2,8,32] [--layers 2]

Each (mode, steps) runs in a fresh child process, so every peak is that run's own:
"extra" is the peak resident memory during the generation minus the resident memory
just before it (model loaded). Modes: plain generation, our recorder (all layers, all
steps, head mean, cond, writing a store), and attention-map-diffusers 1.0.0
(timesteps="all", heads="mean", offload="cpu", then compute()).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

from benchmarks.common import write_json

MODES = ("plain", "ours", "peer")
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # where `-m benchmarks...` resolves


def child(mode: str, steps: int, layers: int, height: int, width: int, frames: int) -> dict:
    import shutil

    import torch

    from benchmarks.memory import PeakRSS
    from benchmarks.wan_shaped import build_wan_shaped_pipeline
    from recorder.record import (
        GenerationRequest,
        generate_plain,
        pipeline_call_kwargs,
        record,
    )

    pipe = build_wan_shaped_pipeline(layers, "cpu", torch.float32, real_vae=False)
    pipe.set_progress_bar_config(disable=True)
    request = GenerationRequest("A cat walks on the grass, under a cloudy sky.", height=height, width=width,
                                num_frames=frames, num_inference_steps=steps, guidance_scale=5.0)
    generate_plain(pipe, GenerationRequest(request.prompt, height=height, width=width, num_frames=frames,
                                           num_inference_steps=1))  # warm caches outside the measurement
    scratch = tempfile.mkdtemp(prefix="wan-mem-")
    info = {}
    try:
        with PeakRSS() as peak:
            if mode == "plain":
                generate_plain(pipe, request)
            elif mode == "ours":
                record(pipe, request, os.path.join(scratch, "s.zarr"), show_progress=False)
            else:
                from benchmarks.peer import peer_generate

                _, info = peer_generate(pipe, pipeline_call_kwargs(pipe, request))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"mode": mode, "steps": steps, "extra_bytes": peak.extra, "peak_bytes": peak.bytes,
            "peer_peak_capture_bytes": info.get("peak_capture_bytes"),
            "peer_budget_exceeded": info.get("budget_exceeded")}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", default="2,8,32")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--height", type=int, default=96)
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--json", default=None)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), args.layers, args.height, args.width,
                               args.frames)))
        return {}
    steps = [int(s) for s in args.steps.split(",")]
    modes = args.modes.split(",")
    rows = []
    for mode in modes:
        for n in steps:
            out = subprocess.run([sys.executable, "-m", "benchmarks.memory_vs_steps", "--child", mode, str(n),
                                  "--layers", str(args.layers), "--height", str(args.height),
                                  "--width", str(args.width), "--frames", str(args.frames)],
                                 check=True, capture_output=True, text=True, cwd=PROJECT_ROOT)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"{mode} {n} steps: +{rows[-1]['extra_bytes'] / 2**20:.0f} MiB", file=sys.stderr)
    print(f"\npeak extra host memory during generation (MiB), {args.layers} layers of the 1.3B shape, "
          f"{args.height}x{args.width}, {args.frames} frames, CPU:")
    print("| mode | " + " | ".join(f"{n} steps" for n in steps) + " |")
    print("| --- |" + " --- |" * len(steps))
    for mode in modes:
        cells = [f"{r['extra_bytes'] / 2**20:.0f}" for r in rows if r["mode"] == mode]
        print(f"| {mode} | " + " | ".join(cells) + " |")
    result = {"layers": args.layers, "height": args.height, "width": args.width, "frames": args.frames,
              "rows": rows}
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
