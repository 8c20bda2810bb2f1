"""One generation recorded into one store: the capture, the store, the sink and the writer, together.

A :class:`RecordingSession` is built from what is known before anything runs (the
pipeline, the request, what to capture, how to store it, the prompt's tokens), so its
store layout is fixed up front. Then :meth:`create_store` makes and locks the store,
:meth:`run` generates with the capture streaming into it, and one of
:meth:`mark_complete` / :meth:`mark_ended` sets the final status; :meth:`close` gives
the lock back. :func:`recorder.record.record` is that sequence plus the signal and
error policy.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from importlib.metadata import PackageNotFoundError, version

import numpy as np
from tqdm.auto import tqdm

from recorder.capture import AttentionCapture, CaptureConfig
from recorder.probabilities import ReducedAttention
from recorder.request import GenerationRequest, latent_grid, pipeline_call_kwargs, pipeline_progress
from recorder.store_sink import StoreSink
from recorder.tokens import PromptTokens
from recorder.writer import BackgroundWriter
from shared import schema
from shared.errors import describe
from shared.schema import Attr, BranchAttr, GridKey
from shared.store import BranchLayout, RecordingStore, StorageOptions, StoreLayout, create_recording_store, finish


def now() -> str:
    """The current time as the store writes it: ISO 8601, UTC, seconds."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class RecordingSession:
    """Records one generation of ``pipe`` for ``request`` into one new store."""

    def __init__(self, pipe, request: GenerationRequest, config: CaptureConfig, storage: StorageOptions,
                 tokens: dict[str, PromptTokens], *, requested_frames: int | None = None,
                 model_id: str | None = None):
        self.pipe, self.request, self.config, self.storage, self.tokens = pipe, request, config, storage, tokens
        # pipeline step -> position on the store's step axis
        self.step_slots = {step: slot for slot, step in
                           enumerate(schema.recorded_steps(request.num_inference_steps, config.step_stride))}
        self.capture = AttentionCapture(pipe, config, self._deliver, {b: len(t.ids) for b, t in tokens.items()})
        grid = latent_grid(pipe, request)
        self.grid_shape = (grid[GridKey.FRAMES], grid[GridKey.HEIGHT], grid[GridKey.WIDTH])
        self.layer_blocks = (-1,) if config.layer_mean else self.capture.layer_blocks
        self.layout = StoreLayout(
            num_steps=len(self.step_slots), layer_blocks=self.layer_blocks, grid=self.grid_shape,
            num_heads=self.capture.num_heads,
            branches=tuple(_branch_layout(b, t, request.max_sequence_length) for b, t in tokens.items()),
            video_shape=(request.num_frames, request.height, request.width, 3),
            attributes=_root_attributes(pipe, request, requested_frames or request.num_frames, config, storage,
                                        self.capture.layer_blocks, grid, model_id),
        )
        self.store: RecordingStore | None = None
        self.sink: StoreSink | None = None
        self.writer: BackgroundWriter | None = None

    def _deliver(self, step: int, branch: str, layer_slot: int, reduced: ReducedAttention) -> None:
        self.sink(step, branch, layer_slot, reduced)

    def create_store(self, output: str | os.PathLike, overwrite: bool = False,
                     storage_options: dict | None = None) -> RecordingStore:
        """Create and lock the store (a one-line StoreError when the output cannot take one)."""
        self.store = create_recording_store(output, self.layout, overwrite=overwrite, storage_options=storage_options)
        return self.store

    def run(self, show_progress: bool = True, max_pending_writes: int = 8) -> tuple[np.ndarray, dict]:
        """Generate with the capture streaming into the store; write the video; return frames and timing.

        The background writer is flushed before this returns or raises, so whoever marks
        the store afterwards marks what is on disk.
        """
        root, pipe, request = self.store.root, self.pipe, self.request
        started = time.perf_counter()
        self.writer = BackgroundWriter(max_pending=max_pending_writes)
        self.sink = StoreSink(root, self.writer, self.grid_shape, len(self.layer_blocks), self.capture.num_heads,
                              self.step_slots, self.storage.mantissa_bits, branches=tuple(self.tokens))
        progress = tqdm(total=request.num_inference_steps, desc="recording", unit="step", file=sys.stderr,
                        disable=not show_progress)

        def on_step_end(_pipe, i, t, _kwargs):
            if i in self.step_slots:
                # t stays a tensor: the writer thread reads it, so the loop never waits on the device.
                self.sink.end_step(i, t, float(pipe.scheduler.sigmas[i]), self.capture.experts_by_step.get(i, -1))
            self.capture.on_step_end()
            progress.update(1)
            progress.set_postfix(queued=self.writer.pending, refresh=False)
            return {}

        try:
            with pipeline_progress(pipe, False), self.capture:  # one bar: ours, which also shows the queue
                frames = pipe(**pipeline_call_kwargs(pipe, request), callback_on_step_end=on_step_end).frames[0]
            generation_s = time.perf_counter() - started
            # Every queued step is on disk before the first frame: a disk that fills up during the video
            # then costs frames, never steps (which are worth more, and which the video cannot replace).
            self.writer.flush()
            write_video(root, frames)
            self.writer.close()
        finally:
            try:
                self.writer.close()  # flush what is queued: complete steps stay complete
            except BaseException:  # noqa: BLE001 - the error that stopped the run is the one to report
                pass
            progress.close()
        timing = {
            "generation_s": generation_s,
            "capture_s": self.capture.timer.seconds,
            "write_s": self.writer.seconds_writing,
            "total_s": time.perf_counter() - started,
        }
        return frames, timing

    def mark_complete(self, timing: dict, notes: list[str]) -> None:
        """What only the finished run knows, then the status "complete", last."""
        root = self.store.root
        for branch in self.tokens:
            root[branch].attrs.update({
                BranchAttr.NUM_KEYS: self.capture.num_keys.get(branch, self.request.max_sequence_length),
                BranchAttr.PAD_KEYS_COLLAPSED: self.capture.pad_keys_collapsed.get(branch)})
        finish(root, {Attr.TIMING: timing, Attr.ENDED_AT: now(), Attr.NOTES: notes,
                      Attr.STATUS: schema.STATUS_COMPLETE})

    def mark_ended(self, attributes: dict) -> str:
        """Set the final status of a stopped recording; return what it kept, as a clause for the message."""
        root = self.store.root_for_final_status()  # on a full disk, the reserve is the room the status needs
        try:
            flags = root[schema.STEP_COMPLETE.path]
            kept = f"{int(np.count_nonzero(flags[:]))} of {flags.shape[0]} recorded steps are complete and kept"
        except Exception as exc:  # noqa: BLE001 - an unreadable flag must not hide the error being reported
            kept = f"the complete steps could not be counted ({describe(exc)})"
        try:
            finish(root, attributes)
            return f"{kept} (status {attributes[Attr.STATUS]!r})"
        except Exception as exc:  # noqa: BLE001 - a full or read-only disk: say so, keep the first error
            return (f"{kept}; the status could not be updated ({describe(exc)}), so it still reads 'recording' "
                    "and a later --overwrite sees it as stale")

    def close(self) -> None:
        """Give the store's lock back (idempotent)."""
        if self.store is not None:
            self.store.release()


def write_video(root, frames: np.ndarray, workers: int | None = None) -> None:
    """Write float frames in [0, 1] as uint8 (the rounding diffusers uses for PIL output), one frame per task.

    This runs after the pipeline returns, so it is pure overhead: frames are converted
    and compressed in parallel (numpy and Blosc release the GIL; each frame is its own
    chunk, so the writes never touch the same chunk). ``video_written`` is updated from
    this thread only, after each frame's chunk is on disk, so an interrupted write says
    exactly which frames exist.
    """
    # A black frame equals the fill value, and zarr skips writing such chunks by default; the
    # reader would then find a frame marked written with no chunk, which is how corruption looks.
    video = root[schema.VIDEO.path].with_config({"write_empty_chunks": True})
    flags = root[schema.VIDEO_WRITTEN.path]
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


def _branch_layout(branch: str, tokens: PromptTokens, num_keys: int) -> BranchLayout:
    """A branch's tokens, written when the store is created: a store is readable from its first moment."""
    return BranchLayout(branch, len(tokens.ids), {
        BranchAttr.PROMPT: tokens.text,
        BranchAttr.TOKENS: tokens.strings,
        BranchAttr.WORDS: tokens.words,
        BranchAttr.NUM_REAL_TOKENS: len(tokens.ids),
        BranchAttr.NUM_KEYS: num_keys,  # what the pipeline pads to; checked against the keys seen
    }, tuple(tokens.ids))


def _versions() -> dict:
    found = {}
    for package in ("torch", "diffusers", "transformers", "accelerate", "wan-attention"):
        try:
            found[package.replace("-", "_")] = version(package)
        except PackageNotFoundError:
            found[package.replace("-", "_")] = None
    return found


def _root_attributes(pipe, request, requested_frames, config, storage, layer_blocks, grid, model_id) -> dict:
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
        Attr.RECORD_OPTIONS: schema.record_options(
            list(layer_blocks), heads=config.heads, layer_mean=config.layer_mean, branches=config.branches,
            step_stride=config.step_stride, mantissa_bits=storage.mantissa_bits,
            query_chunk=config.query_chunk_bytes),
        Attr.STARTED_AT: now(),
        Attr.LATENT_GRID: grid,
    }
