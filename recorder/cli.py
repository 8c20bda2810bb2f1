"""``wan-record``: record a Wan generation's cross-attention into a store.

    wan-record --prompt "a cat walks on the grass" OUT.zarr      (the main job)
    wan-record tiny-model DIR                                     (a tiny offline pipeline)

torch and diffusers are imported inside the commands, so ``--help`` is instant.
"""

from __future__ import annotations

import os
import signal
from types import SimpleNamespace

import click

from recorder import inputs
from recorder.batch_cli import batch_command
from recorder.errors import RecordError, RecordInterrupted
from recorder.loading import check_model_name
from recorder.writer import WriterError
from shared.cli import default_group
from shared.errors import first_line
from shared.locations import LocationError, parse_storage_options

DEFAULT_MODEL = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"


def _int_list(value: str, what: str) -> tuple[int, ...]:
    try:
        items = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{what} must be comma-separated integers, got {value!r}") from None
    if not items:
        raise click.BadParameter(f"{what} is empty")
    return items


@default_group("record")
def main():
    """Record the exact cross-attention of a Wan text-to-video pipeline into a Zarr store."""


@main.command("record")
@click.argument("output", type=click.Path(dir_okay=True, file_okay=False, writable=True))
@click.option("--prompt", required=True, help="The prompt to generate.")
@click.option("--model", default=DEFAULT_MODEL, show_default=True,
              help="Hub id (Wan-AI/Wan2.1-T2V-1.3B-Diffusers, Wan-AI/Wan2.2-T2V-A14B-Diffusers, ...) "
                   "or a local pipeline directory.")
@click.option("--negative-prompt", default="", show_default=True)
@click.option("--seed", default=0, show_default=True, type=int, help="0..2**64-1.")
@click.option("--height", default=480, show_default=True, type=int,
              help="Pixels, at most 8192; a multiple of 16 (32 for TI2V-5B).")
@click.option("--width", default=832, show_default=True, type=int,
              help="Pixels, at most 8192; a multiple of 16 (32 for TI2V-5B).")
@click.option("--frames", "num_frames", default=81, show_default=True, type=int,
              help="Pixel frames, 1..10001; Wan needs 4k+1 and rounds down to it otherwise (said on stderr, stored).")
@click.option("--steps", "num_inference_steps", default=50, show_default=True, type=int, help="1..10000.")
@click.option("--guidance", "guidance_scale", default=5.0, show_default=True, type=float,
              help="Classifier-free guidance, a finite number; --branch both needs it > 1.")
@click.option("--guidance-2", "guidance_scale_2", default=None, type=float,
              help="Guidance of the low-noise expert (two-expert models: Wan 2.2 A14B); defaults to --guidance.")
@click.option("--max-sequence-length", default=512, show_default=True, type=int,
              help="Text length the pipeline pads to, 1..512; changing it changes the video.")
@click.option("--dtype", default="bfloat16", show_default=True,
              type=click.Choice(["bfloat16", "float16", "float32"]))
@click.option("--device", default="auto", show_default=True,
              help="auto (cuda if present), cpu, cuda, cuda:N or mps.")
@click.option("--heads", default="mean", show_default=True,
              help="'mean' averages all heads; a list like 0,3,5 (each once) averages only those heads.")
@click.option("--layers", default="all", show_default=True, help="'all' or a list of blocks like 0,10,29 (each once).")
@click.option("--layer-mean", is_flag=True, help="Store one map per step: the mean over the recorded layers.")
@click.option("--branch", default="cond", show_default=True, type=click.Choice(["cond", "both"]),
              help="'both' also records the unconditional pass, over the negative prompt's tokens.")
@click.option("--step-stride", default=1, show_default=True, type=int,
              help="Record every k-th step (0, k, 2k, ...); k >= 1.")
@click.option("--query-chunk-mb", default=256, show_default=True, type=int,
              help="Device memory for one chunk of fp32 logits, 1..1048576; bounds memory at any resolution.")
@click.option("--mantissa-bits", default=10, show_default=True, type=click.IntRange(0, 10),
              help="float16 mantissa bits kept in the maps: 10 is lossless; 3 makes them ~2.3x smaller at "
                   "<= 6.25% relative error (README 'Lossy option').")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
@click.option("--quiet", is_flag=True, help="No progress bar (errors and notes still go to stderr).")
@click.option("--storage-option", "storage_options", multiple=True, metavar="KEY=VALUE",
              help="For an OUTPUT URL (s3://bucket/run.zarr): an fsspec option such as endpoint_url=http://host:9000 "
                   "(repeatable). Credentials also come from the environment (AWS_ACCESS_KEY_ID, ...).")
def record_command(output, prompt, model, negative_prompt, seed, height, width, num_frames, num_inference_steps,
                   guidance_scale, guidance_scale_2, max_sequence_length, dtype, device, heads, layers, layer_mean,
                   branch, step_stride, query_chunk_mb, mantissa_bits, overwrite, quiet, storage_options):
    """Generate PROMPT with a Wan pipeline and record its cross-attention into the store OUTPUT."""
    stage = {"at": "before"}
    try:
        _record(stage, output, prompt, model, negative_prompt, seed, height, width, num_frames, num_inference_steps,
                guidance_scale, guidance_scale_2, max_sequence_length, dtype, device, heads, layers, layer_mean,
                branch, step_stride, query_chunk_mb, mantissa_bits, overwrite, storage_options, quiet)
    except (click.ClickException, click.exceptions.Exit, click.Abort):
        raise
    except BaseException as exc:  # every failure: one line and an exit code, never a traceback
        if isinstance(exc, SystemExit) or os.environ.get("WAN_ATTENTION_TRACEBACK"):
            raise
        raise _failure(exc, output, stage["at"]) from None


class _Failure(click.ClickException):
    """``Error: <one line>`` on stderr and ``exit_code`` (1, or 128 + signal for an interrupted recording)."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def _failure(exc: BaseException, output: str, stage: str = "before") -> _Failure:
    """The one line and exit code for anything that ends a recording command."""
    from shared.store import StoreError  # zarr loads only once a command runs: --help stays instant

    if isinstance(exc, RecordInterrupted):
        return _Failure(first_line(exc), exc.exit_code)
    if isinstance(exc, (RecordError, StoreError)):
        return _Failure(first_line(exc))
    if isinstance(exc, WriterError):
        return _Failure(f"{first_line(exc)}; what was written is kept in {output} (status 'failed')")
    if isinstance(exc, KeyboardInterrupt):
        where = {"before": "before the recording started; no store was written",
                 "recording": f"the store {output} keeps what was written",
                 "done": f"after the recording finished; the store {output} is complete"}[stage]
        return _Failure(f"interrupted by SIGINT, {where}", 128 + signal.SIGINT)
    if not isinstance(exc, Exception):  # recorder.signals.StopRequested and its like: a signal, by number
        code = getattr(exc, "exit_code", None)
        name = getattr(exc, "name", type(exc).__name__)
        return _Failure(f"interrupted by {name}", code if isinstance(code, int) else 1)
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return _Failure(f"{exc.strerror}{where}")
    if isinstance(exc, ValueError):
        return _Failure(first_line(exc))
    return _Failure(f"{type(exc).__name__}: {first_line(exc)} (set WAN_ATTENTION_TRACEBACK=1 for the traceback)")


def _record(stage, output, prompt, model, negative_prompt, seed, height, width, num_frames, num_inference_steps,
            guidance_scale, guidance_scale_2, max_sequence_length, dtype, device, heads, layers, layer_mean,
            branch, step_stride, query_chunk_mb, mantissa_bits, overwrite, storage_options, quiet=False):
    try:
        config_fields = dict(
            heads=None if heads == "mean" else _int_list(heads, "--heads"),
            layers=None if layers == "all" else _int_list(layers, "--layers"),
            layer_mean=layer_mean,
            branches=("cond", "uncond") if branch == "both" else ("cond",),
            step_stride=step_stride,
        )
    except click.BadParameter as exc:
        raise click.UsageError(exc.message) from None
    request_fields = dict(
        prompt=prompt, negative_prompt=negative_prompt, seed=seed, height=height, width=width,
        num_frames=num_frames, num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
        guidance_scale_2=guidance_scale_2, max_sequence_length=max_sequence_length)

    # Every input, before torch, the model or the store: no check here needs any of them.
    inputs.check_output_location(output)
    inputs.check_generation_request(SimpleNamespace(**request_fields))
    config_fields["query_chunk_bytes"] = inputs.check_query_chunk_mb(query_chunk_mb)
    inputs.check_capture_config(SimpleNamespace(**config_fields))
    inputs.check_branches(SimpleNamespace(**request_fields), SimpleNamespace(**config_fields))
    storage = inputs.check_storage(mantissa_bits)
    try:
        storage_options = parse_storage_options(storage_options)
    except LocationError as exc:
        raise click.UsageError(str(exc)) from None
    check_model_name(model)
    device = inputs.check_device(device)  # imports torch to ask for the GPU

    from shared.store import check_output, open_store, stored_bytes  # zarr: only once a command runs

    check_output(output, overwrite, storage_options)  # for a URL: one request, before the model loads

    # torch and diffusers: only here, after every cheap check, so a bad input fails in a blink
    from recorder.capture import CaptureConfig
    from recorder.loading import load_pipeline
    from recorder.record import GenerationRequest, record

    config = CaptureConfig(**config_fields)
    inputs.check_capture_config(config)
    request = GenerationRequest(**request_fields)
    pipe = load_pipeline(model, dtype=dtype, device=device)  # the hub check (one request, or the cache) comes first
    inputs.check_request_for_pipeline(pipe, request, model)
    stage["at"] = "recording"
    result = record(pipe, request, output, config, storage=storage, overwrite=overwrite, model_id=model,
                    storage_options=storage_options, show_progress=not quiet,
                    notify=lambda note: click.echo(f"note: {note}", err=True))
    stage["at"] = "done"
    timing = result.timing
    size = stored_bytes(open_store(output, storage_options))
    click.echo(f"recorded {output}: {size / 2**20:.1f} MiB, generation {timing['generation_s']:.2f} s, "
               f"capture {timing['capture_s']:.2f} s, writing {timing['write_s']:.2f} s (background)", err=True)


@main.command("tiny-model")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--layers", default=2, show_default=True, type=click.IntRange(1, 64), help="Transformer blocks.")
@click.option("--heads", default=2, show_default=True, type=click.IntRange(1, 64), help="Attention heads.")
@click.option("--head-dim", default=12, show_default=True, type=click.IntRange(2, 256),
              help="Channels per head (even: RoPE pairs them).")
@click.option("--two-experts", is_flag=True, help="Add transformer_2 and a boundary, like Wan 2.2 A14B.")
@click.option("--ti2v", is_flag=True, help="Wan 2.2 TI2V-5B's layout: VAE factor 16, 48 latent channels, "
                                         "per-token timesteps (sizes must be multiples of 32).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the random weights.")
def tiny_model_command(directory, layers, heads, head_dim, two_experts, ti2v, seed):
    """Save a tiny random-weight Wan pipeline to DIRECTORY, built offline; load it with --model DIRECTORY."""
    if os.path.exists(directory):
        raise click.ClickException(f"{directory} already exists; choose a new directory")
    if head_dim % 2:
        raise click.UsageError(f"--head-dim must be even (RoPE pairs channels), got {head_dim}")
    try:
        from recorder.tiny import TinyConfig, save_tiny_pipeline

        save_tiny_pipeline(directory, TinyConfig(num_layers=layers, num_heads=heads, head_dim=head_dim,
                                                 two_experts=two_experts, ti2v=ti2v, seed=seed))
    except BaseException as exc:  # one line, never a traceback
        if isinstance(exc, SystemExit) or os.environ.get("WAN_ATTENTION_TRACEBACK"):
            raise
        failure = _failure(exc, directory)
        if isinstance(exc, KeyboardInterrupt):
            failure = _Failure(f"interrupted by SIGINT; {directory} may hold a partly saved pipeline",
                               failure.exit_code)
        raise failure from None
    click.echo(f"saved a tiny Wan pipeline ({layers} layers, {heads} heads x {head_dim}"
               f"{', two experts' if two_experts else ''}{', TI2V layout' if ti2v else ''}) to {directory}", err=True)


# Many prompts, one store each; its module imports only click until it runs.
main.add_command(batch_command)
