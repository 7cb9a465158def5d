"""Golden copies of the 2025Q2 edition: the metric table value by value, and the PDF's text.

A change that moves a figure or a word shows up here. When the change is intended, rewrite the copies with
`python -m pytest tests/test_golden.py --rewrite-golden` and review `git diff tests/golden/`.
"""

from __future__ import annotations

import csv
import io

import pytest

from reportgen.cli import cli

from .conftest import GOLDEN, REPO, pdf_pages


def _compare_or_rewrite(path, text: str, rewrite: bool) -> str:
    if rewrite:
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} is missing; create it with --rewrite-golden"
    return path.read_text(encoding="utf-8")


@pytest.mark.parametrize("basis", ["quarter", "ytd"])
def test_metric_table_matches_the_golden_copy_value_by_value(runner, basis, rewrite_golden):
    res = runner.invoke(cli, ["-C", str(REPO), "metrics", "--quarter", "2025Q2", "--basis", basis, "--format", "csv"])
    assert res.exit_code == 0, res.output
    golden = _compare_or_rewrite(GOLDEN / f"metrics-2025Q2-{basis}.csv", res.stdout, rewrite_golden)
    want = list(csv.DictReader(io.StringIO(golden)))
    got = list(csv.DictReader(io.StringIO(res.stdout)))
    assert [(r["company"], r["metric"]) for r in got] == [(r["company"], r["metric"]) for r in want]
    for g, w in zip(got, want):
        where = f"{w['company']} {w['metric']} ({basis})"
        if w["value"]:
            assert g["value"], f"{where}: now missing ({g['reason']})"
            assert float(g["value"]) == pytest.approx(float(w["value"]), rel=1e-9, abs=1e-12), where
        else:
            assert not g["value"], f"{where}: now {g['value']}"
        for field in ("flags", "reason", "sources", "group", "name"):
            assert g[field] == w[field], f"{where}: {field}"


def test_pdf_text_matches_the_golden_copy(built, rewrite_golden):
    _, out = built
    text = "\n\f".join(pdf_pages(out / "briefing.pdf"))
    golden = _compare_or_rewrite(GOLDEN / "briefing-2025Q2.txt", text, rewrite_golden)
    assert text == golden
