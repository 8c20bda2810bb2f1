"""Checks of every recorder input, made before a model is loaded or a store is created.

Each check raises :class:`recorder.errors.RecordError` with one line that names the
input (the Python field and, in brackets, the ``wan-record`` option) and what it may be.
The checks are cheap, change nothing, and may run any number of times: the command
line runs them first, the Python API before loading, and :func:`recorder.record.record`
again on entry.

Nothing here imports torch at module level; :func:`check_device` imports it only to
ask whether the device exists.
"""

from __future__ import annotations

import math
import numbers
import os
import re

from recorder.errors import RecordError

MAX_FRAMES = 10001  # 4 * 2500 + 1: far beyond any Wan checkpoint (81 or 121), still a valid 4k+1 count
MAX_SIZE = 8192  # pixels, height and width
MAX_STEPS = 10000
MAX_SEQUENCE_LENGTH = 512  # the UMT5 text length every Wan checkpoint was trained with
MAX_SEED = 2**64 - 1  # torch.Generator.manual_seed takes 0..2**64-1 (and wraps negatives; we refuse them)
MAX_QUERY_CHUNK_MB = 2**20  # 1 TiB of logits: larger than any device
MAX_QUERY_CHUNK_BYTES = MAX_QUERY_CHUNK_MB * 2**20
MAX_INDEX = 2**20  # a head or block index beyond this is a typo; the model's own count is checked after loading

DEVICES = "auto, cpu, cuda, cuda:N or mps"
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(?::(0|[1-9][0-9]*))?)$")

# Where a store must never go: kernel file systems that look writable to root.
_NOT_FOR_STORES = ("/proc", "/sys", "/dev")
_STORES_ALLOWED_UNDER = ("/dev/shm",)  # tmpfs, a real place for a scratch store

# The Python field of each request input and its wan-record option.
OPTION = {
    "prompt": "--prompt",
    "negative_prompt": "--negative-prompt",
    "seed": "--seed",
    "height": "--height",
    "width": "--width",
    "num_frames": "--frames",
    "num_inference_steps": "--steps",
    "guidance_scale": "--guidance",
    "guidance_scale_2": "--guidance-2",
    "max_sequence_length": "--max-sequence-length",
    "heads": "--heads",
    "layers": "--layers",
    "layer_mean": "--layer-mean",
    "branches": "--branch",
    "step_stride": "--step-stride",
    "query_chunk_bytes": "--query-chunk-mb",
    "mantissa_bits": "--mantissa-bits",
}


def shown(value) -> str:
    """A value as it can appear inside a one-line message: printable text without spaces as it is, else repr()."""
    if isinstance(value, str) and value and value.isprintable() and not any(c.isspace() for c in value):
        return value
    return _repr(value)


def _repr(value) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _int_in(name: str, value, low: int, high: int) -> None:
    if not _is_int(value):
        raise RecordError(f"{name} must be an integer ({OPTION[name]}), got {_repr(value)}")
    if not low <= value <= high:
        raise RecordError(f"{name} must be at least {low} and at most {high} ({OPTION[name]}), got {value}")


def _finite(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise RecordError(f"{name} must be a number ({OPTION[name]}), got {_repr(value)}")
    if not math.isfinite(value):
        raise RecordError(f"{name} must be a finite number ({OPTION[name]}), got {value}")


def check_generation_request(request) -> None:
    """Refuse a generation request (``recorder.record.GenerationRequest`` or any object with its
    fields) whose values no Wan pipeline can take. Model-dependent checks (size multiples,
    ``guidance_scale_2`` on a one-expert model) are :func:`recorder.record.check_request`'s and
    :func:`check_request_for_pipeline`'s."""
    for name in ("prompt", "negative_prompt"):
        value = getattr(request, name)
        if not isinstance(value, str):
            raise RecordError(f"{name} must be a string ({OPTION[name]}), got {type(value).__name__}")
    if not _is_int(request.seed) or not 0 <= request.seed <= MAX_SEED:
        raise RecordError(f"seed must be an integer from 0 to 2**64-1 = {MAX_SEED} (--seed), "
                          f"got {_repr(request.seed)}")
    for name in ("height", "width"):
        _int_in(name, getattr(request, name), 1, MAX_SIZE)
    _int_in("num_frames", request.num_frames, 1, MAX_FRAMES)
    _int_in("num_inference_steps", request.num_inference_steps, 1, MAX_STEPS)
    _finite("guidance_scale", request.guidance_scale)
    if request.guidance_scale_2 is not None:
        _finite("guidance_scale_2", request.guidance_scale_2)
    _int_in("max_sequence_length", request.max_sequence_length, 1, MAX_SEQUENCE_LENGTH)


def _index_list(name: str, value) -> None:
    if value is None:
        return
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise RecordError(f"{name} must be None or a tuple of indices ({OPTION[name]}), got {_repr(value)}")
    items = tuple(value)
    if not items:
        raise RecordError(f"{name} is empty ({OPTION[name]}); give at least one index, or None for all")
    for item in items:
        if not _is_int(item):
            raise RecordError(f"{name} must be integers ({OPTION[name]}), got {_repr(item)}")
    negative = [int(i) for i in items if i < 0]
    if negative:
        raise RecordError(f"{name} {negative} are negative ({OPTION[name]}); indices start at 0")
    too_large = [int(i) for i in items if i > MAX_INDEX]
    if too_large:
        raise RecordError(f"{name} {too_large} are not indices of any model ({OPTION[name]})")
    duplicates = sorted({int(i) for i in items if items.count(i) > 1})
    if duplicates:
        raise RecordError(f"{name} {duplicates} are listed more than once ({OPTION[name]}); list each once")


def check_capture_config(config) -> None:
    """Refuse a ``recorder.capture.CaptureConfig`` (or an object with its fields) that cannot be
    recorded. Whether the heads and layers exist is known only from the model; the capture
    checks that before the store is created."""
    _index_list("heads", config.heads)
    _index_list("layers", config.layers)
    if not isinstance(config.layer_mean, bool):
        raise RecordError(f"layer_mean must be True or False (--layer-mean), got {_repr(config.layer_mean)}")
    if isinstance(config.branches, (str, bytes)) or not all(isinstance(b, str) for b in config.branches):
        raise RecordError(f"branches must be a tuple: ('cond',) or ('cond', 'uncond') (--branch), "
                          f"got {_repr(config.branches)}")
    if not _is_int(config.step_stride):
        raise RecordError(f"step stride must be an integer (--step-stride), got {_repr(config.step_stride)}")
    _int_in("query_chunk_bytes", config.query_chunk_bytes, 1, MAX_QUERY_CHUNK_BYTES)
    # CaptureConfig's own checks (branches, step stride >= 1), one line each.
    post_init = getattr(type(config), "__post_init__", None)
    if post_init is not None:
        try:
            post_init(config)
        except (ValueError, TypeError) as exc:
            raise RecordError(str(exc)) from None
    elif config.step_stride < 1:  # an object that is not a CaptureConfig: the same rules, by hand
        raise RecordError(f"step stride must be at least 1 (--step-stride), got {config.step_stride}")


def check_storage(mantissa_bits):
    """The storage options for ``--mantissa-bits``; a RecordError outside 0..10."""
    from shared.store import StorageOptions  # zarr: only once a command runs, so --help stays instant

    try:
        return StorageOptions(mantissa_bits=mantissa_bits)
    except ValueError as exc:
        raise RecordError(str(exc)) from None


def check_query_chunk_mb(value) -> int:
    """``--query-chunk-mb`` in bytes, refused outside 1..MAX_QUERY_CHUNK_MB."""
    if not _is_int(value) or not 1 <= value <= MAX_QUERY_CHUNK_MB:
        raise RecordError(f"--query-chunk-mb must be at least 1 and at most {MAX_QUERY_CHUNK_MB} (MiB), got {value}")
    return value * 2**20


def check_branches(request, config) -> None:
    """The unconditional pass runs only with classifier-free guidance (guidance_scale > 1)."""
    if "uncond" in config.branches and not request.guidance_scale > 1:
        raise RecordError(f"the uncond branch needs guidance_scale > 1 (no unconditional pass runs otherwise); "
                          f"--branch both was given with --guidance {request.guidance_scale}")


def check_request_for_pipeline(pipe, request, model: str | None = None) -> None:
    """The checks that need the loaded pipeline but not the store: run them right after loading."""
    if request.guidance_scale_2 is None:
        return
    config = getattr(pipe, "config", None)
    boundary = config.get("boundary_ratio") if hasattr(config, "get") else getattr(config, "boundary_ratio", None)
    if getattr(pipe, "transformer_2", None) is None or boundary is None:
        name = f"{shown(model)} " if model else "this model "
        raise RecordError(f"guidance_scale_2 (--guidance-2) is only for a two-expert model (Wan 2.2 A14B); "
                          f"{name}has one transformer: leave it out and use --guidance")


def check_device(device) -> str:
    """The device to run on, with ``auto`` resolved; refuses one torch cannot use here."""
    match = _DEVICE.match(device) if isinstance(device, str) else None
    if match is None:
        raise RecordError(f"--device {shown(device)} is not a device; use {DEVICES}")
    import torch  # on use: keeps --help light

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RecordError(f"--device {device} was asked for, but torch sees no CUDA GPU here; use --device cpu")
        count = torch.cuda.device_count()
        if match.group(2) is not None and int(match.group(2)) >= count:
            raise RecordError(f"--device {device}: torch sees {count} CUDA GPU{'s' if count != 1 else ''} "
                              f"(cuda:0..cuda:{count - 1})")
    if device == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise RecordError(f"--device {device} was asked for, but MPS is not available here")
    return device


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def check_output_location(path) -> None:
    """Refuse an output a store cannot be created at: empty, a zip, under /proc, /sys or /dev,
    under a file, in a directory that cannot be written, or with a name too long.

    Whether the output already exists (and may be replaced) is
    :func:`shared.store.check_output`'s question.
    """
    try:
        text = os.fsdecode(os.fspath(path))
    except TypeError:
        raise RecordError(f"the output must be a path, got {type(path).__name__}") from None
    if not text.strip():
        raise RecordError("the output path is empty; name a new directory for the store")
    if "\0" in text:
        raise RecordError(f"the output path {shown(text)} contains a NUL character")
    if text.rstrip("/").lower().endswith(".zip"):
        stem = text.rstrip("/")[:-4]
        raise RecordError(f"{shown(text)}: a store is recorded into a directory (or s3://...), never a zip, which "
                          f"cannot rewrite its keys; record to {shown(stem)}.zarr, then "
                          f"`wan-analyze pack {shown(stem)}.zarr {shown(text.rstrip('/'))}`")
    if "://" in text:
        return  # object storage: shared.store.check_output asks the server, with the storage options
    real = os.path.realpath(text)
    for top in _NOT_FOR_STORES:
        if _under(real, top) and not any(_under(real, ok) for ok in _STORES_ALLOWED_UNDER):
            raise RecordError(f"{shown(text)} is under {top}, a kernel file system: not a place for a store; "
                              "choose a directory on a disk")
    ancestor = real
    while not os.path.lexists(ancestor):
        parent = os.path.dirname(ancestor)
        if parent == ancestor:
            break
        ancestor = parent
    if ancestor != real:
        if not os.path.isdir(ancestor):
            raise RecordError(f"cannot create the store {shown(text)}: {shown(ancestor)} is a file, not a directory")
        if not os.access(ancestor, os.W_OK | os.X_OK):
            raise RecordError(f"cannot create the store {shown(text)}: the directory {shown(ancestor)} "
                              "is not writable")
        try:
            name_max = os.pathconf(ancestor, "PC_NAME_MAX")
        except (OSError, ValueError):
            name_max = 255
        long_names = [part for part in os.path.relpath(real, ancestor).split(os.sep)
                      if len(os.fsencode(part)) > name_max]
        if long_names:
            raise RecordError(f"cannot create the store {shown(text)}: a name in it is longer than "
                              f"{name_max} bytes")
    elif os.path.isdir(real) and not os.access(real, os.W_OK | os.X_OK):
        raise RecordError(f"cannot write the store {shown(text)}: the directory is not writable")
