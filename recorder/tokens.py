"""The prompt's real tokens as the pipeline sees them, and their grouping into words.

Wan's pipeline cleans the prompt (ftfy, HTML unescape, whitespace), tokenizes it
padded to ``max_sequence_length``, and keeps ``mask.sum()`` tokens, the closing
``</s>`` included. We repeat exactly that with the pipeline's own tokenizer and
cleaning function, so token k of the store is key k of the attention. How tokens group
into words is part of the store's vocabulary: :mod:`shared.words`.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.words import group_words


@dataclass(frozen=True)
class PromptTokens:
    text: str  # the cleaned prompt the tokenizer saw
    ids: list[int]
    strings: list[str]
    words: list[dict]  # {"text", "start", "end", "tokens", "special", "punctuation"}
    truncated: bool


def prompt_tokens(tokenizer, prompt: str, max_sequence_length: int) -> PromptTokens:
    """Tokenize ``prompt`` exactly as WanPipeline does and describe its real tokens."""
    from diffusers.pipelines.wan.pipeline_wan import prompt_clean  # on use: keeps --help light

    text = prompt_clean(prompt)
    fast = getattr(tokenizer, "is_fast", False)
    encoded = tokenizer(text, padding="max_length", max_length=max_sequence_length, truncation=True,
                        add_special_tokens=True, return_attention_mask=True, return_offsets_mapping=fast)
    count = int(sum(1 for m in encoded["attention_mask"] if m))
    ids = list(encoded["input_ids"][:count])
    strings = tokenizer.convert_ids_to_tokens(ids)
    offsets = [tuple(o) for o in encoded["offset_mapping"][:count]] if fast else None
    full = tokenizer(text, add_special_tokens=True)["input_ids"]
    # <unk> stands for real characters of the prompt, so it groups like any piece.
    special = set(tokenizer.all_special_ids) - {tokenizer.unk_token_id}
    words = group_words(text, strings, offsets, special, ids)
    return PromptTokens(text, ids, strings, words, truncated=len(full) > count)
