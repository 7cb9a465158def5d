"""Workbooks as input; hostile data values in the rendered briefing; huge numbers and very long names."""

from __future__ import annotations

import json
import re

import pytest
from openpyxl import Workbook
from pypdf import PdfReader

from reportgen.cli import cli

from .conftest import FIN_HEADER, write_mini


def _metrics(runner, ws):
    res = runner.invoke(cli, ["-C", str(ws), "metrics", "--quarter", "2025Q2", "--format", "json"])
    assert res.exit_code == 0, res.output
    return {(r["company"], r["metric"]): r for r in json.loads(res.stdout)}


def test_xlsx_export_reads_like_the_csv(runner, tmp_path):
    csv_ws = write_mini(tmp_path / "csv", {})
    xlsx_ws = write_mini(tmp_path / "xlsx", {"data/financials/gamma.csv": None})
    wb = Workbook()
    sheet = wb.active
    for n, line in enumerate((csv_ws / "data/financials/gamma.csv").read_text().splitlines()):
        cells: list = line.split(",")
        if n:
            cells[3] = float(cells[3])  # numbers as a terminal export has them: numeric cells
        sheet.append(cells)
    wb.save(xlsx_ws / "data/financials/gamma.xlsx")
    a, b = _metrics(runner, csv_ws), _metrics(runner, xlsx_ws)
    for metric in ("revenue", "selling_expense_ratio"):
        assert b[("gamma", metric)]["value"] == a[("gamma", metric)]["value"] is not None
    assert b[("gamma", "revenue")]["sources"] == ["data/financials/gamma.xlsx:2", "data/financials/gamma.xlsx:4"]


def test_hostile_values_are_text_not_markup_or_links(runner, tmp_path):
    evil_name = '<script>alert(1)</script><img src="file:///etc/passwd">'
    ws = write_mini(
        tmp_path / "w",
        {
            "data/financials/beta.csv": FIN_HEADER
            + """
        2024Q2,3M,Revenue,500,million,HKD,published,javascript:alert(1)
        2025Q1,3M,Revenue,400,million,HKD,published,file:///etc/passwd
        2025Q2,3M,Revenue,600,million,HKD,published,https://example.test/b
    """
        },
    )
    reg = ws / "data/companies.toml"
    reg.write_text(reg.read_text().replace('name = "Beta"', f"name = {json.dumps(evil_name)}"))
    res = runner.invoke(cli, ["-C", str(ws), "build", "--quarter", "2025Q2", "--date", "2026-11-24"])
    assert res.exit_code == 0, res.output
    html = (ws / "output/2025Q2/briefing.html").read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'href="javascript:' not in html and 'href="file:' not in html and "javascript:alert(1)" in html


@pytest.mark.slow
def test_huge_numbers_and_long_names_keep_the_layout(runner, tmp_path):
    long_name = "Extraordinarily Long Holding Company Name Group International " * 4
    ws = write_mini(
        tmp_path / "w",
        {
            "data/financials/alpha.csv": FIN_HEADER
            + """
        2024Q2,3M,Revenue,800000000000000,million,RMB,published,https://example.test/a
        2025Q1,3M,Revenue,900000000000000,million,RMB,published,https://example.test/a
        2025Q2,3M,Revenue,999999999999999,million,RMB,published,https://example.test/a
        2025Q2,3M,Selling and marketing expenses,-60,million,RMB,published,https://example.test/a
    """
        },
    )
    reg = ws / "data/companies.toml"
    reg.write_text(reg.read_text().replace('name = "Gamma"', f'name = "{long_name.strip()}"'))
    res = runner.invoke(cli, ["-C", str(ws), "build", "--quarter", "2025Q2", "--date", "2026-11-24"])
    assert res.exit_code == 0, res.output
    reader = PdfReader(ws / "output/2025Q2/briefing.pdf")
    assert len(reader.pages) <= 12
    text = re.sub(r"\s+", " ", " ".join(p.extract_text() for p in reader.pages))
    assert "999,999,999,999,999" in text  # shown whole, in RMB million with separators
    assert_text_inside_pages(ws / "output/2025Q2/briefing.pdf")


def assert_text_inside_pages(pdf, margin_pt: float = 20.0):
    """Every word pdftotext finds lies inside its page, clear of the paper's edge by `margin_pt` (the page
    margins are 13 mm and more): nothing overflows a table cell, a chart or the page."""
    import shutil
    import subprocess
    import xml.etree.ElementTree as ET

    assert shutil.which("pdftotext"), "pdftotext (poppler-utils) is needed; .ci/run installs it"
    xml = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    ns = {"x": "http://www.w3.org/1999/xhtml"}
    pages = ET.fromstring(xml).findall(".//x:page", ns)
    assert pages
    for n, page in enumerate(pages, 1):
        w, h = float(page.get("width")), float(page.get("height"))
        for word in page.findall("x:word", ns):
            box = [float(word.get(k)) for k in ("xMin", "yMin", "xMax", "yMax")]
            inside = margin_pt <= box[0] and box[2] <= w - margin_pt and margin_pt / 2 <= box[1] and box[3] <= h
            assert inside, f"page {n}: {word.text!r} at {box} is outside the {w:.0f}x{h:.0f} page's margins"
