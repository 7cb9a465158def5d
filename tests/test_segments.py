"""The subject's segments against the peer group each matches (issue 18), and fiscal calendars that do not end on
calendar quarters: through the command line, with the default data and small workspaces."""

from __future__ import annotations

import csv
import json
import re

import pytest

from reportgen.cli import cli

from .conftest import FIN_HEADER, REPO, pdf_pages, write_mini


@pytest.fixture(scope="module")
def segment_records(tmp_path_factory):
    from click.testing import CliRunner

    res = CliRunner().invoke(cli, ["-C", str(REPO), "metrics", "--quarter", "2025Q2", "--segments", "--format", "json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def _row(ref: str) -> dict:
    path, line = ref.rsplit(":", 1)
    with open(REPO / path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))[int(line) - 2]


def test_segment_records_carry_their_segment_and_trace_to_their_rows(segment_records):
    seg = {(r["segment"], r["metric"]): r for r in segment_records if r["segment"]}
    assert {s for s, _m in seg} == {"smartphones", "iot", "ev", "internet"}
    assert all(r["company"] == "xiaomi" for r in segment_records if r["segment"])
    assert all("segment" in r for r in segment_records)  # null for the whole company
    ev = seg[("ev", "gross_margin")]
    assert ev["value"] == pytest.approx(0.264, abs=0.0005)  # printed as 26.4%
    rows = [_row(ref) for ref in ev["sources"]]
    assert {r["label"] for r in rows} == {"Revenue", "Gross profit"} and all(r["segment"] == "ev" for r in rows)
    assert {r["value"] for r in rows} == {"21263.3", "5620.9"} and all(r["source_url"] for r in rows)
    phones = seg[("smartphones", "revenue")]
    assert phones["value"] == pytest.approx(45_520, abs=50)  # "about 45.5 bn"
    assert _row(phones["sources"][0])["value"] == "45520.0"
    share = seg[("smartphones", "revenue_share")]
    assert share["value"] == pytest.approx(45_520 / 115_956, abs=0.001)


def test_a_comparison_across_the_ev_segments_new_definition_is_marked(segment_records):
    growth = next(r for r in segment_records if r["segment"] == "ev" and r["metric"] == "revenue_yoy")
    assert "definition_change" in growth["flags"]
    assert "as renamed from 2025Q1" in growth["note"] and "as defined in 2024" in growth["note"]
    phones = next(r for r in segment_records if r["segment"] == "smartphones" and r["metric"] == "revenue_yoy")
    assert "definition_change" not in phones["flags"]  # the same scope both years


def test_without_segments_the_table_is_as_before(runner):
    res = runner.invoke(cli, ["-C", str(REPO), "metrics", "--quarter", "2025Q2", "--format", "json"])
    assert res.exit_code == 0 and not any(r["segment"] for r in json.loads(res.stdout))


def test_the_ev_section_sets_the_segment_beside_the_ev_makers(built):
    _, out = built
    pages = [" ".join(p.split()) for p in pdf_pages(out / "briefing.pdf")]
    text = " ".join(pages)
    assert (
        "EV makers, like with like: in 2025Q2, the smart EV segment's gross margin of 26.4% is above NIO's 10.0%"
        in text
    )
    assert "Li Auto's 20.1% and XPeng's 17.3%" in text and "expense ratios exist only for the whole company" in text
    # one figure: the section metric's panels, and under them the gross margins with the segment beside the peers
    chart = next(p for p in pages if "Selling-expense ratio and gross margin: Xiaomi and EV makers" in p)
    assert "Gross margin, 2025Q2" in chart and "Gross margin, H1 2025" in chart
    assert "Xiaomi, smart EV segment" in chart and "26.4%" in chart
    for peer in ("NIO", "Li Auto", "XPeng"):
        assert peer in chart
    html = (out / "briefing.html").read_text(encoding="utf-8")
    assert re.search(r'<tr class=" segment"><th scope="row">Xiaomi, smart EV segment', html)


# -- fiscal calendars -------------------------------------------------------------------------------------------------
APPLE = """
    [apple]
    name = "Apple"
    name_zh = "苹果"
    ticker = "AAPL"
    exchange = "NASDAQ"
    standard = "US GAAP"
    currency = "RMB"
    fiscal_year_end = 9
    fiscal_calendar = "52-53-week"
    reporting = "quarterly"
"""


def _calendar_ws(tmp_path, period):
    ws = write_mini(tmp_path / "w", {
        "reportgen.toml": '[report]\nsubject = "alpha"\n[groups.peers]\nlabel = "Peers"\nmembers = ["beta", "apple"]\n',
        "data/financials/apple.csv": FIN_HEADER + f"{period},3M,Revenue,900,million,RMB,published,https://example.test/a\n",
    })  # fmt: skip
    reg = ws / "data/companies.toml"
    reg.write_text(reg.read_text(encoding="utf-8") + APPLE.replace("\n    ", "\n"), encoding="utf-8")
    return ws


def test_a_52_53_week_quarter_ending_28_june_is_aligned_to_q2_and_marked(runner, tmp_path):
    ws = _calendar_ws(tmp_path, "2025-06-28")
    res = runner.invoke(cli, ["-C", str(ws), "metrics", "--quarter", "2025Q2", "--format", "json"])
    assert res.exit_code == 0, res.output
    apple = next(r for r in json.loads(res.stdout) if r["company"] == "apple" and r["metric"] == "revenue")
    assert apple["value"] == 900 and "calendarized" in apple["flags"]


def test_a_fiscal_quarter_ending_15_may_is_refused_with_its_line(runner, tmp_path):
    ws = _calendar_ws(tmp_path, "2025-05-15")
    res = runner.invoke(cli, ["-C", str(ws), "validate"])
    assert res.exit_code == 1
    assert (
        "data/financials/apple.csv:2: period: the fiscal period ending 2025-05-15 does not end within 15 days of a "
        "calendar quarter end" in res.stderr
    )


def test_a_date_without_a_declared_calendar_says_how_to_declare_one(runner, tmp_path):
    ws = _calendar_ws(tmp_path, "2025-06-28")
    reg = ws / "data/companies.toml"
    reg.write_text(reg.read_text(encoding="utf-8").replace('fiscal_calendar = "52-53-week"\n', ""), encoding="utf-8")
    res = runner.invoke(cli, ["-C", str(ws), "validate"])
    assert res.exit_code == 1 and 'declare fiscal_calendar = "52-53-week"' in res.stderr


def test_the_global_anchors_example_converts_apple_and_tesla(runner, tmp_path):
    ws = tmp_path / "ga"
    res = runner.invoke(cli, ["init", str(ws), "--example", "global_anchors"])
    assert res.exit_code == 0, res.output
    assert runner.invoke(cli, ["-C", str(ws), "validate"]).exit_code == 0
    res = runner.invoke(cli, ["-C", str(ws), "metrics", "--quarter", "2025Q2", "--format", "json"])
    assert res.exit_code == 0, res.output
    recs = {(r["company"], r["metric"]): r for r in json.loads(res.stdout) if r["statistic"] is None}
    apple, tesla = recs[("apple", "revenue")], recs[("tesla", "revenue")]
    assert {"fx_converted", "calendarized"} <= set(apple["flags"]) and "fx_converted" in tesla["flags"]
    assert apple["value"] == pytest.approx(94_036 * 7.2313, rel=1e-4)  # USD 94,036 million at 2025Q2's average
    assert recs[("apple", "gross_margin")]["value"] == pytest.approx(43_718 / 94_036, abs=1e-4)
    again = runner.invoke(cli, ["init", str(ws), "--example", "global_anchors"])
    assert again.exit_code == 0 and (ws / "reportgen.toml").read_text().count("[groups.global_anchors]") == 1
    assert "added to" not in again.stdout and "wrote" not in again.stdout  # nothing left to add
    # into a workspace of one's own: its files keep what is there, gain the example's entries, and say so
    own = tmp_path / "own"
    assert runner.invoke(cli, ["init", str(own)]).exit_code == 0
    with open(own / "reportgen.toml", "a", encoding="utf-8") as fh:
        fh.write("# mine\n")
    res = runner.invoke(cli, ["init", str(own), "--example", "global_anchors"])
    assert res.exit_code == 0, res.output
    assert f"kept      {own / 'reportgen.toml'}" in res.stdout
    assert f"added to  {own / 'reportgen.toml'} (the global_anchors example's entries" in res.stdout
    assert f"added to  {own / 'data' / 'companies.toml'}" in res.stdout
    assert f"wrote     {own / 'reportgen.toml'}" not in res.stdout
    config = (own / "reportgen.toml").read_text()
    assert "# mine" in config and "[groups.global_anchors]" in config


def test_a_workspace_without_segments_works_as_before(runner, tmp_path):
    ws = write_mini(tmp_path / "w", {})
    res = runner.invoke(cli, ["-C", str(ws), "metrics", "--quarter", "2025Q2", "--segments", "--format", "json"])
    assert res.exit_code == 0, res.output
    recs = json.loads(res.stdout)
    assert recs and all(r["segment"] is None for r in recs)


def test_a_segment_naming_a_group_reportgen_toml_lacks_is_refused(runner, tmp_path):
    ws = write_mini(tmp_path / "w", {})
    reg = ws / "data/companies.toml"
    text = reg.read_text(encoding="utf-8").replace(
        "[beta]", '[[alpha.segments]]\nid = "ev"\nname = "EV segment"\nname_zh = "汽车"\ngroup = "ev_maker"\n\n[beta]'
    )
    reg.write_text(text, encoding="utf-8")
    res = runner.invoke(cli, ["-C", str(ws), "validate"])
    assert res.exit_code == 1
    assert "segment 'ev' of Alpha names the peer group 'ev_maker', which reportgen.toml does not have" in res.stderr
