"""The Chinese edition (issue 14): the same briefing in Simplified Chinese, read back from the PDF, the catalogue
checked message by message, and the mail a list with language = "zh-CN" receives through a real SMTP server."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from pypdf import PdfReader

from reportgen.cli import cli
from reportgen.findings import DEFAULT_TEMPLATES, PLACEHOLDERS

from .conftest import REPO, pdf_pages, shared_build, write_mini
from .smtp_server import recording_smtp as smtp  # noqa: F401  (the SMTP server fixture)
from .smtp_server import smtp_env

LOCALE = REPO / "reportgen" / "locale"
PLACEHOLDER = re.compile(r"{(\w*)}")


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """The default workspace's 2025Q2 edition in Chinese and English, built by one command."""
    return shared_build(tmp_path_factory, "zh-CN,en", "--lang", "zh-CN,en") / "output" / "2025Q2"


def _text(pdf: Path) -> list[str]:
    return pdf_pages(pdf)


def test_the_chinese_pdf_reads_as_a_chinese_analyst_writes(both):
    pages = _text(both / "briefing.zh-CN.pdf")
    text = re.sub(r"\s+", "", "".join(pages))
    assert "销售费用率" in text and "小米集团" in text
    # a finding with Xiaomi's ratio and its comparison with a peer, and the first half where it holds
    assert "2025年第二季度，小米集团的销售费用率为6.7%，低于美的集团的9.1%" in text
    assert "2025年上半年，小米集团的销售费用率为6.6%，低于海尔智家的10.1%" in text
    assert "略高于格力电器的6.4%" in text
    assert "小米集团销售费用率（2025年第二季度为6.7%）低于除格力电器外的所有同行" in text  # the headline
    # Chinese conventions: 亿元 with two decimals, 个百分点, dates
    assert "1,159.56" in text and "个百分点" in text and "2026年11月24日" in text
    for number, page in enumerate(pages, 1):  # the running footer on every page
        assert f"第 {number} 页，共 {len(pages)} 页" in page
    # the text layer is characters, not boxes or private-use codes
    assert not re.search("[\ue000-\uf8ff\ufffd]", "".join(pages))


def test_both_languages_side_by_side_each_with_its_own_edition_id(both):
    m = json.loads((both / "manifest.json").read_text(encoding="utf-8"))
    assert list(m["languages"]) == ["zh-CN", "en"]
    zh, en = m["languages"]["zh-CN"], m["languages"]["en"]
    assert zh["edition"] != en["edition"] and zh["names"]["pdf"] == "briefing.zh-CN.pdf"
    assert {p.name for p in both.iterdir()} >= {"briefing.zh-CN.pdf", "briefing.en.pdf", "briefing.zh-CN.html"}
    assert not (both / "briefing.pdf").exists()  # with several languages every briefing is named by its language
    assert "is below every peer's but Gree's" in " ".join(_text(both / "briefing.en.pdf"))[:2000].replace("\n", " ")
    html = (both / "briefing.zh-CN.html").read_text(encoding="utf-8")
    assert '<html lang="zh-Hans">' in html


def _catalogue_problems(pot: Path, po: Path) -> list[str]:
    """Each message of the template without a Chinese translation, or whose translation drops or adds a
    placeholder."""
    with open(pot, "rb") as fh:
        template = read_po(fh)
    with open(po, "rb") as fh:
        chinese = read_po(fh)
    # a findings sentence may use the extra placeholders its rewording may use ({peers} beside {names})
    extra = {msgid: PLACEHOLDERS[key] for key, msgid in DEFAULT_TEMPLATES.items()}
    problems = []
    for m in template:
        if not m.id:
            continue
        t = chinese.get(m.id, m.context)
        if t is None or not t.string or t.fuzzy:
            problems.append(f"untranslated: {m.id!r}")
            continue
        theirs, ours = set(PLACEHOLDER.findall(m.id)), set(PLACEHOLDER.findall(t.string))
        allowed = theirs | extra.get(m.id, set())
        if not ours <= allowed or (theirs - ours and not ours - theirs):
            problems.append(f"placeholders differ: {m.id!r} -> {t.string!r}")
    return problems


def test_every_message_has_a_chinese_translation():
    assert _catalogue_problems(LOCALE / "reportgen.pot", LOCALE / "zh_CN/LC_MESSAGES/reportgen.po") == []


def test_the_catalogue_check_fails_on_a_missing_translation(tmp_path):
    po = (LOCALE / "zh_CN/LC_MESSAGES/reportgen.po").read_text(encoding="utf-8")
    broken = tmp_path / "reportgen.po"
    broken.write_text(
        po.replace('msgid "Selling-expense ratio"\nmsgstr "销售费用率"', 'msgid "Selling-expense ratio"\nmsgstr ""')
    )
    assert _catalogue_problems(LOCALE / "reportgen.pot", broken) == ["untranslated: 'Selling-expense ratio'"]
    broken.write_text(po.replace("{subject}{metric}（{period}为{value}）", "{subject}{metric}（为{value}）", 1))
    assert any(p.startswith("placeholders differ") for p in _catalogue_problems(LOCALE / "reportgen.pot", broken))


def test_no_english_sentence_of_the_catalogue_in_the_chinese_pdf(both):
    with open(LOCALE / "reportgen.pot", "rb") as fh:
        template = read_po(fh)
    text = " ".join(" ".join(_text(both / "briefing.zh-CN.pdf")).split())
    found = []
    for m in template:
        for piece in PLACEHOLDER.split(m.id)[::2]:  # the words between placeholders
            words = re.findall(r"[A-Za-z]{2,}", piece)
            if len(words) >= 3 and " ".join(piece.split()) in text:
                found.append(piece)
    assert found == []


def test_the_pdf_sets_all_text_in_a_cjk_font_but_the_superscript_marks(both):
    """Charts too: the Chinese edition's SVG text asks for Noto Sans CJK SC first. The marks (ᵃ, ˢ, ...) are
    modifier letters no CJK font has: they alone may come from another font."""

    from reportgen.model import SUPERSCRIPT

    chars: dict[str, set[str]] = {}
    for page in PdfReader(both / "briefing.zh-CN.pdf").pages:

        def seen(text, _cm, _tm, font, _size):
            if font and text.strip():
                name = str(font.get("/BaseFont")).split("+")[-1]
                chars.setdefault(name, set()).update(ch for ch in text if not ch.isspace())

        page.extract_text(visitor_text=seen)
    cjk = [f for f in chars if "CJK-SC" in f]
    assert cjk and sum(len(chars[f]) for f in cjk) > 300  # distinct characters: the whole text
    other = {f: c for f, c in chars.items() if f not in cjk}
    assert all(c <= set(SUPERSCRIPT.values()) for c in other.values()), other


@pytest.mark.slow
def test_a_chinese_list_gets_chinese_mail_with_the_chinese_pdf(runner, tmp_path, smtp):  # noqa: F811
    handler, port = smtp
    config = """
        [report]
        subject = "alpha"
        min_peers_reported = 1
        [groups.peers]
        label = "Peers"
        labels = { "zh-CN" = "同行" }
        members = ["beta", "gamma"]
        [mail.lists.board]
        to = ["ceo@example.test"]
        language = "zh-CN"
        subject = "{title}（{edition_date}）"
        [mail.lists.analysts]
        to = ["analyst@example.test"]
    """
    ws = write_mini(tmp_path / "w", {"reportgen.toml": config})
    env = smtp_env(port)
    res = runner.invoke(cli, ["-C", str(ws), "run", "--now", "2025-10-01T08:00"], env=env)
    assert res.exit_code == 0, res.output
    out = ws / "output" / "2025Q2"
    mails = {rcpts[0]: msg for rcpts, msg in handler.received}
    board, analysts = mails["ceo@example.test"], mails["analyst@example.test"]
    raw = board.as_bytes().decode("ascii")  # 7-bit clean: the Chinese subject is RFC 2047 encoded
    assert re.search(r"^Subject: =\?utf-8\?", raw, re.M | re.I)
    assert board["Subject"] == "阿尔法同行对标简报：2025年第二季度（2025年10月1日）"
    body = board.get_body(("plain",)).get_content()
    assert "主要结论" in body and "阿尔法" in body and "Key findings" not in body
    attached = next(board.iter_attachments())
    assert attached.get_filename() == "2025Q2-briefing.zh-CN.pdf"
    assert attached.get_content() == (out / "briefing.zh-CN.pdf").read_bytes()
    assert analysts["Subject"].startswith("Alpha vs peers: 2025Q2 briefing")
    assert next(analysts.iter_attachments()).get_content() == (out / "briefing.en.pdf").read_bytes()
    # each language is mailed once: a second run sends nothing
    res = runner.invoke(cli, ["-C", str(ws), "run", "--now", "2025-10-02T08:00"], env=env)
    assert res.exit_code == 0 and len(handler.received) == 2


def test_the_text_layer_copies_out_as_chinese_characters(both):
    """What a reader gets copying from the PDF (poppler's pdftotext): the characters, never boxes or private-use
    codes."""
    import shutil
    import subprocess

    assert shutil.which("pdftotext"), "pdftotext (poppler-utils) is needed; .ci/run installs it"
    text = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(both / "briefing.zh-CN.pdf"), "-"], capture_output=True, check=True
    ).stdout.decode("utf-8")
    assert "销售费用率" in text and "小米集团" in text and "第 1 页" in text
    odd = sorted({ch for ch in text if "\ue000" <= ch <= "\uf8ff" or ch in "\ufffd\u25a1"})
    assert odd == [], odd
