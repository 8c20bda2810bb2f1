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


def test_markdown_escapes_ampersand_and_breaks_bare_urls():
    # an entity typed in the store shows as typed: it never becomes markup
    assert text.markdown("&lt;b&gt;") == "&amp;lt;b&amp;gt;"
    assert text.markdown("a & b") == "a &amp; b"
    for raw in ("see https://evil.example/x", "ftp://host", "www.evil.example"):
        escaped = text.markdown(raw)
        assert "://" not in escaped and "www." not in escaped
        assert escaped.replace("\u200b", "") == raw


def test_one_line_strips_control_characters():
    assert text.one_line("a\x1b[31mred\x07\x9b \u202eevil\n2") == "a[31mred evil 2"
    assert text.label("x\x1by") == "xy" and text.plain_label("x\x00y") == "xy"


def test_info_prints_no_terminal_escapes(tmp_path):
    from click.testing import CliRunner

    from analyzer.cli import main

    owners = np.zeros((1, 2, 2, 2), dtype=np.int64)
    write_store(tmp_path / "store", Synthetic(owners=owners, tokens=["\u2581a\x1b[2J", "</s>"],
                                             prompt="a\x1b]0;title\x07 cat"))
    result = CliRunner().invoke(main, ["info", str(tmp_path / "store")])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    # shown as escapes, so the reader sees that the store holds them
    assert "prompt:    a\\x1b]0;title\\x07 cat" in result.output
    assert "tokens:    2 (\u2581a\\x1b[2J </s>)" in result.output
