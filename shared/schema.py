"""The layout of a wan-attention store: the one place that knows it.

A store is a Zarr v3 group, one directory (or zip, or URL) per recording. The
recorder creates it through :func:`shared.store.create_store` and fills it; the
analyzer opens it through :func:`shared.store.open_store`. Neither side spells an
array path, a dimension name or an attribute key anywhere else: they import the
constants below.

Versioning follows "major.minor": a reader refuses a newer major version (the
layout changed in a way it cannot read) and accepts any minor version (only
additions).

1.1 added: a crc32c checksum after compression on every array (a flipped bit is an
error on read, not a wrong picture), the ``video_written`` array (which frames of the
video exist), the status "interrupted" with ``interrupted_by``, and the ``owner`` of a
recording. Stores of 1.0 still open: they have no checksums, and their video counts as
written exactly when their status is "complete".

1.2 added: consolidated metadata in the root ``zarr.json`` once a store's status is final
(a remote reader gets every group's and array's metadata in one request), and the
attribute ``subset_of`` on a store that ``wan-analyze subset`` cut from another (such a
store may leave the video out: then no frame is written although its status is final).

1.3 added: coordinate arrays in each branch group, so that xarray (``xr.open_zarr(store,
group="cond")``) labels every axis with nothing else to read. Arrays named after a dimension
are its index: ``step`` (the pipeline step index), ``layer`` (the transformer block, or -1 for
the mean over layers), ``frame`` (latent frame), ``y``, ``x`` and ``token`` (the token's text
without the tokenizer's word marker; two equal texts give a non-unique index, and
``.sel(token="a")`` then returns both). Along them: ``timestep``, ``sigma``, ``expert``
(written with each step), ``frame_first_pixel``/``frame_last_pixel`` (the pixel frames a
latent frame covers), and ``word`` (the text of the word a token belongs to), ``word_index``
and ``token_index`` (the token's position, the unique label). Each data array's attribute
``coordinates`` names the non-index coordinates along its axes, as CF readers expect. The
text coordinates are zarr v3 variable-length UTF-8 strings (data type ``string``): zarr-python
and xarray read them; tensorstore (and an HDF5 export) cannot, and read every numeric array.
The root ``steps/*`` arrays stay as they are; stores of 1.0-1.2 have no coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCHEMA_NAME = "wan-attention-store"
SCHEMA_VERSION = "1.3"
SCHEMA_MAJOR = int(SCHEMA_VERSION.split(".")[0])

# Recording status, in the root attribute STATUS.
STATUS_RECORDING = "recording"
STATUS_COMPLETE = "complete"
STATUS_FAILED = "failed"
STATUS_INTERRUPTED = "interrupted"  # stopped by a signal (SIGTERM, SIGINT, SIGHUP); what was flushed is kept
FINAL_STATUSES = (STATUS_COMPLETE, STATUS_FAILED, STATUS_INTERRUPTED)

# Branches of classifier-free guidance. "cond" sees the prompt, "uncond" the negative prompt.
BRANCH_COND = "cond"
BRANCH_UNCOND = "uncond"
BRANCHES = (BRANCH_COND, BRANCH_UNCOND)

# Dimension names, as xarray and other Zarr readers see them.
DIM_STEP = "step"
DIM_LAYER = "layer"
DIM_HEAD = "head"
DIM_FRAME = "frame"
DIM_Y = "y"
DIM_X = "x"
DIM_TOKEN = "token"
DIM_VIDEO_FRAME = "video_frame"
DIM_HEIGHT = "height"
DIM_WIDTH = "width"
DIM_RGB = "rgb"


@dataclass(frozen=True)
class ArraySpec:
    """One array of the store: where it lives, its type, axes and fill value."""

    path: str
    dtype: str
    dims: tuple[str, ...]
    fill_value: float | int | bool
    description: str


# --- per-step bookkeeping -------------------------------------------------------------
STEP_INDEX = ArraySpec("steps/index", "int32", (DIM_STEP,), -1,
                       "index of the denoising step in the pipeline's loop (0-based)")
STEP_TIMESTEP = ArraySpec("steps/timestep", "float32", (DIM_STEP,), float("nan"),
                          "scheduler timestep t of the step")
STEP_SIGMA = ArraySpec("steps/sigma", "float32", (DIM_STEP,), float("nan"),
                       "scheduler sigma of the step")
STEP_EXPERT = ArraySpec("steps/expert", "int8", (DIM_STEP,), -1,
                        "which transformer ran: 0 = transformer (high noise), 1 = transformer_2 (low noise)")
STEP_COMPLETE = ArraySpec("steps/complete", "bool", (DIM_STEP,), False,
                          "true once every array of the step has been written")
STEP_ARRAYS = (STEP_INDEX, STEP_TIMESTEP, STEP_SIGMA, STEP_EXPERT, STEP_COMPLETE)

LAYER_BLOCK = ArraySpec("layers/block", "int32", (DIM_LAYER,), -2,
                        "transformer block of each layer entry; -1 when the entry is the mean over layers")

VIDEO = ArraySpec("video", "uint8", (DIM_VIDEO_FRAME, DIM_HEIGHT, DIM_WIDTH, DIM_RGB), 0,
                  "decoded frames, RGB")
# Since 1.1. A frame never written reads back as the fill value (black); this says which frames exist.
VIDEO_WRITTEN = ArraySpec("video_written", "bool", (DIM_VIDEO_FRAME,), False,
                          "true once the frame's chunk of video has been written")
VIDEO_WRITTEN_SINCE = (1, 1)


# --- per-branch arrays (under "cond/" or "uncond/") -----------------------------------
def attention(branch: str) -> ArraySpec:
    return ArraySpec(f"{branch}/attention", "float16",
                     (DIM_STEP, DIM_LAYER, DIM_FRAME, DIM_Y, DIM_X, DIM_TOKEN), float("nan"),
                     "softmax probability of each video query (frame, y, x) for each real text token, "
                     "reduced over the recorded heads")


def padding_mass(branch: str) -> ArraySpec:
    return ArraySpec(f"{branch}/padding_mass", "float16",
                     (DIM_STEP, DIM_LAYER, DIM_FRAME, DIM_Y, DIM_X), float("nan"),
                     "probability that went to the pad keys; attention summed over tokens plus this is 1")


def head_entropy(branch: str) -> ArraySpec:
    return ArraySpec(f"{branch}/head_entropy", "float32", (DIM_STEP, DIM_LAYER, DIM_HEAD), float("nan"),
                     "per head: mean over queries of the entropy (nats) of the distribution over all keys")


def head_token_mass(branch: str) -> ArraySpec:
    return ArraySpec(f"{branch}/head_token_mass", "float32",
                     (DIM_STEP, DIM_LAYER, DIM_HEAD, DIM_TOKEN), float("nan"),
                     "per head: mean over queries of the probability of each real token")


def head_padding_mass(branch: str) -> ArraySpec:
    return ArraySpec(f"{branch}/head_padding_mass", "float32", (DIM_STEP, DIM_LAYER, DIM_HEAD), float("nan"),
                     "per head: mean over queries of the probability that went to the pad keys")


def token_ids(branch: str) -> ArraySpec:
    return ArraySpec(f"{branch}/token_ids", "int32", (DIM_TOKEN,), -1,
                     "tokenizer ids of the real tokens, the closing </s> included")


def branch_arrays(branch: str) -> tuple[ArraySpec, ...]:
    return (attention(branch), padding_mass(branch), head_entropy(branch), head_token_mass(branch),
            head_padding_mass(branch), token_ids(branch))


# --- coordinates of a branch group (since 1.3): what xarray labels the axes with ---------
COORDINATES_SINCE = (1, 3)
# zarr v3 variable-length UTF-8 ("string"): zarr-python and xarray read it; tensorstore does not.
TEXT = "string"
# The name an xarray reader sees on each data array: the coordinates along its axes that are no index.
COORDINATES_ATTRIBUTE = "coordinates"


def _coordinate(branch: str, name: str, dtype: str, dim: str, fill, description: str) -> ArraySpec:
    return ArraySpec(f"{branch}/{name}", dtype, (dim,), fill, description)


def step_coordinate(branch: str) -> ArraySpec:
    return _coordinate(branch, DIM_STEP, "int32", DIM_STEP, -1,
                       "index of the step in the pipeline's loop: the step axis's label (planned at creation)")


def timestep_coordinate(branch: str) -> ArraySpec:
    return _coordinate(branch, "timestep", "float32", DIM_STEP, float("nan"),
                       "scheduler timestep t of the step (written with the step)")


def sigma_coordinate(branch: str) -> ArraySpec:
    return _coordinate(branch, "sigma", "float32", DIM_STEP, float("nan"),
                       "scheduler sigma of the step (written with the step)")


def expert_coordinate(branch: str) -> ArraySpec:
    return _coordinate(branch, "expert", "int8", DIM_STEP, -1,
                       "which transformer ran the step: 0 high noise, 1 low noise (written with the step)")


def layer_coordinate(branch: str) -> ArraySpec:
    return _coordinate(branch, DIM_LAYER, "int32", DIM_LAYER, -2,
                       "transformer block of the layer entry; -1 for the mean over layers")


def frame_coordinate(branch: str) -> ArraySpec:
    return _coordinate(branch, DIM_FRAME, "int32", DIM_FRAME, -1, "latent frame")


def frame_first_pixel(branch: str) -> ArraySpec:
    return _coordinate(branch, "frame_first_pixel", "int32", DIM_FRAME, -1,
                       "first pixel frame of the video the latent frame covers")


def frame_last_pixel(branch: str) -> ArraySpec:
    return _coordinate(branch, "frame_last_pixel", "int32", DIM_FRAME, -1,
                       "last pixel frame of the video the latent frame covers (inclusive)")


def y_coordinate(branch: str) -> ArraySpec:
    return _coordinate(branch, DIM_Y, "int32", DIM_Y, -1, "row of the latent token grid")


def x_coordinate(branch: str) -> ArraySpec:
    return _coordinate(branch, DIM_X, "int32", DIM_X, -1, "column of the latent token grid")


def token_coordinate(branch: str) -> ArraySpec:
    return _coordinate(branch, DIM_TOKEN, TEXT, DIM_TOKEN, "",
                       "the token's text without the tokenizer's word marker (not unique: 'a' may come twice)")


def word_coordinate(branch: str) -> ArraySpec:
    return _coordinate(branch, "word", TEXT, DIM_TOKEN, "", "text of the word the token belongs to")


def word_index_coordinate(branch: str) -> ArraySpec:
    return _coordinate(branch, "word_index", "int32", DIM_TOKEN, -1,
                       "index of the word the token belongs to (into the group's words attribute)")


def token_index_coordinate(branch: str) -> ArraySpec:
    return _coordinate(branch, "token_index", "int32", DIM_TOKEN, -1, "position of the token: its unique label")


def step_coordinates(branch: str) -> tuple[ArraySpec, ...]:
    """Along the step axis, written with each step (besides ``step``, planned at creation)."""
    return (timestep_coordinate(branch), sigma_coordinate(branch), expert_coordinate(branch))


def coordinate_arrays(branch: str) -> tuple[ArraySpec, ...]:
    """Every coordinate array of a branch group, index coordinates (named after their dimension) first."""
    return (step_coordinate(branch), layer_coordinate(branch), frame_coordinate(branch), y_coordinate(branch),
            x_coordinate(branch), token_coordinate(branch), *step_coordinates(branch), frame_first_pixel(branch),
            frame_last_pixel(branch), word_coordinate(branch), word_index_coordinate(branch),
            token_index_coordinate(branch))


def auxiliary_coordinates(branch: str, dims: tuple[str, ...]) -> list[str]:
    """The names of the non-index coordinates along ``dims``: a data array's ``coordinates`` attribute."""
    return [spec.path.split("/")[-1] for spec in coordinate_arrays(branch)
            if spec.path.split("/")[-1] != spec.dims[0] and spec.dims[0] in dims]


def token_text(token: str) -> str:
    """A token's text as the ``token`` coordinate holds it: without the tokenizer's word marker."""
    return str(token).replace("\u2581", "")


# --- attributes -------------------------------------------------------------------------
class Attr:
    """Root attribute keys. Values are JSON."""

    SCHEMA = "schema"
    SCHEMA_VERSION = "schema_version"
    STATUS = "status"
    ERROR = "error"  # one line, set when status is "failed" or "interrupted"
    INTERRUPTED_BY = "interrupted_by"  # the signal's name (SIGTERM, SIGINT, SIGHUP), with status "interrupted"
    OWNER = "owner"  # {"host", "pid"} of the recorder process that wrote the store
    PROMPT = "prompt"
    NEGATIVE_PROMPT = "negative_prompt"
    SEED = "seed"
    HEIGHT = "height"
    WIDTH = "width"
    NUM_FRAMES = "num_frames"  # frames actually generated
    NUM_FRAMES_REQUESTED = "num_frames_requested"
    NUM_INFERENCE_STEPS = "num_inference_steps"
    GUIDANCE_SCALE = "guidance_scale"
    GUIDANCE_SCALE_2 = "guidance_scale_2"
    SCHEDULER = "scheduler"  # class name
    SCHEDULER_SHIFT = "scheduler_shift"
    SCHEDULER_CONFIG = "scheduler_config"
    MODEL_ID = "model_id"
    MODEL_CLASS = "model_class"
    TRANSFORMER_CONFIG = "transformer_config"  # layers, heads, head_dim, text_dim, patch size
    EXPERT_BOUNDARY = "expert_boundary"  # boundary_ratio * num_train_timesteps, or null
    MAX_SEQUENCE_LENGTH = "max_sequence_length"
    DTYPE = "dtype"
    DEVICE = "device"
    VERSIONS = "versions"  # {"torch": .., "diffusers": .., "transformers": .., "wan_attention": ..}
    RECORD_OPTIONS = "record_options"
    STARTED_AT = "started_at"  # ISO 8601, UTC
    ENDED_AT = "ended_at"
    TIMING = "timing"  # {"generation_s", "capture_s", "write_s", "total_s"}
    LATENT_GRID = "latent_grid"
    COMPRESSION = "compression"  # the codec chain used for attention arrays, for the record
    NOTES = "notes"  # what the recorder adjusted (a rounded frame count, a truncated prompt)
    SUBSET_OF = "subset_of"  # since 1.2, on a store cut from another: {SubsetKey...}


class SubsetKey:
    """Keys of the SUBSET_OF attribute: where a subset came from and what was kept."""

    SOURCE = "source"
    SOURCE_STATUS = "source_status"
    STEPS = "steps"  # pipeline steps kept
    STEPS_LEFT_OUT = "steps_left_out"  # chosen but not complete in the source
    LAYERS = "layers"
    LAYER_MEAN = "layer_mean"
    BRANCHES = "branches"
    MANTISSA_BITS = "mantissa_bits"
    VIDEO = "video"  # false: the video was left out
    MADE_AT = "made_at"


def video_left_out(attrs: dict) -> bool:
    """Whether the store is a subset made without its video (so unwritten frames are no damage)."""
    subset = attrs.get(Attr.SUBSET_OF)
    return isinstance(subset, dict) and subset.get(SubsetKey.VIDEO) is False


class BranchAttr:
    """Attribute keys of a branch group ("cond" or "uncond")."""

    PROMPT = "prompt"  # the text the tokenizer saw (after the pipeline's cleaning)
    TOKENS = "tokens"  # token strings, one per real token
    WORDS = "words"  # [{"text", "start", "end", "tokens": [token indices]}]
    NUM_KEYS = "num_keys"  # keys the softmax ran over (max_sequence_length)
    NUM_REAL_TOKENS = "num_real_tokens"
    PAD_KEYS_COLLAPSED = "pad_keys_collapsed"  # whether identical pad keys were merged


class GridKey:
    """Keys of the LATENT_GRID attribute."""

    FRAMES = "frames"  # F'
    HEIGHT = "height"  # H' (tokens, after patching)
    WIDTH = "width"  # W'
    PATCH_SIZE = "patch_size"  # [t, h, w]
    VAE_SCALE_TEMPORAL = "vae_scale_factor_temporal"
    VAE_SCALE_SPATIAL = "vae_scale_factor_spatial"
    PIXEL_FRAMES = "pixel_frames"  # per latent frame f: [first, last] pixel frame, inclusive


class RecordOption:
    """Keys of the RECORD_OPTIONS attribute."""

    HEADS = "heads"  # "mean" or the list of heads averaged
    LAYERS = "layers"  # list of transformer blocks recorded
    LAYER_REDUCTION = "layer_reduction"  # "none" or "mean"
    BRANCHES = "branches"  # ["cond"] or ["cond", "uncond"]
    STEP_STRIDE = "step_stride"  # every k-th step, starting at 0
    PRECISION = "precision"
    MANTISSA_BITS = "mantissa_bits"  # float16 mantissa bits kept: 10 lossless, fewer lossy
    QUERY_CHUNK = "query_chunk"


# Stored maps are float16; the recorder may round them to fewer mantissa bits (a lossy option).
FLOAT16_MANTISSA_BITS = 10


def record_options(layers: list[int], *, heads: list[int] | None = None, layer_mean: bool = False,
                   branches: tuple[str, ...] = (BRANCH_COND,), step_stride: int = 1,
                   mantissa_bits: int = FLOAT16_MANTISSA_BITS, query_chunk: int | None = None) -> dict:
    """The RECORD_OPTIONS attribute: how a store was recorded, in the one spelling every reader expects."""
    return {
        RecordOption.HEADS: "mean" if heads is None else list(heads),
        RecordOption.LAYERS: list(layers),
        RecordOption.LAYER_REDUCTION: "mean" if layer_mean else "none",
        RecordOption.BRANCHES: list(branches),
        RecordOption.STEP_STRIDE: step_stride,
        RecordOption.PRECISION: "float16" if mantissa_bits == FLOAT16_MANTISSA_BITS
        else f"float16 rounded to {mantissa_bits} mantissa bits",
        RecordOption.MANTISSA_BITS: mantissa_bits,
        RecordOption.QUERY_CHUNK: query_chunk,
    }


def recorded_steps(num_inference_steps: int, step_stride: int = 1) -> list[int]:
    """The pipeline steps a store records, in the order of its step axis: 0, k, 2k, ..."""
    return list(range(0, num_inference_steps, step_stride))


REQUIRED_ROOT_ATTRS = (
    Attr.SCHEMA, Attr.SCHEMA_VERSION, Attr.STATUS, Attr.PROMPT, Attr.NEGATIVE_PROMPT, Attr.SEED,
    Attr.HEIGHT, Attr.WIDTH, Attr.NUM_FRAMES, Attr.NUM_INFERENCE_STEPS, Attr.GUIDANCE_SCALE,
    Attr.SCHEDULER, Attr.MODEL_ID, Attr.MODEL_CLASS, Attr.VERSIONS, Attr.RECORD_OPTIONS,
    Attr.STARTED_AT, Attr.LATENT_GRID,
)
REQUIRED_BRANCH_ATTRS = (BranchAttr.PROMPT, BranchAttr.TOKENS, BranchAttr.WORDS, BranchAttr.NUM_KEYS,
                         BranchAttr.NUM_REAL_TOKENS)


# --- chunking ----------------------------------------------------------------------------
# A chunk of the attention array holds one (step, layer): reading one never touches
# another. Within it, frames are split only when one (step, layer) would exceed this,
# so that a reader never has to decompress a huge block to see one frame.
MAX_CHUNK_BYTES = 32 * 2**20


def attention_chunks(shape: tuple[int, ...], dtype: str) -> tuple[int, ...]:
    """Chunk shape for an array whose first two axes are (step, layer) and the rest a map."""
    itemsize = np.dtype(dtype).itemsize
    frames, rest = shape[2], shape[3:]
    frame_bytes = itemsize * int(np.prod(rest, dtype=np.int64))
    frames_per_chunk = max(1, min(frames, MAX_CHUNK_BYTES // max(frame_bytes, 1)))
    return (1, 1, frames_per_chunk, *rest)


def version_tuple(version: str) -> tuple[int, int]:
    """(major, minor) of a schema_version string such as "1.1"; ValueError when it is not one."""
    major, _, minor = str(version).partition(".")
    return int(major), int(minor or 0)


def video_chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    """One decoded frame per chunk: a viewer pulls only the frames it shows."""
    return (1, *shape[1:])
