"""``wan-analyze compare A B -o OUT``: two stores side by side (see :mod:`analyzer.compare`)."""

from __future__ import annotations

import click

from analyzer.commands.common import fail, storage_options
from analyzer.text import printable as p


@click.command("compare")
@click.argument("store_a")
@click.argument("store_b")
@click.option("-o", "--out", "out", required=True, metavar="OUT",
              help="New (or empty) directory for the figures, comparison.json and comparison_report.md.")
@click.option("--frames", default=4, show_default=True, type=click.IntRange(1, 64),
              help="How many latent frames each word's figure shows, spread from the first to the last.")
@click.option("--overwrite", is_flag=True, help="Write into a non-empty OUT, replacing files of the same name.")
@storage_options
def compare_command(store_a, store_b, out, frames, overwrite, storage_options):
    """Compare STORE_A and STORE_B (two prompts, two seeds or two models): per-word maps of the words they share,
    A - B difference maps (B resampled onto A's grid when the grids differ, and said so), both stores' statistics
    with their differences, and a Markdown report.
    """
    from analyzer.compare import compare_stores  # matplotlib: only once the command runs
    from analyzer.errors import AnalyzerError
    from shared.store import StoreError

    try:
        result = compare_stores(store_a, store_b, out, overwrite=overwrite, frames=frames,
                                storage_options=storage_options or None)
    except (StoreError, AnalyzerError) as exc:
        raise fail(exc) from None
    except OSError as exc:
        raise fail(f"cannot write the comparison into {out}: {exc.strerror or exc}") from None
    words = ", ".join(p(w) for w in result.shared_words) or "none"
    note = " (grids differ: B resampled onto A's grid)" if result.resampled else ""
    click.echo(f"compared {p(store_a)} and {p(store_b)}: shared words {words}{note}; report {p(result.report_path)}")
