"""Readers: one function per file format that turns a file object into records, the one check that turns a
financials record into a `ReportedRow`, and `rows_from_file`, the two together. Importers of other providers'
formats add readers here.

A reader takes a binary file object and the name to use in messages, yields `(line, {column: text})` and raises
DataError naming the file, line and field. It never reads more than it needs: rows stream through.
"""

from __future__ import annotations

import csv
import datetime
import functools
import math
import re
import sys
from collections.abc import Callable, Iterator
from decimal import Decimal
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
#: The magnitudes a number read from a data file may have, zero aside. A figure (an amount in its unit, a stated
#: ratio in percent) lies within 1e-6 and 1e15: every whole number up to 1e15 is held exactly, and a figure beyond
#: either bound is a typing error (an exponent or a unit gone wrong), never a company's. An FX rate (RMB per unit
#: of a currency) lies within 1e-6 and 1e6. A spelling that cannot be held at all (1e400, or 1e-400, which would
#: read as 0) is out of range too.
FIGURE_RANGE = (1e-6, 1e15)
RATE_RANGE = (1e-6, 1e6)
#: a CSV line longer than this is refused (a file with no line breaks, or CR-only ones, is not read whole)
MAX_LINE_BYTES = 4 << 20
# what a spreadsheet writes for a value it holds instead of a number
_EXCEL_ERRORS = ("#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A", "#GETTING_DATA", "#SPILL!",
                 "#CALC!", "#FIELD!", "#BLOCKED!", "#CONNECT!", "#BUSY!", "#UNKNOWN!")  # fmt: skip
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?")
_TIME = re.compile(r"\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?")


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
    if t.upper() in _EXCEL_ERRORS:
        return None, (
            f"it is the error value {t.upper()} (a spreadsheet formula that failed), where a number is expected; "
            "fix the formula or type the figure"
        )
    if _DATE_TIME.fullmatch(t):
        return None, "it is a date (in a workbook: a cell holding or formatted as a date), where a number is expected"
    if _TIME.fullmatch(t):
        return None, "it is a time of day (in a workbook: a cell formatted as a time), where a number is expected"
    if t.upper() in ("TRUE", "FALSE"):
        return None, "it is a TRUE/FALSE value, where a number is expected"
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
    try:
        return 0.5 * 10.0 ** (int(exponent or 0) - decimals)
    except (OverflowError, ValueError):  # 0e400: no float holds its last digit's place
        return math.inf


def bounds_text(bounds: tuple[float, float]) -> str:
    """(1e-6, 1e15) -> '1e-6 and 1e15', as a message names a range."""
    return " and ".join(f"{b:.0e}".replace("e-0", "e-").replace("e+0", "e").replace("e+", "e") for b in bounds)


def out_of_range(text: str, value: float, bounds: tuple[float, float] = FIGURE_RANGE) -> bool:
    """Whether a number read from `text` (number_problem's value) cannot be taken as written: it does not fit a
    float (1e400), it is a non-zero spelling that reads as 0 (1e-400), its magnitude is outside `bounds`
    (FIGURE_RANGE, RATE_RANGE), or it is a zero printed to a place beyond the upper bound (0e400)."""
    lo, hi = bounds
    if not math.isfinite(value) or abs(value) > hi:
        return True
    if value == 0:
        mantissa = str(text).strip().translate(_WIDE).lower().partition("e")[0]
        return bool(re.search(r"[1-9]", mantissa)) or not printed_uncertainty(text) <= hi
    return abs(value) < lo


def parse_number(text: str) -> float | None:
    """A number as written in a data file; None if it is not one (see number_problem for why)."""
    return number_problem(text)[0]


# -- file formats -------------------------------------------------------------------------------------------------
def _text_lines(fh: BinaryIO, rel: str) -> Iterator[str]:
    """The file's lines decoded as UTF-8 (a BOM is dropped), read one at a time and never more than
    MAX_LINE_BYTES of one; DataError at the first line that is not UTF-8 text, holds a NUL byte or is too long, and
    at a file whose lines end in CR alone (classic Mac OS), which would otherwise be read as one line."""
    offset = 0
    for n, raw in enumerate(iter(lambda: fh.readline(MAX_LINE_BYTES + 1), b""), start=1):
        if n == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw, offset = raw[3:], 3
        if n == 1 and re.search(rb"\r(?!\n|$)", raw):
            raise DataError(
                "the lines of this file end in CR alone (old Mac line ends), so it reads as one line; save it "
                "with Windows (CRLF) or Unix (LF) line ends, e.g. as CSV UTF-8 in Excel or with dos2unix/mac2unix",
                rel,
                1,
            )
        if len(raw) > MAX_LINE_BYTES:
            raise DataError(f"the line is longer than {MAX_LINE_BYTES >> 20} MB; is this a CSV text file?", rel, n)
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
        if "new-line character seen in unquoted field" in str(e):
            raise DataError(
                "a carriage return (CR) in the middle of the line, outside quotes; remove it, or quote the field",
                rel,
                reader.line_num,
            ) from None
        raise DataError(f"not valid CSV: {e}", rel, reader.line_num) from None


#: separators a CSV file may have been saved with instead of the comma, as a message names them
_SEPARATORS = {";": "';'", "\t": "tabs", "|": "'|'", ":": "':'", "^": "'^'", "~": "'~'", "#": "'#'", " ": "spaces"}


def _check_header(header: list[str], rel: str) -> None:
    """A header that names a column twice, or that seems to use another separator than the comma."""
    if len(header) == 1:
        # the character that splits the one header cell into the most names (spaces only if nothing else does)
        counts = {sep: len([p for p in header[0].split(sep) if p.strip()]) for sep in _SEPARATORS}
        sep = max(counts, key=lambda k: (counts[k] > 1, k != " ", counts[k]))
        if counts[sep] > 1:
            raise DataError(
                f"the columns seem to be separated by {_SEPARATORS[sep]}; save the file as CSV with commas", rel, 1
            )
    seen: dict[str, int] = {}
    for i, name in enumerate(header, start=1):
        if name and name in seen:
            raise DataError(
                f"the header names column '{name}' twice (columns {seen[name]} and {i}); keep one", rel, 1, name
            )
        seen[name] = i


_CONDITION = re.compile(r"\[(<=|>=|<>|<|>|=)\s*([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)\s*\]")
_TESTS = {"<": float.__lt__, "<=": float.__le__, ">": float.__gt__, ">=": float.__ge__, "=": float.__eq__,
          "<>": float.__ne__}  # fmt: skip


@functools.lru_cache(maxsize=512)
def _format_sections(fmt: str) -> tuple[tuple[tuple[str, float] | None, int, int], ...]:
    """An Excel number format's sections (split at each ';' that is not quoted, escaped or in brackets), each as
    (its condition such as ('<', 100.0) or None, how many times it shows the number x100 with a '%', how many times
    it shows it /1000 with a trailing ','). Only a live character counts: not one "in quotes", after a backslash,
    after _ or * (a space as wide as, or a fill of, the next character), or [in brackets]."""
    sections = []
    cond, pct, scale, commas, after_digit = None, 0, 0, 0, False
    i = 0
    while i <= len(fmt):
        ch = fmt[i] if i < len(fmt) else ";"
        if ch == "," and (after_digit or commas):
            commas += 1  # a thousands separator if a digit placeholder follows, else a /1000
            i += 1
            continue
        if ch in "0#?":
            commas, after_digit = 0, True
            i += 1
            continue
        scale, commas, after_digit = scale + commas, 0, False  # anything else ends a run of commas
        if ch == ";":
            sections.append((cond, pct, scale))
            cond, pct, scale = None, 0, 0
        elif ch == '"':
            end = fmt.find('"', i + 1)
            i = len(fmt) - 1 if end < 0 else end
        elif ch in "\\_*":
            i += 1  # the next character is shown (or spaced, or repeated) as it is
        elif ch == "[":
            end = fmt.find("]", i)
            end = len(fmt) - 1 if end < 0 else end
            m = _CONDITION.fullmatch(fmt[i : end + 1])
            if m:
                cond = (m.group(1), float(m.group(2)))
            i = end
        elif ch == "%":
            pct += 1
        i += 1
    return tuple(sections)


def _format_of(fmt: str, v: float) -> tuple[int, int]:
    """(percent signs, scaling commas) of the section of number format `fmt` that shows the value `v`."""
    sections = _format_sections(fmt or "General")
    if any(cond for cond, _, _ in sections):  # [<100]0.0%;[>=100]0.0,;...: the first section whose test holds
        for cond, pct, scale in sections:
            if cond and _TESTS[cond[0]](float(v), cond[1]):
                return pct, scale
        rest = [s for s in sections if s[0] is None]
        return rest[0][1:] if rest else (0, 0)
    if len(sections) == 1 or v > 0 or (v == 0 and len(sections) == 2):
        return sections[0][1:]
    return sections[1][1:] if v < 0 else sections[2][1:]


def _cell_read(cell) -> tuple[str, bool]:
    """A cell as it reads on screen, and whether its number format shows its number divided by 1000 or more (#,##0,
    or 0.0,,: what it shows and what it holds differ by a factor no unit column can say). A number in a percent
    format is its percentage (0.065 shown as 6.5% -> 6.5; a % in quotes or after a backslash is only a sign: 8.8
    shown as 8.8% -> 8.8); a date is written YYYY-MM-DD; TRUE and FALSE as a spreadsheet shows them."""
    v = cell.value
    if v is None:
        return "", False
    if isinstance(v, bool):
        return str(v).upper(), False
    if isinstance(v, (int, float)):
        try:
            if not math.isfinite(v):
                return repr(v), False
        except OverflowError:  # an integer beyond any float: refused as out of range where a number is read
            return str(v), False
        pct, scale = _format_of(getattr(cell, "number_format", None) or "General", v)
        if pct:
            scaled = v * 100**pct
            if not math.isfinite(scaled):  # beyond a float: the text is refused as out of range, never read as inf
                return str(Decimal(repr(v)).scaleb(2 * pct)), scale > 0
            v = round(scaled, 12) or scaled  # 8.799999999999999 -> 8.8; a tiny non-zero value stays non-zero
        return (repr(v) if isinstance(v, float) else str(v)), scale > 0
    if isinstance(v, datetime.datetime):
        return (v.date().isoformat() if v.time() == datetime.time() else v.isoformat(sep=" ")), False
    if isinstance(v, (datetime.date, datetime.time)):
        return v.isoformat(), False
    return str(v), False


def _cell_text(cell) -> str:
    """A cell as it reads on screen (see _cell_read)."""
    return _cell_read(cell)[0]


def xlsx_records(fh: BinaryIO, rel: str, on_header: HeaderHook | None = None, columns: tuple = ()) -> Iterator[Record]:
    """Rows of the first sheet of an .xlsx workbook as (row number, dict), each cell read as it shows (its number
    format honoured). Refused with the row: a formula with no saved result, cells beyond the header's columns, a
    sheet that cannot be read to its end."""
    try:
        from openpyxl import load_workbook

        wb = load_workbook(fh, read_only=True, data_only=True)
        ws = wb.worksheets[0]
        # the sheet's <dimension> (its used range) is what a writer claimed, not what the sheet holds: a stale one
        # would cut rows or columns silently, so every row is read to the sheet's end
        ws.reset_dimensions()
    except Exception as e:  # openpyxl raises many kinds for a damaged file
        raise DataError(f"cannot read this workbook ({type(e).__name__}: {e})", rel) from None
    n = 1
    try:
        rows = ws.iter_rows(min_row=1, min_col=1)
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
            read = [_cell_read(c) for c in row]
            cells = [text for text, _ in read]
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
            scaled = next((i for i, (_, shown_scaled) in enumerate(read[:width]) if shown_scaled), None)
            if scaled is not None:
                c = row[scaled]
                raise DataError(
                    f"cell {_column_letter(scaled + 1)}{n} shows its number divided by 1,000 or more (number format "
                    f"'{c.number_format}'), so what it shows and what it holds differ; give it a format without "
                    "trailing commas (such as 0.00) and write the unit of the number it holds",
                    rel,
                    n,
                    header[scaled],
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
            wb.worksheets[0].reset_dimensions()
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
    if out_of_range(r["value"], value):  # 1e400, 1e-400, 1e30: see FIGURE_RANGE
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
    if not (r["currency"].isascii() and _CURRENCY.fullmatch(currency)):  # not 'ßD', which upper() makes SSD
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
