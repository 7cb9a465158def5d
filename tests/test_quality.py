"""Issue 12: every figure as precise, as current and as honest about its quality as its sources allow."""

from __future__ import annotations

import csv
import io
import json

import pytest
from openpyxl import load_workbook

from reportgen.cli import cli
from reportgen.formats import fmt_value

from .conftest import FIN_HEADER, REPO, write_mini

COMPANIES = {"xiaomi", "midea", "haier", "gree", "hisense", "nio", "li_auto", "xpeng", "seres", "transsion"}


@pytest.fixture(scope="module")
def tables():
    """The default workspace's metric tables, as JSON records by (quarter, basis) -> (company, metric)."""
    from click.testing import CliRunner

    out = {}
    for q in ("2024Q2", "2024Q3", "2024Q4", "2025Q2", "2025Q3"):
        for basis in ("quarter", "ytd"):
            res = CliRunner().invoke(
                cli, ["-C", str(REPO), "metrics", "--quarter", q, "--basis", basis, "--format", "json"]
            )
            assert res.exit_code == 0, res.output
            out[(q, basis)] = {(r["company"], r["metric"]): r for r in json.loads(res.stdout)}
    return out


# -- 1. precision: the more precise of two ways wins, and nothing shows more digits than its inputs support --------
def test_seres_2025q2_revenue_is_the_printed_quarter(tables):
    rev = tables[("2025Q2", "quarter")][("seres", "revenue")]
    # printed for the quarter: 432.55亿 = 43,255 +/- 0.5; derived: H1 62,401.72 - Q1 191.5亿 (19,150 +/- 5) = 43,251.72
    assert rev["value"] == pytest.approx(43_255.0) and rev["uncertainty"] == pytest.approx(0.5)
    assert "source_quarter" in rev["flags"] and "derived_ytd" not in rev["flags"]
    nm = tables[("2025Q2", "quarter")][("seres", "net_margin")]
    assert "derived_ytd" not in nm["flags"]  # its profit, too, is the quarter as printed, not H1 - a rounded Q1


def test_a_printed_quarter_beats_a_difference_no_more_precise_and_no_more_certain(tables):
    rev = tables[("2025Q3", "quarter")][("seres", "revenue")]
    # printed for the quarter: 481.33亿 = 48,133 +/- 0.5 (high confidence); derived: 9M 1105.34亿 (110,534 +/- 0.5)
    # - H1 62,401.72 (to the yuan) = 48,132.28 +/- 0.5: as precise, but a difference of a rounded figure
    assert rev["value"] == pytest.approx(48_133.0) and rev["uncertainty"] == pytest.approx(0.5)
    assert "source_quarter" in rev["flags"] and "derived_ytd" not in rev["flags"]
    # a printed quarter of lower confidence does not replace a difference as precise: Midea 2024Q2 revenue is
    # H1 - Q1 from the reports (high), not a secondary source's 1,111.72亿 (medium)
    midea = tables[("2024Q2", "quarter")][("midea", "revenue")]
    assert "derived_ytd" in midea["flags"] and midea["confidence"] == "high"


def test_gree_2024q3_profit_is_the_sources_quarter_not_a_difference_of_rounded_figures(tables):
    nm = tables[("2024Q3", "quarter")][("gree", "net_margin")]
    # 7.825bn printed for the quarter (+/-0.5m) beats 9M 21.961bn - H1 14.1bn (+/-50m) = 7,861
    rev = tables[("2024Q3", "quarter")][("gree", "revenue")]["value"]
    assert nm["value"] == pytest.approx(7_825 / rev, rel=1e-9)
    assert "source_quarter" in nm["flags"]


@pytest.mark.parametrize(
    "company,quarter_value",
    [("midea", 101_700_575 / 1000), ("haier", 67_348_647_820.80 / 1e6)],
    ids=["midea-thousand", "haier-yuan"],
)
def test_2024q3_revenue_is_the_companys_own_quarter(tables, company, quarter_value):
    rev = tables[("2024Q3", "quarter")][(company, "revenue")]
    # Midea: 101,700,575 thousand printed for Q3, not 9M 318,974,661k - H1 2,172.74亿 (+/-0.5m); Haier: its Q3 in yuan
    assert rev["value"] == pytest.approx(quarter_value, abs=1e-6)
    assert rev["uncertainty"] < 0.01


def test_midea_2024q4_rnd_derived_from_a_rounded_9m_figure_shows_no_false_digits(tables):
    rnd = tables[("2024Q4", "quarter")][("midea", "rnd_ratio")]
    # Q4 R&D = FY 16,232,771,000 yuan - 9M 11.4bn (+/-50m) = 4,832.8 +/- 50 million; revenue FY 407,149.6 - 9M
    # 318,974.661 = 88,174.9 million (exact to the thousand): ratio 5.48% +/- 0.057 pp
    assert rnd["value"] == pytest.approx((16_232.771 - 11_400) / (407_149.6 - 318_974.661), rel=1e-9)
    assert rnd["uncertainty"] == pytest.approx(50 / (407_149.6 - 318_974.661), rel=0.02)
    assert fmt_value(rnd["value"], "ratio", rnd["uncertainty"]) == "5.5%"
    assert fmt_value(4_832.771, "rmb_mn", 50.0) == "4,800"  # the amount itself: to the nearest 100 million


@pytest.mark.parametrize(
    "value,unit,uncertainty,shown",
    [
        (43_251.72, "rmb_mn", 5.0, "43,250"),  # +/-5 million: tens of millions
        (43_255.0, "rmb_mn", 0.5, "43,255"),
        (0.0667, "ratio", 0.0004, "6.7%"),
        (0.0667, "ratio", 0.002, "7%"),  # +/-0.2 pp: whole percent
        (1.2533, "growth", 0.0015, "+125%"),
        (0.0332, "pp", 0.0001, "+3.3 pp"),
    ],
)
def test_figures_are_shown_to_what_their_inputs_support(value, unit, uncertainty, shown):
    assert fmt_value(value, unit, uncertainty) == shown


# -- 2. restatements beyond CAS 18 ---------------------------------------------------------------------------------
def test_haier_2025q3_growth_says_its_base_is_as_first_published(tables):
    for basis in ("quarter", "ytd"):
        yoy = tables[("2025Q3", basis)][("haier", "revenue_yoy")]
        # Haier's 2025 reports restate 2024 (acquisition under common control); no restated 2024Q3 figure was found
        assert "published_base" in yoy["flags"], basis
        assert yoy["note"].startswith("compared with 2024Q3 as first published: a later report restated 2024")


def test_haier_h1_gross_margin_change_across_cas18_is_marked(tables):
    change = tables[("2025Q2", "ytd")][("haier", "gross_margin_yoy_pp")]
    assert change["value"] == pytest.approx(-0.0373, abs=0.0005)
    assert "policy_change" in change["flags"] and "cas_interp_18" in change["note"]


# -- 3. old basis marked ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("company", ["midea", "haier"])
def test_figures_before_cas18_carry_the_old_basis_mark(tables, company):
    sell = tables[("2024Q3", "ytd")][(company, "selling_expense_ratio")]
    assert sell["value"] is not None and "old_basis" in sell["flags"]
    later = tables[("2025Q3", "ytd")][(company, "selling_expense_ratio")]
    assert "old_basis" not in later["flags"]


# -- 4. confidence reaches the reader ------------------------------------------------------------------------------
def test_every_record_carries_confidence_and_the_marks_follow_it(tables):
    for table in tables.values():
        for rec in table.values():
            assert "confidence" in rec and rec["confidence"] in (None, "high", "medium", "low")
            if rec["value"] is not None and rec["confidence"] in ("medium", "low"):
                assert f"{rec['confidence']}_confidence" in rec["flags"]
    nio_sga = tables[("2024Q4", "quarter")][("nio", "selling_expense_ratio")]
    assert nio_sga["confidence"] == "low"  # the aggregator's Q4 2024 SG&A contradicts NIO's later release


def test_confidence_in_csv_and_xlsx(built):
    _, out = built
    rows = list(csv.DictReader(io.StringIO((out / "metrics.csv").read_text(encoding="utf-8"))))
    assert {r["confidence"] for r in rows} <= {"", "high", "medium", "low"} and "confidence" in rows[0]
    # the workbook carries each source figure's confidence on its Sources sheet, and m/l marks beside the values
    sources = load_workbook(out / "metrics.xlsx")["Sources"]
    header = [c.value for c in next(sources.iter_rows(max_row=1))]
    col = [h.lower() if isinstance(h, str) else h for h in header].index("confidence")
    seen = {row[col] for row in sources.iter_rows(min_row=2, values_only=True) if row[col]}
    assert seen and seen <= {"high", "medium", "low"} and "medium" in seen


def test_gree_h1_rnd_records_both_sources_and_why(runner):
    rows = list(csv.DictReader(open(REPO / "data/financials/gree.csv", encoding="utf-8")))
    rnd = [r for r in rows if (r["period"], r["basis"], r["label"]) == ("2025Q2", "6M", "研发费用")]
    assert len(rnd) == 1 and rnd[0]["value"] == "39.18" and rnd[0]["confidence"] == "medium"
    assert "30.24" in rnd[0]["note"] and "gilin.com.cn" in rnd[0]["note"] and "56.2亿" in rnd[0]["note"]


# -- 5. a peer with no figures ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("content", ["", FIN_HEADER], ids=["empty", "header-only"])
def test_a_peer_with_no_figures_is_a_warning_and_said_so(runner, tmp_path, content):
    ws = write_mini(tmp_path / "w", {"data/financials/gamma.csv": content})
    val = runner.invoke(cli, ["-C", str(ws), "validate"])
    assert val.exit_code == 0 and "Warning: data/financials/gamma.csv: no figures in this file" in val.stderr
    met = runner.invoke(cli, ["-C", str(ws), "metrics", "--quarter", "2025Q2"])
    assert met.exit_code == 0 and "Warning: data/financials/gamma.csv: no figures in this file" in met.stderr
    res = runner.invoke(cli, ["-C", str(ws), "build", "--quarter", "2025Q2", "--date", "2026-11-24"])
    assert res.exit_code == 0 and "data/financials/gamma.csv: no figures in this file" in res.stderr
    html = (ws / "output/2025Q2/briefing.html").read_text(encoding="utf-8")
    assert "no figures in the data" in html and "Gamma <span" in html
    # everywhere it stands (the scorecards, the group's bars and their text alternative), never "not yet reported"
    assert "not yet reported" not in html and html.count("no figures in the data") >= 4
    notes = json.loads((ws / "output/2025Q2/manifest.json").read_text())["notes"]
    assert "Gamma: no figures in the data, so left out of the comparisons." in notes
    assert not any("Gamma had not reported" in n for n in notes)


# -- 6. a complete 2025Q3 ------------------------------------------------------------------------------------------
def test_2025q3_has_revenue_for_all_ten_and_a_selling_ratio_for_at_least_nine(tables):
    q, ytd = tables[("2025Q3", "quarter")], tables[("2025Q3", "ytd")]
    assert {c for c, m in q if m == "revenue" and q[(c, m)]["value"] is not None} == COMPANIES
    selling = {
        c for c in COMPANIES if q[(c, "selling_expense_ratio")]["value"] or ytd[(c, "selling_expense_ratio")]["value"]
    }
    assert len(selling) >= 9, COMPANIES - selling


def test_every_new_figure_has_its_url_and_excerpt():
    for path in (REPO / "tools" / "research").glob("*.csv"):
        if path.name not in ("ashares.csv", "quarterly.csv"):
            continue
        for row in csv.DictReader(open(path, encoding="utf-8")):
            assert row["source_url"].startswith("http") and row["source_excerpt"].strip(), row
            digits = row["value"].lstrip("-").split(".")[0][:3]
            assert digits in row["source_excerpt"].replace(",", ""), (row["value"], row["source_excerpt"])


# -- 7. --quarter latest ------------------------------------------------------------------------------------------
def test_quarter_latest_is_the_quarter_run_would_pick(runner, tmp_path):
    ws = write_mini(tmp_path / "w", {})
    res = runner.invoke(cli, ["-C", str(ws), "metrics", "--quarter", "latest", "--format", "csv"])
    assert res.exit_code == 0, res.output
    assert "latest quarter: 2025Q2" in res.stderr and ",2025Q2," in res.stdout
