"""Load a Wan pipeline from a hub id or a local directory, onto a device, with clear errors."""

from __future__ import annotations

import os
import re

from recorder.record import RecordError

# Hub ids that this project documents and was written against.
KNOWN_MODELS = (
    "Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
    "Wan-AI/Wan2.1-T2V-14B-Diffusers",
    "Wan-AI/Wan2.2-T2V-A14B-Diffusers",
    "Wan-AI/Wan2.2-TI2V-5B-Diffusers",
)
DTYPES = ("bfloat16", "float16", "float32")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def check_device(device: str) -> None:
    """Refuse a device torch cannot use, before anything is loaded."""
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RecordError(f"--device {device} was asked for, but torch sees no CUDA GPU here; use --device cpu")
    if device.startswith("mps") and not torch.backends.mps.is_available():
        raise RecordError(f"--device {device} was asked for, but MPS is not available here")


def _dtype_keyword(dtype) -> dict:
    """``from_pretrained``'s dtype keyword: ``dtype`` since diffusers 0.40, ``torch_dtype`` before.

    Older releases ignore ``dtype`` (with a warning) and newer ones deprecate ``torch_dtype``.
    """
    import diffusers
    from packaging.version import Version

    return {"dtype" if Version(diffusers.__version__) >= Version("0.40") else "torch_dtype": dtype}


def load_pipeline(model: str, dtype: str = "bfloat16", device: str = "cuda"):
    """Load ``WanPipeline.from_pretrained(model)`` in ``dtype`` and move it to ``device``.

    ``model`` is a hub id (``Wan-AI/Wan2.1-T2V-1.3B-Diffusers``) or a local directory
    (one saved by ``wan-record tiny-model``, say). The VAE is kept in float32, as the
    Wan model cards recommend; the text encoder and transformer use ``dtype``.
    """
    import torch
    from diffusers import AutoencoderKLWan, WanPipeline

    if dtype not in DTYPES:
        raise RecordError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    check_device(device)
    is_local = os.path.isdir(model)
    if not is_local and (os.path.exists(model) or not _HUB_ID.match(model)):
        raise RecordError(f"no model directory at {model} (and it is not a hub id like {KNOWN_MODELS[0]})")
    if is_local and not os.path.isfile(os.path.join(model, "model_index.json")):
        raise RecordError(f"{model} has no model_index.json: not a diffusers pipeline directory")
    try:
        vae = AutoencoderKLWan.from_pretrained(model, subfolder="vae", **_dtype_keyword(torch.float32))
        pipe = WanPipeline.from_pretrained(model, vae=vae, **_dtype_keyword(getattr(torch, dtype)))
    except Exception as exc:  # hub, network and format errors all end here; the user needs one line
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RecordError(f"could not load {model}: {first_line}") from exc
    return pipe.to(device)
