"""Importers: a provider's income statement (AKShare's Sina and East Money frames, Tushare's `income`, SEC EDGAR's
company facts) -> the company's as-reported rows, merged into data/financials/ID.csv; `fetch` downloads it first.

Each format has a reader that turns the provider's file into `Figure`s (period, basis, item, the value in yuan as
the provider prints it, the version, the publication date, where in the file), driven by a label map kept as data:
reportgen/providers/<format>.toml, changed or extended by the workspace's data/providers/<format>.toml. Figures
become rows in the company's own form (cumulative stays cumulative, its own labels) and go through
`readers.reported_row`, so an imported row is exactly what the loader accepts. The merge keeps every line of the
existing file as it is: identical figures are left alone, a figure that differs is a conflict (kept unless
replace), new rows are appended, and the file is written atomically.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import socket
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from . import readers
from .config import line_of, read_toml, workspace_path
from .errors import DataError, ReportgenError
from .loaders import financial_files, load_fx, load_labels, load_registry
from .model import BASES, EXPENSE_ITEMS, ITEM, UNITS, Company
from .periods import Quarter

FORMATS = ("akshare-sina", "akshare-hk", "tushare-income", "sec-companyfacts")
#: `reportgen fetch --provider` -> the formats it can download (the one that fits the company's listing is used)
PROVIDERS = {"akshare": ("akshare-sina", "akshare-hk"), "tushare": ("tushare-income",), "sec": ("sec-companyfacts",)}
#: the columns of a new data/financials/ID.csv
HEADER = (
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
)
PACKAGED_MAPS = Path(__file__).resolve().parent / "providers"
#: an A-share ticker (000333.SZ) and a Hong Kong one (1810.HK)
_A_SHARE = re.compile(r"^(\d{6})\.(SZ|SH|BJ)$", re.I)
_HK = re.compile(r"^0*(\d{1,5})\.HK$", re.I)
_DATE = re.compile(r"^(\d{4})[-/]?(\d{2})[-/]?(\d{2})(?:[ T][0-9:.]+)?(?:\.0)?$")
_DATED_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})(?:-\d+)?$")
_EMPTY = ("", "nan", "none", "null", "--", "-")


class FetchError(ReportgenError):
    """A download could not be made: the library is missing, no network, a token is missing, the provider refused."""


# -- label maps ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Mapping:
    """One provider label: the canonical item and the statement labels to write, in order of preference."""

    item: str
    labels: tuple[str, ...]
    priority: int  # order in the map: where two provider labels give one item, the first with a figure is used


@dataclass(frozen=True)
class ProviderMap:
    """A format's label map and what rows name as their source."""

    format: str
    name: str
    endpoint: str
    confidence: str
    why: str
    labels: dict[str, Mapping]
    cik: dict[str, int]
    files: tuple[str, ...]

    def url(self, symbol: str = "", cik: str = "") -> str:
        """The provider's endpoint for the company."""
        return self.endpoint.replace("{symbol}", symbol).replace("{cik}", cik)


def load_provider_map(root: Path, fmt: str) -> ProviderMap:
    """The packaged label map of `fmt`, with the workspace's data/providers/<fmt>.toml laid over it."""
    if fmt not in FORMATS:
        raise DataError(f"unknown format '{fmt}'; use {_or(FORMATS)}", None, None, "format")
    merged: dict[str, Any] = {"provider": {}, "labels": {}, "cik": {}}
    files = []
    packaged = PACKAGED_MAPS / f"{fmt}.toml"
    sources = [(packaged, f"reportgen/providers/{fmt}.toml")]
    rel = f"data/providers/{fmt}.toml"
    local = workspace_path(root, rel, DataError)
    if local.exists():
        sources.append((local, rel))
    for path, name in sources:
        data, text = read_toml(path, name, DataError)
        _check_map(data, text, name)
        for table in merged:
            merged[table].update(data.get(table, {}))
        files.append(name)
    provider = merged["provider"]
    labels = {}
    for n, (key, entry) in enumerate(merged["labels"].items()):
        if entry is False:
            continue
        names = entry["label"] if isinstance(entry["label"], list) else [entry["label"]]
        labels[key] = Mapping(entry["item"], tuple(names), n)
    return ProviderMap(
        fmt,
        provider.get("name", fmt),
        provider.get("endpoint", ""),
        provider.get("confidence", "medium"),
        provider.get("why", ""),
        labels,
        {str(k).upper(): v for k, v in merged["cik"].items()},
        tuple(files),
    )


def _check_map(data: dict, text: str, rel: str) -> None:
    """A label map's tables and entries, each problem at its line."""
    for table in data:
        if table not in ("provider", "labels", "cik"):
            raise DataError("unknown table; a label map has [provider], [labels] and [cik]", rel, line_of(text, table))
    for key, value in data.get("provider", {}).items():
        if key not in ("name", "endpoint", "confidence", "why") or not isinstance(value, str):
            raise DataError(
                "[provider] takes name, endpoint, confidence and why, each as text", rel, line_of(text, key), key
            )
    conf = data.get("provider", {}).get("confidence")
    if conf is not None and conf not in readers.CONFIDENCE:
        raise DataError(f"confidence must be high, medium or low, not '{conf}'", rel, line_of(text, "confidence"))
    for key, entry in data.get("labels", {}).items():
        where = (rel, line_of(text, key, "labels"), key)
        if entry is False:
            continue
        if not isinstance(entry, dict) or set(entry) != {"item", "label"}:
            raise DataError('write { item = "revenue", label = "营业收入" } (or false to leave it out)', *where)
        if entry["item"] not in ITEM or ITEM[entry["item"]].stated_ratio:
            amounts = ", ".join(i for i in ITEM if not ITEM[i].stated_ratio)
            raise DataError(f"'{entry['item']}' is not a canonical item; use one of {amounts}", *where)
        names = entry["label"] if isinstance(entry["label"], list) else [entry["label"]]
        if not names or not all(isinstance(n, str) and n.strip() for n in names):
            raise DataError("label must be a statement label or a list of them", *where)
    for key, cik in data.get("cik", {}).items():
        if not isinstance(cik, int) or isinstance(cik, bool) or not 0 < cik < 10**10:
            raise DataError("a CIK is a number of up to ten digits, e.g. 1736541", rel, line_of(text, key, "cik"), key)


# -- what a reader gives ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Figure:
    """One figure read from a provider's file, before it becomes a row."""

    quarter: Quarter
    basis: str
    item: str
    key: str  # the provider's label: a column, an STD_ITEM_NAME, a concept
    text: str  # the value in yuan as the row will print it
    line: int | None  # the row (CSV line, sheet row) in the provider's file
    excerpt: str  # the provider's cell, quoted in source_excerpt
    published: str = ""  # YYYY-MM-DD: the provider's publication date (公告日期, ann_date, filed)
    priority: int = 0
    order: tuple = ()  # later versions sort after earlier ones
    note: str = ""
    vintage: str = "published"
    anchor: str = ""  # where in a file without lines (JSON): concept, unit and index
    period_end: str = ""  # a 52/53-week period's end date, written as its period


@dataclass
class Parsed:
    """A reader's result: figures, what was left out and why, and the symbol the provider knows the company by."""

    figures: list[Figure] = field(default_factory=list)
    left_out: Counter = field(default_factory=Counter)  # reason -> count
    unmapped: set = field(default_factory=set)  # provider labels the map does not name
    symbol: str = ""
    cik: str = ""
    identified: bool = True  # whether the file names the company (ticker, ts_code, CIK)
    versioned: bool = False  # whether several versions of one figure are expected (Tushare, EDGAR)


@dataclass(frozen=True)
class Input:
    """The provider's file as it is named in messages (`shown`) and in rows (`ref`)."""

    path: Path
    shown: str
    ref: str
    retrieved: str
    kind: str  # csv, xlsx or json (by content, not name)


def _input(root: Path, path: Path) -> Input:
    """The file to import, checked to exist and sniffed; `ref` is workspace-relative inside the workspace."""
    path = Path(path)
    shown = str(path)
    if not path.is_file():
        raise DataError("file not found" if not path.exists() else "not a file", shown)
    try:
        ref = path.resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        ref = path.name
    m = _DATED_NAME.search(path.stem)
    retrieved = m.group(1) if m else date.fromtimestamp(path.stat().st_mtime).isoformat()
    with open(path, "rb") as fh:
        head = fh.read(512)
    body = head[3:] if head.startswith(b"\xef\xbb\xbf") else head
    kind = "xlsx" if body.startswith(b"PK\x03\x04") else "json" if body.lstrip()[:1] in (b"{", b"[") else "csv"
    return Input(path, shown, ref, retrieved, kind)


# -- reading tables (CSV or .xlsx saved from a pandas frame) -------------------------------------------------------
@dataclass(frozen=True)
class TableSpec:
    """What a frame-shaped format must have: its columns, each with what it is."""

    format: str
    what: str
    required: tuple[tuple[str, str], ...]


SPECS = {
    "akshare-sina": TableSpec(
        "akshare-sina",
        "AKShare's stock_financial_report_sina(symbol='利润表') frame",
        (("报告日", "the report date, e.g. 20250630, which the frame starts with"),),
    ),
    "akshare-hk": TableSpec(
        "akshare-hk",
        "AKShare's stock_financial_hk_report_em(symbol='利润表') frame",
        (
            ("REPORT_DATE", "the report date of each row, e.g. 2025-06-30 00:00:00"),
            ("STD_ITEM_NAME", "East Money's name of each line item, e.g. 营业额"),
            ("AMOUNT", "the amount of each line item"),
        ),
    ),
    "tushare-income": TableSpec(
        "tushare-income",
        "Tushare's pro.income frame",
        (
            ("ts_code", "the stock code of each row, e.g. 000333.SZ"),
            ("end_date", "the report period of each row, e.g. 20250630"),
        ),
    ),
}
#: columns that give a frame away, for the hint when a file is given with the wrong --format
SIGNATURES = (
    ("akshare-sina", ("报告日",)),
    ("akshare-sina", ("公告日期", "币种", "类型")),
    ("akshare-hk", ("STD_ITEM_NAME", "REPORT_DATE")),
    ("tushare-income", ("ts_code", "end_date")),
)


def _looks_like(header) -> str | None:
    """The format whose columns the header has, if any."""
    cols = set(header)
    return next((fmt for fmt, sig in SIGNATURES if cols.issuperset(sig)), None)


def _hint(guess: str | None, fmt: str) -> str:
    return f"; it looks like {guess}: import it with --format {guess}" if guess and guess != fmt else ""


def _table(inp: Input, spec: TableSpec) -> Iterator[tuple[int, dict[str, str]]]:
    """The records of a CSV or .xlsx frame, its required columns checked; a file of another kind is refused."""
    if inp.kind == "json":
        guess = "sec-companyfacts" if _json_is_companyfacts(inp.path) else None
        raise DataError(f"a JSON file, not a table saved from {spec.what}{_hint(guess, spec.format)}", inp.shown, 1)

    def on_header(header):
        for col, why in spec.required:
            if col not in header:
                guess = _looks_like(header)
                if guess and guess != spec.format:
                    raise DataError(f"no column {col}: this is not {spec.what}{_hint(guess, spec.format)}",
                                    inp.shown, 1, col)  # fmt: skip
                raise DataError(f"no column {col} ({why}); is this {spec.what}?", inp.shown, 1, col)
        return None

    reader = readers.xlsx_records if inp.kind == "xlsx" else readers.csv_records
    columns = tuple(c for c, _ in spec.required)
    with open(inp.path, "rb") as fh:
        yield from reader(fh, inp.shown, on_header, columns)


def _json_is_companyfacts(path: Path) -> bool:
    try:
        doc = json.loads(path.read_bytes())
    except (ValueError, OSError):
        return False
    return isinstance(doc, dict) and "facts" in doc


def _amount(text: str, inp: Input, line: int | None, column: str) -> str | None:
    """A provider's cell as the value a row prints (in yuan, no trailing .0); None for an empty cell."""
    t = (text or "").strip()
    if t.lower() in _EMPTY:
        return None
    value, why = readers.number_problem(t)
    if value is None:
        raise DataError(f"'{t}' is not a number" + (f": {why}" if why else ""), inp.shown, line, column)
    if readers.out_of_range(t, value):  # the loader's rule: an import never writes what a later read refuses
        raise DataError(f"'{t}' is out of range for a financial figure", inp.shown, line, column)
    return _plain(value)


def _plain(value: float | int) -> str:
    """A number as a plain decimal: 364716076000.0 -> 364716076000, 6201996824.58 -> 6201996824.58."""
    d = Decimal(value) if isinstance(value, int) else Decimal(repr(float(value)))
    if d == d.to_integral_value():
        return str(int(d))
    return format(d.normalize(), "f")


def _date(text: str, inp: Input, line: int | None, column: str, required: bool = True) -> date | None:
    """YYYYMMDD, YYYY-MM-DD (a time after it is ignored) or the same read back as a number (20250630.0)."""
    t = (text or "").strip()
    if t.lower() in _EMPTY:
        if not required:
            return None
        raise DataError("empty; every row needs its date (YYYYMMDD or YYYY-MM-DD)", inp.shown, line, column)
    m = _DATE.match(t)
    try:
        if not m:
            raise ValueError
        return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        raise DataError(f"'{t}' is not a date; the provider writes it as YYYYMMDD or YYYY-MM-DD", inp.shown, line,
                        column) from None  # fmt: skip


def _quarter_end(d: date, inp: Input, line: int | None, column: str) -> Quarter:
    """The calendar quarter a report date ends; a date that is not the last day of a quarter is refused."""
    q = Quarter(d.year, (d.month - 1) // 3 + 1)
    if d != _last_day(q):
        raise DataError(f"'{d:%Y%m%d}' is not the end of a quarter (31 March, 30 June, 30 September or 31 "
                        "December)", inp.shown, line, column)  # fmt: skip
    return q


def _last_day(q: Quarter) -> date:
    month = q.end_month
    return date(q.year, month, 30 if month in (6, 9) else 31)


def _year_to_date(q: Quarter, company: Company) -> str:
    """The basis of a cumulative report ending in `q`: the months since the company's fiscal year began."""
    return f"{3 * company.fiscal_quarter(q)}M"


def _ticker_code(ticker: str) -> str:
    """000333.SZ -> 000333; 1810.HK -> 1810 (leading zeros dropped); anything else as it is, upper case."""
    t = ticker.strip().upper()
    m = _A_SHARE.match(t)
    if m:
        return m.group(1)
    m = _HK.match(t)
    return m.group(1) if m else t


def _check_currency(text: str, company: Company, inp: Input, line: int, column: str) -> None:
    code = {"人民币": "CNY", "RMB": "CNY"}.get(text.strip().upper(), text.strip().upper())
    expected = {"RMB": "CNY"}.get(company.currency, company.currency)
    if code and code != expected:
        raise DataError(f"'{text}' is not {company.id}'s currency ({company.currency} in data/companies.toml); "
                        "its figures would be compared in the wrong currency", inp.shown, line, column)  # fmt: skip


# -- akshare-sina -------------------------------------------------------------------------------------------------
def read_sina(inp: Input, company: Company, pmap: ProviderMap) -> Parsed:
    """ak.stock_financial_report_sina(symbol='利润表'): one row per report date, one column per statement line."""
    out = Parsed(identified=False)
    meta = {"数据源", "是否审计", "公告日期", "币种", "类型", "更新日期", "报告日"}
    for line, r in _table(inp, SPECS["akshare-sina"]):
        out.unmapped.update(k for k in r if k and k not in meta | set(pmap.labels) and not k.startswith("Unnamed:"))
        q = _quarter_end(_date(r["报告日"], inp, line, "报告日"), inp, line, "报告日")
        kind = r.get("类型", "").strip()
        if kind and kind != "合并期末":
            what = "the parent company's own statement" if kind.startswith("母公司") else f"'{kind}'"
            raise DataError(f"类型 is {what}, not the consolidated one (合并期末); reportgen compares consolidated "
                            "statements", inp.shown, line, "类型")  # fmt: skip
        _check_currency(r.get("币种", ""), company, inp, line, "币种")
        published = _date(r.get("公告日期", ""), inp, line, "公告日期", required=False)
        for title, m in pmap.labels.items():
            text = _amount(r.get(title, ""), inp, line, title)
            if text is None:
                continue
            if float(text) == 0:
                out.left_out["zero cells (Sina prints 0 for lines a company does not report)"] += 1
                continue
            out.figures.append(
                Figure(
                    q,
                    _year_to_date(q, company),
                    m.item,
                    title,
                    text,
                    line,
                    f"报告日 {r['报告日']}: {title} {r[title]}",
                    published.isoformat() if published else "",
                    m.priority,
                    note=f"公告日期 {r.get('公告日期') or 'not given'}, 类型 {kind or 'not given'}",
                )
            )
    out.symbol = _sina_symbol(company)
    return out


def _sina_symbol(company: Company) -> str:
    m = _A_SHARE.match(company.ticker.strip())
    return f"{m.group(2).lower()}{m.group(1)}" if m else company.ticker


# -- akshare-hk ---------------------------------------------------------------------------------------------------
def read_hk(inp: Input, company: Company, pmap: ProviderMap) -> Parsed:
    """ak.stock_financial_hk_report_em(symbol='利润表', indicator='报告期'): one row per report date and item."""
    out = Parsed()
    code = _ticker_code(company.ticker)
    for line, r in _table(inp, SPECS["akshare-hk"]):
        ident = r.get("SECUCODE") or r.get("SECURITY_CODE") or ""
        if ident and _ticker_code(ident if "." in ident else f"{ident}.HK") != code:
            col = "SECUCODE" if r.get("SECUCODE") else "SECURITY_CODE"
            raise DataError(f"{col} {ident} is not {company.id}'s ticker {company.ticker} (data/companies.toml)",
                            inp.shown, line, col)  # fmt: skip
        fy = r.get("FISCAL_YEAR", "").strip()
        if re.fullmatch(r"\d{2}-?\d{2}", fy) and int(fy[:2]) != company.fiscal_year_end:  # "12-31" (or "1231")
            raise DataError(f"FISCAL_YEAR {fy}: the fiscal year ends in month {int(fy[:2])}, but data/companies.toml "
                            f"gives {company.id} fiscal_year_end = {company.fiscal_year_end}", inp.shown, line,
                            "FISCAL_YEAR")  # fmt: skip
        name = r["STD_ITEM_NAME"].strip()
        m = pmap.labels.get(name)
        if m is None:
            out.unmapped.add(name)
            continue
        text = _amount(r["AMOUNT"], inp, line, "AMOUNT")
        if text is None:
            continue
        if float(text) == 0:
            out.left_out["zero amounts (East Money prints 0 for lines a company does not report)"] += 1
            continue
        q = _quarter_end(_date(r["REPORT_DATE"], inp, line, "REPORT_DATE"), inp, line, "REPORT_DATE")
        start = _date(r.get("START_DATE", ""), inp, line, "START_DATE", required=False)
        basis = _year_to_date(q, company) if start is None else _basis_from_start(start, q, company, inp, line)
        excerpt = f"REPORT_DATE {r['REPORT_DATE']}, STD_ITEM_NAME {name}, AMOUNT {r['AMOUNT']}"
        out.figures.append(Figure(q, basis, m.item, name, text, line, excerpt, "", m.priority,
                                  note="currency as in data/companies.toml (the frame names none)"))  # fmt: skip
    out.symbol = f"{int(code):05d}.HK" if code.isdigit() else company.ticker
    return out


def _basis_from_start(start: date, q: Quarter, company: Company, inp: Input, line: int) -> str:
    """START_DATE to the report date: a quarter (3M) or the year to date of the company's fiscal year."""
    months = (q.year * 12 + q.end_month) - (start.year * 12 + start.month) + 1
    if start.day == 1 and (months == 3 or f"{months}M" == _year_to_date(q, company)):
        return f"{months}M"
    raise DataError(f"START_DATE {start} to the end of {q} is neither a quarter nor the year to date of "
                    f"{company.id}'s fiscal year (ending in month {company.fiscal_year_end})", inp.shown, line,
                    "START_DATE")  # fmt: skip


# -- tushare-income -----------------------------------------------------------------------------------------------
#: report_type -> (rank in the order versions were published, what it is); types not listed are left out
TUSHARE_TYPES = {
    "5": (0, "report_type 5 (调整前合并报表: as first published, kept after a change)"),
    "1": (1, "report_type 1 (合并报表)"),
    "4": (2, "report_type 4 (调整合并报表: the prior-year column of the next year's report)"),
}


def read_tushare(inp: Input, company: Company, pmap: ProviderMap) -> Parsed:
    """pro.income: one row per report period and report type; versions become published and restated figures."""
    out = Parsed(versioned=True)
    code = company.ticker.strip().upper()
    seen: set[tuple] = set()
    for line, r in _table(inp, SPECS["tushare-income"]):
        if r["ts_code"].strip().upper() != code:
            raise DataError(f"ts_code {r['ts_code']} is not {company.id}'s ticker {company.ticker} "
                            "(data/companies.toml)", inp.shown, line, "ts_code")  # fmt: skip
        rtype = _int_text(r.get("report_type", "") or "1")
        if rtype not in TUSHARE_TYPES:
            why = "single-quarter" if rtype in ("2", "3") else "parent-company or other"
            out.left_out[f"rows of report_type {rtype} ({why} figures)"] += 1
            continue
        flag = _int_text(r.get("update_flag", "") or "1")
        values = tuple((c, r.get(c, "")) for c in pmap.labels)
        if (r["end_date"], rtype, flag, values) in seen:
            continue  # Tushare repeats some rows exactly
        seen.add((r["end_date"], rtype, flag, values))
        q = _quarter_end(_date(r["end_date"], inp, line, "end_date"), inp, line, "end_date")
        ann = _date(r.get("ann_date", "") or r.get("f_ann_date", ""), inp, line, "ann_date", required=False)
        rank, what = TUSHARE_TYPES[rtype]
        note = what + ("" if flag != "0" else ", update_flag 0 (before a correction)")
        for col, m in pmap.labels.items():
            text = _amount(r.get(col, ""), inp, line, col)
            if text is None:
                continue
            if float(text) == 0:
                out.left_out["zero cells (Tushare prints 0 for some lines a company does not report)"] += 1
                continue
            published = ann.isoformat() if ann else ""
            order = (rank, flag != "0", published, line)
            excerpt = f"end_date {r['end_date']}, report_type {rtype}, {col} {r[col]}"
            out.figures.append(
                Figure(
                    q, _year_to_date(q, company), m.item, col, text, line, excerpt, published, m.priority, order, note
                )  # fmt: skip
            )
    out.symbol = code
    return out


def _int_text(text: str) -> str:
    """'1', '1.0' -> '1' (a code column read back as a number)."""
    t = text.strip()
    return t[:-2] if t.endswith(".0") else t


# -- sec-companyfacts ---------------------------------------------------------------------------------------------
#: days of a duration -> basis
SEC_DAYS = {"3M": (80, 100), "6M": (172, 192), "9M": (263, 283), "12M": (355, 375)}


def read_companyfacts(inp: Input, company: Company, pmap: ProviderMap) -> Parsed:
    """SEC companyfacts JSON: each concept's facts in the company's currency, of a quarter or a year to date."""
    doc, text = _json(inp)
    out = Parsed(versioned=True)
    _check_cik(doc, text, company, pmap, inp)
    out.cik = f"{int(doc['cik']):010d}"
    facts = doc.get("facts")
    if not isinstance(facts, dict):
        raise DataError("no 'facts' object: this is not SEC companyfacts JSON", inp.shown, None, "facts")
    unit = {"RMB": "CNY"}.get(company.currency, company.currency)
    other_units: set[str] = set()
    for key, m in pmap.labels.items():
        taxonomy, _, concept = key.partition(":")
        entry = facts.get(taxonomy, {}).get(concept) if isinstance(facts.get(taxonomy), dict) else None
        if not isinstance(entry, dict):
            continue
        units = entry.get("units")
        if not isinstance(units, dict):
            raise DataError("no 'units' object", inp.shown, None, f"facts.{taxonomy}.{concept}.units")
        other_units.update(u for u in units if u != unit)
        for n, fact in enumerate(units.get(unit) or []):
            where = f"facts.{taxonomy}.{concept}.units.{unit}[{n}]"
            fig = _sec_fact(fact, where, key, m, company, inp, out, f"{key}.units.{unit}[{n}]")
            if fig is not None:
                out.figures.append(fig)
    if not out.figures and other_units:
        raise DataError(f"no {unit} facts for the concepts of the label map ({company.id} reports in "
                        f"{company.currency}); the file has {_or(sorted(other_units))}", inp.shown, None,
                        "units")  # fmt: skip
    return out


def _json(inp: Input) -> tuple[dict, str]:
    """The file as a JSON object; a table or a broken file is refused with the line."""
    if inp.kind != "json":
        what = "an Excel workbook" if inp.kind == "xlsx" else "a CSV table"
        guess = None
        if inp.kind == "csv":
            with open(inp.path, "rb") as fh:
                first = fh.readline().decode("utf-8-sig", "replace")
            guess = _looks_like([h.strip() for h in next(csv.reader([first]), [])])
        else:
            guess = _xlsx_guess(inp)
        raise DataError(f"{what}, not SEC companyfacts JSON{_hint(guess, 'sec-companyfacts')}", inp.shown, 1)
    raw = inp.path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"not UTF-8 text (byte {e.start})", inp.shown) from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"not valid JSON: {e.msg}", inp.shown, e.lineno) from None
    if not isinstance(doc, dict):
        raise DataError("not SEC companyfacts JSON: the file is not an object with cik, entityName and facts",
                        inp.shown, 1)  # fmt: skip
    return doc, text


def _xlsx_guess(inp: Input) -> str | None:
    """The format a workbook's header looks like (for the hint of a message only)."""
    headers: list[list[str]] = []
    try:
        with open(inp.path, "rb") as fh:
            rows = readers.xlsx_records(fh, inp.shown, headers.append)
            next(rows, None)
            rows.close()
    except ReportgenError:
        pass
    return _looks_like(headers[0]) if headers else None


def _check_cik(doc: dict, text: str, company: Company, pmap: ProviderMap, inp: Input) -> None:
    """The file's CIK against the company's ticker (through the label map's [cik] table)."""
    line = _json_line(text, "cik")
    cik, name = doc.get("cik"), str(doc.get("entityName", "")).strip()
    if cik is None:
        raise DataError("no cik: SEC companyfacts name the filer by its number", inp.shown, line, "cik")
    try:
        cik = int(cik)
    except (TypeError, ValueError):
        raise DataError(f"'{cik}' is not a CIK; SEC companyfacts name the filer by its number", inp.shown, line,
                        "cik") from None  # fmt: skip
    expected = pmap.cik.get(company.ticker.strip().upper())
    who = f" ({name})" if name else ""
    if expected is None:
        raise DataError(f"no CIK for {company.id}'s ticker {company.ticker} in {' or '.join(pmap.files)}, so this "
                        f"file's cik {cik}{who} cannot be checked; add \"{company.ticker}\" = <CIK> under [cik] in "
                        f"data/providers/sec-companyfacts.toml", inp.shown, line, "cik")  # fmt: skip
    if cik != expected:
        raise DataError(f"cik {cik}{who} is not {company.id}'s: its ticker {company.ticker} (data/companies.toml) is "
                        f"CIK {expected} in {' or '.join(pmap.files)}", inp.shown,
                        line, "cik")  # fmt: skip


def _json_line(text: str, key: str) -> int | None:
    m = re.search(r'"' + re.escape(key) + r'"\s*:', text)
    return text.count("\n", 0, m.start()) + 1 if m else None


def _sec_fact(fact, where: str, key: str, m: Mapping, company: Company, inp: Input, out: Parsed, anchor: str):
    """One XBRL fact as a Figure; None for an instant, a duration that is neither a quarter nor a year to date."""
    if not isinstance(fact, dict):
        raise DataError("a fact is an object with start, end, val, accn, form and filed", inp.shown, None, where)
    if "start" not in fact:
        return None  # an instant (a balance), not a period's figure
    start = _date(str(fact.get("start", "")), inp, None, f"{where}.start")
    end = _date(str(fact.get("end", "")), inp, None, f"{where}.end")
    val = fact.get("val")
    if isinstance(val, bool) or not isinstance(val, (int, float)) or not math.isfinite(val):
        raise DataError(f"val {val!r} is not a number", inp.shown, None, f"{where}.val")
    days = (end - start).days + 1
    basis = next((b for b, (lo, hi) in SEC_DAYS.items() if lo <= days <= hi), None)
    q = _nearest_quarter(end)
    if basis is None or q is None or (basis != "3M" and basis != _year_to_date(q, company)):
        out.left_out["facts of periods that are neither a quarter nor a year to date"] += 1
        return None
    filed = str(fact.get("filed", ""))
    filed_date = _date(filed, inp, None, f"{where}.filed", required=False)
    filed = filed_date.isoformat() if filed_date else ""
    form, accn = str(fact.get("form", "")), str(fact.get("accn", ""))
    excerpt = f"{key} {start}..{end} val {val} ({form} accn {accn}, filed {filed}" + (
        f", frame {fact['frame']})" if fact.get("frame") else ")"
    )
    period = " ".join(str(fact[k]) for k in ("fy", "fp") if fact.get(k) is not None)  # SEC may give null for either
    note = f"{form} filed {filed} (accn {accn}" + (f", fy {period})" if period else ")")
    # a 52/53-week company's rows give the period's end date, which the loader aligns and marks calendarized
    period_end = end.isoformat() if company.fiscal_calendar == "52-53-week" else ""
    return Figure(
        q, basis, m.item, key, _plain(val), None, excerpt, filed, m.priority, (filed, accn), note, anchor=anchor,
        period_end=period_end,
    )  # fmt: skip


def _nearest_quarter(end: date) -> Quarter | None:
    """The calendar quarter whose last day is within readers.CALENDARIZE_DAYS of `end` (52/53-week fiscal years
    end near it), as the data files' loader aligns them."""
    return readers.calendar_quarter(end.isoformat())


READERS: dict[str, Callable[[Input, Company, ProviderMap], Parsed]] = {
    "akshare-sina": read_sina,
    "akshare-hk": read_hk,
    "tushare-income": read_tushare,
    "sec-companyfacts": read_companyfacts,
}


# -- versions -----------------------------------------------------------------------------------------------------
def resolve_versions(parsed: Parsed, inp: Input) -> list[Figure]:
    """One figure per (period, basis, item) and vintage: the first label of the map that has one; of its versions
    the first is `published` and the last that differs from it `restated`. A file that cannot hold versions (one
    row per report date) and gives two different figures for one period is refused."""
    groups: dict[tuple, list[Figure]] = defaultdict(list)
    for f in parsed.figures:
        groups[(f.quarter, f.basis, f.item)].append(f)
    out = []
    for (q, basis, item), figs in sorted(groups.items(), key=lambda kv: (kv[0][0], BASES[kv[0][1]], kv[0][2])):
        best = min(f.priority for f in figs)
        figs = sorted((f for f in figs if f.priority == best), key=lambda f: f.order)
        first = figs[0]
        later = [f for f in figs[1:] if not _agree(first.text, "yuan", f.text, "yuan", item)]
        if later and not parsed.versioned:
            other = later[0]
            raise DataError(f"two different figures for {other.key} {q} {basis}: {first.text} (line {first.line}) "
                            f"and {other.text}; keep one row per report date", inp.shown, other.line,
                            other.key)  # fmt: skip
        out.append(first)
        if later:
            last = later[-1]
            when = f"first published {first.published}" if first.published else "first published"
            restates = f"restates the figure {when} ({first.text} yuan, {first.note})"
            out.append(replace(last, vintage="restated", note=f"{last.note}; {restates}"))
    return out


# -- figures -> rows ----------------------------------------------------------------------------------------------
def _agree(a: str, a_unit: str, b: str, b_unit: str, item: str) -> bool:
    """Whether two printed figures are the same figure: equal within the rounding of the less precise one (an
    expense compared as a magnitude, since sources print it with either sign)."""
    x, y = float(readers.parse_number(a)) * UNITS[a_unit], float(readers.parse_number(b)) * UNITS[b_unit]
    if item in EXPENSE_ITEMS:
        x, y = abs(x), abs(y)
    slack = max(readers.printed_uncertainty(a) * UNITS[a_unit], readers.printed_uncertainty(b) * UNITS[b_unit])
    return abs(x - y) <= slack + 1e-12 * max(abs(x), abs(y))


def _choose_label(m: Mapping, company: Company, label_map: dict[str, str], used: dict[str, Counter]) -> str | None:
    """The statement label for an item: the map's own label where the company's file already uses it, else the
    company's usual label for the item, else the map's first label that data/labels.toml maps to the item."""
    own = used.get(m.item, Counter())
    for name in m.labels:
        if own.get(name):
            return name
    if own:
        return own.most_common(1)[0][0]
    return next((name for name in m.labels if label_map.get(name) == m.item), None)


def _record(fig: Figure, label: str, company: Company, pmap: ProviderMap, parsed: Parsed, inp: Input) -> dict:
    """A financials record (column -> text) for one figure."""
    where = f"{inp.ref}:{fig.line}" if fig.line else f"{inp.ref}#{fig.anchor}" if fig.anchor else inp.ref
    note = f"{pmap.why[:1].upper()}{pmap.why[1:]}, so {pmap.confidence} confidence" + (
        f"; {fig.note}" if fig.note else ""
    )
    return {
        "period": fig.period_end or str(fig.quarter),
        "basis": fig.basis,
        "label": label,
        "value": fig.text,
        "unit": "yuan",
        "currency": company.currency,
        "vintage": fig.vintage,
        "report": f"{pmap.name}, retrieved {inp.retrieved}",
        "confidence": pmap.confidence,
        "source_url": pmap.url(parsed.symbol, parsed.cik),
        "source_excerpt": fig.excerpt,
        "ref": where,
        "note": note + ".",
        "published": fig.published,
    }


# -- the company's file -------------------------------------------------------------------------------------------
@dataclass
class Existing:
    """data/financials/ID.csv as it is: its text lines, header and checked rows by key."""

    path: Path
    rel: str
    lines: list[str]
    header: list[str]
    bom: bool
    newline: str
    rows: dict[tuple, tuple[Any, dict, int]]  # (quarter, basis, item, vintage) -> (ReportedRow, record, line)


def _read_existing(root: Path, company: Company, label_map, fx) -> Existing:
    """The company's CSV, every row checked as the loader checks it (a broken file is refused before any change)."""
    rel = f"data/financials/{company.id}.csv"
    for p in financial_files(root, company.id):
        if p.suffix.lower() == ".xlsx":
            raise DataError(f"the importers merge into CSV only; save this workbook as data/financials/{company.id}"
                            ".csv (CSV UTF-8), remove it and import again", f"data/financials/{p.name}")  # fmt: skip
    path = workspace_path(root, rel, DataError)
    if not path.exists():
        return Existing(path, rel, [], list(HEADER), False, "\n", {})
    data = path.read_bytes()
    rows = _check_rows(data, rel, company, label_map, fx)
    text = data.decode("utf-8-sig")
    lines = _physical_lines(text)
    header = next(csv.reader([lines[0]])) if lines else list(HEADER)
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    return Existing(path, rel, lines, [h.strip() for h in header], data.startswith(b"\xef\xbb\xbf"), newline, rows)


def _physical_lines(text: str) -> list[str]:
    """The lines of a file as the CSV reader numbers them, each with its end: only \\n ends a line (str.splitlines
    would also end one at a \\u2028 or \\x85 inside a quoted excerpt, and shift every later line)."""
    lines = [ln + "\n" for ln in text.split("\n")]
    lines[-1] = lines[-1][:-1]
    return lines if lines[-1] else lines[:-1]


def _check_rows(data: bytes, rel: str, company: Company, label_map, fx) -> dict[tuple, tuple]:
    """The rows of a financials file's bytes, keyed by (quarter, basis, item, vintage), checked field by field and
    for cumulative revenue that shrinks."""

    def on_header(header):
        readers.check_financials_header(header, rel)

    out, seen, rows = {}, {}, []
    for line, r in readers.csv_records(io.BytesIO(data), rel, on_header, readers.FINANCIAL_COLUMNS):
        row = readers.reported_row(r, line, rel, company, label_map, fx, seen)
        rows.append(row)
        out[(row.quarter, row.basis, row.item, row.vintage)] = (row, r, line)
    readers.check_cumulative(rows, company)
    return out


# -- the report ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Change:
    """A figure added, in conflict or replaced: the key and both sides as `value unit (where, url)`."""

    period: str
    basis: str
    label: str
    vintage: str
    new: str
    new_source: str
    old: str = ""
    old_source: str = ""

    def what(self) -> str:
        return f"{self.period} {self.basis} {self.label} ({self.vintage})"


@dataclass
class ImportReport:
    """What an import did (or, dry, would do) to data/financials/ID.csv."""

    company: str
    format: str
    source: str
    target: str
    new_file: bool = False
    added: list[Change] = field(default_factory=list)
    unchanged: int = 0
    conflicts: list[Change] = field(default_factory=list)
    replaced: list[Change] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)
    dry_run: bool = False
    raw: str = ""  # fetch: the download kept under data/raw/

    @property
    def changed(self) -> bool:
        return bool(self.added or self.replaced)

    def lines(self) -> list[str]:
        """The summary the CLI prints: counts, each conflict and replacement with both values and sources."""
        out = [f"saved the download as {self.raw}"] if self.raw else []
        into = f"{self.target} (a new file)" if self.new_file and self.added else self.target
        out.append(
            f"{self.company}: {len(self.added)} {'row' if len(self.added) == 1 else 'rows'} added, "
            f"{self.unchanged} unchanged, {len(self.conflicts)} in "
            f"conflict, {len(self.replaced)} replaced ({self.format} file {self.source} into {into})"
        )
        if self.added:
            by_period = Counter(f"{c.period} {c.basis}" for c in self.added)
            out.append("added: " + ", ".join(f"{k} ({n})" for k, n in sorted(by_period.items())))
        for c in self.conflicts:
            out.append(
                f"conflict: {c.what()}: {c.old} in {c.old_source}; {c.new} in {c.new_source}. Kept {c.old} "
                "(--replace takes the file's)"
            )
        for c in self.replaced:
            out.append(f"replaced: {c.what()}: {c.old} ({c.old_source}) by {c.new} ({c.new_source})")
        out += [f"left out: {why}" for why in self.left_out]
        if self.dry_run:
            out.append("dry run: nothing written")
        return out


# -- import -------------------------------------------------------------------------------------------------------
def import_file(root: Path, path: Path, company: str, fmt: str, *, dry_run: bool = False, replace: bool = False):
    """Merge a provider's file into data/financials/<company>.csv and return what changed (an ImportReport).

    Identical figures are left alone; a figure that differs from the one already there for the same period, basis,
    item and vintage is a conflict, kept unless `replace`. With `dry_run` nothing is written."""
    root = Path(root)
    pmap = load_provider_map(root, fmt)
    companies = load_registry(root)
    c = _company(companies, company)
    c.check_aligned()
    inp = _input(root, path)
    labels, overrides = load_labels(root)
    fx = load_fx(root)
    label_map = {**labels, **overrides.get(c.id, {})}
    parsed = READERS[fmt](inp, c, pmap)
    figures = resolve_versions(parsed, inp)
    if not figures:
        why = "; ".join(_left_out_lines(parsed))
        raise DataError(f"no figures to import: none of the labels in {' or '.join(pmap.files)} has a figure in "
                        f"this file{f' (left out: {why})' if why else ''}", inp.shown)  # fmt: skip
    with _import_lock(root, c.id, dry_run):
        existing = _read_existing(root, c, label_map, fx)
        report = ImportReport(c.id, fmt, inp.shown, existing.rel, not existing.lines, dry_run=dry_run)
        rows = _rows(figures, c, pmap, parsed, inp, label_map, fx, existing, report)
        plan = _merge(rows, existing, report, replace)
        if not parsed.identified:
            _check_same_company(plan, existing, c, inp)
        if report.changed:
            data = _assemble(existing, plan)
            _validate_merged(data, existing, c, label_map, fx, plan, inp)
            if not dry_run:
                _write_atomic(existing.path, data)
    report.left_out += _left_out_lines(parsed)
    return report


def _company(companies: dict[str, Company], company: str) -> Company:
    if company not in companies:
        raise DataError(f"'{company}' is not a company in data/companies.toml; known: {', '.join(companies)}",
                        "data/companies.toml", None, "company")  # fmt: skip
    return companies[company]


@dataclass
class _Row:
    """A new row: its record, the checked ReportedRow and the figure it came from."""

    record: dict
    row: Any
    figure: Figure


def _rows(figures, company, pmap, parsed, inp, label_map, fx, existing, report) -> list[_Row]:
    """Each figure as a checked record, labelled as the company's own rows are."""
    used: dict[str, Counter] = defaultdict(Counter)
    for row, _, _ in existing.rows.values():
        used[row.item][row.label] += 1
    out, seen, no_label, no_fx = [], {}, {}, Counter()
    for fig in figures:
        m = pmap.labels[fig.key]
        label = _choose_label(m, company, label_map, used)
        if label is None:
            no_label.setdefault(fig.key, m)
            continue
        rec = _record(fig, label, company, pmap, parsed, inp)
        if company.currency not in ("RMB", "CNY") and (company.currency, str(fig.quarter), fig.basis) not in fx:
            no_fx[f"{fig.quarter} {fig.basis}"] += 1
            continue
        try:
            row = readers.reported_row(rec, fig.line or 0, inp.shown, company, label_map, fx, seen)
        except DataError as e:
            raise DataError(e.message, inp.shown, fig.line, fig.key) from None
        out.append(_Row(rec, row, fig))
    for key, m in no_label.items():
        report.left_out.append(
            f"{key} ({m.item}): data/labels.toml maps none of {', '.join(repr(n) for n in m.labels)} to {m.item} "
            f"for {company.id}; add the company's label for it there and import again"
        )
    if no_fx:
        periods = ", ".join(sorted(no_fx))
        report.left_out.append(f"{sum(no_fx.values())} figures of {periods}: no {company.currency} rate in "
                               "data/fx.csv for those periods; add the rates and import again")  # fmt: skip
    return out


@dataclass
class _Plan:
    """What the merge does to the file: lines replaced (line -> record) and records appended (with their rows)."""

    replace: dict[int, _Row] = field(default_factory=dict)
    append: list[_Row] = field(default_factory=list)
    compared: list[tuple[_Row, str, bool]] = field(default_factory=list)  # (new, the existing figure, agree)


def _merge(rows: list[_Row], existing: Existing, report: ImportReport, replace_: bool) -> _Plan:
    """Compare each new row with the figure already there for its period, basis, item and vintage."""
    plan = _Plan()
    for new in rows:
        r = new.row
        found = existing.rows.get((r.quarter, r.basis, r.item, r.vintage))
        new_side = f"{new.record['value']} yuan", f"{new.record['ref']}, {new.record['source_url']}"
        if found is None:
            plan.append.append(new)
            report.added.append(Change(str(r.quarter), r.basis, r.label, r.vintage, *new_side))
            continue
        old, old_rec, line = found
        same = _agree(old_rec["value"], old.unit, new.record["value"], "yuan", r.item)
        old_text = f"{old_rec['value']} {old.unit}"
        plan.compared.append((new, f"{old.label} {old.quarter} {old.basis}: {old_text}", same))
        if same:
            report.unchanged += 1
            continue
        change = Change(str(r.quarter), r.basis, old.label, r.vintage, *new_side, old_text,
                        f"{existing.rel}:{line}, {old.source_url}")  # fmt: skip
        if replace_:
            rec = dict(new.record, label=old.label)
            rec["note"] = f"{rec['note']} Replaced {old_text} from {old.source_url}."
            plan.replace[line] = _Row(rec, new.row, new.figure)
            report.replaced.append(change)
        else:
            report.conflicts.append(change)
    return plan


def _check_same_company(plan: _Plan, existing: Existing, company: Company, inp: Input) -> None:
    """For a file that does not name its company (Sina): refuse it when no figure it shares with the company's data
    agrees, which is what another company's file looks like."""
    if len(plan.compared) < 3 or any(same for _, _, same in plan.compared):
        return
    new, old, _ = plan.compared[0]
    raise DataError(f"none of the {len(plan.compared)} figures this file shares with {existing.rel} agrees (e.g. "
                    f"{old} there, {new.record['value']} yuan here); the file names no stock code, so it is probably "
                    f"not {company.id}'s", inp.shown, new.figure.line, new.figure.key)  # fmt: skip


def _header(existing: Existing, plan: _Plan) -> list[str]:
    """The file's header, with the optional columns the new rows fill added at its end."""
    header = list(existing.header)
    records = [r.record for r in plan.append + list(plan.replace.values())]
    for col in HEADER:
        if col not in header and any(rec.get(col) for rec in records):
            header.append(col)
    return header


def _csv_line(values: list[str], newline: str) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator=newline).writerow(values)
    return buf.getvalue()


def _assemble(existing: Existing, plan: _Plan) -> bytes:
    """The new file: every existing line as it was (the header extended, replaced lines rewritten), then the new
    rows in period order."""
    header = _header(existing, plan)
    nl = existing.newline
    lines = list(existing.lines) or [_csv_line(header, nl)]
    if header != existing.header and existing.lines:
        lines[0] = _csv_line(header, nl)
    for line, new in plan.replace.items():
        lines[line - 1] = _csv_line([new.record.get(h, "") for h in header], nl)
    if lines and not lines[-1].endswith(("\n", "\r")):
        lines[-1] += nl
    order = sorted(plan.append, key=lambda n: (n.row.quarter, BASES[n.row.basis], n.row.label, n.row.vintage))
    lines += [_csv_line([n.record.get(h, "") for h in header], nl) for n in order]
    text = "".join(lines)
    return (b"\xef\xbb\xbf" if existing.bom else b"") + text.encode("utf-8")


def _validate_merged(data: bytes, existing: Existing, company, label_map, fx, plan: _Plan, inp: Input) -> None:
    """Check the merged file as the loader will, before it is written; a problem in a new row names the provider's
    file and line."""
    try:  # the merged file read back as the loader reads it: every row checked, cumulative figures that shrink
        rows = readers.rows_from_file(io.BytesIO(data), ".csv", existing.rel, company, label_map, fx)
        readers.check_cumulative(list(rows), company)
    except DataError as e:
        first_new = len(existing.lines) + (0 if existing.lines else 1) + 1
        order = sorted(plan.append, key=lambda n: (n.row.quarter, BASES[n.row.basis], n.row.label, n.row.vintage))
        if e.line in plan.replace:
            fig, what = plan.replace[e.line].figure, f"would replace {existing.rel}:{e.line}"
        elif e.line is not None and 0 <= e.line - first_new < len(order):
            fig, what = order[e.line - first_new].figure, f"would add to {existing.rel}"
        else:
            raise
        raise DataError(f"{e.message} (in the row this file {what})", inp.shown, fig.line, fig.key) from None


def _left_out_lines(parsed: Parsed) -> list[str]:
    out = [f"{n} {why}" for why, n in sorted(parsed.left_out.items())]
    if parsed.unmapped:
        names = sorted(parsed.unmapped)
        shown = ", ".join(names[:8]) + (", …" if len(names) > 8 else "")
        out.append(f"{len(names)} label{'s' if len(names) > 1 else ''} the label map does not name: {shown}")
    return out


# -- writing ------------------------------------------------------------------------------------------------------
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder (fsync, then rename): a reader sees the
    old file or the new one, never half of one. The mode is the old file's, or the umask's for a new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash
    except OSError:
        pass
    finally:
        os.close(dir_fd)


@contextmanager
def _import_lock(root: Path, company: str, dry_run: bool):
    """Two imports into one workspace take turns (the read-compare-write of a file is not lost); a dry run writes
    nothing and takes no lock."""
    if dry_run:
        yield
        return
    from .ledger import Lock

    busy = "another reportgen {what} ({who}) is writing this workspace's data; nothing was imported. Try again when "
    with Lock(Path(root) / "output" / ".import.lock", busy + "it has finished", what=f"import {company}"):
        yield


# -- fetch --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Download:
    """What `fetch` asks a provider for; `call(download)` returns a pandas DataFrame (AKShare, Tushare) or the JSON
    text (SEC)."""

    provider: str
    format: str
    company: str
    symbol: str
    url: str
    token: str = field(default="", repr=False)
    user_agent: str = ""


def fetch(root: Path, company: str, provider: str, *, dry_run=False, replace=False, progress=None, env=os.environ,
          call=None) -> ImportReport:  # fmt: skip
    """Download a company's income statement from `provider` (akshare, tushare or sec), keep it under data/raw/
    (named after the company, format and date) and import it. `call` replaces the network call (tests pass a saved
    frame); without it the library must be installed (pip install 'reportgen[fetch]') and the network reachable,
    else this fails at once with a message that says which."""
    say = progress or (lambda msg: None)
    root = Path(root)
    c = _company(load_registry(root), company)
    fmt = _fetch_format(provider, c)
    pmap = load_provider_map(root, fmt)
    dl = _download(provider, fmt, c, pmap, env)
    if provider == "tushare" and not dl.token and call is None:
        raise FetchError("REPORTGEN_TUSHARE_TOKEN is not set: Tushare needs your API token (tushare.pro, 个人主页 → "
                         "接口TOKEN); export REPORTGEN_TUSHARE_TOKEN=... and fetch again")  # fmt: skip
    if call is None and fmt != "sec-companyfacts" and not _installed(_library(dl)):  # before "downloading"
        raise _not_installed(_library(dl))
    say(f"{c.id}: downloading {fmt} from {dl.url}")
    payload = (call or default_call)(dl)
    data, suffix = _raw_bytes(payload, dl)
    if dry_run:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{c.id}-{fmt}-{date.today().isoformat()}{suffix}"
            path.write_bytes(data)
            return import_file(root, path, c.id, fmt, dry_run=True, replace=replace)
    path = _save_raw(root, c.id, fmt, data, suffix)
    rel = path.relative_to(root).as_posix()
    say(f"{c.id}: saved {rel}")
    report = import_file(root, path, c.id, fmt, replace=replace)
    report.raw = rel
    return report


def _fetch_format(provider: str, company: Company) -> str:
    """The format a provider gives for the company's listing."""
    if provider not in PROVIDERS:
        raise FetchError(f"unknown provider '{provider}'; use {_or(PROVIDERS)}", None, None, "provider")
    ticker = company.ticker.strip()
    if provider == "akshare" and (_A_SHARE.match(ticker) or _HK.match(ticker)):
        return "akshare-sina" if _A_SHARE.match(ticker) else "akshare-hk"
    if provider == "tushare" and _A_SHARE.match(ticker):
        return "tushare-income"
    if provider == "sec":
        return "sec-companyfacts"
    listed = "A-shares (000333.SZ) and Hong Kong stocks (1810.HK)" if provider == "akshare" else "A-shares"
    raise FetchError(f"{provider} fetches {listed} here; {company.id}'s ticker is {company.ticker} "
                     f"({company.exchange}); try --provider {'akshare' if _HK.match(ticker) else 'sec'}",
                     "data/companies.toml", company.line, "ticker")  # fmt: skip


def _download(provider: str, fmt: str, company: Company, pmap: ProviderMap, env) -> Download:
    if fmt == "sec-companyfacts":
        cik = pmap.cik.get(company.ticker.strip().upper())
        if cik is None:
            raise FetchError(f"no CIK for {company.id}'s ticker {company.ticker} in {' or '.join(pmap.files)}; add "
                             f"\"{company.ticker}\" = <CIK> under [cik] in data/providers/sec-companyfacts.toml if the "
                             "company files with the SEC (EDGAR's company search shows it)", None, None,
                             "cik")  # fmt: skip
        from . import __version__

        agent = env.get("REPORTGEN_SEC_USER_AGENT") or f"reportgen/{__version__} {env.get('REPORTGEN_MAIL_FROM', '')}"
        return Download(provider, fmt, company.id, f"{cik:010d}", pmap.url(cik=f"{cik:010d}"), "", agent.strip())
    if fmt == "akshare-hk":
        symbol = f"{int(_ticker_code(company.ticker)):05d}"  # 1810.HK -> 01810
        shown = f"{symbol}.HK"
    else:
        symbol = shown = _sina_symbol(company) if fmt == "akshare-sina" else company.ticker.strip().upper()
    token = env.get("REPORTGEN_TUSHARE_TOKEN", "").strip() if provider == "tushare" else ""
    return Download(provider, fmt, company.id, symbol, pmap.url(shown), token)


def _library(dl: Download) -> str:
    return "akshare" if dl.provider == "akshare" else "tushare"


def _installed(name: str) -> bool:
    """Whether `import name` would find the module (without importing it: akshare takes seconds)."""
    import importlib.util
    import sys

    if name in sys.modules:
        return sys.modules[name] is not None
    return importlib.util.find_spec(name) is not None


def _not_installed(name: str) -> FetchError:
    return FetchError(f"{name} is not installed: install the fetch extra, pip install 'reportgen[fetch]', or "
                      f"download the file yourself and use reportgen import")  # fmt: skip


def default_call(dl: Download):
    """The network call of each provider: the library's function (AKShare, Tushare) or an HTTPS GET (SEC)."""
    if dl.format == "sec-companyfacts":
        return _get_sec(dl)
    name = _library(dl)
    try:
        lib = __import__(name)
    except ImportError:
        raise _not_installed(name) from None
    _reachable(dl.url)
    try:
        with _socket_timeout(60), _requests_timeout(60):
            # the calls as akshare 1.19.5 and tushare 1.4.29 define them (tests/data/importers/FORMATS.md)
            if dl.format == "akshare-sina":
                return lib.stock_financial_report_sina(stock=dl.symbol, symbol="利润表")
            if dl.format == "akshare-hk":
                return lib.stock_financial_hk_report_em(stock=dl.symbol, symbol="利润表", indicator="报告期")
            import pandas as pd

            # DataApi.query posts the keywords as the API's params; each report_type is a request of its own
            pro = lib.pro_api(dl.token)  # its requests.post has a timeout of its own (30 s)
            frames = [pro.income(ts_code=dl.symbol, report_type=t) for t in ("1", "4", "5")]
            found = [f for f in frames if f is not None and len(f)]
            # no rows at all: the (empty) frame itself, which is reported as such
            return pd.concat(found, ignore_index=True) if found else frames[0]
    except OSError as e:
        raise FetchError(f"no network: {name} could not reach {dl.url} ({e}); nothing was imported") from None
    except Exception as e:  # a library's own failures (format changed, refused token) come in many kinds
        text = str(e).replace(dl.token, "***") if dl.token else str(e)
        raise FetchError(f"{name} failed for {dl.symbol}: {type(e).__name__}: {text}") from None


def _reachable(url: str) -> None:
    """Fail at once, not after a library's retries, when the provider's host (or the proxy the environment names for
    it, which the libraries use) cannot be reached."""
    from urllib.parse import urlsplit
    from urllib.request import getproxies, proxy_bypass

    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    proxy = getproxies().get(parts.scheme)
    if proxy and not proxy_bypass(host):
        via = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = via.hostname or host, via.port or 80
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as e:
        raise FetchError(f"no network: cannot reach {host}:{port} ({e.strerror or e}); nothing was fetched or "
                         "imported") from None  # fmt: skip


@contextmanager
def _socket_timeout(seconds: float):
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


@contextmanager
def _requests_timeout(seconds: float):
    """A timeout for the `requests` calls a library makes without one, for the duration of the call.

    AKShare calls `requests.get(url, params=params)` with no timeout; requests then hands `timeout=None` down to the
    socket, which waits for ever (socket.setdefaulttimeout does not apply), so a provider that accepts the
    connection and never answers would hang `fetch`. Calls that pass their own timeout keep it."""
    try:
        from requests import sessions
    except ImportError:  # the library does not use requests
        yield
        return
    original = sessions.Session.request

    def request(self, method, url, *args, **kwargs):
        if len(args) < 7 and kwargs.get("timeout") is None:  # (positionally, timeout follows url and 6 others)
            kwargs["timeout"] = seconds
        return original(self, method, url, *args, **kwargs)

    sessions.Session.request = request
    try:
        yield
    finally:
        sessions.Session.request = original


def _get_sec(dl: Download) -> bytes:
    """GET the companyfacts JSON with the User-Agent SEC asks for."""
    import urllib.error
    import urllib.request

    req = urllib.request.Request(dl.url, headers={"User-Agent": dl.user_agent, "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.read()
    except urllib.error.HTTPError as e:
        if e.code == 403:
            raise FetchError("SEC refused the request (403); set REPORTGEN_SEC_USER_AGENT to your organisation "
                             "and address, e.g. 'Example Corp ir@example.com', as SEC asks of automated "
                             "access") from None  # fmt: skip
        if e.code == 404:
            raise FetchError(f"SEC has no company facts at {dl.url} (404): is the CIK right?", None, None,
                             "cik") from None  # fmt: skip
        raise FetchError(f"SEC answered {e.code} {e.reason} for {dl.url}") from None
    except (urllib.error.URLError, OSError) as e:
        why = getattr(e, "reason", e)
        raise FetchError(f"no network: cannot reach {dl.url} ({why}); nothing was fetched or imported") from None


def _raw_bytes(payload, dl: Download) -> tuple[bytes, str]:
    """What a call returned as the bytes kept under data/raw/: a frame as CSV (as `to_csv` writes it), JSON as it
    came."""
    if isinstance(payload, (bytes, bytearray)):
        return bytes(payload), ".json"
    if isinstance(payload, str):
        return payload.encode("utf-8"), ".json"
    if isinstance(payload, dict):
        return json.dumps(payload, ensure_ascii=False, indent=1).encode("utf-8"), ".json"
    if hasattr(payload, "to_csv"):
        if len(payload) == 0:
            also = ""
            if dl.provider == "tushare":  # its client (DataApi.query) answers an HTTP error with an empty frame too
                also = "; or Tushare's server failed (its client then returns no rows): try again later"
            raise FetchError(f"{dl.provider} returned no rows for {dl.symbol}: is the ticker in data/companies.toml "
                             f"right?{also}", "data/companies.toml", None, "ticker")  # fmt: skip
        return payload.to_csv().encode("utf-8"), ".csv"
    raise FetchError(f"the download of {dl.symbol} returned {type(payload).__name__}, not a frame or JSON")


def _save_raw(root: Path, company: str, fmt: str, data: bytes, suffix: str) -> Path:
    """data/raw/<company>-<format>-<date><suffix>; a second download of the day that differs gets -2, -3, ..."""
    folder = workspace_path(root, "data/raw", DataError)
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{company}-{fmt}-{date.today().isoformat()}"
    n = 1
    while True:
        rel = f"data/raw/{stem}{'' if n == 1 else f'-{n}'}{suffix}"
        path = workspace_path(root, rel, DataError)
        if not path.exists():
            _write_atomic(path, data)
            return path
        if path.read_bytes() == data:
            return path
        n += 1


def _or(names) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
