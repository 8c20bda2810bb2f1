"""Load a Wan pipeline from a hub id or a local directory, onto a device, with clear errors."""

from __future__ import annotations

import logging
import os
import re
import time

from recorder.errors import RecordError
from recorder.inputs import check_device, shown

log = logging.getLogger(__name__)

# Hub ids that this project documents and was written against.
KNOWN_MODELS = (
    "Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
    "Wan-AI/Wan2.1-T2V-14B-Diffusers",
    "Wan-AI/Wan2.2-T2V-A14B-Diffusers",
    "Wan-AI/Wan2.2-TI2V-5B-Diffusers",
)
DTYPES = ("bfloat16", "float16", "float32")
__all__ = ["DTYPES", "KNOWN_MODELS", "check_device", "check_model_name", "load_pipeline", "locate_model"]
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
HUB_TIMEOUT_S = 10  # the one metadata request made before a download
_TRUE = {"1", "ON", "YES", "TRUE"}


def is_hub_id(model: str) -> bool:
    """``owner/name`` as the Hugging Face hub spells repository ids."""
    if not _HUB_ID.match(model) or len(model) > 96 * 2 + 1:
        return False
    try:
        from huggingface_hub.utils import validate_repo_id  # on use: keeps --help light

        validate_repo_id(model)
    except ImportError:  # pragma: no cover - huggingface_hub comes with diffusers
        return True
    except Exception:  # noqa: BLE001 - HFValidationError, whatever its base in this version
        return False
    return True


def check_model_name(model) -> str:
    """Without touching the network: ``"local"`` for a pipeline directory, ``"hub"`` for a hub id.

    Anything else (an empty string, a file, a missing path, a string that is no hub id) is
    refused with one line.
    """
    if not isinstance(model, str) or not model.strip():
        raise RecordError(f"--model {shown(model)} is empty; give a hub id like {KNOWN_MODELS[0]} "
                          "or a local pipeline directory")
    if os.path.isdir(model):
        if not os.path.isfile(os.path.join(model, "model_index.json")):
            raise RecordError(f"{shown(model)} has no model_index.json: not a diffusers pipeline directory")
        return "local"
    if os.path.lexists(model):
        raise RecordError(f"{shown(model)} is a file, not a model directory (a diffusers pipeline directory "
                          "holds model_index.json)")
    if not is_hub_id(model):
        raise RecordError(f"no model directory at {shown(model)}, and it is not a hub id like {KNOWN_MODELS[0]}")
    return "hub"


def hub_offline() -> bool:
    """HF_HUB_OFFLINE as the environment says it now (huggingface_hub reads it once, at import)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in _TRUE:
        return True
    try:
        from huggingface_hub import constants  # on use: keeps --help light
    except ImportError:  # pragma: no cover
        return False
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def in_hub_cache(model: str) -> bool:
    """Whether the local Hugging Face cache holds this repository's ``model_index.json``."""
    try:
        from huggingface_hub import try_to_load_from_cache  # on use: keeps --help light

        return isinstance(try_to_load_from_cache(model, "model_index.json"), str)
    except Exception:  # noqa: BLE001 - an unreadable cache is a cache that does not hold it
        return False


def _reason(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:300] if lines else type(exc).__name__


def _hub_errors():
    try:
        from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError
    except ImportError:  # pragma: no cover - huggingface_hub < 0.23
        from huggingface_hub.utils import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError
    return GatedRepoError, HfHubHTTPError, RepositoryNotFoundError


def check_on_hub(model: str) -> None:
    """One metadata request, no retries: is ``model`` a repository on the hub that we can reach?"""
    from huggingface_hub import HfApi  # on use: keeps --help light

    gated_error, http_error, not_found_error = _hub_errors()
    try:
        HfApi().model_info(model, timeout=HUB_TIMEOUT_S)
    except gated_error:
        return  # it exists; the download says whether this account may read it
    except not_found_error:
        raise RecordError(f"no model {model} on the Hugging Face hub (nor a local directory of that name); "
                          "check the id, or log in (hf auth login) if it is private") from None
    except http_error as exc:
        raise RecordError(f"the Hugging Face hub answered for {model}: {_reason(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - connection errors are requests', httpx' or OSError by version
        raise RecordError(f"cannot reach the Hugging Face hub to download {model} (and it is not in the local "
                          f"cache): {_reason(exc)}") from None


def locate_model(model: str) -> bool:
    """Check ``model`` before loading; return whether to load it with ``local_files_only``.

    A local directory: it must hold ``model_index.json``. A hub id in the local cache: loaded
    from the cache, without the network. Otherwise, unless HF_HUB_OFFLINE is set, one
    metadata request (timeout 10 s, no retries) says whether the hub has it.
    """
    if check_model_name(model) == "local":
        return False
    if in_hub_cache(model):
        return True
    if hub_offline():
        raise RecordError(f"{model} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; "
                          "download it first (hf download) or unset HF_HUB_OFFLINE")
    check_on_hub(model)
    return False


def _dtype_keyword(dtype) -> dict:
    """``from_pretrained``'s dtype keyword: ``dtype`` since diffusers 0.40, ``torch_dtype`` before.

    Older releases ignore ``dtype`` (with a warning) and newer ones deprecate ``torch_dtype``.
    """
    import diffusers  # on use: keeps --help light
    from packaging.version import Version  # on use: keeps --help light

    return {"dtype" if Version(diffusers.__version__) >= Version("0.40") else "torch_dtype": dtype}


def load_pipeline(model: str, dtype: str = "bfloat16", device: str = "cuda"):
    """Load ``WanPipeline.from_pretrained(model)`` in ``dtype`` and move it to ``device``.

    ``model`` is a hub id (``Wan-AI/Wan2.1-T2V-1.3B-Diffusers``) or a local directory
    (one saved by ``wan-record tiny-model``, say). The VAE is kept in float32, as the
    Wan model cards recommend; the text encoder and transformer use ``dtype``.
    """
    if dtype not in DTYPES:
        raise RecordError(f"dtype {shown(dtype)} is not one of {', '.join(DTYPES)}")
    device = check_device(device)
    local_files_only = locate_model(model)
    log.info("loading %s in %s onto %s (%s)", model, dtype, device,
             "local files" if local_files_only else "from the hub")
    started = time.perf_counter()

    import torch  # on use: keeps --help light
    from diffusers import AutoencoderKLWan, WanPipeline  # on use: keeps --help light

    try:
        pipe = _from_pretrained(AutoencoderKLWan, WanPipeline, model, getattr(torch, dtype), local_files_only)
    except Exception as exc:  # hub, network and format errors all end here; one line
        if local_files_only and not hub_offline():
            # The cache holds part of the model (an interrupted download, say): fetch the rest.
            check_on_hub(model)
            try:
                pipe = _from_pretrained(AutoencoderKLWan, WanPipeline, model, getattr(torch, dtype), False)
            except Exception as again:
                raise _load_error(model, again) from again
        else:
            raise _load_error(model, exc) from exc
    pipe = pipe.to(device)
    log.info("loaded %s (%s, transformer %s) in %.1f s", model, type(pipe).__name__,
             type(pipe.transformer).__name__, time.perf_counter() - started)
    return pipe


def _from_pretrained(vae_class, pipeline_class, model: str, dtype, local_files_only: bool):
    import torch  # on use: keeps --help light

    vae = vae_class.from_pretrained(model, subfolder="vae", local_files_only=local_files_only,
                                    **_dtype_keyword(torch.float32))
    return pipeline_class.from_pretrained(model, vae=vae, local_files_only=local_files_only, **_dtype_keyword(dtype))


def _load_error(model: str, exc: BaseException) -> RecordError:
    gated_error, _, _ = _hub_errors()
    if isinstance(exc, gated_error):
        return RecordError(f"{model} is gated on the Hugging Face hub: accept its terms on the model page and log "
                           "in (hf auth login)")
    return RecordError(f"could not load {shown(model)}: {_reason(exc)}")
