"""Issue 10's data-file attacks: every number read from a data file is finite and of a sane magnitude, a workbook
is read as it shows and to its last row, fx.csv is checked field by field, a file is read only as far as needed,
and each message names the file, line and field that is wrong (a TOML entry's own line, not a namesake's)."""

from __future__ import annotations

import datetime
import io
import json
import math
import re
import tracemalloc
import zipfile
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import Workbook

from reportgen import loaders, readers
from reportgen.cli import cli
from reportgen.errors import DataError
from reportgen.model import ITEMS

from .conftest import FIN_HEADER, REPO, CountingFile, write_mini

HEADER = FIN_HEADER.strip().split(",")
ITEM_IDS = ", ".join(sorted(i.id for i in ITEMS))


def _refused(runner, ws, expected: str, quarter: str = "2025Q2") -> None:
    """`metrics` and `validate` both end with exit 1, no traceback and no output, and name `expected`
    (FILE:LINE: field: text) exactly."""
    res = runner.invoke(cli, ["-C", str(ws), "-q", "metrics", "--quarter", quarter])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exc_info
    assert res.exit_code == 1 and "Traceback" not in res.output and res.stdout == ""
    assert res.stderr.splitlines()[0] == f"Error: {expected}", res.stderr
    val = runner.invoke(cli, ["-C", str(ws), "validate"])
    assert val.exit_code == 1 and "Traceback" not in val.output, val.output
    assert expected in [ln.removeprefix("Error: ") for ln in val.stderr.splitlines()], val.stderr


def _metrics_json(runner, ws, *args) -> list[dict]:
    res = runner.invoke(cli, ["-C", str(ws), "metrics", "--quarter", "2025Q2", "--format", "json", *args])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def _value(records, company, metric):
    return next(r for r in records if r["company"] == company and r["metric"] == metric)["value"]


def _fx(rate: str) -> dict[str, str]:
    return {
        "data/fx.csv": f"""
            currency,period,basis,rmb_per_unit,source_url
            HKD,2025Q1,3M,0.92,https://example.test/fx
            HKD,2025Q2,3M,{rate},https://example.test/fx
            HKD,2024Q2,3M,0.91,https://example.test/fx
        """
    }


# -- 1. numbers out of range: refused where they are read, never inf, never a traceback ---------------------------
@pytest.mark.parametrize("rate", ["1e300", "1e400", "2e6", "1e-7", "1e-400", "0e400"])
def test_fx_rate_out_of_range_is_refused_where_it_is_read(runner, tmp_path, rate):
    ws = write_mini(tmp_path / "w", _fx(rate))
    _refused(
        runner,
        ws,
        f"data/fx.csv:3: rmb_per_unit: '{rate}' is out of range for an FX rate: RMB per unit of a currency lies "
        "between 1e-6 and 1e6",
    )


def test_an_infinite_fx_rate_never_reaches_an_edition(runner, tmp_path):
    ws = write_mini(tmp_path / "w", _fx("1e400"))
    res = runner.invoke(cli, ["-C", str(ws), "build", "--quarter", "2025Q2", "--date", "2026-11-24"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "data/fx.csv:3: rmb_per_unit: '1e400' is out of range" in res.stderr
    assert not (ws / "output/2025Q2").exists()


@pytest.mark.parametrize("value", ["1e-300", "1e-400", "0.0000001", "1e16", "1e400", "-1e400", "0e400", "0e99999"])
def test_a_figure_out_of_range_is_refused_where_it_is_read(runner, tmp_path, value):
    fin = FIN_HEADER + f"2025Q2,3M,Revenue,{value},million,HKD,published,https://x\n"
    ws = write_mini(tmp_path / "w", {"data/financials/beta.csv": fin})
    _refused(runner, ws, f"data/financials/beta.csv:2: value: '{value}' is out of range for a financial figure")


@pytest.mark.parametrize("value", ["1e15", "0.000001", "1e-6", "0e5", "-0"])
def test_figures_at_the_bounds_are_read(runner, tmp_path, value):
    fin = FIN_HEADER + f"2025Q2,3M,Revenue,{value},million,HKD,published,https://x\n"
    ws = write_mini(tmp_path / "w", {"data/financials/beta.csv": fin})
    recs = _metrics_json(runner, ws)
    assert _value(recs, "beta", "revenue") == pytest.approx(float(value) * 0.9)


def test_an_xlsx_percent_cell_beyond_a_float_is_out_of_range(runner, tmp_path):
    ws = write_mini(tmp_path / "w", {})
    rows = [HEADER, ["2025Q2", "6M", "营业收入", 7.5, "hundred_million", "RMB", "published", "https://x"]]
    rows += [["2025Q2", "6M", "销售费用率", 1e307, "percent", "RMB", "published", "https://x"]]
    _xlsx(ws, rows, {(3, 4): "0.0%"})
    _refused(runner, ws, "data/financials/gamma.xlsx:3: value: '1E+309' is out of range for a financial figure")


# Every spelling of a number is read as exactly the decimal it spells (to the nearest float), within the bounds,
# or refused naming file, line and field: never a traceback, never a folded or rounded-away figure.
_DIGITS = st.text(alphabet="0123456789", min_size=1, max_size=20)
_spelled = st.builds(
    lambda sign, whole, frac, exp: f"{sign}{whole}{frac}{exp}",
    st.sampled_from(["", "-", "+"]),
    _DIGITS,
    st.one_of(st.just(""), _DIGITS.map(lambda d: "." + d)),
    st.one_of(st.just(""), st.integers(-500, 500).map(lambda e: f"e{e}"), st.integers(-30, 30).map("E{:+d}".format)),
)
_spellings = st.one_of(
    _spelled,
    st.floats().map(repr),
    st.floats(allow_nan=False).map(lambda f: f"{f:,.3f}"),
    _spelled.map(lambda t: t.translate(str.maketrans("0123456789.-", "０１２３４５６７８９．－"))),
    st.text(alphabet="0123456789.,eE+- %()①¹０１#/:TRUEinf", max_size=14),
)
_WIDE = str.maketrans("０１２３４５６７８９．，＋－\u2212", "0123456789.,+--")
_COMPANY = loaders.Company("alpha", "Alpha", "A", "A", "X", "IFRS", "RMB", 12, "quarterly", "")


@settings(max_examples=400, deadline=None)
@given(text=_spellings)
def test_every_spelling_of_a_number_is_read_exactly_or_refused_with_its_place(text):
    row = dict(zip(HEADER, ["2025Q2", "3M", "Revenue", text, "million", "RMB", "published", "https://x"]))
    try:
        r = readers.reported_row(row, 7, "x.csv", _COMPANY, {"Revenue": "revenue"}, {}, {})
    except DataError as e:
        assert (e.path, e.line, e.field) == ("x.csv", 7, "value") and e.message.startswith(f"'{text}' is ")
        return
    plain = text.strip().translate(_WIDE).replace(",", "")
    try:
        exact = Decimal(plain)
    except InvalidOperation:
        pytest.fail(f"{text!r} was read as {r.value!r} but is no plain decimal number")
    assert r.value == float(exact) and math.isfinite(r.value)
    assert r.value == 0 and exact == 0 or 1e-6 <= abs(r.value) <= 1e15
    assert math.isfinite(r.uncertainty) and r.uncertainty <= 1e15


# -- 2. an .xlsx cell is read as it shows -------------------------------------------------------------------------
def _xlsx(ws, rows, formats=None, name="gamma"):
    wb = Workbook()
    for row in rows:
        wb.active.append(row)
    for (r, c), fmt in (formats or {}).items():
        wb.active.cell(r, c).number_format = fmt
    (ws / f"data/financials/{name}.csv").unlink(missing_ok=True)
    wb.save(ws / f"data/financials/{name}.xlsx")
    return ws / f"data/financials/{name}.xlsx"


def _rewrite_sheet(path: Path, change) -> None:
    """Rewrite the first sheet's XML inside the workbook's zip (what another program may have written)."""
    src = zipfile.ZipFile(io.BytesIO(path.read_bytes()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "xl/worksheets/sheet1.xml":
                new = change(data.decode())
                assert new != data.decode()
                data = new.encode()
            dst.writestr(info, data)
    path.write_bytes(out.getvalue())


GAMMA_H1 = ["2025Q2", "6M", "营业收入", 7.5, "hundred_million", "RMB", "published", "https://example.test/g"]


@pytest.mark.parametrize(
    "value,fmt,ratio",
    [
        (8.8, '0.0"%"', 0.088),  # the % is quoted text: the cell shows 8.8%
        (8.8, "0.0\\%", 0.088),  # the % is escaped: the same
        (8.8, '#,##0.0_%"%"', 0.088),  # _% is a space as wide as %
        (0.088, "0.0%", 0.088),  # a true percent format: Excel stores 0.088 for 8.8%
        (0.088, "[Blue]0.0%;[Red]-0.0%", 0.088),
        (8.8, '0.0"%";-0.0%', 0.088),  # the positive section shows the number as it is
        (0.00088, "0.0%%", 0.088),  # each live % multiplies by 100
    ],
)
def test_xlsx_cell_is_read_as_it_shows_whatever_its_percent_sign(runner, tmp_path, value, fmt, ratio):
    ws = write_mini(tmp_path / "w", {})
    rows = [HEADER, GAMMA_H1, ["2025Q2", "6M", "销售费用率", value, "percent", "RMB", "published", "https://x"]]
    _xlsx(ws, rows, {(3, 4): fmt})
    recs = _metrics_json(runner, ws, "--basis", "ytd")
    assert _value(recs, "gamma", "selling_expense_ratio") == pytest.approx(ratio)


#: number formats and the factor each shows a (positive) number by; None: shown scaled, refused
FORMATS = {"General": 1, "0.00": 1, "0.0%": 100, "0%%": 10_000, '0.0"%"': 1, "0.0\\%": 1, "[$-409]0.0%": 100,
           "0.0%;-0.0\\%": 100, "#,##0": 1, "#,##0,": None, '0.0,,"m"': None}  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(v=st.one_of(st.floats(min_value=0), st.integers(0, 10**30)), fmt=st.sampled_from(sorted(FORMATS)))
def test_a_number_cell_is_read_as_its_format_shows_it_or_refused(v, fmt):
    from types import SimpleNamespace

    text, scaled = readers._cell_read(SimpleNamespace(value=v, number_format=fmt))
    value, _ = readers.number_problem(text)
    assert scaled is (FORMATS[fmt] is None) or value is None or not math.isfinite(value)  # inf: refused anyway
    if scaled or value is None or readers.out_of_range(text, value):
        return  # refused where it is read, with its cell
    assert value == pytest.approx(float(v) * FORMATS[fmt], rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("fmt", ["#,##0,", "0.0,,", '#,##0.0,," mn"'])
def test_xlsx_cell_showing_its_number_scaled_by_thousands_is_refused(runner, tmp_path, fmt):
    ws = write_mini(tmp_path / "w", {})
    _xlsx(ws, [HEADER, ["2025Q2", "6M", "营业收入", 750000000, "yuan", "RMB", "published", "https://x"]], {(2, 4): fmt})
    _refused(
        runner,
        ws,
        f"data/financials/gamma.xlsx:2: value: cell D2 shows its number divided by 1,000 or more (number format "
        f"'{fmt}'), so what it shows and what it holds differ; give it a format without trailing commas (such as "
        "0.00) and write the unit of the number it holds",
    )


@pytest.mark.parametrize(
    "cell,said",
    [
        (
            datetime.datetime(2025, 6, 30),
            "'2025-06-30' is not a number: it is a date (in a workbook: a cell holding or formatted as a date), where "
            "a number is expected",
        ),
        (  # openpyxl writes it as an error cell
            "#DIV/0!",
            "'#DIV/0!' is not a number: it is the error value #DIV/0! (a spreadsheet formula that failed), where a "
            "number is expected; fix the formula or type the figure",
        ),
    ],
    ids=["date", "error-value"],
)
def test_xlsx_date_or_error_cell_where_a_number_is_expected_says_what_it_is(runner, tmp_path, cell, said):
    ws = write_mini(tmp_path / "w", {})
    _xlsx(ws, [HEADER, [*GAMMA_H1[:3], cell, *GAMMA_H1[4:]]])
    _refused(runner, ws, "data/financials/gamma.xlsx:2: value: " + said)


def test_xlsx_date_cell_in_a_date_column_reads_as_its_date(runner, tmp_path):
    ws = write_mini(tmp_path / "w", {})
    header = [*HEADER, "published"]
    _xlsx(ws, [header, [*GAMMA_H1, datetime.datetime(2025, 8, 29)]])
    res = runner.invoke(cli, ["-C", str(ws), "validate"])
    assert res.exit_code == 0, res.output


# -- 3. a stale <dimension> never hides rows -------------------------------------------------------------------------
def test_xlsx_with_a_stale_dimension_is_read_to_its_last_row(runner, tmp_path):
    ws = write_mini(tmp_path / "w", {})
    rows = [HEADER]
    rows += [["2025Q1", "3M", "营业收入", 3, "hundred_million", "RMB", "published", "https://x"]]
    rows += [["2025Q1", "3M", "销售费用", 0.3, "hundred_million", "RMB", "published", "https://x"]]
    rows += [GAMMA_H1, ["2025Q2", "6M", "销售费用", 0.66, "hundred_million", "RMB", "published", "https://x"]]
    path = _xlsx(ws, rows)
    _rewrite_sheet(path, lambda xml: re.sub(r'<dimension ref="[^"]*"\s*/>', '<dimension ref="A1:H3"/>', xml))
    recs = _metrics_json(runner, ws)
    assert _value(recs, "gamma", "revenue") == pytest.approx(450.0)  # H1 (row 4) - Q1: rows 4 and 5 were read
    rows.append(["2025Q2", "3M", "销售费用", "12o0", "hundred_million", "RMB", "published", "https://x"])
    path = _xlsx(ws, rows)
    _rewrite_sheet(path, lambda xml: re.sub(r'<dimension ref="[^"]*"\s*/>', '<dimension ref="A1:C2"/>', xml))
    _refused(
        runner,
        ws,
        "data/financials/gamma.xlsx:6: value: '12o0' is not a number: it has 'o' in it (a footnote mark, a unit or "
        "a typing error?); write the bare number",
    )


# -- 4. fx.csv is checked field by field ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "currency,why",
    [("HKD\u200b", "'\\u200b' is U+200B"), ("HKД", "'Д' is U+0414"), ("ＨKD", "'Ｈ' is U+FF28"), ("HK", "")],
)
def test_fx_currency_must_be_three_ascii_letters(runner, tmp_path, currency, why):
    fx = _fx("0.90")
    fx["data/fx.csv"] = fx["data/fx.csv"].replace("HKD,2025Q2", f"{currency},2025Q2")
    ws = write_mini(tmp_path / "w", fx)
    shown = currency.replace("\u200b", "\\u200b")
    why = f" ({why}, not a letter A-Z)" if why else ""
    _refused(
        runner,
        ws,
        f"data/fx.csv:3: currency: '{shown}' is not a currency code; write three letters A-Z like HKD or USD{why}",
    )


@pytest.mark.parametrize(
    "row,expected",
    [
        ("HKD,2025Q2\u200b,3M,0.90,https://x", "period: '2025Q2\\u200b' is not a quarter like 2025Q2"),
        ("HKD,２０２５Q2,3M,0.90,https://x", "period: '２０２５Q2' is not a quarter like 2025Q2"),
        ("HKD,2025Q2,3m,0.90,https://x", "basis: '3m' is not a basis; use one of 3M, 6M, 9M, 12M"),
        ("HKD,2025Q2,3M,0.9o,https://x", "rmb_per_unit: '0.9o' is not a positive rate: it has 'o' in it (a footnote "
         "mark, a unit or a typing error?); write the bare number"),
        ("HKD,2025Q2,3M,0.90,https://x\u200b/fx", "source_url: 'https://x\\u200b/fx' is not a source address: it "
         "holds a space or an invisible character"),
    ],
)  # fmt: skip
def test_every_fx_field_is_checked_where_it_is_read(runner, tmp_path, row, expected):
    fx = _fx("0.90")
    fx["data/fx.csv"] = fx["data/fx.csv"].replace("HKD,2025Q2,3M,0.90,https://example.test/fx", row)
    ws = write_mini(tmp_path / "w", fx)
    _refused(runner, ws, f"data/fx.csv:3: {expected}")


# -- 5. a data file is read only as far as needed -----------------------------------------------------------------
def test_a_large_financials_file_with_an_early_error_is_not_read_whole(tmp_path):
    ws = write_mini(tmp_path / "w", {})
    good = "2025Q2,3M,Revenue,1000,million,RMB,published,https://example.test/a\n"
    with open(ws / "data/financials/alpha.csv", "w", encoding="utf-8") as fh:
        fh.write(FIN_HEADER + good.replace("2025Q2", "2025Q1") + "2025Q2,3M,Revenue,12o0,million,RMB,published,x\n")
        for _ in range(40):  # 19 MB of rows after the error
            fh.write(good.replace("2025Q2", "2024Q4") * 7000)
    companies = loaders.load_registry(ws)
    labels, overrides = loaders.load_labels(ws)
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=":3: value: '12o0'"):
            loaders.load_financials(ws, companies["alpha"], labels, overrides, {})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (ws / "data/financials/alpha.csv").stat().st_size > 15_000_000
    assert peak < 2_000_000, peak  # a few lines, not the 19 MB file


@pytest.mark.parametrize("sep", [b"\r", b""], ids=["cr-line-ends", "no-line-breaks"])
def test_a_file_without_line_feeds_is_not_read_whole(sep):
    body = FIN_HEADER.encode().rstrip(b"\n") + sep + b"2025Q2,3M,Revenue,1000,million,RMB,published,x" * 200_000
    fh = CountingFile(body)
    with pytest.raises(DataError) as e:
        list(readers.csv_records(fh, "big.csv", columns=readers.FINANCIAL_COLUMNS))
    assert (e.value.path, e.value.line) == ("big.csv", 1)
    assert fh.taken <= readers.MAX_LINE_BYTES + 1 < len(body)


def test_a_file_blank_at_its_start_is_not_taken_for_an_empty_one(runner, tmp_path):
    """The empty-file check looked at the first 4096 bytes only: a file starting with 5000 spaces lost its rows."""
    fin = (write_mini(tmp_path / "x", {}) / "data/financials/alpha.csv").read_text(encoding="utf-8")
    ws = write_mini(tmp_path / "w", {})
    (ws / "data/financials/alpha.csv").write_text(" " * 5000 + fin, encoding="utf-8")
    recs = _metrics_json(runner, ws)
    assert _value(recs, "alpha", "revenue") == 1000


# -- 6. messages that say what is wrong -------------------------------------------------------------------------------
@pytest.mark.parametrize("sep,name", [("|", "'|'"), (":", "':'"), ("\t", "tabs"), (";", "';'"), (" ", "spaces")])
def test_a_csv_with_another_separator_says_which(runner, tmp_path, sep, name):
    fin = (FIN_HEADER + "2025Q2,3M,Revenue,600,million,HKD,published,https://x\n").replace(",", sep)
    ws = write_mini(tmp_path / "w", {})
    (ws / "data/financials/beta.csv").write_text(fin, encoding="utf-8")
    _refused(
        runner,
        ws,
        f"data/financials/beta.csv:1: the columns seem to be separated by {name}; save the file as CSV with commas",
    )


def test_a_csv_with_cr_line_ends_says_so(runner, tmp_path):
    ws = write_mini(tmp_path / "w", {})
    fin = ws / "data/financials/beta.csv"
    fin.write_bytes(fin.read_bytes().replace(b"\n", b"\r"))
    _refused(
        runner,
        ws,
        "data/financials/beta.csv:1: the lines of this file end in CR alone (old Mac line ends), so it reads as one "
        "line; save it with Windows (CRLF) or Unix (LF) line ends, e.g. as CSV UTF-8 in Excel or with "
        "dos2unix/mac2unix",
    )


def test_a_stray_carriage_return_inside_a_line_is_named(runner, tmp_path):
    ws = write_mini(tmp_path / "w", {})
    fin = ws / "data/financials/beta.csv"
    fin.write_bytes(fin.read_bytes().replace(b"Revenue,600", b"Revenue,6\r00"))
    _refused(
        runner,
        ws,
        "data/financials/beta.csv:4: a carriage return (CR) in the middle of the line, outside quotes; remove it, "
        "or quote the field",
    )


# -- 7. a TOML problem is reported at its own entry, not at the first line with the same key --------------------------
def test_a_bad_label_override_is_reported_at_its_own_line(runner, tmp_path):
    labels = (REPO / "data/labels.toml").read_text(encoding="utf-8") + '\n[overrides.beta]\nRevenue = ["revenue"]\n'
    ws = write_mini(tmp_path / "w", {"data/labels.toml": labels})
    line = labels.splitlines().index('Revenue = ["revenue"]') + 1
    assert line > 30
    _refused(
        runner, ws, f"data/labels.toml:{line}: Revenue: '['revenue']' is not a canonical item; use one of {ITEM_IDS}"
    )


def _registry(ws, extra: str) -> tuple[Path, list[str]]:
    reg = ws / "data/companies.toml"
    text = reg.read_text(encoding="utf-8") + extra
    reg.write_text(text, encoding="utf-8")
    return reg, text.splitlines()


SEGMENT = '[[{cid}.segments]]\nid = "{sid}"\nname = "S"\nname_zh = "S"\n'


def test_a_bad_segment_is_reported_at_its_own_entry(runner, tmp_path):
    ws = write_mini(tmp_path / "w", {})
    seg_alpha = SEGMENT.format(cid="alpha", sid="ev")
    # TOML lets an array of tables of one company follow another company's table
    _, lines = _registry(ws, "\n" + seg_alpha + "\n" + SEGMENT.format(cid="gamma", sid="ok") + "\n"
                         + SEGMENT.format(cid="gamma", sid="../x"))  # fmt: skip
    line = lines.index('id = "../x"') + 1
    _refused(
        runner,
        ws,
        f"data/companies.toml:{line}: id: '../x' is not a segment id (letters, digits, _ and -, once each)",
    )


POLICY = '[[alpha.policy_changes]]\nid = "{pid}"\ntitle = "T"\neffective = {eff}\nitems = ["selling_expenses"]\n'


@pytest.mark.parametrize(
    "eff,items,expected",
    [
        ("2025", '["selling_expenses"]', "effective: policy change: effective must be text"),
        ('"2025"', '["selling_expenses"]', "effective: policy change 'p2' needs effective = \"YYYYQn\""),
        ('"2025Q1"', '["sales"]', "items: policy change 'p2': 'sales' is not an item; use ids like selling_expenses"),
        ('"2025Q1"', "[{}]", "items: policy change: items must be a list of item ids"),
    ],
)
def test_a_bad_policy_change_is_reported_at_its_own_entry(runner, tmp_path, eff, items, expected):
    ws = write_mini(tmp_path / "w", {})
    second = POLICY.format(pid="p2", eff=eff).replace('items = ["selling_expenses"]', f"items = {items}")
    _, lines = _registry(ws, "\n" + POLICY.format(pid="p1", eff='"2024Q1"') + "\n" + second)
    key = expected.split(":")[0]
    line = max(i for i, ln in enumerate(lines, start=1) if ln.startswith(f"{key} ="))  # the second entry's
    _refused(runner, ws, f"data/companies.toml:{line}: {expected}")


TOML = '[a]\nx = 1\ntext = """\n[[a.s]]\n"""\n[[a.s]]\nid = "one"\n[[ a . s ]]  # two\nid = "two"\n["b.c"]\nx = 2\n'


@pytest.mark.parametrize(
    "table,key,index,line",
    [
        (("a",), "x", None, 2),
        (("a",), "text", None, 3),
        (("a", "s"), "id", 0, 7),  # not the [[a.s]] inside the string on line 4
        (("a", "s"), "id", 1, 9),
        (("a", "s"), "name", 1, 8),  # a key not written: the entry's header
        (("b.c",), "x", None, 11),
        (("a", "s"), "id", 2, None),  # no third entry: the caller falls back
        (("a", "s"), "id", None, None),  # [a.s] is an array of tables, not a table
    ],
)
def test_toml_line_finds_the_entry_of_a_table_or_array_of_tables(table, key, index, line):
    assert loaders.toml_line(TOML, table, key, index) == line
