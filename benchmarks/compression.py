"""Which compressor for the attention arrays: ratio and speed of candidates on a recorded store.

    python -m benchmarks.compression STORE [--samples 8]

Reads a few (step, layer) chunks of cond/attention and encodes each with every
candidate codec (numcodecs, the same implementations zarr uses), printing the ratio
(raw bytes / encoded bytes) and encode/decode throughput.
"""

from __future__ import annotations

import argparse
import time

import numcodecs
import numpy as np
import zarr

from benchmarks.common import write_json
from shared import schema

CANDIDATES = {
    "zstd-3": numcodecs.Zstd(level=3),
    "blosc-zstd-3-shuffle": numcodecs.Blosc("zstd", 3, numcodecs.Blosc.SHUFFLE),
    "blosc-zstd-3-bitshuffle": numcodecs.Blosc("zstd", 3, numcodecs.Blosc.BITSHUFFLE),
    "blosc-lz4-5-bitshuffle": numcodecs.Blosc("lz4", 5, numcodecs.Blosc.BITSHUFFLE),
    "blosc-zstd-7-bitshuffle": numcodecs.Blosc("zstd", 7, numcodecs.Blosc.BITSHUFFLE),
}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("store")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    array = zarr.open_group(args.store, mode="r")[schema.attention("cond").path]
    steps, layers = array.shape[:2]
    rng = np.random.default_rng(0)
    picks = [(int(rng.integers(steps)), int(rng.integers(layers))) for _ in range(args.samples)]
    chunks = [np.ascontiguousarray(array[s, l]) for s, l in picks]
    raw = sum(c.nbytes for c in chunks)
    results = {}
    print(f"{len(chunks)} chunks of {chunks[0].shape} float16, {raw / 2**20:.1f} MiB raw")
    print("| codec | ratio | encode MB/s | decode MB/s |")
    print("| --- | --- | --- | --- |")
    for name, codec in CANDIDATES.items():
        start = time.perf_counter()
        encoded = [codec.encode(c) for c in chunks]
        encode_s = time.perf_counter() - start
        start = time.perf_counter()
        for e, c in zip(encoded, chunks):
            assert np.array_equal(np.frombuffer(codec.decode(e), dtype=c.dtype).reshape(c.shape), c, equal_nan=True)
        decode_s = time.perf_counter() - start
        size = sum(len(e) for e in encoded)
        results[name] = {"ratio": raw / size, "encode_MBps": raw / encode_s / 1e6, "decode_MBps": raw / decode_s / 1e6}
        r = results[name]
        print(f"| {name} | {r['ratio']:.3f} | {r['encode_MBps']:.0f} | {r['decode_MBps']:.0f} |")
    write_json(args.json, {"chunk_shape": list(chunks[0].shape), "codecs": results})
    return results


if __name__ == "__main__":
    main()
