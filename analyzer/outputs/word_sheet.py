"""word_sheet: the contact sheet, every word's map over the same sampled frames (see :mod:`analyzer.word_views`)."""

from __future__ import annotations

from pathlib import Path

from analyzer import output, overlays
from analyzer.outputs.registry import Context, Later, Output
from analyzer.word_views import word_views

WORD_SHEET = "word_contact_sheet"


def _render(ctx: Context) -> Later | None:
    views = word_views(ctx)
    if views.count == 0:
        return None

    def finish() -> Path:
        rows = [row for _, row in views.results()]
        sheet = overlays.contact_sheet(rows, [u.label for u in views.units], views.column_labels)
        return output.save_image(sheet, ctx.out / WORD_SHEET, ctx.options.image_format)

    return Later(finish)


OUTPUT = Output("word_sheet", "Per-word maps over sampled frames",
                f"{WORD_SHEET}.<image format> (words x --sheet-frames frames)", _render)
