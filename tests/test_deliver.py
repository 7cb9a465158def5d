"""Mail through a real SMTP server on loopback (aiosmtpd): delivered once, faults handled, nothing leaked."""

from __future__ import annotations

import email
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from email import policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from reportgen import deliver
from reportgen.cli import cli

from .conftest import write_mini

MAIL = """
[mail]
owner = "owner@example.test"
[mail.lists.board]
to = ["ceo@example.test", "cfo@example.test"]
cc = ["ir@example.test"]
bcc = ["archive@example.test"]
subject = "{title} ({edition_date})"
attach = ["pdf", "xlsx"]
"""
RECIPIENTS = ["ceo@example.test", "cfo@example.test", "ir@example.test", "archive@example.test"]


class Handler:
    """Stores what it accepts; can be told to fail in the ways real servers do."""

    def __init__(self):
        self.received: list[tuple[list[str], email.message.EmailMessage]] = []
        self.refuse: dict[str, str] = {}  # recipient -> permanent reply
        self.temp_rcpt = 0  # next N RCPT commands get 451
        self.drop_data = 0  # next N DATA commands drop the connection
        self.block_rcpt: str | None = None  # hold this RCPT until `release` is set
        self.release = threading.Event()
        self.seen_rcpt: list[str] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.seen_rcpt.append(address)
        if address == self.block_rcpt:
            while not self.release.is_set():
                await __import__("asyncio").sleep(0.05)
        if self.temp_rcpt:
            self.temp_rcpt -= 1
            return "451 4.3.0 Try again later"
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.drop_data:
            self.drop_data -= 1
            server.transport.close()
            return "421 closing"
        msg = email.message_from_bytes(envelope.content, policy=policy.default)
        self.received.append((list(envelope.rcpt_tos), msg))
        return "250 Message accepted for delivery"

    def to(self, rcpt):
        return [m for r, m in self.received if rcpt in r]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp():
    handler = Handler()
    port = _free_port()
    ctl = Controller(handler, hostname="127.0.0.1", port=port)
    ctl.start()
    yield handler, port
    handler.release.set()
    ctl.stop()


@pytest.fixture
def auth_smtp():
    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == b"analyst" and auth_data.password == b"right-pass"
        return AuthResult(success=ok, handled=False)  # the server answers 535 itself

    handler = Handler()
    port = _free_port()
    ctl = Controller(handler, hostname="127.0.0.1", port=port, authenticator=authenticator,
                     auth_require_tls=False, auth_required=True)
    ctl.start()
    yield handler, port
    ctl.stop()


def _env(port, **extra):
    return {"REPORTGEN_SMTP_HOST": "127.0.0.1", "REPORTGEN_SMTP_PORT": str(port), "REPORTGEN_SMTP_SECURITY": "none",
            "REPORTGEN_MAIL_FROM": "briefings@example.test", **extra}


@pytest.fixture
def ws(tmp_path):
    w = write_mini(tmp_path / "w", {})
    (w / "reportgen.toml").write_text((w / "reportgen.toml").read_text() + MAIL)
    return w


def _send(runner, ws, port, *args, **env):
    return runner.invoke(cli, ["-C", str(ws), "send", "--quarter", "2025Q2", *args], env=_env(port, **env))


def test_delivers_pdf_and_findings_once(runner, ws, smtp):
    handler, port = smtp
    res = _send(runner, ws, port)
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == "board: 4 sent, 0 already had it"
    assert sorted(r for rs, _ in handler.received for r in rs) == sorted(RECIPIENTS)
    manifest = json.loads((ws / "output" / "2025Q2" / "manifest.json").read_text())
    pdf = (ws / "output" / "2025Q2" / "briefing.pdf").read_bytes()
    for rcpt in RECIPIENTS:
        (msg,) = handler.to(rcpt)
        assert msg["Subject"] == f"{manifest['title']} ({manifest['edition_date']})"
        assert msg["To"] == "ceo@example.test, cfo@example.test" and msg["Cc"] == "ir@example.test"
        assert msg["Bcc"] is None and "archive@" not in msg.as_string()
        files = {p.get_filename(): p.get_content() for p in msg.iter_attachments()}
        assert files["2025Q2-briefing.pdf"] == pdf
        assert files["2025Q2-metrics.xlsx"] == (ws / "output" / "2025Q2" / "metrics.xlsx").read_bytes()
        text = msg.get_body(("plain",)).get_content()
        for sentence in manifest["findings"]:
            assert sentence in text
        assert manifest["findings"][0] in msg.get_body(("html",)).get_content().replace("&#x27;", "'")
    # sending again delivers nothing new
    again = _send(runner, ws, port)
    assert again.exit_code == 0 and again.stdout.strip() == "board: 0 sent, 4 already had it"
    assert len(handler.received) == 4
    # --resend sends anew
    assert _send(runner, ws, port, "--resend").exit_code == 0
    assert len(handler.received) == 8


def test_changed_inputs_are_a_new_edition(runner, ws, smtp):
    handler, port = smtp
    assert _send(runner, ws, port).exit_code == 0
    fin = ws / "data" / "financials" / "alpha.csv"
    fin.write_text(fin.read_text().replace(",1000,", ",1010,"))
    res = _send(runner, ws, port)
    assert res.exit_code == 0 and res.stdout.strip() == "board: 4 sent, 0 already had it"
    assert len({m["X-Reportgen-Edition"] for _, m in handler.received}) == 2


def test_test_to_sends_one_copy_recorded_apart(runner, ws, smtp):
    handler, port = smtp
    res = _send(runner, ws, port, "--test-to", "me@example.test")
    assert res.exit_code == 0, res.output
    assert [r for r, _ in handler.received] == [["me@example.test"]]
    assert handler.received[0][1]["Subject"].startswith("[TEST] ")
    res = _send(runner, ws, port)  # the preview did not count as a delivery
    assert res.stdout.strip() == "board: 4 sent, 0 already had it"
    hist = runner.invoke(cli, ["-C", str(ws), "history"])
    assert "test   2025Q2" in hist.stdout and hist.stdout.count("mail   2025Q2") == 4


def test_dry_run_writes_eml_and_sends_nothing(runner, ws, smtp):
    handler, port = smtp
    res = _send(runner, ws, port, "--dry-run")
    assert res.exit_code == 0, res.output
    emls = sorted((ws / "output" / "2025Q2" / "outbox" / "board").glob("*.eml"))
    assert len(emls) == 4 and handler.received == []
    msg = email.message_from_bytes(emls[0].read_bytes(), policy=policy.default)
    assert msg["From"] == "briefings@example.test"
    # a dry run records nothing: the real send still goes to everyone
    assert _send(runner, ws, port).stdout.strip() == "board: 4 sent, 0 already had it"


@pytest.mark.parametrize("bad,message", [
    ("ceo@example.test\r\nBcc: everyone@example.test", "contains a line break; refused"),
    ("not-an-address", "'not-an-address' is not a valid e-mail address"),
    ("two@@example.test", "is not a valid e-mail address"),
], ids=["crlf-injection", "no-at", "double-at"])
def test_bad_addresses_refused_before_anything_is_sent(runner, ws, smtp, bad, message):
    handler, port = smtp
    cfg = ws / "reportgen.toml"
    cfg.write_text(cfg.read_text().replace('"cfo@example.test"', json.dumps(bad)))
    res = _send(runner, ws, port)
    assert res.exit_code == 1 and message in res.stderr and "Traceback" not in res.output
    assert handler.received == [] and handler.seen_rcpt == []


def test_temporary_failures_are_retried_with_backoff(ws, smtp):
    from reportgen import config

    handler, port = smtp
    handler.temp_rcpt = 2
    from click.testing import CliRunner

    CliRunner().invoke(cli, ["-C", str(ws), "-q", "build", "--quarter", "2025Q2"], catch_exceptions=False)
    sleeps = []
    report = deliver.send_edition(ws / "output" / "2025Q2", config.load_settings(ws), env=_env(port),
                                  sleep=sleeps.append)
    assert report.ok and sorted(report.sent) == sorted(RECIPIENTS)
    assert sleeps == [2.0, 4.0]  # exponential backoff, bounded
    assert all(len(handler.to(r)) == 1 for r in RECIPIENTS)


def test_temporary_failure_that_persists_gives_up(ws, smtp):
    from click.testing import CliRunner

    from reportgen import config

    handler, port = smtp
    handler.temp_rcpt = 100
    CliRunner().invoke(cli, ["-C", str(ws), "-q", "build", "--quarter", "2025Q2"], catch_exceptions=False)
    sleeps = []
    report = deliver.send_edition(ws / "output" / "2025Q2", config.load_settings(ws), env=_env(port),
                                  sleep=sleeps.append, attempts=3)
    assert not report.ok and len(report.failed) == 4 and report.failed[0][1] == 451
    assert len(sleeps) == 4 * 2


def test_permanent_refusal_of_one_recipient(runner, ws, smtp):
    handler, port = smtp
    handler.refuse["cfo@example.test"] = "550 5.1.1 No such user"
    res = _send(runner, ws, port)
    assert res.exit_code == 1
    assert "board: 3 sent, 0 already had it, 1 failed: cfo@example.test (550 5.1.1 No such user)" in res.stdout
    assert "not everything was delivered" in res.stderr
    assert sorted(r for rs, _ in handler.received for r in rs if r != "owner@example.test") == sorted(
        set(RECIPIENTS) - {"cfo@example.test"})
    (notice,) = handler.to("owner@example.test")
    assert "cfo@example.test: 550 5.1.1 No such user" in notice.get_content()
    hist = runner.invoke(cli, ["-C", str(ws), "history"]).stdout
    assert "failed" in hist and "cfo@example.test (550 5.1.1 No such user)" in hist
    # the next send tries only the recipient that failed
    handler.refuse.clear()
    again = _send(runner, ws, port)
    assert again.exit_code == 0 and again.stdout.strip() == "board: 1 sent, 3 already had it"


def test_dropped_connection_is_retried_without_duplicates(runner, ws, smtp):
    handler, port = smtp
    handler.drop_data = 1
    res = _send(runner, ws, port)
    assert res.exit_code == 0, res.output
    assert all(len(handler.to(r)) == 1 for r in RECIPIENTS)


def test_unreachable_server(runner, ws):
    port = _free_port()  # nothing listens there
    started = time.monotonic()
    res = runner.invoke(cli, ["-C", str(ws), "send", "--quarter", "2025Q2"], env=_env(port, REPORTGEN_SMTP_RETRIES="2"))
    assert res.exit_code == 1
    assert "4 failed" in res.stdout and "ConnectionRefusedError" in res.stdout
    assert time.monotonic() - started < 30  # one round of retries for the list, not one per recipient


def test_authentication_refused_and_password_never_shown(runner, ws, auth_smtp, caplog):
    handler, port = auth_smtp
    caplog.set_level(logging.DEBUG)
    env = {"REPORTGEN_SMTP_USER": "analyst", "REPORTGEN_SMTP_PASSWORD": "wrong-pass-s3cret"}
    res = _send(runner, ws, port, **env)
    assert res.exit_code == 1 and "535" in res.stdout and handler.received == []
    assert "wrong-pass-s3cret" not in res.output + caplog.text
    good = _send(runner, ws, port, REPORTGEN_SMTP_USER="analyst", REPORTGEN_SMTP_PASSWORD="right-pass")
    assert good.exit_code == 0 and len(handler.received) == 4


def test_missing_smtp_settings_name_the_variable(runner, ws):
    res = runner.invoke(cli, ["-C", str(ws), "send", "--quarter", "2025Q2"], env={"REPORTGEN_SMTP_HOST": ""})
    assert res.exit_code == 1 and "REPORTGEN_SMTP_HOST" in res.stderr


def test_send_killed_mid_list_resumes_without_duplicates(ws, smtp, tmp_path):
    handler, port = smtp
    handler.block_rcpt = "cfo@example.test"  # the second recipient
    env = {**os.environ, **_env(port)}
    cmd = [sys.executable, "-m", "reportgen", "-C", str(ws), "-q", "send", "--quarter", "2025Q2"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 90
    while "cfo@example.test" not in handler.seen_rcpt:
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    handler.release.set()
    assert [r for r, _ in handler.received] == [["ceo@example.test"]]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert all(len(handler.to(r)) == 1 for r in RECIPIENTS)


def test_password_in_config_is_refused(runner, ws):
    cfg = ws / "reportgen.toml"
    cfg.write_text(cfg.read_text().replace('owner = "owner@example.test"', 'owner = "o@example.test"\n'
                                           'password = "x"'))
    res = runner.invoke(cli, ["-C", str(ws), "send", "--quarter", "2025Q2"])
    assert res.exit_code == 1 and "REPORTGEN_SMTP_PASSWORD" in res.stderr
