"""``wan-analyze``: pictures and a report from a store, on a machine without torch.

``wan-analyze STORE -o OUTDIR`` runs the analysis (no sub-command name needed);
``wan-analyze info STORE`` prints what a store holds.
"""

from __future__ import annotations

import json
from concurrent.futures.process import BrokenProcessPool

import click

from analyzer.errors import AnalyzerError
from analyzer.info import describe, describe_json
from analyzer.options import (
    ANIMATION_FORMATS,
    DEFAULT_WORD_REDUCTION,
    IMAGE_FORMATS,
    MONTAGE_SCALES,
    NORMALIZE_MODES,
    WORD_REDUCTIONS,
)
from analyzer.commands.common import fail as _fail
from analyzer.commands.common import storage_options
from analyzer.commands.compare import compare_command
from analyzer.commands.export import export_command
from analyzer.commands.pack import pack_command
from analyzer.commands.study import study_command
from analyzer.commands.subset import subset_command
from analyzer.commands.validate import validate_command
from analyzer.commands.view import view_command
from shared.cli import default_group
from shared.store import StoreError


class _OutputsOption(click.Option):
    """``--outputs``: its help lists the output kinds registered when it is shown (a toy kind included)."""

    def get_help_record(self, ctx: click.Context):
        from analyzer import outputs  # the output modules import matplotlib: only when the help is shown

        kinds = [f"{o.name} (with {', '.join(o.includes)})" if o.includes else o.name for o in outputs.registered()]
        self.help = f"Only these outputs, comma separated: {', '.join(kinds)}. Default: all."
        return super().get_help_record(ctx)


@default_group("analyze", help=__doc__)
def main():
    pass


@main.command("analyze")
@click.argument("store")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output directory; created if missing, must be empty unless --overwrite.")
@click.option("--overwrite", is_flag=True,
              help="Write into a non-empty output directory, replacing files of the same name (others are kept).")
@click.option("--steps", default=None, metavar="LIST",
              help="Pipeline step indices to analyse, e.g. 0,10,20-30. Default: every complete step.")
@click.option("--layers", default=None, metavar="LIST",
              help="Transformer blocks to average, e.g. 0-9. Default: every recorded layer.")
@click.option("--words", default=None, metavar="LIST", help="Prompt words for the per-word views, comma separated.")
@click.option("--tokens", default=None, metavar="LIST",
              help="Tokens for the per-word views: indices or token strings, comma separated.")
@click.option("--include-special", is_flag=True, help="Keep </s> and punctuation in the default per-word views.")
@click.option("--branch", default="cond", show_default=True, type=click.Choice(["cond", "uncond"]),
              help="Guidance branch: the prompt (cond) or the negative prompt (uncond).")
@click.option("--outputs", default=None, metavar="LIST", cls=_OutputsOption,
              help="Only these outputs, comma separated. Default: all.")
@click.option("--image-format", default="png", show_default=True, type=click.Choice(IMAGE_FORMATS))
@click.option("--animation-format", default="gif", show_default=True, type=click.Choice(ANIMATION_FORMATS),
              help="Format of the step animation and the per-word animations (mp4: H.264).")
@click.option("--normalize", default="global", show_default=True, type=click.Choice(NORMALIZE_MODES),
              help="Colour scale of the word overlays: one for all (global), each step weighted alike "
                   "(per-step), each latent frame (per-frame) or each word (per-word) on its own. The "
                   "segmentation map does not depend on it.")
@click.option("--word-reduction", default=DEFAULT_WORD_REDUCTION, show_default=True, type=click.Choice(WORD_REDUCTIONS),
              help="How a word's map is made from its sub-word tokens' maps: the most attended piece (max; a word "
                   "neither gains from being split into more tokens nor loses for a weak piece), their mean, or "
                   "their sum (favours words split into many tokens). The segmentation always uses max.")
@click.option("--montage-scale", default="shared", show_default=True, type=click.Choice(MONTAGE_SCALES),
              help="Colour scale of the montage: one for every panel, so they compare, or each panel its own.")
@click.option("--sheet-frames", default=8, show_default=True, type=int,
              help="Frames shown in the contact sheets (1-64).")
@click.option("--overlay-width", default=320, show_default=True, type=int,
              help="Width of overlay frames in pixels (16-4096).")
@click.option("--heatmap-rows", default=256, show_default=True, type=int,
              help="Rows of the step heatmaps (2-4096): video tokens are averaged in consecutive groups down to "
                   "this.")
@click.option("--step-fps", default=2.0, show_default=True, type=float,
              help="Frame rate of the step animation (0.1-100).")
@click.option("--word-fps", default=8.0, show_default=True, type=float,
              help="Frame rate of the word animations (0.1-100).")
@click.option("--skip-corrupt", is_flag=True,
              help="Leave out a step that fails a check (a value that is no probability, an unreadable chunk, NaN) "
                   "and list it in the report, instead of stopping.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--follow", is_flag=True,
              help="For a recording still running: redo the outputs whenever new steps are complete, until it ends. "
                   "A step is read only once complete.")
@click.option("--follow-interval", default=5.0, show_default=True, type=click.FloatRange(0.1, 3600),
              help="Seconds between two looks at the store with --follow.")
@storage_options
def analyze_command(store, out_dir, quiet, follow, follow_interval, storage_options, **options):
    """Write per-step heatmaps, montage, animation, per-word maps and the report for STORE.

    STORE is a store directory, a .zip of one, an HDF5 export, or a URL (https://, s3://, gs://, ...).
    """
    from analyzer.run import analyze  # matplotlib and the output modules: not needed for `info` or --help

    try:
        # The CLI is a guarded entry point, so picture encoding may use worker processes.
        if follow:
            from analyzer.follow import follow as follow_recording

            written = follow_recording(store, out_dir, interval=follow_interval, storage_options=storage_options,
                                       say=lambda line: click.echo(line, err=True), progress=not quiet,
                                       encoder_processes=None, **options)
        else:
            written = analyze(store, out_dir, progress=not quiet, encoder_processes=None,
                              storage_options=storage_options, **options)
    except (StoreError, AnalyzerError) as exc:
        raise _fail(exc) from None
    except BrokenProcessPool as exc:
        raise _fail(f"a picture-encoding worker process died (out of memory, or killed): {exc}") from None
    except KeyboardInterrupt:
        if not follow:
            raise
        raise click.exceptions.Exit(130) from None  # Ctrl-C ends --follow; the outputs show the last refresh
    except MemoryError as exc:  # a store whose maps are larger than this machine can hold: say so, in one line
        raise _fail(f"out of memory while analysing {store}: {exc or 'MemoryError'}; try --steps, --layers or "
                    f"fewer --outputs, or a machine with more memory") from None
    if "report" in written:
        click.echo(str(written["report"]))


@main.command("info")
@click.argument("store")
@click.option("--branch", default="cond", show_default=True, type=click.Choice(["cond", "uncond"]))
@click.option("--json", "as_json", is_flag=True,
              help="Print the summary as one JSON object (schema wan-attention-info, with its version).")
@storage_options
def info_command(store, branch, storage_options, as_json):
    """Print a short summary of what STORE holds."""
    try:
        if as_json:
            click.echo(json.dumps(describe_json(store, branch, storage_options), ensure_ascii=False, indent=1))
        else:
            click.echo(describe(store, branch, storage_options))
    except (StoreError, AnalyzerError) as exc:
        raise _fail(exc) from None


# The sub-commands about the store itself: sharing and checking it.
main.add_command(pack_command)
main.add_command(export_command)
main.add_command(subset_command)
main.add_command(validate_command)
main.add_command(view_command)

# Across stores.
main.add_command(compare_command)
main.add_command(study_command)


if __name__ == "__main__":
    main()
