"""Normalization on small synthetic workspaces: FX, de-cumulation, restatements, policy changes, fiscal years."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reportgen.cli import cli
from reportgen.errors import PeriodError
from reportgen.model import Company, ReportedRow
from reportgen.normalize import QUARTER, YTD, Normalizer
from reportgen.periods import Quarter

from .conftest import FIN_HEADER, write_mini


def _metrics(runner, ws, quarter="2025Q2", basis="quarter"):
    res = runner.invoke(
        cli,
        ["-C", str(ws), "metrics", "--quarter", quarter, "--basis", basis, "--format", "json"],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    return {(r["company"], r["metric"]): r for r in json.loads(res.stdout)}


def test_hkd_peer_is_converted_at_period_average_rate(runner, mini_ws):
    m = _metrics(runner, mini_ws)
    # Beta 2025Q2: HKD 600 mn x 0.90 RMB/HKD = RMB 540 mn
    assert m[("beta", "revenue")]["value"] == pytest.approx(600 * 0.90)
    assert "fx_converted" in m[("beta", "revenue")]["flags"]
    # the ratio is currency-free: 54 / 600
    assert m[("beta", "selling_expense_ratio")]["value"] == pytest.approx(54 / 600)
    # YoY in RMB: (600 x 0.90) / (500 x 0.91) - 1
    assert m[("beta", "revenue_yoy")]["value"] == pytest.approx(600 * 0.90 / (500 * 0.91) - 1)


def test_ytd_reporter_quarter_is_derived(runner, mini_ws):
    m = _metrics(runner, mini_ws)
    # Gamma Q2 = H1 7.5亿 - Q1 3亿 = RMB 450 mn; selling (0.66亿 - 0.30亿) / 4.5亿
    assert m[("gamma", "revenue")]["value"] == pytest.approx(450.0)
    assert m[("gamma", "selling_expense_ratio")]["value"] == pytest.approx(36 / 450)
    assert "derived_ytd" in m[("gamma", "selling_expense_ratio")]["flags"]
    ytd = _metrics(runner, mini_ws, basis="ytd")
    assert ytd[("gamma", "selling_expense_ratio")]["value"] == pytest.approx(66 / 750)
    assert ytd[("alpha", "revenue")]["value"] == pytest.approx(1900.0)  # 900 + 1000, summed quarters
    assert "summed_quarters" in ytd[("alpha", "revenue")]["flags"]


def test_missing_fx_rate_is_refused(runner, tmp_path):
    ws = write_mini(tmp_path / "w", {"data/fx.csv": "currency,period,basis,rmb_per_unit,source_url\n"})
    res = runner.invoke(cli, ["-C", str(ws), "metrics", "--quarter", "2025Q2"])
    assert res.exit_code == 1
    assert "data/financials/beta.csv:2: currency: no HKD rate for 2024Q2 3M" in res.stderr


def _company(**kw):
    base = dict(
        id="c",
        name="C",
        name_zh="C",
        ticker="C",
        exchange="X",
        standard="CAS",
        currency="RMB",
        fiscal_year_end=12,
        reporting="ytd",
        sector="",
    )
    base.update(kw)
    return Company(**base)


def _row(period, basis, item, value, vintage="published", line=2):
    return ReportedRow(
        "c",
        Quarter.parse(period),
        basis,
        item,
        item,
        value,
        "million",
        "RMB",
        vintage,
        source_url="u",
        file="f.csv",
        line=line,
    )


def test_restated_and_published_are_never_subtracted_across():
    rows = [_row("2024Q1", "3M", "revenue", 100.0), _row("2024Q2", "6M", "revenue", 230.0, "restated")]
    n = Normalizer({"c": _company()}, rows, {})
    fig = n.get("c", Quarter(2024, 2), QUARTER, "revenue")
    assert fig.missing and "vintages" in fig.reason
    # with both vintages present for both periods, the restated pair is used
    rows += [_row("2024Q1", "3M", "revenue", 110.0, "restated"), _row("2024Q2", "6M", "revenue", 200.0)]
    n = Normalizer({"c": _company()}, rows, {})
    assert n.get("c", Quarter(2024, 2), QUARTER, "revenue").value == pytest.approx(230.0 - 110.0)
    assert n.get("c", Quarter(2024, 2), QUARTER, "revenue", "published").value == pytest.approx(100.0)


def test_no_derivation_across_a_policy_change():
    from reportgen.model import PolicyChange

    c = _company(policy_changes=(PolicyChange("interp18", "t", Quarter(2024, 4), ("selling_expenses",)),))
    rows = [
        _row("2024Q3", "9M", "selling_expenses", 30.0),
        _row("2024Q4", "12M", "selling_expenses", 38.0),
        _row("2024Q3", "9M", "revenue", 300.0),
        _row("2024Q4", "12M", "revenue", 400.0),
    ]
    n = Normalizer({"c": c}, rows, {})
    sell = n.get("c", Quarter(2024, 4), QUARTER, "selling_expenses")
    assert sell.missing and "interp18" in sell.reason
    assert n.get("c", Quarter(2024, 4), QUARTER, "revenue").value == pytest.approx(100.0)  # unaffected item


def test_fiscal_year_ending_june_aligns_to_calendar_quarters():
    c = _company(fiscal_year_end=6)
    # fiscal Q1 = calendar Q3 (Jul-Sep), fiscal H1 ends in calendar Q4
    rows = [_row("2024Q3", "3M", "revenue", 100.0), _row("2024Q4", "6M", "revenue", 250.0)]
    n = Normalizer({"c": c}, rows, {})
    assert n.get("c", Quarter(2024, 4), QUARTER, "revenue").value == pytest.approx(150.0)
    # its year to date runs from July: not the calendar year to date the others show
    ytd = n.get("c", Quarter(2024, 4), YTD, "revenue")
    assert ytd.missing and "fiscal year ends in month 6" in ytd.reason


def test_fiscal_year_not_on_a_quarter_end_is_refused():
    with pytest.raises(PeriodError, match="month 1"):
        Normalizer({"c": _company(fiscal_year_end=1)}, [_row("2024Q3", "3M", "revenue", 1.0)], {})


def test_fiscal_year_refusal_reaches_the_cli(runner, tmp_path):
    ws = write_mini(tmp_path / "w", {})
    reg = (
        (ws / "data/companies.toml").read_text().replace('reporting = "ytd"', 'reporting = "ytd"\nfiscal_year_end = 2')
    )
    (ws / "data/companies.toml").write_text(reg)
    res = runner.invoke(cli, ["-C", str(ws), "metrics", "--quarter", "2025Q2"])
    assert res.exit_code == 1
    assert "data/companies.toml" in res.stderr and "fiscal_year_end" in res.stderr and "Traceback" not in res.output


@given(st.lists(st.integers(min_value=-(10**9), max_value=10**9), min_size=1, max_size=4))
def test_decumulate_then_cumulate_gives_the_input(quarters):
    """Cumulative sums of single quarters, de-cumulated by the normalizer, add back up to the input."""
    basis = ["3M", "6M", "9M", "12M"]
    rows, total = [], 0
    for i, v in enumerate(quarters):
        total += v
        rows.append(_row(f"2025Q{i + 1}", basis[i], "operating_profit", float(total), line=i + 2))
    n = Normalizer({"c": _company()}, rows, {})
    singles = [n.get("c", Quarter(2025, i + 1), QUARTER, "operating_profit").value for i in range(len(quarters))]
    assert singles == pytest.approx([float(v) for v in quarters])
    assert sum(singles) == pytest.approx(n.get("c", Quarter(2025, len(quarters)), YTD, "operating_profit").value)


def test_source_single_quarter_used_when_cumulative_missing(runner, tmp_path):
    ws = write_mini(
        tmp_path / "w",
        {
            "data/financials/gamma.csv": FIN_HEADER
            + """
        2025Q2,6M,营业收入,7.5,hundred_million,RMB,published,https://example.test/g
        2025Q2,3M,营业收入,4.4,hundred_million,RMB,published,https://example.test/g
    """
        },
    )
    m = _metrics(runner, ws)
    assert m[("gamma", "revenue")]["value"] == pytest.approx(440.0)
    assert "source_quarter" in m[("gamma", "revenue")]["flags"]


def test_growth_within_a_restated_year_compares_like_with_like():
    # Q2 exists as restated (from a later report) and as first published; Q3 only as first published.
    rows = [
        _row("2024Q1", "3M", "revenue", 100.0),
        _row("2024Q2", "6M", "revenue", 210.0),
        _row("2024Q1", "3M", "revenue", 104.0, "restated", 5),
        _row("2024Q2", "6M", "revenue", 218.0, "restated", 6),
        _row("2024Q3", "9M", "revenue", 321.0, line=7),
    ]
    from reportgen.metrics import BY_ID, compute_one

    n = Normalizer({"c": _company()}, rows, {})
    qoq = compute_one(n, "c", Quarter(2024, 3), QUARTER, BY_ID["revenue_qoq"])
    # Q3 = 321 - 210 (first published); against Q2 first published 210 - 100, not restated 218 - 104
    assert qoq.value == pytest.approx((321 - 210) / (210 - 100) - 1)


def test_prior_year_restated_but_only_first_published_at_hand_is_marked():
    rows = [
        _row("2024Q1", "3M", "revenue", 100.0),
        _row("2023Q4", "3M", "revenue", 90.0, "restated", 3),
        _row("2025Q1", "3M", "revenue", 120.0, line=4),
        _row("2024Q1", "3M", "operating_profit", 5.0, line=5),
    ]
    from reportgen.metrics import BY_ID, compute_one

    n = Normalizer({"c": _company(reporting="quarterly")}, rows, {})
    # 2024 was restated (by the 2024Q1 restated comparative of another item? no: here 2023Q4 was restated)
    assert "policy_change" not in compute_one(n, "c", Quarter(2025, 1), QUARTER, BY_ID["revenue_yoy"]).flags
    rows.append(_row("2024Q1", "3M", "operating_profit", 6.0, "restated", 6))  # a later report restated 2024
    n = Normalizer({"c": _company(reporting="quarterly")}, rows, {})
    yoy = compute_one(n, "c", Quarter(2025, 1), QUARTER, BY_ID["revenue_yoy"])
    # compared with 2024 as first published, although a later report restated 2024: marked, with the reason
    assert yoy.value == pytest.approx(0.2) and "published_base" in yoy.flags and "policy_change" not in yoy.flags
    assert str(yoy.note) == (
        "compared with 2024Q1 as first published: a later report restated 2024, and the restated figure was not found"
    )


def test_zero_revenue_gives_a_reason_not_a_traceback(runner, tmp_path):
    ws = write_mini(
        tmp_path / "w",
        {
            "data/financials/gamma.csv": FIN_HEADER
            + """
        2025Q1,3M,营业收入,300000000,yuan,RMB,published,https://example.test/g
        2025Q1,3M,营业成本,100000000,yuan,RMB,published,https://example.test/g
        2025Q2,6M,营业收入,3,hundred_million,RMB,published,https://example.test/g
        2025Q2,6M,营业成本,2,hundred_million,RMB,published,https://example.test/g
    """
        },
    )
    m = _metrics(runner, ws)
    assert m[("gamma", "revenue")]["value"] == pytest.approx(0.0)
    assert m[("gamma", "gross_margin")]["value"] is None
    assert m[("gamma", "gross_margin")]["reason"] == "revenue for 2025Q2 is not positive, so no ratio to it"


def test_lowercase_period_is_read_not_dropped(runner, tmp_path):
    ws = write_mini(
        tmp_path / "w",
        {
            "data/financials/gamma.csv": FIN_HEADER
            + """
        2025q1,3M,营业收入,300000000,yuan,RMB,published,https://example.test/g
        2025q2,6M,营业收入,7.5,hundred_million,RMB,published,https://example.test/g
    """
        },
    )
    assert _metrics(runner, ws)[("gamma", "revenue")]["value"] == pytest.approx(450.0)
