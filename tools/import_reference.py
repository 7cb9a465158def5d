"""Build the default workspace's data/financials/*.csv from ../shared/reference/ (research notes), tools/supplement.csv
and the later research in tools/research/ (ashares.csv, quarterly.csv).

Run from the repository root:  python tools/import_reference.py ../shared/reference
Each output row keeps its source URL, excerpt and confidence, plus `ref` (reference file:line) so every figure
can be traced back to the research note it came from. Nothing is computed here: values are copied as printed.
"""

import csv
import re
import sys
from pathlib import Path

COMPANY_IDS = {
    "000333.SZ": "midea",
    "600690.SH": "haier",
    "000651.SZ": "gree",
    "000921.SZ": "hisense",
    "NIO": "nio",
    "LI": "li_auto",
    "XPEV": "xpeng",
    "601127.SH": "seres",
    "688036.SH": "transsion",
    "1810.HK": "xiaomi",
}

# The statement line each company prints for a canonical item (US-GAAP EV makers; Xiaomi IFRS; CAS in Chinese).
US_GAAP_LABELS = {
    "revenue": "Total revenues",
    "cost_of_revenue": "Cost of sales",
    "gross_profit": "Gross profit",
    "rnd_expenses": "Research and development expenses",
    "sga": "Selling, general and administrative expenses",
    "operating_profit": "Income (loss) from operations",
    "net_profit": "Net income (loss)",
    "net_profit_attributable": "Net income (loss) attributable to ordinary shareholders",
    "adjusted_net_profit": "Non-GAAP net income (loss)",
}
IFRS_LABELS = {
    "revenue": "Revenue",
    "cost_of_revenue": "Cost of sales",
    "gross_profit": "Gross profit",
    "selling_expenses": "Selling and marketing expenses",
    "admin_expenses": "Administrative expenses",
    "rnd_expenses": "Research and development expenses",
    "operating_profit": "Operating profit",
    "net_profit": "Profit for the period",
    "net_profit_attributable": "Profit attributable to owners of the Company",
    "adjusted_net_profit": "Adjusted net profit (non-IFRS)",
}
CAS_LABELS = {
    "revenue": "营业收入",
    "cost_of_revenue": "营业成本",
    "selling_expenses": "销售费用",
    "admin_expenses": "管理费用",
    "rnd_expenses": "研发费用",
    "operating_profit": "营业利润",
    "net_profit": "净利润",
    "net_profit_attributable": "归属于上市公司股东的净利润",
}
TOTAL_REVENUE_MARKERS = (
    "营业总收",
    "total operating revenue",
    "total revenue",
    "turnover",
    "营收(营业总收入)",
    "=营业总收入口径",
)

# Reference rows left out, with the reason (file, line): see data/README.md.
EXCLUDED = {
    ("appliances.csv", 56): "Gree 2024Q1 revenue 365.96亿 (low): conflicts with the 363.64亿 prior-year column of "
    "the 2025Q1 report; the note says it is probably 营业总收入 mislabelled.",
}
SKIPPED_ITEMS = {"ev_revenue", "ev_revenue_smart_ev", "ev_gross_margin_pct"}  # segment lines, not in the item list

COLUMNS = [
    "period",
    "basis",
    "label",
    "value",
    "unit",
    "currency",
    "vintage",
    "report",
    "confidence",
    "source_url",
    "source_excerpt",
    "ref",
    "note",
    "published",
]


# Rows whose revenue basis the research notes pin down although their label does not say it.
LABEL_OVERRIDES = {
    # Gree H1 2024 "revenue" 100.3bn (rounded): 976.19亿 营业总收入 H1-25 / (1 - 2.66%) = 1,002.9亿 matches it, while
    # 营业收入 gives 973.25 / (1 - 2.46%) = 997.8亿 (growth rates quoted in appliances.csv:70-71).
    ("appliances.csv", 58): "营业总收入",
}


def _label(row, name=None, line=None):
    if (name, line) in LABEL_OVERRIDES:
        return LABEL_OVERRIDES[(name, line)]
    item, raw, std = row["item"], row["line_item_reported"], row["standard"]
    if std == "CAS":
        if item == "revenue" and any(m in raw.lower() for m in TOTAL_REVENUE_MARKERS):
            return "营业总收入"
        return CAS_LABELS[item]
    if std == "IFRS":
        return IFRS_LABELS[item]
    return US_GAAP_LABELS[item]


# Figures printed as restated comparatives in a later report (Haier's 2025 reports restate 2024 after
# acquisitions under common control; see appliances.md, "Haier common-control restatement").
RESTATED = {("appliances.csv", 86), ("appliances.csv", 92), ("appliances.csv", 96)}


def _vintage(name, line):
    return "restated" if (name, line) in RESTATED else "published"


def _report(row, vintage):
    note = row["note"]
    if note.startswith("As originally published"):
        return f"{row['period']} {row['basis']} report"
    m = re.search(
        r"(?:Prior-year|prior-year|上年同期|comparative)[^.;]*?(20\d\d ?(?:Q[1-4]|H1|interim|年?一季报|中报))", note
    )
    if m:
        return f"{m.group(1).strip()} report, prior-year column"
    if vintage == "restated":
        return "later report, restated comparative"
    return f"{row['period']} {row['basis']} report"


# Research rows left out, with the reason (the row they would have competed with says so in its note).
EXCLUDED_RESEARCH = {
    (
        "tools/research/ashares.csv",
        23,
    ): "Gree H1 研发费用 30.24亿 (an AI-written page; it reconciles with nothing): the 39.18亿 row's note names it.",
}
# Confidence set here, with the reason, where later research contradicts or corroborates a figure.
CONFIDENCE = {
    ("nio", "2024Q4", "3M", "Selling, general and administrative expenses"): (
        "low",
        "Issue 12 research: NIO's Q4 2025 SG&A (35.37亿) is reported as down 27.5% year on year, which implies about "
        "4,879m for Q4 2024, not this aggregator's 3,589,206k (the same vendor's 2025Q2 figure was 487m short of "
        "NIO's own); kept as the only figure found, marked low.",
    ),
    ("gree", "2025Q2", "6M", "研发费用"): (
        "medium",
        "Two pages disagree: this 39.18亿 (reportify's summary of the interim report's income statement) and 30.24亿 "
        "(https://www.gilin.com.cn/essence0903010.html, an AI-written page). 39.18 is used: H1 39.18 + Q3 4.26% x "
        "400.34亿 = 56.2亿 matches the 9M 研发投入 of 56.2亿 printed by eastmoney guba 1618841386; 30.24 would give "
        "47.3 (tools/research/ashares.md).",
    ),
}
_PRINTED = re.compile(r"[-+]?(\d*)\.?(\d*)")
_UNIT = {"yuan": 1, "thousand": 1e3, "ten_thousand": 1e4, "million": 1e6, "hundred_million": 1e8, "billion": 1e9}


def _yuan(row) -> tuple[float, float]:
    """(value, half its last printed digit), in yuan (or percent for ratios)."""
    text = row["value"].replace(",", "")
    decimals = len(text.partition(".")[2])
    scale = _UNIT.get(row["unit"], 1)
    return float(text) * scale, 0.5 * 10.0**-decimals * scale


def _add(rows: list[dict], new: dict) -> None:
    """Add a research row; where the data already hold the same figure (period, basis, label, vintage), keep the
    more precise of the two (at most half the other's rounding) and say in its note what the other source printed,
    agreeing or not. The stronger confidence of two agreeing sources is kept."""
    key = (new["period"], new["basis"], new["label"], new["vintage"])
    old = next((r for r in rows if (r["period"], r["basis"], r["label"], r["vintage"]) == key), None)
    if old is None:
        rows.append(new)
        return
    (v_old, u_old), (v_new, u_new) = _yuan(old), _yuan(new)
    agree = abs(abs(v_old) - abs(v_new)) <= u_old + u_new + 1e-9
    keep, other = (new, old) if u_new < u_old / 2 else (old, new)
    rank = ["low", "medium", "high"]
    if agree and rank.index(other["confidence"]) > rank.index(keep["confidence"]):
        keep = {**keep, "confidence": other["confidence"]}
    word = "agrees" if agree else "DISAGREES"
    mention = f"{other['source_url']} prints {other['value']} {other['unit']} ({word}; {other['ref']})."
    keep = {**keep, "note": f"{keep['note']} Also: {mention}".strip()}
    rows[rows.index(old)] = keep


_REPORT = re.compile(r"(20\d\d) ?(Q[1-4]|H1|interim)")


def _published(out: dict, path: Path) -> None:
    """Each row's publication date: the date the company published the report its `report` field names (the
    report of that period), from tools/research/published.csv; none where that report's date was not found."""
    dates = {}
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            dates.setdefault((row["company"], row["period"]), row["published"])
    for company, rows in out.items():
        for r in rows:
            m = _REPORT.match(r.get("report", ""))
            if not m:
                continue
            period = f"{m.group(1)}{'Q2' if m.group(2) in ('H1', 'interim') else m.group(2)}"
            r["published"] = dates.get((company, period), "")


def main(ref_dir):
    ref_dir = Path(ref_dir)
    out = {}
    for name in ["xiaomi.csv", "appliances.csv", "ev_makers.csv", "transsion.csv"]:
        with open(ref_dir / name, newline="", encoding="utf-8-sig") as fh:
            for line, row in enumerate(csv.DictReader(fh), start=2):
                if (name, line) in EXCLUDED or row["item"] in SKIPPED_ITEMS:
                    continue
                vintage = _vintage(name, line)
                out.setdefault(COMPANY_IDS[row["ticker"]], []).append(
                    {
                        "period": row["period"],
                        "basis": row["basis"],
                        "label": _label(row, name, line),
                        "value": row["value"],
                        "unit": row["unit"],
                        "currency": row["currency"],
                        "vintage": vintage,
                        "report": _report(row, vintage),
                        "confidence": row["confidence"],
                        "source_url": row["source_url"],
                        "source_excerpt": row["source_excerpt"],
                        "ref": f"shared/reference/{name}:{line}",
                        "note": f"reported as: {row['line_item_reported']}. {row['note']}".strip(),
                    }
                )
    # Figures found later in the stored public pages, each with its URL and excerpt (tools/supplement.csv and
    # tools/research/*.csv: the 2025Q3 research of issue 12, notes beside them in the .md files).
    here = Path(__file__).parent
    for path in [here / "supplement.csv", here / "research" / "ashares.csv", here / "research" / "quarterly.csv"]:
        rel = path.relative_to(here.parent).as_posix()
        with open(path, newline="", encoding="utf-8") as fh:
            for line, row in enumerate(csv.DictReader(fh), start=2):
                if (rel, line) in EXCLUDED_RESEARCH:
                    continue
                company = row.pop("company")
                _add(out.setdefault(company, []), {**row, "ref": f"{rel}:{line}"})
    _published(out, here / "research" / "published.csv")
    for (company, period, basis, label), (confidence, note) in CONFIDENCE.items():
        for r in out[company]:
            if (r["period"], r["basis"], r["label"]) == (period, basis, label):
                r["confidence"], r["note"] = confidence, f"{r['note']} {note}".strip()
    dest = Path("data/financials")
    dest.mkdir(parents=True, exist_ok=True)
    for company, rows in sorted(out.items()):
        rows.sort(key=lambda r: (r["period"], int(r["basis"][:-1]), r["label"], r["vintage"]))
        with open(dest / f"{company}.csv", "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, COLUMNS, lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
        print(f"{dest / (company + '.csv')}: {len(rows)} rows")
    segments(here)


#: the segment lines the registry declares for Xiaomi (issue 18); the Smartphone x AIoT total and the smart-EV-only
#: line (printed rounded to RMB 0.1 bn) stay in the research file
SEGMENTS = ("smartphones", "iot", "internet", "ev")
SEGMENT_LABELS = {"revenue": "Revenue", "gross_profit": "Gross profit", "gross_margin": "Gross profit margin"}


def _definition(text: str) -> str:
    """The segment's scope as one canonical text per scope: the research notes word the same scope several ways
    (a 2024 figure printed as a comparative under the 2025 name is still the 2024 scope)."""
    text = text.split(":", 1)[-1].strip()
    if text.startswith("2024 smart EV"):
        return "smart EV and other new initiatives (智能电动汽车等创新业务), as defined in 2024"
    if text.startswith("2025 smart EV"):
        return "smart EV, AI and other new initiatives (智能电动汽车及AI等创新业务), as renamed from 2025Q1"
    return text.split(";", 1)[0].strip()


def segments(here: Path) -> None:
    """data/segments/xiaomi.csv from tools/research/segments.csv: each segment figure as the results announcement
    printed it, with its definition (the EV segment's scope changed in 2025) and the announcement's date."""
    dates = {}
    with open(here / "research" / "published.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            dates.setdefault((row["company"], row["period"]), row["published"])
    rows = []
    rel = "tools/research/segments.csv"
    with open(here / "research" / "segments.csv", newline="", encoding="utf-8") as fh:
        for line, row in enumerate(csv.DictReader(fh), start=2):
            if row["segment"] not in SEGMENTS:
                continue
            rows.append(
                {
                    "segment": row["segment"],
                    "period": row["period"],
                    "basis": row["basis"],
                    "label": SEGMENT_LABELS[row["item"]],
                    "value": row["value"],
                    "unit": row["unit"],
                    "currency": row["currency"],
                    "vintage": "published",
                    "definition": _definition(row["definition"]),
                    "report": row["report"],
                    "confidence": row["confidence"],
                    "source_url": row["source_url"],
                    "source_excerpt": row["source_excerpt"],
                    "ref": f"{rel}:{line}",
                    "note": row["note"],
                    "published": dates.get((row["company"], row["period"]), ""),
                }
            )
    rows.sort(key=lambda r: (r["segment"], r["period"], int(r["basis"][:-1]), r["label"]))
    dest = Path("data/segments")
    dest.mkdir(parents=True, exist_ok=True)
    columns = ["segment", *COLUMNS[:6], "vintage", "definition", *[c for c in COLUMNS[7:]]]
    with open(dest / "xiaomi.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, columns, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    print(f"{dest / 'xiaomi.csv'}: {len(rows)} rows")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/reference")
