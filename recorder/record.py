"""Run a Wan pipeline once with the capture installed and stream everything into a store."""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from dataclasses import dataclass, replace

import numpy as np

from recorder.capture import AttentionCapture, CaptureConfig
from recorder.errors import RecordError, RecordInterrupted
from recorder.signals import StopRequested, stop_on_signals
from recorder.store_sink import StoreSink
from recorder.tokens import PromptTokens, prompt_tokens
from recorder.writer import BackgroundWriter, WriterError
from shared import grid as latent
from shared import schema
from shared.schema import Attr, BranchAttr, GridKey, RecordOption
from shared.store import BranchLayout, StoreLayout, check_output, create_recording_store, reason


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message``: what a store's error attribute and the CLI show."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


@dataclass(frozen=True)
class GenerationRequest:
    """The pipeline inputs of one recording. Defaults are WanPipeline's own."""

    prompt: str
    negative_prompt: str = ""
    seed: int = 0
    height: int = 480
    width: int = 832
    num_frames: int = 81
    num_inference_steps: int = 50
    guidance_scale: float = 5.0
    guidance_scale_2: float | None = None
    max_sequence_length: int = 512


@dataclass
class Recording:
    """What a recording returns: the frames the pipeline made, where they went, and how long it took."""

    frames: np.ndarray  # (frames, height, width, 3) float32 in [0, 1], exactly as the pipeline returned
    store: str
    request: GenerationRequest
    timing: dict
    notes: list[str]


def size_multiple(pipe) -> int:
    """Pixel multiple that height and width must be: VAE factor times the patch size."""
    patch = pipe.transformer.config.patch_size
    return pipe.vae_scale_factor_spatial * patch[1]


def check_request(pipe, request: GenerationRequest) -> tuple[GenerationRequest, list[str]]:
    """Refuse sizes the model cannot take; round the frame count as the pipeline would, and say so."""
    notes = []
    multiple = size_multiple(pipe)
    for name in ("height", "width"):
        value = getattr(request, name)
        if value < multiple or value % multiple:
            nearest = max(multiple, round(value / multiple) * multiple)
            raise RecordError(f"{name} {value} is not a positive multiple of {multiple} "
                              f"(VAE factor x patch size); try {nearest}")
    factor = pipe.vae_scale_factor_temporal
    if request.num_frames < 1:
        raise RecordError(f"num_frames must be at least 1, got {request.num_frames}")
    if (request.num_frames - 1) % factor:
        rounded = max(request.num_frames // factor * factor + 1, 1)
        notes.append(f"num_frames {request.num_frames} is not {factor}k+1; Wan generates {rounded} frames "
                     f"(recorded as num_frames, the request as num_frames_requested)")
        request = replace(request, num_frames=rounded)
    if request.num_inference_steps < 1:
        raise RecordError(f"num_inference_steps must be at least 1, got {request.num_inference_steps}")
    return request, notes


def latent_grid(pipe, request: GenerationRequest) -> dict:
    patch = list(pipe.transformer.config.patch_size)
    factor_t, factor_s = pipe.vae_scale_factor_temporal, pipe.vae_scale_factor_spatial
    frames = latent.latent_frames(request.num_frames, factor_t) // patch[0]
    return {
        GridKey.FRAMES: frames,
        GridKey.HEIGHT: request.height // (factor_s * patch[1]),
        GridKey.WIDTH: request.width // (factor_s * patch[2]),
        GridKey.PATCH_SIZE: patch,
        GridKey.VAE_SCALE_TEMPORAL: factor_t,
        GridKey.VAE_SCALE_SPATIAL: factor_s,
        GridKey.PIXEL_FRAMES: latent.pixel_frames_of_latent(frames, factor_t),
    }


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("torch", "diffusers", "transformers", "accelerate", "wan-attention"):
        try:
            found[package.replace("-", "_")] = version(package)
        except PackageNotFoundError:
            found[package.replace("-", "_")] = None
    return found


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _root_attributes(pipe, request, requested_frames, config, layer_blocks, grid, model_id) -> dict:
    transformer = pipe.transformer
    scheduler_config = dict(pipe.scheduler.config)
    boundary = pipe.config.get("boundary_ratio") if hasattr(pipe, "config") else None
    return {
        Attr.PROMPT: request.prompt,
        Attr.NEGATIVE_PROMPT: request.negative_prompt,
        Attr.SEED: request.seed,
        Attr.HEIGHT: request.height,
        Attr.WIDTH: request.width,
        Attr.NUM_FRAMES: request.num_frames,
        Attr.NUM_FRAMES_REQUESTED: requested_frames,
        Attr.NUM_INFERENCE_STEPS: request.num_inference_steps,
        Attr.GUIDANCE_SCALE: request.guidance_scale,
        Attr.GUIDANCE_SCALE_2: request.guidance_scale_2,
        Attr.MAX_SEQUENCE_LENGTH: request.max_sequence_length,
        Attr.SCHEDULER: type(pipe.scheduler).__name__,
        Attr.SCHEDULER_SHIFT: scheduler_config.get("flow_shift", scheduler_config.get("shift")),
        Attr.SCHEDULER_CONFIG: {k: v for k, v in scheduler_config.items() if not k.startswith("_")},
        Attr.MODEL_ID: model_id,
        Attr.MODEL_CLASS: f"{type(pipe).__name__}/{type(transformer).__name__}",
        Attr.TRANSFORMER_CONFIG: {
            "num_layers": transformer.config.num_layers,
            "num_attention_heads": transformer.config.num_attention_heads,
            "attention_head_dim": transformer.config.attention_head_dim,
            "text_dim": transformer.config.text_dim,
            "patch_size": list(transformer.config.patch_size),
            "num_experts": 2 if getattr(pipe, "transformer_2", None) is not None else 1,
        },
        Attr.EXPERT_BOUNDARY: None if boundary is None else boundary * pipe.scheduler.config.num_train_timesteps,
        Attr.DTYPE: str(transformer.dtype).replace("torch.", ""),
        Attr.DEVICE: str(pipe._execution_device),
        Attr.VERSIONS: _versions(),
        Attr.RECORD_OPTIONS: {
            RecordOption.HEADS: "mean" if config.heads is None else list(config.heads),
            RecordOption.LAYERS: list(layer_blocks),
            RecordOption.LAYER_REDUCTION: "mean" if config.layer_mean else "none",
            RecordOption.BRANCHES: list(config.branches),
            RecordOption.STEP_STRIDE: config.step_stride,
            RecordOption.PRECISION: "float16" if config.mantissa_bits == 10
            else f"float16 rounded to {config.mantissa_bits} mantissa bits",
            RecordOption.MANTISSA_BITS: config.mantissa_bits,
            RecordOption.QUERY_CHUNK: config.query_chunk_bytes,
        },
        Attr.STARTED_AT: _now(),
        Attr.LATENT_GRID: grid,
    }


def _branch_layout(branch: str, tokens: PromptTokens, num_keys: int) -> BranchLayout:
    """A branch's tokens, written when the store is created: a store is readable from its first moment."""
    return BranchLayout(branch, len(tokens.ids), {
        BranchAttr.PROMPT: tokens.text,
        BranchAttr.TOKENS: tokens.strings,
        BranchAttr.WORDS: tokens.words,
        BranchAttr.NUM_REAL_TOKENS: len(tokens.ids),
        BranchAttr.NUM_KEYS: num_keys,  # what the pipeline pads to; checked against the keys seen
    }, tuple(tokens.ids))


def write_video(root, frames: np.ndarray, workers: int | None = None) -> None:
    """Write float frames in [0, 1] as uint8 (the rounding diffusers uses for PIL output), one frame per task.

    This runs after the pipeline returns, so it is pure overhead: frames are converted
    and compressed in parallel (numpy and Blosc release the GIL; each frame is its own
    chunk, so the writes never touch the same chunk). ``video_written`` is updated from
    this thread only, after each frame's chunk is on disk, so an interrupted write says
    exactly which frames exist.
    """
    from concurrent.futures import ThreadPoolExecutor, as_completed

    video, flags = root[schema.VIDEO.path], root[schema.VIDEO_WRITTEN.path]
    written = np.zeros(len(frames), dtype=bool)

    def one(index: int) -> int:
        video[index] = (frames[index] * 255).round().astype(np.uint8)
        return index

    pool = ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1), thread_name_prefix="wan-video")
    try:
        for done in as_completed([pool.submit(one, i) for i in range(len(frames))]):
            written[done.result()] = True
            flags[:] = written
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # on a stop, frames not yet started are not written


def pipeline_call_kwargs(pipe, request: GenerationRequest) -> dict:
    """The exact keyword arguments of the pipeline call, shared by recorded and plain runs."""
    import torch

    kwargs = dict(
        prompt=request.prompt, negative_prompt=request.negative_prompt, height=request.height,
        width=request.width, num_frames=request.num_frames, num_inference_steps=request.num_inference_steps,
        guidance_scale=request.guidance_scale, max_sequence_length=request.max_sequence_length,
        # A CPU generator gives the same noise on every device.
        generator=torch.Generator("cpu").manual_seed(request.seed), output_type="np",
    )
    if request.guidance_scale_2 is not None:
        kwargs["guidance_scale_2"] = request.guidance_scale_2
    return kwargs


def generate_plain(pipe, request: GenerationRequest) -> np.ndarray:
    """The same generation without recording: the reference for bit-identical video."""
    return pipe(**pipeline_call_kwargs(pipe, request)).frames[0]


def record(pipe, request: GenerationRequest, output: str | os.PathLike, config: CaptureConfig = CaptureConfig(),
           *, overwrite: bool = False, model_id: str | None = None, show_progress: bool = True,
           max_pending_writes: int = 8, notify=None) -> Recording:
    """Generate ``request`` with ``pipe`` and record its cross-attention into a new store at ``output``.

    The store's status is "recording" while this runs and "complete" when it returns. A
    stop signal (SIGTERM, SIGINT, SIGHUP) flushes what is queued, sets "interrupted" and
    raises :class:`RecordInterrupted`; a write error (full disk, read-only file system)
    sets "failed" where the store can still be written and raises :class:`RecordError`;
    any other error sets "failed" and is raised as it is. What was written is kept.
    ``notify(line)`` hears, before generation starts, what was adjusted (a rounded frame
    count, a replaced store).
    """
    from recorder.inputs import check_capture_config, check_generation_request

    output = os.fspath(output)
    check_generation_request(request)
    check_capture_config(config)
    check_output(output, overwrite)
    requested_frames = request.num_frames
    request, notes = check_request(pipe, request)
    if schema.BRANCH_UNCOND in config.branches and request.guidance_scale <= 1:
        raise RecordError("the uncond branch needs guidance_scale > 1 (no unconditional pass runs otherwise)")
    tokens = {schema.BRANCH_COND: prompt_tokens(pipe.tokenizer, request.prompt, request.max_sequence_length)}
    if schema.BRANCH_UNCOND in config.branches:
        tokens[schema.BRANCH_UNCOND] = prompt_tokens(pipe.tokenizer, request.negative_prompt,
                                                     request.max_sequence_length)
    if tokens[schema.BRANCH_COND].truncated:
        notes.append(f"the prompt is longer than {request.max_sequence_length} tokens; the pipeline truncates it "
                     "and so does the record")

    grid = latent_grid(pipe, request)
    step_slots = {i: slot for slot, i in enumerate(range(0, request.num_inference_steps, config.step_stride))}
    # The sink needs the capture's layer and head counts; it is attached once the store exists.
    capture = AttentionCapture(pipe, config, None, {b: len(t.ids) for b, t in tokens.items()})
    layer_blocks = (-1,) if config.layer_mean else capture.layer_blocks
    grid_shape = (grid[GridKey.FRAMES], grid[GridKey.HEIGHT], grid[GridKey.WIDTH])
    layout = StoreLayout(
        num_steps=len(step_slots), layer_blocks=layer_blocks, grid=grid_shape, num_heads=capture.num_heads,
        branches=tuple(_branch_layout(b, t, request.max_sequence_length) for b, t in tokens.items()),
        video_shape=(request.num_frames, request.height, request.width, 3),
        attributes=_root_attributes(pipe, request, requested_frames, config, capture.layer_blocks, grid, model_id),
    )
    with stop_on_signals() as guard:
        store = create_recording_store(output, layout, overwrite=overwrite)
        if store.replaced:
            notes.append(store.replaced)
        for note in notes:
            if notify is not None:
                notify(note)
        try:
            frames, timing = _generate_into(store.root, pipe, request, config, capture, tokens, step_slots,
                                            grid_shape, len(layer_blocks), show_progress, max_pending_writes)
            store.root.attrs.update({Attr.TIMING: timing, Attr.ENDED_AT: _now(), Attr.STATUS: schema.STATUS_COMPLETE,
                                     Attr.NOTES: notes})
        except StopRequested as stop:
            guard.cleanup()
            kept = _mark_ended(store, {Attr.STATUS: schema.STATUS_INTERRUPTED, Attr.INTERRUPTED_BY: stop.name,
                                            Attr.ERROR: f"interrupted by {stop.name}", Attr.ENDED_AT: _now()})
            raise RecordInterrupted(f"interrupted by {stop.name}; {kept}", stop.name, stop.exit_code) from None
        except BaseException as exc:
            guard.cleanup()
            cause = exc.__cause__ if isinstance(exc, WriterError) and exc.__cause__ is not None else exc
            kept = _mark_ended(store, {Attr.STATUS: schema.STATUS_FAILED, Attr.ERROR: one_line(cause),
                                            Attr.ENDED_AT: _now()})
            if isinstance(cause, OSError):
                raise RecordError(f"writing the store {output} failed: {reason(cause)}; {kept}") from exc
            raise
        finally:
            store.release()
    return Recording(frames=frames, store=output, request=request, timing=timing, notes=notes)


def _generate_into(root, pipe, request, config, capture, tokens, step_slots, grid_shape, num_layers,
                   show_progress, max_pending_writes) -> tuple[np.ndarray, dict]:
    """Run the pipeline with the capture streaming into ``root``; write the video; return frames and timing.

    The background writer is always closed (flushed) before this returns or raises,
    so a caller that marks the store afterwards marks what is on disk.
    """
    from tqdm.auto import tqdm

    writer = progress = None
    previous_bar = dict(getattr(pipe, "_progress_bar_config", {}))
    started = time.perf_counter()
    try:
        writer = BackgroundWriter(max_pending=max_pending_writes)
        sink = StoreSink(root, writer, grid_shape, num_layers, capture.num_heads, step_slots, config.mantissa_bits)
        capture.sink = sink
        progress = tqdm(total=request.num_inference_steps, desc="recording", unit="step", file=sys.stderr,
                        disable=not show_progress)

        def on_step_end(_pipe, i, t, _kwargs):
            if i in step_slots:
                # t stays a tensor: the writer thread reads it, so the loop never waits on the device.
                sink.end_step(i, t, float(pipe.scheduler.sigmas[i]), capture.experts_by_step.get(i, -1))
            capture.on_step_end()
            progress.update(1)
            progress.set_postfix(queued=writer.pending, refresh=False)
            return {}

        pipe.set_progress_bar_config(disable=True)
        with capture:
            frames = pipe(**pipeline_call_kwargs(pipe, request), callback_on_step_end=on_step_end).frames[0]
        generation_s = time.perf_counter() - started
        write_video(root, frames)
        writer.close()
    finally:
        if writer is not None:
            try:
                writer.close()  # flush what is queued: complete steps stay complete
            except BaseException:  # noqa: BLE001 - the error that stopped the run is the one to report
                pass
        pipe._progress_bar_config = previous_bar
        if progress is not None:
            progress.close()
    for branch in tokens:
        root[branch].attrs.update({BranchAttr.NUM_KEYS: capture.num_keys.get(branch, request.max_sequence_length),
                                   BranchAttr.PAD_KEYS_COLLAPSED: capture.pad_keys_collapsed.get(branch)})
    timing = {
        "generation_s": generation_s,
        "capture_s": capture.timer.seconds,
        "write_s": writer.seconds_writing,
        "total_s": time.perf_counter() - started,
    }
    return frames, timing


def _mark_ended(store, attributes: dict) -> str:
    """Set the final status of a stopped recording; return what it kept, as a clause for the message."""
    root = store.root
    try:
        store.free_reserve()  # on a full disk, this is the room the status needs
    except OSError:
        pass
    try:
        complete = int(np.count_nonzero(root[schema.STEP_COMPLETE.path][:]))
        kept = f"{complete} of {root[schema.STEP_COMPLETE.path].shape[0]} recorded steps are complete and kept"
    except Exception as exc:  # noqa: BLE001 - an unreadable flag must not hide the error being reported
        kept = f"the complete steps could not be counted ({reason(exc)})"
    try:
        root.attrs.update(attributes)
        return f"{kept} (status {attributes[Attr.STATUS]!r})"
    except Exception as exc:  # noqa: BLE001 - a full or read-only disk: say so, keep the first error
        return (f"{kept}; the status could not be updated ({reason(exc)}), so it still reads 'recording' "
                "and a later --overwrite sees it as stale")
