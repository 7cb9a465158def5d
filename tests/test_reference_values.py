"""2025Q2 metrics of the default workspace against hand computations from shared/reference/.

Each expected value is written as the arithmetic on the figures printed in the reference notes (RMB, in the
unit the source prints), so a reviewer can check it against shared/reference/*.md without running anything.
Tolerance: 0.05 percentage points (0.0005 as a fraction) on ratios and growth.
"""

from __future__ import annotations

import json

import pytest

from reportgen.cli import cli

TOL = 0.0005


@pytest.fixture(scope="module")
def table():
    from click.testing import CliRunner

    out = {}
    for basis in ("quarter", "ytd"):
        res = CliRunner().invoke(
            cli, ["metrics", "--quarter", "2025Q2", "--basis", basis, "--format", "json"], catch_exceptions=False
        )
        assert res.exit_code == 0, res.output
        out[basis] = {(r["company"], r["metric"]): r for r in json.loads(res.stdout)}
    return out


def test_all_ten_companies_listed(table):
    companies = {c for c, _ in table["quarter"]}
    assert companies == {"xiaomi", "midea", "haier", "gree", "hisense", "nio", "li_auto", "xpeng", "seres", "transsion"}


QUARTER_CASES = [
    # Xiaomi 2025Q2, RMB'000: selling and marketing 7,777,971 / revenue 115,956,091 (xiaomi.md)
    ("xiaomi", "selling_expense_ratio", 7_777_971 / 115_956_091),
    # Xiaomi gross margin: gross profit 26,100,958 / revenue 115,956,091
    ("xiaomi", "gross_margin", 26_100_958 / 115_956_091),
    # Xiaomi R&D 7,763,377 / 115,956,091
    ("xiaomi", "rnd_ratio", 7_763_377 / 115_956_091),
    # Xiaomi revenue YoY: 115,956,091 / 88,887,8xx (2024Q2 revenue 88,887.8 mn) - 1
    ("xiaomi", "revenue_yoy", 115_956.091 / 88_887.8 - 1),
    # Midea Q2 = H1 - Q1 on 营业收入 (yuan): selling (23,052,554k - 11,874,752k) / (251,123,714k - 127,838,538k)
    ("midea", "selling_expense_ratio", (23_052_554 - 11_874_752) / (251_123_714 - 127_838_538)),
    # Midea Q2 gross margin: 1 - (186,786,157k - 95,307,291k) / (251,123,714k - 127,838,538k)
    ("midea", "gross_margin", 1 - (186_786_157 - 95_307_291) / (251_123_714 - 127_838_538)),
    # Haier Q2 revenue YoY on the restated base: (1564.94亿 - 79,118,173,583.72) /
    # (restated 1419.82亿 - restated 71,887,760,027.53) - 1
    ("haier", "revenue_yoy", (156_494e6 - 79_118.17358372e6) / (141_982e6 - 71_887.76002753e6) - 1),
    # NIO SG&A proxy: 3.96 bn (broker, rounded) / 19,008.7 mn; reference's 3,964.9 gives 20.86%
    ("nio", "selling_expense_ratio", 3_960 / 19_008.7),
    # Li Auto: SG&A 2.718 bn / 30,245.6 mn
    ("li_auto", "selling_expense_ratio", 2_718 / 30_245.6),
    # XPeng: SG&A 2.167 bn / 18.27 bn (company-rounded revenue)
    ("xpeng", "selling_expense_ratio", 2.167 / 18.27),
    # Transsion Q2 = H1 - Q1: (24.25亿 - 11.41亿) / (290.77亿 - 130.04亿)
    ("transsion", "selling_expense_ratio", (24.25 - 11.41) / (290.77 - 130.04)),
]


@pytest.mark.parametrize("company,metric,expected", QUARTER_CASES, ids=[f"{c}-{m}" for c, m, _ in QUARTER_CASES])
def test_single_quarter_matches_hand_computation(table, company, metric, expected):
    rec = table["quarter"][(company, metric)]
    assert rec["value"] == pytest.approx(expected, abs=TOL), rec


YTD_CASES = [
    # Xiaomi H1 2025: 14,977,788 / 227,249,428 = 6.591%
    ("xiaomi", "selling_expense_ratio", 14_977_788 / 227_249_428),
    # Midea H1 on 营业收入: 23,052,554 / 251,123,714 = 9.18%
    ("midea", "selling_expense_ratio", 23_052_554 / 251_123_714),
    # Gree H1 on 营业收入: 6,201,996,824.58 / 973.25亿 = 6.37%
    ("gree", "selling_expense_ratio", 6_201_996_824.58 / 97_325e6),
    # Haier H1: 158.17 / 1564.94 = 10.11%
    ("haier", "selling_expense_ratio", 158.17 / 1564.94),
    # Hisense H1: 48.69 / 493.40 = 9.87%
    ("hisense", "selling_expense_ratio", 48.69 / 493.40),
    # NIO H1 (XBRL 6M): 8,365,684 / 31,043,394 = 26.95%
    ("nio", "selling_expense_ratio", 8_365_684 / 31_043_394),
    # Li Auto H1 = Q1 + Q2: (2,531 + 2,718) / (25,926.8 + 30,245.6) = 9.34%
    ("li_auto", "selling_expense_ratio", (2_531 + 2_718) / (25_926.8 + 30_245.6)),
    # XPeng H1: (1,946 + 2,167) / 34,090 (reported 6M revenue) = 12.07%
    ("xpeng", "selling_expense_ratio", (1_946 + 2_167) / 34_090),
    # Transsion H1: 24.25 / 290.77 = 8.34%
    ("transsion", "selling_expense_ratio", 24.25 / 290.77),
    # Haier H1 gross margin 1 - 1144.38 / 1564.94, YoY against H1 2024 as first published 1 - 94.11 / 135.62
    ("haier", "gross_margin_yoy_pp", (1 - 1144.38 / 1564.94) - (1 - 94.11 / 135.62)),
]


@pytest.mark.parametrize("company,metric,expected", YTD_CASES, ids=[f"{c}-{m}" for c, m, _ in YTD_CASES])
def test_first_half_matches_hand_computation(table, company, metric, expected):
    rec = table["ytd"][(company, metric)]
    assert rec["value"] == pytest.approx(expected, abs=TOL), rec


def test_quarterly_reporters_first_half_is_sum_of_quarters(table):
    # Li Auto publishes no 6M statement: H1 revenue = 25,926.8 + 30,245.6 (RMB mn), flagged summed_quarters
    rec = table["ytd"][("li_auto", "revenue")]
    assert rec["value"] == pytest.approx(25_926.8 + 30_245.6, abs=0.05)
    assert "summed_quarters" in rec["flags"]
    # Xiaomi's own 6M column equals Q1 + Q2 (RMB'000): 111,293,337 + 115,956,091 = 227,249,428
    assert table["ytd"][("xiaomi", "revenue")]["value"] == pytest.approx((111_293_337 + 115_956_091) / 1e3, abs=0.001)


def test_ev_makers_selling_ratio_is_flagged_sga_proxy(table):
    for c in ("nio", "li_auto", "xpeng"):
        assert "sga_proxy" in table["quarter"][(c, "selling_expense_ratio")]["flags"]
    assert "sga_proxy" not in table["quarter"][("xiaomi", "selling_expense_ratio")]["flags"]


def test_a_share_quarters_are_flagged_derived(table):
    for c in ("midea", "haier", "gree", "hisense"):
        assert "derived_ytd" in table["quarter"][(c, "revenue")]["flags"], c
    # Transsion's quarter is printed (160.74亿, +/-0.5m) where H1 - Q1 of its rounded reports is +/-1m: printed wins
    assert "source_quarter" in table["quarter"][("transsion", "revenue")]["flags"]
    assert "derived_ytd" not in table["quarter"][("xiaomi", "revenue")]["flags"]
    # first half straight from the interim report: not derived
    assert "derived_ytd" not in table["ytd"][("midea", "revenue")]["flags"]


def test_haier_yoy_uses_restated_base(table):
    rec = table["quarter"][("haier", "revenue_yoy")]
    assert "restated" in rec["flags"]
    as_published = (156_494e6 - 79_118.17358372e6) / (135_620e6 - 68_977.5138901e6) - 1
    assert abs(rec["value"] - as_published) > 0.05  # the first-published base would give about +16 %


def test_missing_values_say_why(table):
    rec = table["quarter"][("gree", "selling_expense_ratio")]
    assert rec["value"] is None and "missing" in rec["flags"]
    assert "2025Q1" in rec["reason"] and "not reported" in rec["reason"]


def test_policy_change_is_marked_on_yoy(table):
    # Haier H1 2024 cost of sales as first published predates CAS Interpretation No. 18
    assert "policy_change" in table["ytd"][("haier", "gross_margin_yoy_pp")]["flags"]


def test_2024q2_works_and_yoy_says_why(runner):
    res = runner.invoke(cli, ["metrics", "--quarter", "2024Q2", "--format", "json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    recs = {(r["company"], r["metric"]): r for r in json.loads(res.stdout)}
    assert recs[("xiaomi", "revenue")]["value"] == pytest.approx(88_887.8, abs=0.1)
    yoy = recs[("xiaomi", "revenue_yoy")]
    assert yoy["value"] is None and "2023Q2" in yoy["reason"]


def test_stated_ratios_are_marked(table):
    # SERES publishes no expense amounts in the sources found; brokers and the press state the ratios
    # (tools/supplement.csv): Q2 2025 14.5 % (长江证券), H1 2025 14.33 % (重庆商报)
    q = table["quarter"][("seres", "selling_expense_ratio")]
    assert q["value"] == pytest.approx(0.145) and "stated_ratio" in q["flags"]
    h1 = table["ytd"][("seres", "selling_expense_ratio")]
    assert h1["value"] == pytest.approx(0.1433) and "stated_ratio" in h1["flags"]
    # SERES Q2 revenue = H1 62,401,722,813.80 yuan - Q1 191.5亿 (broker, rounded)
    # SERES 2025Q2 revenue as printed for the quarter, 432.55亿 (+/-0.5 million), not derived as H1 62,401.72 -
    # Q1 191.5亿 (19,150 +/-5 million, a broker's rounding) = 43,251.72: the more precise of two ways wins
    assert table["quarter"][("seres", "revenue")]["value"] == pytest.approx(43_255.0)
    assert table["quarter"][("seres", "revenue")]["uncertainty"] == pytest.approx(0.5)
