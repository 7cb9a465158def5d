"""The metric table for people and programs: JSON records, CSV, a terminal table, and .xlsx bytes.

Every format has one shape, with or without peer statistics: one record per (company, metric), plus, when asked,
one record per (group, metric, statistic) with `statistic` set (median, mean, or the subject's rank).
"""

from __future__ import annotations

import io

import pandas as pd

from .i18n import Text
from .metrics import BY_ID
from .model import FLAGS, is_missing, sup_marks

COLUMNS = ["company", "name", "name_zh", "group", "quarter", "basis", "metric", "statistic", "n", "value",
           "uncertainty", "confidence", "flags", "reason", "note", "sources"]  # fmt: skip
CSV_COLUMNS = ["company", "name", "group", "quarter", "basis", "metric", "statistic", "n", "value", "uncertainty",
               "confidence", "flags", "reason", "note", "sources"]  # fmt: skip
STATISTICS = ("median", "mean", "rank")
#: the terminal table fits this many columns unless the caller gives another width
TABLE_WIDTH = 100


def _clean(v):
    return None if is_missing(v) else v


def records(table: pd.DataFrame, stats: pd.DataFrame | None = None, text: Text | None = None) -> list[dict]:
    """JSON-ready records: value null when missing, flags and sources as lists, reasons in words; with `stats`,
    the peer statistics after them in the same shape."""
    t = text or Text()
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
                "statistic": None,
                "n": None,
                "value": _clean(r["value"]),
                "uncertainty": _clean(r["uncertainty"]),
                "confidence": _clean(r["confidence"]),
                "flags": list(r["flags"]),
                "reason": t.reason(r["reason"]),
                "note": t.reason(r["note"]),
                "sources": list(r["sources"]),
            }
        )
    if stats is not None and len(table):
        out += stat_records(table, stats, t)
    return out


def stat_records(table: pd.DataFrame, stats: pd.DataFrame, text: Text) -> list[dict]:
    """Peer statistics as records: median and mean of each group's peers, and the subject's rank among them."""
    quarter, basis = table.quarter.iloc[0], table.basis.iloc[0]
    subject = table[table.group == "subject"].iloc[0] if (table.group == "subject").any() else None
    out = []
    for s in stats.to_dict("records"):
        base = {"quarter": quarter, "basis": basis, "metric": s["metric"], "group": s["group"], "sources": []}
        for stat in ("median", "mean"):
            out.append(
                {
                    "company": None,
                    "name": text.gettext("Peer median" if stat == "median" else "Peer mean"),
                    "name_zh": None,
                    **base,
                    "statistic": stat,
                    "n": int(s["n"]),
                    "value": _clean(s[stat]) if s["n"] else None,
                    "uncertainty": None,
                    "confidence": None,
                    "flags": list(s["flags"]),
                    "reason": "",
                    "note": "",
                }
            )
        rank = _clean(s["subject_rank"])
        out.append(
            {
                "company": None if subject is None else subject["company"],
                "name": text.gettext("Rank") if subject is None else subject["name"],
                "name_zh": None if subject is None else subject["name_zh"],
                **base,
                "statistic": "rank",
                "n": int(s["ranked"]),
                "value": None if rank is None else int(rank),
                "uncertainty": None,
                "confidence": None,
                "flags": list(s["flags"]),
                "reason": "",
                "note": "",
            }
        )
    return [{k: r[k] for k in COLUMNS} for r in out]


#: a cell starting with one of these is a formula to a spreadsheet (OWASP, "CSV Injection")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _text_cell(v):
    """Text as text in a spreadsheet: a leading ' keeps `=HYPERLINK(...)` (or +, -, @) from becoming a formula."""
    return "'" + v if isinstance(v, str) and v.startswith(_FORMULA_START) else v


def _flat(recs: list[dict]) -> pd.DataFrame:
    rows = [
        {
            **r,
            "flags": ";".join(r["flags"]),
            "sources": " ".join(r["sources"]),
            "n": "" if r["n"] is None else r["n"],
            "confidence": r["confidence"] or "",
        }
        for r in recs
    ]
    return pd.DataFrame.from_records(rows, columns=COLUMNS)[CSV_COLUMNS]


def csv_text(table: pd.DataFrame, stats: pd.DataFrame | None = None, text: Text | None = None) -> str:
    """The metric table as CSV: flags `;`-joined, sources space-joined, values as plain fractions."""
    frame = _flat(records(table, stats, text))
    # ten significant digits; a rank is a whole number, written as one (never 2.0)
    frame["value"] = [
        "" if is_missing(v) else (str(int(v)) if s == "rank" else f"{v:.10g}")
        for v, s in zip(frame["value"], frame["statistic"])
    ]
    frame["uncertainty"] = ["" if is_missing(u) else f"{u:.3g}" for u in frame["uncertainty"]]
    for col in CSV_COLUMNS:
        if col not in ("value", "n", "uncertainty"):
            frame[col] = frame[col].map(_text_cell)
    return frame.to_csv(index=False, lineterminator="\n")


def xlsx_bytes(table: pd.DataFrame, text: Text | None = None) -> bytes:
    """The metric table as a workbook (openpyxl), one row per (company, metric). Text cells are text: a company
    name such as `=HYPERLINK(...)` is never a live formula."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "metrics"
    frame = _flat(records(table, None, text))
    ws.append(list(frame.columns))
    for row in frame.itertuples(index=False):
        ws.append([None if is_missing(v) or v == "" else v for v in row])
    for cells in ws.iter_rows(min_row=2):
        for cell in cells:
            if isinstance(cell.value, str) and cell.data_type == "f":
                cell.data_type = "s"  # openpyxl reads a leading = as a formula; this is text
                cell.quotePrefix = True
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _short_name(name: str, width: int) -> str:
    from wcwidth import wcswidth

    if wcswidth(name) <= width:
        return name
    out = ""
    for ch in name:
        if wcswidth(out + ch + "…") > width:
            break
        out += ch
    return out + "…"


def table_text(
    table: pd.DataFrame,
    stats: pd.DataFrame | None = None,
    metrics: list[str] | None = None,
    text: Text | None = None,
    width: int = TABLE_WIDTH,
    group_labels: dict[str, str] | None = None,
    fit: bool = True,
) -> str:
    """Companies down (grouped under their group's label), metrics across with short headers, footnote marks as
    superscripts, and a key. `metrics` chooses the columns; with `fit`, columns beyond `width` are left out
    (and named) so the table fits a terminal."""
    import textwrap

    from tabulate import tabulate

    t = text or Text()
    _ = t.gettext
    chosen = metrics or list(dict.fromkeys(table.metric))
    recs = records(table, stats, t)
    by = {(r["company"], r["metric"], r["statistic"], r["group"]): r for r in recs}
    groups = list(dict.fromkeys(r["group"] for r in recs if r["statistic"] is None))
    used: set[str] = set()

    def cell(r) -> str:
        if r is None:
            return ""
        if r["statistic"] == "rank":
            return "" if r["value"] is None else f"{r['value']}/{r['n']}"
        used.update(r["flags"] if r["value"] is not None else ())
        shown = t.fmt(r["value"], BY_ID[r["metric"]].unit, r.get("uncertainty"))
        return shown + (sup_marks(r["flags"]) if r["value"] is not None else "")

    def body(cols: list[str]) -> list[list[str]]:
        rows = []
        for g in groups:
            members = [r for r in recs if r["statistic"] is None and r["group"] == g and r["metric"] == cols[0]]
            if g != "subject":
                rows.append([(group_labels or {}).get(g, g)] + [""] * len(cols))
            indent = "" if g == "subject" else "  "
            for m in members:
                rows.append(
                    [indent + _short_name(m["name"], 16)] + [cell(by.get((m["company"], c, None, g))) for c in cols]
                )
            if stats is not None and g != "subject":
                for stat, label in (("median", _("median")), ("mean", _("mean")), ("rank", _("rank"))):
                    rows.append(
                        [f"    {label}"]
                        + [
                            cell(
                                next(
                                    (
                                        r
                                        for r in recs
                                        if r["statistic"] == stat and r["group"] == g and r["metric"] == c
                                    ),
                                    None,
                                )
                            )
                            for c in cols
                        ]  # fmt: skip
                    )
        return rows

    def render(cols: list[str]) -> str:
        headers = [_("Company")] + [_(BY_ID[c].short or BY_ID[c].label) for c in cols]
        align = ("left",) + ("right",) * len(cols)
        return tabulate(body(cols), headers=headers, tablefmt="simple", disable_numparse=True, colalign=align)

    cols = list(chosen)
    out = render(cols)
    from wcwidth import wcswidth

    while fit and len(cols) > 1 and max(wcswidth(ln) for ln in out.splitlines()) > width:
        cols.pop()  # the default view fits the terminal; --metrics shows exactly what is asked for
        used.clear()
        out = render(cols)
    q, basis = table.quarter.iloc[0], table.basis.iloc[0]
    notes = [
        _("{quarter}, {basis}; amounts in RMB million; n/a = not available (see --format json for the reason).").format(
            quarter=q, basis=_("single quarter") if basis == "quarter" else _("year to date")
        )
    ]
    left = [c for c in chosen if c not in cols]
    if left:
        notes.append(
            _("Not shown for width: {metrics} (choose columns with --metrics).").format(metrics=", ".join(left))
        )
    notes += [f"{f.superscript} {t.gettext(f.note)}" for f in FLAGS if f.mark and f.id in used]
    wrapped = [textwrap.fill(n, width, subsequent_indent="  ") for n in notes]
    return "\n".join([out, "", *wrapped])
