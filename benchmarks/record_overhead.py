"""Recording overhead: plain generation against generation with the recorder, same pipeline, same inputs.

    python -m benchmarks.record_overhead --preset cpu-small      # here: 17 frames at 96x160
    python -m benchmarks.record_overhead --preset gpu-480p       # on a GPU: 81 frames at 480x832, bf16

Prints a table and writes JSON (--json). Each repeat runs plain then recorded; the
median and the spread (min..max) are reported. Also checks that the recorded video is
bit-identical to the plain one, and reports the store's size and compression ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

from benchmarks.common import write_json
from benchmarks.memory import PeakRSS
from benchmarks.wan_shaped import build_wan_shaped_pipeline
from recorder.capture import AttentionCapture, CaptureConfig
from recorder.record import GenerationRequest, generate_plain, pipeline_call_kwargs, record
from recorder.tokens import prompt_tokens
from shared import schema
from shared.store import stored_bytes


def capture_only(pipe, request: GenerationRequest):
    """The capture and its probabilities, with the results dropped: isolates capture from writing."""
    tokens = len(prompt_tokens(pipe.tokenizer, request.prompt, request.max_sequence_length).ids)
    capture = AttentionCapture(pipe, CaptureConfig(), lambda *a: None, {"cond": tokens})

    def on_step_end(_pipe, _i, _t, _kwargs):
        capture.on_step_end()
        return {}

    with capture:
        return pipe(**pipeline_call_kwargs(pipe, request), callback_on_step_end=on_step_end).frames[0]

PRESETS = {
    "cpu-small": dict(device="cpu", dtype="float32", layers=4, height=96, width=160, frames=17, steps=4,
                      real_vae=False),
    "gpu-480p": dict(device="cuda", dtype="bfloat16", layers=30, height=480, width=832, frames=81, steps=10,
                     real_vae=True),
    "smoke": dict(device="cpu", dtype="float32", layers=1, height=32, width=48, frames=5, steps=2, real_vae=False),
}


def store_cost(path: str) -> dict:
    """Bytes on disk against bytes in memory of the attention arrays."""
    import zarr

    root = zarr.open_group(path, mode="r")
    logical = disk = 0
    for name in (schema.attention("cond").path, schema.padding_mass("cond").path):
        array = root[name]
        logical += array.nbytes
        disk += stored_bytes(array)
    total = stored_bytes(root)
    return {"attention_logical_bytes": logical, "attention_disk_bytes": disk,
            "compression_ratio": logical / disk if disk else None, "store_bytes": total}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(run, device: str) -> dict:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    _sync(device)
    with PeakRSS() as peak:
        start = time.perf_counter()
        frames = run()
        _sync(device)
        seconds = time.perf_counter() - start
    result = {"seconds": seconds, "peak_host_rss_bytes": peak.bytes, "frames": frames}
    if device.startswith("cuda"):
        result["peak_device_extra_bytes"] = torch.cuda.max_memory_allocated() - base
    return result


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu-small")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None, help="write the numbers here")
    parser.add_argument("--layers", type=int, default=None, help="override the preset's transformer blocks")
    parser.add_argument("--steps", type=int, default=None, help="override the preset's steps")
    parser.add_argument("--keep", default=None, help="keep the last recorded store at this path")
    parser.add_argument("--capture-only", action="store_true",
                        help="also time the capture without the store (probabilities computed, then dropped)")
    parser.add_argument("--peer", action="store_true",
                        help="also time attention-map-diffusers 1.0.0 (capture + compute) on the same inputs")
    args = parser.parse_args(argv)
    preset = dict(PRESETS[args.preset])
    for key in ("layers", "steps"):
        if getattr(args, key) is not None:
            preset[key] = getattr(args, key)
    device = preset["device"]

    pipe = build_wan_shaped_pipeline(preset["layers"], device, getattr(torch, preset["dtype"]),
                                     real_vae=preset["real_vae"])
    pipe.set_progress_bar_config(disable=True)
    request = GenerationRequest("A cat walks on the grass, under a cloudy sky.", height=preset["height"],
                                width=preset["width"], num_frames=preset["frames"],
                                num_inference_steps=preset["steps"], guidance_scale=5.0)
    warm = GenerationRequest(request.prompt, height=request.height, width=request.width,
                             num_frames=request.num_frames, num_inference_steps=1)
    generate_plain(pipe, warm)  # kernels, allocator and caches warmed outside the timings

    scratch = tempfile.mkdtemp(prefix="wan-bench-")
    plain_runs, recorded_runs, capture_runs, peer_runs, identical, cost, timings = [], [], [], [], True, None, []
    peer_info = None
    try:
        for repeat in range(args.repeats):
            plain = measure(lambda: generate_plain(pipe, request), device)
            reference = plain.pop("frames")  # later runs' frames are compared to it, then dropped
            out = os.path.join(scratch, f"r{repeat}.zarr")
            recordings = []
            recorded = measure(lambda: recordings.append(record(pipe, request, out, CaptureConfig(),
                                                                show_progress=False)) or recordings[-1].frames,
                               device)
            timings.append(recordings[-1].timing)
            recordings.clear()
            identical &= bool(np.array_equal(reference, recorded.pop("frames"), equal_nan=True))
            if args.capture_only:
                captured = measure(lambda: capture_only(pipe, request), device)
                identical &= bool(np.array_equal(reference, captured.pop("frames"), equal_nan=True))
                capture_runs.append(captured)
            if args.peer:
                from benchmarks.peer import peer_generate

                infos = []
                peer = measure(lambda: infos.append(peer_generate(pipe, pipeline_call_kwargs(pipe, request)))
                               or infos[-1][0], device)
                peer_info = infos[-1][1]
                infos.clear()
                frames = peer.pop("frames")
                if frames is not None:
                    identical &= bool(np.array_equal(reference, frames, equal_nan=True))
                    peer_runs.append(peer)
            cost = store_cost(out)
            if args.keep and repeat == args.repeats - 1:
                shutil.move(out, args.keep)
            else:
                shutil.rmtree(out)
            plain_runs.append(plain)
            recorded_runs.append(recorded)
            print(f"repeat {repeat}: plain {plain['seconds']:.2f} s, recorded {recorded['seconds']:.2f} s",
                  file=sys.stderr)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    def summary(runs, key):
        values = [r[key] for r in runs if key in r]
        return {"median": statistics.median(values), "min": min(values), "max": max(values)} if values else None

    result = {
        "preset": args.preset, **preset, "repeats": args.repeats,
        "device_name": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
        "torch": torch.__version__,
        "plain_seconds": summary(plain_runs, "seconds"),
        "recorded_seconds": summary(recorded_runs, "seconds"),
        "overhead_ratio": statistics.median(r["seconds"] / p["seconds"] for r, p in zip(recorded_runs, plain_runs)),
        "plain_peak_host_rss_bytes": summary(plain_runs, "peak_host_rss_bytes"),
        "recorded_peak_host_rss_bytes": summary(recorded_runs, "peak_host_rss_bytes"),
        "plain_peak_device_extra_bytes": summary(plain_runs, "peak_device_extra_bytes"),
        "recorded_peak_device_extra_bytes": summary(recorded_runs, "peak_device_extra_bytes"),
        "capture_only_seconds": summary(capture_runs, "seconds"),
        "peer_seconds": summary(peer_runs, "seconds"),
        "peer_peak_host_rss_bytes": summary(peer_runs, "peak_host_rss_bytes"),
        "peer_peak_device_extra_bytes": summary(peer_runs, "peak_device_extra_bytes"),
        "peer_info": peer_info,
        "peer_overhead_ratio": statistics.median(r["seconds"] / p["seconds"] for r, p in zip(peer_runs, plain_runs))
        if peer_runs else None,
        "recorder_timing": timings,
        "video_bit_identical": identical,
        "store": cost,
    }
    gib = 2**30
    print(f"\n{args.preset}: {preset['layers']} layers, {preset['height']}x{preset['width']}, {preset['frames']} frames, "
          f"{preset['steps']} steps, {preset['dtype']} on {result['device_name']}")
    print("| run | wall s (median, min..max) | peak host RSS GiB | peak device extra GiB |")
    print("| --- | --- | --- | --- |")
    for name, runs in (("plain", plain_runs), ("recorded (ours)", recorded_runs), ("capture only (ours)", capture_runs),
                       ("attention-map-diffusers", peer_runs)):
        if not runs:
            continue
        s = summary(runs, "seconds")
        host = summary(runs, "peak_host_rss_bytes")["median"] / gib
        dev = summary(runs, "peak_device_extra_bytes")
        print(f"| {name} | {s['median']:.2f} ({s['min']:.2f}..{s['max']:.2f}) | {host:.2f} | "
              f"{dev['median'] / gib:.2f} |" if dev else f"| {name} | {s['median']:.2f} ({s['min']:.2f}..{s['max']:.2f})"
              f" | {host:.2f} | - |")
    print(f"overhead: {100 * (result['overhead_ratio'] - 1):+.1f}%  video bit-identical: {identical}  "
          f"store {cost['store_bytes'] / 2**20:.1f} MiB, attention compression {cost['compression_ratio']:.2f}x")
    if peer_runs:
        print(f"attention-map-diffusers overhead: {100 * (result['peer_overhead_ratio'] - 1):+.1f}%  "
              f"(peak capture bytes {peer_info['peak_capture_bytes'] / 2**20:.0f} MiB)")
    elif args.peer:
        print(f"attention-map-diffusers: {peer_info['budget_exceeded']}")
    last = timings[-1]
    print(f"recorder's own timing (last run): generation {last['generation_s']:.2f} s, capture "
          f"{last['capture_s']:.3f} s, writing {last['write_s']:.2f} s (background thread)")
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
