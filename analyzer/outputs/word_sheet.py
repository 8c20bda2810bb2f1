"""word_sheet: the contact sheet, every word's map over the same sampled frames (see :mod:`analyzer.word_views`)."""

from __future__ import annotations

from pathlib import Path

from analyzer import output, overlays
from analyzer.outputs.registry import Context, Later, Output
from analyzer.word_views import word_views

WORD_SHEET = "word_contact_sheet"
COLUMNS_NOTE = ("Rows: words. Columns: video frames sampled evenly from first to last "
                "(pixel frame, and the latent frame whose map is shown)")


def _render(ctx: Context) -> Later | None:
    views = word_views(ctx)
    if views.count == 0:
        return None

    def finish() -> Path:
        rows = [row for _, row in views.results()]
        sheet = overlays.contact_sheet(rows, [u.label for u in views.units], views.column_labels,
                                       heading=COLUMNS_NOTE)
        scale = overlays.heat_scale_strip(sheet.width, overlays.scale_note(ctx.options.normalize))
        return output.save_image(overlays.stack_vertically(sheet, scale), ctx.out / WORD_SHEET,
                                 ctx.options.image_format)

    return Later(finish)


OUTPUT = Output("word_sheet", "Per-word maps over sampled frames",
                f"{WORD_SHEET}.<image format> (words x --sheet-frames frames)", _render)
