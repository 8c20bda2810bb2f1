"""``wan-analyze validate STORE``: check a store's metadata and every chunk, and say what is wrong.

The work is :func:`shared.check.check_store`; this prints its summary and one line per
problem (``array chunk: reason``), and exits 1 when there is any problem, 0 otherwise.
"""

from __future__ import annotations

import click

from analyzer.commands.common import fail, storage_options
from analyzer.text import printable as p
from analyzer.text import ranges
from shared import schema
from shared.check import CheckReport, check_store


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"


def summary(report: CheckReport) -> list[str]:
    """The report as lines for the terminal; everything from the store through :func:`printable`."""
    lines = [
        f"store:     {p(report.location)}",
        f"schema:    {schema.SCHEMA_NAME} {p(report.schema_version)}",
        f"status:    {p(report.status)}",
        f"steps:     {report.steps_complete} of {report.steps_total} complete"
        + (f" (pipeline steps {ranges(report.complete_steps)})" if report.complete_steps else ""),
        f"video:     {report.video_frames_written} of {report.video_frames} frames written",
    ]
    if report.quick:
        lines.append(f"chunks:    {report.chunks_present} present in {report.arrays_checked} arrays, "
                     "not decoded (--quick)")
    else:
        lines.append(f"chunks:    {report.chunks_checked} of {report.chunks_present} present decoded and "
                     f"checksums verified, in {report.arrays_checked} arrays ({_size(report.bytes_checked)})")
    lines += [f"note:      {p(note)}" for note in report.notes]
    if report.problems:
        lines.append(f"problems:  {len(report.problems)}")
        lines += [p(problem) for problem in report.problems]
    else:
        lines.append("problems:  none")
    return lines


@click.command("validate")
@click.argument("store")
@click.option("--quick", is_flag=True,
              help="Check the metadata, the step flags and which chunks exist, without decoding the chunks.")
@storage_options
@click.option("--quiet", is_flag=True, help="No progress bar.")
def validate_command(store, quick, storage_options, quiet):
    """Check STORE: schema and version, every array against the schema, which steps are complete, and (unless
    --quick) every chunk decoded and its checksum verified. Exits 1 when anything is wrong.

    STORE is a store directory, a .zip of one, or a URL (https://, s3://, ...).
    """
    try:
        report = check_store(store, quick=quick, storage_options=storage_options or None, progress=not quiet)
    except Exception as exc:  # noqa: BLE001 - anything unforeseen is still one line
        raise fail(f"cannot check {store}: {type(exc).__name__}: {exc}") from None
    if report.schema_version is None and report.problems:  # the store did not even open
        raise fail(report.problems[0].reason)
    click.echo("\n".join(summary(report)))
    if report.problems:
        raise SystemExit(1)
