"""``record()``: one Wan generation with its cross-attention streamed into a new store.

The request types and checks live in :mod:`recorder.request`, the parts of a recording
in :class:`recorder.session.RecordingSession`; this module is the sequence and its
policy for signals and errors. The names below are re-exported for callers of the
original module layout.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from recorder.capture import CaptureConfig
from recorder.errors import RecordError, RecordInterrupted
from recorder.inputs import check_branches, check_capture_config, check_generation_request
from recorder.request import (  # noqa: F401
    GenerationRequest,
    check_request,
    generate_plain,
    latent_grid,
    pipeline_call_kwargs,
    size_multiple,
)
from recorder.session import RecordingSession, now, write_video  # noqa: F401
from recorder.signals import StopRequested, stop_on_signals
from recorder.tokens import PromptTokens, prompt_tokens
from recorder.writer import WriterError
from shared import schema
from shared.errors import describe
from shared.schema import Attr
from shared.store import StorageOptions, check_output


@dataclass
class Recording:
    """What a recording returns: the frames the pipeline made, where they went, and how long it took."""

    frames: np.ndarray  # (frames, height, width, 3) float32 in [0, 1], exactly as the pipeline returned
    store: str
    request: GenerationRequest
    timing: dict
    notes: list[str]


def record(pipe, request: GenerationRequest, output: str | os.PathLike, config: CaptureConfig = CaptureConfig(),
           *, storage: StorageOptions = StorageOptions(), overwrite: bool = False, model_id: str | None = None,
           storage_options: dict | None = None, show_progress: bool = True, max_pending_writes: int = 8,
           notify=None) -> Recording:
    """Generate ``request`` with ``pipe`` and record its cross-attention into a new store at ``output``.

    The store's status is "recording" while this runs and "complete" when it returns. A
    stop signal (SIGTERM, SIGINT, SIGHUP) flushes what is queued, sets "interrupted" and
    raises :class:`RecordInterrupted`; a write error (full disk, read-only file system)
    sets "failed" where the store can still be written and raises :class:`RecordError`;
    any other error sets "failed" and is raised as it is. What was written is kept.
    ``output`` may be a URL (``s3://bucket/run.zarr``), reached with fsspec's ``storage_options``.
    ``notify(line)`` hears, before generation starts, what was adjusted (a rounded frame
    count, a replaced store).
    """
    output = os.fspath(output)
    check_generation_request(request)
    check_capture_config(config)
    check_branches(request, config)
    check_output(output, overwrite, storage_options)
    requested_frames = request.num_frames
    request, notes = check_request(pipe, request)
    tokens = _prompt_tokens(pipe, request, config, notes)
    session = RecordingSession(pipe, request, config, storage, tokens, requested_frames=requested_frames,
                               model_id=model_id)
    with stop_on_signals() as guard:
        store = session.create_store(output, overwrite, storage_options)
        try:
            if store.replaced:
                notes.append(store.replaced)
            for note in notes if notify is not None else ():
                notify(note)
            frames, timing = session.run(show_progress, max_pending_writes)
            session.mark_complete(timing, notes)
        except StopRequested as stop:
            guard.cleanup()
            kept = session.mark_ended({Attr.STATUS: schema.STATUS_INTERRUPTED, Attr.INTERRUPTED_BY: stop.name,
                                       Attr.ERROR: f"interrupted by {stop.name}", Attr.ENDED_AT: now()})
            raise RecordInterrupted(f"interrupted by {stop.name}; {kept}", stop.name, stop.exit_code) from None
        except BaseException as exc:
            guard.cleanup()
            cause = exc.__cause__ if isinstance(exc, WriterError) and exc.__cause__ is not None else exc
            kept = session.mark_ended({Attr.STATUS: schema.STATUS_FAILED, Attr.ERROR: describe(cause),
                                       Attr.ENDED_AT: now()})
            if isinstance(cause, OSError):
                raise RecordError(f"writing the store {output} failed: {describe(cause)}; {kept}") from exc
            raise
        finally:
            session.close()
    return Recording(frames=frames, store=output, request=request, timing=timing, notes=notes)


def _prompt_tokens(pipe, request: GenerationRequest, config: CaptureConfig, notes: list[str]) -> dict[str, PromptTokens]:
    """The tokens of each recorded branch, exactly as the pipeline tokenizes them."""
    tokens = {schema.BRANCH_COND: prompt_tokens(pipe.tokenizer, request.prompt, request.max_sequence_length)}
    if schema.BRANCH_UNCOND in config.branches:
        tokens[schema.BRANCH_UNCOND] = prompt_tokens(pipe.tokenizer, request.negative_prompt,
                                                     request.max_sequence_length)
    if tokens[schema.BRANCH_COND].truncated:
        notes.append(f"the prompt is longer than {request.max_sequence_length} tokens; the pipeline truncates it "
                     "and so does the record")
    return tokens
