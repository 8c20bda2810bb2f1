"""Exact cross-attention probabilities, computed in query chunks and reduced on the device.

No attention backend returns its probabilities, so we compute
``softmax(q k^T / sqrt(D))`` ourselves, in fp32, from the very q and k (after
``norm_q`` / ``norm_k``) that the original processor fed to its kernel. Wan does not
mask the pad keys, so the softmax runs over every key. When the pad keys are
bit-identical (checked at run time: here, or once per layer and text embedding by the
capture) they are merged into one key whose logit is
raised by ``log(n_pad)``: in exact arithmetic that is the same softmax over all keys,
at a fraction of the cost.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch


@dataclass
class ReducedAttention:
    """One cross-attention call, reduced over heads, still on the device (fp32)."""

    attention: torch.Tensor  # (queries, real tokens): mean over the selected heads
    padding_mass: torch.Tensor  # (queries,): mean over the selected heads of the pad keys' total
    head_entropy: torch.Tensor  # (heads,): mean over queries of the entropy over all keys (nats)
    head_token_mass: torch.Tensor  # (heads, real tokens): mean over queries
    head_padding_mass: torch.Tensor  # (heads,): mean over queries
    pad_keys_collapsed: bool


@functools.lru_cache(maxsize=64)
def _merged_pad_bias(num_real: int, num_pad: int, device: torch.device) -> torch.Tensor:
    """Logit offsets [0, .., 0, log(num_pad)], made once: a fresh host-to-device copy would stall the stream."""
    return torch.tensor([0.0] * num_real + [math.log(num_pad)], dtype=torch.float32, device=device)


def pad_keys_identical(keys: torch.Tensor, num_real: int) -> bool:
    """True when every key after the real tokens equals the first pad key bit for bit."""
    pads = keys[:, num_real:]
    if pads.shape[1] <= 1:
        return True
    return bool(torch.equal(pads, pads[:, :1].expand_as(pads)))


def query_chunk_size(num_heads: int, num_keys: int, budget_bytes: int) -> int:
    """Queries per chunk so that the fp32 working set (logits, log-probs, probs) fits the budget."""
    per_query = 3 * num_heads * num_keys * 4
    return max(1, budget_bytes // per_query)


def reduced_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    num_heads: int,
    num_real: int,
    heads: tuple[int, ...] | None = None,
    budget_bytes: int = 256 * 2**20,
    collapse_pad_keys: bool = True,
    pads_known_identical: bool | None = None,
) -> ReducedAttention:
    """Probabilities of one attention call, reduced over heads and summarised per head.

    ``query`` is (1, L_video, H*D) and ``key`` (1, L_text, H*D), as ``norm_q`` and
    ``norm_k`` return them. ``num_real`` real tokens come first in the keys; the rest
    are padding. ``heads`` selects the heads averaged into the map (all by default).
    ``pads_known_identical`` skips the pad check when the caller already made it for
    these very keys (the check reads a flag back from the device, which stalls the loop).
    """
    if query.shape[0] != 1 or key.shape[0] != 1:
        raise ValueError(f"recording needs batch size 1, got query batch {query.shape[0]}")
    num_keys = key.shape[1]
    if not 0 < num_real <= num_keys:
        raise ValueError(f"{num_real} real tokens but the attention has {num_keys} keys")
    head_dim = query.shape[-1] // num_heads
    q = query[0].unflatten(-1, (num_heads, head_dim)).transpose(0, 1)  # (H, Lq, D)
    k = key[0].unflatten(-1, (num_heads, head_dim)).transpose(0, 1).float()  # (H, Lk, D)
    num_pad = num_keys - num_real

    if pads_known_identical is None:
        pads_known_identical = pad_keys_identical(k, num_real)
    collapse = collapse_pad_keys and num_pad > 1 and pads_known_identical
    bias = None
    if collapse:
        k = k[:, : num_real + 1]
        bias = _merged_pad_bias(num_real, num_pad, k.device)
    kt = k.transpose(-1, -2) * (head_dim ** -0.5)

    length = q.shape[1]
    select = list(heads) if heads is not None else None
    attention = torch.empty(length, num_real, device=q.device, dtype=torch.float32)
    padding = torch.empty(length, device=q.device, dtype=torch.float32)
    entropy_sum = torch.zeros(num_heads, device=q.device, dtype=torch.float32)
    token_sum = torch.zeros(num_heads, num_real, device=q.device, dtype=torch.float32)
    pad_sum = torch.zeros(num_heads, device=q.device, dtype=torch.float32)

    step = query_chunk_size(num_heads, kt.shape[-1], budget_bytes)
    for start in range(0, length, step):
        logits = torch.matmul(q[:, start:start + step].float(), kt)  # (H, n, K)
        if bias is not None:
            logits += bias
        log_p = torch.log_softmax(logits, dim=-1)
        del logits
        p = log_p.exp()
        entropy = -(p * log_p).sum(-1)  # (H, n)
        real = p[..., :num_real]
        pad = p[..., num_real:].sum(-1)  # (H, n)
        if collapse:
            # The merged key stands for num_pad keys of p/num_pad each: their entropy is
            # -p*log(p/num_pad) = -p*log(p) + p*log(num_pad).
            entropy += pad * math.log(num_pad)
        entropy_sum += entropy.sum(1)
        token_sum += real.sum(1)
        pad_sum += pad.sum(1)
        if select is None:
            attention[start:start + step] = real.mean(0)
            padding[start:start + step] = pad.mean(0)
        else:
            attention[start:start + step] = real[select].mean(0)
            padding[start:start + step] = pad[select].mean(0)
    return ReducedAttention(attention, padding, entropy_sum / length, token_sum / length, pad_sum / length,
                            collapse)
