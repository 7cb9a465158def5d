"""Read the workspace's data files as reported: registry, label map, FX rates, financials (CSV or .xlsx).

Each row keeps its file and line so that every later figure can name its source. No arithmetic happens here
beyond parsing a number.
"""

from __future__ import annotations

import csv
import functools
import io
import math
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from .config import check_placeholders, line_of, read_toml
from .errors import DataError
from .periods import Quarter

FINANCIAL_COLUMNS = ("period", "basis", "label", "value", "unit", "currency", "source_url")
OPTIONAL_COLUMNS = ("vintage", "report", "confidence", "source_excerpt", "ref", "note")
UNITS = {
    "yuan": 1.0,
    "thousand": 1e3,
    "ten_thousand": 1e4,
    "million": 1e6,
    "hundred_million": 1e8,
    "billion": 1e9,
    "percent": None,
}
BASES = {"3M": 1, "6M": 2, "9M": 3, "12M": 4}
VINTAGES = ("published", "restated")
ITEMS = (
    "revenue",
    "total_revenue",
    "cost_of_revenue",
    "gross_profit",
    "selling_expenses",
    "sga",
    "admin_expenses",
    "rnd_expenses",
    "operating_profit",
    "net_profit",
    "net_profit_attributable",
    "adjusted_net_profit",
)
STATED_RATIOS = ("selling_expense_ratio", "admin_expense_ratio", "rnd_ratio")
ITEM_LABELS = {
    "revenue": "revenue",
    "total_revenue": "total operating revenue (营业总收入)",
    "cost_of_revenue": "cost of revenue",
    "gross_profit": "gross profit",
    "selling_expenses": "selling expenses",
    "sga": "SG&A",
    "admin_expenses": "administrative expenses",
    "rnd_expenses": "R&D expenses",
    "operating_profit": "operating profit",
    "net_profit": "net profit",
    "net_profit_attributable": "attributable net profit",
    "adjusted_net_profit": "adjusted net profit",
    "selling_expense_ratio": "stated selling-expense ratio",
    "admin_expense_ratio": "stated admin-expense ratio",
    "rnd_ratio": "stated R&D ratio",
}
EXPENSE_ITEMS = ("cost_of_revenue", "selling_expenses", "sga", "admin_expenses", "rnd_expenses")
_CURRENCY = re.compile(r"[A-Z]{3}")
_QUARTER_TEXT = re.compile(r"^\d{4}[Qq][1-4]$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_GROUPED = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")


@dataclass(frozen=True)
class PolicyChange:
    id: str
    title: str
    effective: Quarter
    items: tuple[str, ...]
    source: str = ""


@dataclass(frozen=True)
class Company:
    id: str
    name: str
    name_zh: str
    ticker: str
    exchange: str
    standard: str
    currency: str
    fiscal_year_end: int
    reporting: str
    sector: str
    policy_changes: tuple[PolicyChange, ...] = ()
    line: int | None = None


@dataclass
class Workspace:
    """Everything read from a workspace's data/ folder."""

    root: Path
    companies: dict[str, Company]
    labels: dict[str, str]
    overrides: dict[str, dict[str, str]]
    fx: dict[tuple[str, str, str], tuple[float, str, int]]
    rows: list[dict] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    #: (company, item) pairs reported in any period, including periods not loaded
    reported: set = field(default_factory=set)


def _rel(path: Path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


def parse_number(text: str) -> float | None:
    """A number as written in a data file; None if it is not one. Accepts 1,234.5 and full-width digits."""
    t = str(text).strip()
    if _NUMBER.match(t):  # the common case, without Unicode normalization
        return float(t)
    t = unicodedata.normalize("NFKC", t).strip().replace("\u2212", "-")
    if _GROUPED.match(t):
        t = t.replace(",", "")
    if not _NUMBER.match(t):
        return None
    return float(t)


_TABLE = re.compile(r"^\s*\[\s*\"?([^\]\".]+)\"?\s*\]\s*(#.*)?$")


def _table_lines(text: str) -> dict[str, int]:
    """Line of each top-level [table] header, in one pass (a registry may hold thousands of companies)."""
    out: dict[str, int] = {}
    for i, ln in enumerate(text.splitlines(), start=1):
        m = _TABLE.match(ln)
        if m:
            out.setdefault(m.group(1).strip(), i)
    return out


def load_registry(root: Path) -> dict[str, Company]:
    path = root / "data" / "companies.toml"
    rel = _rel(path, root)
    if not path.exists():
        raise DataError("company registry not found", rel)
    data, text = read_toml(path, rel, DataError)
    if not data:
        raise DataError("the registry lists no companies", rel)
    out = {}
    required = ("name", "name_zh", "ticker", "exchange", "standard", "currency", "reporting")
    tables = _table_lines(text)
    for cid, c in data.items():
        line = tables.get(cid) or line_of(text, cid)
        if not isinstance(c, dict):
            raise DataError("each company is a table: [id] followed by its keys", rel, line, cid)
        for k in required:
            if not isinstance(c.get(k), str) or not c.get(k).strip():
                raise DataError(f"company '{cid}' needs a text value for '{k}'", rel, line, k)
        known = set(required) | {"fiscal_year_end", "sector", "policy_changes"}
        for k in c:
            if k not in known:
                raise DataError(
                    f"unknown key in company '{cid}'; known keys: {', '.join(sorted(known))}",
                    rel,
                    line_of(text, k, cid),
                    k,
                )
        if c["reporting"] not in ("ytd", "quarterly"):
            raise DataError(
                f"reporting must be 'ytd' or 'quarterly', not '{c['reporting']}'",
                rel,
                line_of(text, "reporting", cid),
                "reporting",
            )
        fye = c.get("fiscal_year_end", 12)
        if not isinstance(fye, int) or not 1 <= fye <= 12:
            raise DataError(
                "fiscal_year_end must be a month number 1-12",
                rel,
                line_of(text, "fiscal_year_end", cid),
                "fiscal_year_end",
            )
        if not re.fullmatch(r"[A-Z]{3}", c["currency"]):
            raise DataError(
                f"currency must be an ISO code like RMB, HKD or USD, not '{c['currency']}'",
                rel,
                line_of(text, "currency", cid),
                "currency",
            )
        changes = []
        for pc in c.get("policy_changes", []):
            try:
                eff = Quarter.parse(pc.get("effective", ""))
            except Exception:
                raise DataError(
                    f"policy change '{pc.get('id')}' needs effective = \"YYYYQn\"",
                    rel,
                    line_of(text, "effective", cid),
                    "effective",
                ) from None
            changes.append(
                PolicyChange(
                    str(pc.get("id", "")),
                    str(pc.get("title", pc.get("id", ""))),
                    eff,
                    tuple(pc.get("items", ())),
                    str(pc.get("source", "")),
                )
            )
        out[cid] = Company(
            cid,
            c["name"],
            c["name_zh"],
            c["ticker"],
            c["exchange"],
            c["standard"],
            c["currency"],
            fye,
            c["reporting"],
            str(c.get("sector", "")),
            tuple(changes),
            line,
        )
    return out


def load_labels(root: Path) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    path = root / "data" / "labels.toml"
    rel = _rel(path, root)
    if not path.exists():
        raise DataError("label map not found", rel)
    data, text = read_toml(path, rel, DataError)
    valid = set(ITEMS) | set(STATED_RATIOS)
    for k in data:
        if k not in ("labels", "overrides"):
            raise DataError(
                "unknown table; the label map has [labels] and [overrides.<company>]", rel, line_of(text, k), k
            )
    labels = data.get("labels", {})
    if not labels:
        raise DataError("the label map has no [labels] table", rel)
    overrides = data.get("overrides", {})
    for scope in [labels, *overrides.values()]:
        for label, item in scope.items():
            if item not in valid:
                raise DataError(
                    f"'{item}' is not a canonical item; use one of {', '.join(sorted(valid))}",
                    rel,
                    line_of(text, label),
                    label,
                )
    return (
        {k.strip(): v for k, v in labels.items()},
        {c: {k.strip(): v for k, v in m.items()} for c, m in overrides.items()},
    )


def _read_table(path: Path, rel: str, skip=None) -> tuple[list[str], list[tuple[int, dict]]]:
    """Header and (line, row) pairs of a CSV or .xlsx file. `skip(header, values)` may drop a raw row before it
    is turned into a dict (cheap filtering of large files)."""
    if path.suffix.lower() == ".xlsx":
        try:
            from openpyxl import load_workbook

            wb = load_workbook(path, read_only=True, data_only=True)
        except Exception as e:  # openpyxl raises many kinds for a damaged file
            raise DataError(f"cannot read this workbook ({type(e).__name__}: {e})", rel) from None
        ws = wb.worksheets[0]
        it = ws.iter_rows(values_only=True)
        header = next(it, None)
        if not header:
            raise DataError(f"empty file; the first row must name the columns {', '.join(FINANCIAL_COLUMNS)}", rel)
        header = [("" if h is None else str(h)).strip() for h in header]
        rows = []
        for n, values in enumerate(it, start=2):
            if values is None or all(v is None or str(v).strip() == "" for v in values):
                continue
            rows.append(
                (
                    n,
                    {
                        h: ("" if v is None else (repr(v) if isinstance(v, float) else str(v)))
                        for h, v in zip(header, values)
                    },
                )
            )
        return header, rows
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"not UTF-8 text (byte {e.start}); save the file as CSV UTF-8", rel) from None
    if "\x00" in text:
        raise DataError("contains NUL bytes; this is not a CSV text file", rel)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if not header or all(not h.strip() for h in header):
            raise DataError(f"empty file; the first line must name the columns {', '.join(FINANCIAL_COLUMNS)}", rel, 1)
        header = [h.strip() for h in header]
        rows = []
        width = len(header)
        for values in reader:
            if not values or (len(values) == 1 and not values[0].strip()):
                continue
            if len(values) > width:
                raise DataError(
                    f"{len(values)} fields but the header names {width}; is a comma inside an unquoted value?",
                    rel,
                    reader.line_num,
                )
            if skip is not None and skip(values):
                continue
            if not any(v.strip() for v in values):
                continue
            rows.append((reader.line_num, dict(zip(header, [v.strip() for v in values]))))
    except csv.Error as e:
        raise DataError(f"not valid CSV: {e}", rel, reader.line_num) from None
    return header, rows


def load_fx(root: Path) -> dict[tuple[str, str, str], tuple[float, str, int]]:
    """(currency, period, basis) -> (RMB per unit, file, line). Period-average rates."""
    path = root / "data" / "fx.csv"
    rel = _rel(path, root)
    if not path.exists():
        return {}
    header, rows = _read_table(path, rel)
    for col in ("currency", "period", "basis", "rmb_per_unit", "source_url"):
        if col not in header:
            raise DataError(f"missing column '{col}'", rel, 1, col)
    out = {}
    for line, r in rows:
        try:
            q = Quarter.parse(r["period"])
        except Exception:
            raise DataError(f"'{r['period']}' is not a quarter like 2025Q2", rel, line, "period") from None
        if r["basis"] not in BASES:
            raise DataError(f"basis must be one of {', '.join(BASES)}", rel, line, "basis")
        rate = parse_number(r["rmb_per_unit"])
        if rate is None or rate <= 0:
            raise DataError(f"'{r['rmb_per_unit']}' is not a positive rate", rel, line, "rmb_per_unit")
        if not r.get("source_url"):
            raise DataError("every rate needs its source", rel, line, "source_url")
        key = (r["currency"].upper(), str(q), r["basis"])
        if key in out:
            raise DataError(
                f"a second rate for {key[0]} {key[1]} {key[2]} (first on line {out[key][2]})", rel, line, "period"
            )
        out[key] = (rate, rel, line)
    return out


def financial_files(root: Path, company: str) -> list[Path]:
    base = root / "data" / "financials"
    return [p for p in (base / f"{company}.csv", base / f"{company}.xlsx") if p.exists()]


def load_financials(
    root: Path,
    company: Company,
    labels,
    overrides,
    fx,
    problems: list | None = None,
    periods: set[str] | None = None,
    reported: set | None = None,
) -> list[dict]:
    """The company's as-reported rows, checked field by field.

    Raises DataError at the first bad field, or, when a `problems` list is given, appends each bad row's
    problem to it and goes on with the next row. With `periods`, rows of other (well-formed) quarters are
    skipped unread: a briefing needs a window of quarters, not a company's whole history. `reported`, when
    given, collects (company, item) for every row, skipped or not.
    """
    files = financial_files(root, company.id)
    if not files:
        return []
    if len(files) > 1:
        raise DataError(
            f"both {files[0].name} and {files[1].name} exist for '{company.id}'; keep one", _rel(files[1], root)
        )
    path = files[0]
    rel = _rel(path, root)
    label_map = {**labels, **overrides.get(company.id, {})}
    skip = None
    if periods is not None:
        cols: dict[str, int] = {}

        def skip(values):
            """Rows of well-formed quarters outside the window, noting which items the company reports."""
            if not cols:
                return False
            p = values[cols["period"]].strip().upper() if len(values) > cols["period"] else ""
            if p in periods or not _QUARTER_TEXT.match(p):
                return False
            if reported is not None and "label" in cols and len(values) > cols["label"]:
                item = label_map.get(values[cols["label"]].strip())
                if item:
                    reported.add((company.id, item))
            return True

        if path.suffix.lower() == ".csv":
            with open(path, "rb") as fh:  # the header decides which column holds the period
                first = fh.readline().decode("utf-8-sig", errors="replace").rstrip("\r\n")
            try:
                names = [h.strip() for h in next(csv.reader([first]), [])]
            except csv.Error:
                names = []  # _read_table reports the problem with its line
            if "period" in names:
                cols.update({n: i for i, n in enumerate(names)})
    header, rows = _read_table(path, rel, skip)
    for col in FINANCIAL_COLUMNS:
        if col not in header:
            raise DataError(
                f"missing column '{col}' (the header must name {', '.join(FINANCIAL_COLUMNS)})", rel, 1, col
            )
    known = set(FINANCIAL_COLUMNS) | set(OPTIONAL_COLUMNS)
    for col in header:
        if col not in known:
            raise DataError(
                f"unknown column '{col}'; known columns: {', '.join(FINANCIAL_COLUMNS + OPTIONAL_COLUMNS)}", rel, 1, col
            )
    out = []
    seen: dict[tuple, int] = {}
    for line, r in rows:
        if periods is not None:  # .xlsx rows (CSV rows outside the window were skipped while reading)
            p = (r.get("period") or "").strip().upper()
            if p not in periods and _QUARTER_TEXT.match(p):
                if reported is not None and (r.get("label") or "").strip() in label_map:
                    reported.add((company.id, label_map[r["label"].strip()]))
                continue
        try:
            out.append(_check_row(r, line, rel, company, label_map, fx, seen))
        except DataError as e:
            if problems is None:
                raise
            problems.append(e)
    try:
        _check_cumulative(out, company)
    except DataError as e:
        if problems is None:
            raise
        problems.append(e)
    return out


@functools.lru_cache(maxsize=4096)
def _quarter(text: str) -> Quarter:
    return Quarter.parse(text)


def _check_row(r: dict, line: int, rel: str, company: Company, label_map, fx, seen) -> dict:
    try:
        q = _quarter(r["period"])
    except Exception:
        raise DataError(
            f"'{r['period']}' is not a quarter; write the calendar quarter the period ends in, like 2025Q2",
            rel,
            line,
            "period",
        ) from None
    basis = r["basis"].upper()
    if basis not in BASES:
        raise DataError(f"'{r['basis']}' is not a basis; use 3M, 6M, 9M or 12M", rel, line, "basis")
    label = r["label"].strip()
    if not label:
        raise DataError("empty label", rel, line, "label")
    item = label_map.get(label)
    if item is None:
        raise DataError(
            f"unknown label '{label}'; add it to data/labels.toml with its canonical item", rel, line, "label"
        )
    value = parse_number(r["value"])
    if value is None:
        raise DataError(f"'{r['value']}' is not a number", rel, line, "value")
    if not math.isfinite(value) or abs(value) >= 1e18:
        raise DataError(f"'{r['value']}' is out of range for a financial figure", rel, line, "value")
    unit = r["unit"].strip().lower()
    if unit not in UNITS:
        raise DataError(f"unknown unit '{r['unit']}'; use one of {', '.join(UNITS)}", rel, line, "unit")
    if (unit == "percent") != (item in STATED_RATIOS):
        raise DataError(
            "percent is the unit of stated ratios only, and a ratio label needs unit percent", rel, line, "unit"
        )
    currency = r["currency"].strip().upper()
    if not _CURRENCY.fullmatch(currency):
        raise DataError(
            f"unknown currency '{r['currency']}'; use an ISO code like RMB, HKD or USD", rel, line, "currency"
        )
    if currency not in ("RMB", "CNY") and item not in STATED_RATIOS and (currency, str(q), basis) not in fx:
        raise DataError(
            f"no {currency} rate for {q} {basis} in data/fx.csv; add the period-average RMB rate with its source",
            rel,
            line,
            "currency",
        )
    vintage = (r.get("vintage") or "published").strip().lower()
    if vintage not in VINTAGES:
        raise DataError(f"vintage must be 'published' or 'restated', not '{vintage}'", rel, line, "vintage")
    if not (r.get("source_url") or "").strip():
        raise DataError("every figure needs its source_url", rel, line, "source_url")
    fq = q.fiscal_quarter(company.fiscal_year_end) if company.fiscal_year_end in (3, 6, 9, 12) else None
    if fq is not None and BASES[basis] > fq:
        raise DataError(
            f"a {basis} period cannot end in {q}: that is quarter {fq} of {company.id}'s fiscal year",
            rel,
            line,
            "basis",
        )
    key = (q, basis, item, vintage)
    if key in seen:
        raise DataError(
            f"two rows for {item} {q} {basis} ({vintage}); the other is line {seen[key]}", rel, line, "period"
        )
    seen[key] = line
    return {
        "company": company.id,
        "quarter": q,
        "basis": basis,
        "months": BASES[basis] * 3,
        "label": label,
        "item": item,
        "value": value,
        "unit": unit,
        "currency": currency,
        "vintage": vintage,
        "report": r.get("report", ""),
        "confidence": r.get("confidence", ""),
        "source_url": r["source_url"].strip(),
        "source_excerpt": r.get("source_excerpt", ""),
        "file": rel,
        "line": line,
    }


def _check_cumulative(rows: list[dict], company: Company) -> None:
    """A year-to-date revenue smaller than the same year's earlier year-to-date figure is a data error."""
    if company.fiscal_year_end not in (3, 6, 9, 12):
        return
    cum = {}
    for r in rows:
        if r["item"] != "revenue":
            continue
        fq = r["quarter"].fiscal_quarter(company.fiscal_year_end)
        if BASES[r["basis"]] != fq:
            continue
        fy = r["quarter"].index - (fq - 1)  # index of the fiscal year's first quarter
        cum[(fy, fq, r["vintage"])] = r
    for (fy, fq, vintage), r in cum.items():
        prev = cum.get((fy, fq - 1, vintage))
        if prev and abs(r["value"]) * UNITS[r["unit"]] < abs(prev["value"]) * UNITS[prev["unit"]] * (1 - 1e-9):
            raise DataError(
                f"cumulative revenue {r['basis']} to {r['quarter']} is smaller than the "
                f"{prev['basis']} figure to {prev['quarter']} (line {prev['line']}); is one of them "
                "a single-quarter figure or in another unit?",
                r["file"],
                r["line"],
                "value",
            )


def load_workspace(root: Path, company_ids=None) -> Workspace:
    """Read the registry, label map, FX rates and the financials of the given companies (default: all)."""
    root = Path(root)
    companies = load_registry(root)
    labels, overrides = load_labels(root)
    fx = load_fx(root)
    ws = Workspace(root, companies, labels, overrides, fx)
    for cid in companies if company_ids is None else company_ids:
        if cid not in companies:
            continue
        ws.rows += load_financials(root, companies[cid], labels, overrides, fx)
        ws.files += financial_files(root, cid)
    return ws


def load_sentence_templates(root: Path) -> dict[str, str]:
    """templates/findings.toml: the wording of the key findings (missing file: the built-in wording)."""
    from .findings import DEFAULT_TEMPLATES

    path = Path(root) / "templates" / "findings.toml"
    if not path.exists():
        return {}
    rel = _rel(path, Path(root))
    data, text = read_toml(path, rel, DataError)
    for k, v in data.items():
        if k not in DEFAULT_TEMPLATES:
            raise DataError(f"unknown sentence '{k}'; known: {', '.join(DEFAULT_TEMPLATES)}", rel, line_of(text, k), k)
        if not isinstance(v, str):
            raise DataError("must be text", rel, line_of(text, k), k)
        allowed = set(re.findall(r"{(\w+)}", DEFAULT_TEMPLATES[k]))
        check_placeholders(v, allowed, lambda m, k=k: DataError(m, rel, line_of(text, k), k))
    return data
