"""Mail delivery against a real SMTP server on loopback (aiosmtpd): once per recipient, faults handled, no leaks."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import fcntl
import hashlib
import html
import io
import json
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from email import policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from hypothesis import given
from hypothesis import strategies as st

from reportgen import deliver, ledger, pipeline
from reportgen.channel import Failure
from reportgen.config import MailList, Settings
from reportgen.errors import DeliveryError

TO, CC, BCC = ["ceo@example.test", "cfo@example.test"], ["ir@example.test"], ["archive@example.test"]
RECIPIENTS = TO + CC + BCC
OWNER = "owner@example.test"
SENDER = "briefings@example.test"
FINDINGS = [
    "Xiaomi's selling-expense ratio of 6.7% is below Midea 9.1%ᵈ (Home appliances) & <above> Gree.",
    "The largest year-on-year move in revenue was XPeng's +125.3%, to RMB 18,270 million; this sentence is long "
    "enough to be wrapped by quoted-printable.",
    "小米 营业收入 RMB 115,956 million.",
]
BOARD = MailList("board", tuple(TO), tuple(CC), tuple(BCC), "{title} ({edition_date})", ("pdf", "xlsx"))
SETTINGS = Settings(owner=OWNER, mail_lists=(BOARD,))
SUBJECT = "Xiaomi vs peers: 2025Q2 briefing (2026-11-24)"


# -- a built edition on disk --------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def edition_files() -> dict[str, bytes]:
    """The files of a small edition: a real PDF (WeasyPrint) and a real workbook (openpyxl)."""
    from openpyxl import Workbook
    from weasyprint import HTML

    wb = Workbook()
    wb.active.append(["company", "metric", "value"])
    wb.active.append(["xiaomi", "selling_expense_ratio", 0.067])
    xlsx = io.BytesIO()
    wb.save(xlsx)
    page = "<h1>Xiaomi vs peers: 2025Q2 briefing</h1><p>x</p>"
    return {
        "briefing.pdf": HTML(string=page).write_pdf(),
        "briefing.html": page.encode(),
        "metrics.xlsx": xlsx.getvalue(),
        "metrics.csv": b"company,metric,value\nxiaomi,selling_expense_ratio,0.067\n",
    }


@pytest.fixture
def edition(tmp_path, edition_files) -> Path:
    """<workspace>/output/2025Q2/ with the four files and a manifest.json listing their sha256."""
    d = tmp_path / "ws" / "output" / "2025Q2"
    d.mkdir(parents=True)
    for name, data in edition_files.items():
        (d / name).write_bytes(data)
    manifest = {
        "quarter": "2025Q2",
        "edition": "d5e568cfb500d772",
        "title": "Xiaomi vs peers: 2025Q2 briefing",
        "edition_date": "2026-11-24",
        "findings": FINDINGS,
        "notes": ["Gross margin is not available for Haier in 2025Q2 (see Methodology)."],
        "files": {n: {"sha256": hashlib.sha256(b).hexdigest(), "bytes": len(b)} for n, b in edition_files.items()},
    }
    (d / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    return d


def ledger_rows(edition: Path) -> list[tuple]:
    with sqlite3.connect(edition.parent / ledger.LEDGER_NAME) as db:
        return db.execute(
            "SELECT edition, quarter, list, recipient, status, test, smtp_code FROM deliveries"
        ).fetchall()


# -- a real SMTP server that fails on request ---------------------------------------------------------------------
class Handler:
    """aiosmtpd handler: keeps what it accepts; fails the way real servers do when told to."""

    def __init__(self):
        self.received: list[tuple[list[str], email.message.EmailMessage]] = []
        self.connections = 0  # EHLO greetings, i.e. SMTP sessions
        self.seen_rcpt: list[str] = []
        self.temp_rcpt = 0  # the next N RCPT commands get 451
        self.refuse: dict[str, str] = {}  # recipient -> permanent reply
        self.drop_data: set[int] = set()  # close the connection during these DATA commands (1-based)
        self.data_count = 0
        self.block_rcpt: str | None = None  # hold this RCPT until `release` is set
        self.release = threading.Event()
        self.data_delay = 0.0  # seconds the server "scans" a message before it answers the end of DATA
        self.on_data = None  # called (in the server's thread) as each message arrives, before the reply

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.connections += 1
        session.host_name = hostname  # a handler's EHLO hook must set it (aiosmtpd 1.4)
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.seen_rcpt.append(address)
        while address == self.block_rcpt and not self.release.is_set():
            await asyncio.sleep(0.02)
        if self.temp_rcpt:
            self.temp_rcpt -= 1
            return "451 4.3.0 Try again later"
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        self.data_count += 1
        if self.on_data:
            self.on_data(list(envelope.rcpt_tos))
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        if self.data_count in self.drop_data:
            server.transport.close()  # the line drops after the client sent the message, before any reply
            return "421 4.4.2 closing"
        msg = email.message_from_bytes(envelope.content, policy=policy.default)
        self.received.append((list(envelope.rcpt_tos), msg))
        return "250 2.0.0 Ok: queued"

    def to(self, rcpt: str) -> list[email.message.EmailMessage]:
        return [m for rcpts, m in self.received if rcpt in rcpts]

    def envelopes(self) -> list[list[str]]:
        return [rcpts for rcpts, _ in self.received]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def authenticator(server, session, envelope, mechanism, auth_data):
    """Accepts analyst/right-pass; a refusal echoes the password, as a careless server might."""
    if auth_data.login == b"analyst" and auth_data.password == b"right-pass":
        return AuthResult(success=True)
    echo = f"535 5.7.8 Authentication credentials invalid for {auth_data.login.decode()}:{auth_data.password.decode()}"
    return AuthResult(success=False, handled=False, message=echo)


def _serve(**kw):
    handler = Handler()
    port = free_port()
    ctl = Controller(handler, hostname="127.0.0.1", port=port, **kw)
    ctl.start()
    return handler, port, ctl


@pytest.fixture
def smtp():
    handler, port, ctl = _serve()
    yield handler, port
    handler.release.set()
    ctl.stop()


@pytest.fixture
def auth_smtp():
    handler, port, ctl = _serve(authenticator=authenticator, auth_require_tls=False, auth_required=True)
    yield handler, port
    ctl.stop()


def env_for(port: int, **extra) -> dict[str, str]:
    return {
        "REPORTGEN_SMTP_HOST": "127.0.0.1",
        "REPORTGEN_SMTP_PORT": str(port),
        "REPORTGEN_SMTP_SECURITY": "none",
        "REPORTGEN_MAIL_FROM": f"Strategy & IR <{SENDER}>",
        **extra,
    }


def send(edition, port, settings=SETTINGS, sleeps=None, env=None, **kw):
    """send_edition through the server on `port`; waits go into `sleeps` instead of passing."""
    sleeps = [] if sleeps is None else sleeps
    return pipeline.send_edition(edition, settings, env=env_for(port, **(env or {})), sleep=sleeps.append, **kw)


# -- the whole round trip -----------------------------------------------------------------------------------------
def test_each_recipient_gets_one_copy_with_pdf_and_findings(edition, smtp):
    handler, port = smtp
    report = send(edition, port)
    assert (report.sent, report.skipped, report.failed, report.ok) == (RECIPIENTS, [], [], True)
    assert report.summary() == "4 sent, 0 already had it"
    assert handler.envelopes() == [[r] for r in RECIPIENTS]  # one message per recipient, bcc included
    assert handler.connections == 1  # one session for the whole list
    pdf, xlsx = (edition / "briefing.pdf").read_bytes(), (edition / "metrics.xlsx").read_bytes()
    ids = set()
    for _, msg in handler.received:
        assert msg["Subject"] == SUBJECT
        assert msg["From"] == f"Strategy & IR <{SENDER}>"
        assert msg["To"] == "ceo@example.test, cfo@example.test"
        assert msg["Cc"] == "ir@example.test"
        assert msg["Bcc"] is None and "archive@" not in str(msg.items())  # bcc never in a header
        assert msg["X-Reportgen-Edition"] == "2025Q2 d5e568cfb500d772"
        assert email.utils.parsedate_to_datetime(msg["Date"]).tzinfo is not None
        ids.add(msg["Message-ID"])
        parts = [(p.get_filename(), p.get_content_type(), p.get_content()) for p in msg.iter_attachments()]
        assert parts == [
            ("2025Q2-briefing.pdf", "application/pdf", pdf),
            ("2025Q2-metrics.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", xlsx),
        ]
        text = msg.get_body(("plain",)).get_content()
        assert text.splitlines()[5:8] == [f"{i}. {s}" for i, s in enumerate(FINDINGS, 1)]
        body = msg.get_body(("html",)).get_content()
        assert all(f"<li>{html.escape(s)}</li>" in body for s in FINDINGS)
    assert len(ids) == 4
    rows = ledger_rows(edition)
    assert rows == [("d5e568cfb500d772", "2025Q2", "board", r, "sent", 0, 250) for r in RECIPIENTS]


def test_sending_twice_delivers_once_and_resend_sends_again(edition, smtp):
    handler, port = smtp
    send(edition, port)
    again = send(edition, port)
    assert (again.sent, again.skipped, again.ok) == ([], RECIPIENTS, True)
    assert again.summary() == "0 sent, 4 already had it"
    assert len(handler.received) == 4 and handler.connections == 1  # nothing to send: no connection either
    forced = send(edition, port, resend=True)
    assert (forced.sent, forced.skipped) == (RECIPIENTS, [])
    assert [len(handler.to(r)) for r in RECIPIENTS] == [2, 2, 2, 2]


def test_a_new_edition_id_is_sent_again(edition, smtp):
    handler, port = smtp
    send(edition, port)
    manifest = json.loads((edition / "manifest.json").read_text(encoding="utf-8"))
    manifest["edition"] = "0123456789abcdef"  # the inputs changed and the quarter was rebuilt
    (edition / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    assert send(edition, port).sent == RECIPIENTS
    assert [m["X-Reportgen-Edition"] for _, m in handler.received[4:]] == ["2025Q2 0123456789abcdef"] * 4


def test_test_to_sends_one_copy_recorded_apart(edition, smtp):
    handler, port = smtp
    report = send(edition, port, test_to="Me <me@example.test>")
    assert (report.sent, report.skipped, report.failed) == (["me@example.test"], [], [])
    assert report.summary() == "test copy sent to me@example.test"
    ((rcpts, msg),) = handler.received
    assert rcpts == ["me@example.test"]
    assert (msg["Subject"], msg["To"], msg["Cc"]) == (f"[TEST] {SUBJECT}", "me@example.test", None)
    assert ledger_rows(edition) == [("d5e568cfb500d772", "2025Q2", "board", "me@example.test", "sent", 1, 250)]
    with ledger.Ledger(edition.parent / ledger.LEDGER_NAME) as book:
        assert book.delivered("d5e568cfb500d772", "board") == set()
        assert [(h["kind"], h["recipient"], h["status"]) for h in book.history()] == [
            ("test", "me@example.test", "sent")
        ]
    assert send(edition, port).sent == RECIPIENTS  # the preview did not count as a delivery
    assert send(edition, port, test_to="me@example.test").sent == ["me@example.test"]  # previews never skip


def test_dry_run_writes_eml_files_and_sends_nothing(edition, smtp):
    handler, port = smtp
    report = send(edition, port, dry_run=True)
    outbox = edition / "outbox" / "board"
    assert report.written == [outbox / f"{i:03d}-{r}.eml" for i, r in enumerate(RECIPIENTS, 1)]
    assert report.summary() == f"dry run: 4 messages written to {outbox}, 0 already had it"
    assert (handler.connections, handler.received, report.sent) == (0, [], [])
    assert not (edition.parent / ledger.LEDGER_NAME).exists()  # nothing recorded
    msg = email.message_from_bytes(report.written[3].read_bytes(), policy=policy.default)
    assert (msg["Subject"], msg["To"], msg["Bcc"]) == (SUBJECT, "ceo@example.test, cfo@example.test", None)
    assert next(msg.iter_attachments()).get_content() == (edition / "briefing.pdf").read_bytes()
    assert send(edition, port).sent == RECIPIENTS  # the real send still goes to everyone
    again = send(edition, port, dry_run=True)  # previews what a send would do now: nothing
    assert (again.written, again.skipped, sorted(outbox.iterdir())) == ([], RECIPIENTS, [])


def test_dry_run_needs_no_server_settings(edition):
    report = pipeline.send_edition(edition, SETTINGS, dry_run=True, env={})
    msg = email.message_from_bytes(report.written[0].read_bytes(), policy=policy.default)
    assert msg["From"] == "reportgen@localhost.localdomain"


# -- addresses ----------------------------------------------------------------------------------------------------
GOOD = {
    "ceo@example.test": "ceo@example.test",
    "  first.last+q2@mail.example.co.uk ": "first.last+q2@mail.example.co.uk",
    "Jane Doe <jane@example.test>": "jane@example.test",
    '"Doe, Jane" <jane@example.test>': "jane@example.test",
    "o'brien@example.test": "o'brien@example.test",
}
BAD = [
    "",
    "not-an-address",
    "two@@example.test",
    "a@b@example.test",
    ".dot@example.test",
    "dot.@example.test",
    "do..t@example.test",
    "user@localhost",
    "user@-bad.example.test",
    "user@example.123",
    "user@exa mple.test",
    "a@example.test, b@example.test",
    "Jane <jane@example.test> extra",
    "<>",
    "ü@example.test",
    "x" * 65 + "@example.test",
]


@pytest.mark.parametrize("addr,bare", GOOD.items(), ids=list(GOOD))
def test_validate_address_accepts(addr, bare):
    assert deliver.validate_address(addr) == bare


@pytest.mark.parametrize("addr", BAD)
def test_validate_address_refuses(addr):
    with pytest.raises(DeliveryError) as e:
        deliver.validate_address(addr, "mail.lists.board.to")
    assert str(e.value) == f"mail.lists.board.to: '{addr}' is not a valid e-mail address (write name@example.com)"


@given(st.text(max_size=20), st.sampled_from(["\r", "\n", "\r\n", "\x00"]), st.text(max_size=20))
def test_any_line_break_is_refused(head, brk, tail):
    addr = f"ceo@example.test{head}{brk}{tail}"
    with pytest.raises(DeliveryError, match="contains a line break or control character; refused"):
        deliver.validate_address(addr)


@pytest.mark.parametrize(
    "where,bad,message",
    [
        (
            "bcc",
            "archive@example.test\r\nBcc: everyone@example.test",
            "mail.lists.board.bcc: 'archive@example.test\\r\\nBcc: everyone@example.test' contains a line break or "
            "control character; refused",
        ),
        ("to", "cfo.example.test", "mail.lists.board.to: 'cfo.example.test' is not a valid e-mail address"),
        ("owner", "owner@", "mail.owner: 'owner@' is not a valid e-mail address"),
        ("test_to", "me@example.test\nX-Evil: 1", "--test-to: 'me@example.test\\nX-Evil: 1' contains a line break"),
    ],
    ids=["crlf-in-bcc", "no-at", "owner", "test-to-lf"],
)
def test_bad_address_refused_before_anything_is_sent(edition, smtp, where, bad, message):
    handler, port = smtp
    kw = {}
    settings = SETTINGS
    if where == "owner":
        settings = Settings(owner=bad, mail_lists=(BOARD,))
    elif where == "test_to":
        kw["test_to"] = bad
    else:
        ml = dataclasses.replace(BOARD, **{where: (*getattr(BOARD, where), bad)})
        settings = Settings(owner=OWNER, mail_lists=(ml,))
    with pytest.raises(DeliveryError) as e:
        send(edition, port, settings, **kw)
    # an address from the command line is named as such, not as a line of reportgen.toml
    prefix = "" if where == "test_to" else "reportgen.toml: nothing was sent: "
    assert str(e.value).startswith(prefix + message)
    assert (handler.connections, handler.seen_rcpt, handler.received) == (0, [], [])
    assert not (edition.parent / ledger.LEDGER_NAME).exists()


def test_build_message_for_a_bcc_recipient(edition):
    manifest = json.loads((edition / "manifest.json").read_text(encoding="utf-8"))
    msg = deliver.build_message(manifest, edition, BOARD, SENDER, "archive@example.test")
    raw = deliver.message_bytes(msg)
    assert b"archive@" not in raw
    assert max(raw) < 128 and b"\n" not in raw.replace(b"\r\n", b"")  # 7-bit, CRLF only: any server takes it
    back = email.message_from_bytes(raw, policy=policy.default)
    assert (
        back.get_body(("plain",)).get_content().replace("\r\n", "\n")
        == (  # CRLF is the wire form
            "Xiaomi vs peers: 2025Q2 briefing\nEdition of 2026-11-24.\n\nKey findings:\n\n"
            + "".join(f"{i}. {s}\n" for i, s in enumerate(FINDINGS, 1))
            + "\nGross margin is not available for Haier in 2025Q2 (see Methodology).\n\n"
            "Attached: 2025Q2-briefing.pdf, 2025Q2-metrics.xlsx.\n"
        )
    )
    quarter_only = MailList("q", ("a@example.test",), subject="Briefing {quarter}\r\nBcc: x@example.test", attach=())
    msg = deliver.build_message(manifest, edition, quarter_only, SENDER, "a@example.test")
    assert msg["Subject"] == "Briefing 2025Q2 Bcc: x@example.test"  # a line break never starts a header
    assert list(msg.iter_attachments()) == []


def test_changed_attachment_refused(edition, smtp):
    handler, port = smtp
    (edition / "briefing.pdf").write_bytes(b"%PDF-1.7 not the built file")
    with pytest.raises(DeliveryError, match="briefing.pdf is not the file this edition's build wrote"):
        send(edition, port)
    assert handler.connections == 0


# -- server faults ------------------------------------------------------------------------------------------------
def test_temporary_failures_are_retried_with_exponential_backoff(edition, smtp):
    handler, port = smtp
    handler.temp_rcpt = 2
    sleeps = []
    report = send(edition, port, sleeps=sleeps)
    assert (report.sent, report.failed, sleeps) == (RECIPIENTS, [], [2.0, 4.0])
    assert [len(handler.to(r)) for r in RECIPIENTS] == [1, 1, 1, 1]
    assert handler.connections == 1  # RSET and retry on the same session


def test_temporary_failure_that_persists_gives_up_after_bounded_tries(edition, smtp):
    handler, port = smtp
    handler.temp_rcpt = 10**6
    sleeps = []
    report = send(edition, port, sleeps=sleeps, attempts=3)
    assert report.failed == [Failure(r, 451, "4.3.0 Try again later") for r in RECIPIENTS]
    assert (report.sent, report.ok, sleeps) == ([], False, [2.0, 4.0] * 4)
    # the owner's notice meets the same server: its failure is reported, not raised
    assert report.notice == f"failure notice to {OWNER} not sent (451 4.3.0 Try again later)"
    assert [r[4] for r in ledger_rows(edition)] == ["failed"] * 4


def test_permanent_refusal_fails_one_recipient_and_tells_the_owner(edition, smtp):
    handler, port = smtp
    handler.refuse["cfo@example.test"] = "550 5.1.1 No such user"
    sleeps = []
    report = send(edition, port, sleeps=sleeps)
    assert report.sent == ["ceo@example.test", "ir@example.test", "archive@example.test"]
    assert (report.failed, report.ok, sleeps) == ([Failure("cfo@example.test", 550, "5.1.1 No such user")], False, [])
    assert report.summary() == (
        f"3 sent, 0 already had it, 1 failed: cfo@example.test (550 5.1.1 No such user), failure notice sent to {OWNER}"
    )
    (notice,) = handler.to(OWNER)
    assert notice["Subject"] == "reportgen: the 2025Q2 briefing was not delivered to 1 recipient(s)"
    assert "\r\n- cfo@example.test: 550 5.1.1 No such user\r\n" in notice.get_content()
    handler.refuse.clear()
    again = send(edition, port)  # only the one who failed is tried again
    assert (again.sent, again.skipped) == (
        ["cfo@example.test"],
        ["ceo@example.test", "ir@example.test", "archive@example.test"],
    )
    assert [len(handler.to(r)) for r in RECIPIENTS] == [1, 1, 1, 1]


def test_connection_dropped_mid_message_is_retried_without_duplicates(edition, smtp):
    handler, port = smtp
    handler.drop_data = {2}  # ceo's copy is accepted, then the line drops during cfo's
    sleeps = []
    report = send(edition, port, sleeps=sleeps)
    assert (report.sent, report.failed, sleeps) == (RECIPIENTS, [], [2.0])
    assert handler.envelopes() == [[r] for r in RECIPIENTS]
    assert handler.connections == 2


def test_unreachable_server_fails_the_list_after_bounded_tries(edition, caplog):
    port = free_port()  # nothing listens there
    sleeps = []
    caplog.set_level(logging.INFO, logger="reportgen")
    report = send(edition, port, sleeps=sleeps)
    assert (report.sent, report.ok, sleeps) == ([], False, [2.0, 4.0, 8.0])  # the first recipient's tries only
    assert [f.recipient for f in report.failed] == RECIPIENTS and {f.code for f in report.failed} == {None}
    assert report.failed[0].reply.startswith(f"cannot connect to 127.0.0.1:{port}: ConnectionRefusedError: ")
    assert len({f.reply for f in report.failed}) == 1
    assert report.notice.startswith(f"failure notice to {OWNER} not sent (no reply cannot connect to 127.0.0.1:")
    assert [r[4] for r in ledger_rows(edition)] == ["failed"] * 4
    assert "board: 3 more recipients not tried" in caplog.messages


def test_tries_per_recipient_come_from_the_environment(edition):
    sleeps = []
    report = send(edition, free_port(), sleeps=sleeps, env={"REPORTGEN_SMTP_RETRIES": "2"})
    assert (len(report.failed), sleeps) == (4, [2.0])


def test_starttls_not_offered_is_a_clear_failure(edition, smtp):
    handler, port = smtp
    report = send(edition, port, env={"REPORTGEN_SMTP_SECURITY": "starttls"}, sleeps=(sleeps := []))
    assert report.failed == [
        Failure(r, None, f"127.0.0.1:{port}: STARTTLS extension not supported by server; check REPORTGEN_SMTP_SECURITY")
        for r in RECIPIENTS
    ]
    assert (sleeps, handler.received) == ([], [])


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # loopback test server only
def test_authentication_refused_is_clear_and_the_password_never_shows(edition, auth_smtp, caplog):
    handler, port = auth_smtp
    caplog.set_level(logging.DEBUG, logger="reportgen")
    secret = "wrong-pass-s3cret"
    sleeps = []
    report = send(
        edition, port, sleeps=sleeps, env={"REPORTGEN_SMTP_USER": "analyst", "REPORTGEN_SMTP_PASSWORD": secret}
    )
    reply = (
        "authentication refused: 5.7.8 Authentication credentials invalid for analyst:***; "
        "check REPORTGEN_SMTP_USER and REPORTGEN_SMTP_PASSWORD"
    )
    assert report.failed == [Failure(r, 535, reply) for r in RECIPIENTS]
    assert (report.sent, sleeps, handler.received) == ([], [], [])  # a refused login is not retried
    assert report.notice == f"failure notice to {OWNER} not sent (535 {reply})"
    with sqlite3.connect(edition.parent / ledger.LEDGER_NAME) as db:
        dump = "\n".join(db.iterdump())
    shown = [
        caplog.text,
        str(report),
        report.summary(),
        dump,
        repr(
            deliver.SmtpSettings.from_env(
                env_for(port, **{"REPORTGEN_SMTP_USER": "analyst", "REPORTGEN_SMTP_PASSWORD": secret})
            )
        ),
    ]
    assert [secret in s for s in shown] == [False] * len(shown)
    good = send(edition, port, env={"REPORTGEN_SMTP_USER": "analyst", "REPORTGEN_SMTP_PASSWORD": "right-pass"})
    assert (good.sent, good.failed) == (RECIPIENTS, [])  # the failed ones are retried: they were never sent


@pytest.mark.parametrize(
    "env,message",
    [
        ({}, "REPORTGEN_SMTP_HOST: no mail server: set REPORTGEN_SMTP_HOST"),
        ({"REPORTGEN_SMTP_HOST": "smtp.example.test"}, "REPORTGEN_MAIL_FROM: no sender: set REPORTGEN_MAIL_FROM"),
        ({"REPORTGEN_SMTP_HOST": "h.test", "REPORTGEN_SMTP_SECURITY": "tls"}, "REPORTGEN_SMTP_SECURITY: must be"),
        ({"REPORTGEN_SMTP_HOST": "h.test", "REPORTGEN_SMTP_PORT": "smtp"}, "REPORTGEN_SMTP_PORT: must be a port"),
        ({"REPORTGEN_SMTP_HOST": "h.test", "REPORTGEN_MAIL_FROM": "me"}, "REPORTGEN_MAIL_FROM: 'me' is not a valid"),
        (
            {"REPORTGEN_SMTP_HOST": "h.test", "REPORTGEN_MAIL_FROM": SENDER, "REPORTGEN_SMTP_PASSWORD": "hunter2"},
            "REPORTGEN_SMTP_USER: REPORTGEN_SMTP_PASSWORD is set but this is not",
        ),
        (
            {
                "REPORTGEN_SMTP_HOST": "smtp.example.test",
                "REPORTGEN_MAIL_FROM": SENDER,
                "REPORTGEN_SMTP_USER": "u",
                "REPORTGEN_SMTP_PASSWORD": "hunter2",
                "REPORTGEN_SMTP_SECURITY": "none",
            },
            "REPORTGEN_SMTP_SECURITY: would send the password unencrypted to smtp.example.test",
        ),
        (
            {"REPORTGEN_SMTP_HOST": "h.test", "REPORTGEN_MAIL_FROM": SENDER, "REPORTGEN_SMTP_RETRIES": "0"},
            "REPORTGEN_SMTP_RETRIES: must be 1 to 10 tries per recipient, not '0'",
        ),
        ({"REPORTGEN_SMTP_HOST": "127.0.0..1"}, "REPORTGEN_SMTP_HOST: '127.0.0..1' is not a host name or IP address"),
        ({"REPORTGEN_SMTP_HOST": "smtp .example.test"}, "REPORTGEN_SMTP_HOST: 'smtp .example.test' is not a host"),
        ({"REPORTGEN_SMTP_HOST": "h.test", "REPORTGEN_SMTP_PORT": "²⁵"}, "REPORTGEN_SMTP_PORT: must be a port number"),
        (
            {"REPORTGEN_SMTP_HOST": "h.test", "REPORTGEN_SMTP_PORT": "２５"},
            "REPORTGEN_SMTP_PORT: must be a port number",
        ),
        (
            {"REPORTGEN_SMTP_HOST": "h.test", "REPORTGEN_MAIL_FROM": SENDER, "REPORTGEN_SMTP_RETRIES": "³"},
            "REPORTGEN_SMTP_RETRIES: must be 1 to 10 tries per recipient, not '³'",
        ),
        (
            {"REPORTGEN_SMTP_HOST": "h.test", "REPORTGEN_MAIL_FROM": SENDER, "REPORTGEN_SMTP_DEADLINE": "soon"},
            "REPORTGEN_SMTP_DEADLINE: must be a number of seconds from 1 to 86400, not 'soon'",
        ),
    ],
    ids=[
        "no-host",
        "no-from",
        "bad-security",
        "bad-port",
        "bad-from",
        "password-without-user",
        "cleartext-password",
        "bad-retries",
        "host-empty-label",
        "host-with-space",
        "superscript-port",
        "full-width-port",
        "superscript-retries",
        "bad-deadline",
    ],
)
def test_smtp_settings_errors_name_the_variable(env, message):
    with pytest.raises(DeliveryError) as e:
        deliver.SmtpSettings.from_env(env)
    assert str(e.value).startswith(message) and "hunter2" not in str(e.value) + repr(e.value)


@pytest.mark.parametrize("password", ["pässwörd-s3cret", "s3cret\u200bzero-width", "s3cret\nline"])
def test_a_password_python_cannot_send_is_refused_without_showing_any_of_it(password):
    env = {
        "REPORTGEN_SMTP_HOST": "smtp.example.test",
        "REPORTGEN_MAIL_FROM": SENDER,
        "REPORTGEN_SMTP_USER": "analyst",
        "REPORTGEN_SMTP_PASSWORD": password,
    }
    with pytest.raises(DeliveryError) as info:
        deliver.SmtpSettings.from_env(env)
    shown = str(info.value)
    assert shown.startswith("REPORTGEN_SMTP_PASSWORD: has a character outside plain ASCII")
    for piece in ("s3cret", "ä", "ö", "zero-width", "\\u200b", "\u200b", "line"):  # nothing of the password shows
        assert piece not in shown, piece


def test_a_bad_sender_names_the_variable_not_the_workspace(edition, smtp):
    handler, port = smtp
    with pytest.raises(DeliveryError) as info:
        send(edition, port, env={"REPORTGEN_MAIL_FROM": "Strategy <briefings@@example.test>"})
    assert str(info.value).startswith("REPORTGEN_MAIL_FROM: ") and "reportgen.toml" not in str(info.value)
    assert handler.connections == 0


def test_smtp_settings_defaults():
    s = deliver.SmtpSettings.from_env({"REPORTGEN_SMTP_HOST": "smtp.example.test", "REPORTGEN_MAIL_FROM": SENDER})
    assert (s.port, s.security, s.user, s.password) == (587, "starttls", "", "")
    s = deliver.SmtpSettings.from_env(
        {"REPORTGEN_SMTP_HOST": "h.test", "REPORTGEN_MAIL_FROM": SENDER, "REPORTGEN_SMTP_SECURITY": "SSL"}
    )
    assert (s.port, s.security) == (465, "ssl")


# -- exactly once across processes --------------------------------------------------------------------------------
CHILD = """
import json, sys
from reportgen import deliver, ledger, pipeline
from reportgen.config import MailList, Settings
ml = MailList(**{k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(sys.argv[2]).items()})
pipeline.send_edition(sys.argv[1], Settings(mail_lists=(ml,)))
"""


def test_send_killed_mid_list_resumes_without_duplicates(edition, smtp):
    handler, port = smtp
    handler.block_rcpt = "cfo@example.test"  # the child is killed while the server holds the second recipient
    env = {**os.environ, **env_for(port)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(edition), json.dumps(dataclasses.asdict(BOARD))],
        env=env,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while "cfo@example.test" not in handler.seen_rcpt:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    handler.release.set()
    assert handler.envelopes() == [["ceo@example.test"]]
    report = send(edition, port, Settings(mail_lists=(BOARD,)))
    assert (report.skipped, report.sent) == (["ceo@example.test"], RECIPIENTS[1:])
    assert [len(handler.to(r)) for r in RECIPIENTS] == [1, 1, 1, 1]


def test_a_second_send_while_one_is_running_is_refused(edition, smtp):
    handler, port = smtp
    with open(edition.parent / ledger.EDITIONS_LOCK_NAME, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running `reportgen send` (or a build) holds it
        with pytest.raises(ledger.LockHeld, match="is writing or mailing this workspace's editions; nothing was done"):
            send(edition, port)
    assert handler.connections == 0
    assert send(edition, port).sent == RECIPIENTS  # released: the next send goes through


def test_history_lists_builds_and_deliveries_in_order(edition, smtp):
    handler, port = smtp
    with ledger.open_ledger(edition.parent.parent) as book:
        book.record_build("2025Q2", "d5e568cfb500d772", True)
        send(edition, port, test_to="me@example.test", journal=book)
        send(edition, port, journal=book)
        hist = book.history()
    assert [(h["kind"], h["recipient"], h["status"], h["code"]) for h in hist] == [
        ("build", "", "built", None),
        ("test", "me@example.test", "sent", 250),
        *[("mail", r, "sent", 250) for r in RECIPIENTS],
    ]
    assert set(hist[0]) == {"at", "kind", "quarter", "edition", "list", "recipient", "status", "code", "reply"}


# -- through the command line (`reportgen send`, `reportgen history`) --------------------------------------------
MAIL_TOML = """
[mail]
owner = "owner@example.test"
[mail.lists.board]
to = ["ceo@example.test", "cfo@example.test"]
cc = ["ir@example.test"]
bcc = ["archive@example.test"]
subject = "{title} ({edition_date})"
attach = ["pdf", "xlsx"]
"""


def test_cli_send_exit_status_and_history(runner, tmp_path, smtp):
    from reportgen.cli import cli

    from .conftest import write_mini

    handler, port = smtp
    ws = write_mini(tmp_path / "mini", {})
    (ws / "reportgen.toml").write_text((ws / "reportgen.toml").read_text() + MAIL_TOML)
    handler.refuse["cfo@example.test"] = "550 5.1.1 No such user"
    args = ["-C", str(ws), "send", "--quarter", "2025Q2"]
    res = runner.invoke(cli, args, env=env_for(port))
    assert res.exit_code == 1, res.output
    assert res.stdout == (
        "board: 3 sent, 0 already had it, 1 failed: cfo@example.test (550 5.1.1 No such user), "
        "failure notice sent to owner@example.test\n"
    )
    assert "Error: not everything was delivered" in res.stderr and "Traceback" not in res.output
    handler.refuse.clear()
    res = runner.invoke(cli, args, env=env_for(port))
    assert (res.exit_code, res.stdout) == (0, "board: 1 sent, 3 already had it\n")
    assert [len(handler.to(r)) for r in RECIPIENTS] == [1, 1, 1, 1]
    hist = runner.invoke(cli, ["-C", str(ws), "history"]).stdout.splitlines()
    assert [ln.split()[1] for ln in hist] == ["build"] + ["mail"] * 5
    assert sum("failed" in ln and "cfo@example.test (550 5.1.1 No such user)" in ln for ln in hist) == 1


# -- issue 10: the reply after DATA, an acceptance the ledger cannot record, a server that never finishes ----------
def test_a_slow_scan_after_data_is_waited_for_not_resent(edition, smtp, monkeypatch):
    """The reply to the end of DATA gets RFC 5321's 10 minutes, not the per-command timeout: a relay that scans
    the message for longer than the command timeout gets it once."""
    handler, port = smtp
    monkeypatch.setattr(deliver, "TIMEOUT", 0.3)  # per command (was 30 s; the scan below outlasts it)
    handler.data_delay = 0.8
    report = send(edition, port, settings=Settings(mail_lists=(BOARD,)))
    assert (report.sent, report.failed) == (RECIPIENTS, [])
    assert [len(handler.to(r)) for r in RECIPIENTS] == [1, 1, 1, 1]


def _lock_ledger(path):
    """Another process's write lock on the ledger (as a second program, or a full disk, would make it fail)."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("BEGIN EXCLUSIVE")
    return db


def test_an_acceptance_the_ledger_cannot_record_stays_in_doubt_and_is_not_resent(edition, smtp):
    handler, port = smtp
    ledger_path = edition.parent / ledger.LEDGER_NAME
    ledger.Ledger(ledger_path).close()
    held = []

    def lock_after_first(rcpts):  # the server has the first copy; the ledger becomes unwritable before its reply
        if rcpts == ["ceo@example.test"] and not held:
            held.append(_lock_ledger(ledger_path))

    handler.on_data = lock_after_first
    book = ledger.Ledger(ledger_path, timeout=0.3)
    try:
        report = send(edition, port, settings=Settings(mail_lists=(BOARD,)), journal=book)
    finally:
        book.close()
        held[0].execute("ROLLBACK")
        held[0].close()
    assert report.in_doubt == ["ceo@example.test"] and report.sent == [] and not report.ok
    assert "accepted (250" in report.stopped and "stays in doubt" in report.stopped
    assert [f.recipient for f in report.failed] == RECIPIENTS[1:]  # the list stopped at once
    assert handler.envelopes() == [["ceo@example.test"]]
    handler.on_data = None
    again = send(edition, port, settings=Settings(mail_lists=(BOARD,)))  # the rerun does not resend blindly
    assert (again.in_doubt, again.sent) == (["ceo@example.test"], RECIPIENTS[1:])
    assert "in doubt" in again.summary() and "--resend-to" in again.summary()
    assert [len(handler.to(r)) for r in RECIPIENTS] == [1, 1, 1, 1]
    with ledger.Ledger(ledger_path) as book:
        assert ("mail", "ceo@example.test", "in doubt") in {
            (h["kind"], h["recipient"], h["status"]) for h in book.history()
        }
    resent = send(edition, port, settings=Settings(mail_lists=(BOARD,)), resend_to=("ceo@example.test",))
    assert (resent.sent, resent.in_doubt, resent.ok) == (["ceo@example.test"], [], True)


def test_a_ledger_that_cannot_record_the_attempt_sends_nothing_more(edition, smtp):
    handler, port = smtp
    ledger_path = edition.parent / ledger.LEDGER_NAME
    ledger.Ledger(ledger_path).close()
    held = _lock_ledger(ledger_path)
    book = ledger.Ledger(ledger_path, timeout=0.3)
    try:
        report = send(edition, port, settings=Settings(mail_lists=(BOARD,)), journal=book)
    finally:
        book.close()
        held.execute("ROLLBACK")
        held.close()
    assert report.sent == [] and report.in_doubt == [] and handler.received == []  # nothing was handed over
    assert "nothing was sent to ceo@example.test" in report.stopped and "database is locked" in report.stopped
    assert [f.recipient for f in report.failed] == RECIPIENTS
    assert send(edition, port, settings=Settings(mail_lists=(BOARD,))).sent == RECIPIENTS  # once it can write


def _trickling_server(delay: float):
    """A raw TCP server that sends its greeting one byte every `delay` seconds, forever (a slow-loris)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    stop = threading.Event()

    def serve():
        srv.settimeout(0.2)
        conns = []
        while not stop.is_set():
            try:
                c, _ = srv.accept()
                conns.append(c)
            except OSError:
                pass
            for c in conns:
                try:
                    c.send(b"2")
                except OSError:
                    pass
            stop.wait(delay)
        for c in conns:
            c.close()
        srv.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return srv.getsockname()[1], stop


def test_a_server_that_never_finishes_its_greeting_fails_the_list_by_the_deadline(edition):
    port, stop = _trickling_server(0.3)
    started = time.monotonic()
    try:
        report = send(edition, port, env={"REPORTGEN_SMTP_DEADLINE": "2"})
    finally:
        stop.set()
    took = time.monotonic() - started
    assert took < 15, took  # not forever: about one deadline (the first try is fatal, no retries)
    assert [f.recipient for f in report.failed] == RECIPIENTS and not report.sent
    assert "did not finish the greeting, TLS and login within 2 s (REPORTGEN_SMTP_DEADLINE)" in report.failed[0].reply


def test_a_build_never_replaces_an_edition_while_it_is_mailed(edition, smtp):
    """The send holds the editions lock from the manifest it reads to its last recipient: a build started
    meanwhile is refused (exit status 75, try later), and every recipient gets the same edition."""
    from reportgen.pipeline import write_edition

    handler, port = smtp
    handler.block_rcpt = "cfo@example.test"
    result = {}
    t = threading.Thread(target=lambda: result.update(r=send(edition, port, settings=Settings(mail_lists=(BOARD,)))))
    t.start()
    deadline = time.monotonic() + 30
    while "cfo@example.test" not in handler.seen_rcpt:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    with pytest.raises(ledger.LockHeld, match="send 2025Q2") as info:
        with ledger.editions_lock(edition.parent, "build 2025Q2"):
            write_edition(edition, {"briefing.pdf": b"%PDF-1.7 another edition"})
    assert info.value.exit_code == 75
    handler.release.set()
    t.join(30)
    assert result["r"].sent == RECIPIENTS
    pdfs = {next(m.iter_attachments()).get_content() for _, m in handler.received}
    assert pdfs == {(edition / "briefing.pdf").read_bytes()} and len(handler.received) == 4
