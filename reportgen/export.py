"""The metric table for people and programs: JSON records, CSV, a terminal table, and .xlsx bytes.

Every format has one shape, with or without peer statistics: one record per (company, metric), plus, when asked,
one record per (group, metric, statistic) with `statistic` set (median, mean, or the subject's rank).
"""

from __future__ import annotations

import io

import pandas as pd

from .i18n import Text
from .metrics import BY_ID, MIN_MEDIAN, MIN_RANK, metric_of
from .model import BASES, FLAGS, ITEM, N_, QUARTER, YTD, Reason, is_missing, marks, split_entity, sup_marks
from .periods import Quarter

COLUMNS = ["company", "segment", "name", "name_zh", "group", "quarter", "basis", "metric", "statistic", "n",
           "value", "uncertainty", "confidence", "flags", "reason", "note", "sources"]  # fmt: skip
CSV_COLUMNS = ["company", "segment", "name", "group", "quarter", "basis", "metric", "statistic", "n", "value",
               "uncertainty", "confidence", "flags", "reason", "note", "sources"]  # fmt: skip
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
        company, segment = split_entity(r["company"])
        out.append(
            {
                "company": company,
                "segment": segment,  # null for the whole company
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
        base = {"segment": None, "quarter": quarter, "basis": basis, "metric": s["metric"], "group": s["group"],
                "sources": []}  # fmt: skip
        for stat in ("median", "mean"):
            value = _clean(s[stat]) if s["n"] else None
            out.append(
                {
                    "company": None,
                    "name": text.gettext("Peer median") if stat == "median" else text.gettext("Peer mean"),
                    "name_zh": None,
                    **base,
                    "statistic": stat,
                    "n": int(s["n"]),
                    "value": value,
                    "uncertainty": None,
                    "confidence": None,
                    # a statistic that cannot be computed is null, flagged missing, with its reason, as any value
                    "flags": list(s["flags"]) + (["missing"] if value is None else []),
                    "reason": ""
                    if value is not None
                    else text.gettext("fewer than {min} peers with a value (n={n})").format(
                        min=MIN_MEDIAN, n=int(s["n"])
                    ),
                    "note": "",
                }
            )
        rank = _clean(s["subject_rank"])
        if rank is not None:
            why = ""
        elif s["subject_value"] is None or _clean(s["subject_value"]) is None:
            why = text.gettext("no value for the subject")
        else:
            why = text.gettext("fewer than {min} companies with a value (n={n})").format(
                min=MIN_RANK, n=int(s["ranked"])
            )
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
                "flags": list(s["flags"]) + (["missing"] if rank is None else []),
                "reason": why,
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
    by = {(r["company"], r.get("segment"), r["metric"], r["statistic"], r["group"]): r for r in recs}
    groups = list(dict.fromkeys(r["group"] for r in recs if r["statistic"] is None))
    used: set[str] = set()

    def cell(r) -> str:
        if r is None:
            return ""
        if r["statistic"] == "rank":
            return t.not_available if r["value"] is None else f"{r['value']}/{r['n']}"
        used.update(r["flags"] if r["value"] is not None else ())
        shown = t.fmt(r["value"], metric_of(r["metric"]).unit, r.get("uncertainty"))
        return shown + (sup_marks(r["flags"]) if r["value"] is not None else "")

    def body(cols: list[str]) -> list[list[str]]:
        rows = []
        for g in groups:
            members = [r for r in recs if r["statistic"] is None and r["group"] == g and r["metric"] == cols[0]]
            if not members:
                continue
            if g != "subject":
                rows.append([(group_labels or {}).get(g, g)] + [""] * len(cols))
            indent = "" if g == "subject" else "  "
            for m in members:
                rows.append(
                    [indent + _short_name(m["name"], 16)]
                    + [cell(by.get((m["company"], m.get("segment"), c, None, g))) for c in cols]
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
        headers = [_("Company")] + [_(metric_of(c).short or metric_of(c).label) for c in cols]
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


# -- the analyst's workbook ---------------------------------------------------------------------------------------
#: Excel number formats by metric unit; a change in percentage points is written in points (x100)
NUMBER_FORMATS = {
    "rmb_mn": "#,##0",
    "ratio": "0.0%",
    "growth": "+0.0%;-0.0%;0.0%",
    "pp": '+0.0" pp";-0.0" pp";0.0" pp"',
}
#: fills: the header row, the subject's row, a peer group's label row
HEADER_FILL, SUBJECT_FILL, GROUP_FILL = "D9E1F2", "FFF2CC", "EDEDED"
#: when no time is given, the workbook's properties and zip entries carry this one (a rebuild is byte-identical)
WORKBOOK_EPOCH = (2000, 1, 1)
#: reasons that say a metric is not defined on a basis: a sheet leaves out a column of nothing else (and says so)
UNDEFINED_ON_BASIS = frozenset({"qoq_ytd"})
_SHEET_NAME_BAD = str.maketrans({c: " " for c in "[]:*?/\\"})
_UNIT_WORDS = {
    "yuan": N_("yuan"),
    "thousand": N_("thousand"),
    "ten_thousand": N_("ten thousand (万)"),
    "million": N_("million"),
    "hundred_million": N_("hundred million (亿)"),
    "billion": N_("billion"),
    "percent": N_("percent"),
}


def _header_unit(unit: str, _) -> str:
    return {"rmb_mn": _("RMB mn"), "pp": _("pp")}.get(unit, "")


def _safe_text(v):
    """A string as a workbook can hold it: without the control characters XML refuses."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    return ILLEGAL_CHARACTERS_RE.sub("", v) if isinstance(v, str) else v


def _put(ws, row: int, col: int, value, number_format: str | None = None):
    """Write one cell; text stays text (a name such as `=HYPERLINK(...)` is never a live formula)."""
    cell = ws.cell(row=row, column=col, value=_safe_text(value))
    if isinstance(cell.value, str) and cell.data_type == "f":
        cell.data_type = "s"
        cell.quotePrefix = True
    if number_format:
        cell.number_format = number_format
    return cell


def _display_width(v) -> int:
    """Columns a value takes on screen (a Chinese character takes two)."""
    from wcwidth import wcswidth

    s = "" if v is None else str(v)
    return max(wcswidth(s), len(s))


def _decimals_format(v: float) -> str:
    """A number format that shows a figure with the decimals it was recorded with: 115956091 -> #,##0,
    432.55 -> #,##0.00."""
    digits = repr(float(v))  # the shortest text that reads back as the same number: 71887760027.53
    decimals = 0 if "e" in digits or digits.endswith(".0") else len(digits.split(".")[1])
    return "#,##0" + ("." + "0" * min(decimals, 6) if decimals else "")


def _stamp(created):
    """`created` (a datetime, aware or UTC, or a date; None: WORKBOOK_EPOCH) as a naive UTC datetime within the
    times a zip entry can carry (1980 to 2107): an edition dated 2200 builds, its workbook stamped 2107."""
    from datetime import date, datetime, timezone

    if created is None:
        stamp = datetime(*WORKBOOK_EPOCH)
    elif isinstance(created, datetime):
        stamp = created.astimezone(timezone.utc).replace(tzinfo=None) if created.tzinfo else created
    elif isinstance(created, date):
        stamp = datetime(created.year, created.month, created.day)
    else:
        raise TypeError(f"created must be a datetime or a date, not {type(created).__name__}")
    return min(max(stamp.replace(microsecond=0), datetime(1980, 1, 1)), datetime(2107, 12, 31, 23, 59, 58))


def _save_deterministic(wb, created) -> bytes:
    """The workbook as bytes that depend only on its content and `created`: the properties' times and every zip
    entry's time are `created` (openpyxl's own save stamps the current time on both)."""
    import zipfile

    from openpyxl.writer.excel import ExcelWriter

    stamp = _stamp(created)
    wb.properties.created = wb.properties.modified = stamp
    raw = io.BytesIO()
    ExcelWriter(wb, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED)).save()
    out = io.BytesIO()
    with zipfile.ZipFile(raw) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            entry = zipfile.ZipInfo(info.filename, date_time=stamp.timetuple()[:6])
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.create_system = 3
            entry.external_attr = 0o600 << 16
            dst.writestr(entry, src.read(info.filename))
    return out.getvalue()


def _comment(message: str):
    """A cell comment wide enough to read a reason without resizing it."""
    from openpyxl.comments import Comment

    return Comment(_safe_text(message), "reportgen", height=90, width=320)


def _sheet_name(name: str, taken: set[str]) -> str:
    base = " ".join(name.translate(_SHEET_NAME_BAD).split()).strip("'")[:31] or "Sheet"
    out, n = base, 2
    while out.lower() in taken:
        out = f"{base[: 31 - len(str(n)) - 1]} {n}"
        n += 1
    taken.add(out.lower())
    return out


def workbook_bytes(
    tables: dict[str, pd.DataFrame],
    stats: dict[str, pd.DataFrame],
    rows,
    companies: dict,
    subject: str,
    groups,
    text: Text | None = None,
    created=None,
) -> bytes:
    """metrics.xlsx as an analyst would build it by hand (openpyxl), deterministic: the same inputs give the same
    bytes.

    - `tables`: {basis: metric table} as `metrics.compute_metrics` returns it, "quarter" first, "ytd" when the
      edition has one; `stats`: {basis: `metrics.peer_stats` of that table}.
    - `rows`: the workspace's `model.ReportedRow`s (`ctx.data.rows`); those the tables cite (by file and line) are
      the Sources sheet.
    - `companies`: the registry {id: `model.Company`}; `subject`: the subject's id (its fiscal quarter names the
      year-to-date period); `groups`: the peer groups (`config.Group`: id, label, members), in the order shown.
    - `text`: the language of every word a reader sees; `created`: the time the workbook says it was made (a
      datetime or date; the edition's date makes a rebuild byte-identical), a fixed one when None.

    Sheets: one per basis, named by its period ("2025Q2", "H1 2025"): companies down (the subject first and
    highlighted, then each peer group under its label with the group's median where three or more peers have a
    value), metrics across, each followed by a narrow column of its marks; values are numbers in number formats
    (percent, signed percent, points for "pp", RMB million with thousands separators); an empty cell is a value not
    available, its comment says why. "Sources": one row per reported figure used, with its data file and line and
    the values that use it. "Key": the marks and terms.
    """
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Border, Font, PatternFill, Side

    t = text or Text()
    _ = t.gettext
    zh = t.lang.lower().startswith("zh")
    bold, italic = Font(bold=True), Font(italic=True)
    header_fill = PatternFill("solid", fgColor=HEADER_FILL)
    subject_fill = PatternFill("solid", fgColor=SUBJECT_FILL)
    group_fill = PatternFill("solid", fgColor=GROUP_FILL)
    rule = Border(bottom=Side(style="thin"))
    wrap = Alignment(wrap_text=True, vertical="center")
    indent = Alignment(indent=1)
    subj = companies.get(subject)
    group_label = {g.id: g.label for g in groups}
    group_order = [g.id for g in groups]

    wb = Workbook()
    wb.remove(wb.active)
    wb.properties.creator = "reportgen"
    taken: set[str] = set()
    period_names: dict[str, str] = {}
    shown_names: dict[str, str] = {}  # company id -> the name the sheets show
    used: dict[str, list[tuple[str, str]]] = {}  # source ref -> [(basis, metric)]
    bases = [b for b in (QUARTER, YTD) if b in tables] + [b for b in tables if b not in (QUARTER, YTD)]

    for basis in bases:
        table = tables[basis]
        if not len(table):
            continue
        quarter = Quarter.parse(str(table.quarter.iloc[0]))
        fq = subj.fiscal_quarter(quarter) if subj is not None else None
        short = t.period(quarter, basis, fq, short=True)
        long = t.period(quarter, basis, fq)
        period_names[basis] = short
        ws = wb.create_sheet(_sheet_name(short, taken))
        by = {(r["company"], r["metric"]): r for r in table.to_dict("records")}
        metric_ids, undefined = [], []
        for mid in dict.fromkeys(table.metric):
            reasons = [r["reason"] for (_c, m), r in by.items() if m == mid]
            if all(isinstance(x, Reason) and x.code in UNDEFINED_ON_BASIS for x in reasons):
                undefined.append((mid, reasons[0]))  # a column of nothing but "not defined on this basis"
            elif mid in BY_ID:
                metric_ids.append(mid)
        names_of = {
            r["company"]: (r["name_zh"] if zh and r["name_zh"] else r["name"]) or r["company"] for r in by.values()
        }
        shown_names.update(names_of)
        for r in by.values():
            for ref in r["sources"]:
                used.setdefault(ref, []).append((basis, r["metric"]))
        stat = {}
        if basis in stats and stats[basis] is not None and len(stats[basis]):
            stat = {(s["group"], s["metric"]): s for s in stats[basis].to_dict("records")}

        # header
        _put(ws, 1, 1, _("Company"))
        for i, mid in enumerate(metric_ids):
            m = BY_ID[mid]
            unit = _header_unit(m.unit, _)
            _put(ws, 1, 2 + 2 * i, _(m.label) + (f" ({unit})" if unit else ""))
            _put(ws, 1, 3 + 2 * i, None)
        last_col = 1 + 2 * len(metric_ids)
        for c in range(1, last_col + 1):
            cell = ws.cell(row=1, column=c)
            cell.font, cell.fill, cell.alignment, cell.border = bold, header_fill, wrap, rule
        ws.row_dimensions[1].height = 45

        companies_in = list(dict.fromkeys(table.company))
        group_of = dict(zip(table.company, table.group))
        blocks: list[tuple[str | None, list[str]]] = [(None, [c for c in companies_in if group_of[c] == "subject"])]
        for gid in group_order:
            members = [c for c in companies_in if group_of[c] == gid]
            if members:
                blocks.append((gid, members))
        rest = [c for c in companies_in if group_of[c] != "subject" and group_of[c] not in group_order]
        if rest:
            blocks.append(("", rest))

        row = 2
        names = []
        for gid, members in blocks:
            if gid:
                _put(ws, row, 1, group_label.get(gid, gid)).font = bold
                for c in range(1, last_col + 1):
                    ws.cell(row=row, column=c).fill = group_fill
                row += 1
            for cid in members:
                name = names_of[cid]
                names.append(name)
                cell = _put(ws, row, 1, name)
                if gid is not None:
                    cell.alignment = indent
                for i, mid in enumerate(metric_ids):
                    r = by.get((cid, mid))
                    if r is None:
                        continue
                    unit = BY_ID[mid].unit
                    vcol = 2 + 2 * i
                    if is_missing(r["value"]):
                        cell = _put(ws, row, vcol, None)
                        why = t.reason(r["reason"])
                        if why:
                            cell.comment = _comment(_("Not available: {reason}").format(reason=why))
                    else:
                        value = float(r["value"]) * (100 if unit == "pp" else 1)
                        cell = _put(ws, row, vcol, value, NUMBER_FORMATS.get(unit))
                        note = t.reason(r["note"])
                        if note:
                            cell.comment = _comment(note)
                        _put(ws, row, vcol + 1, marks(r["flags"]) or None)
                if cid == subject or gid is None:
                    for c in range(1, last_col + 1):
                        ws.cell(row=row, column=c).fill = subject_fill
                    ws.cell(row=row, column=1).font = bold
                row += 1
            if gid and stat:
                medians = [(i, stat.get((gid, mid))) for i, mid in enumerate(metric_ids)]
                if any(s is not None and not is_missing(s["median"]) for _i, s in medians):
                    cell = _put(ws, row, 1, _("Peer median"))
                    cell.font, cell.alignment = italic, Alignment(indent=2)
                    for i, s in medians:
                        if s is None or is_missing(s["median"]):
                            continue
                        unit = BY_ID[metric_ids[i]].unit
                        value = float(s["median"]) * (100 if unit == "pp" else 1)
                        _put(ws, row, 2 + 2 * i, value, NUMBER_FORMATS.get(unit)).font = italic
                        _put(ws, row, 3 + 2 * i, marks(s["flags"]) or None).font = italic
                    row += 1

        # notes under the table
        row += 1
        basis_words = _("single quarter") if basis == QUARTER else _("year to date")
        notes = [
            _("Period: {period} ({basis}).").format(period=long, basis=basis_words),
            _(
                "Amounts in RMB million; ratios and growth in percent; changes marked pp in percentage points. Values "
                "are unrounded: the cell formats round them for display."
            ),
            _(
                "Letters beside a value are its marks (see the Key sheet). An empty cell is a value not available: "
                "its comment says why."
            ),
            _("Peer median: the median of the group's peers with a value, where three or more have one."),
        ]
        for mid, why in undefined:
            label = _(BY_ID[mid].label) if mid in BY_ID else mid
            notes.append(_("Not shown: {metric} ({reason}).").format(metric=label, reason=t.reason(why)))
        for n in notes:
            _put(ws, row, 1, n).font = Font(italic=True, color="595959")
            row += 1

        width = max([_display_width(_("Company")), *(_display_width(n) for n in names)], default=10)
        ws.column_dimensions["A"].width = min(max(width + 4, 14), 40)
        from openpyxl.utils import get_column_letter

        for i in range(len(metric_ids)):
            ws.column_dimensions[get_column_letter(2 + 2 * i)].width = 12
            ws.column_dimensions[get_column_letter(3 + 2 * i)].width = 4.5
        ws.freeze_panes = "B2"
        ws.print_title_rows = "1:1"
        ws.page_setup.orientation = "landscape"
        ws.page_setup.fitToWidth, ws.page_setup.fitToHeight = 1, 0
        ws.sheet_properties.pageSetUpPr.fitToPage = True

    _sources_sheet(wb, _, t, rows, shown_names, used, period_names, bases, tables, taken, bold, header_fill, rule)
    _key_sheet(wb, _, taken, bold, header_fill, rule)
    if subj is not None and period_names:
        wb.properties.title = _safe_text(
            _("{subject} and peers: metrics for {period}").format(
                subject=subj.name_zh if zh and subj.name_zh else subj.name, period=period_names[bases[0]]
            )
        )
    return _save_deterministic(wb, created)


def _sources_sheet(wb, _, t, rows, names, used, period_names, bases, tables, taken, bold, fill, rule):
    """Sources: one row per reported figure the metric values use, in the subject-then-groups order."""
    from datetime import date

    from openpyxl.styles import Alignment
    from openpyxl.utils import get_column_letter

    ws = wb.create_sheet(_sheet_name(_("Sources"), taken))
    headers = [
        _("Company"), _("Period"), _("Basis"), _("Item"), _("Value as printed"), _("Unit"), _("Currency"),
        _("Label as printed"), _("Vintage"), _("Report"), _("Published"), _("Confidence"), _("Source URL"),
        _("Data file and line"), _("Used in"), _("Excerpt"),
    ]  # fmt: skip
    for c, h in enumerate(headers, 1):
        cell = _put(ws, 1, c, h)
        cell.font, cell.fill, cell.border = bold, fill, rule
        cell.alignment = Alignment(wrap_text=True, vertical="center")
    by_ref = {f"{r.file}:{r.line}": r for r in rows}
    order = {}
    for b in bases:
        for cid in tables[b].company:
            order.setdefault(cid, len(order))
    metric_rank = {m: i for i, m in enumerate(BY_ID)}
    basis_rank = {b: i for i, b in enumerate(bases)}

    def key(ref):
        r = by_ref.get(ref)
        if r is None:
            return (len(order), "", 0, "", ref)
        return (order.get(r.company, len(order)), str(r.quarter), BASES.get(r.basis, 9), r.item, ref)

    vintage_words = {"published": _("as first published"), "restated": _("restated")}
    confidence_words = {"high": _("high"), "medium": _("medium"), "low": _("low")}
    widths = [_display_width(h) for h in headers]
    row = 2
    for ref in sorted(used, key=key):
        r = by_ref.get(ref)
        uses: dict[str, list[str]] = {}
        for b, m in sorted(set(used[ref]), key=lambda x: (basis_rank.get(x[0], 9), metric_rank.get(x[1], 99))):
            uses.setdefault(b, []).append(_(BY_ID[m].label) if m in BY_ID else m)
        used_in = "; ".join(f"{period_names.get(b, b)}: {', '.join(ms)}" for b, ms in uses.items())
        if r is None:
            values = [None] * 13 + [ref, used_in, None]
        else:
            name = names.get(r.company) or r.company
            try:
                published = date.fromisoformat(r.published) if r.published else None
            except ValueError:
                published = r.published
            months = BASES.get(r.basis)
            values = [
                name,
                t.period(r.quarter, QUARTER),
                _("{months} months").format(months=months * 3) if months else r.basis,
                t.item(r.item) if r.item in ITEM else r.item,
                r.value,
                _(_UNIT_WORDS[r.unit]) if r.unit in _UNIT_WORDS else r.unit,
                r.currency,
                r.label,
                vintage_words.get(r.vintage, r.vintage),
                r.report or None,
                published,
                confidence_words.get(r.confidence, r.confidence) or None,
                r.source_url or None,
                ref,
                used_in,
                " ".join((r.source_excerpt or "").split()) or None,
            ]
        for col, v in enumerate(values, 1):
            fmt = None
            if col == 5 and isinstance(v, float):
                fmt = _decimals_format(v)
            elif col == 11 and isinstance(v, date):
                fmt = "yyyy-mm-dd"
            cell = _put(ws, row, col, v, fmt)
            if col == 13 and isinstance(v, str) and v.lower().startswith(("https://", "http://")):
                cell.hyperlink = v
                cell.style = "Hyperlink"
            shown = 10 if col == 11 and isinstance(v, date) else (len(f"{v:,.2f}") if col == 5 and v else v)
            widths[col - 1] = max(widths[col - 1], _display_width(shown))
        row += 1
    caps = {4: 30, 8: 36, 10: 20, 13: 50, 14: 34, 15: 60, 16: 80}
    for c, w in enumerate(widths, 1):
        ws.column_dimensions[get_column_letter(c)].width = min(max(w + 2, 8), caps.get(c, 24))
    ws.row_dimensions[1].height = 30
    ws.freeze_panes = "B2"
    ws.auto_filter.ref = f"A1:{get_column_letter(len(headers))}{max(row - 1, 1)}"


def _key_sheet(wb, _, taken, bold, fill, rule):
    """Key: every mark and what it means, then the terms the sheets use."""
    from openpyxl.styles import Alignment

    ws = wb.create_sheet(_sheet_name(_("Key"), taken))
    for c, h in enumerate((_("Mark"), _("Meaning")), 1):
        cell = _put(ws, 1, c, h)
        cell.font, cell.fill, cell.border = bold, fill, rule
    row = 2
    for f in FLAGS:
        if f.mark:
            _put(ws, row, 1, f.mark).alignment = Alignment(horizontal="center")
            _put(ws, row, 2, _(f.note))
            row += 1
    row += 1
    terms = [
        (_("(empty)"), _("not available: the cell's comment says why")),
        (_("pp"), _("percentage points: the change of a ratio, e.g. 22.5% to 24.3% is +1.8 pp")),
        (
            _("RMB mn"),
            _("RMB million: converted from the unit printed, and from other currencies at the rates in data/fx.csv"),
        ),
        (_("Peer median"), _("the median of the group's peers with a value, shown where three or more have one")),
    ]
    for term, meaning in terms:
        _put(ws, row, 1, term).font = bold
        _put(ws, row, 2, meaning)
        row += 1
    ws.column_dimensions["A"].width = 14
    ws.column_dimensions["B"].width = 110
    ws.freeze_panes = "A2"
