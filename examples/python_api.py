"""A recording in Python, notebook style: open, select by label, map a word, overlay it, keep the numbers.

    make demo                                       # records demo-output/store.zarr (tiny model, CPU)
    python examples/python_api.py                   # or: python examples/python_api.py STORE --out DIR

Each cell below works as it is in a notebook. No torch is needed: only the store, xarray
and matplotlib. The tiny demo model has random weights, so its maps are noise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")  # files only: runs on a server and in the tests
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from analyzer import open_recording  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", nargs="?", default="demo-output/store.zarr",
                        help="a store: directory, zip, HDF5 export or URL (default: make demo's)")
    parser.add_argument("--out", default="python-api-output", help="folder for the PNG and the JSON")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    # %% open: what the recording is
    rec = open_recording(args.store)
    print("prompt:", rec.prompt)
    print("words:", rec.words)
    print("complete steps:", rec.steps, " layers:", rec.layers)

    # %% the labelled arrays: xarray, lazy (only what is selected is read)
    ds = rec.dataset()  # = xr.open_zarr(store, group="cond") on a schema-1.3 store
    word = next(w for w in rec.words if w.isalpha() and rec.words.count(w) == 1)
    token = ds.token.values[ds.word.values.tolist().index(word)]  # the word's first sub-token
    step, layer = rec.steps[-1], rec.layers[0]
    one = ds.attention.sel(token=token, step=step, layer=layer)  # (frame, y, x)
    print(f"attention of token {token!r} at step {step}, layer {layer}: dims {one.dims}, "
          f"mean {float(one.astype('float32').mean()):.4f}, timestep {float(one.timestep):.1f}")
    by_word = ds.attention.sel(step=step, layer=layer).astype("float32").groupby("word").sum()
    print("mass per word at that step:", {str(w): round(float(v), 4)
                                          for w, v in by_word.mean(["frame", "y", "x"]).to_series().items()})

    # %% a word's map: mean over the chosen steps and layers, as wan-analyze computes it
    latent = rec.word_map(word, reduce="sum")  # (frame, y, x), probabilities
    pixels = rec.word_map(word, pixel_grid=True, normalize="global")  # (video_frame, height, width), in [0, 1]
    print(f"word map of {word!r}: latent {dict(latent.sizes)}, on the video {dict(pixels.sizes)}")

    # %% the frame with the map on top (DAAM-like), to a PNG
    frame = min(len(rec.video_written) - 1, 8)
    ax = rec.plot_overlay(word, frame=frame)
    overlay = os.path.join(args.out, f"overlay_{word}_frame_{frame:03d}.png")
    ax.figure.savefig(overlay, dpi=100, bbox_inches="tight")
    plt.close(ax.figure)
    print("overlay:", overlay)

    # %% the report's numbers, as data
    stats = rec.statistics()
    print("text entropy per step:", [round(s["text_entropy"], 3) for s in stats["steps"]])
    print("word shares:", {w["text"]: round(w["share"], 3) for w in stats["words"]})
    path = os.path.join(args.out, "statistics.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(stats, f, indent=1)
    print("statistics:", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
