"""Synthetic wan-attention stores with known contents, written through ``shared.store``.

The attention follows an "owner" pattern: at step s, every query location (f, y, x) has
one owner token, which receives ``own`` of the probability; the other real tokens share
what is left after ``pad`` goes to the pad keys. So the winning token of each location,
the token ranking and every entropy follow from the owner map in closed form.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from shared import schema
from shared.schema import Attr, BranchAttr, GridKey
from shared.store import BranchLayout, StoreLayout, create_store
from shared.words import group_token_strings

WORD_START = "\u2581"


@dataclass
class Synthetic:
    """What to write. ``owners`` is (steps, F', H', W') of token indices."""

    owners: np.ndarray
    tokens: list[str] = field(default_factory=lambda: ["\u2581a", "\u2581red", "\u2581cat", "s", ".", "</s>"])
    layer_blocks: tuple[int, ...] = (0, 3)
    own: tuple[float, ...] = (0.6, 0.8)  # owner probability, per layer entry
    pad: float = 0.1
    num_heads: int = 2
    complete: list[bool] | None = None  # per step; None = all complete
    status: str = schema.STATUS_COMPLETE
    branches: tuple[str, ...] = (schema.BRANCH_COND,)
    prompt: str = "a red cats."
    video_value: int = 128
    video_frames: list[int] | None = None  # frames of the video written (with video_value); None = all
    attributes: dict = field(default_factory=dict)  # overrides of root attributes

    @property
    def grid(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.owners.shape[1:])

    @property
    def num_steps(self) -> int:
        return int(self.owners.shape[0])


def owner_blocks(num_steps: int, grid: tuple[int, int, int], frame_owner: list[int]) -> np.ndarray:
    """Owners where latent frame f belongs to token ``frame_owner[f]`` at every step."""
    f, h, w = grid
    owners = np.empty((num_steps, f, h, w), dtype=np.int64)
    owners[:] = np.asarray(frame_owner)[None, :, None, None]
    return owners


def attention_of(spec: Synthetic) -> tuple[np.ndarray, np.ndarray]:
    """The attention (steps, layers, F, H, W, T) and padding (steps, layers, F, H, W), float16 as stored."""
    n_tokens = len(spec.tokens)
    s, (f, h, w), n_layers = spec.num_steps, spec.grid, len(spec.layer_blocks)
    att = np.empty((s, n_layers, f, h, w, n_tokens), dtype=np.float32)
    for layer, own in enumerate(spec.own):
        rest = (1.0 - spec.pad - own) / (n_tokens - 1)
        att[:, layer] = rest
        onehot = np.eye(n_tokens, dtype=bool)[spec.owners]  # (s, f, h, w, T)
        att[:, layer][onehot] = own
    pad = np.full((s, n_layers, f, h, w), spec.pad, dtype=np.float32)
    return att.astype(np.float16), pad.astype(np.float16)


def head_entropy_of(spec: Synthetic) -> np.ndarray:
    """Known per-head entropies: head h of layer entry l has 1 + l + 0.25 h (so layer 0 head 0 is most focused)."""
    s, n_layers, heads = spec.num_steps, len(spec.layer_blocks), spec.num_heads
    values = 1.0 + np.arange(n_layers)[:, None] + 0.25 * np.arange(heads)[None, :]
    return np.broadcast_to(values, (s, n_layers, heads)).astype(np.float32)


def video_shape(spec: Synthetic) -> tuple[int, int, int, int]:
    f, h, w = spec.grid
    return (4 * (f - 1) + 1, 16 * h, 16 * w, 3)


def write_store(path, spec: Synthetic) -> dict:
    """Write ``spec`` to a new store at ``path``; return the arrays written, for the test's own sums."""
    f, h, w = spec.grid
    n_frames, height, width, _ = video_shape(spec)
    n_tokens = len(spec.tokens)
    attrs = {
        Attr.PROMPT: spec.prompt,
        Attr.NEGATIVE_PROMPT: "blurry",
        Attr.SEED: 42,
        Attr.HEIGHT: height,
        Attr.WIDTH: width,
        Attr.NUM_FRAMES: n_frames,
        Attr.NUM_FRAMES_REQUESTED: n_frames,
        Attr.NUM_INFERENCE_STEPS: spec.num_steps,
        Attr.GUIDANCE_SCALE: 5.0,
        Attr.SCHEDULER: "UniPCMultistepScheduler",
        Attr.MODEL_ID: "synthetic/wan-test",
        Attr.MODEL_CLASS: "WanPipeline",
        Attr.VERSIONS: {"wan_attention": "0.1.0", "diffusers": "0.0-synthetic"},
        # a store of the layer mean (blocks (-1,)) says which blocks it averaged: here 0 and 1
        Attr.RECORD_OPTIONS: schema.record_options([b for b in spec.layer_blocks if b >= 0] or [0, 1],
                                                   layer_mean=spec.layer_blocks == (-1,), branches=spec.branches),
        Attr.STARTED_AT: "2025-01-01T00:00:00Z",
        Attr.LATENT_GRID: {
            GridKey.FRAMES: f, GridKey.HEIGHT: h, GridKey.WIDTH: w, GridKey.PATCH_SIZE: [1, 2, 2],
            GridKey.VAE_SCALE_TEMPORAL: 4, GridKey.VAE_SCALE_SPATIAL: 8,
            GridKey.PIXEL_FRAMES: [[0, 0]] + [[4 * k - 3, 4 * k] for k in range(1, f)],
        },
        **spec.attributes,
    }
    words = group_token_strings(spec.tokens)
    # the branch attributes at creation, as the recorder gives them: they label the token axis (schema 1.3)
    branch_attrs = {BranchAttr.PROMPT: spec.prompt, BranchAttr.TOKENS: spec.tokens, BranchAttr.WORDS: words,
                    BranchAttr.NUM_KEYS: 512, BranchAttr.NUM_REAL_TOKENS: n_tokens}
    layout = StoreLayout(
        num_steps=spec.num_steps, layer_blocks=spec.layer_blocks, grid=spec.grid, num_heads=spec.num_heads,
        branches=tuple(BranchLayout(b, n_tokens, dict(branch_attrs), tuple(range(100, 100 + n_tokens)))
                       for b in spec.branches),
        video_shape=(n_frames, height, width, 3), attributes=attrs)
    root = create_store(path, layout)
    att, pad = attention_of(spec)
    entropy = head_entropy_of(spec)
    complete = spec.complete if spec.complete is not None else [True] * spec.num_steps
    for s, done in enumerate(complete):
        if not done:
            continue
        root[schema.STEP_INDEX.path][s] = s
        root[schema.STEP_TIMESTEP.path][s] = 1000.0 - 1000.0 * s / spec.num_steps
        root[schema.STEP_SIGMA.path][s] = 1.0 - s / spec.num_steps
        root[schema.STEP_EXPERT.path][s] = 0 if s < spec.num_steps / 2 else 1
        for branch in spec.branches:
            if schema.timestep_coordinate(branch).path in root:  # schema 1.3: the coordinates along step
                for coord, root_spec in zip(schema.step_coordinates(branch),
                                            (schema.STEP_TIMESTEP, schema.STEP_SIGMA, schema.STEP_EXPERT)):
                    root[coord.path][s] = root[root_spec.path][s]
            root[schema.attention(branch).path][s] = att[s]
            root[schema.padding_mass(branch).path][s] = pad[s]
            root[schema.head_entropy(branch).path][s] = entropy[s]
            root[schema.head_padding_mass(branch).path][s] = spec.pad
            root[schema.head_token_mass(branch).path][s] = att[s].astype(np.float32).mean(axis=(1, 2, 3))[:, None, :]
        root[schema.STEP_COMPLETE.path][s] = True
    if spec.video_value:
        frames = range(n_frames) if spec.video_frames is None else spec.video_frames
        for frame in frames:
            root[schema.VIDEO.path][frame] = np.full((height, width, 3), spec.video_value, dtype=np.uint8)
        # video_written (schema 1.1) says which frames exist; absent from a store created before it
        if schema.VIDEO_WRITTEN.path in root:
            written = np.zeros(n_frames, dtype=bool)
            written[list(frames)] = True
            root[schema.VIDEO_WRITTEN.path][:] = written
    root.attrs[Attr.STATUS] = spec.status
    return {"attention": att, "padding": pad, "head_entropy": entropy, "words": words, "complete": complete}


def small_spec(**overrides) -> Synthetic:
    """Three steps on a 4 x 4 x 6 grid: "red" owns frames 0-1, "cat"+"s" frame 2, "a" frame 3.

    Step 1 differs: "cat" owns every frame, so it wins that step.
    """
    grid = (4, 4, 6)
    owners = owner_blocks(3, grid, [1, 1, 2, 0])
    owners[1] = 2
    values = {"owners": owners}
    values.update(overrides)
    return Synthetic(**values)
