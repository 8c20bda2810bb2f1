"""``wan-analyze study CATALOG_OR_STORES... -o OUT``: statistics across many stores with Dask.

See :mod:`analyzer.study`.
"""

from __future__ import annotations

import click

from analyzer.commands.common import fail, storage_options
from analyzer.text import printable as p


@click.command("study")
@click.argument("inputs", nargs=-1, required=True, metavar="CATALOG_OR_STORES...")
@click.option("-o", "--out", "out", required=True, metavar="OUT",
              help="New (or empty) directory for study.json, the CSV tables, the plots and study_report.md.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="An existing dask.distributed scheduler, e.g. tcp://host:8786 (its workers need wan-attention "
                   "installed and the stores reachable). Default: a local cluster started for this command.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 256),
              help="Worker processes of the local cluster (ignored with --scheduler).")
@click.option("--group-by", "group_by", multiple=True, metavar="FIELD",
              help="Also aggregate per value of this field: a catalog field (seed, prompt, ...) or one every store "
                   "gives (prompt, seed, model, num_inference_steps, guidance_scale). Repeatable.")
@click.option("--overwrite", is_flag=True, help="Write into a non-empty OUT, replacing files of the same name.")
@storage_options
@click.option("--quiet", is_flag=True, help="No line per store.")
def study_command(inputs, out, scheduler, workers, group_by, overwrite, storage_options, quiet):
    """Per-word attention share and spatial entropy by step and by layer across many stores, one Dask task per
    store, aggregated over all stores and per --group-by field.

    CATALOG_OR_STORES: store locations (directories, zips, HDF5 exports, URLs) and catalog files (*.json, as
    `wan-record batch` writes: {"stores": [{"store": PATH, FIELD: VALUE, ...}]}). A store that cannot be read
    is reported and skipped; the command fails only when none can be.
    """
    from analyzer.errors import AnalyzerError
    from analyzer.study import run_study
    from shared.store import StoreError

    def progress(location, reason):
        if reason is not None:
            click.echo(f"skipped {p(location)}: {p(reason)}", err=True)
        elif not quiet:
            click.echo(f"read {p(location)}", err=True)

    try:
        result = run_study(list(inputs), out, scheduler=scheduler, group_by=list(group_by), overwrite=overwrite,
                           workers=workers, storage_options=storage_options or None, progress=progress)
    except (StoreError, AnalyzerError) as exc:
        raise fail(exc) from None
    except OSError as exc:
        raise fail(f"cannot write the study into {out}: {exc.strerror or exc}") from None
    click.echo(f"studied {len(result.used)} stores ({len(result.skipped)} skipped) into {p(result.out)}; "
               f"report {p(result.out / 'study_report.md')}")
