"""steps: the heatmap of every analysed step, as the streaming pass draws it."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from analyzer import output
from analyzer.options import Analysis
from analyzer.outputs.registry import Context, Output, Plan, StepJob

STEP = "attention_step_{index:03d}"  # the classic name, kept from the original WAN attention-visualization feature


def save_step(image: Image.Image, index: int, out: Path, image_format: str) -> Path:
    """Write one step's picture (an encoder job, on each step)."""
    return output.save_image(image, out / STEP.format(index=index), image_format)


def _per_step(plan: Plan) -> StepJob:
    return save_step, (plan.out, plan.options.image_format)


def _render(ctx: Context) -> list[Path]:
    return ctx.step_values["steps"]


def _report(analysis: Analysis, paths: list[Path], link) -> list[str]:
    return [f"- [step {s.index}]({link(p)})" for s, p in zip(analysis.stats.steps, paths)]


OUTPUT = Output("steps", "Per-step heatmaps", "attention_step_NNN.<image format>, one per analysed step",
                _render, per_step=_per_step, report=_report)
