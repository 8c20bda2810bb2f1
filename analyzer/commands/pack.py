"""``wan-analyze pack STORE OUT.zip``: one file to send (see :mod:`analyzer.pack`)."""

from __future__ import annotations

import click

from analyzer.commands.common import fail, storage_options
from analyzer.text import printable


@click.command("pack")
@click.argument("store")
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True,
              help="Pack a store that is still being recorded, as it is now; the zip says 'interrupted'.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@storage_options
def pack_command(store, out, force, quiet, storage_options):
    """Write STORE (a directory, zip, HDF5 export or URL) into the new zip OUT, the layout every reader opens."""
    from analyzer.pack import pack_store  # zarr: only once the command runs
    from shared.store import StoreError

    try:
        packed = pack_store(store, out, force=force, storage_options=storage_options, progress=not quiet)
    except (StoreError, OSError) as exc:
        raise fail(exc) from None
    note = " (a snapshot of a recording still running: marked 'interrupted')" if packed.forced else ""
    click.echo(f"packed {printable(store)} into {printable(packed.path)}: {packed.keys} keys, "
               f"{packed.bytes / 2**20:.1f} MiB, status {packed.status!r}{note}")
