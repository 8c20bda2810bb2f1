"""Store text is untrusted: file names are sanitised, Markdown and matplotlib text escaped."""

from __future__ import annotations

import numpy as np
from synthetic_store import Synthetic, write_store

from analyzer import text
from analyzer.run import analyze


def test_file_stem_never_leaves_the_directory():
    for raw in ("../", "a/b", "..", "/etc/passwd", "\\..\\x", "", "\u2581", "\u732b"):
        stem = text.file_stem(raw, 7, "token")
        assert stem.startswith("token_007")
        assert "/" not in stem and "\\" not in stem and ".." not in stem


def test_markdown_and_label_escapes():
    assert text.markdown("a|b") == "a\\|b"
    assert text.markdown("*x* _y_ `z`") == "\\*x\\* \\_y\\_ \\`z\\`"
    assert text.markdown("<script>\nx") == "&lt;script&gt; x"
    assert text.label("$\\alpha$") == "\\$\\alpha\\$"


def test_hostile_tokens_and_prompt(tmp_path):
    """Tokens that look like paths, Markdown and mathtext: the run succeeds and nothing escapes its place."""
    tokens = ["\u2581../", "a/b", "\u2581$\\notacommand$", "\u2581|x*", "</s>"]
    owners = np.zeros((2, 2, 2, 4), dtype=np.int64)
    owners[:, 1] = 2
    prompt = "../ a/b $\\notacommand$ |x* <b>\nnew line"
    write_store(tmp_path / "store", Synthetic(owners=owners, tokens=tokens, prompt=prompt))
    out = tmp_path / "out"
    written = analyze(tmp_path / "store", out, progress=False, include_special=True)
    for path in written["words"]:
        assert path.resolve().parent == (out / "words").resolve()
    assert sorted(p.name for p in (out / "words").iterdir()) == sorted(p.name for p in written["words"])
    report = written["report"].read_text()
    prompt_row = next(line for line in report.splitlines() if line.startswith("| Prompt |"))
    assert prompt_row == r"| Prompt | ../ a/b \$\\notacommand\$ \|x\* &lt;b&gt; new line |"
    assert "<b>" not in report
    # the token table keeps its column count although a token holds a pipe
    token_rows = [line for line in report.splitlines() if line.startswith("| 4 | 3: ")]
    assert token_rows and token_rows[0].count(" | ") == 7
