"""Analyzer throughput on a full-size synthetic store, built on disk here.

    python -m benchmarks.analyzer_speed [--steps 50] [--layers 30] [--store PATH] [--keep] [--breakdown]

Builds (or reuses, with --store and --keep) a store the size of a Wan2.1-1.3B recording at
480x832, 81 frames (grid 21 x 30 x 52), 30 tokens, with random softmax maps written step by
step, then reports: the time to read and decompress cond/attention once (a plain zarr read, step by
step, the faster of two passes, after every file of the store has been read once so that
neither side waits for the disk), the full default `wan-analyze` wall time and its peak
resident memory (a child process, so the peak is its own), and their ratio. ``--breakdown``
adds the CPU seconds of the streaming pass and of each output alone. Needs no torch.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks.common import write_json
from shared import grid as latent
from shared import schema
from shared.schema import Attr, BranchAttr, GridKey
from shared.store import BranchLayout, StoreLayout, create_store
from shared.words import group_token_strings

TOKENS = ["\u2581A", "\u2581cat", "\u2581walk", "s", "\u2581on", "\u2581the", "\u2581gr", "ass", ",",
          "\u2581under", "\u2581a", "\u2581cloud", "y", "\u2581sky", "\u2581at", "\u2581sun", "set", ",",
          "\u2581with", "\u2581soft", "\u2581light", "\u2581and", "\u2581long", "\u2581shadow", "s",
          "\u2581in", "\u2581the", "\u2581garden", ".", "</s>"]


def build_store(path: str, steps: int, layers: int, height=480, width=832, frames=81, heads=12) -> None:
    f, h, w = latent.latent_frames(frames), height // 16, width // 16
    t = len(TOKENS)
    attrs = {
        Attr.PROMPT: "A cat walks on the grass, under a cloudy sky at sunset, with soft light and long shadows "
                     "in the garden.",
        Attr.NEGATIVE_PROMPT: "", Attr.SEED: 0, Attr.HEIGHT: height, Attr.WIDTH: width, Attr.NUM_FRAMES: frames,
        Attr.NUM_INFERENCE_STEPS: steps, Attr.GUIDANCE_SCALE: 5.0, Attr.SCHEDULER: "UniPCMultistepScheduler",
        Attr.MODEL_ID: "synthetic (benchmarks/analyzer_speed.py)", Attr.MODEL_CLASS: "WanPipeline",
        Attr.VERSIONS: {"wan_attention": "benchmark"},
        Attr.RECORD_OPTIONS: schema.record_options(list(range(layers))),
        Attr.STARTED_AT: "2026-01-01T00:00:00Z",
        Attr.LATENT_GRID: {GridKey.FRAMES: f, GridKey.HEIGHT: h, GridKey.WIDTH: w, GridKey.PATCH_SIZE: [1, 2, 2],
                           GridKey.VAE_SCALE_TEMPORAL: 4, GridKey.VAE_SCALE_SPATIAL: 8,
                           GridKey.PIXEL_FRAMES: latent.pixel_frames_of_latent(f)},
    }
    layout = StoreLayout(steps, tuple(range(layers)), (f, h, w), heads, (BranchLayout("cond", t),),
                         (frames, height, width, 3), attrs)
    root = create_store(path, layout)
    root["cond"].attrs.update({BranchAttr.PROMPT: attrs[Attr.PROMPT], BranchAttr.TOKENS: TOKENS,
                               BranchAttr.WORDS: group_token_strings(TOKENS), BranchAttr.NUM_KEYS: 512,
                               BranchAttr.NUM_REAL_TOKENS: t})
    root[schema.token_ids("cond").path][:] = np.arange(t) + 3
    rng = np.random.default_rng(0)
    # One random block of softmax maps, shifted per step: realistic sizes and entropy, cheap to make.
    logits = rng.normal(0, 1.5, size=(layers, f, h, w, t + 1)).astype(np.float32)
    logits[..., t] += np.log(512 - t)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    base = probs.astype(np.float16)
    root[schema.VIDEO.path][:] = natural_video(frames, height, width, rng)
    root[schema.VIDEO_WRITTEN.path][:] = True
    for s in range(steps):
        block = np.roll(base, s, axis=2)
        root[schema.attention("cond").path][s] = block[..., :t]
        root[schema.padding_mass("cond").path][s] = block[..., t]
        root[schema.head_entropy("cond").path][s] = rng.uniform(1, 6, size=(layers, heads)).astype(np.float32)
        root[schema.head_padding_mass("cond").path][s] = 0.9
        root[schema.head_token_mass("cond").path][s] = rng.uniform(0, 0.01, size=(layers, heads, t))
        root[schema.STEP_INDEX.path][s] = s
        root[schema.STEP_TIMESTEP.path][s] = 1000 * (1 - s / steps)
        root[schema.STEP_SIGMA.path][s] = 1 - s / steps
        root[schema.STEP_EXPERT.path][s] = 0
        root[schema.STEP_COMPLETE.path][s] = True
        print(f"\rbuilding store: step {s + 1}/{steps}", end="", file=sys.stderr)
    print(file=sys.stderr)
    root.attrs[Attr.STATUS] = schema.STATUS_COMPLETE


def natural_video(frames: int, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Frames that move and compress like a video: smooth colour fields drifting over time, a little noise.

    Uniform random pixels would be the worst case for every encoder (H.264, GIF, JPEG) and are
    nothing a model writes; this keeps the encoders' work near that of a real clip.
    """
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    video = np.empty((frames, height, width, 3), dtype=np.uint8)
    for f in range(frames):
        phase = f / 6.0
        field = np.stack([np.sin(x / 53 + phase) + np.cos(y / 41), np.sin((x + y) / 67 - phase),
                          np.cos(x / 29 - y / 71 + phase / 2)], axis=-1)
        noise = rng.integers(-6, 7, size=(height, width, 3))
        video[f] = np.clip(128 + 60 * field + noise, 0, 255).astype(np.uint8)
    return video


def warm_page_cache(path: str) -> int:
    """Read every file of the store once, so that the timings compare work, not the disk; return the bytes."""
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            with open(os.path.join(folder, name), "rb") as f:
                while chunk := f.read(1 << 24):
                    total += len(chunk)
    return total


def read_once(path: str, passes: int = 2) -> tuple[float, float]:
    """The faster of ``passes`` plain zarr reads of cond/attention, step by step (what "one read" means):
    its wall and CPU seconds (zarr's threads included)."""
    import zarr

    array = zarr.open_group(path, mode="r")[schema.attention("cond").path]
    best = (float("inf"), float("inf"))
    for _ in range(passes):
        start, cpu = time.perf_counter(), time.process_time()
        for s in range(array.shape[0]):
            array[s]
        best = min(best, (time.perf_counter() - start, time.process_time() - cpu))
    return best


def output_costs(path: str, out: str) -> dict[str, float]:
    """CPU seconds of the streaming pass alone (``statistics``), and what each other output adds to it.

    In this process, with no encoder processes, one output at a time, the smaller of two runs
    (three for the pass alone): where the time goes. Expect about half a second of noise on a
    shared machine.
    """
    from analyzer import outputs, run

    def cpu(kinds: str) -> float:
        shutil.rmtree(out, ignore_errors=True)
        start = time.process_time()
        run.analyze(path, out, outputs=kinds, progress=False, encoder_processes=0)
        return time.process_time() - start

    base = min(cpu("statistics") for _ in range(3))
    costs = {"pass (with statistics)": base}
    for name in outputs.names():
        if name != "statistics":  # the smaller of two runs: a busy machine only ever adds
            costs[name] = max(0.0, min(cpu(name) for _ in range(2)) - base)
            print(f"  {name}: +{costs[name]:.2f} CPU s", file=sys.stderr)
    return costs


# Run by an intermediate process: it waits for wan-analyze, then (made a "child subreaper" on Linux) for the
# processes wan-analyze left behind, the encoder processes' fork server among them, so that RUSAGE_CHILDREN
# holds the CPU of every process of the analysis; -1 where it cannot (no prctl).
_PROBE = """
import ctypes, os, resource, subprocess, sys
try:
    reaper = ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
except (OSError, AttributeError):
    reaper = False
subprocess.run(sys.argv[1:], check=True)
while reaper:
    try:
        os.wait()
    except ChildProcessError:
        break
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(usage.ru_maxrss, usage.ru_utime + usage.ru_stime if reaper else -1)
"""


def analyze_in_child(path: str, out: str) -> tuple[float, int, float | None]:
    """Run wan-analyze in a fresh process; return its wall time, its own peak RSS and the CPU seconds of all
    its processes (None where they cannot be counted).

    An intermediate Python process runs it, so that RUSAGE_CHILDREN covers the analyzer
    alone and not other children this process started before.
    """
    exe = os.path.join(os.path.dirname(sys.executable), "wan-analyze")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _PROBE, exe, path, "-o", out, "--quiet"], check=True,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    peak_kib, cpu = done.stdout.strip().splitlines()[-1].split()
    return seconds, int(peak_kib) * 1024, (float(cpu) if float(cpu) >= 0 else None)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--layers", type=int, default=30)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=832)
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--store", default=None, help="where the store goes (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the store, and reuse it if it exists")
    parser.add_argument("--json", default=None)
    parser.add_argument("--breakdown", action="store_true",
                        help="also the CPU seconds of the pass and of each output alone (slow: an analysis each)")
    args = parser.parse_args(argv)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    scratch = tempfile.mkdtemp(prefix="wan-analyzer-bench-")
    store = args.store or os.path.join(scratch, "store.zarr")
    try:
        if not (args.keep and os.path.exists(store)):
            start = time.perf_counter()
            build_store(store, args.steps, args.layers, args.height, args.width, args.frames)
            print(f"built {store} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        warm_page_cache(store)
        read_s, read_cpu = read_once(store)
        analyze_s, peak, analyze_cpu = analyze_in_child(store, os.path.join(scratch, "analysis"))
        costs = output_costs(store, os.path.join(scratch, "breakdown")) if args.breakdown else None
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    result = {"steps": args.steps, "layers": args.layers, "height": args.height, "width": args.width,
              "frames": args.frames, "read_once_s": read_s, "analyze_s": analyze_s,
              "ratio": analyze_s / read_s, "analyze_peak_rss_bytes": peak, "cpus": cores,
              "read_once_cpu_s": read_cpu, "analyze_cpu_s": analyze_cpu,
              "cpu_floor_ratio": None if analyze_cpu is None else analyze_cpu / cores / read_s,
              "cpu_seconds_by_output": costs}
    print(f"| store | read+decompress once | full wan-analyze | ratio | peak RSS |\n| --- | --- | --- | --- | --- |\n"
          f"| {args.steps} steps x {args.layers} layers, {args.height}x{args.width}, {args.frames} frames | "
          f"{read_s:.1f} s | {analyze_s:.1f} s | {analyze_s / read_s:.2f}x | {peak / 2**30:.2f} GiB |")
    if analyze_cpu is not None:  # what no scheduling can beat: all the CPU spread evenly over every core
        print(f"\nCPU: the read {read_cpu:.1f} s; the analysis {analyze_cpu:.1f} s over all its processes, "
              f"at least {analyze_cpu / cores:.1f} s of wall time on {cores} cores "
              f"({analyze_cpu / cores / read_s:.2f}x the read)")
    if costs:
        print("\n| where the CPU goes | CPU s |\n| --- | --- |")
        for name, seconds in costs.items():
            print(f"| {name} | {seconds:.2f} |")
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
