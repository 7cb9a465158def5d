"""Readers: one function per file format that turns a file object into records, and the one check that turns a
financials record into a `ReportedRow`. Importers of other providers' formats add readers here.

A reader takes a binary file object and the name to use in messages, yields `(line, {column: text})` and raises
DataError naming the file, line and field. It never reads more than it needs: rows stream through.
"""

from __future__ import annotations

import csv
import functools
import io
import math
import re
import unicodedata
from collections.abc import Callable, Iterator
from typing import BinaryIO

from .errors import DataError, PeriodError
from .model import BASES, STATED_RATIOS, UNITS, VINTAGES, Company, ReportedRow
from .periods import Quarter

Record = tuple[int, dict[str, str]]
#: on_header(header) is called once with the header (it may raise DataError) and may return a predicate on a
#: row's raw values that is True for a row to drop unread
HeaderHook = Callable[[list[str]], "Callable[[list[str]], bool] | None"]

FINANCIAL_COLUMNS = ("period", "basis", "label", "value", "unit", "currency", "source_url")
OPTIONAL_COLUMNS = ("vintage", "report", "confidence", "source_excerpt", "ref", "note")
_CURRENCY = re.compile(r"[A-Z]{3}")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_GROUPED = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")


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


# -- file formats -------------------------------------------------------------------------------------------------
def csv_records(fh: BinaryIO, rel: str, on_header: HeaderHook | None = None, columns: tuple = ()) -> Iterator[Record]:
    """Rows of a UTF-8 CSV file (a BOM is allowed) as (line, dict). Blank rows are left out."""
    try:
        text = fh.read().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"not UTF-8 text (byte {e.start}); save the file as CSV UTF-8", rel) from None
    if "\x00" in text:
        raise DataError("contains NUL bytes; this is not a CSV text file", rel)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if not header or all(not h.strip() for h in header):
            raise DataError(f"empty file; the first line must name the columns {', '.join(columns)}", rel, 1)
        header = [h.strip() for h in header]
        drop = on_header(header) if on_header is not None else None
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
            if drop is not None and drop(values):
                continue
            if not any(v.strip() for v in values):
                continue
            # a row shorter than the header has empty trailing fields: the checks of each field name what is missing
            values = [v.strip() for v in values] + [""] * (width - len(values))
            yield reader.line_num, dict(zip(header, values))
    except csv.Error as e:
        raise DataError(f"not valid CSV: {e}", rel, reader.line_num) from None


def xlsx_records(fh: BinaryIO, rel: str, on_header: HeaderHook | None = None, columns: tuple = ()) -> Iterator[Record]:
    """Rows of the first sheet of an .xlsx workbook as (row number, dict)."""
    try:
        from openpyxl import load_workbook

        wb = load_workbook(fh, read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises many kinds for a damaged file
        raise DataError(f"cannot read this workbook ({type(e).__name__}: {e})", rel) from None
    ws = wb.worksheets[0]
    it = ws.iter_rows(values_only=True)
    header = next(it, None)
    if not header:
        raise DataError(f"empty file; the first row must name the columns {', '.join(columns)}", rel)
    header = [("" if h is None else str(h)).strip() for h in header]
    drop = on_header(header) if on_header is not None else None
    for n, values in enumerate(it, start=2):
        if values is None or all(v is None or str(v).strip() == "" for v in values):
            continue
        cells = ["" if v is None else (repr(v) if isinstance(v, float) else str(v)) for v in values]
        cells += [""] * (len(header) - len(cells))
        if drop is not None and drop(cells):
            continue
        yield n, dict(zip(header, cells))


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


def reported_row(r: dict, line: int, rel: str, company: Company, label_map, fx, seen) -> ReportedRow:
    """One financials record checked field by field; DataError at the first bad field.

    `seen` maps (quarter, basis, item, vintage) to the line that gave it, to refuse a second row for one figure.
    """
    try:
        q = _quarter(r["period"])
    except PeriodError:
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
    return ReportedRow(
        company.id,
        q,
        basis,
        label,
        item,
        value,
        unit,
        currency,
        vintage,
        r.get("report", ""),
        r.get("confidence", ""),
        r["source_url"].strip(),
        r.get("source_excerpt", ""),
        rel,
        line,
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
