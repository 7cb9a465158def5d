"""reportgen run through a simulated year of monthly runs, against a real SMTP server on loopback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from reportgen.cli import cli

from .conftest import FIN_HEADER, write_mini
from .smtp_server import recording_smtp as smtp  # noqa: F401  (the SMTP server fixture)
from .smtp_server import smtp_env as _env

CONFIG = """
[report]
subject = "alpha"
min_peers_reported = 2
[groups.peers]
label = "Peers"
members = ["beta", "gamma"]
[mail.lists.board]
to = ["ceo@example.test", "cfo@example.test"]
"""
QUARTERS = ["2024Q4", "2025Q1", "2025Q2", "2025Q3"]


def _row(q, basis, label, value):
    return f"{q},{basis},{label},{value},million,RMB,published,https://example.test/{q}\n"


def _workspace(tmp_path):
    alpha = FIN_HEADER + "".join(_row(q, "3M", "Revenue", 1000 + 10 * i) for i, q in enumerate(QUARTERS))
    ws = write_mini(
        tmp_path / "ws",
        {
            "reportgen.toml": CONFIG,
            "data/financials/alpha.csv": alpha,
            "data/financials/beta.csv": FIN_HEADER,
            "data/financials/gamma.csv": FIN_HEADER,
        },
    )
    # the small workspace's registry, with Beta reporting in RMB (no FX rates needed over the year)
    reg = ws / "data" / "companies.toml"
    reg.write_text(reg.read_text(encoding="utf-8").replace('currency = "HKD"', 'currency = "RMB"'), encoding="utf-8")
    return ws


def _publish(ws, company, quarter):
    """A peer's figures for `quarter` appear in its file (gamma reports year to date)."""
    basis = "3M" if company == "beta" else {"Q1": "3M", "Q2": "6M", "Q3": "9M", "Q4": "12M"}[quarter[-2:]]
    label = "Revenue" if company == "beta" else "营业收入"
    value = 500 if company == "beta" else 300 * int(basis[:-1]) // 3
    with open(ws / "data" / "financials" / f"{company}.csv", "a", encoding="utf-8") as fh:
        fh.write(_row(quarter, basis, label, value))


def _end_month(q):
    return int(q[-1]) * 3


# Beta publishes a quarter in the second month after it ends, Gamma in the third.
PUBLICATIONS = {}
for q in QUARTERS:
    y = int(q[:4])
    for company, lag in (("beta", 2), ("gamma", 3)):
        m = _end_month(q) + lag
        PUBLICATIONS.setdefault((y + (m - 1) // 12, (m - 1) % 12 + 1), []).append((company, q))


@pytest.mark.slow
def test_a_year_of_monthly_runs(runner, tmp_path, smtp):  # noqa: F811
    handler, port = smtp
    ws = _workspace(tmp_path)
    editions_seen = []
    for month in range(1, 13):
        for company, q in PUBLICATIONS.get((2025, month), []):
            _publish(ws, company, q)
        if month == 10:  # the subject restates its 2025Q2 revenue: the due 2025Q2 edition becomes a new one
            fin = ws / "data" / "financials" / "alpha.csv"
            fin.write_text(fin.read_text().replace("2025Q2,3M,Revenue,1020,", "2025Q2,3M,Revenue,1025,"))
        res = runner.invoke(cli, ["-C", str(ws), "run", "--now", f"2025-{month:02d}-01T08:00"], env=_env(port))
        assert res.exit_code == 0, (month, res.output)
        editions_seen.append(sorted(p.name for p in (ws / "output").iterdir() if p.name[:1] == "2"))

    assert editions_seen[0] == editions_seen[1] == []  # Jan, Feb: 2024Q4 has fewer than 2 peers
    assert editions_seen[2] == ["2024Q4"]  # Mar: Gamma's 2024 annual report arrives
    assert editions_seen[5] == ["2024Q4", "2025Q1"]  # Jun
    assert editions_seen[8] == ["2024Q4", "2025Q1", "2025Q2"]  # Sep
    assert editions_seen[11] == QUARTERS  # Dec
    hist = runner.invoke(cli, ["-C", str(ws), "history"]).stdout.splitlines()
    builds = [ln.split()[2] for ln in hist if "  build  " in ln]
    # each edition built once; 2025Q2 once more after the restatement, never for unchanged inputs
    assert builds == ["2024Q4", "2025Q1", "2025Q2", "2025Q2", "2025Q3"]
    runs = [ln.split()[2:] for ln in hist if "  run  " in ln]  # every run is in the history, with what it did
    assert len(runs) == 12
    assert [r[-2:] for r in runs[:2]] == [["nothing", "due"]] * 2
    assert all(r[-1] == "done" for r in runs[2:]) and runs[2][0] == "2024Q4" and runs[11][0] == "2025Q3"
    # each edition mailed once to each recipient: 5 editions x 2 recipients, nothing twice
    assert len(handler.received) == 10
    per_edition = {}
    for rcpts, msg in handler.received:
        per_edition.setdefault(msg["X-Reportgen-Edition"], []).extend(rcpts)
    assert all(sorted(v) == ["ceo@example.test", "cfo@example.test"] for v in per_edition.values())


@pytest.mark.slow
def test_two_runs_started_together_build_and_send_once(tmp_path, smtp):  # noqa: F811
    handler, port = smtp
    ws = _workspace(tmp_path)
    for company in ("beta", "gamma"):
        _publish(ws, company, "2025Q3")
    env = {**os.environ, **_env(port)}
    cmd = [sys.executable, "-m", "reportgen", "-C", str(ws), "run", "--now", "2025-12-01T08:00"]
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    codes = sorted(code for code, _ in results)
    assert codes in ([0, 0], [0, 75]), results
    if codes == [0, 75]:
        assert any("holds the run lock" in err for code, err in results if code == 75)
    hist = subprocess.run(
        [sys.executable, "-m", "reportgen", "-C", str(ws), "history"], capture_output=True, text=True, check=True
    ).stdout
    assert hist.count("  build  ") == 1
    assert sorted(r for rs, _ in handler.received for r in rs) == ["ceo@example.test", "cfo@example.test"]


TWO_LISTS = """
[mail.lists.board]
to = ["ceo@example.test", "cfo@example.test"]
[mail.lists.analysts]
to = ["analyst@example.test"]
"""


def test_adding_a_recipient_mails_only_the_new_one(runner, tmp_path, smtp):  # noqa: F811
    handler, port = smtp
    ws = write_mini(tmp_path / "w", {})
    cfg = ws / "reportgen.toml"
    cfg.write_text(cfg.read_text() + TWO_LISTS)
    send = ["-C", str(ws), "send", "--quarter", "2025Q2"]
    assert runner.invoke(cli, send, env=_env(port)).exit_code == 0
    assert len(handler.received) == 3
    edition = (ws / "output" / "2025Q2" / "manifest.json").read_text()
    cfg.write_text(
        cfg.read_text().replace('"analyst@example.test"]', '"analyst@example.test", "new@example.test"]')
        + '[schedule]\ncron = "0 9 1 * *"\n'
    )
    res = runner.invoke(cli, send, env=_env(port))
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[1].startswith("analysts: 1 sent, 1 already had it")
    assert [r for r, _ in handler.received[3:]] == [["new@example.test"]]
    assert (ws / "output" / "2025Q2" / "manifest.json").read_text() == edition  # same edition, not rebuilt


def test_test_to_sends_one_copy_whatever_the_lists(runner, tmp_path, smtp):  # noqa: F811
    handler, port = smtp
    ws = write_mini(tmp_path / "w", {})
    (ws / "reportgen.toml").write_text((ws / "reportgen.toml").read_text() + TWO_LISTS)
    res = runner.invoke(
        cli, ["-C", str(ws), "send", "--quarter", "2025Q2", "--test-to", "me@example.test"], env=_env(port)
    )
    assert res.exit_code == 0, res.output
    assert [r for r, _ in handler.received] == [["me@example.test"]]
    text = handler.received[0][1].get_body(("plain",)).get_content()
    assert "Marks: " in text  # the findings' footnote marks are explained in the mail


def test_a_run_with_nothing_due_is_in_the_history(runner, tmp_path):
    ws = _workspace(tmp_path)
    res = runner.invoke(cli, ["-C", str(ws), "run", "--now", "2025-01-01T08:00"])
    assert res.exit_code == 0, res.output
    hist = runner.invoke(cli, ["-C", str(ws), "history"]).stdout.splitlines()
    assert len(hist) == 1 and hist[0].split()[1:] == ["run", "nothing", "due"]
