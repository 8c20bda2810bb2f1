"""report: the Markdown report, header table, definitions, the statistics, links to every picture.

Rendered last, so that it links every file the other outputs wrote. All text that comes
from the store goes through :func:`analyzer.text.markdown`; numbers are printed with a
fixed number of decimals so that tools (and tests) can read them back.
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from analyzer.heatmaps import two_experts
from analyzer.options import ANIMATION_FORMATS, IMAGE_FORMATS, Analysis
from analyzer.outputs.registry import Context, Output, Written, registered
from analyzer.overlays import NOT_RECORDED_LABEL
from analyzer.statistics import membership
from analyzer.store_state import missing_sentence, status_sentence, video_sentence
from analyzer.text import block_label, ranges
from analyzer.text import markdown as md
from shared.schema import BRANCH_UNCOND, Attr, GridKey
from shared.words import token_text

REPORT = "attention_analysis_report.md"  # the classic name, kept from the original WAN attention-visualization feature
TOP_HEADS = 5
# shown in the report; other files (an MP4, which Markdown cannot show) are linked
_PICTURE_SUFFIXES = {*IMAGE_FORMATS, *ANIMATION_FORMATS} - {"mp4"}

DEFINITIONS = [
    ("Attention A[q, t]", "the softmax probability that video query q (latent frame, y, x) gives text token t, "
     "averaged over the analysed layers (and over the recorded heads, as stored)."),
    ("Token mass", "m_t = (1/Q) \u2211_q A[q, t], the mean attention token t receives over the Q queries of a step; "
     "its share is m_t / \u2211_t' m_t'."),
    ("Word mass", "the sum of the token masses of the word's sub-word tokens, m_w = \u2211_{t \u2208 w} m_t: the "
     "probability the word receives. A word the tokenizer splits into many sub-word tokens collects more mass "
     "than a one-token word whose tokens are attended alike; compare words of different token counts with that in "
     "mind (the Tokens column shows the split)."),
    ("Word map", "M_w[q] = R_{t \u2208 w} (1/N) \u2211_s A_s[q, t], the step-mean maps of the word's sub-word tokens "
     "reduced by R, the word reduction (--word-reduction: max, mean or sum; the default max is the map of the "
     "word's most attended piece, so a word neither gains from being split into more tokens, as with sum, nor "
     "loses for a weakly attended piece, as with mean). The per-word overlays, the contact sheet and the layer "
     "profile use it."),
    ("Text entropy", "H = (1/Q) \u2211_q H_q with H_q = \u2212\u2211_t p_qt ln p_qt and "
     "p_qt = A[q, t] / \u2211_t' A[q, t'], "
     "in nats: how spread each query's attention over the text tokens is (0 = one token, ln T = uniform)."),
    ("Spatial entropy", "S_t = \u2212\u2211_q r_qt ln r_qt with r_qt = A[q, t] / \u2211_q' A[q', t], in nats: "
     "how spread token t's map is over the video (0 = one location, ln Q = uniform)."),
    ("Padding mass", "P = (1/Q) \u2211_q (1 \u2212 \u2211_t A[q, t]), the probability that went to the pad keys, "
     "which Wan does not mask."),
    ("Change", "D_s = \u2211_{q,t} |A_s[q, t] \u2212 A_{s\u22121}[q, t]| / \u2211_{q,t} A_{s\u22121}[q, t], "
     "the relative L1 "
     "change of the attention from the previous analysed step."),
    ("Winner", "the token w_s = argmax_t m_t of a step, and for a location the token w_q = argmax_t A[q, t]; "
     "a token's location win share is (number of (step, location) pairs with w_q = t) / (steps × Q)."),
    ("Winner stability", "(1/Q) ∑_q max_t n_qt / N, where n_qt counts the analysed steps in which token t "
     "wins location q and N is the number of analysed steps."),
    ("Segment share", "the fraction of latent locations q whose winning word argmax_w S_w[q] is w, with "
     "S_w[q] = max_{t \u2208 w} (1/N) \u2211_s A_s[q, t], the step-mean map of the word's most attended token, "
     "unscaled: the segmentation compares the words' attention itself, whatever --normalize (which scales only "
     "the overlays' colours), and always takes the max over a word's tokens, whatever --word-reduction, so that "
     "no word wins a location for being split into more tokens."),
    ("Head entropy", "E_lh = (1/N) ∑_s e_slh, the recorder's per-head mean over queries of the entropy over "
     "all keys (pad keys included) averaged over the N analysed steps; the lowest is the most focused head."),
]


_REDUCTION_WORDS = {"max": "maximum", "mean": "mean", "sum": "sum"}

# "How to read this" under each picture, by output kind
HOW_TO_READ = {
    "steps": "Each step's attention: x = the text tokens in prompt order, y = the video tokens frame by frame "
             "(latent frame labels f0, f1, ... on the left); brighter = more attention. Each picture has its own "
             "colour scale, read off its colour bar; the montage compares steps on one scale.",
    "montage": "One small panel per analysed step, first at the top left, all on the colour scale of the bar: a "
               "column that brightens over the panels is a token that gains attention as denoising proceeds; a "
               "horizontal band is a frame or region that looks at the text more.",
    "animation": "The steps' pictures in order, each on its own colour scale (see the step pictures).",
    "word_sheet": "One row per word, one column per sampled video frame: the word's step-mean attention map laid "
                  "over the frame (red = most, see the scale under the sheet). Where a row lights up is where the "
                  "model puts that word.",
    "words": "Each word's map over every frame of the video, as in the contact sheet.",
    "segmentation": "Every location coloured by the word that takes the most attention there (legend below the "
                    "frames): large uniform areas are words that own a region; a speckle means no word dominates.",
    "padding": "How much attention went to the pad keys, which Wan does not mask: a high, flat line is normal "
               "(the pad keys are most keys); a change over the steps is the text's share changing.",
    "layers": "For each layer (row), how its word attention divides over the words (columns); a bright cell is a "
              "word that layer attends to more than the others do.",
    "heads": "Every head ranked by its mean entropy over all keys: the top of the list are the most focused heads "
             "(attention on few keys), named by layer and head with the token they attend to most; the map on "
             "the right shows the same entropies by layer and head.",
}


def _f(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "\u2013"
    return f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines + [""]


def _dict_line(value) -> str:
    if isinstance(value, dict):
        return md(", ".join(f"{k}={v}" for k, v in value.items())) or "\u2013"
    return md(value)


def write_report(analysis: Analysis, written: dict[str, Written], path: Path) -> Path:
    """Write ``attention_analysis_report.md`` for ``analysis``, linking the files in ``written``."""
    lines = build_report(analysis, written, path.parent)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def build_report(analysis: Analysis, written: dict[str, Written], root: Path) -> list[str]:
    view, stats, units = analysis.view, analysis.stats, analysis.units
    attrs = view.attrs
    tokens = view.tokens
    word_of_token = {}
    for w in view.words:
        for t in w.tokens:
            word_of_token[t] = w.text

    def token_cell(t: int) -> str:
        return f"{t}: {md(token_text(tokens[t]) or tokens[t])}"

    def split(token_indices) -> str:
        return md(" + ".join(token_text(tokens[t]) or tokens[t] for t in token_indices))

    def link(p: Path) -> str:
        return p.relative_to(root).as_posix()

    lines = ["# Attention analysis report", ""]
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    seconds = time.perf_counter() - analysis.started
    lines += [f"Store {md(view.location)}, branch {md(view.branch)}, analysed {generated} "
              f"in {seconds:.1f} s.", ""]

    grid = attrs.get(Attr.LATENT_GRID) or {}
    guidance = md(attrs.get(Attr.GUIDANCE_SCALE))
    if attrs.get(Attr.GUIDANCE_SCALE_2) is not None:
        guidance += f" (low-noise expert: {md(attrs.get(Attr.GUIDANCE_SCALE_2))})"
    status = md(view.status)
    if attrs.get(Attr.INTERRUPTED_BY):
        status += f" by {md(attrs.get(Attr.INTERRUPTED_BY))}"
    if attrs.get(Attr.ERROR):
        status += f": {md(attrs.get(Attr.ERROR))}"
    recorded = [s.index for s in view.steps]
    skipped = [e.step.index for e in analysis.skipped]
    skipped_note = f"; {len(skipped)} skipped as corrupt ({ranges(skipped)})" if skipped else ""
    header = [
        ["Model", f"{md(attrs.get(Attr.MODEL_ID))} ({md(attrs.get(Attr.MODEL_CLASS))})"],
        *_prompt_rows(view),
        ["Seed", md(attrs.get(Attr.SEED))],
        ["Size", f"{md(attrs.get(Attr.WIDTH))} x {md(attrs.get(Attr.HEIGHT))} px; latent grid "
                 f"{grid.get(GridKey.FRAMES)} x {grid.get(GridKey.HEIGHT)} x {grid.get(GridKey.WIDTH)} (F' x H' x W')"],
        ["Frames", f"{md(attrs.get(Attr.NUM_FRAMES))} generated; {view.num_video_frames} in the store, "
                   f"{int(np.count_nonzero(view.video_written))} written"],
        ["Steps", f"{md(attrs.get(Attr.NUM_INFERENCE_STEPS))} inference steps; {len(recorded)} recorded "
                  f"({ranges(recorded)}); {len(analysis.steps)} analysed "
                  f"({ranges([s.index for s in analysis.steps])}){skipped_note}"],
        ["Guidance", guidance],
        ["Scheduler", md(attrs.get(Attr.SCHEDULER))],
        ["Status", status],
        ["Versions", _dict_line(attrs.get(Attr.VERSIONS) or {})],
        ["Record options", _dict_line(attrs.get(Attr.RECORD_OPTIONS) or {})],
        ["Layers analysed", md(", ".join(block_label(b) for b in analysis.layer_blocks))],
        ["Text tokens", f"{len(tokens)} real tokens of {view.num_keys} keys"],
    ]
    lines += ["**Summary**", ""] + summary(analysis) + [""]
    lines += _table(["Field", "Value"], header)

    lines += ["## Recording status", "", f"Status: {status_sentence(view, md)}", "",
              f"Video: {md(video_sentence(view))}.", ""]

    lines += ["## Missing steps", ""]
    if view.missing_steps:
        lines += [f"Missing steps: {missing_sentence(view)}. These steps are not complete in the store (status "
                  f"{md(view.status)}) and are left out of every picture and number.", ""]
    else:
        lines += ["Missing steps: none. Every recorded step is complete.", ""]
    lines += _skipped(analysis)

    lines += _pictures(analysis, written, link)
    lines += ["## Definitions", ""]
    lines += [f"- **{name}**: {sentence}" for name, sentence in DEFINITIONS] + [""]

    token_mass = stats.token_mass()
    share = token_mass / max(token_mass.sum(), 1e-30)
    steps_won = stats.steps_won()
    win_share = stats.location_win_share()
    spatial = stats.spatial_entropy()
    order = np.argsort(-token_mass, kind="stable")
    lines += ["## Token importance", "", "### Tokens", "",
              f"Ranked by mean token mass over the {stats.count} analysed steps.", ""]
    rows = [[str(r + 1), token_cell(t), md(word_of_token.get(t, "")), _f(token_mass[t]), _f(share[t]),
             str(int(steps_won[t])), _f(win_share[t]), _f(spatial[t])] for r, t in enumerate(order)]
    lines += _table(["Rank", "Token", "Word", "Mass", "Share", "Steps won", "Location win share",
                     "Spatial entropy"], rows)

    lines += ["### Words", ""]
    word_rows = []
    for w in view.words:
        mass = float(token_mass[list(w.tokens)].sum())
        kind = "special" if w.special else "punctuation" if w.punctuation else "word"
        word_rows.append((mass, w, kind))
    word_rows.sort(key=lambda r: -r[0])
    total = max(token_mass.sum(), 1e-30)
    rows = [[str(r + 1), md(w.text), kind, split(w.tokens), _f(mass), _f(mass / total)]
            for r, (mass, w, kind) in enumerate(word_rows)]
    lines += _table(["Rank", "Word", "Kind", "Tokens", "Mass", "Share"], rows)

    lines += ["### Top tokens per step", ""]
    rows = []
    for s in stats.steps:
        top = np.argsort(-s.token_mass, kind="stable")[:3]
        step_total = max(s.token_mass.sum(), 1e-30)
        rows.append([str(s.index)] + [f"{token_cell(t)} ({_f(s.token_mass[t] / step_total)})" for t in top])
    lines += _table(["Step", "1st (share)", "2nd (share)", "3rd (share)"][: 1 + min(3, len(tokens))], rows)

    lines += ["### Top words per step", "", "Word mass m_w of each analysed step (see Word mass above); "
              "the share is of the step's total token mass.", ""]
    words_of_tokens = membership(len(tokens), [w.tokens for w in view.words]).astype(np.float64)
    rows = []
    for s in stats.steps:
        word_mass = s.token_mass @ words_of_tokens
        top = np.argsort(-word_mass, kind="stable")[:3]
        step_total = max(s.token_mass.sum(), 1e-30)
        rows.append([str(s.index)] + [f"{md(view.words[w].text)} ({_f(word_mass[w] / step_total)})" for w in top])
    lines += _table(["Step", "1st (share)", "2nd (share)", "3rd (share)"][: 1 + min(3, len(view.words))], rows)

    lines += ["## Step evolution", ""]
    named = two_experts(attrs, [s.expert for s in stats.steps])
    rows = [[str(s.index), _f(s.timestep, 2), _f(s.sigma)] + ([str(s.expert)] if named else [])
            + [_f(s.text_entropy), token_cell(s.top_token), _f(s.top_share), _f(s.padding), _f(s.change)]
            for s in stats.steps]
    lines += _table(["Step", "Timestep", "Sigma"] + (["Expert"] if named else [])
                    + ["Text entropy", "Top token", "Top share", "Padding mass", "Change"], rows)

    n_queries = stats.num_queries
    lines += ["## Attention entropy", "",
              f"Text entropy over the analysed steps: mean {_f(np.mean([s.text_entropy for s in stats.steps]))} "
              f"nats (uniform over the {len(tokens)} tokens: {_f(math.log(max(len(tokens), 1)))}).", "",
              f"Spatial entropy of each token's map (uniform over the {n_queries} locations: "
              f"{_f(math.log(max(n_queries, 1)))}):", ""]
    rows = [[token_cell(t), _f(spatial[t]), _f(spatial[t] / math.log(n_queries) if n_queries > 1 else 0.0)]
            for t in np.argsort(spatial, kind="stable")]
    lines += _table(["Token", "Spatial entropy", "Normalised (S_t / ln Q)"], rows)

    lines += ["## Maximum-attention token tracking", "",
              f"Winner stability: {_f(stats.winner_stability())}.", ""]
    rows = [[str(s.index), token_cell(s.top_token), _f(s.top_share), _f(s.win_share[s.top_token]),
             token_cell(int(np.argmax(s.win_share))), _f(float(s.win_share.max()))] for s in stats.steps]
    lines += _table(["Step", "Winner", "Winner share", "Locations it wins", "Token winning most locations",
                     "Its location share"], rows)
    modal = np.bincount(stats.modal_winner(), minlength=len(tokens)) / max(n_queries, 1)
    rows = [[token_cell(t), str(int(steps_won[t])), _f(win_share[t]), _f(modal[t])]
            for t in np.argsort(-win_share, kind="stable")]
    lines += _table(["Token", "Steps won", "Location win share", "Locations where it wins most often"], rows)

    lines += ["## Per-word maps and segmentation", "",
              f"Colour scale of the per-word overlays (--normalize): {md(analysis.options.normalize)}. The "
              f"segmentation does not depend on it: a location's winning word is the one with the most step-mean "
              f"attention there (see Segment share).", "",
              f"Word reduction (--word-reduction): {md(analysis.options.word_reduction)}: each word's map is the "
              f"{_REDUCTION_WORDS.get(analysis.options.word_reduction, md(analysis.options.word_reduction))} of its "
              f"sub-word tokens' maps (see Word map). The segmentation always takes the max over a word's tokens, "
              f"so that no word wins for being split into more tokens.", ""]
    lines += _video_note(view)
    rows = [[md(u.label), u.kind, split(u.tokens), _f(analysis.segment_share[i])]
            for i, u in enumerate(units)]
    lines += _table(["Word", "Kind", "Tokens", "Segment share"], rows)

    lines += ["## Padding mass", ""]
    padding = stats.padding_by_step_layer()
    lines += [f"Mean padding mass over the analysed steps and layers: {_f(float(padding.mean()))}.", ""]
    rows = [[block_label(b), _f(float(padding[:, i].mean())), _f(float(padding[:, i].min())),
             _f(float(padding[:, i].max()))] for i, b in enumerate(analysis.layer_blocks)]
    lines += _table(["Layer", "Mean", "Min over steps", "Max over steps"], rows)

    if analysis.layer_profile is not None:
        lines += ["## Layer profile", "", f"Share of each layer's word attention (each word's token masses reduced "
                  f"by {md(analysis.options.word_reduction)}, see Word map; rows sum to 1).", ""]
        rows = []
        for i, b in enumerate(analysis.layer_blocks):
            best = int(np.argmax(analysis.layer_profile[i]))
            rows.append([block_label(b), md(units[best].label), _f(float(analysis.layer_profile[i, best]))]
                        + [_f(float(v)) for v in analysis.layer_profile[i]])
        lines += _table(["Layer", "Top word", "Its share"] + [md(u.label) for u in units], rows)

    lines += ["## Head ranking", ""]
    heads = analysis.heads
    if heads:
        def head_rows(selected):
            return [[str(rank), block_label(h.layer_block), str(h.head), _f(h.entropy),
                     _f(h.padding), token_cell(h.top_token), _f(h.top_token_mass)] for rank, h in selected]

        head_header = ["Rank", "Layer", "Head", "Entropy", "Padding mass", "Top token", "Its mass"]
        ranked = list(enumerate(heads, start=1))
        lines += ["### Most focused heads", ""] + _table(head_header, head_rows(ranked[:TOP_HEADS]))
        lines += ["### Least focused heads", ""] + _table(head_header, head_rows(ranked[::-1][:TOP_HEADS]))
    return lines


def _prompt_rows(view) -> list[list[str]]:
    """The prompts, named for the branch analysed: on the uncond branch the text is the negative prompt."""
    attrs = view.attrs
    if view.branch == BRANCH_UNCOND:
        return [["Negative prompt (the uncond branch analysed here)", md(view.prompt)],
                ["Prompt (cond branch, not analysed here)", md(attrs.get(Attr.PROMPT))]]
    return [["Prompt", md(view.prompt)], ["Negative prompt", md(attrs.get(Attr.NEGATIVE_PROMPT))]]


def _where(winners: np.ndarray, unit: int) -> str:
    """Where a unit wins locations: its share of them, the part of the frame and the latent frames."""
    mask = np.asarray(winners) == unit
    if not mask.any():
        return "wins no location"
    frames, height, width = mask.shape
    _, ys, xs = np.nonzero(mask)
    y, x = (ys.mean() + 0.5) / height, (xs.mean() + 0.5) / width
    vertical = "top" if y < 0.4 else "bottom" if y > 0.6 else "middle"
    horizontal = "left" if x < 0.4 else "right" if x > 0.6 else "centre"
    spread = ys.std() / height + xs.std() / width
    place = "spread over the frame" if spread > 0.45 else (
        "centre" if (vertical, horizontal) == ("middle", "centre") else f"{vertical} {horizontal}".replace(
            "middle ", "").replace(" centre", ""))
    per_frame = mask.reshape(frames, -1).mean(axis=1)
    best = int(np.argmax(per_frame))
    return (f"wins {mask.mean():.0%} of the locations, mostly {place}, most in latent frame {best} "
            f"({per_frame[best]:.0%} of it)")


def summary(analysis: Analysis) -> list[str]:
    """Ten seconds' reading: the words that take the most attention and where, entropy and padding over the
    steps, and anything unusual."""
    view, stats, units = analysis.view, analysis.stats, analysis.units
    steps = stats.steps
    token_mass = stats.token_mass()
    total = max(float(token_mass.sum()), 1e-30)
    masses = [float(token_mass[list(u.tokens)].sum()) for u in units]
    order = sorted(range(len(units)), key=lambda u: -masses[u])[:3]
    lines = []
    if order:
        words = "; ".join(f"**{md(units[u].label)}** ({masses[u] / total:.0%} of the text attention, "
                          f"{_where(analysis.winners, u)})" for u in order)
        lines.append(f"- Most attended {'words' if units[0].kind == 'word' else 'tokens'}: {words}.")
    first, last = steps[0], steps[-1]
    uniform = math.log(max(len(view.tokens), 1))
    if len(steps) > 1:
        entropy = (f"text entropy (nats; uniform over the tokens: {uniform:.2f}) "
                   f"{_move(first.text_entropy, last.text_entropy, 2)}")
        padding = f"padding mass {_move(first.padding, last.padding, 3)}"
        lines.append(f"- Over steps {first.index}–{last.index}: {entropy}; {padding}.")
    else:
        lines.append(f"- One step analysed ({first.index}): text entropy {_f(first.text_entropy, 2)} nats "
                     f"(uniform: {uniform:.2f}), padding mass {_f(first.padding, 3)}.")
    unusual = []
    if view.missing_steps:
        unusual.append(f"{missing_sentence(view)}")
    if analysis.skipped:
        unusual.append(f"{len(analysis.skipped)} step(s) skipped as corrupt (NaN or out-of-range values): steps "
                       f"{ranges([e.step.index for e in analysis.skipped])}")
    written = np.asarray(view.video_written, dtype=bool)
    if written.size and not written.all():
        unusual.append(f"partial video: frames {ranges(np.flatnonzero(~written).tolist())} of {written.size} "
                       f"not recorded" if written.any() else "no video frame recorded")
    if view.status != "complete":
        unusual.append(f"status {md(view.status)}")
    if view.branch == BRANCH_UNCOND:
        unusual.append("this is the uncond branch: its text is the negative prompt")
    lines.append(f"- Unusual: {'; '.join(unusual)}." if unusual else "- Nothing unusual: every recorded step is "
                 "complete and every video frame written.")
    return lines


def _move(before: float, after: float, digits: int) -> str:
    """How a number moved from the first analysed step to the last, in words."""
    numbers = f"{_f(before, digits)} \u2192 {_f(after, digits)}"
    if not (np.isfinite(before) and np.isfinite(after)):
        return numbers
    if abs(after - before) <= 0.01 * max(abs(before), 1e-12):
        return f"stays flat ({numbers})"
    return f"{'falls' if after < before else 'rises'} ({numbers})"


def _skipped(analysis: Analysis) -> list[str]:
    """The steps --skip-corrupt left out, each with the check it failed."""
    if not analysis.skipped:
        return []
    lines = ["## Skipped steps", "",
             f"{len(analysis.skipped)} selected step(s) failed a check and are left out of every picture and "
             f"number (--skip-corrupt):", ""]
    lines += [f"- step {e.step.index} (position {e.step.position}): {md(e.reason)}" for e in analysis.skipped]
    return lines + [""]


def _video_note(view) -> list[str]:
    """Say when the maps are not laid over the recorded video, and how the missing frames are drawn."""
    written = np.asarray(view.video_written, dtype=bool)
    if written.all():
        return []
    how = (f"drawn as a neutral grey background labelled \"{NOT_RECORDED_LABEL}\" under the maps, never as black "
           "frames")
    if not written.any():
        return [f"The store holds no video frame ({md(view.video_written_source)}): every frame of the per-word "
                f"views is {how}.", ""]
    return [f"The video is partial: frames {ranges(np.flatnonzero(written).tolist())} of {written.size} exist; "
            f"frames {ranges(np.flatnonzero(~written).tolist())} were not recorded and are {how}.", ""]


def _pictures(analysis: Analysis, written: dict[str, Written], link) -> list[str]:
    """What every output wrote, in the registry's order, under its title."""
    lines = ["## Pictures", ""]
    for kind in registered():
        if kind.last or kind.name not in written:
            continue
        files = written[kind.name]
        if kind.report is not None:
            body = kind.report(analysis, files, link)
        elif isinstance(files, list):
            body = [f"- [{md(p.name)}]({link(p)})" for p in files]
        elif files.suffix.lstrip(".") in _PICTURE_SUFFIXES:
            body = [f"![{kind.title}]({link(files)})"]
        else:
            body = [f"[{md(files.name)}]({link(files)})"]
        how = HOW_TO_READ.get(kind.name)
        lines += [f"### {kind.title}", ""] + ([f"How to read this: {how}", ""] if how else []) + body + [""]
    return lines


def _render(ctx: Context) -> Path:
    return write_report(ctx.analysis, ctx.written, ctx.out / REPORT)


OUTPUT = Output("report", "Report", f"{REPORT} (rendered last: it links every other output's files)", _render,
                last=True)
