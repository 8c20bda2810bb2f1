"""How a prompt's tokens group into words: part of the store's vocabulary.

The recorder groups the tokens of each branch into the ``words`` attribute with this
rule; stores built without a tokenizer (tests, benchmarks) use the same rule through
:func:`group_token_strings`.
"""

from __future__ import annotations

import unicodedata

WORD_START = "\u2581"  # SentencePiece's marker for "a space came before this piece"


def token_text(token: str) -> str:
    """A token as a person reads it: without the marker ("\u2581cat" -> "cat")."""
    return token[len(WORD_START):] if token.startswith(WORD_START) else token


def is_punctuation(text: str) -> bool:
    text = text.replace(WORD_START, "")
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
        is_punct = not is_special and is_punctuation(piece)
        opens = is_special or is_punct or piece.startswith(WORD_START) or not words \
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
            word["text"] = "".join(strings[i] for i in word["tokens"]).replace(WORD_START, "")
    return words


def group_token_strings(strings: list[str], special: tuple[str, ...] = ("</s>",)) -> list[dict]:
    """:func:`group_words` for token strings alone (no prompt text, so no character spans).

    For stores built without a tokenizer (tests, benchmarks): the same grouping rule as a
    recording, so their words look exactly like a real store's.
    """
    ids = [1 if piece in special else 0 for piece in strings]
    return group_words("", strings, None, {1}, ids)

