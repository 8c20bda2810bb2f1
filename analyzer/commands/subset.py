"""``wan-analyze subset STORE OUT``: a smaller store of the same schema, for a teammate or a laptop.

The work is :func:`analyzer.subset.subset_store`; this parses the options, says where the
subset went and how large it is next to its source.
"""

from __future__ import annotations

import click

from analyzer.commands.common import fail, storage_options
from analyzer.errors import AnalyzerError
from analyzer.text import printable as p
from shared import schema
from shared.store import StoreError, open_store, stored_bytes


def _size(n: int) -> str:
    value = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} bytes"


@click.command("subset")
@click.argument("store")
@click.argument("out")
@click.option("--steps", default=None, metavar="LIST",
              help="Pipeline step indices to keep, e.g. 0,10,20-30. Default: every complete step.")
@click.option("--layers", default=None, metavar="LIST", help="Transformer blocks to keep, e.g. 0-9. Default: all.")
@click.option("--layer-mean", is_flag=True,
              help="Keep the mean over the chosen layers instead of each layer (as wan-record --layer-mean).")
@click.option("--branch", default="all", show_default=True, type=click.Choice(["cond", "uncond", "all"]),
              help="Guidance branch to keep: cond, or all that the store has (a store always holds cond).")
@click.option("--mantissa-bits", default=None, type=click.IntRange(0, schema.FLOAT16_MANTISSA_BITS),
              help="Round the maps to this many float16 mantissa bits (lossy, smaller; at most the store's own).")
@click.option("--no-video", "no_video", is_flag=True,
              help="Leave the video out (its array stays, with no frame written; pictures show grey frames).")
@storage_options
@click.option("--quiet", is_flag=True, help="No progress bar.")
def subset_command(store, out, steps, layers, layer_mean, branch, mantissa_bits, no_video, storage_options, quiet):
    """Write a smaller store OUT cut from STORE: some steps, some layers or their mean, fewer mantissa bits, no video.

    OUT is a new directory (to share it as one file, `wan-analyze pack` it afterwards). Its attribute subset_of
    says what it was cut from and how; the analyzer reads it like any store.
    """
    from analyzer.subset import subset_store

    options = storage_options or None
    try:
        path = subset_store(store, out, steps=steps, layers=layers, layer_mean=layer_mean, branch=branch,
                            mantissa_bits=mantissa_bits, video=not no_video, storage_options=options,
                            progress=not quiet)
    except (StoreError, AnalyzerError) as exc:
        raise fail(exc) from None
    except MemoryError as exc:
        raise fail(f"out of memory while writing the subset of {store}: {exc or 'MemoryError'}") from None
    except OSError as exc:
        raise fail(f"cannot write the subset {out}: {exc.strerror or exc}") from None
    try:
        made = stored_bytes(open_store(path))
        source = stored_bytes(open_store(store, options))
        sizes = f" ({_size(made)}, from {_size(source)})"
    except Exception:  # noqa: BLE001 - the subset is written; its size is only for the message
        sizes = ""
    click.echo(f"{p(path)}{sizes}")
