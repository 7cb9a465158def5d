"""The briefing does its job (issue 13): the answer on page 1, every comparison on the basis where it holds and like
for like, small numbers handled honestly, keys where the marks are, what changed since the last edition. Read
back from the PDF the reader gets, and from the mail a real SMTP server on loopback receives."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from reportgen.cli import cli
from reportgen.model import FLAGS, SUPERSCRIPT

from .conftest import pdf_pages, write_mini
from .smtp_server import recording_smtp as smtp  # noqa: F401  (the SMTP server fixture)
from .smtp_server import smtp_env

H1 = "the first half of 2025"
Q2 = "2025Q2"
GROUPS = ("Home appliances", "EV makers", "Smartphones")
#: the seed analysis: Xiaomi's selling-expense ratio against each peer (direction), and the basis where it holds
SEED = {
    "Midea": ("below", Q2),
    "Haier": ("below", H1),
    "Hisense Home Appliances": ("below", H1),
    "Gree": ("above", H1),  # slightly: 6.6 % against 6.4 %
    "NIO": ("below", Q2),
    "Li Auto": ("below", Q2),
    "XPeng": ("below", Q2),
    "SERES": ("below", Q2),
    "Transsion": ("below", Q2),
}


def _pages(pdf: Path) -> list[str]:
    return [re.sub(r"\s+", " ", p) for p in pdf_pages(pdf)]


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))


def _comparisons(text: str) -> dict[str, tuple[str, str, str, str]]:
    """The group findings as printed, parsed back: peer -> (word, period, metric, peer's value)."""
    found = {}
    for group in GROUPS:
        sentence = re.search(re.escape(group) + r": (.+?[%ᵃ-ᶻ])\. ", text).group(1)
        period = None
        for clause in sentence.split("; "):
            m = re.fullmatch(r"(?:in (?P<period>.+?), Xiaomi's|its) (?P<metric>.+?) of \S+ is (?P<rest>.+)", clause)
            period = m["period"] or period
            for part in re.split(r", (?=(?:slightly )?(?:above|below)|in line with)", m["rest"]):
                word, peers = re.fullmatch(r"((?:slightly )?(?:above|below)|in line with) (.+)", part).groups()
                for name, value in re.findall(r"([A-Z][A-Za-z ]*?)(?:'s|') (\S+?%)", peers):
                    found[name.strip()] = (word, period, m["metric"], value)
    return found


def test_page_one_carries_the_answer(built):
    _, out = built
    m = _manifest(out)
    page = _pages(out / "briefing.pdf")[0]
    # the headline states the conclusion with Xiaomi's ratio; it is generated from the comparisons below
    assert m["headline"] == (
        "Xiaomi's selling-expense ratio, 6.7% in 2025Q2, is below every peer's but Gree's, like for like"
    )
    assert m["headline"] in page
    # one sorted bar chart of every company with a value, on its basis, Xiaomi's SG&A ratio beside the proxies
    assert "Selling-expense ratio, the first half of 2025" in page
    for name in SEED:
        assert name in page, name
    assert "Xiaomi (SG&A)" in page and "SG&A used as a proxy" in page  # the key to its marks, under it
    # three takeaways: the gap to each group's median, a year ago, the caveat; the as-of date beside the edition
    assert re.search(r"Home appliances median \d+\.\d% \(selling-expense ratio\), −\d\.\d pp", page)
    assert re.search(r"EV makers median \d+\.\d% \(SG&A ratio\), −\d\.\d pp", page)
    assert "Smartphones: fewer than three peers, no median (Transsion 8.3%)" in page
    assert "A year ago: Xiaomi's selling-expense ratio was" in page and "Caveat:" in page
    # the as-of date beside the edition date, and how many source figures have no recorded date
    assert re.search(
        r"Data as of 2025-\d\d-\d\d \(the latest publication among the figures used\); \d+ source figures have no "
        r"recorded publication date · Edition of 2026-11-24",
        page,
    )
    assert "Key findings" not in page  # page 1 is the answer alone


def test_every_seed_comparison_is_a_sentence_with_its_direction_and_basis(built):
    _, out = built
    text = " ".join(_pages(out / "briefing.pdf")[1:3])
    found = _comparisons(text)
    assert set(found) == set(SEED)
    for peer, (direction, basis) in SEED.items():
        word, period, _metric, _value = found[peer]
        assert word.endswith(direction) and period == basis, (peer, found[peer])
    assert found["Gree"][0] == "slightly above"
    # the first halves the single quarter could not show
    assert [found[p][3].rstrip("ᵃᵇᶜᵈᵍˡᵐⁿᵒᵖʳˢᵗˣ") for p in ("Haier", "Gree", "Hisense Home Appliances")] == [
        "10.1%",
        "6.4%",
        "9.9%",
    ]
    # like for like: the SG&A reporters against Xiaomi's SG&A ratio, SERES's stated selling ratio against its own
    assert {p: found[p][2] for p in ("NIO", "Li Auto", "XPeng", "SERES")} == {
        "NIO": "SG&A ratio",
        "Li Auto": "SG&A ratio",
        "XPeng": "SG&A ratio",
        "SERES": "selling-expense ratio",
    }
    assert "Xiaomi's SG&A ratio of 8.1%" in text and "slightly below Li Auto's 9.0%" in text  # 0.9 pp, not 2.3


def test_small_numbers_are_not_dressed_up(built):
    _, out = built
    text = " ".join(_pages(out / "briefing.pdf"))
    assert not re.search(r"\b1 of 1\b", text) and not re.search(r"\bof 1\b", text)  # no rank of one
    assert not re.search(r"\d%\S* n=[12]\b", text)  # no median over fewer than three values
    assert re.search(r"(lowest|highest) of \d", text)  # a rank says its direction
    html = (out / "briefing.html").read_text(encoding="utf-8")
    smartphones = re.search(r'aria-label="Selling-expense ratio, Smartphones[^"]*"', html).group(0)
    assert "median" not in smartphones  # one peer: no median line
    assert "see Methodology" not in text and "--format json" not in text


def test_the_key_to_every_mark_is_on_the_page_that_uses_it(built):
    _, out = built
    back = {sup: mark for mark, sup in SUPERSCRIPT.items()}
    notes = {f.mark: f.note for f in FLAGS if f.mark}
    checked = 0
    for number, page in enumerate(_pages(out / "briefing.pdf"), 1):
        used = {back[ch] for ch in page if ch in back}  # marks drawn as superscripts: charts and findings
        bare = re.sub(r"\s", "", page)  # a note may wrap anywhere, even after the hyphen of "single-quarter"
        for mark in used:
            assert re.sub(r"\s", "", notes[mark])[:35] in bare, (number, mark)
            checked += 1
    assert checked >= 10


@pytest.mark.slow
def test_a_monthly_rerun_opens_with_what_changed_and_mails_it(runner, tmp_path, smtp):  # noqa: F811
    handler, port = smtp
    cfg = """
        [report]
        subject = "alpha"
        min_peers_reported = 1
        [groups.peers]
        label = "Peers"
        members = ["beta", "gamma"]
        [mail.lists.board]
        to = ["ceo@example.test"]
    """
    ws = write_mini(tmp_path / "w", {"reportgen.toml": cfg})

    def build(date):
        res = runner.invoke(cli, ["-C", str(ws), "build", "--quarter", "2025Q2", "--date", date])
        assert res.exit_code == 0, res.output
        return ws / "output" / "2025Q2"

    out = build("2026-10-01")
    assert "What changed" not in _pages(out / "briefing.pdf")[0] + " ".join(_pages(out / "briefing.pdf"))
    # Beta's next report restates its 2025Q2 selling expenses (HKD 54 -> 66 million), revenue as it was
    with open(ws / "data/financials/beta.csv", "a", encoding="utf-8") as fh:
        fh.write("2025Q2,3M,Revenue,600,million,HKD,restated,https://example.test/b-2025Q3\n")
        fh.write("2025Q2,3M,Selling and distribution expenses,-66,million,HKD,restated,https://example.test/b-2025Q3\n")
    out = build("2026-11-01")
    box = _manifest(out)["changes"]
    line = "Beta, Selling-expense ratio (2025Q2): 9.0% → 11.0% (restated in a later report)"
    assert line in box, box
    assert not any("Finding flipped" in item for item in box)  # still below Beta: a change of degree, no flip
    assert not any("SG&A" in item or "Admin" in item for item in box)  # figures the briefing does not show
    text = " ".join(_pages(out / "briefing.pdf"))
    assert "What changed since the edition of 2026-10-01" in text and line in text
    res = runner.invoke(cli, ["-C", str(ws), "send", "--quarter", "2025Q2"], env=smtp_env(port))
    assert res.exit_code == 0, res.output
    ((_, msg),) = handler.received
    body = msg.get_body(("plain",)).get_content()
    assert "What changed since the edition of 2026-10-01:" in body and f"- {line}" in body
    assert line in msg.get_body(("html",)).get_content().replace("&amp;", "&")


def test_each_trend_chart_is_titled_by_its_metric_and_names_the_subjects_sga_line(built):
    _, out = built
    text = " ".join(_pages(out / "briefing.pdf"))
    # one trend per peer group, each under the section metric's name (not the name of a line drawn in it)
    assert len(re.findall(r"Selling-expense ratio, the last 6 quarters", text)) == 3, text
    assert "(SG&A)ᵍ, the last" not in text
