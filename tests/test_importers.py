"""`reportgen import` and `reportgen fetch`: each provider's file becomes the company's own rows, merged into
data/financials/ID.csv without losing anything; every bad input is refused with the file, line and field.

The fixtures in tests/data/importers/ are in the providers' exact shapes and carry only figures already in data/
(see README.md there), so a company's file rebuilt from them must give the default data's 2025Q2 metrics."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import time
import tomllib
import types
from datetime import date
from pathlib import Path

import pytest

from reportgen import importers, loaders
from reportgen.cli import cli
from reportgen.ledger import Lock

from .conftest import REPO, copy_default_workspace

FIX = Path(__file__).resolve().parent / "data" / "importers"
SINA_URL = (
    "https://quotes.sina.cn/cn/api/openapi.php/CompanyFinanceService.getFinanceReport2022?paperCode=sz000333"
    "&source=lrb&type=0&page=1&num=1000"
)


# -- helpers ------------------------------------------------------------------------------------------------------
def workspace(tmp_path: Path, without: str | None = None) -> Path:
    """A copy of the default workspace, without data/financials/<without>.csv when given."""
    ws = copy_default_workspace(tmp_path / "ws")
    if without:
        (ws / "data" / "financials" / f"{without}.csv").unlink()
    return ws


def run_import(runner, ws: Path, file: Path, company: str, fmt: str, *extra: str, code: int = 0):
    res = runner.invoke(cli, ["-C", str(ws), "import", str(file), "--company", company, "--format", fmt, *extra])
    assert res.exit_code == code, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return res


def metrics(runner, ws: Path, company: str, basis: str = "quarter") -> dict[str, dict]:
    """The company's 2025Q2 records of `reportgen metrics --format json`, by metric id."""
    args = ["-C", str(ws), "metrics", "--quarter", "2025Q2", "--basis", basis, "--format", "json"]
    res = runner.invoke(cli, args)
    assert res.exit_code == 0, res.output
    return {r["metric"]: r for r in json.loads(res.stdout) if r["company"] == company}


def fin(ws: Path, company: str) -> Path:
    return ws / "data" / "financials" / f"{company}.csv"


def rows(ws: Path, company: str) -> list[dict]:
    return list(csv.DictReader(fin(ws, company).open(encoding="utf-8")))


def loaded(ws: Path, company: str) -> list:
    """The company's rows as the loader checks and reads them."""
    registry, (labels, overrides) = loaders.load_registry(ws), loaders.load_labels(ws)
    return loaders.load_financials(ws, registry[company], labels, overrides, loaders.load_fx(ws))


def changed_copy(tmp_path: Path, name: str, old: str, new: str, count: int = 1) -> Path:
    """A copy of a fixture with `old` replaced by `new` (`count` times): one figure or one field changed."""
    text = (FIX / name).read_text(encoding="utf-8")
    assert text.count(old) >= count, old
    path = tmp_path / name
    path.write_text(text.replace(old, new, count), encoding="utf-8")
    return path


# -- each format gives the default data's metrics -----------------------------------------------------------------
#: metric -> words its reason must have, for metrics the fixture cannot support (the value must be missing then)
XIAOMI_GAPS = {
    # East Money's frame has the first half and Q1 2025, and the first half of 2024 but not its Q1: no 2024Q2 quarter
    "revenue_yoy": ("revenue", "2024Q2"),
    "gross_margin_yoy_pp": ("gross", "2024Q2"),
    # East Money shows no R&D line (FORMATS.md)
    "rnd_ratio": ("R&D", "2025Q2"),
}
CASES = [
    ("akshare_sina_midea.csv", "akshare-sina", "midea", "quarter", {}),
    ("akshare_sina_midea_noindex.csv", "akshare-sina", "midea", "quarter", {}),
    ("akshare_sina_midea.xlsx", "akshare-sina", "midea", "quarter", {}),
    ("akshare_sina_midea.csv", "akshare-sina", "midea", "ytd", {}),
    ("tushare_income_midea.csv", "tushare-income", "midea", "quarter", {}),
    ("akshare_hk_xiaomi.csv", "akshare-hk", "xiaomi", "quarter", XIAOMI_GAPS),
    ("sec_companyfacts_nio.json", "sec-companyfacts", "nio", "quarter", {}),
    ("sec_companyfacts_nio_realistic.json", "sec-companyfacts", "nio", "ytd", {}),
]


@pytest.mark.parametrize(("name", "fmt", "company", "basis", "gaps"), CASES, ids=[f"{c[0]}-{c[3]}" for c in CASES])
def test_import_into_a_workspace_without_the_company_gives_the_default_metrics(
    runner, tmp_path, name, fmt, company, basis, gaps
):
    ws = workspace(tmp_path)
    expected = metrics(runner, ws, company, basis)
    fin(ws, company).unlink()
    res = run_import(runner, ws, FIX / name, company, fmt)
    assert f"{company}: " in res.stdout and " 0 in conflict" in res.stdout
    got = metrics(runner, ws, company, basis)
    assert set(got) == set(expected)
    for metric, want in expected.items():
        have = got[metric]
        if metric in gaps:
            assert want["value"] is not None and have["value"] is None, metric
            assert "missing" in have["flags"] and all(w in have["reason"] for w in gaps[metric]), have
        elif want["value"] is None:
            assert have["value"] is None, (metric, have)
        elif metric == "revenue":  # RMB million
            assert have["value"] == pytest.approx(want["value"], abs=0.01), metric
        else:  # plain fractions: within 0.01 percentage points
            assert abs(have["value"] - want["value"]) <= 1e-4, (metric, want["value"], have["value"])


def test_imported_rows_are_in_the_company_s_own_form(runner, tmp_path):
    ws = workspace(tmp_path, without="midea")
    run_import(runner, ws, FIX / "akshare_sina_midea.csv", "midea", "akshare-sina")
    assert fin(ws, "midea").read_text(encoding="utf-8").splitlines()[0] == ",".join(importers.HEADER)
    by_key = {(r["period"], r["basis"], r["label"]): r for r in rows(ws, "midea")}
    r = by_key[("2025Q2", "6M", "归属于上市公司股东的净利润")]  # Sina's 归属于母公司所有者的净利润, cumulative 6M
    assert (r["value"], r["unit"], r["currency"], r["vintage"]) == ("26014000000", "yuan", "RMB", "published")
    assert r["source_url"] == SINA_URL and r["published"] == "2025-08-29" and r["confidence"] == "medium"
    assert r["report"].startswith("Sina Finance via AKShare") and "retrieved" in r["report"]
    assert r["ref"] == "akshare_sina_midea.csv:3" and "归属于母公司所有者的净利润 26014000000.0" in r["source_excerpt"]
    assert "aggregator" in r["note"]
    assert ("2024Q1", "3M", "营业收入") in by_key and ("2025Q3", "9M", "营业总收入") in by_key
    # the empty cells (营业总成本, EPS, ...) are never filled in
    assert {r["label"] for r in rows(ws, "midea")} <= {
        "营业总收入", "营业收入", "营业成本", "销售费用", "管理费用", "研发费用", "营业利润", "净利润",
        "归属于上市公司股东的净利润",
    }  # fmt: skip


def test_hk_and_sec_rows_keep_the_label_and_sign_the_company_file_uses(runner, tmp_path):
    ws = workspace(tmp_path)
    before = fin(ws, "xiaomi").read_bytes()
    res = run_import(runner, ws, FIX / "akshare_hk_xiaomi.csv", "xiaomi", "akshare-hk")
    # East Money prints expenses positive, Xiaomi's file negative: the same figures, so nothing changes
    assert res.stdout.splitlines()[0].startswith("xiaomi: 0 rows added, 24 unchanged, 0 in conflict, 0 replaced")
    assert fin(ws, "xiaomi").read_bytes() == before
    fin(ws, "xiaomi").unlink()
    run_import(runner, ws, FIX / "akshare_hk_xiaomi.csv", "xiaomi", "akshare-hk")
    labels = {r["label"] for r in rows(ws, "xiaomi")}
    assert "Revenue" in labels and "Profit attributable to owners of the Company" in labels
    ws2 = workspace(tmp_path / "b", without="nio")
    run_import(runner, ws2, FIX / "sec_companyfacts_nio_realistic.json", "nio", "sec-companyfacts")
    sga = [r for r in rows(ws2, "nio") if r["label"] == "Selling, general and administrative expenses"]
    assert {(r["period"], r["basis"], r["value"]) for r in sga} == {
        ("2024Q2", "6M", "6754256000"),
        ("2025Q2", "6M", "8365684000"),
    }
    assert sga[0]["confidence"] == "high" and sga[0]["source_url"].endswith("/CIK0001736541.json")
    assert sga[0]["ref"].startswith("sec_companyfacts_nio_realistic.json#us-gaap:SellingGeneralAndAdministrative")


# -- merging ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "fmt", "company"),
    [
        ("akshare_sina_midea.csv", "akshare-sina", "midea"),
        ("akshare_sina_midea.xlsx", "akshare-sina", "midea"),
        ("akshare_hk_xiaomi.csv", "akshare-hk", "xiaomi"),
        ("tushare_income_midea.csv", "tushare-income", "midea"),
        ("tushare_income_haier.csv", "tushare-income", "haier"),
        ("sec_companyfacts_nio.json", "sec-companyfacts", "nio"),
    ],
)
def test_importing_the_same_file_twice_changes_nothing(runner, tmp_path, name, fmt, company):
    ws = workspace(tmp_path, without=company)
    first = run_import(runner, ws, FIX / name, company, fmt)
    added = int(first.stdout.split(": ", 1)[1].split(" rows added")[0])
    data = fin(ws, company).read_bytes()
    second = run_import(runner, ws, FIX / name, company, fmt)
    assert fin(ws, company).read_bytes() == data
    assert f"{company}: 0 rows added, {added} unchanged, 0 in conflict, 0 replaced" in second.stdout


def test_a_file_whose_figures_are_all_in_the_data_changes_nothing(runner, tmp_path):
    ws = workspace(tmp_path)
    before = fin(ws, "midea").read_bytes()
    res = run_import(runner, ws, FIX / "akshare_sina_midea.csv", "midea", "akshare-sina")
    assert res.stdout.splitlines()[0].startswith("midea: 0 rows added, 45 unchanged, 0 in conflict, 0 replaced")
    assert fin(ws, "midea").read_bytes() == before


def test_one_changed_figure_is_one_conflict_and_changes_nothing_unless_replace(runner, tmp_path):
    ws = workspace(tmp_path, without="midea")
    run_import(runner, ws, FIX / "akshare_sina_midea.csv", "midea", "akshare-sina")
    text = fin(ws, "midea").read_text(encoding="utf-8")  # a line separator inside an excerpt is not a line end
    fin(ws, "midea").write_text(text.replace("报告日 20240331:", "报告日\u202820240331:", 1), encoding="utf-8")
    before = fin(ws, "midea").read_bytes()
    line = next(
        n for n, r in enumerate(rows(ws, "midea"), start=2) if (r["period"], r["label"]) == ("2025Q2", "营业收入")
    )
    changed = changed_copy(tmp_path, "akshare_sina_midea.csv", "251123714000.0", "251123715000.0")
    res = run_import(runner, ws, changed, "midea", "akshare-sina")
    assert res.stdout.splitlines()[:2] == [
        f"midea: 0 rows added, 44 unchanged, 1 in conflict, 0 replaced (akshare-sina file {changed} into "
        "data/financials/midea.csv)",
        f"conflict: 2025Q2 6M 营业收入 (published): 251123714000 yuan in data/financials/midea.csv:{line}, {SINA_URL}; "
        f"251123715000 yuan in akshare_sina_midea.csv:3, {SINA_URL}. Kept 251123714000 yuan (--replace takes the "
        "file's)",
    ]
    assert fin(ws, "midea").read_bytes() == before

    res = run_import(runner, ws, changed, "midea", "akshare-sina", "--replace")
    assert "0 rows added, 44 unchanged, 0 in conflict, 1 replaced" in res.stdout
    assert (
        f"replaced: 2025Q2 6M 营业收入 (published): 251123714000 yuan (data/financials/midea.csv:{line}" in res.stdout
    )
    old, new = before.decode().split("\n"), fin(ws, "midea").read_text(encoding="utf-8").split("\n")
    assert [n for n, (a, b) in enumerate(zip(old, new), start=1) if a != b] == [line] and len(old) == len(new)
    r = rows(ws, "midea")[line - 2]
    assert (r["period"], r["basis"], r["label"], r["value"]) == ("2025Q2", "6M", "营业收入", "251123715000")
    assert "Replaced 251123714000 yuan" in r["note"]


def test_figures_equal_within_printed_rounding_are_the_same(runner, tmp_path):
    """data/ prints Midea's H1 2024 revenue as 2172.74 hundred_million; a provider's 217274388000 yuan rounds to it."""
    ws = workspace(tmp_path)
    near = changed_copy(tmp_path, "akshare_sina_midea.csv", "217274000000.0", "217274388000.0")
    res = run_import(runner, ws, near, "midea", "akshare-sina")
    assert "0 rows added, 45 unchanged, 0 in conflict" in res.stdout
    (tmp_path / "far").mkdir()
    far = changed_copy(tmp_path / "far", "akshare_sina_midea.csv", "217274000000.0", "217275000001.0")
    res = run_import(runner, ws, far, "midea", "akshare-sina")
    assert "1 in conflict" in res.stdout and "2172.74 hundred_million in data/financials/midea.csv" in res.stdout


def test_new_rows_are_appended_and_the_existing_lines_kept(runner, tmp_path):
    """An older file (no `published` column) without Midea's 9M figures: the import appends them, adds the column to
    the header's end and leaves every other line as it was, with the file's mode."""
    ws = workspace(tmp_path)
    path = fin(ws, "midea")
    old = [r for r in rows(ws, "midea") if (r["period"], r["basis"]) != ("2025Q3", "9M")]
    columns = [c for c in importers.HEADER if c != "published"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(old)
    path.write_text(buf.getvalue(), encoding="utf-8")
    os.chmod(path, 0o640)
    kept = path.read_text(encoding="utf-8").splitlines(keepends=True)
    res = run_import(runner, ws, FIX / "akshare_sina_midea.csv", "midea", "akshare-sina")
    assert "midea: 7 rows added, 38 unchanged" in res.stdout and "added: 2025Q3 9M (7)" in res.stdout
    new = path.read_text(encoding="utf-8").splitlines(keepends=True)
    assert new[0] == ",".join(columns) + ",published\n"
    assert new[1 : len(kept)] == kept[1:]  # every other line as it was
    assert all(ln.startswith("2025Q3,9M,") for ln in new[len(kept) :]) and len(new) == len(kept) + 7
    assert path.stat().st_mode & 0o777 == 0o640
    assert not [p.name for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporary file left
    assert len(loaded(ws, "midea")) == len(new) - 1  # every row reads as the loader reads it


def test_dry_run_writes_nothing(runner, tmp_path):
    ws = workspace(tmp_path, without="midea")
    res = run_import(runner, ws, FIX / "akshare_sina_midea.csv", "midea", "akshare-sina", "--dry-run")
    assert "midea: 45 rows added" in res.stdout and res.stdout.splitlines()[-1] == "dry run: nothing written"
    assert not fin(ws, "midea").exists()
    ws2 = workspace(tmp_path / "b")
    before = fin(ws2, "midea").read_bytes()
    changed = changed_copy(tmp_path, "akshare_sina_midea.csv", "251123714000.0", "251123715000.0")
    res = run_import(runner, ws2, changed, "midea", "akshare-sina", "--dry-run", "--replace")
    assert "1 replaced" in res.stdout and fin(ws2, "midea").read_bytes() == before


def test_tushare_versions_become_published_and_restated_as_haier_s_data_keep_them(runner, tmp_path):
    """Report type 1 (the 2024Q1 report) and 4 (the 2025Q1 report's prior-year column, restated after the
    acquisitions under common control) give data/'s published and restated Haier figures."""
    ws = workspace(tmp_path)
    default = {(r["period"], r["basis"], r["label"], r["vintage"]): r for r in rows(ws, "haier")}
    res = run_import(runner, ws, FIX / "tushare_income_haier.csv", "haier", "tushare-income")
    assert res.stdout.startswith("haier: 0 rows added, 6 unchanged, 0 in conflict")
    fin(ws, "haier").unlink()
    run_import(runner, ws, FIX / "tushare_income_haier.csv", "haier", "tushare-income")
    got = {(r["period"], r["basis"], r["label"], r["vintage"]): r for r in rows(ws, "haier")}
    assert {k[3] for k in got if k[0] == "2024Q1"} == {"published", "restated"}
    for key, r in got.items():
        assert float(r["value"]) == pytest.approx(float(default[key]["value"]), abs=0.005), key
    restated = got[("2024Q1", "3M", "营业收入", "restated")]
    assert restated["published"] == "2025-04-30" and got[("2024Q1", "3M", "营业收入", "published")]["published"] == (
        "2024-04-30"
    )
    assert "restates the figure first published 2024-04-30 (68977513890.1 yuan" in restated["note"]


def test_sec_filings_of_one_period_become_published_and_restated(runner, tmp_path):
    """NIO's FY2024 revenue, filed in the FY2024 20-F and again in the FY2025 20-F: the same value is one published
    row; a later filing with another value becomes the restated row (the value here is changed for the test)."""
    ws = workspace(tmp_path, without="nio")
    run_import(runner, ws, FIX / "sec_companyfacts_nio_realistic.json", "nio", "sec-companyfacts")
    fy = [r for r in rows(ws, "nio") if (r["period"], r["basis"], r["label"]) == ("2024Q4", "12M", "Total revenues")]
    assert [(r["vintage"], r["value"], r["published"]) for r in fy] == [("published", "65731600000", "2025-04-08")]

    doc = json.loads((FIX / "sec_companyfacts_nio_realistic.json").read_text(encoding="utf-8"))
    facts = doc["facts"]["us-gaap"]["RevenueFromContractWithCustomerExcludingAssessedTax"]["units"]["CNY"]
    later = next(f for f in facts if f["end"] == "2024-12-31" and f["filed"] == "2026-04-10")
    later["val"] = 65731559000
    path = tmp_path / "restated.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    fin(ws, "nio").unlink()
    run_import(runner, ws, path, "nio", "sec-companyfacts")
    fy = [r for r in rows(ws, "nio") if (r["period"], r["basis"], r["label"]) == ("2024Q4", "12M", "Total revenues")]
    assert [(r["vintage"], r["value"], r["published"]) for r in fy] == [
        ("published", "65731600000", "2025-04-08"),
        ("restated", "65731559000", "2026-04-10"),
    ]


def test_a_workspace_label_map_changes_the_packaged_one(runner, tmp_path):
    ws = workspace(tmp_path, without="midea")
    (ws / "data" / "providers").mkdir()
    (ws / "data" / "providers" / "akshare-sina.toml").write_text('[labels]\n"营业总收入" = false\n', encoding="utf-8")
    run_import(runner, ws, FIX / "akshare_sina_midea.csv", "midea", "akshare-sina")
    labels = {r["label"] for r in rows(ws, "midea")}
    assert "营业总收入" not in labels and "营业收入" in labels


def test_an_item_the_workspace_has_no_label_for_is_left_out_and_said(runner, tmp_path):
    """A workspace that reads 营业总收入 as Midea's revenue (one line, as Haier's reports print it) has no label for
    total_revenue at Midea: Sina's 营业总收入 column is left out, and the summary says how to bring it in."""
    ws = workspace(tmp_path, without="midea")
    labels = ws / "data" / "labels.toml"
    labels.write_text(labels.read_text(encoding="utf-8") + '\n[overrides.midea]\n"营业总收入" = "revenue"\n', "utf-8")
    res = run_import(runner, ws, FIX / "akshare_sina_midea.csv", "midea", "akshare-sina")
    assert (
        "left out: 营业总收入 (total_revenue): data/labels.toml maps none of '营业总收入' to total_revenue for midea; "
        "add the company's label for it there and import again"
    ) in res.stdout.splitlines()
    assert {r["label"] for r in rows(ws, "midea") if r["period"] == "2025Q2"} >= {"营业收入"}
    assert "营业总收入" not in {r["label"] for r in rows(ws, "midea")}


def test_an_import_while_another_one_writes_changes_nothing(runner, tmp_path):
    ws = workspace(tmp_path, without="midea")
    with Lock(ws / "output" / ".import.lock", what="import midea"):
        res = run_import(runner, ws, FIX / "akshare_sina_midea.csv", "midea", "akshare-sina", code=75)
    assert "is writing this workspace's data; nothing was imported" in res.stderr
    assert not fin(ws, "midea").exists()


# -- bad input: every one refused with its message -----------------------------------------------------------------
SINA_FRAME = "AKShare's stock_financial_report_sina(symbol='利润表') frame"


def bad_cases(tmp: Path) -> list[tuple[str, Path, str, str, str]]:
    """(id, file, company, format, the message after 'Error: ')."""
    sina, hk, ts, nio = (FIX / n for n in ("akshare_sina_midea.csv", "akshare_hk_xiaomi.csv",
                                           "tushare_income_midea.csv", "sec_companyfacts_nio.json"))  # fmt: skip
    xlsx = FIX / "akshare_sina_midea.xlsx"

    def made(name: str, text: str | bytes) -> Path:
        p = tmp / name
        p.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
        return p

    sina_text = sina.read_text(encoding="utf-8")
    unclosed = made("unclosed.csv", sina_text.replace(",定期报告,未审计,20250829", ',"定期报告,未审计,20250829', 1))
    not_number = made("not_number.csv", sina_text.replace("251123714000.0", "2511亿", 1))
    mid_quarter = made("mid_quarter.csv", sina_text.replace(",20250630,", ",20250615,", 1))
    parent = made("parent.csv", sina_text.replace("CNY,合并期末,2025-08-29", "CNY,母公司期末,2025-08-29", 1))
    usd = made("usd.csv", sina_text.replace("CNY,合并期末,2025-08-29", "USD,合并期末,2025-08-29", 1))
    twice = made("twice.csv", sina_text + sina_text.splitlines()[2].replace("2,20250630", "7,20250630", 1)
                 .replace("251123714000.0", "251123715000.0") + "\n")  # fmt: skip
    nothing = made("nothing.csv", ",报告日,营业总成本,类型\n0,20250630,,合并期末\n")
    broken_json = made("broken.json", '{\n  "cik": 1736541,\n  "facts": {\n    "us-gaap": {\n  }\n')
    usd_only = made("usd_only.json", nio.read_text(encoding="utf-8").replace('"CNY": [', '"USD": ['))
    hk_start = made(
        "hk_start.csv", hk.read_text(encoding="utf-8").replace("2025-01-01 00:00:00", "2025-02-01 00:00:00", 1)
    )
    march = made("march.csv", hk.read_text(encoding="utf-8").replace(",12-31,", ",03-31,"))
    no_date = made("no_date.csv", sina_text.replace("1,20250630,", "1,,", 1))
    broken_xlsx = made("broken.xlsx", xlsx.read_bytes()[:1500])
    empty = made("empty.csv", "")
    known = tomllib.loads((REPO / "data" / "companies.toml").read_text(encoding="utf-8"))
    return [
        ("hk-as-sina", hk, "xiaomi", "akshare-sina",
         f"{hk}:1: 报告日: no column 报告日: this is not {SINA_FRAME}; it looks like akshare-hk: import it with "
         "--format akshare-hk"),
        ("tushare-as-sina", ts, "midea", "akshare-sina",
         f"{ts}:1: 报告日: no column 报告日: this is not {SINA_FRAME}; it looks like tushare-income: import it with "
         "--format tushare-income"),
        ("sina-as-tushare", sina, "midea", "tushare-income",
         f"{sina}:1: ts_code: no column ts_code: this is not Tushare's pro.income frame; it looks like akshare-sina: "
         "import it with --format akshare-sina"),
        ("sina-as-hk", sina, "midea", "akshare-hk",
         f"{sina}:1: REPORT_DATE: no column REPORT_DATE: this is not AKShare's stock_financial_hk_report_em"
         "(symbol='利润表') frame; it looks like akshare-sina: import it with --format akshare-sina"),
        ("json-as-tushare", nio, "midea", "tushare-income",
         f"{nio}:1: a JSON file, not a table saved from Tushare's pro.income frame; it looks like sec-companyfacts: "
         "import it with --format sec-companyfacts"),
        ("xlsx-as-sec", xlsx, "nio", "sec-companyfacts",
         f"{xlsx}:1: an Excel workbook, not SEC companyfacts JSON; it looks like akshare-sina: import it with "
         "--format akshare-sina"),
        ("csv-as-sec", ts, "nio", "sec-companyfacts",
         f"{ts}:1: a CSV table, not SEC companyfacts JSON; it looks like tushare-income: import it with --format "
         "tushare-income"),
        ("no-date-column", FIX / "akshare_sina_no_report_date.csv", "midea", "akshare-sina",
         f"{FIX / 'akshare_sina_no_report_date.csv'}:1: 报告日: no column 报告日 (the report date, e.g. 20250630, "
         f"which the frame starts with); is this {SINA_FRAME}?"),
        ("ts-code-of-another-company", FIX / "tushare_income_gree.csv", "midea", "tushare-income",
         f"{FIX / 'tushare_income_gree.csv'}:2: ts_code: ts_code 000651.SZ is not midea's ticker 000333.SZ "
         "(data/companies.toml)"),
        ("cik-of-another-company", FIX / "sec_companyfacts_wrong_entity.json", "nio", "sec-companyfacts",
         f"{FIX / 'sec_companyfacts_wrong_entity.json'}:2: cik: cik 1810997 (XPeng Inc.) is not nio's: its ticker NIO "
         "(data/companies.toml) is CIK 1736541 in reportgen/providers/sec-companyfacts.toml"),
        ("secucode-of-another-company", hk, "midea", "akshare-hk",
         f"{hk}:2: SECUCODE: SECUCODE 01810.HK is not midea's ticker 000333.SZ (data/companies.toml)"),
        ("no-cik-for-the-ticker", nio, "xiaomi", "sec-companyfacts",
         f"{nio}:2: cik: no CIK for xiaomi's ticker 1810.HK in reportgen/providers/sec-companyfacts.toml, so this "
         'file\'s cik 1736541 (NIO Inc.) cannot be checked; add "1810.HK" = <CIK> under [cik] in '
         "data/providers/sec-companyfacts.toml"),
        ("file-not-found", tmp / "missing.csv", "midea", "akshare-sina", f"{tmp / 'missing.csv'}: file not found"),
        ("unknown-company", sina, "apple", "akshare-sina",
         f"data/companies.toml: company: 'apple' is not a company in data/companies.toml; known: {', '.join(known)}"),
        ("unclosed-quote", unclosed, "midea", "akshare-sina",
         f"{unclosed}:3: a quote opened on line 3 is never closed, so every later line would be part of one field"),
        ("not-a-number", not_number, "midea", "akshare-sina",
         f"{not_number}:3: 营业收入: '2511亿' is not a number: it has '亿' in it (a footnote mark, a unit or a typing "
         "error?); write the bare number"),
        ("not-a-quarter-end", mid_quarter, "midea", "akshare-sina",
         f"{mid_quarter}:3: 报告日: '20250615' is not the end of a quarter (31 March, 30 June, 30 September or 31 "
         "December)"),
        ("parent-company-statement", parent, "midea", "akshare-sina",
         f"{parent}:3: 类型: 类型 is the parent company's own statement, not the consolidated one (合并期末); "
         "reportgen compares consolidated statements"),
        ("another-currency", usd, "midea", "akshare-sina",
         f"{usd}:3: 币种: 'USD' is not midea's currency (RMB in data/companies.toml); its figures would be compared "
         "in the wrong currency"),
        ("two-rows-for-one-date", twice, "midea", "akshare-sina",
         f"{twice}:9: 营业收入: two different figures for 营业收入 2025Q2 6M: 251123714000 (line 3) and 251123715000; "
         "keep one row per report date"),
        ("no-figures", nothing, "midea", "akshare-sina",
         f"{nothing}: no figures to import: none of the labels in reportgen/providers/akshare-sina.toml has a figure "
         "in this file (left out: 1 label the label map does not name: 营业总成本)"),
        ("broken-json", broken_json, "nio", "sec-companyfacts",
         f"{broken_json}:6: not valid JSON: Expecting ',' delimiter"),
        ("no-facts-in-the-currency", usd_only, "nio", "sec-companyfacts",
         f"{usd_only}: units: no CNY facts for the concepts of the label map (nio reports in RMB); the file has USD"),
        ("start-date-not-a-year-to-date", hk_start, "xiaomi", "akshare-hk",
         f"{hk_start}:2: START_DATE: START_DATE 2025-02-01 to the end of 2025Q2 is neither a quarter nor the year to "
         "date of xiaomi's fiscal year (ending in month 12)"),
        ("another-fiscal-year", march, "xiaomi", "akshare-hk",
         f"{march}:2: FISCAL_YEAR: FISCAL_YEAR 03-31: the fiscal year ends in month 3, but data/companies.toml gives "
         "xiaomi fiscal_year_end = 12"),
        ("no-report-date", no_date, "midea", "akshare-sina",
         f"{no_date}:3: 报告日: empty; every row needs its date (YYYYMMDD or YYYY-MM-DD)"),
        ("broken-workbook", broken_xlsx, "midea", "akshare-sina",
         f"{broken_xlsx}: cannot read this workbook (BadZipFile: File is not a zip file)"),
        ("empty-file", empty, "midea", "akshare-sina",
         f"{empty}:1: empty file; the first line must name the columns 报告日"),
    ]  # fmt: skip


BAD_CASES = [
    "hk-as-sina", "tushare-as-sina", "sina-as-tushare", "sina-as-hk", "json-as-tushare", "xlsx-as-sec", "csv-as-sec",
    "no-date-column", "ts-code-of-another-company", "cik-of-another-company", "secucode-of-another-company",
    "no-cik-for-the-ticker", "file-not-found", "unknown-company", "unclosed-quote", "not-a-number", "not-a-quarter-end",
    "parent-company-statement", "another-currency", "two-rows-for-one-date", "no-figures", "broken-json",
    "no-facts-in-the-currency", "start-date-not-a-year-to-date", "another-fiscal-year", "no-report-date",
    "broken-workbook", "empty-file",
]  # fmt: skip


@pytest.fixture
def bad(tmp_path):
    cases = {c[0]: c[1:] for c in bad_cases(tmp_path)}
    assert list(cases) == BAD_CASES  # every case written above is run below
    return cases


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_is_refused_with_its_message(runner, tmp_path, bad, case):
    file, company, fmt, message = bad[case]
    ws = workspace(tmp_path)
    before = fin(ws, company).read_bytes() if fin(ws, company).exists() else None
    res = run_import(runner, ws, file, company, fmt, code=1)
    assert res.stderr == f"Error: {message}\n"
    assert "Traceback" not in res.output
    assert (fin(ws, company).read_bytes() if fin(ws, company).exists() else None) == before


def test_a_sina_file_of_another_company_is_refused(runner, tmp_path):
    """Sina's frame names no stock code: a file none of whose figures agrees with the company's data is refused."""
    ws = workspace(tmp_path)
    file = FIX / "akshare_sina_midea.csv"
    res = run_import(runner, ws, file, "gree", "akshare-sina", code=1)
    assert res.stderr.startswith(f"Error: {file}:8: 归属于母公司所有者的净利润: none of the ")
    assert res.stderr.endswith(" yuan here); the file names no stock code, so it is probably not gree's\n")
    assert (
        "figures this file shares with data/financials/gree.csv agrees (e.g. 归属于上市公司股东的净利润 2024Q1 3M"
        in (res.stderr)
    )


def test_an_unknown_format_is_refused(runner, tmp_path):
    ws = workspace(tmp_path)
    res = runner.invoke(cli, ["-C", str(ws), "import", str(FIX / "akshare_sina_midea.csv"), "--company", "midea",
                              "--format", "akshare"])  # fmt: skip
    assert res.exit_code == 2 and "'akshare' is not one of 'akshare-sina', 'akshare-hk'" in res.stderr
    with pytest.raises(importers.DataError) as e:
        importers.import_file(ws, FIX / "akshare_sina_midea.csv", "midea", "akshare")
    assert (
        str(e.value)
        == "format: unknown format 'akshare'; use akshare-sina, akshare-hk, tushare-income or sec-companyfacts"
    )


def test_a_broken_workspace_label_map_is_refused_at_its_line(runner, tmp_path):
    ws = workspace(tmp_path)
    (ws / "data" / "providers").mkdir()
    (ws / "data" / "providers" / "akshare-sina.toml").write_text(
        '[labels]\n"营业收入" = { item = "revenu", label = "营业收入" }\n', encoding="utf-8"
    )
    res = run_import(runner, ws, FIX / "akshare_sina_midea.csv", "midea", "akshare-sina", code=1)
    assert res.stderr.startswith(
        "Error: data/providers/akshare-sina.toml:2: 营业收入: 'revenu' is not a canonical item; use one of revenue, "
    )


def test_a_company_kept_in_a_workbook_is_refused(runner, tmp_path):
    ws = workspace(tmp_path)
    (ws / "data" / "financials" / "midea.xlsx").write_bytes((FIX / "akshare_sina_midea.xlsx").read_bytes())
    res = run_import(runner, ws, FIX / "akshare_sina_midea.csv", "midea", "akshare-sina", code=1)
    assert res.stderr == (
        "Error: data/financials/midea.xlsx: the importers merge into CSV only; save this workbook as "
        "data/financials/midea.csv (CSV UTF-8), remove it and import again\n"
    )


# -- fetch --------------------------------------------------------------------------------------------------------
def saved_frame(name: str):
    """A frame as the library returns it, read back from the fixture the library's frame was saved to."""
    import pandas as pd

    return pd.read_csv(FIX / name, index_col=0, dtype=str, keep_default_na=False)


@pytest.mark.parametrize(
    ("company", "provider", "fixture", "fmt", "symbol", "url"),
    [
        ("midea", "akshare", "akshare_sina_midea.csv", "akshare-sina", "sz000333", SINA_URL),
        ("xiaomi", "akshare", "akshare_hk_xiaomi.csv", "akshare-hk", "01810",
         "https://datacenter.eastmoney.com/securities/api/data/v1/get?reportName=RPT_HKF10_FN_INCOME_PC"
         "&filter=(SECUCODE=%2201810.HK%22)"),
        ("midea", "tushare", "tushare_income_midea.csv", "tushare-income", "000333.SZ",
         "http://api.waditu.com/dataapi/income?ts_code=000333.SZ"),
    ],
)  # fmt: skip
def test_fetch_saves_the_download_and_imports_it(tmp_path, company, provider, fixture, fmt, symbol, url):
    ws = workspace(tmp_path, without=company)
    asked = []
    frame = saved_frame(fixture)
    report = importers.fetch(ws, company, provider, call=lambda d: asked.append(d) or frame, env={})
    assert [(d.format, d.symbol, d.url) for d in asked] == [(fmt, symbol, url)]
    raw = ws / "data" / "raw" / f"{company}-{fmt}-{date.today().isoformat()}.csv"
    assert report.raw == raw.relative_to(ws).as_posix() and raw.read_bytes() == frame.to_csv().encode("utf-8")
    assert report.lines()[0] == f"saved the download as {report.raw}" and report.added
    assert {r["ref"].split(":")[0] for r in rows(ws, company)} == {report.raw}
    assert {r["source_url"] for r in rows(ws, company)} == {url}
    again = importers.fetch(ws, company, provider, call=lambda d: saved_frame(fixture), env={})
    assert again.raw == report.raw and not again.added and again.unchanged == len(report.added)  # kept once


def test_fetch_from_sec_keeps_the_json(tmp_path):
    ws = workspace(tmp_path, without="nio")
    body = (FIX / "sec_companyfacts_nio_realistic.json").read_bytes()
    asked = []
    report = importers.fetch(ws, "nio", "sec", call=lambda d: asked.append(d) or body, env={})
    assert asked[0].url == "https://data.sec.gov/api/xbrl/companyfacts/CIK0001736541.json"
    assert asked[0].user_agent.startswith("reportgen/")
    assert (ws / report.raw).read_bytes() == body and report.raw.endswith(".json") and len(report.added) == 18


def test_fetch_dry_run_writes_nothing(tmp_path):
    ws = workspace(tmp_path, without="midea")
    report = importers.fetch(ws, "midea", "akshare", dry_run=True, call=lambda d: saved_frame("akshare_sina_midea.csv"))
    assert len(report.added) == 45 and report.lines()[-1] == "dry run: nothing written"
    assert not (ws / "data" / "raw").exists() and not fin(ws, "midea").exists()


# The libraries' own functions, as akshare 1.19.5 and tushare 1.4.29 define them (signatures copied from their source,
# see tests/data/importers/FORMATS.md): each stands in for the download, so `fetch` calls them exactly as it calls the
# real ones and a wrong argument name fails as it would there.
def stand_in_akshare(calls: list, frame) -> types.ModuleType:
    mod = types.ModuleType("akshare")

    def stock_financial_report_sina(stock: str = "sh600600", symbol: str = "资产负债表"):
        calls.append(("stock_financial_report_sina", {"stock": stock, "symbol": symbol}))
        return frame

    def stock_financial_hk_report_em(stock: str = "00700", symbol: str = "资产负债表", indicator: str = "年度"):
        calls.append(("stock_financial_hk_report_em", {"stock": stock, "symbol": symbol, "indicator": indicator}))
        return frame

    mod.stock_financial_report_sina = stock_financial_report_sina
    mod.stock_financial_hk_report_em = stock_financial_hk_report_em
    return mod


def stand_in_tushare(calls: list, frame) -> types.ModuleType:
    """tushare.pro_api -> DataApi, whose every attribute is query(api_name, fields='', **params): the keywords are
    posted as the API's params and the server's rows come back (here: the frame's rows of the report_type asked)."""
    import functools

    mod = types.ModuleType("tushare")

    class DataApi:
        def __init__(self, token, timeout=30):
            self.token = token

        def query(self, api_name, fields="", **kwargs):
            calls.append((api_name, fields, kwargs))
            return frame[frame["report_type"] == kwargs.get("report_type", "1")].reset_index(drop=True)

        def __getattr__(self, name):
            return functools.partial(self.query, name)

    def pro_api(token="", timeout=30):
        return DataApi(token=token, timeout=timeout)

    mod.pro_api = pro_api
    return mod


@pytest.fixture
def listening(monkeypatch):
    """A local port that accepts connections, for the reachability check before a library is called."""
    import socket

    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(var, "*")
    with socket.create_server(("127.0.0.1", 0)) as srv:
        yield srv.getsockname()[1]


@pytest.mark.parametrize(
    ("company", "provider", "fixture", "fmt", "expected"),
    [
        ("midea", "akshare", "akshare_sina_midea.csv", "akshare-sina",
         [("stock_financial_report_sina", {"stock": "sz000333", "symbol": "利润表"})]),
        ("xiaomi", "akshare", "akshare_hk_xiaomi.csv", "akshare-hk",
         [("stock_financial_hk_report_em", {"stock": "01810", "symbol": "利润表", "indicator": "报告期"})]),
        ("midea", "tushare", "tushare_income_midea.csv", "tushare-income",
         [("income", "", {"ts_code": "000333.SZ", "report_type": t}) for t in ("1", "4", "5")]),
    ],
)  # fmt: skip
def test_fetch_calls_the_library_as_its_functions_are_defined(
    tmp_path, monkeypatch, listening, company, provider, fixture, fmt, expected
):
    calls: list = []
    frame = saved_frame(fixture)
    stand_in = stand_in_akshare if provider == "akshare" else stand_in_tushare
    monkeypatch.setitem(sys.modules, provider, stand_in(calls, frame))
    ws = workspace(tmp_path, without=company)
    (ws / "data" / "providers").mkdir(exist_ok=True)
    (ws / "data" / "providers" / f"{fmt}.toml").write_text(
        f'[provider]\nendpoint = "http://127.0.0.1:{listening}/{{symbol}}"\n', encoding="utf-8"
    )
    report = importers.fetch(ws, company, provider, env={"REPORTGEN_TUSHARE_TOKEN": "t0ken"})
    assert calls == expected
    assert report.added and not report.conflicts
    assert (ws / report.raw).read_bytes() == frame.to_csv().encode("utf-8")  # every report_type's rows, in order


def test_fetch_from_tushare_without_rows_says_so(runner, tmp_path, monkeypatch, listening):
    calls: list = []
    frame = saved_frame("tushare_income_midea.csv").iloc[0:0]  # the server's fields, no rows for any report_type
    monkeypatch.setitem(sys.modules, "tushare", stand_in_tushare(calls, frame))
    ws = workspace(tmp_path)
    (ws / "data" / "providers").mkdir(exist_ok=True)
    (ws / "data" / "providers" / "tushare-income.toml").write_text(
        f'[provider]\nendpoint = "http://127.0.0.1:{listening}/income"\n', encoding="utf-8"
    )
    res = runner.invoke(cli, ["-C", str(ws), "fetch", "--company", "midea", "--provider", "tushare"],
                        env={"REPORTGEN_TUSHARE_TOKEN": "t0ken"})  # fmt: skip
    assert res.exit_code == 1 and len(calls) == 3
    assert res.stderr.splitlines()[-1] == (
        "Error: data/companies.toml: ticker: tushare returned no rows for 000333.SZ: is the ticker in "
        "data/companies.toml right?; or Tushare's server failed (its client then returns no rows): try again later"
    )
    assert not (ws / "data" / "raw").exists()


def test_a_library_s_requests_without_a_timeout_get_one(listening):
    """AKShare calls requests.get without a timeout, which waits for ever on a provider that never answers."""
    requests = pytest.importorskip("requests")  # installed with the fetch extra
    url = f"http://127.0.0.1:{listening}/"  # accepts the connection, never answers
    original = requests.sessions.Session.request
    start = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout), importers._requests_timeout(0.5):
        requests.get(url)
    assert time.monotonic() - start < 5
    assert requests.sessions.Session.request is original


@pytest.mark.parametrize("library", ["akshare", "tushare"])
def test_fetch_without_the_library_fails_at_once_and_says_so(runner, tmp_path, monkeypatch, library):
    monkeypatch.setitem(sys.modules, library, None)  # as if not installed: `import` raises ImportError
    ws = workspace(tmp_path)
    company, provider = ("midea", library)
    res = runner.invoke(cli, ["-C", str(ws), "fetch", "--company", company, "--provider", provider],
                        env={"REPORTGEN_TUSHARE_TOKEN": "t0ken"})  # fmt: skip
    assert res.exit_code == 1, res.output
    assert res.stderr.splitlines()[-1] == (
        f"Error: {library} is not installed: install the fetch extra, pip install 'reportgen[fetch]', or download "
        "the file yourself and use reportgen import"
    )
    assert "downloading" not in res.stderr  # it stops before claiming to download
    assert not (ws / "data" / "raw").exists()


def unreachable_endpoint(ws: Path, fmt: str, path: str) -> None:
    """Point a format's endpoint at a closed local port (the workspace's label map may change the endpoint)."""
    (ws / "data" / "providers").mkdir(exist_ok=True)
    (ws / "data" / "providers" / f"{fmt}.toml").write_text(
        f'[provider]\nendpoint = "http://127.0.0.1:9/{path}"\n', encoding="utf-8"
    )


def test_fetch_without_network_fails_at_once_and_says_so(runner, tmp_path, monkeypatch):
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(var, "*")  # a proxy of the machine's environment must not answer for the closed port
    ws = workspace(tmp_path)
    unreachable_endpoint(ws, "sec-companyfacts", "CIK{cik}.json")
    start = time.monotonic()
    res = runner.invoke(cli, ["-C", str(ws), "fetch", "--company", "nio", "--provider", "sec"])
    assert time.monotonic() - start < 5
    assert res.exit_code == 1, res.output
    last = res.stderr.splitlines()[-1]
    assert last.startswith("Error: no network: cannot reach http://127.0.0.1:9/CIK0001736541.json (")
    assert last.endswith("); nothing was fetched or imported")
    assert not (ws / "data" / "raw").exists()


def test_fetch_through_a_library_without_network_fails_before_calling_it(runner, tmp_path, monkeypatch):
    """The library is there (a stand-in that must never be called); the provider's host is not reachable."""
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(var, "*")
    stand_in = types.ModuleType("akshare")
    stand_in.stock_financial_report_sina = lambda **kw: pytest.fail("the library was called without network")
    monkeypatch.setitem(sys.modules, "akshare", stand_in)
    ws = workspace(tmp_path)
    unreachable_endpoint(ws, "akshare-sina", "{symbol}")
    res = runner.invoke(cli, ["-C", str(ws), "fetch", "--company", "midea", "--provider", "akshare"])
    assert res.exit_code == 1, res.output
    assert res.stderr.splitlines()[-1].startswith("Error: no network: cannot reach 127.0.0.1:9 (")


def test_fetch_from_tushare_needs_the_token(runner, tmp_path):
    ws = workspace(tmp_path)
    res = runner.invoke(cli, ["-C", str(ws), "fetch", "--company", "midea", "--provider", "tushare"],
                        env={"REPORTGEN_TUSHARE_TOKEN": ""})  # fmt: skip
    assert res.exit_code == 1 and res.stderr.splitlines()[-1] == (
        "Error: REPORTGEN_TUSHARE_TOKEN is not set: Tushare needs your API token (tushare.pro, 个人主页 → 接口TOKEN); "
        "export REPORTGEN_TUSHARE_TOKEN=... and fetch again"
    )


def test_fetch_refuses_a_provider_that_has_no_such_listing(runner, tmp_path):
    ws = workspace(tmp_path)
    res = runner.invoke(cli, ["-C", str(ws), "fetch", "--company", "nio", "--provider", "akshare"])
    assert res.exit_code == 1
    line = res.stderr.splitlines()[-1]
    assert line.startswith("Error: data/companies.toml:") and line.endswith(
        ": ticker: akshare fetches A-shares (000333.SZ) and Hong Kong stocks (1810.HK) here; nio's ticker is NIO "
        "(NYSE); try --provider sec"
    )


def test_report_lines_name_every_count(tmp_path):
    report = importers.ImportReport("midea", "akshare-sina", "f.csv", "data/financials/midea.csv", dry_run=True)
    assert report.lines() == [
        "midea: 0 rows added, 0 unchanged, 0 in conflict, 0 replaced (akshare-sina file f.csv into "
        "data/financials/midea.csv)",
        "dry run: nothing written",
    ]


def test_the_label_maps_ship_in_the_package():
    for fmt in importers.FORMATS:
        assert (importers.PACKAGED_MAPS / f"{fmt}.toml").is_file()
        pmap = importers.load_provider_map(Path("/nonexistent-workspace"), fmt)
        assert pmap.labels and pmap.endpoint.startswith("http")
    assert importers.load_provider_map(Path("/x"), "sec-companyfacts").cik["NIO"] == 1736541
