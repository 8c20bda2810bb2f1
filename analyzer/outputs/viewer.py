"""viewer: ``viewer.html``, the store in one self-contained browser page (see :mod:`analyzer.viewer`).

The page holds the layer mean of the steps, a few single layers and the video frames,
within a size budget. What it keeps is planned before the streaming pass; when the
analysis covers what the page shows (every usable step of its branch, every layer), the
pass hands each step's layer mean and kept layers to the page (:class:`PageTap`), so
the attention is read once for both. Any other branch, or the whole store when the
analysis is a selection, the page reads on its own after the other outputs have started.
"""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path

from analyzer.errors import StepError
from analyzer.options import Selection
from analyzer.outputs.registry import Context, Later, Output, Plan
from analyzer.statistics import StepData

VIEWER = "viewer.html"


class PageTap:
    """The analysed branch's maps for the page, taken from the streaming pass."""

    def __init__(self, page, maps):
        self.page, self.maps = page, maps  # viewer.data's PagePlan and the branch's BranchMaps
        self.layers = tuple(page.kept_layers)

    def add(self, data: StepData) -> None:
        self.maps.add(data.step, data.attention, data.single_layers)

    def skip(self, error: StepError) -> None:
        self.maps.skip(error.step, error.reason)


def _tap(plan: Plan) -> PageTap | None:
    from analyzer.viewer.data import BranchMaps, plan_page, usable_steps  # only when a page is written

    selection, view = plan.selection, plan.selection.view
    if ([s.position for s in selection.steps] != [s.position for s in usable_steps(view)]
            or list(selection.layers) != list(range(len(view.layer_blocks)))):
        return None  # the page shows more than this analysis reads: it reads the store itself
    page = plan_page(view.location, storage_options=view.storage_options)
    return PageTap(page, BranchMaps(page, next(p for p in page.plans if p.branch == view.branch)))


def _render(ctx: Context) -> Later | Future:
    from analyzer.viewer import write_viewer
    from analyzer.viewer.data import finish_page, read_branch
    from analyzer.viewer.page import write_page

    view = ctx.analysis.view
    tap = ctx.taps.get("viewer")
    if tap is None:
        return Later(lambda: write_viewer(view.location, ctx.out / VIEWER, storage_options=view.storage_options))

    def finish() -> Path:
        tap.maps.finish()
        for branch in tap.page.plans:
            if branch.branch != view.branch:
                read_branch(tap.page, branch)
        return write_page(finish_page(tap.page), ctx.out / VIEWER)

    return ctx.in_background(finish)  # the pass is over: the page is finished while the encoder processes work


def _work_pixels(selection: Selection) -> int:
    return 0  # built here, not by the encoder pool


def _report(analysis, path: Path, link) -> list[str]:
    return [f"[{path.name}]({link(path)}): open it in a browser to explore the store: click a word, scrub the "
            "frames and steps (arrow keys), choose a layer; everything is inside the file."]


OUTPUT = Output("viewer", "Interactive viewer", f"{VIEWER} (one self-contained page)", _render,
                per_step_data=_tap, work_pixels=_work_pixels, report=_report)
