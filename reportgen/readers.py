"""Readers: one function per file format that turns a file object into records, the one check that turns a
financials record into a `ReportedRow`, and `rows_from_file`, the two together. Importers of other providers'
formats add readers here.

A reader takes a binary file object and the name to use in messages, yields `(line, {column: text})` and raises
DataError naming the file, line and field. It never reads more than it needs: rows stream through.
"""

from __future__ import annotations

import csv
import functools
import math
import re
import sys
from collections.abc import Callable, Iterator
from typing import BinaryIO

from .errors import DataError, PeriodError
from .model import BASES, STATED_RATIOS, UNIT_WORDS, UNITS, VINTAGES, Company, ReportedRow
from .periods import Quarter

Record = tuple[int, dict[str, str]]
#: on_header(header) is called once with the header (it may raise DataError) and may return a predicate on a
#: row's raw values that is True for a row to drop unread
HeaderHook = Callable[[list[str]], "Callable[[list[str]], bool] | None"]

FINANCIAL_COLUMNS = ("period", "basis", "label", "value", "unit", "currency", "source_url")
OPTIONAL_COLUMNS = ("vintage", "report", "confidence", "source_excerpt", "ref", "note", "published")
#: a segment data file (data/segments/ID.csv) has these besides: which segment, and its definition as reported
SEGMENT_COLUMNS = ("segment", "definition")
#: how far a 52/53-week fiscal quarter's end may lie from the calendar quarter end it is aligned to
CALENDARIZE_DAYS = 15
CONFIDENCE = ("high", "medium", "low")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_NUMBER = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$")
_GROUPED = re.compile(r"^[+-]?[0-9]{1,3}(,[0-9]{3})+(\.[0-9]+)?$")
# full-width digits, sign, point and comma (as Chinese input methods type them) and the true minus sign
_WIDE = str.maketrans("０１２３４５６７８９．，＋－\u2212", "0123456789.,+--")


def number_problem(text: str) -> tuple[float | None, str]:
    """(value, "") for a number as written in a data file, else (None, why it is not one).

    Accepted: 1234.5, -1234.5, 1.2e9, full-width digits, and thousands separators where they cannot be a
    decimal comma (1,234,567 or 1,234.5). Refused with the reason: a footnote mark or any other character
    (1000¹, ①, 12o0), a decimal comma (0,065), a single comma group that could be either (1,234)."""
    t = str(text).strip()
    if _NUMBER.match(t):  # the common case
        return float(t), ""
    t = t.translate(_WIDE)
    if _NUMBER.match(t):
        return float(t), ""
    if re.fullmatch(r"[+-]?0,[0-9]+", t):
        return None, "a decimal comma; write the decimal point as . (0.065)"
    if _GROUPED.match(t):
        if t.count(",") == 1 and "." not in t:
            return None, (
                "one comma could be a thousands separator or a decimal comma; write the number without "
                "separators (1234 or 1.234)"
            )
        return float(t.replace(",", "")), ""
    if re.fullmatch(r"[+-]?[0-9]+,[0-9]+", t):
        return None, "a decimal comma; write the decimal point as . (0.065)"
    if re.fullmatch(r"\([0-9.,]+\)", t):
        return None, "write a negative figure with a minus sign (-1234), not in parentheses"
    if t.endswith("%") and _NUMBER.match(t[:-1].strip()):
        return None, "a percent sign; write the bare number and the unit percent"
    odd = [ch for ch in t if not (ch.isascii() and (ch.isdigit() or ch in "+-.,eE"))]
    if odd and any(ch.isdigit() for ch in t):
        shown = "".join(odd[:3])
        return None, f"it has {shown!r} in it (a footnote mark, a unit or a typing error?); write the bare number"
    return None, ""


def printed_uncertainty(text: str) -> float:
    """Half the last printed digit of a number, in its own unit: 191.5 -> 0.05, 432.55 -> 0.005, 1,234 -> 0.5,
    1.2e9 -> 5e7. A figure is known to no better than its printing says."""
    t = str(text).strip().translate(_WIDE).replace(",", "").lstrip("+-")
    mantissa, _, exponent = t.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 0.5 * 10.0 ** (int(exponent or 0) - decimals)


def parse_number(text: str) -> float | None:
    """A number as written in a data file; None if it is not one (see number_problem for why)."""
    return number_problem(text)[0]


# -- file formats -------------------------------------------------------------------------------------------------
def _text_lines(fh: BinaryIO, rel: str) -> Iterator[str]:
    """The file's lines decoded as UTF-8 (a BOM is dropped), read one at a time; DataError at the first line that
    is not UTF-8 text or holds a NUL byte."""
    offset = 0
    for n, raw in enumerate(fh, start=1):
        if n == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw, offset = raw[3:], 3
        if b"\x00" in raw:
            raise DataError("contains NUL bytes; this is not a CSV text file", rel, n)
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(f"not UTF-8 text (byte {offset + e.start}); save the file as CSV UTF-8", rel, n) from None
        offset += len(raw)


def csv_records(fh: BinaryIO, rel: str, on_header: HeaderHook | None = None, columns: tuple = ()) -> Iterator[Record]:
    """Rows of a UTF-8 CSV file as (line, dict), streamed: the file is read a line at a time and reading stops at
    the first problem. Blank rows are left out; a row shorter than the header gets empty trailing fields.

    Refused with the line: a quote that is never closed (it would swallow every later row), a field that spans
    lines, more fields than the header, a header naming a column twice, a file separated by ';' or tabs."""
    reader = csv.reader(_text_lines(fh, rel), strict=True)
    start = 1
    try:
        header = next(reader, None)
        if not header or all(not h.strip() for h in header):
            raise DataError(f"empty file; the first line must name the columns {', '.join(columns)}", rel, 1)
        header = [h.strip() for h in header]
        _check_header(header, rel)
        drop = on_header(header) if on_header is not None else None
        width = len(header)
        start = reader.line_num + 1
        for values in reader:
            line, start = start, reader.line_num + 1
            if reader.line_num > line:
                raise DataError(
                    f"a quoted field runs from line {line} to line {reader.line_num}; is a quote not closed? "
                    "(a field cannot hold a line break)",
                    rel,
                    line,
                )
            if not values or (len(values) == 1 and not values[0].strip()):
                continue
            if len(values) > width:
                raise DataError(
                    f"{len(values)} fields but the header names {width}; is a comma inside an unquoted value?",
                    rel,
                    line,
                )
            if drop is not None and drop(values):
                continue
            if not any(v.strip() for v in values):
                continue
            if len(values) < width:  # trailing optional fields may be left out; required ones may not
                cut = [h for h in header[len(values) :] if h in columns]
                if cut:
                    raise DataError(
                        f"{len(values)} fields but the header names {width}; the row ends before {', '.join(cut)}",
                        rel,
                        line,
                        cut[0],
                    )
            values = [v.strip() for v in values] + [""] * (width - len(values))
            yield line, dict(zip(header, values))
    except csv.Error as e:
        if "unexpected end of data" in str(e):
            raise DataError(
                f"a quote opened on line {start} is never closed, so every later line would be part of one field",
                rel,
                start,
            ) from None
        raise DataError(f"not valid CSV: {e}", rel, reader.line_num) from None


def _check_header(header: list[str], rel: str) -> None:
    """A header that names a column twice, or that seems to use another separator than the comma."""
    if len(header) == 1 and (";" in header[0] or "\t" in header[0]):
        sep = "';'" if ";" in header[0] else "tabs"
        raise DataError(f"the columns seem to be separated by {sep}; save the file as CSV with commas", rel, 1)
    seen: dict[str, int] = {}
    for i, name in enumerate(header, start=1):
        if name and name in seen:
            raise DataError(
                f"the header names column '{name}' twice (columns {seen[name]} and {i}); keep one", rel, 1, name
            )
        seen[name] = i


def _cell_text(cell) -> str:
    """A cell as it reads on screen: a number in a percent format is its percentage (0.065 shown as 6.5% -> 6.5)."""
    v = cell.value
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, (int, float)):
        if "%" in (getattr(cell, "number_format", None) or ""):
            v = round(v * 100, 12)
        return repr(v) if isinstance(v, float) else str(v)
    return str(v)


def xlsx_records(fh: BinaryIO, rel: str, on_header: HeaderHook | None = None, columns: tuple = ()) -> Iterator[Record]:
    """Rows of the first sheet of an .xlsx workbook as (row number, dict), each cell read as it shows (its number
    format honoured). Refused with the row: a formula with no saved result, cells beyond the header's columns, a
    sheet that cannot be read to its end."""
    try:
        from openpyxl import load_workbook

        wb = load_workbook(fh, read_only=True, data_only=True)
        ws = wb.worksheets[0]
    except Exception as e:  # openpyxl raises many kinds for a damaged file
        raise DataError(f"cannot read this workbook ({type(e).__name__}: {e})", rel) from None
    n = 1
    try:
        rows = ws.iter_rows()
        header_cells = next(rows, None)
        header = [_cell_text(c).strip() for c in header_cells or ()]
        while header and not header[-1]:
            header.pop()  # trailing cells with nothing in them are not columns
        if not header:
            raise DataError(f"empty file; the first row must name the columns {', '.join(columns)}", rel)
        _check_header(header, rel)
        drop = on_header(header) if on_header is not None else None
        width = len(header)
        for n, row in enumerate(rows, start=2):
            cells = [_cell_text(c) for c in row]
            if not any(c.strip() for c in cells):
                continue
            extra = [c for c in cells[width:] if c.strip()]
            if extra:
                raise DataError(
                    f"{width + len(cells[width:])} cells but the header names {width}; the cell with "
                    f"'{extra[0]}' is beyond the last column",
                    rel,
                    n,
                )
            cells = (cells + [""] * width)[:width]
            formula = next(
                (i for i, c in enumerate(row[:width]) if c.value is None and type(c).__name__ != "EmptyCell"), None
            )
            if formula is not None and _is_formula(fh, n, formula + 1):
                raise DataError(
                    f"cell {_column_letter(formula + 1)}{n} is a formula with no saved result; open the workbook in "
                    "Excel or LibreOffice and save it, which stores each formula's result",
                    rel,
                    n,
                    header[formula],
                )
            if drop is not None and drop(cells):
                continue
            yield n, dict(zip(header, [c.strip() for c in cells]))
    except DataError:
        raise
    except Exception as e:  # a damaged sheet fails while it is read, not when it is opened
        raise DataError(f"cannot read this workbook past row {n} ({type(e).__name__}: {e})", rel, n) from None
    finally:
        wb.close()


def _column_letter(i: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(i)


def _is_formula(fh: BinaryIO, row: int, col: int) -> bool:
    """Whether the cell holds a formula (read again without cached values: only on this error's path)."""
    from openpyxl import load_workbook

    pos = fh.tell()
    try:
        fh.seek(0)
        wb = load_workbook(fh, read_only=True, data_only=False)
        try:
            for cells in wb.worksheets[0].iter_rows(min_row=row, max_row=row, min_col=col, max_col=col):
                return any(isinstance(c.value, str) and c.value.startswith("=") for c in cells)
            return False
        finally:
            wb.close()
    except Exception:
        return False
    finally:
        fh.seek(pos)


#: file suffix -> reader
READERS: dict[str, Callable[..., Iterator[Record]]] = {".csv": csv_records, ".xlsx": xlsx_records}


def records(path, rel: str, on_header: HeaderHook | None = None, columns: tuple = ()) -> Iterator[Record]:
    """The records of a file by its suffix; the file is closed when the rows run out or reading stops."""
    from pathlib import Path

    reader = READERS.get(Path(path).suffix.lower())
    if reader is None:
        raise DataError(f"cannot read '{Path(path).suffix}' files; use {' or '.join(READERS)}", rel)
    with open(path, "rb") as fh:
        yield from reader(fh, rel, on_header, columns)


def rows_from_file(fh: BinaryIO, suffix: str, rel: str, company: Company, label_map, fx) -> Iterator[ReportedRow]:
    """The `ReportedRow`s of a financials file object in the format its `suffix` names (.csv, .xlsx), each checked
    field by field; DataError naming file, line and field at the first bad row. (Loading a workspace lists several
    problems of a file before it stops, so it reads `records` and turns each with `reported_row` itself.)"""
    reader = READERS.get(suffix.lower())
    if reader is None:
        raise DataError(f"cannot read '{suffix}' files; use {' or '.join(READERS)}", rel)
    seen: dict[tuple, int] = {}
    for line, r in reader(fh, rel, lambda header: check_financials_header(header, rel), FINANCIAL_COLUMNS):
        yield reported_row(r, line, rel, company, label_map, fx, seen)


# -- financials records -> ReportedRow ----------------------------------------------------------------------------
def check_financials_header(header, rel: str) -> None:
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


@functools.lru_cache(maxsize=4096)
def _quarter(text: str) -> Quarter:
    return Quarter.parse(text)


def calendar_quarter(text: str) -> Quarter | None:
    """The calendar quarter whose end lies within CALENDARIZE_DAYS of the date `text` (YYYY-MM-DD); None when none
    does. ValueError for a text that is not a date."""
    import datetime as _dt

    if not _DATE.fullmatch(text):
        raise ValueError(text)
    day = _dt.date.fromisoformat(text)
    for year in (day.year - 1, day.year):
        for qn, (month, last) in enumerate(((3, 31), (6, 30), (9, 30), (12, 31)), 1):
            if abs((day - _dt.date(year, month, last)).days) <= CALENDARIZE_DAYS:
                return Quarter(year, qn)
    return None


def _period(text: str, line: int, rel: str, company: Company) -> tuple[Quarter, bool]:
    """The calendar quarter of a `period` cell, and whether it was calendarized from a 52/53-week period's end."""
    text = text.strip()
    if company.fiscal_calendar == "52-53-week" and _DATE.fullmatch(text):
        try:
            q = calendar_quarter(text)
        except ValueError:
            raise DataError(f"'{text}' is not a date; write it as YYYY-MM-DD", rel, line, "period") from None
        if q is None:
            raise DataError(
                f"the fiscal period ending {text} does not end within {CALENDARIZE_DAYS} days of a calendar quarter "
                "end (31 March, 30 June, 30 September, 31 December), so it cannot be aligned to one; enter its "
                "figures re-cut to calendar quarters",
                rel,
                line,
                "period",
            )
        return q, True
    try:
        return _quarter(text), False
    except PeriodError:
        hint = (
            '; or, for a 52/53-week fiscal year, declare fiscal_calendar = "52-53-week" in data/companies.toml '
            "and write the period's end date (2025-06-28)"
            if _DATE.fullmatch(text)
            else ""
        )
        raise DataError(
            f"'{text}' is not a quarter; write the calendar quarter the period ends in, like 2025Q2{hint}",
            rel,
            line,
            "period",
        ) from None


def reported_row(r: dict, line: int, rel: str, company: Company, label_map, fx, seen) -> ReportedRow:
    """One financials record checked field by field; DataError at the first bad field.

    `seen` maps (quarter, basis, item, vintage) to the line that gave it, to refuse a second row for one figure.
    """
    q, calendarized = _period(r["period"], line, rel, company)
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
    value, why = number_problem(r["value"])
    if value is None:
        raise DataError(f"'{r['value']}' is not a number" + (f": {why}" if why else ""), rel, line, "value")
    if not math.isfinite(value) or abs(value) >= 1e18:
        raise DataError(f"'{r['value']}' is out of range for a financial figure", rel, line, "value")
    unit = UNIT_WORDS.get(r["unit"].strip(), r["unit"].strip().lower())
    if unit not in UNITS:
        known = ", ".join([*UNITS, *UNIT_WORDS])
        raise DataError(f"unknown unit '{r['unit']}'; use one of {known}", rel, line, "unit")
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
    confidence = (r.get("confidence") or "").strip().lower()
    if confidence and confidence not in CONFIDENCE:
        raise DataError(f"confidence must be high, medium or low, not '{confidence}'", rel, line, "confidence")
    published = (r.get("published") or "").strip()
    if published:
        import datetime as _dt

        try:
            if not _DATE.fullmatch(published):
                raise ValueError
            _dt.date.fromisoformat(published)
        except ValueError:
            raise DataError(f"'{published}' is not a date; write it as YYYY-MM-DD", rel, line, "published") from None
    fq = company.fiscal_quarter(q) if company.aligned else None
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
    # the texts that repeat from row to row (a label, a document's URL and excerpt) are kept once, not per row:
    # memory stays proportional to the figures, not to the bytes of the file
    text = sys.intern
    return ReportedRow(
        company.id,
        q,
        text(basis),
        text(label),
        item,
        value,
        text(unit),
        text(currency),
        text(vintage),
        text(r.get("report", "")),
        text(confidence),
        text(r["source_url"].strip()),
        text(r.get("source_excerpt", "")),
        rel,
        line,
        text(published),
        printed_uncertainty(r["value"]),
        text((r.get("definition") or "").strip()),
        calendarized,
    )


def check_cumulative(rows: list[ReportedRow], company: Company) -> None:
    """A year-to-date revenue smaller than the same year's earlier year-to-date figure is a data error."""
    if not company.aligned:
        return
    cum = {}
    for r in rows:
        if r.item != "revenue":
            continue
        fq = company.fiscal_quarter(r.quarter)
        if BASES[r.basis] != fq:
            continue
        cum[(company.fiscal_year_start(r.quarter), fq, r.vintage)] = r
    for (fy, fq, vintage), r in cum.items():
        prev = cum.get((fy, fq - 1, vintage))
        if prev and abs(r.value) * UNITS[r.unit] < abs(prev.value) * UNITS[prev.unit] * (1 - 1e-9):
            raise DataError(
                f"cumulative revenue {r.basis} to {r.quarter} is smaller than the "
                f"{prev.basis} figure to {prev.quarter} (line {prev.line}); is one of them "
                "a single-quarter figure or in another unit?",
                r.file,
                r.line,
                "value",
            )
