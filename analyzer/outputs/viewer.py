"""viewer: ``viewer.html``, the store in one self-contained browser page (see :mod:`analyzer.viewer`).

The page reads the store on its own (the layer mean per step, a few layers, the video
frames, each within a size budget), so it is written after the other outputs have started
their encoder jobs, in this process.
"""

from __future__ import annotations

from pathlib import Path

from analyzer.options import Selection
from analyzer.outputs.registry import Context, Later, Output

VIEWER = "viewer.html"


def _render(ctx: Context) -> Later:
    from analyzer.viewer import write_viewer  # the page's template and data code: only when a page is written

    view = ctx.analysis.view
    return Later(lambda: write_viewer(view.location, ctx.out / VIEWER, storage_options=view.storage_options))


def _work_pixels(selection: Selection) -> int:
    return 0  # built here, not by the encoder pool


def _report(analysis, path: Path, link) -> list[str]:
    return [f"[{path.name}]({link(path)}): open it in a browser to explore the store: click a word, scrub the "
            "frames and steps (arrow keys), choose a layer; everything is inside the file."]


OUTPUT = Output("viewer", "Interactive viewer", f"{VIEWER} (one self-contained page)", _render,
                work_pixels=_work_pixels, report=_report)
