"""Bad input: a message naming file, line and field, exit status 1 (2 for a bad option), no traceback."""

from __future__ import annotations

from reportgen.cli import cli

from .conftest import FIN_HEADER, write_mini

ROW = "2025Q2,3M,Revenue,1000,million,RMB,published,https://example.test/a"

# The table of hostile inputs with their exact messages is tests/corpus/cases.toml (tests/test_corpus.py);
# here are the behaviours around it.


def test_quarter_out_of_range_is_a_usage_error(runner, mini_ws):
    res = runner.invoke(cli, ["-C", str(mini_ws), "metrics", "--quarter", "2025Q5"])
    assert res.exit_code == 2
    assert "'2025Q5' is not a quarter" in res.stderr


def test_subject_without_data_for_the_quarter(runner, mini_ws):
    res = runner.invoke(cli, ["-C", str(mini_ws), "metrics", "--quarter", "2026Q1"])
    assert res.exit_code == 1
    assert (
        "data/financials/alpha.csv: period: Alpha (the subject) has no revenue for 2026Q1; its data cover 2024Q2 to "
        "2025Q2" in res.stderr
    )


def test_validate_lists_every_problem_and_passes_on_defaults(runner, tmp_path, default_ws):
    ws = write_mini(
        tmp_path / "w",
        {"data/financials/alpha.csv": FIN_HEADER + ROW.replace("1000", "x") + "\n" + ROW.replace("million", "mm")},
    )
    res = runner.invoke(cli, ["-C", str(ws), "validate"])
    assert res.exit_code == 1
    assert "alpha.csv:2: value" in res.stderr and "alpha.csv:3: unit" in res.stderr
    ok = runner.invoke(cli, ["-C", str(default_ws), "validate"])
    assert ok.exit_code == 0, ok.stderr


def test_debug_shows_the_traceback(runner, tmp_path):
    ws = write_mini(tmp_path / "w", {"data/financials/alpha.csv": FIN_HEADER + ROW.replace("1000", "x")})
    res = runner.invoke(cli, ["-C", str(ws), "--debug", "metrics", "--quarter", "2025Q2"])
    assert res.exit_code != 0 and res.exception is not None and not isinstance(res.exception, SystemExit)
