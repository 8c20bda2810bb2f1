"""The streaming pass: the attention read once, one step at a time, as a three-stage pipeline.

One thread reads (and decompresses) steps (:meth:`analyzer.reader.StoreView.read_raw`), a
second reduces each over its layers and checks its values
(:func:`analyzer.statistics.reduce_step`), and the caller adds it to the statistics
(:class:`analyzer.statistics.Accumulator`) and, when a chosen output needs it, draws the
step's picture (:class:`analyzer.heatmaps.StepHeatmap`) and hands it to those outputs'
per-step jobs. The result is an explicit value, the :class:`analyzer.options.Analysis`.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from PIL import Image
from tqdm import tqdm

from analyzer import heatmaps, statistics
from analyzer.encoders import Encoders
from analyzer.errors import AnalyzerError, StepError
from analyzer.options import Analysis, Selection
from analyzer.outputs import StepJob, StepTap
from analyzer.reader import Step, StoreView
from analyzer.statistics import Accumulator, StepData

# Roughly the pixels of one step's picture and what the per-step jobs make of it: with the
# per-word animations', what decides on worker processes for the encoding.
STEP_PICTURE_PIXELS = 800 * 640


def iter_steps(view: StoreView, steps: list[Step], layers: list[int], ahead: int = 3,
               on_skip: Callable[[StepError], None] | None = None,
               keep_layers: tuple[int, ...] = ()) -> Iterator[StepData]:
    """Yield each step's reduced data in order, as a three-stage pipeline.

    One thread reads (and decompresses) steps, a second reduces them over layers, and the
    caller works on the step yielded; at most ``ahead`` steps are in flight besides the
    caller's, so memory stays bounded whatever the store's size, and the wall time is
    close to the slowest stage rather than to the sum of all three. A step that cannot be
    used raises its StepError, or, with ``on_skip``, is handed to it and not yielded.
    """
    if not steps:
        return
    with ThreadPoolExecutor(1, thread_name_prefix="wan-analyze-read") as readers, \
            ThreadPoolExecutor(1, thread_name_prefix="wan-analyze-reduce") as reducers:
        def reduce(raw: Future) -> StepData:
            step = raw.result()
            try:
                return statistics.reduce_step(view, step, keep_layers)
            finally:
                view.release(step)  # StepData keeps nothing of it: the next read reuses its buffer

        def start(step: Step) -> Future:
            raw = readers.submit(view.read_raw, step, layers)
            return reducers.submit(reduce, raw)

        pending = deque(start(step) for step in steps[:ahead])
        following = iter(steps[ahead:])
        try:
            while pending:
                try:
                    data = pending.popleft().result()
                except StepError as exc:
                    if on_skip is None:
                        raise
                    on_skip(exc)
                    data = None
                step = next(following, None)
                if step is not None:
                    pending.append(start(step))
                if data is not None:
                    yield data
        finally:
            for future in pending:  # the caller stopped early: do not read what nobody will use
                future.cancel()


def run_step_jobs(image: Image.Image, index: int, jobs: tuple[StepJob, ...]) -> list:
    """The chosen outputs' jobs on one step's picture, as one encoder job: the picture travels to a worker once."""
    return [fn(image, index, *args) for fn, args in jobs]


def run_pass(selection: Selection, step_jobs: dict[str, StepJob], encoders: Encoders,
             started: float, taps: tuple[StepTap, ...] = ()) -> tuple[Analysis, dict[str, list]]:
    """Read every selected step once; return the analysis and, per output with a per-step job, its results.

    With ``step_jobs`` each step's picture is drawn here and its jobs are encoded by
    ``encoders``; at most a few pictures per worker wait. ``taps`` take each step's reduced
    data here (and each skipped step's error). With ``skip_corrupt`` a step that fails a
    check is left out and listed in the analysis; if every step is, that is an error.
    """
    view, opts = selection.view, selection.options
    frames, height, width = view.grid
    stats = Accumulator(frames * height * width, len(view.tokens), [u.tokens for u in selection.units],
                        opts.heatmap_rows, opts.normalize)
    names, jobs = tuple(step_jobs), tuple(step_jobs.values())
    values: dict[str, list] = {name: [] for name in names}
    renderer = heatmaps.StepHeatmap(view.tokens, stats.row_starts, view.grid,
                                    heatmaps.layer_label(selection.layer_blocks)) if jobs else None
    in_flight: deque = deque()
    skipped: list[StepError] = []

    def collect(job: Future) -> None:
        for name, value in zip(names, job.result()):
            values[name].append(value)

    bar = tqdm(total=len(selection.steps), desc="wan-analyze", unit="step", file=sys.stderr,
               disable=not opts.progress, leave=False)

    def skip(error: StepError) -> None:
        skipped.append(error)
        for tap in taps:
            tap.skip(error)
        bar.update(1)

    keep_layers = tuple(sorted({layer for tap in taps for layer in tap.layers}))

    with bar:
        two = heatmaps.two_experts(view.attrs, [s.expert for s in selection.steps])  # name the expert only then
        for data in iter_steps(view, list(selection.steps), list(selection.layers),
                               on_skip=skip if opts.skip_corrupt else None, keep_layers=keep_layers):
            summary, heatmap = stats.add(data)
            for tap in taps:
                tap.add(data)
            if renderer is not None:
                title = heatmaps.step_title(summary.index, summary.timestep, summary.expert, two)
                image = renderer.render(heatmap, title)
                in_flight.append(encoders.submit(run_step_jobs, image, summary.index, jobs))
                while len(in_flight) > 2 * max(encoders.workers, 1):
                    collect(in_flight.popleft())
            bar.update(1)
        while in_flight:
            collect(in_flight.popleft())

    if stats.count == 0:  # every selected step skipped: nothing to draw, an error rather than an empty report
        raise AnalyzerError(f"{view.location}: every selected step is corrupt ({len(skipped)} skipped); "
                            f"the first: {skipped[0].reason}")
    left_out = {e.step.position for e in skipped}
    steps = [s for s in selection.steps if s.position not in left_out]
    return statistics.conclude(selection, stats, steps, skipped, started), values
