"""Metric table -> JSON records, CSV, a text table for the terminal, and .xlsx bytes."""

from __future__ import annotations

import io
import math

import pandas as pd

from .formats import FLAG_MARKS, fmt_value, marks
from .metrics import BY_ID, FLAG_NOTES

CSV_COLUMNS = ["company", "name", "group", "quarter", "basis", "metric", "value", "flags", "reason", "sources"]


def _clean(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def records(table: pd.DataFrame) -> list[dict]:
    """JSON-ready records: value null when missing, flags and sources as lists."""
    out = []
    for r in table.to_dict("records"):
        out.append(
            {
                "company": r["company"],
                "name": r["name"],
                "name_zh": r["name_zh"],
                "group": r["group"],
                "quarter": r["quarter"],
                "basis": r["basis"],
                "metric": r["metric"],
                "value": _clean(r["value"]),
                "flags": list(r["flags"]),
                "reason": r["reason"],
                "sources": list(r["sources"]),
            }
        )
    return out


def _flat(table: pd.DataFrame) -> pd.DataFrame:
    t = table.copy()
    t["flags"] = t["flags"].map(";".join)
    t["sources"] = t["sources"].map(" ".join)
    return t[CSV_COLUMNS]


def csv_text(table: pd.DataFrame) -> str:
    return _flat(table).to_csv(index=False, lineterminator="\n", float_format="%.10g")


def xlsx_bytes(table: pd.DataFrame) -> bytes:
    """The metric table as a workbook (openpyxl), one row per (company, metric)."""
    buf = io.BytesIO()
    with pd.ExcelWriter(buf, engine="openpyxl") as xl:
        _flat(table).to_excel(xl, sheet_name="metrics", index=False)
    return buf.getvalue()


def table_text(table: pd.DataFrame) -> str:
    """Companies down, metrics across, formatted, with footnote marks and a legend."""
    metrics = list(dict.fromkeys(table.metric))
    rows, used = [], set()
    for _cid, part in table.groupby("company", sort=False):
        first = part.iloc[0]
        cells = [f"{first['name']}", first["group"] or ""]
        for m in metrics:
            r = part[part.metric == m].iloc[0]
            mk = marks(r["flags"])
            used |= set(r["flags"])
            cells.append(fmt_value(r["value"], BY_ID[m].unit) + (f" {mk}" if mk else ""))
        rows.append(cells)
    header = ["company", "group"] + metrics
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
    q, basis = table.quarter.iloc[0], table.basis.iloc[0]
    lines.append("")
    lines.append(
        f"{q}, {'single quarter' if basis == 'quarter' else 'year to date'}; amounts in RMB million; "
        "n/a = not available (see --format json for the reason)."
    )
    for f, m in FLAG_MARKS.items():
        if f in used:
            lines.append(f"  {m}: {FLAG_NOTES[f]}")
    return "\n".join(lines)


def stats_text(stats: pd.DataFrame) -> str:
    lines = [f"{'group':<18}{'metric':<24}{'median':>10}{'mean':>10}{'n':>4}{'subject':>10}  rank"]
    for r in stats.to_dict("records"):
        unit = BY_ID[r["metric"]].unit
        rank = f"{r['subject_rank']} of {r['ranked']}" if _clean(r["subject_rank"]) is not None else "-"
        lines.append(
            f"{r['group']:<18}{r['metric']:<24}{fmt_value(_clean(r['median']), unit):>10}"
            f"{fmt_value(_clean(r['mean']), unit):>10}{r['n']:>4}"
            f"{fmt_value(_clean(r['subject_value']), unit):>10}  {rank}"
            + (f"  [{marks(r['flags'])}: includes {', '.join(r['flags'])}]" if r["flags"] else "")
        )
    return "\n".join(lines)
