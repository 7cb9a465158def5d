"""A first-time user's stumbles (issue 16), each as the user meets it: through the command line, with real files, a
real SMTP server on loopback and, for the progress bar, a real terminal."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reportgen import ledger, pipeline
from reportgen.cli import cli

from .conftest import FIN_HEADER, write_mini
from .smtp_server import recording_smtp as smtp  # noqa: F401  (the SMTP server fixture)
from .smtp_server import smtp_env

MAIL = """
[report]
subject = "alpha"
min_peers_reported = 1
[groups.peers]
label = "Peers"
members = ["beta", "gamma"]
[mail]
owner = "owner@example.test"
[mail.lists.board]
to = ["ceo@example.test", "cfo@example.test"]
"""


def _ws(tmp_path, config=MAIL, **files):
    return write_mini(tmp_path / "ws", {"reportgen.toml": config, **files})


def _invoke(runner, *args, env=None):
    return runner.invoke(cli, list(args), env=env)


# -- 1. workspace discovery --------------------------------------------------------------------------------------
def test_a_workspace_is_found_upwards_as_git_finds_its_repository(runner, tmp_path, monkeypatch):
    ws = _ws(tmp_path, MAIL.split("[mail]")[0])
    sub = ws / "data" / "notes"
    sub.mkdir()
    monkeypatch.chdir(sub)
    monkeypatch.delenv("REPORTGEN_WORKSPACE", raising=False)
    res = _invoke(runner, "validate")
    assert res.exit_code == 0, res.output
    assert f"workspace: {ws}" in res.stderr


@pytest.mark.parametrize("where", ["no-workspace", "missing-folder", "folder-without-config"])
def test_no_workspace_is_said_plainly(runner, tmp_path, monkeypatch, where):
    monkeypatch.delenv("REPORTGEN_WORKSPACE", raising=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    args = {"no-workspace": [], "missing-folder": ["-C", str(tmp_path / "nope")], "folder-without-config": ["-C", "."]}
    res = _invoke(runner, *args[where], "history")
    assert res.exit_code == 1 and "no builds" not in res.output
    expected = {
        "no-workspace": "no reportgen workspace here or in any folder above (no reportgen.toml)",
        "missing-folder": "no such folder; -C (or REPORTGEN_WORKSPACE) must name a workspace folder",
        "folder-without-config": "not a reportgen workspace (no reportgen.toml in it); run `reportgen init .`",
    }[where]
    assert expected in res.stderr


# -- 2. ranks are integers ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_ranks_are_whole_numbers_on_every_basis_and_format(runner, built, fmt):
    ws, _ = built
    res = _invoke(runner, "-C", str(ws), "metrics", "--quarter", "2025Q2", "--basis", "ytd", "--peer-stats",
                  "--format", fmt)  # fmt: skip
    assert res.exit_code == 0, res.output
    if fmt == "json":
        ranks = [r["value"] for r in json.loads(res.stdout) if r["statistic"] == "rank" and r["value"] is not None]
        assert ranks and all(type(v) is int for v in ranks)
    elif fmt == "csv":
        ranks = [r["value"] for r in csv.DictReader(io.StringIO(res.stdout)) if r["statistic"] == "rank"]
        assert [v for v in ranks if v] and all(v.isdigit() for v in ranks if v)
    else:
        rank_lines = [ln for ln in res.stdout.splitlines() if ln.startswith("rank")]
        assert rank_lines and ".0" not in " ".join(rank_lines)


# -- 3. validate checks what send and run will check ------------------------------------------------------------------
def test_validate_lists_every_bad_address_with_its_line_at_once(runner, tmp_path):
    config = MAIL.replace('owner = "owner@example.test"', 'owner = "owner@"').replace(
        '"cfo@example.test"', '"analysts example.com"'
    )
    ws = _ws(tmp_path, config)
    res = _invoke(runner, "-C", str(ws), "validate", env={"REPORTGEN_SMTP_HOST": "", "REPORTGEN_MAIL_FROM": ""})
    assert res.exit_code == 1
    text = (ws / "reportgen.toml").read_text().splitlines()
    owner = next(i for i, ln in enumerate(text, 1) if ln.startswith("owner"))
    to = next(i for i, ln in enumerate(text, 1) if ln.startswith("to ="))
    assert f"reportgen.toml:{owner}: mail.owner: 'owner@' is not a valid e-mail address" in res.stderr
    assert f"reportgen.toml:{to}: mail.lists.board.to: 'analysts example.com' is not a valid e-mail" in res.stderr
    assert "Warning: mail: no mail server: set REPORTGEN_SMTP_HOST" in res.stderr  # what send will need, said now
    assert "Warning: mail: no sender: set REPORTGEN_MAIL_FROM" in res.stderr  # and all of it at once


# -- 4. send is honest ---------------------------------------------------------------------------------------------
def test_a_dry_run_builds_nothing_and_records_nothing(runner, tmp_path):
    ws = _ws(tmp_path)
    res = _invoke(runner, "-C", str(ws), "send", "--quarter", "2025Q2", "--dry-run")
    assert res.exit_code == 1 and "2025Q2 has not been built, and a dry run builds nothing" in res.stderr
    assert sorted(p.name for p in (ws / "output").iterdir()) == []
    assert _invoke(runner, "-C", str(ws), "build", "--quarter", "2025Q2").exit_code == 0
    before = pipeline.history(ws)
    fin = ws / "data/financials/beta.csv"
    fin.write_text(fin.read_text().replace("2025Q2,3M,Revenue,600", "2025Q2,3M,Revenue,610"))
    pdf = (ws / "output/2025Q2/briefing.pdf").read_bytes()
    res = _invoke(runner, "-C", str(ws), "send", "--quarter", "2025Q2", "--dry-run")
    assert res.exit_code == 0, res.output
    assert "inputs changed since it was built; the outbox shows the edition as built" in res.stderr
    assert pipeline.history(ws) == before  # no build recorded, no delivery
    assert (ws / "output/2025Q2/briefing.pdf").read_bytes() == pdf
    assert len(list((ws / "output/2025Q2/outbox/board").glob("*.eml"))) == 2


def test_send_says_it_builds_first_and_prints_each_list_once(runner, tmp_path, smtp):  # noqa: F811
    handler, port = smtp
    ws = _ws(tmp_path)
    res = _invoke(runner, "-C", str(ws), "send", "--quarter", "2025Q2", env=smtp_env(port))
    assert res.exit_code == 0, res.output
    assert "2025Q2: not built yet; building it before sending" in res.stderr
    assert res.stdout.count("board: 2 sent") == 1 and "2 sent" not in res.stderr  # the outcome once, on stdout
    assert len(handler.received) == 2


def test_a_failed_preview_advises_the_same_preview_again(runner, tmp_path):
    ws = _ws(tmp_path)
    from .smtp_server import free_port

    env = smtp_env(free_port()) | {"REPORTGEN_SMTP_RETRIES": "1"}  # nobody listens there
    res = _invoke(runner, "-C", str(ws), "send", "--quarter", "2025Q2", "--test-to", "me@example.test", env=env)
    assert res.exit_code == 1
    assert "`reportgen send --quarter 2025Q2 --test-to me@example.test` tries again" in res.stderr
    assert "no reply:" in res.stdout and "(no reply cannot" not in res.stdout


# -- 5. units as printed --------------------------------------------------------------------------------------------
def test_chinese_unit_words_read_as_their_codes(runner, tmp_path):
    codes = _ws(tmp_path)
    words = write_mini(
        tmp_path / "words",
        {
            "data/financials/gamma.csv": FIN_HEADER
            + """
                2025Q1,3M,营业收入,300000000,元,RMB,published,https://example.test/g
                2025Q1,3M,销售费用,3000,万元,RMB,published,https://example.test/g
                2025Q2,6M,营业收入,7.5,亿元,RMB,published,https://example.test/g
                2025Q2,6M,销售费用,66,百万元,RMB,published,https://example.test/g
            """
        },
    )
    out = [
        _invoke(runner, "-C", str(w), "metrics", "--quarter", "2025Q2", "--format", "csv").stdout
        for w in (codes, words)
    ]
    gamma = [[r for r in csv.DictReader(io.StringIO(o)) if r["company"] == "gamma"] for o in out]
    assert [(r["metric"], r["value"]) for r in gamma[0]] == [(r["metric"], r["value"]) for r in gamma[1]]
    assert any(r["metric"] == "selling_expense_ratio" and r["value"] for r in gamma[1])


# -- 6. ranges -------------------------------------------------------------------------------------------------------
def test_a_range_builds_the_quarters_with_data_and_names_the_rest(runner, tmp_path):
    ws = _ws(tmp_path)
    res = _invoke(runner, "-C", str(ws), "build", "--quarter", "2024Q1..2024Q2", "--lang", "en,zh-CN")
    assert res.exit_code == 0, res.output
    assert "Warning: skipped 2024Q1: Alpha has no figures for it; built 2024Q2" in res.stderr
    assert sorted(p.name for p in (ws / "output").iterdir() if p.name[0] == "2") == ["2024Q2"]
    assert "rendering 1 edition in en, zh-CN" in res.stderr and "rendering [" not in res.stderr  # not a terminal
    res = _invoke(runner, "-C", str(ws), "build", "--quarter", "2023Q1..2023Q4")
    assert res.exit_code == 1
    assert "none of 2023Q1..2023Q4 can be built" in res.stderr and "its data cover 2024Q2 to 2025Q2" in res.stderr


# -- 7. messages ----------------------------------------------------------------------------------------------------
def test_an_output_folder_that_cannot_be_written_is_named_as_such(runner, tmp_path, monkeypatch):
    import tempfile

    ws = _ws(tmp_path)

    def refuse(*args, **kwargs):  # what a read-only file system answers (root ignores permission bits)
        raise PermissionError(30, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    res = _invoke(runner, "-C", str(ws), "build", "--quarter", "2025Q2")
    assert res.exit_code == 1
    assert "output: cannot write the edition here (Read-only file system); check that output/ is writable" in res.stderr
    assert ".building-" not in res.stderr


# -- 8. schedule -----------------------------------------------------------------------------------------------------
def test_next_run_times_name_their_time_zone(runner, tmp_path):
    ws = _ws(tmp_path)
    res = subprocess.run(
        [sys.executable, "-m", "reportgen", "-C", str(ws), "schedule", "--next", "-n", "1"],
        env={**os.environ, "TZ": "Asia/Shanghai"},
        capture_output=True,
        text=True,
    )  # a process of its own: the time zone is read at start-up
    assert res.returncode == 0 and res.stdout.strip().endswith("08:00 CST (UTC+0800)"), res.stdout


def test_the_crontab_line_loads_the_mail_settings_as_the_systemd_unit_does(tmp_path):
    from reportgen.schedule import crontab_line

    home, ws, bindir = tmp_path / "home", tmp_path / "ws", tmp_path / "bin"
    (home / ".config/reportgen").mkdir(parents=True)
    (home / ".config/reportgen/env").write_text(
        'REPORTGEN_SMTP_PASSWORD="p a&ss"\nREPORTGEN_MAIL_FROM="Strategy & IR <ir@example.test>"\n'
    )
    ws.mkdir()
    bindir.mkdir()
    fake = bindir / "reportgen"  # stands in for reportgen: prints what it was given
    fake.write_text('#!/bin/sh\necho "$REPORTGEN_SMTP_PASSWORD|$REPORTGEN_MAIL_FROM|$1"\n')
    fake.chmod(0o755)
    command = crontab_line("0 8 1 * *", ws, str(fake)).split(" ", 5)[5].replace("\\%", "%")
    subprocess.run(["/bin/sh", "-c", command], env={"HOME": str(home), "PATH": "/usr/bin:/bin"}, check=True)
    assert (ws / "output/run.log").read_text() == "p a&ss|Strategy & IR <ir@example.test>|run\n"


# -- 9. a review step ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_an_edition_reaches_the_lists_only_once_approved(runner, tmp_path, smtp):  # noqa: F811
    handler, port = smtp
    ws = _ws(tmp_path, MAIL.replace("[mail]\n", "[mail]\nrequire_approval = true\n"))
    env = smtp_env(port)

    def run(day):
        res = _invoke(runner, "-C", str(ws), "run", "--now", f"2025-{day}T08:00", env=env)
        assert res.exit_code == 0, res.output
        return res

    res = run("10-01")
    assert "waiting for approval of edition" in res.stderr
    ((rcpts, preview),) = handler.received
    assert rcpts == ["owner@example.test"] and preview["Subject"].startswith("[PREVIEW for approval] ")
    assert "reportgen approve --quarter 2025Q2" in preview.get_body(("plain",)).get_content()
    run("10-02")
    assert len(handler.received) == 1  # one preview per edition; the lists wait
    res = _invoke(runner, "-C", str(ws), "send", "--quarter", "2025Q2", env=env)
    assert res.exit_code == 1 and "has not been approved (require_approval = true)" in res.stderr
    res = _invoke(runner, "-C", str(ws), "approve", "--quarter", "2025Q2", "--by", "Ana")
    assert res.exit_code == 0 and "approved by Ana" in res.stdout
    run("10-03")
    assert sorted(r for rcpts, _m in handler.received[1:] for r in rcpts) == ["ceo@example.test", "cfo@example.test"]
    history = _invoke(runner, "-C", str(ws), "history").stdout
    assert "approve  2025Q2" in history and "by Ana" in history
    # a changed edition needs approval again: a new preview, no mail to the lists
    fin = ws / "data/financials/beta.csv"
    fin.write_text(fin.read_text().replace("2025Q2,3M,Revenue,600", "2025Q2,3M,Revenue,610"))
    run("10-04")
    assert len(handler.received) == 4 and handler.received[-1][0] == ["owner@example.test"]


def test_require_approval_without_an_owner_is_a_config_error(runner, tmp_path):
    config = MAIL.replace('owner = "owner@example.test"', "require_approval = true")
    res = _invoke(runner, "-C", str(_ws(tmp_path, config)), "validate")
    assert res.exit_code == 1 and "require_approval needs an owner to send the preview to" in res.stderr


# -- 11. progress on a terminal -------------------------------------------------------------------------------------
def _in_a_terminal(args: list[str], cwd: Path) -> str:
    """Run reportgen with its stderr on a pseudo-terminal; what the terminal showed."""
    import pty

    main, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "reportgen", *args], cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=child, env={**os.environ, "COLUMNS": "100"},
    )  # fmt: skip
    os.close(child)
    out = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    proc.wait()
    os.close(main)
    return out.decode("utf-8", "replace")


@pytest.mark.slow
def test_a_progress_bar_on_a_terminal_and_none_elsewhere(runner, tmp_path):
    ws = _ws(tmp_path)
    shown = _in_a_terminal(["build", "--quarter", "2025Q1..2025Q2"], ws)
    assert "rendering" in shown and "2/2" in shown
    quiet = _in_a_terminal(["-q", "build", "--force", "--quarter", "2025Q1..2025Q2"], ws)
    assert "rendering" not in quiet  # and not a terminal: see test_a_range_builds_the_quarters_with_data...


# -- 12. open ---------------------------------------------------------------------------------------------------------
def test_open_hands_the_pdf_to_the_viewer_or_prints_its_path(runner, tmp_path, monkeypatch):
    ws = _ws(tmp_path)
    assert _invoke(runner, "-C", str(ws), "build", "--quarter", "2025Q2").exit_code == 0
    pdf = (ws / "output/2025Q2/briefing.pdf").resolve()
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    res = _invoke(runner, "-C", str(ws), "open", "--quarter", "2025Q2")
    assert res.exit_code == 0 and res.stdout.strip() == str(pdf) and "no viewer" in res.stderr
    if not sys.platform.startswith("linux"):
        return
    bindir, seen = tmp_path / "bin", tmp_path / "opened"
    bindir.mkdir()
    viewer = bindir / "xdg-open"  # a real program on PATH, standing in for the desktop's viewer
    viewer.write_text(f'#!/bin/sh\necho "$1" > {seen}\n')
    viewer.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("DISPLAY", ":0")
    res = _invoke(runner, "-C", str(ws), "open", "--quarter", "2025Q2")
    assert res.exit_code == 0
    for _ in range(50):
        if seen.exists():
            break
        __import__("time").sleep(0.1)
    assert seen.read_text().strip() == str(pdf)
    res = _invoke(runner, "-C", str(ws), "open", "--quarter", "2024Q1")
    assert res.exit_code == 1 and "2024Q1 has not been built" in res.stderr


def test_ledger_history_keeps_approvals_across_versions(tmp_path):
    """A ledger written before approvals existed (schema 2) opens, gains the table, and keeps its rows."""
    import sqlite3

    path = tmp_path / ledger.LEDGER_NAME
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE deliveries (edition TEXT NOT NULL, quarter TEXT NOT NULL, list TEXT NOT NULL, recipient TEXT "
        "NOT NULL, status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed')), test INTEGER NOT NULL "
        "DEFAULT 0, smtp_code INTEGER, smtp_reply TEXT, at TEXT NOT NULL);"
        "CREATE TABLE builds (quarter TEXT NOT NULL, edition TEXT NOT NULL, rebuilt INTEGER NOT NULL, at TEXT NOT "
        "NULL); CREATE TABLE runs (at TEXT NOT NULL, quarter TEXT, edition TEXT, outcome TEXT NOT NULL, note TEXT);"
        "INSERT INTO builds VALUES ('2025Q2', 'abc', 1, '2026-01-01T00:00:00+00:00'); PRAGMA user_version = 2;"
    )
    db.close()
    with ledger.Ledger(path) as book:
        book.record_approval("2025Q2", "abc", "Ana")
        assert book.approval("abc")[0] == "Ana" and book.approval("def") is None
        kinds = [r["kind"] for r in book.history()]
    assert kinds == ["build", "approve"]


@pytest.mark.slow
def test_one_preview_per_edition_when_the_lists_read_two_languages(runner, tmp_path, smtp):  # noqa: F811
    handler, port = smtp
    config = MAIL.replace("[mail]\n", "[mail]\nrequire_approval = true\n") + (
        '[mail.lists.analysts]\nto = ["analyst@example.test"]\nlanguage = "zh-CN"\n'
    )
    ws = _ws(tmp_path, config)
    for day in ("10-01", "10-02", "10-03"):
        res = _invoke(runner, "-C", str(ws), "run", "--now", f"2025-{day}T08:00", env=smtp_env(port))
        assert res.exit_code == 0, res.output
    assert [rcpts for rcpts, _m in handler.received] == [["owner@example.test"]]  # one preview, lists wait


def test_approving_without_require_approval_says_the_lists_do_not_wait(runner, tmp_path):
    ws = _ws(tmp_path)
    assert _invoke(runner, "-C", str(ws), "build", "--quarter", "2025Q2").exit_code == 0
    res = _invoke(runner, "-C", str(ws), "approve", "--quarter", "2025Q2", "--by", "Ana")
    assert res.exit_code == 0 and "approved by Ana" in res.stdout
    assert "require_approval is off under [mail]" in res.stderr and "mailed without approval" in res.stderr
