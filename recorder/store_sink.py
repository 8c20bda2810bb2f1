"""Move reduced attention off the device and into the store, without stalling the loop.

On a GPU the fp16 maps are copied into pinned host buffers with ``non_blocking``; a
CUDA event marks when each copy is done, and the writer thread waits for that event,
not the denoising loop. Pinned buffers are reused, and the writer's bounded queue
caps how many are in flight, so host memory does not grow with the number of steps.
"""

from __future__ import annotations

import threading
from collections import defaultdict

import numpy as np
import torch

from recorder.precision import round_mantissa
from recorder.probabilities import ReducedAttention
from recorder.writer import BackgroundWriter
from shared import schema


class _PinnedPool:
    """Reusable page-locked host buffers, keyed by shape and dtype (taken by the loop, given back by the writer)."""

    def __init__(self):
        self._free: dict[tuple, list[torch.Tensor]] = defaultdict(list)
        self._lock = threading.Lock()

    def take(self, like: torch.Tensor) -> torch.Tensor:
        with self._lock:
            free = self._free[(tuple(like.shape), like.dtype)]
            if free:
                return free.pop()
        return torch.empty(like.shape, dtype=like.dtype, pin_memory=True)

    def give_back(self, buffer: torch.Tensor) -> None:
        with self._lock:
            self._free[(tuple(buffer.shape), buffer.dtype)].append(buffer)


class StoreSink:
    """Receives reduced attention from the capture and queues its writes.

    Per-head summaries are small; they are gathered per step on the writer thread and
    written once, when the step ends, so that layers never rewrite each other's chunk.
    """

    def __init__(self, root, writer: BackgroundWriter, grid: tuple[int, int, int], num_layers: int,
                 num_heads: int, step_slots: dict[int, int], mantissa_bits: int = schema.FLOAT16_MANTISSA_BITS,
                 branches: tuple[str, ...] = ()):
        self.root = root
        # the branches whose timestep, sigma and expert coordinates (schema 1.3) are written with each step
        self.branches = tuple(b for b in branches if schema.timestep_coordinate(b).path in root)
        self.writer = writer
        self.grid = grid
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.step_slots = step_slots  # pipeline step -> index on the store's step axis
        self.mantissa_bits = mantissa_bits
        self._pool = _PinnedPool()
        self._heads: dict[str, dict[str, np.ndarray]] = {}
        self._arrays: dict[str, object] = {}

    def _array(self, path: str):
        """Open each array once: a lookup reads metadata through zarr's event loop, which the
        writer thread keeps busy, and would stall the denoising loop on every layer."""
        if path not in self._arrays:
            self._arrays[path] = self.root[path]
        return self._arrays[path]

    def _to_host(self, tensor: torch.Tensor):
        """Start copying ``tensor`` to the host; return a function that waits and gives a numpy array."""
        if tensor.device.type != "cuda":
            array = tensor.detach().to("cpu", copy=True).numpy()
            return lambda: array, lambda: None
        buffer = self._pool.take(tensor)
        buffer.copy_(tensor, non_blocking=True)
        done = torch.cuda.Event()
        done.record()

        def wait():
            done.synchronize()
            return buffer.numpy()

        return wait, lambda: self._pool.give_back(buffer)

    def __call__(self, step: int, branch: str, layer_slot: int, reduced: ReducedAttention) -> None:
        f, h, w = self.grid
        slot = self.step_slots[step]
        maps = round_mantissa(reduced.attention.to(torch.float16), self.mantissa_bits).reshape(f, h, w, -1)
        padding = round_mantissa(reduced.padding_mass.to(torch.float16), self.mantissa_bits).reshape(f, h, w)
        heads = torch.cat([reduced.head_entropy, reduced.head_padding_mass, reduced.head_token_mass.flatten()])
        copies = [self._to_host(maps), self._to_host(padding), self._to_host(heads)]
        attention = self._array(schema.attention(branch).path)
        padding_mass = self._array(schema.padding_mass(branch).path)

        def write():
            try:
                maps_np, padding_np, heads_np = (wait() for wait, _ in copies)
                attention[slot, layer_slot] = maps_np
                padding_mass[slot, layer_slot] = padding_np
                self._gather_heads(branch, layer_slot, heads_np)
            finally:
                for _, release in copies:
                    release()

        self.writer.submit(write)

    def _gather_heads(self, branch: str, layer_slot: int, flat: np.ndarray) -> None:
        n = self.num_heads
        if branch not in self._heads:
            tokens = (flat.size - 2 * n) // n
            self._heads[branch] = {
                "entropy": np.full((self.num_layers, n), np.nan, np.float32),
                "padding": np.full((self.num_layers, n), np.nan, np.float32),
                "tokens": np.full((self.num_layers, n, tokens), np.nan, np.float32),
            }
        gathered = self._heads[branch]
        gathered["entropy"][layer_slot] = flat[:n]
        gathered["padding"][layer_slot] = flat[n:2 * n]
        gathered["tokens"][layer_slot] = flat[2 * n:].reshape(n, -1)

    def end_step(self, step: int, timestep, sigma: float, expert: int) -> None:
        """Queue the step's per-head summaries and bookkeeping; ``complete`` is written last."""
        slot = self.step_slots[step]
        array = self._array

        def write():
            for branch, gathered in self._heads.items():
                array(schema.head_entropy(branch).path)[slot] = gathered["entropy"]
                array(schema.head_padding_mass(branch).path)[slot] = gathered["padding"]
                array(schema.head_token_mass(branch).path)[slot] = gathered["tokens"]
            self._heads.clear()
            t = float(timestep)  # a device tensor: read here, off the loop
            array(schema.STEP_INDEX.path)[slot] = step
            array(schema.STEP_TIMESTEP.path)[slot] = t
            array(schema.STEP_SIGMA.path)[slot] = sigma
            array(schema.STEP_EXPERT.path)[slot] = expert
            for branch in self.branches:  # the coordinates along each branch's step axis, before complete
                for spec, value in zip(schema.step_coordinates(branch), (t, sigma, expert)):
                    array(spec.path)[slot] = value
            array(schema.STEP_COMPLETE.path)[slot] = True

        self.writer.submit(write)
