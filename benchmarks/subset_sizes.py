"""What a teammate receives: the size of each kind of subset (and of a pack) of a 480p recording.

    python -m benchmarks.subset_sizes [--dir DIR] [--steps 50 --layers 30] [--json FILE]

Builds the full-size synthetic store of ``benchmarks/analyzer_speed.py`` (480x832, 81
frames, 50 steps, 30 layers, 30 tokens; random softmax maps, so the maps compress like
real ones, about 1.2x, and a random video, which compresses worse than a real one),
then cuts each subset with ``wan-analyze subset``'s function and prints the bytes each
takes (zarr's count: chunks and metadata), with the time it took on this machine.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from analyzer.pack import pack_store
from analyzer.subset import subset_store
from benchmarks.analyzer_speed import build_store
from benchmarks.common import write_json
from shared.store import open_store, stored_bytes

SUBSETS = [
    # label, subset_store keywords ("steps": k keeps every k-th step)
    ("every 5th step", {"steps": 5}),
    ("10 of 30 layers", {"layers": "0-9"}),
    ("mantissa 3 bits", {"mantissa_bits": 3}),
    ("no video", {"video": False}),
    ("layer mean", {"layer_mean": True}),
    ("layer mean, mantissa 3", {"layer_mean": True, "mantissa_bits": 3}),
    ("layer mean, every 5th step, no video", {"layer_mean": True, "steps": 5, "video": False}),
]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=None, help="Work folder (default: a temporary one, removed after).")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--layers", type=int, default=30)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as work:
        full = os.path.join(work, "full.zarr")
        build_store(full, args.steps, args.layers)
        source = stored_bytes(open_store(full))
        rows = [{"subset": "the recording", "bytes": source, "seconds": 0.0}]
        for n, (label, keywords) in enumerate(SUBSETS):
            if "steps" in keywords:
                keywords = {**keywords, "steps": list(range(0, args.steps, keywords["steps"]))}
            out = os.path.join(work, f"subset{n}.zarr")
            started = time.perf_counter()
            subset_store(full, out, **keywords)
            rows.append({"subset": label, "bytes": stored_bytes(open_store(out)),
                         "seconds": time.perf_counter() - started})
        started = time.perf_counter()
        packed = pack_store(os.path.join(work, "subset4.zarr"), os.path.join(work, "mean.zip"))
        rows.append({"subset": "layer mean, packed into one zip", "bytes": os.path.getsize(packed.path),
                     "seconds": time.perf_counter() - started})
    print(f"| subset of a {args.steps}-step, {args.layers}-layer 480x832 81-frame recording | size | of the "
          "recording | seconds |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['subset']} | {row['bytes'] / 2**20:,.1f} MiB | {100 * row['bytes'] / source:.1f}% | "
              f"{row['seconds']:.1f} |")
    result = {"steps": args.steps, "layers": args.layers, "rows": rows}
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
