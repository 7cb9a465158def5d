"""Hostile inputs (tests/corpus/cases.toml) and random tables: a clean message or a valid result, never a
traceback, never partial output."""

from __future__ import annotations

import csv
import io
import re
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reportgen import loaders
from reportgen.cli import cli
from reportgen.errors import DataError
from reportgen.model import Company
from reportgen.readers import FINANCIAL_COLUMNS

from .conftest import REPO, write_mini

CASES = {
    name: case
    for path in sorted((Path(__file__).parent / "corpus").glob("*.toml"))
    for name, case in tomllib.loads(path.read_text(encoding="utf-8")).items()
}


def test_corpus_is_large_and_covers_every_kind_of_file():
    assert len(CASES) >= 40
    kinds = {name.split("-")[0] for name in CASES}
    assert {"data", "registry", "labels", "fx", "config", "template", "sentences", "cli"} <= kinds


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_input(runner, tmp_path, name):
    case = CASES[name]
    ws = write_mini(tmp_path / "ws", {})
    for rel, spec in case.get("files", {}).items():
        path = ws / rel
        if spec.get("delete"):
            path.unlink()
        elif "hex" in spec:
            path.write_bytes(bytes.fromhex(spec["hex"]))
        else:
            path.write_bytes(spec["text"].encode("utf-8"))
    target = ws / case["workspace"] if "workspace" in case else ws
    res = runner.invoke(cli, ["-C", str(target), "-q", *case["args"]], prog_name="reportgen")
    assert res.exit_code == case["exit"], res.output
    assert res.stderr.strip().replace(str(ws), "WS") == case["stderr"]
    assert "Traceback" not in res.output
    if case["exit"]:
        assert res.stdout == ""
        assert not any((ws / "output").iterdir())  # no partial output
    if "stdout_contains" in case:
        assert " ".join(case["stdout_contains"].split()) in " ".join(res.stdout.split())  # columns may move
    # validate reports the same data or config problem, at the same place
    where = case["stderr"].removeprefix("Error: ").split(": ")[0]
    at_line = re.search(r":\d+$", where)
    if case["exit"] == 1 and at_line and where.startswith(("data/", "reportgen.toml")) and case["args"][0] == "metrics":
        val = runner.invoke(cli, ["-C", str(target), "validate"])
        assert val.exit_code == 1 and where in val.stderr, val.stderr


LABELS, OVERRIDES = loaders.load_labels(REPO)
COMPANY = Company("alpha", "Alpha", "A", "A", "X", "IFRS", "RMB", 12, "quarterly", "")
cell = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        [
            "2025Q2",
            "3M",
            "6M",
            "Revenue",
            "营业收入",
            "1,000",
            "１０",
            "-5e3",
            "million",
            "RMB",
            "HKD",
            "restated",
            "https://x",
        ]
    ),
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    header=st.lists(st.sampled_from(list(FINANCIAL_COLUMNS) + ["vintage", "note", "junk", ""]), min_size=0, max_size=9),
    rows=st.lists(st.lists(cell, max_size=9), max_size=6),
)
def test_random_tables_load_or_fail_cleanly(tmp_path_factory, header, rows):
    root = tmp_path_factory.mktemp("r")
    (root / "data" / "financials").mkdir(parents=True)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    (root / "data" / "financials" / "alpha.csv").write_text(buf.getvalue(), encoding="utf-8")
    try:
        out = loaders.load_financials(root, COMPANY, LABELS, OVERRIDES, {})
    except DataError as e:
        assert e.path == "data/financials/alpha.csv" and e.message
        return
    for r in out:  # a valid frame: every row parsed into typed fields with its line
        assert r["item"] in set(LABELS.values()) and isinstance(r["value"], float) and r["line"] >= 2
