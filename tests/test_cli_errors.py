"""Bad input: a message naming file, line and field, exit status 1 (2 for a bad option), no traceback."""

from __future__ import annotations

import pytest

from reportgen.cli import cli

from .conftest import FIN_HEADER, write_mini

ROW = "2025Q2,3M,Revenue,1000,million,RMB,published,https://example.test/a"

CASES = [
    # (id, files to write, expected text on stderr)
    (
        "missing-column",
        {
            "data/financials/alpha.csv": "period,basis,label,value,unit,source_url\n"
            "2025Q2,3M,Revenue,1000,million,https://x\n"
        },
        "data/financials/alpha.csv:1: currency: missing column 'currency'",
    ),
    (
        "non-numeric",
        {"data/financials/alpha.csv": FIN_HEADER + ROW.replace(",1000,", ",12o0,")},
        "data/financials/alpha.csv:2: value: '12o0' is not a number",
    ),
    (
        "unknown-label",
        {"data/financials/alpha.csv": FIN_HEADER + ROW.replace("Revenue", "Turnover")},
        "data/financials/alpha.csv:2: label: unknown label 'Turnover'",
    ),
    (
        "unknown-unit",
        {"data/financials/alpha.csv": FIN_HEADER + ROW.replace("million", "milion")},
        "data/financials/alpha.csv:2: unit: unknown unit 'milion'",
    ),
    (
        "unknown-currency",
        {"data/financials/alpha.csv": FIN_HEADER + ROW.replace("RMB", "RM")},
        "data/financials/alpha.csv:2: currency: unknown currency 'RM'",
    ),
    (
        "missing-fx",
        {"data/financials/alpha.csv": FIN_HEADER + ROW.replace("RMB", "USD")},
        "data/financials/alpha.csv:2: currency: no USD rate for 2025Q2 3M in data/fx.csv",
    ),
    (
        "duplicate-period",
        {"data/financials/alpha.csv": FIN_HEADER + ROW + "\n" + ROW.replace("1000", "1001")},
        "data/financials/alpha.csv:3: period: two rows for revenue 2025Q2 3M (published); the other is line 2",
    ),
    (
        "cumulative-shrinks",
        {
            "data/financials/gamma.csv": FIN_HEADER
            + (
                "2025Q1,3M,营业收入,300000000,yuan,RMB,published,https://x\n"
                "2025Q2,6M,营业收入,2.5,hundred_million,RMB,published,https://x\n"
            )
        },
        "data/financials/gamma.csv:3: value: cumulative revenue 6M to 2025Q2 is smaller than the 3M figure",
    ),
    (
        "bad-period",
        {"data/financials/alpha.csv": FIN_HEADER + ROW.replace("2025Q2", "2025Q5")},
        "data/financials/alpha.csv:2: period: '2025Q5' is not a quarter",
    ),
    (
        "basis-beyond-fiscal-quarter",
        {"data/financials/alpha.csv": FIN_HEADER + ROW.replace("2025Q2,3M", "2025Q1,6M")},
        "data/financials/alpha.csv:2: basis: a 6M period cannot end in 2025Q1",
    ),
    (
        "no-source",
        {"data/financials/alpha.csv": FIN_HEADER + ROW.replace("https://example.test/a", "")},
        "data/financials/alpha.csv:2: source_url: every figure needs its source_url",
    ),
    (
        "config-unknown-key",
        {"reportgen.toml": '[report]\nsubjet = "alpha"\n[groups.p]\nmembers = ["beta"]\n'},
        "reportgen.toml:2: subjet: unknown key",
    ),
    (
        "config-unknown-company",
        {"reportgen.toml": '[report]\nsubject = "alpha"\n[groups.p]\nmembers = ["zeta"]\n'},
        "reportgen.toml:4: members: peer group 'p' names 'zeta', which is not in data/companies.toml",
    ),
    (
        "config-empty-group",
        {"reportgen.toml": '[report]\nsubject = "alpha"\n[groups.p]\nmembers = []\n'},
        "reportgen.toml:4: members: peer group 'p' has no members",
    ),
    ("config-toml-syntax", {"reportgen.toml": '[report]\nsubject = "alpha\n'}, "reportgen.toml:2: not valid TOML"),
    (
        "registry-bad-reporting",
        {
            "data/companies.toml": '[alpha]\nname="A"\nname_zh="A"\nticker="A"\nexchange="X"\n'
            'standard="IFRS"\ncurrency="RMB"\nreporting="monthly"\n'
        },
        "data/companies.toml:8: reporting: reporting must be 'ytd' or 'quarterly'",
    ),
    (
        "labels-bad-item",
        {"data/labels.toml": '[labels]\n"Revenue" = "sales"\n'},
        "data/labels.toml:2: Revenue: 'sales' is not a canonical item",
    ),
]


@pytest.mark.parametrize("files,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_names_file_line_field(runner, tmp_path, files, expected):
    ws = write_mini(tmp_path / "w", files)
    res = runner.invoke(cli, ["-C", str(ws), "metrics", "--quarter", "2025Q2"])
    assert res.exit_code == 1, res.output
    assert expected in res.stderr
    assert "Traceback" not in res.output and res.exception is None or isinstance(res.exception, SystemExit)
    assert res.stdout == ""
    # validate reports the same problem
    val = runner.invoke(cli, ["-C", str(ws), "validate"])
    assert val.exit_code == 1 and expected.split(":")[0] in val.stderr


def test_quarter_out_of_range_is_a_usage_error(runner, mini_ws):
    res = runner.invoke(cli, ["-C", str(mini_ws), "metrics", "--quarter", "2025Q5"])
    assert res.exit_code == 2
    assert "'2025Q5' is not a quarter" in res.stderr


def test_subject_without_data_for_the_quarter(runner, mini_ws):
    res = runner.invoke(cli, ["-C", str(mini_ws), "metrics", "--quarter", "2026Q1"])
    assert res.exit_code == 1
    assert (
        "data/financials/alpha.csv: period: Alpha (the subject) has no revenue for 2026Q1; the latest quarter "
        "with its data is 2025Q2" in res.stderr
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
