"""``wan-record batch PROMPTS OUTDIR``: one store per prompt, resumable, on one process or many.

    wan-record batch prompts.txt study/ --model Wan-AI/Wan2.1-T2V-1.3B-Diffusers
    torchrun --nproc-per-node 8 -m recorder.batch_cli prompts.jsonl study/      (one GPU per process)

The work is :mod:`recorder.batch`'s; this module is the click command. torch and diffusers
are imported only once the command runs, so ``--help`` is instant.
"""

from __future__ import annotations

import os
import sys

import click

from recorder.errors import RecordError
from shared.cli import with_conventions
from shared.errors import first_line

DEFAULT_MODEL = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"


def _fail(message: str, code: int = 1):
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


@click.command("batch")
@click.argument("prompts", type=click.Path(dir_okay=False))
@click.argument("outdir", type=click.Path(file_okay=False))
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help="Hub id or a local pipeline directory.")
@click.option("--device", default="auto", show_default=True,
              help="auto or cuda: cuda:LOCAL_RANK (one GPU per process) when CUDA is there, else cpu; "
                   "or cpu, cuda:N, mps as given.")
@click.option("--dtype", default="bfloat16", show_default=True, type=click.Choice(["bfloat16", "float16", "float32"]))
@click.option("--negative-prompt", default="", show_default=True, help="For lines that give none.")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Base seed: a line without a seed gets this plus its job index (0, 1, 2, ...).")
@click.option("--height", default=480, show_default=True, type=int, help="For lines that give none.")
@click.option("--width", default=832, show_default=True, type=int, help="For lines that give none.")
@click.option("--frames", default=81, show_default=True, type=int, help="For lines that give none.")
@click.option("--steps", default=50, show_default=True, type=int, help="For lines that give none.")
@click.option("--guidance", default=5.0, show_default=True, type=float, help="For lines that give none.")
@click.option("--max-sequence-length", default=512, show_default=True, type=int, help="For lines that give none.")
@click.option("--heads", default="mean", show_default=True,
              help="'mean' or a list like 0,3,5; for lines that give none.")
@click.option("--layers", default="all", show_default=True,
              help="'all' or a list like 0,10,29; for lines that give none.")
@click.option("--layer-mean", is_flag=True, help="One map per step (the layer mean); for lines that give none.")
@click.option("--branch", default="cond", show_default=True, type=click.Choice(["cond", "both"]),
              help="For lines that give none.")
@click.option("--step-stride", default=1, show_default=True, type=int, help="For lines that give none.")
@click.option("--mantissa-bits", default=10, show_default=True, type=click.IntRange(0, 10),
              help="For lines that give none.")
@click.option("--query-chunk-mb", default=256, show_default=True, type=int,
              help="Device memory for one chunk of logits.")
@click.option("--overwrite-failed/--keep-failed", default=True, show_default=True,
              help="Redo stores left failed, interrupted or abandoned at 'recording' (never one a live process "
                   "records, never a directory that is not a store); complete stores are always skipped.")
@click.option("--progress", is_flag=True, help="Also show each recording's step progress bar.")
def batch_command(prompts, outdir, model, device, dtype, negative_prompt, seed, height, width, frames, steps,
                  guidance, max_sequence_length, heads, layers, layer_mean, branch, step_stride, mantissa_bits,
                  query_chunk_mb, overwrite_failed, progress):
    """Record every prompt of PROMPTS into its own store in OUTDIR, and list them in OUTDIR/catalog.json.

    PROMPTS is a text file (one prompt a line; blank lines and '#' lines skipped) or JSON Lines,
    one object a line: "prompt" and any of negative_prompt, seed, height, width, frames, steps,
    guidance, guidance_2, max_sequence_length, layers, heads, layer_mean, branch, step_stride,
    mantissa_bits, name. Job i goes to OUTDIR/<iiii>-<prompt slug>.zarr (or OUTDIR/<name>.zarr).

    Run as is, it records them one after another. Under torchrun --nproc-per-node N (or with
    RANK and WORLD_SIZE set, as in a SLURM array), each process records jobs RANK, RANK+N, ...
    A rerun skips complete stores and redoes the others. The exit code is 0 when every store
    (of this process; of all, for rank 0 under torchrun) is complete, 1 otherwise.
    """
    from recorder import batch
    from recorder.loading import check_model_name

    def say(line: str) -> None:
        click.echo(line, err=True)

    try:
        place = batch.place_from_env()
        defaults = batch.Defaults(negative_prompt=negative_prompt, seed=seed, height=height, width=width,
                                  frames=frames, steps=steps, guidance=guidance,
                                  max_sequence_length=max_sequence_length, layers=layers, heads=heads,
                                  layer_mean=layer_mean, branch=branch, step_stride=step_stride,
                                  mantissa_bits=mantissa_bits, query_chunk_mb=query_chunk_mb)
        jobs = batch.make_jobs(prompts, outdir, defaults)  # every line checked before any model loads
        check_model_name(model)
        device = batch.device_for(device, place)
    except RecordError as exc:
        _fail(first_line(exc), 2)
    share = len(jobs[place.rank::place.world_size])
    where = f"rank {place.rank}/{place.world_size}, " if place.world_size > 1 else ""
    say(f"batch: {len(jobs)} prompts from {prompts}; {where}{share} here, on {device}")

    def load():
        from recorder.loading import load_pipeline

        say(f"loading {model} ({dtype}) onto {device}")
        return load_pipeline(model, dtype=dtype, device=device)

    try:
        result = batch.run_batch(prompts, outdir, load, place=place, overwrite_failed=overwrite_failed,
                                 model_id=model, show_progress=progress, say=say, jobs=jobs)
    except RecordError as exc:
        _fail(first_line(exc), 2)
    own = [entry for entry in result.entries if entry["action"] not in (batch.RECORDED, batch.SKIPPED)]
    catalog = result.catalog
    whole = catalog is not None and (place.world_size == 1 or place.distributed)
    if whole:
        lines = batch.failures(catalog)
    else:
        by_index = {job.index: job for job in jobs}
        lines = [f"{by_index[e['index']].name} (line {by_index[e['index']].line}): {e['error'] or e['action']}"
                 for e in own]
    for line in lines:
        click.echo(f"failed: {line}", err=True)
    recorded = sum(e["action"] == batch.RECORDED for e in result.entries)
    skipped = sum(e["action"] == batch.SKIPPED for e in result.entries)
    scope = "all" if whole else "this process's"
    summary = (f"batch: {scope} {len(jobs) if whole else len(result.entries)} jobs: "
               f"{(len(jobs) if whole else len(result.entries)) - len(lines)} complete, {len(lines)} not; "
               f"here {recorded} recorded, {skipped} skipped")
    if catalog is not None:
        summary += f"; catalog {os.path.join(outdir, batch.CATALOG_NAME)}"
    say(summary)
    if result.interrupted is not None:
        _fail(first_line(result.interrupted), result.interrupted.exit_code)
    sys.exit(1 if lines else 0)


batch_command = with_conventions(batch_command)


if __name__ == "__main__":  # python -m recorder.batch_cli / torchrun -m recorder.batch_cli
    batch_command()
