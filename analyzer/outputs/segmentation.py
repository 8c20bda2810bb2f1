"""segmentation: each location tinted by its winning word, over sampled frames, with a legend.

The winner of a location is the word with the most step-mean attention there, whatever
``--normalize`` says (:func:`analyzer.statistics.segment_winners`).
"""

from __future__ import annotations

from pathlib import Path

from analyzer import output, overlays
from analyzer.outputs.registry import Context, Output
from analyzer.word_views import sheet_cell, word_views

SEGMENTATION = "token_segmentation"
HEADING = ("Each location tinted by the word with the most step-mean attention there; "
           "columns: sampled video frames (pixel frame, latent frame)")


def _render(ctx: Context) -> Path | None:
    views = word_views(ctx)
    if views.count == 0:
        return None
    winners = ctx.analysis.winners
    cells = [sheet_cell(overlays.segment_overlay(views.small[p], winners[views.latent_of[p]], views.size),
                        views.written[p]) for p in views.sampled]
    top = overlays.contact_sheet([cells], ["winning word"], views.column_labels, heading=HEADING)
    legend = overlays.legend_strip([u.label for u in views.units], max(top.width, 600))
    return output.save_image(overlays.stack_vertically(top, legend), ctx.out / SEGMENTATION,
                             ctx.options.image_format)


OUTPUT = Output("segmentation", "Token segmentation map", f"{SEGMENTATION}.<image format>", _render)
