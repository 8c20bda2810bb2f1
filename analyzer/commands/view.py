"""``wan-analyze view STORE -o viewer.html``: the store in one self-contained page; ``--serve`` for a local server."""

from __future__ import annotations

import os

import click

from analyzer.commands.common import fail, storage_options
from analyzer.text import printable


@click.command("view")
@click.argument("store")
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False), default=None,
              help="The HTML file to write (everything inline: no server, no network).")
@click.option("--overwrite", is_flag=True, help="Replace the file -o names if it exists.")
@click.option("--budget-mb", type=click.FloatRange(min=1.0), default=20.0, show_default=True,
              help="About how large the file may grow; steps and layers are thinned to fit, and the page says so.")
@click.option("--serve", is_flag=True,
              help="Instead of a file, serve the page from 127.0.0.1, reading every step and layer on demand.")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="With --serve: the port (0: any free one).")
@storage_options
def view_command(store, out, overwrite, budget_mb, serve, port, storage_options):
    """A browser page of STORE (a directory, zip, HDF5 export or URL): video, words' maps, steps, layers."""
    from analyzer.errors import AnalyzerError
    from shared.store import StoreError

    if serve:
        if out is not None:
            raise click.UsageError("--serve serves the page; it writes no file (leave out -o)")
        from analyzer.viewer.serve import serve as run_server

        try:
            run_server(store, port=port, storage_options=storage_options,
                       announce=lambda url: click.echo(f"serving the viewer of {printable(store)} at {url} "
                                                       f"(Ctrl-C to stop)"))
        except KeyboardInterrupt:
            pass
        except (StoreError, AnalyzerError, OSError) as exc:
            raise fail(exc) from None
        return
    if out is None:
        raise click.UsageError("give the file to write with -o viewer.html, or --serve")
    if os.path.lexists(out) and not overwrite:
        raise fail(f"{out} exists; give --overwrite to replace it")
    from analyzer.viewer import write_viewer

    try:
        path = write_viewer(store, out, storage_options=storage_options, budget_bytes=int(budget_mb * 2**20))
    except (StoreError, AnalyzerError, OSError) as exc:
        raise fail(exc) from None
    click.echo(f"wrote {printable(path)} ({path.stat().st_size / 2**20:.1f} MiB)")
