"""`reportgen metrics`: one shape in every format, with or without peer statistics; a terminal table that fits."""

from __future__ import annotations

import csv
import io
import json

import pytest
from wcwidth import wcswidth

from reportgen.cli import cli

from .conftest import REPO, write_mini


def _run(runner, *args, ws=REPO):
    res = runner.invoke(cli, ["-C", str(ws), "metrics", "--quarter", "2025Q2", *args])
    assert res.exit_code == 0, res.output
    return res.stdout


@pytest.mark.parametrize("basis", ["quarter", "ytd"])
def test_default_table_fits_100_columns(runner, basis):
    out = _run(runner, "--basis", basis)
    widths = [wcswidth(ln) for ln in out.splitlines()]
    assert max(widths) <= 100, max(widths)
    assert "Xiaomi" in out and "Selling" in out  # short headers, not raw ids
    assert "selling_expense_ratio" not in out.splitlines()[0]


def test_metrics_option_chooses_the_columns(runner):
    out = _run(runner, "--metrics", "selling_expense_ratio,gross_margin")
    header = out.splitlines()[0].split()
    assert header == ["Company", "Selling", "GM"]


def test_unknown_metric_is_refused_with_the_known_ones(runner):
    res = runner.invoke(cli, ["-C", str(REPO), "metrics", "--quarter", "2025Q2", "--metrics", "selling,gm"])
    assert res.exit_code == 2 and "unknown metric 'selling'; known: revenue, revenue_yoy" in res.stderr


def test_cjk_names_stay_aligned(runner, tmp_path):
    ws = write_mini(tmp_path / "w", {})
    reg = ws / "data/companies.toml"
    reg.write_text(reg.read_text(encoding="utf-8").replace('name = "Beta"', 'name = "贝塔控股"'), encoding="utf-8")
    lines = _run(runner, ws=ws).splitlines()
    rows = [ln for ln in lines if ln.startswith(("Alpha", "贝塔控股", "Gamma"))]
    assert len(rows) == 3
    # the revenue column ends at the same display column in every row, Chinese name or not
    ends = {wcswidth(ln[: ln.index(v) + len(v)]) for ln, v in zip(rows, ("1,000", "540ˣ", "450ᵈ"))}
    assert len(ends) == 1, rows


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_peer_stats_add_records_of_the_same_shape(runner, fmt):
    plain, stats = _run(runner, "--format", fmt), _run(runner, "--format", fmt, "--peer-stats")
    if fmt == "json":
        a, b = json.loads(plain), json.loads(stats)
        assert b[: len(a)] == a and all(set(r) == set(a[0]) for r in b)
        extra = b[len(a) :]
    else:
        a = list(csv.DictReader(io.StringIO(plain)))
        b = list(csv.DictReader(io.StringIO(stats)))
        assert b[: len(a)] == a and list(b[0]) == list(a[0])
        extra = b[len(a) :]
    assert {r["statistic"] for r in extra} == {"median", "mean", "rank"}
    assert all(r["statistic"] in (None, "") for r in a)
    ranks = [r for r in extra if r["statistic"] == "rank" and r["value"] not in (None, "")]
    assert ranks and all(str(r["value"]).isdigit() for r in ranks)  # ranks are whole numbers

    def stat(metric, statistic):
        return next(
            r for r in extra if r["group"] == "ev_makers" and r["metric"] == metric and r["statistic"] == statistic
        )

    # a median never mixes definitions: NIO's, Li Auto's and XPeng's SG&A ratios count for the SG&A ratio, where
    # they are three (a median), not for the selling-expense ratio, where SERES's alone is one (none)
    selling, sga = stat("selling_expense_ratio", "median"), stat("sga_ratio", "median")
    assert selling["value"] in (None, "")
    assert float(sga["value"]) == pytest.approx(0.1186, abs=5e-4)
    flags = sga["flags"] if fmt == "json" else sga["flags"].split(";")
    assert "sga_proxy" not in flags


def test_csv_flags_are_joined_with_semicolons(runner):
    rows = list(csv.DictReader(io.StringIO(_run(runner, "--format", "csv"))))
    nio = next(r for r in rows if r["company"] == "nio" and r["metric"] == "selling_expense_ratio")
    assert "sga_proxy" in nio["flags"].split(";") and nio["flags"] == ";".join(sorted(nio["flags"].split(";")))
    haier = next(r for r in rows if r["company"] == "haier" and r["metric"] == "revenue_yoy")
    assert {"derived_ytd", "restated"} <= set(haier["flags"].split(";"))


def test_every_value_that_cannot_be_computed_is_null_flagged_missing_with_a_reason(runner, tmp_path):
    """The README's rule holds for the peer statistics too: a median of fewer than three peers, a rank of fewer
    than two companies."""
    import json

    from .conftest import copy_default_workspace

    ws = copy_default_workspace(tmp_path / "ws")
    res = runner.invoke(cli, ["-C", str(ws), "metrics", "--quarter", "2025Q2", "--peer-stats", "--format", "json"])
    assert res.exit_code == 0, res.output
    records = json.loads(res.stdout)
    nulls = [r for r in records if r["value"] is None]
    assert {r["statistic"] for r in nulls} >= {None, "median", "mean", "rank"}  # each kind occurs
    bad = [r for r in nulls if "missing" not in r["flags"] or not r["reason"]]
    assert bad == []
    smartphones = [r for r in nulls if r["group"] == "smartphones" and r["statistic"] == "median"]
    assert smartphones and smartphones[0]["reason"].startswith("fewer than 3 peers with a value (n=")
