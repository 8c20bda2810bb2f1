"""``wan-analyze export STORE OUT.h5``: a store as one HDF5 file (:mod:`analyzer.export_hdf5`)."""

from __future__ import annotations

import click

from analyzer.commands.common import fail, storage_options
from analyzer.errors import AnalyzerError
from shared.store import StoreError


@click.command("export")
@click.argument("store")
@click.argument("out")
@storage_options
@click.option("--quiet", is_flag=True, help="No progress bar and no closing line.")
def export_command(store, out, storage_options, quiet):
    """Write STORE (directory, .zip, URL) to the new HDF5 file OUT (.h5 or .hdf5).

    Every array with its shape, type, chunks and fill value, compressed (gzip) and
    checksummed (fletcher32); every attribute; a dimension label and scale for each named
    axis. Chunks never written stay absent. `wan-analyze OUT` and `open_store(OUT)` read
    the file as they read the store. OUT must not exist.
    """
    from analyzer.export_hdf5 import export_hdf5  # h5py: only for this command

    try:
        path = export_hdf5(store, out, storage_options=storage_options or None, progress=not quiet)
    except (StoreError, AnalyzerError, OSError) as exc:
        raise fail(exc) from None
    if not quiet:
        click.echo(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")
