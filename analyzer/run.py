"""``analyze(store, out_dir, **options)``: every output kind asked for, from one streaming pass.

The flow: the options are checked (:func:`check_options`), the store opened
(:class:`analyzer.reader.StoreView`) and the steps, layers and words chosen
(:func:`analyzer.selection.select`); the attention is read once, one step at a time
(:func:`analyzer.streaming.run_pass`, which also draws each step's picture for the outputs
that need one), giving an :class:`analyzer.options.Analysis`; then each chosen output kind
(:mod:`analyzer.outputs`) renders from it, the report last. Encoding the pictures goes to
:class:`analyzer.encoders.Encoders`, worker processes on a big analysis. The command line
(:mod:`analyzer.cli`) is a thin layer over this function.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from contextlib import ExitStack

from analyzer import output, outputs, streaming
from analyzer.encoders import Encoders
from analyzer.options import Options, Selection
from analyzer.outputs import Context, Output, Plan, Written
from analyzer.reader import StoreView
from analyzer.selection import select

log = logging.getLogger(__name__)


def check_options(options: Mapping) -> tuple[Options, list[Output]]:
    """The one check of :func:`analyze`'s keywords, also run by ``WanT2V.enable_attention_visualization``.

    An unknown keyword is a TypeError; a value out of range or an unknown output kind an
    :class:`analyzer.errors.AnalyzerError`. Returns the options and the output kinds chosen.
    """
    checked = Options.of(options)
    return checked, outputs.select(checked.outputs)


def analyze(store_location: str | os.PathLike, out_dir: str | os.PathLike, *, storage_options: dict | None = None,
            **options) -> dict[str, Written]:
    """Analyse a store (directory, zip, HDF5 export or URL) into ``out_dir``; return the written paths by output kind.

    ``storage_options`` go to fsspec for a URL (credentials, ``endpoint_url``, ...).
    The keywords are the fields of :class:`analyzer.options.Options`. The result has one key
    per output kind written (a kind that had nothing to draw, such as the layer profile of
    a store of the layer mean, is absent), its file or its list of files:

        {kinds}

    Raises :class:`shared.store.StoreError` for an unreadable store and
    :class:`analyzer.errors.AnalyzerError` for any other input it cannot use.
    """
    started = time.perf_counter()
    opts, kinds = check_options(options)
    output.check_directory(out_dir, store_location)
    selection = select(StoreView(store_location, opts.branch, storage_options), opts)
    log.info("analysing %s: %d steps, %d layer entries, %d words; outputs %s", store_location,
             len(selection.steps), len(selection.layers), len(selection.units), ", ".join(k.name for k in kinds))
    plan = Plan(selection, output.prepare_directory(out_dir, opts.overwrite), tuple(k.name for k in kinds))
    step_jobs = {k.name: k.per_step(plan) for k in kinds if k.per_step is not None}
    taps = {k.name: k.per_step_data(plan) for k in kinds if k.per_step_data is not None}
    taps = {name: tap for name, tap in taps.items() if tap is not None}

    # the pool is shut down first, then the scratch files (the word views' video) go, even on error
    with ExitStack() as closing, Encoders(_work_pixels(kinds, selection, bool(step_jobs)),
                                          opts.encoder_processes) as encoders:
        analysis, step_values = streaming.run_pass(selection, step_jobs, encoders, started, tuple(taps.values()))
        ctx = Context(plan, analysis, encoders, step_values, closing, taps)
        # every output starts its work (submits its encoder jobs) before any is waited for
        started_work = {k.name: k.render(ctx) for k in kinds if not k.last}
        for name, work in started_work.items():
            _keep(ctx, name, outputs.finish(work))
    for kind in kinds:
        if kind.last:  # the report: it links what the others wrote
            _keep(ctx, kind.name, outputs.finish(kind.render(ctx)))
    return ctx.written


if analyze.__doc__:  # the kinds and their files, from the registry (python -OO drops docstrings)
    analyze.__doc__ = analyze.__doc__.replace("{kinds}", outputs.describe(indent=" " * 8).strip())


def _keep(ctx: Context, name: str, written: Written | None) -> None:
    if written is not None:
        ctx.written[name] = written
        log.info("wrote %s: %s", name, written if not isinstance(written, list) else f"{len(written)} files")


def _work_pixels(kinds: list[Output], selection: Selection, step_pictures: bool) -> int:
    """Roughly how many pixels the pictures of this analysis hold: what decides on worker processes."""
    pixels = len(selection.steps) * streaming.STEP_PICTURE_PIXELS if step_pictures else 0
    return pixels + sum(k.work_pixels(selection) for k in kinds if k.work_pixels is not None)
