"""Store cost: bytes on disk per recorded (step, layer), per precision option, and the
background writer's throughput alone.

    python -m benchmarks.store_cost [--grid 21,30,52] [--tokens 30] [--chunks 24] [--from-store STORE]

Maps are random softmax rows over the real tokens plus a merged pad key, like a
random-weight recording (or chunks read from --from-store). Each precision option writes
the same maps through the recorder's own path (round_mantissa, then the BackgroundWriter
into a store made by shared.store.create_store), and reports disk bytes per (step, layer),
the compression ratio, the maximum error against float16, and MB/s of raw maps written.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import numpy as np
import torch

from benchmarks.common import write_json
from recorder.precision import round_mantissa
from recorder.writer import BackgroundWriter
from shared import schema
from shared.store import BranchLayout, StoreLayout, create_store, stored_bytes

OPTIONS = (10, 7, 5, 3)


def random_maps(grid, tokens: int, count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    maps = []
    for _ in range(count):
        logits = rng.normal(0, 1.5, size=(*grid, tokens + 1)).astype(np.float32)
        logits[..., tokens] += np.log(512 - tokens)
        p = np.exp(logits - logits.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        maps.append(p[..., :tokens].astype(np.float16))
    return maps


def write_all(maps: list[np.ndarray], bits: int, scratch: str) -> dict:
    grid, tokens = maps[0].shape[:3], maps[0].shape[3]
    layout = StoreLayout(num_steps=len(maps), layer_blocks=(0,), grid=grid, num_heads=1,
                         branches=(BranchLayout("cond", tokens),), video_shape=(1, 16, 16, 3))
    path = os.path.join(scratch, f"bits{bits}.zarr")
    root = create_store(path, layout)
    stored = [round_mantissa(torch.from_numpy(m), bits).numpy() for m in maps]
    array = root[schema.attention("cond").path]
    writer = BackgroundWriter(max_pending=8)
    start = time.perf_counter()
    for step, data in enumerate(stored):
        writer.submit(lambda step=step, data=data: array.__setitem__((step, 0), data))
    writer.close()
    seconds = time.perf_counter() - start
    raw = sum(m.nbytes for m in maps)
    disk = stored_bytes(root[schema.attention("cond").path])
    exact = np.stack(maps).astype(np.float64)
    got = np.stack(stored).astype(np.float64)
    normal = exact >= np.finfo(np.float16).tiny
    result = {
        "mantissa_bits": bits,
        "disk_bytes_per_step_layer": disk / len(maps),
        "raw_bytes_per_step_layer": raw / len(maps),
        "compression_ratio": raw / disk,
        "max_abs_error": float(np.abs(got - exact).max()),
        "max_rel_error_normal": float((np.abs(got - exact)[normal] / exact[normal]).max()),
        "writer_MBps": raw / seconds / 1e6,
    }
    shutil.rmtree(path)
    return result


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", default="21,30,52", help="F',H',W' (480x832, 81 frames by default)")
    parser.add_argument("--tokens", type=int, default=30)
    parser.add_argument("--chunks", type=int, default=24, help="(step, layer) maps written per option")
    parser.add_argument("--from-store", default=None, help="use chunks of cond/attention from this store")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.from_store:
        import zarr

        source = zarr.open_group(args.from_store, mode="r")[schema.attention("cond").path]
        picks = [(s, l) for s in range(source.shape[0]) for l in range(source.shape[1])][: args.chunks]
        maps = [np.ascontiguousarray(source[s, l]) for s, l in picks]
        origin = args.from_store
    else:
        grid = tuple(int(v) for v in args.grid.split(","))
        maps = random_maps(grid, args.tokens, args.chunks)
        origin = f"random softmax maps, grid {grid}, {args.tokens} tokens"
    scratch = tempfile.mkdtemp(prefix="wan-store-cost-")
    try:
        rows = [write_all(maps, bits, scratch) for bits in OPTIONS]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"\nstore cost per (step, layer), {origin}, {len(maps)} maps of {maps[0].shape}:")
    print("| precision | MiB on disk per (step, layer) | ratio vs raw fp16 | max abs error | max rel error "
          "(normal fp16) | writer MB/s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        name = "float16 (default)" if r["mantissa_bits"] == 10 else f"--mantissa-bits {r['mantissa_bits']}"
        print(f"| {name} | {r['disk_bytes_per_step_layer'] / 2**20:.2f} | {r['compression_ratio']:.2f}x | "
              f"{r['max_abs_error']:.2e} | {r['max_rel_error_normal']:.2e} | {r['writer_MBps']:.0f} |")
    result = {"origin": origin, "shape": list(maps[0].shape), "rows": rows}
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
