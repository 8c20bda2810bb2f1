"""Turn the user's choice of steps, layers, words and tokens into store positions.

Anything that names something the store does not have raises :class:`AnalyzerError`
with what the store does have, so the user can correct the command in one go.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from analyzer.errors import AnalyzerError
from analyzer.options import Options, Selection
from analyzer.reader import Step, StoreView, Word
from analyzer.text import ranges
from shared.words import token_text

_RANGE = re.compile(r"^(\d+)(?:\s*-\s*(\d+))?$")


@dataclass(frozen=True)
class Unit:
    """One entry of the per-word views: a prompt word, or a single token the user asked for."""

    label: str
    tokens: tuple[int, ...]
    kind: str  # "word" or "token"
    index: int  # word index or token index


def parse_numbers(spec: str | Iterable[int] | None, what: str,
                  available: Iterable[int] | None = None) -> list[int] | None:
    """"0,3,10-12" (or a list of ints) -> [0, 3, 10, 11, 12]; None stays None.

    With ``available``, a range stands for the available values inside it ("0-999999999"
    never builds a billion numbers) and must hold at least one; single numbers are
    returned as given, for the caller to say which are missing.
    """
    if spec is None:
        return None
    if not isinstance(spec, str):
        return [int(v) for v in spec]
    known = sorted(set(available)) if available is not None else None
    numbers: list[int] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        match = _RANGE.match(part)
        if match is None:
            raise AnalyzerError(f"cannot read {what} {part!r}: use numbers and ranges like 0,5,10-20")
        first, last = int(match.group(1)), int(match.group(2) or match.group(1))
        if known is None:
            numbers.extend(range(first, last + 1))
        elif match.group(2) is None:
            numbers.append(first)
        else:
            inside = [v for v in known if first <= v <= last]
            if not inside:
                raise AnalyzerError(f"no {what} in {part!r} was recorded; recorded: {ranges(known)}")
            numbers.extend(inside)
    if not numbers:
        raise AnalyzerError(f"no {what} given in {spec!r}")
    return numbers


def select_steps(view: StoreView, spec: str | Iterable[int] | None) -> list[Step]:
    """The complete steps to analyse, in store order: all of them, or those whose pipeline index is named."""
    wanted = parse_numbers(spec, "step", [s.index for s in view.steps])
    complete = view.complete_steps
    if wanted is None:
        if not complete:
            raise AnalyzerError(f"{view.location} has no complete step yet (status {view.status!r})")
        return complete
    by_index = {s.index: s for s in view.steps}
    chosen = []
    for index in dict.fromkeys(wanted):
        step = by_index.get(index)
        if step is None:
            raise AnalyzerError(f"step {index} was not recorded; recorded steps: {ranges(list(by_index))}")
        if not step.complete:
            raise AnalyzerError(f"step {index} is not complete in this store; complete steps: "
                                f"{ranges([s.index for s in complete])}")
        chosen.append(step)
    return sorted(chosen, key=lambda s: s.position)


def select_layers(view: StoreView, spec: str | Iterable[int] | None) -> list[int]:
    """Positions along the layer axis: all, or those of the named transformer blocks."""
    wanted = parse_numbers(spec, "layer", view.layer_blocks)
    if wanted is None:
        return list(range(len(view.layer_blocks)))
    if not view.layers_separate:
        raise AnalyzerError("this store holds the mean over layers (layer_reduction 'mean'); "
                            "single layers cannot be selected")
    position = {b: i for i, b in enumerate(view.layer_blocks)}
    missing = [b for b in wanted if b not in position]
    if missing:
        raise AnalyzerError(f"layer {missing[0]} was not recorded; recorded blocks: {ranges(view.layer_blocks)}")
    return sorted({position[b] for b in wanted})


def _default_word(word: Word) -> bool:
    return not word.special and not word.punctuation


def select_units(view: StoreView, words: str | Iterable[str] | None, tokens: str | Iterable[str] | None,
                 include_special: bool = False) -> list[Unit]:
    """The per-word views' entries.

    words: prompt words by text (case-insensitive; every occurrence of a repeated word).
    tokens: token indices, or token strings as typed ("cat") or as the store spells them ("\u2581cat").
    Neither: every word of the prompt, special and punctuation words only with ``include_special``.
    """
    word_names = _split(words)
    token_names = _split(tokens)
    units: list[Unit] = []
    if word_names is None and token_names is None:
        for w in view.words:
            if include_special or _default_word(w):
                units.append(Unit(w.text, w.tokens, "word", w.index))
        if not units:
            raise AnalyzerError("the prompt has no word to show (only special or punctuation tokens); "
                                "pass --include-special")
        return units
    for name in word_names or []:
        matches = [w for w in view.words if w.text.casefold() == name.casefold()]
        if not matches:
            known = ", ".join(repr(w.text) for w in view.words if _default_word(w))
            raise AnalyzerError(f"word {name!r} is not in the prompt; its words are {known}")
        units.extend(Unit(w.text, w.tokens, "word", w.index) for w in matches)
    for name in token_names or []:
        if name.lstrip("-").isdigit():
            index = int(name)
            if not 0 <= index < len(view.tokens):
                raise AnalyzerError(f"token {index} does not exist; tokens are 0..{len(view.tokens) - 1}")
            units.append(Unit(view.tokens[index], (index,), "token", index))
            continue
        # as the store spells it ("\u2581cat"), else as typed ("cat", matching "\u2581cat" and "cat")
        matches = [i for i, t in enumerate(view.tokens) if t == name] or \
            [i for i, t in enumerate(view.tokens) if token_text(t) == token_text(name)]
        if not matches:
            raise AnalyzerError(f"token {name!r} is not in the prompt; its tokens are "
                                f"{', '.join(repr(token_text(t)) for t in view.tokens)}")
        units.extend(Unit(view.tokens[i], (i,), "token", i) for i in matches)
    return list(dict.fromkeys(units))


def select(view: StoreView, options: Options) -> Selection:
    """The steps, layers and per-word units ``options`` name in this store (all, when they name none)."""
    return Selection(view, options, tuple(select_steps(view, options.steps)),
                     tuple(select_layers(view, options.layers)),
                     tuple(select_units(view, options.words, options.tokens, options.include_special)))


def _split(spec: str | Iterable[str] | None) -> list[str] | None:
    if spec is None:
        return None
    parts = spec.split(",") if isinstance(spec, str) else list(spec)
    parts = [p.strip() for p in parts if p.strip()]
    return parts or None
