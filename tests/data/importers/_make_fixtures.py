"""Rebuild the importer fixtures in this folder from data/financials/*.csv.

Not run by the test suite (pytest collects only test_*.py). It needs akshare 1.19.5 and tushare 1.4.29 besides the
project's own pandas/openpyxl, e.g. in a scratch venv:

    python3 -m venv /tmp/fmtvenv && /tmp/fmtvenv/bin/pip install akshare==1.19.5 tushare==1.4.29 pandas openpyxl
    TZ=Asia/Shanghai /tmp/fmtvenv/bin/python tests/data/importers/_make_fixtures.py

The akshare and tushare frames are built by the libraries' own functions: only their HTTP call
(`requests.get` / `requests.post` inside the library module) is replaced by a payload shaped like the provider's
response and filled with data/ figures. So column order, dtypes and de-duplication are exactly what the library does.
Every figure is taken by file line from data/financials/<company>.csv, checked against its period/basis/label, and
converted by its unit only (see README.md here for the table). Nothing else in the repository is touched.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from unittest import mock

import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
FIN = ROOT / "data" / "financials"
SCALE = {
    "yuan": Decimal(1),
    "thousand": Decimal(1000),
    "ten_thousand": Decimal(10) ** 4,
    "million": Decimal(10) ** 6,
    "hundred_million": Decimal(10) ** 8,
    "billion": Decimal(10) ** 9,
}


def fig(company: str, line: int, period: str, basis: str, label: str, expense: bool = False) -> Decimal:
    """The figure on file line `line` of data/financials/<company>.csv, in yuan (unit conversion only).

    `expense=True` gives the magnitude, for providers that print an expense as a positive amount while data/ keeps
    some statements' negative presentation (see README.md); the magnitude itself is never changed.
    """
    rows = list(csv.reader((FIN / f"{company}.csv").open(encoding="utf-8")))
    rec = dict(zip(rows[0], rows[line - 1])) if line <= len(rows) else {}
    found = (rec.get("period"), rec.get("basis"), rec.get("label"))
    if found != (period, basis, label):
        # rows added to data/ since move lines: the one row with this period, basis and label is the same figure
        same = [dict(zip(rows[0], r)) for r in rows[1:] if tuple(r[:3]) == (period, basis, label)]
        if len(same) != 1:
            raise ValueError(f"{company}.csv:{line} is {found}, expected {(period, basis, label)}")
        rec = same[0]
    value = Decimal(rec["value"]) * SCALE[rec["unit"]]
    return abs(value) if expense else value


def num(d: Decimal) -> int | float:
    return int(d) if d == d.to_integral_value() else float(d)


class FakeResponse:
    def __init__(self, payload: dict) -> None:
        self._payload = payload
        self.text = json.dumps(payload, ensure_ascii=False)

    def __bool__(self) -> bool:
        return True

    def json(self) -> dict:
        return self._payload


def epoch(day: str, hour: int = 20) -> int:
    return int(datetime.strptime(day, "%Y%m%d").replace(hour=hour).timestamp())


# ---------------------------------------------------------------- akshare: stock_financial_report_sina (利润表)
SINA_TITLES = [
    "营业总收入",
    "营业收入",
    "营业总成本",
    "营业成本",
    "营业税金及附加",
    "销售费用",
    "管理费用",
    "研发费用",
    "财务费用",
    "营业利润",
    "利润总额",
    "净利润",
    "归属于母公司所有者的净利润",
    "少数股东损益",
    "基本每股收益",
    "稀释每股收益",
]
NP_PARENT = "归属于上市公司股东的净利润"  # data/'s label for what Sina titles 归属于母公司所有者的净利润


def midea_cumulative() -> dict[str, dict[str, Decimal]]:
    """Midea's cumulative (year-to-date) figures per report date, Sina item title -> yuan."""
    m = "midea"
    return {
        "20250930": {
            "营业总收入": fig(m, 51, "2025Q3", "9M", "营业总收入"),
            "营业收入": fig(m, 53, "2025Q3", "9M", "营业收入"),
            "营业成本": fig(m, 52, "2025Q3", "9M", "营业成本"),
            "销售费用": fig(m, 54, "2025Q3", "9M", "销售费用"),
            "管理费用": fig(m, 50, "2025Q3", "9M", "管理费用"),
            "研发费用": fig(m, 49, "2025Q3", "9M", "研发费用"),
            "归属于母公司所有者的净利润": fig(m, 48, "2025Q3", "9M", NP_PARENT),
        },
        "20250630": {
            "营业总收入": fig(m, 42, "2025Q2", "6M", "营业总收入"),
            "营业收入": fig(m, 44, "2025Q2", "6M", "营业收入"),
            "营业成本": fig(m, 43, "2025Q2", "6M", "营业成本"),
            "销售费用": fig(m, 45, "2025Q2", "6M", "销售费用"),
            "管理费用": fig(m, 40, "2025Q2", "6M", "管理费用"),
            "研发费用": fig(m, 39, "2025Q2", "6M", "研发费用"),
            "营业利润": fig(m, 41, "2025Q2", "6M", "营业利润"),
            "归属于母公司所有者的净利润": fig(m, 38, "2025Q2", "6M", NP_PARENT),
        },
        "20250331": {
            "营业总收入": fig(m, 32, "2025Q1", "3M", "营业总收入"),
            "营业收入": fig(m, 34, "2025Q1", "3M", "营业收入"),
            "营业成本": fig(m, 33, "2025Q1", "3M", "营业成本"),
            "销售费用": fig(m, 35, "2025Q1", "3M", "销售费用"),
            "管理费用": fig(m, 31, "2025Q1", "3M", "管理费用"),
            "研发费用": fig(m, 30, "2025Q1", "3M", "研发费用"),
            "归属于母公司所有者的净利润": fig(m, 29, "2025Q1", "3M", NP_PARENT),
        },
        "20241231": {
            "营业总收入": fig(m, 25, "2024Q4", "12M", "营业总收入"),
            "营业收入": fig(m, 27, "2024Q4", "12M", "营业收入"),
            "营业成本": fig(m, 26, "2024Q4", "12M", "营业成本"),
            "销售费用": fig(m, 28, "2024Q4", "12M", "销售费用"),
            "管理费用": fig(m, 24, "2024Q4", "12M", "管理费用"),
            "研发费用": fig(m, 23, "2024Q4", "12M", "研发费用"),
            "净利润": fig(m, 21, "2024Q4", "12M", "净利润"),
            "归属于母公司所有者的净利润": fig(m, 22, "2024Q4", "12M", NP_PARENT),
        },
        "20240930": {
            "营业总收入": fig(m, 18, "2024Q3", "9M", "营业总收入"),
            "营业收入": fig(m, 19, "2024Q3", "9M", "营业收入"),
            "销售费用": fig(m, 20, "2024Q3", "9M", "销售费用"),
            "管理费用": fig(m, 17, "2024Q3", "9M", "管理费用"),
            "研发费用": fig(m, 16, "2024Q3", "9M", "研发费用"),
            "归属于母公司所有者的净利润": fig(m, 15, "2024Q3", "9M", NP_PARENT),
        },
        "20240630": {
            "营业总收入": fig(m, 10, "2024Q2", "6M", "营业总收入"),
            "营业收入": fig(m, 11, "2024Q2", "6M", "营业收入"),
            "销售费用": fig(m, 12, "2024Q2", "6M", "销售费用"),
            "管理费用": fig(m, 8, "2024Q2", "6M", "管理费用"),
            "研发费用": fig(m, 7, "2024Q2", "6M", "研发费用"),
            "营业利润": fig(m, 9, "2024Q2", "6M", "营业利润"),
            "归属于母公司所有者的净利润": fig(m, 6, "2024Q2", "6M", NP_PARENT),
        },
        "20240331": {
            "营业收入": fig(m, 3, "2024Q1", "3M", "营业收入"),
            "归属于母公司所有者的净利润": fig(m, 2, "2024Q1", "3M", NP_PARENT),
        },
    }


# Announcement dates (non-figure metadata). Taken from the dates in data/'s source URLs where there is one
# (20240429, 20241030, 20250429, 20251030); the others are plausible, not verified.
MIDEA_PUBLISHED = {
    "20250930": "20251030",
    "20250630": "20250829",
    "20250331": "20250429",
    "20241231": "20250329",
    "20240930": "20241030",
    "20240630": "20240830",
    "20240331": "20240429",
}


def sina_payload(figures: dict[str, dict[str, Decimal]], published: dict[str, str]) -> dict:
    report_list = {}
    for date, values in figures.items():
        report_list[date] = {
            "data": [
                {"item_title": t, "item_value": None if t not in values else f"{values[t]:.6f}"} for t in SINA_TITLES
            ],
            # as Sina writes them (seen in a real answer: 定期报告, 未审计; 已审计 for an audited report)
            "data_source": "定期报告",
            "is_audit": "已审计" if date.endswith("1231") else "未审计",
            "publish_date": published[date],
            "rCurrency": "CNY",
            "rType": "合并期末",
            "update_time": epoch(published[date]),
        }
    return {"result": {"data": {"report_date": [{"date_value": d} for d in figures], "report_list": report_list}}}


def build_sina() -> pd.DataFrame:
    from akshare.stock_fundamental import stock_finance_sina

    payload = sina_payload(midea_cumulative(), MIDEA_PUBLISHED)
    with mock.patch.object(stock_finance_sina.requests, "get", return_value=FakeResponse(payload)):
        return stock_finance_sina.stock_financial_report_sina(stock="sz000333", symbol="利润表")


# -------------------------------------------------------- akshare: stock_financial_hk_report_em (利润表, 报告期)
HK_ITEMS = [  # (STD_ITEM_CODE, STD_ITEM_NAME, data/ label, is an expense printed as a positive amount)
    ("004001001", "营业额", "Revenue", False),
    ("004005001", "营运支出", "Cost of sales", True),
    ("004007999", "毛利", "Gross profit", False),
    ("004010003", "销售及分销费用", "Selling and marketing expenses", True),
    ("004010004", "行政开支", "Administrative expenses", True),
    ("004010999", "经营溢利", "Operating profit", False),
    ("004012999", "除税后溢利", "Profit for the period", False),
    ("004025002", "股东应占溢利", "Profit attributable to owners of the Company", False),
]
XIAOMI_LINES = {  # REPORT_DATE -> (period, basis, {data label: file line}, DATE_TYPE_CODE, REPORT_TYPE)
    "2025-06-30": (
        "2025Q2",
        "6M",
        {
            "Revenue": 99,
            "Cost of sales": 93,
            "Gross profit": 94,
            "Selling and marketing expenses": 100,
            "Administrative expenses": 92,
            "Operating profit": 95,
            "Profit for the period": 97,
            "Profit attributable to owners of the Company": 96,
        },
        "002",
        "中报",
    ),
    "2025-03-31": (
        "2025Q1",
        "3M",
        {
            "Revenue": 79,
            "Cost of sales": 73,
            "Gross profit": 74,
            "Selling and marketing expenses": 80,
            "Administrative expenses": 72,
            "Operating profit": 75,
            "Profit for the period": 77,
            "Profit attributable to owners of the Company": 76,
        },
        "003",
        "一季报",
    ),
    "2024-06-30": (
        "2024Q2",
        "6M",
        {
            "Revenue": 30,
            "Cost of sales": 24,
            "Gross profit": 25,
            "Selling and marketing expenses": 31,
            "Administrative expenses": 23,
            "Operating profit": 26,
            "Profit for the period": 28,
            "Profit attributable to owners of the Company": 27,
        },
        "002",
        "中报",
    ),
}


def hk_rows() -> tuple[list[dict], list[dict]]:
    report_list, rows = [], []
    for report_date, (period, basis, lines, date_type, report_type) in XIAOMI_LINES.items():
        start = report_date[:4] + "-01-01 00:00:00"
        report_list.append(
            {
                "SECUCODE": "01810.HK",
                "SECURITY_CODE": "01810",
                "SECURITY_NAME_ABBR": "小米集团-W",
                "START_DATE": start,
                "REPORT_DATE": report_date + " 00:00:00",
                "FISCAL_YEAR": "12-31",
                "CURRENCY": "人民币",
                "ACCOUNT_STANDARD": "国际会计准则",
                "REPORT_TYPE": report_type,
            }
        )
        for code, name, label, expense in HK_ITEMS:
            amount = fig("xiaomi", lines[label], period, basis, label, expense)
            rows.append(
                {
                    "SECUCODE": "01810.HK",
                    "SECURITY_CODE": "01810",
                    "SECURITY_NAME_ABBR": "小米集团-W",
                    "ORG_CODE": None,
                    "REPORT_DATE": report_date + " 00:00:00",
                    "DATE_TYPE_CODE": date_type,
                    "FISCAL_YEAR": "12-31",
                    "START_DATE": start,
                    "STD_ITEM_CODE": code,
                    "STD_ITEM_NAME": name,
                    "AMOUNT": float(amount),
                }
            )
    return report_list, rows


def build_hk() -> pd.DataFrame:
    from akshare.stock_fundamental import stock_finance_hk_em

    report_list, rows = hk_rows()

    def fake_get(url, params=None, **_kw):
        if params["reportName"] == "RPT_CUSTOM_HKSK_APPFN_CASHFLOW_SUMMARY":
            return FakeResponse({"result": {"data": [{"REPORT_LIST": report_list}]}})
        return FakeResponse({"result": {"data": rows}})

    with mock.patch.object(stock_finance_hk_em.requests, "get", side_effect=fake_get):
        return stock_finance_hk_em.stock_financial_hk_report_em(stock="01810", symbol="利润表", indicator="报告期")


# ---------------------------------------------------------------- tushare: pro.income
TS_FIELDS = (
    "ts_code ann_date f_ann_date end_date report_type comp_type end_type basic_eps diluted_eps total_revenue revenue "
    "int_income prem_earned comm_income n_commis_income n_oth_income n_oth_b_income prem_income out_prem "
    "une_prem_reser reins_income n_sec_tb_income n_sec_uw_income n_asset_mg_income oth_b_income fv_value_chg_gain "
    "invest_income ass_invest_income forex_gain total_cogs oper_cost int_exp comm_exp biz_tax_surchg sell_exp "
    "admin_exp fin_exp assets_impair_loss prem_refund compens_payout reser_insur_liab div_payt reins_exp oper_exp "
    "compens_payout_refu insur_reser_refu reins_cost_refund other_bus_cost operate_profit non_oper_income "
    "non_oper_exp nca_disploss total_profit income_tax n_income n_income_attr_p minority_gain oth_compr_income "
    "t_compr_income compr_inc_attr_p compr_inc_attr_m_s ebit ebitda insurance_exp undist_profit distable_profit "
    "rd_exp fin_exp_int_exp fin_exp_int_inc transfer_surplus_rese transfer_housing_imprest transfer_oth "
    "adj_lossgain withdra_legal_surplus withdra_legal_pubfund withdra_biz_devfund withdra_rese_fund "
    "withdra_oth_ersu workers_welfare distr_profit_shrhder prfshare_payable_dvd comshare_payable_dvd "
    "capit_comstock_div update_flag"
).split()
SINA_TO_TS = {
    "营业总收入": "total_revenue",
    "营业收入": "revenue",
    "营业成本": "oper_cost",
    "销售费用": "sell_exp",
    "管理费用": "admin_exp",
    "研发费用": "rd_exp",
    "营业利润": "operate_profit",
    "净利润": "n_income",
    "归属于母公司所有者的净利润": "n_income_attr_p",
}
END_TYPE = {"0331": "1", "0630": "2", "0930": "3", "1231": "4"}  # assumed: quarter of the report period


def ts_item(ts_code: str, ann_date: str, end_date: str, report_type: str, values: dict[str, Decimal]) -> list:
    row = dict.fromkeys(TS_FIELDS)
    row.update(
        ts_code=ts_code,
        ann_date=ann_date,
        f_ann_date=ann_date,
        end_date=end_date,
        report_type=report_type,
        comp_type="1",
        end_type=END_TYPE[end_date[4:]],
        update_flag="1",
    )
    for title, value in values.items():
        row[SINA_TO_TS[title]] = float(value)
    return [row[f] for f in TS_FIELDS]


def build_tushare(items: list[list], ts_code: str) -> pd.DataFrame:
    from tushare.pro import client

    payload = {"code": 0, "msg": "", "data": {"fields": TS_FIELDS, "items": items}}
    with mock.patch.object(client.requests, "post", return_value=FakeResponse(payload)):
        return client.DataApi("token-not-used").income(ts_code=ts_code)


def tushare_midea_items() -> list[list]:
    figures = midea_cumulative()
    items = [ts_item("000333.SZ", MIDEA_PUBLISHED[d], d, "1", v) for d, v in figures.items() if d != "20240331"]
    # 2024Q1 in data/ is the prior-year column of the 2025Q1 report: tushare's report_type 4 (调整合并报表,
    # "本年度公布上年同期的财务报表数据，报告期为上年度"), announced with the 2025Q1 report.
    items.append(ts_item("000333.SZ", MIDEA_PUBLISHED["20250331"], "20240331", "4", figures["20240331"]))
    return items


def tushare_gree_items() -> list[list]:
    g = "gree"
    q3 = {
        "营业总收入": fig(g, 29, "2025Q3", "9M", "营业总收入"),
        "营业收入": fig(g, 30, "2025Q3", "9M", "营业收入"),
        "归属于母公司所有者的净利润": fig(g, 28, "2025Q3", "9M", NP_PARENT),
    }
    h1 = {
        "营业总收入": fig(g, 22, "2025Q2", "6M", "营业总收入"),
        "营业收入": fig(g, 24, "2025Q2", "6M", "营业收入"),
        "营业成本": fig(g, 23, "2025Q2", "6M", "营业成本"),
        "销售费用": fig(g, 25, "2025Q2", "6M", "销售费用"),
        "管理费用": fig(g, 21, "2025Q2", "6M", "管理费用"),
        "研发费用": fig(g, 20, "2025Q2", "6M", "研发费用"),
        "净利润": fig(g, 18, "2025Q2", "6M", "净利润"),
        "归属于母公司所有者的净利润": fig(g, 19, "2025Q2", "6M", NP_PARENT),
    }
    # announcement dates plausible, not verified
    return [
        ts_item("000651.SZ", "20251031", "20250930", "1", q3),
        ts_item("000651.SZ", "20250830", "20250630", "1", h1),
    ]


def fig_of(company: str, period: str, basis: str, label: str, vintage: str) -> Decimal:
    """The figure of data/financials/<company>.csv with this period, basis, label and vintage, in yuan (found by its
    key rather than its line, so rows added to the file do not move it)."""
    rows = list(csv.DictReader((FIN / f"{company}.csv").open(encoding="utf-8")))
    found = [r for r in rows if (r["period"], r["basis"], r["label"], r["vintage"]) == (period, basis, label, vintage)]
    if len(found) != 1:
        raise ValueError(f"{company}.csv has {len(found)} rows {period} {basis} {label} {vintage}")
    return Decimal(found[0]["value"]) * SCALE[found[0]["unit"]]


def tushare_haier_items() -> list[list]:
    """Haier 600690.SH: 2024Q1 as first published (report_type 1, the 2024Q1 report) and as restated in the prior-year
    column of the 2025Q1 report (report_type 4, after the acquisitions under common control), and 2025Q1."""
    h = "haier"
    q1_2024 = {
        "营业收入": fig_of(h, "2024Q1", "3M", "营业收入", "published"),
        "归属于母公司所有者的净利润": fig_of(h, "2024Q1", "3M", NP_PARENT, "published"),
    }
    q1_2024_restated = {
        "营业收入": fig_of(h, "2024Q1", "3M", "营业收入", "restated"),
        "归属于母公司所有者的净利润": fig_of(h, "2024Q1", "3M", NP_PARENT, "restated"),
    }
    q1_2025 = {
        "营业收入": fig_of(h, "2025Q1", "3M", "营业收入", "published"),
        "归属于母公司所有者的净利润": fig_of(h, "2025Q1", "3M", NP_PARENT, "published"),
    }
    # 20250430: the date in data/'s source URL of the 2025Q1 report; 20240430 plausible, not verified
    return [
        ts_item("600690.SH", "20250430", "20250331", "1", q1_2025),
        ts_item("600690.SH", "20250430", "20240331", "4", q1_2024_restated),
        ts_item("600690.SH", "20240430", "20240331", "1", q1_2024),
    ]


# ---------------------------------------------------------------- SEC companyfacts
CONCEPTS = {  # concept -> (label as in NIO's real companyfacts, short description written here)
    "CostOfGoodsAndServicesSold": ("Cost of Goods and Services Sold", "Costs of goods sold and services rendered."),
    "GrossProfit": ("Gross Profit", "Revenue less cost of goods and services sold."),
    "NetIncomeLossAvailableToCommonStockholdersBasic": (
        "Net Income (Loss) Available to Common Stockholders, Basic",
        "Income (loss) available to common shareholders, after noncontrolling interests and preferred claims.",
    ),
    "OperatingIncomeLoss": ("Operating Income (Loss)", "Operating revenues less operating expenses."),
    "ProfitLoss": (
        "Net Income (Loss), Including Portion Attributable to Noncontrolling Interest",
        "Consolidated profit or loss for the period, after income taxes, with noncontrolling interest.",
    ),
    "ResearchAndDevelopmentExpense": ("Research and Development Expense", "Research and development costs."),
    "RevenueFromContractWithCustomerExcludingAssessedTax": (
        "Revenue from Contract with Customer, Excluding Assessed Tax",
        "Revenue from contracts with customers, excluding taxes collected from customers.",
    ),
    "SellingGeneralAndAdministrativeExpense": (
        "Selling, General and Administrative Expense",
        "Selling, general and administrative expenses.",
    ),
}
NIO_LABEL = {  # data/ label -> (us-gaap concept, expense concept: XBRL value is the positive magnitude)
    "Total revenues": ("RevenueFromContractWithCustomerExcludingAssessedTax", False),
    "Cost of sales": ("CostOfGoodsAndServicesSold", True),
    "Gross profit": ("GrossProfit", False),
    "Research and development expenses": ("ResearchAndDevelopmentExpense", True),
    "Selling, general and administrative expenses": ("SellingGeneralAndAdministrativeExpense", True),
    "Income (loss) from operations": ("OperatingIncomeLoss", False),
    "Net income (loss)": ("ProfitLoss", False),
    "Net income (loss) attributable to ordinary shareholders": (
        "NetIncomeLossAvailableToCommonStockholdersBasic",
        False,
    ),
}
# Filings. Real accession numbers (from NIO's companyfacts and data/'s source URLs) for the 20-Fs and the interim
# 6-K; the 3-month press-release 6-Ks carry clearly synthetic ones (0000000000-YY-NNNNNN): NIO's real companyfacts
# hold no 3-month facts at all (see FORMATS.md), so those filings are counterfactual shapes for the quarter path.
F20_2024 = {"accn": "0001410578-25-000661", "fy": 2024, "fp": "FY", "form": "20-F", "filed": "2025-04-08"}
F20_2025 = {"accn": "0001104659-26-041765", "fy": 2025, "fp": "FY", "form": "20-F", "filed": "2026-04-10"}
K6_H1_2025 = {"accn": "0001104659-25-088824", "fy": 2025, "fp": "Q2", "form": "6-K", "filed": "2025-09-10"}
K6_Q = {
    "2024Q1": {"accn": "0000000000-24-000001", "fy": 2024, "fp": "Q1", "form": "6-K", "filed": "2024-06-06"},
    "2024Q2": {"accn": "0000000000-24-000002", "fy": 2024, "fp": "Q2", "form": "6-K", "filed": "2024-09-05"},
    "2024Q3": {"accn": "0000000000-24-000003", "fy": 2024, "fp": "Q3", "form": "6-K", "filed": "2024-11-20"},
    "2024Q4": {"accn": "0000000000-25-000001", "fy": 2024, "fp": "FY", "form": "6-K", "filed": "2025-03-21"},
    "2025Q1": {"accn": "0000000000-25-000002", "fy": 2025, "fp": "Q1", "form": "6-K", "filed": "2025-06-03"},
    "2025Q2": {"accn": "0000000000-25-000003", "fy": 2025, "fp": "Q2", "form": "6-K", "filed": "2025-09-02"},
}
QUARTER_DATES = {"Q1": ("01-01", "03-31"), "Q2": ("04-01", "06-30"), "Q3": ("07-01", "09-30"), "Q4": ("10-01", "12-31")}
NIO_3M = {  # period -> {data label: line}
    "2024Q1": {
        "Gross profit": 2,
        "Income (loss) from operations": 3,
        "Net income (loss)": 4,
        "Net income (loss) attributable to ordinary shareholders": 5,
        "Research and development expenses": 6,
        "Selling, general and administrative expenses": 7,
        "Total revenues": 8,
    },
    "2024Q2": {
        "Gross profit": 9,
        "Income (loss) from operations": 10,
        "Net income (loss)": 11,
        "Net income (loss) attributable to ordinary shareholders": 12,
        "Research and development expenses": 13,
        "Selling, general and administrative expenses": 14,
        "Total revenues": 15,
    },
    "2024Q3": {
        "Gross profit": 24,
        "Income (loss) from operations": 25,
        "Net income (loss) attributable to ordinary shareholders": 26,
        "Research and development expenses": 27,
        "Selling, general and administrative expenses": 28,
        "Total revenues": 29,
    },
    "2024Q4": {
        "Gross profit": 30,
        "Income (loss) from operations": 31,
        "Net income (loss)": 32,
        "Net income (loss) attributable to ordinary shareholders": 33,
        "Research and development expenses": 34,
        "Selling, general and administrative expenses": 35,
        "Total revenues": 36,
    },
    "2025Q1": {
        "Gross profit": 39,
        "Income (loss) from operations": 40,
        "Net income (loss)": 41,
        "Net income (loss) attributable to ordinary shareholders": 42,
        "Research and development expenses": 44,
        "Selling, general and administrative expenses": 45,
        "Total revenues": 46,
    },
    "2025Q2": {
        "Gross profit": 47,
        "Income (loss) from operations": 48,
        "Net income (loss)": 49,
        "Net income (loss) attributable to ordinary shareholders": 50,
        "Research and development expenses": 52,
        "Selling, general and administrative expenses": 53,
        "Total revenues": 54,
    },
}
NIO_6M = {  # period -> {data label: line}; both from the 2025 interim 6-K (2024 is its comparative column)
    "2024Q2": {
        "Cost of sales": 16,
        "Gross profit": 17,
        "Income (loss) from operations": 18,
        "Net income (loss)": 19,
        "Net income (loss) attributable to ordinary shareholders": 20,
        "Research and development expenses": 21,
        "Selling, general and administrative expenses": 22,
        "Total revenues": 23,
    },
    "2025Q2": {
        "Cost of sales": 55,
        "Gross profit": 56,
        "Income (loss) from operations": 57,
        "Net income (loss)": 58,
        "Net income (loss) attributable to ordinary shareholders": 59,
        "Research and development expenses": 60,
        "Selling, general and administrative expenses": 61,
        "Total revenues": 62,
    },
}
NIO_12M = {"2024Q4": {"Net income (loss)": 37, "Total revenues": 38}}
# The later filing that repeats a period already filed (no restated NIO figure exists in data/, so the value is the
# same): the 2025Q2 press release's prior-year column repeats 2024Q2, and the FY2025 20-F repeats FY2024.
NIO_3M_REPEATED_IN_2025Q2 = ["Total revenues", "Net income (loss)"]


def nio_facts(include_quarters: bool) -> list[tuple[str, dict]]:
    facts: list[tuple[str, dict]] = []

    def add(label: str, period: str, basis: str, line: int, start: str, end: str, filing: dict) -> None:
        concept, expense = NIO_LABEL[label]
        val = fig("nio", line, period, basis, label, expense)
        facts.append((concept, {"start": start, "end": end, "val": num(val), **filing}))

    if include_quarters:
        for period, lines in NIO_3M.items():
            year, q = period[:4], period[4:]
            start, end = (f"{year}-{d}" for d in QUARTER_DATES[q])
            for label, line in lines.items():
                add(label, period, "3M", line, start, end, K6_Q[period])
            if period == "2024Q2":
                for label in NIO_3M_REPEATED_IN_2025Q2:
                    add(label, period, "3M", lines[label], start, end, K6_Q["2025Q2"])
    for period, lines in NIO_6M.items():
        for label, line in lines.items():
            add(label, period, "6M", line, f"{period[:4]}-01-01", f"{period[:4]}-06-30", K6_H1_2025)
    for period, lines in NIO_12M.items():
        for label, line in lines.items():
            for filing in (F20_2024, F20_2025):
                add(label, period, "12M", line, f"{period[:4]}-01-01", f"{period[:4]}-12-31", filing)
    return facts


def frame_of(start: str, end: str) -> str | None:
    """SEC's calendar frame for a duration: ~1 year -> CYyyyy, ~1 quarter -> CYyyyyQn; 6 and 9 months get none."""
    days = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).days + 1
    if 358 <= days <= 372:
        return f"CY{end[:4]}"
    if 84 <= days <= 98:
        return f"CY{end[:4]}Q{(int(end[5:7]) - 1) // 3 + 1}"
    return None


def companyfacts(cik: int, name: str, facts: list[tuple[str, dict]]) -> dict:
    by_concept: dict[str, list[dict]] = {}
    for concept, fact in facts:
        by_concept.setdefault(concept, []).append(fact)
    us_gaap = {}
    for concept in sorted(by_concept):
        rows = sorted(by_concept[concept], key=lambda f: (f["end"], f["start"], f["filed"]))
        latest: dict[tuple[str, str], dict] = {}
        for f in rows:  # the frame goes to the last-filed fact of each period, as SEC's frames do
            latest[(f["start"], f["end"])] = f
        for f in latest.values():
            frame = frame_of(f["start"], f["end"])
            if frame:
                f["frame"] = frame
        label, description = CONCEPTS[concept]
        us_gaap[concept] = {"label": label, "description": description, "units": {"CNY": rows}}
    return {"cik": cik, "entityName": name, "facts": {"us-gaap": us_gaap}}


def xpeng_facts() -> list[tuple[str, dict]]:
    filing = {"accn": "0000000000-25-000099", "fy": 2025, "fp": "Q2", "form": "6-K", "filed": "2025-09-01"}
    out = []
    for concept, line, period, label in [
        ("RevenueFromContractWithCustomerExcludingAssessedTax", 31, "2025Q2", "Total revenues"),
        ("ProfitLoss", 30, "2025Q2", "Net income (loss)"),
    ]:
        val = fig("xpeng", line, period, "6M", label)
        out.append((concept, {"start": "2025-01-01", "end": "2025-06-30", "val": num(val), **filing}))
    return out


def write_json(path: Path, doc: dict) -> None:
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main() -> None:
    sina = build_sina()
    sina.to_csv(HERE / "akshare_sina_midea.csv")
    sina.to_csv(HERE / "akshare_sina_midea_noindex.csv", index=False)
    sina.to_excel(HERE / "akshare_sina_midea.xlsx")
    sina.drop(columns=["报告日"]).to_csv(HERE / "akshare_sina_no_report_date.csv")

    build_hk().to_csv(HERE / "akshare_hk_xiaomi.csv")

    build_tushare(tushare_midea_items(), "000333.SZ").to_csv(HERE / "tushare_income_midea.csv")
    build_tushare(tushare_gree_items(), "000651.SZ").to_csv(HERE / "tushare_income_gree.csv")
    build_tushare(tushare_haier_items(), "600690.SH").to_csv(HERE / "tushare_income_haier.csv")

    write_json(HERE / "sec_companyfacts_nio.json", companyfacts(1736541, "NIO Inc.", nio_facts(True)))
    write_json(HERE / "sec_companyfacts_nio_realistic.json", companyfacts(1736541, "NIO Inc.", nio_facts(False)))
    write_json(HERE / "sec_companyfacts_wrong_entity.json", companyfacts(1810997, "XPeng Inc.", xpeng_facts()))


if __name__ == "__main__":
    main()
