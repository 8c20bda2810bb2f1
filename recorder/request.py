"""What to generate: the pipeline inputs of one recording, checked against the model, and the plain call."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np

from recorder.errors import RecordError
from shared import grid as latent
from shared.schema import GridKey


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


def pipeline_call_kwargs(pipe, request: GenerationRequest) -> dict:
    """The exact keyword arguments of the pipeline call, shared by recorded and plain runs."""
    import torch  # on use: keeps --help light

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




@contextmanager
def pipeline_progress(pipe, enabled: bool):
    """Show or hide the pipeline's own progress bar for the block, then put its settings back."""
    previous = dict(getattr(pipe, "_progress_bar_config", {}))
    pipe.set_progress_bar_config(**{**previous, "disable": not enabled})
    try:
        yield
    finally:
        pipe._progress_bar_config = previous
