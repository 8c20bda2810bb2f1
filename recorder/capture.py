"""Capture Wan cross-attention with a processor on every selected ``attn2``.

Follows DAAM's contract: ``with AttentionCapture(pipe, config, sink) as capture:``
installs the capture processors on entry, and on exit (also after an exception) puts
back the exact original processor objects; entering twice raises.

The capture processor calls the original processor for the layer's output, so the
video is bit-identical to an unrecorded run. During that call two forward hooks take
the outputs of ``norm_q`` and ``norm_k``, the very tensors the kernel saw, and the
probabilities are computed from them (``recorder.probabilities``).

Which step and branch a call belongs to: the pipeline runs the conditional pass
first and the unconditional one second within each step; a pre-forward hook on each
transformer counts the passes, and ``on_step_end`` (chained into the pipeline's
``callback_on_step_end``) closes the step.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

import torch

from recorder.probabilities import ReducedAttention, pad_keys_identical, reduced_attention
from shared.schema import BRANCH_COND, BRANCH_UNCOND, BRANCHES

log = logging.getLogger(__name__)

_ACTIVE_FLAG = "_wan_attention_capture_active"


@dataclass(frozen=True)
class CaptureConfig:
    """What to record and how to reduce it.

    heads: heads averaged into the maps; None averages all of them.
    layers: transformer blocks to record; None records every block.
    layer_mean: store one map per step, the mean over the recorded layers.
    branches: "cond" (the prompt), and "uncond" (the negative prompt) if asked.
    step_stride: record steps 0, k, 2k, ...
    query_chunk_bytes: device memory for one chunk of fp32 logits; bounds memory at any resolution.

    How the maps are stored (their precision) is not the capture's business:
    :class:`shared.store.StorageOptions`.
    """

    heads: tuple[int, ...] | None = None
    layers: tuple[int, ...] | None = None
    layer_mean: bool = False
    branches: tuple[str, ...] = (BRANCH_COND,)
    step_stride: int = 1
    query_chunk_bytes: int = 256 * 2**20

    def __post_init__(self):
        unknown = set(self.branches) - set(BRANCHES)
        if unknown or BRANCH_COND not in self.branches:
            raise ValueError(f"branches must be 'cond' or 'cond,uncond', got {','.join(self.branches)}")
        if self.step_stride < 1:
            raise ValueError(f"step stride must be at least 1, got {self.step_stride}")

    def records_step(self, step: int) -> bool:
        return step % self.step_stride == 0


# sink(step_index, branch, layer_slot, reduced) receives each reduced result on the device.
Sink = Callable[[int, str, int, ReducedAttention], None]


class _DeviceTimer:
    """Sums the time of device work between start() and stop(), with CUDA events where there is a GPU."""

    def __init__(self):
        self.seconds_host = 0.0
        self._events: list[tuple] = []

    def start(self, device: torch.device):
        if device.type == "cuda":
            begin = torch.cuda.Event(enable_timing=True)
            begin.record()
            return ("cuda", begin)
        return ("host", time.perf_counter())

    def stop(self, token) -> None:
        kind, begin = token
        if kind == "cuda":
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            self._events.append((begin, end))
        else:
            self.seconds_host += time.perf_counter() - begin

    @property
    def seconds(self) -> float:
        total = self.seconds_host
        for begin, end in self._events:
            end.synchronize()
            total += begin.elapsed_time(end) / 1000.0
        return total


class CaptureProcessor:
    """Wraps a layer's original processor: same output, plus the probabilities to the capture."""

    def __init__(self, original, capture: "AttentionCapture", layer_slot: int):
        self.original = original
        self.capture = capture
        self.layer_slot = layer_slot

    # diffusers' set_attention_backend and context parallelism set these on processors.
    @property
    def _attention_backend(self):
        return getattr(self.original, "_attention_backend", None)

    @_attention_backend.setter
    def _attention_backend(self, value):
        self.original._attention_backend = value

    @property
    def _parallel_config(self):
        return getattr(self.original, "_parallel_config", None)

    @_parallel_config.setter
    def _parallel_config(self, value):
        self.original._parallel_config = value

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, rotary_emb=None):
        if not self.capture.recording_this_pass:
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, rotary_emb)
        seen: dict[str, torch.Tensor] = {}
        handles = [
            attn.norm_q.register_forward_hook(lambda _m, _i, out: seen.__setitem__("q", out)),
            attn.norm_k.register_forward_hook(lambda _m, _i, out: seen.__setitem__("k", out)),
        ]
        try:
            output = self.original(attn, hidden_states, encoder_hidden_states, attention_mask, rotary_emb)
        finally:
            for handle in handles:
                handle.remove()
        if "q" not in seen or "k" not in seen:
            raise RuntimeError(f"layer {self.layer_slot}: the original processor did not call norm_q/norm_k; "
                               "cannot recover the query and key it used")
        self.capture.consume(self.layer_slot, attn, seen["q"], seen["k"])
        return output


class AttentionCapture:
    """Context manager that records every selected cross-attention call of a Wan pipeline."""

    def __init__(self, pipe, config: CaptureConfig, sink: Sink | None, num_real_tokens: dict[str, int]):
        self.pipe = pipe
        self.config = config
        self.sink = sink
        self.num_real_tokens = num_real_tokens
        self.transformers = [m for m in (pipe.transformer, getattr(pipe, "transformer_2", None)) if m is not None]
        num_blocks = {len(t.blocks) for t in self.transformers}
        if len(num_blocks) != 1:
            raise ValueError(f"the experts have different block counts {sorted(num_blocks)}")
        self.num_blocks = num_blocks.pop()
        self.layer_blocks = tuple(config.layers) if config.layers is not None else tuple(range(self.num_blocks))
        bad = [b for b in self.layer_blocks if not 0 <= b < self.num_blocks]
        if bad:
            raise ValueError(f"layers {bad} do not exist: the model has blocks 0..{self.num_blocks - 1}")
        self.num_heads = self.transformers[0].blocks[0].attn2.heads
        if config.heads is not None:
            bad = [h for h in config.heads if not 0 <= h < self.num_heads]
            if bad:
                raise ValueError(f"heads {bad} do not exist: the model has heads 0..{self.num_heads - 1}")
        for t in self.transformers:
            if t.blocks[0].attn2.add_k_proj is not None:
                raise ValueError("image-conditioned Wan (I2V/FLF2V) has a second softmax over image keys in attn2; "
                                 "only text-to-video models are supported")

        self._originals: list[tuple[torch.nn.Module, object]] = []
        self._hooks: list = []
        self.timer = _DeviceTimer()
        self.step = 0
        self._pass = 0
        self.branch = BRANCH_COND
        self.experts_by_step: dict[int, int] = {}
        self.num_keys: dict[str, int] = {}
        self.pad_keys_collapsed: dict[str, bool] = {}
        self._text_embedding: torch.Tensor | None = None
        self._pads_identical: dict[tuple, tuple] = {}
        self._layer_sum: ReducedAttention | None = None
        self._layers_summed = 0

    # --- entering and leaving -------------------------------------------------------
    def __enter__(self) -> "AttentionCapture":
        if self.sink is None:
            raise RuntimeError("AttentionCapture needs a sink before it is entered")
        if any(getattr(t, _ACTIVE_FLAG, False) for t in self.transformers):
            raise RuntimeError("an attention capture is already active on this pipeline")
        try:
            for expert, transformer in enumerate(self.transformers):
                setattr(transformer, _ACTIVE_FLAG, True)
                self._hooks.append(transformer.register_forward_pre_hook(self._pass_starter(expert),
                                                                         with_kwargs=True))
                for slot, block in enumerate(self.layer_blocks):
                    attn = transformer.blocks[block].attn2
                    self._originals.append((attn, attn.processor))
                    attn.set_processor(CaptureProcessor(attn.processor, self, slot))
        except BaseException:
            self._restore()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self._restore()

    def _restore(self) -> None:
        for attn, original in reversed(self._originals):
            attn.set_processor(original)
        self._originals.clear()
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()
        for transformer in self.transformers:
            if hasattr(transformer, _ACTIVE_FLAG):
                delattr(transformer, _ACTIVE_FLAG)

    # --- where the denoising loop is ------------------------------------------------------
    def _pass_starter(self, expert: int):
        def start_pass(_module, args, kwargs):
            if self._pass >= len(BRANCHES):
                raise RuntimeError(f"step {self.step}: more than two transformer passes before the step ended; "
                                   "is callback_on_step_end chained to the capture?")
            self.branch = BRANCHES[self._pass]
            self._pass += 1
            self.experts_by_step[self.step] = expert
            # The pipeline's text embedding of this pass: the same tensor every step unless a
            # callback replaces it; the pad check below is keyed on it.
            self._text_embedding = kwargs.get("encoder_hidden_states", args[2] if len(args) > 2 else None)
        return start_pass

    @property
    def recording_this_pass(self) -> bool:
        return self.config.records_step(self.step) and self.branch in self.config.branches

    def on_step_end(self) -> None:
        """Close the current step; the next transformer call starts the next one."""
        if self.config.records_step(self.step) and BRANCH_UNCOND in self.config.branches and self._pass < 2:
            raise RuntimeError("the unconditional branch was asked for, but the pipeline ran no unconditional "
                               "pass (guidance_scale <= 1?)")
        self.step += 1
        self._pass = 0
        self.branch = BRANCH_COND

    # --- per layer --------------------------------------------------------------------
    def _pad_check(self, attn, key: torch.Tensor, branch: str, block: int | None = None) -> bool:
        """Whether the pad keys are identical, checked once per layer and text embedding.

        The keys are a fixed function of the layer's weights and the pipeline's text
        embedding, which is the same tensor at every step. The answer is reused while that
        tensor object and its version counter are unchanged; a callback that replaces or
        edits the embedding makes the check run again. (The check reads a flag back from
        the device, which would stall the loop if it ran on every call.)
        """
        embedding = self._text_embedding
        cached = self._pads_identical.get((id(attn), branch))
        if embedding is not None and cached is not None and cached[0] is embedding \
                and cached[1] == embedding._version:
            return cached[2]
        head_dim = key.shape[-1] // attn.heads
        keys = key[0].unflatten(-1, (attn.heads, head_dim)).transpose(0, 1)
        identical = pad_keys_identical(keys, self.num_real_tokens[branch])
        log.debug("pad-key check, %s branch, layer %s: the %d pad keys are %s", branch,
                  block, key.shape[1] - self.num_real_tokens[branch],
                  "identical (merged into one)" if identical else "not identical (each kept)")
        if embedding is not None:
            self._pads_identical[(id(attn), branch)] = (embedding, embedding._version, identical)
        return identical

    def consume(self, layer_slot: int, attn, query: torch.Tensor, key: torch.Tensor) -> None:
        branch = self.branch
        token = self.timer.start(query.device)
        identical = self._pad_check(attn, key, branch, self.layer_blocks[layer_slot])
        reduced = reduced_attention(query, key, attn.heads, self.num_real_tokens[branch], self.config.heads,
                                    self.config.query_chunk_bytes, pads_known_identical=identical)
        self.num_keys[branch] = key.shape[1]
        self.pad_keys_collapsed[branch] = self.pad_keys_collapsed.get(branch, True) and reduced.pad_keys_collapsed
        if self.config.layer_mean:
            reduced = self._accumulate(reduced)
        self.timer.stop(token)
        if reduced is not None:
            self.sink(self.step, branch, 0 if self.config.layer_mean else layer_slot, reduced)

    def _accumulate(self, reduced: ReducedAttention) -> ReducedAttention | None:
        """Sum layers on the device; return the mean after the last recorded layer of the pass."""
        if self._layer_sum is None:
            self._layer_sum = reduced
        else:
            for name in ("attention", "padding_mass", "head_entropy", "head_token_mass", "head_padding_mass"):
                getattr(self._layer_sum, name).add_(getattr(reduced, name))
            self._layer_sum.pad_keys_collapsed &= reduced.pad_keys_collapsed
        self._layers_summed += 1
        if self._layers_summed < len(self.layer_blocks):
            return None
        total, n = self._layer_sum, self._layers_summed
        self._layer_sum, self._layers_summed = None, 0
        for name in ("attention", "padding_mass", "head_entropy", "head_token_mass", "head_padding_mass"):
            getattr(total, name).div_(n)
        return total
