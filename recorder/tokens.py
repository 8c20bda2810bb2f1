"""The prompt's real tokens as the pipeline sees them, and their grouping into words.

Wan's pipeline cleans the prompt (ftfy, HTML unescape, whitespace), tokenizes it
padded to ``max_sequence_length``, and keeps ``mask.sum()`` tokens, the closing
``</s>`` included. We repeat exactly that with the pipeline's own tokenizer and
cleaning function, so token k of the store is key k of the attention.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

_WORD_START = "\u2581"  # SentencePiece's marker for "a space came before this piece"


@dataclass(frozen=True)
class PromptTokens:
    text: str  # the cleaned prompt the tokenizer saw
    ids: list[int]
    strings: list[str]
    words: list[dict]  # {"text", "start", "end", "tokens", "special", "punctuation"}
    truncated: bool


def _is_punctuation(text: str) -> bool:
    text = text.replace(_WORD_START, "")
    return bool(text) and all(unicodedata.category(c).startswith("P") for c in text)


def group_words(text: str, strings: list[str], offsets: list[tuple[int, int]] | None,
                special: set[int], ids: list[int]) -> list[dict]:
    """Merge sub-word tokens into words with character spans into ``text``.

    A piece that starts with the word marker opens a word; other pieces continue it.
    Special tokens (``</s>``) and punctuation-only pieces are words of their own, flagged,
    so that per-word views can leave them out.
    """
    words: list[dict] = []
    for index, (piece, token_id) in enumerate(zip(strings, ids)):
        is_special = token_id in special
        is_punct = not is_special and _is_punctuation(piece)
        opens = is_special or is_punct or piece.startswith(_WORD_START) or not words \
            or words[-1]["special"] or words[-1]["punctuation"]
        if opens:
            words.append({"text": "", "start": None, "end": None, "tokens": [], "special": is_special,
                          "punctuation": is_punct})
        word = words[-1]
        word["tokens"].append(index)
        if offsets is not None and not is_special:
            start, end = offsets[index]
            if end > start:
                word["start"] = start if word["start"] is None else min(word["start"], start)
                word["end"] = end if word["end"] is None else max(word["end"], end)
    for word in words:
        if word["special"]:
            word["text"] = strings[word["tokens"][0]]
        elif word["start"] is not None:
            while word["start"] < word["end"] and text[word["start"]].isspace():
                word["start"] += 1
            word["text"] = text[word["start"]:word["end"]]
        else:
            word["text"] = "".join(strings[i] for i in word["tokens"]).replace(_WORD_START, "")
    return words


def group_token_strings(strings: list[str], special: tuple[str, ...] = ("</s>",)) -> list[dict]:
    """:func:`group_words` for token strings alone (no prompt text, so no character spans).

    For stores built without a tokenizer (tests, benchmarks): the same grouping rule as a
    recording, so their words look exactly like a real store's.
    """
    ids = [1 if piece in special else 0 for piece in strings]
    return group_words("", strings, None, {1}, ids)


def prompt_tokens(tokenizer, prompt: str, max_sequence_length: int) -> PromptTokens:
    """Tokenize ``prompt`` exactly as WanPipeline does and describe its real tokens."""
    from diffusers.pipelines.wan.pipeline_wan import prompt_clean

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
