"""Mail delivery: messages built from an edition (pure), sent over SMTP exactly once per recipient, with a
SQLite ledger of what each server accepted."""

from __future__ import annotations

import html
import json
import logging
import mimetypes
import os
import re
import smtplib
import socket
import sqlite3
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path

from .errors import DeliveryError

log = logging.getLogger("reportgen.deliver")
LEDGER_NAME = ".ledger.sqlite3"
ATTACHMENTS = {"pdf": "briefing.pdf", "html": "briefing.html", "xlsx": "metrics.xlsx"}
ENV = ("REPORTGEN_SMTP_HOST", "REPORTGEN_SMTP_PORT", "REPORTGEN_SMTP_USER", "REPORTGEN_SMTP_PASSWORD",
       "REPORTGEN_SMTP_SECURITY", "REPORTGEN_MAIL_FROM", "REPORTGEN_SMTP_RETRIES")
_ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")


# -- settings and addresses ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SmtpSettings:
    """SMTP settings, from the environment only (never from the workspace)."""

    host: str
    port: int
    security: str  # "starttls" | "ssl" | "none"
    sender: str
    user: str = ""
    password: str = field(default="", repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SmtpSettings:
        host = env.get("REPORTGEN_SMTP_HOST", "").strip()
        if not host:
            raise DeliveryError("no mail server: set REPORTGEN_SMTP_HOST (and REPORTGEN_MAIL_FROM) in the "
                                "environment, or use --dry-run", field="REPORTGEN_SMTP_HOST")
        security = env.get("REPORTGEN_SMTP_SECURITY", "starttls").strip().lower()
        if security not in ("starttls", "ssl", "none"):
            raise DeliveryError(f"REPORTGEN_SMTP_SECURITY must be starttls, ssl or none, not '{security}'",
                                field="REPORTGEN_SMTP_SECURITY")
        default_port = {"starttls": 587, "ssl": 465, "none": 25}[security]
        port_text = env.get("REPORTGEN_SMTP_PORT", "").strip() or str(default_port)
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise DeliveryError(f"REPORTGEN_SMTP_PORT must be a port number, not '{port_text}'",
                                field="REPORTGEN_SMTP_PORT")
        sender = env.get("REPORTGEN_MAIL_FROM", "").strip()
        if not sender:
            raise DeliveryError("set REPORTGEN_MAIL_FROM to the sender address", field="REPORTGEN_MAIL_FROM")
        validate_address(sender, "REPORTGEN_MAIL_FROM")
        user = env.get("REPORTGEN_SMTP_USER", "").strip()
        password = env.get("REPORTGEN_SMTP_PASSWORD", "")
        if user and not password:
            raise DeliveryError("REPORTGEN_SMTP_USER is set but REPORTGEN_SMTP_PASSWORD is not",
                                field="REPORTGEN_SMTP_PASSWORD")
        return cls(host, int(port_text), security, sender, user, password)


def validate_address(addr: str, where: str = "address") -> str:
    """The bare address, or DeliveryError for a malformed one or one carrying CR/LF (header injection)."""
    if not isinstance(addr, str) or any(c in addr for c in "\r\n\x00"):
        raise DeliveryError(f"{where}: {addr!r} contains a line break; refused", field=where)
    name, bare = parseaddr(addr)
    if not bare or not _ADDRESS.match(bare) or (not name and bare != addr.strip()):
        raise DeliveryError(f"{where}: '{addr}' is not a valid e-mail address", field=where)
    return bare


# -- messages (pure) ----------------------------------------------------------------------------------------------
def build_message(manifest: dict, edition_dir: Path, mail_list, sender: str, recipient: str,
                  test: bool = False) -> EmailMessage:
    """One copy of the edition for one recipient: subject from the list's template, a plain-text body with the
    key findings and an HTML alternative, the attachments the list asks for. Bcc never appears in headers."""
    edition_dir = Path(edition_dir)
    subject = mail_list.subject.format(title=manifest["title"], quarter=manifest["quarter"],
                                       edition_date=manifest["edition_date"])
    msg = EmailMessage()
    msg["Subject"] = ("[TEST] " if test else "") + subject
    msg["From"] = sender
    msg["To"] = recipient if test else (", ".join(mail_list.to) or recipient)
    if mail_list.cc and not test:
        msg["Cc"] = ", ".join(mail_list.cc)
    msg["Date"] = format_datetime(datetime.now(timezone.utc))
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    msg["X-Reportgen-Edition"] = f"{manifest['quarter']} {manifest['edition']}"
    findings = manifest.get("findings", [])
    notes = manifest.get("notes", [])
    text = [f"{manifest['title']}", f"Edition of {manifest['edition_date']}.", "", "Key findings:"]
    text += [f"{i}. {s}" for i, s in enumerate(findings, 1)]
    text += ["", *notes] if notes else []
    text += ["", "The full briefing with charts and sources is attached."]
    msg.set_content("\n".join(text) + "\n")
    items = "".join(f"<li>{html.escape(s)}</li>" for s in findings)
    extra = "".join(f"<p style='color:#6c757d'>{html.escape(n)}</p>" for n in notes)
    msg.add_alternative(f"<html><body><h2>{html.escape(manifest['title'])}</h2><p>Edition of "
                        f"{html.escape(manifest['edition_date'])}.</p><h3>Key findings</h3><ol>{items}</ol>{extra}"
                        "<p>The full briefing with charts and sources is attached.</p></body></html>", subtype="html")
    for kind in mail_list.attach:
        name = ATTACHMENTS[kind]
        path = edition_dir / name
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if name.endswith(".xlsx"):
            ctype = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        maintype, subtype = ctype.split("/", 1)
        stem = f"{manifest['quarter']}-{name}"
        msg.add_attachment(path.read_bytes(), maintype=maintype, subtype=subtype, filename=stem)
    return msg


# -- ledger -------------------------------------------------------------------------------------------------------
class Ledger:
    """SQLite record of every (edition, list, recipient) a server accepted or refused, and of builds."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript("""
            CREATE TABLE IF NOT EXISTS deliveries (
                edition TEXT NOT NULL, quarter TEXT NOT NULL, list TEXT NOT NULL, recipient TEXT NOT NULL,
                status TEXT NOT NULL, test INTEGER NOT NULL DEFAULT 0, smtp_code INTEGER, smtp_reply TEXT,
                at TEXT NOT NULL);
            CREATE INDEX IF NOT EXISTS deliveries_key ON deliveries (edition, list, recipient, status, test);
            CREATE TABLE IF NOT EXISTS builds (quarter TEXT NOT NULL, edition TEXT NOT NULL, rebuilt INTEGER NOT NULL,
                at TEXT NOT NULL);
        """)

    def delivered(self, edition: str, list_name: str) -> set[str]:
        """Recipients the server accepted for this edition and list (test copies excluded)."""
        rows = self.db.execute("SELECT recipient FROM deliveries WHERE edition=? AND list=? AND status='sent' "
                               "AND test=0", (edition, list_name))
        return {r[0] for r in rows}

    def record(self, edition: str, quarter: str, list_name: str, recipient: str, status: str, test: bool = False,
               code: int | None = None, reply: str = "") -> None:
        with self.db:  # committed at once: a crash after this line never mails the recipient again
            self.db.execute("INSERT INTO deliveries VALUES (?,?,?,?,?,?,?,?,?)",
                            (edition, quarter, list_name, recipient, status, int(test), code, reply,
                             datetime.now(timezone.utc).isoformat(timespec="seconds")))

    def record_build(self, quarter: str, edition: str, rebuilt: bool) -> None:
        with self.db:
            self.db.execute("INSERT INTO builds VALUES (?,?,?,?)", (quarter, edition, int(rebuilt),
                                                                     datetime.now(timezone.utc).isoformat(timespec="seconds")))

    def history(self) -> list[dict]:
        rows = self.db.execute(
            "SELECT at, 'build' AS kind, quarter, edition, '' AS list, '' AS recipient, "
            "CASE rebuilt WHEN 1 THEN 'built' ELSE 'unchanged' END, NULL, '' FROM builds "
            "UNION ALL SELECT at, CASE test WHEN 1 THEN 'test' ELSE 'mail' END, quarter, edition, list, recipient, "
            "status, smtp_code, smtp_reply FROM deliveries ORDER BY 1")
        keys = ("at", "kind", "quarter", "edition", "list", "recipient", "status", "code", "reply")
        return [dict(zip(keys, r)) for r in rows]

    def close(self) -> None:
        self.db.close()


def open_ledger(root: Path) -> Ledger:
    return Ledger(Path(root) / "output" / LEDGER_NAME)


# -- sending ------------------------------------------------------------------------------------------------------
@dataclass
class DeliveryReport:
    """What happened to one mailing list for one edition."""

    list_name: str
    edition: str
    sent: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, int | None, str]] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        parts = [f"{len(self.sent)} sent", f"{len(self.skipped)} already had it"]
        if self.written:
            parts.append(f"{len(self.written)} written as .eml (dry run)")
        if self.failed:
            parts.append(f"{len(self.failed)} failed: " + "; ".join(
                f"{r} ({code or 'no reply'} {reply})".strip() for r, code, reply in self.failed))
        return ", ".join(parts)


def _connect(s: SmtpSettings, connect=None, timeout: float = 30):
    if connect is not None:
        conn = connect(s.host, s.port, timeout=timeout)
    elif s.security == "ssl":
        conn = smtplib.SMTP_SSL(s.host, s.port, timeout=timeout, context=ssl.create_default_context())
    else:
        conn = smtplib.SMTP(s.host, s.port, timeout=timeout)
    if s.security == "starttls":
        conn.starttls(context=ssl.create_default_context())
    if s.user:
        conn.login(s.user, s.password)
    return conn


def _reply(e: Exception) -> tuple[int | None, str]:
    code = getattr(e, "smtp_code", None)
    raw = getattr(e, "smtp_error", b"")
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw or e)
    return code, text


def _close(conn) -> None:
    if conn is None:
        return
    try:
        conn.quit()
    except (smtplib.SMTPException, OSError):
        try:
            conn.close()
        except OSError:
            pass


class _Sender:
    """One SMTP session reused across recipients; reconnects after a dropped connection."""

    def __init__(self, smtp: SmtpSettings, connect, sleep, attempts: int, backoff: float):
        self.smtp, self.connect, self.sleep = smtp, connect, sleep
        self.attempts, self.backoff = attempts, backoff
        self.conn = None
        self.fatal: tuple[int | None, str] | None = None  # e.g. authentication refused: stop the list

    def send(self, msg: EmailMessage, rcpt: str) -> tuple[str, int | None, str]:
        """('sent'|'failed', code, reply) for one recipient, after bounded retries of temporary failures."""
        last: tuple[int | None, str] = (None, "")
        for attempt in range(1, self.attempts + 1):
            if self.fatal:
                return "failed", *self.fatal
            try:
                if self.conn is None:
                    self.conn = _connect(self.smtp, self.connect)
                self.conn.send_message(msg, from_addr=self.smtp.sender, to_addrs=[rcpt])
                return "sent", 250, ""
            except smtplib.SMTPAuthenticationError as e:
                self.fatal = _reply(e)
                _close(self.conn)
                self.conn = None
                return "failed", *self.fatal
            except smtplib.SMTPRecipientsRefused as e:
                code, raw = e.recipients.get(rcpt, (None, b""))
                last = (code, raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw))
                if not (code and 400 <= code < 500):
                    return "failed", *last
            except smtplib.SMTPResponseException as e:
                last = _reply(e)
                if not (400 <= e.smtp_code < 500):
                    self._reset()
                    return "failed", *last
                self._reset()
            except (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, ConnectionError, socket.timeout,
                    OSError) as e:
                last = (None, f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
                connected = self.conn is not None
                _close(self.conn)
                self.conn = None
                if not connected and attempt == self.attempts:
                    self.fatal = last  # the server cannot be reached: the rest of the list fails at once
            if attempt < self.attempts:
                delay = self.backoff * 2 ** (attempt - 1)
                log.info("temporary failure for %s (%s %s); retrying in %.1f s", rcpt, last[0] or "", last[1], delay)
                self.sleep(delay)
        return "failed", *last

    def _reset(self):
        try:
            if self.conn is not None:
                self.conn.rset()
        except (smtplib.SMTPException, OSError):
            _close(self.conn)
            self.conn = None

    def close(self):
        _close(self.conn)
        self.conn = None


def send_edition(edition_dir: Path, settings, *, list_name: str | None = None, dry_run: bool = False,
                 resend: bool = False, test_to: str | None = None, env: Mapping[str, str] | None = None,
                 connect=None, sleep=time.sleep, ledger: Ledger | None = None, attempts: int = 4,
                 backoff: float = 2.0) -> DeliveryReport:
    """Send a built edition to one mailing list (the only one when `list_name` is None), each recipient once.

    Recipients the ledger records as accepted for this edition are skipped unless `resend`. `test_to` sends one
    copy to that address alone, recorded apart. `dry_run` writes .eml files under the edition's outbox/ and sends
    nothing. Temporary (4xx) replies and dropped connections are retried `attempts` times with exponential backoff
    (`sleep` is injected for tests); a permanent (5xx) refusal of one recipient does not stop the others.
    """
    env = os.environ if env is None else env
    retries = env.get("REPORTGEN_SMTP_RETRIES", "").strip()
    if retries:
        if not retries.isdigit() or not 1 <= int(retries) <= 10:
            raise DeliveryError(f"REPORTGEN_SMTP_RETRIES must be 1-10 attempts, not '{retries}'",
                                field="REPORTGEN_SMTP_RETRIES")
        attempts = int(retries)
    edition_dir = Path(edition_dir)
    manifest = json.loads((edition_dir / "manifest.json").read_text(encoding="utf-8"))
    lists = {ml.name: ml for ml in settings.mail_lists}
    if not lists:
        raise DeliveryError("no mailing lists: add a [mail.lists.NAME] table with `to` addresses to reportgen.toml",
                            settings.path)
    if list_name is None:
        if len(lists) > 1:
            raise DeliveryError(f"several mailing lists ({', '.join(lists)}); name one with --list", settings.path)
        list_name = next(iter(lists))
    if list_name not in lists:
        raise DeliveryError(f"no mailing list '{list_name}'; known: {', '.join(lists)}", settings.path,
                            field="--list")
    ml = lists[list_name]
    where = f"mail.lists.{ml.name}"
    recipients = list(dict.fromkeys(validate_address(a, where) for a in (*ml.to, *ml.cc, *ml.bcc)))
    if test_to is not None:
        recipients = [validate_address(test_to, "--test-to")]
    if not recipients:
        raise DeliveryError(f"mailing list '{ml.name}' has no recipients", settings.path, field=where)
    if settings.owner:
        validate_address(settings.owner, "mail.owner")
    for kind in ml.attach:
        if not (edition_dir / ATTACHMENTS[kind]).exists():
            raise DeliveryError(f"the edition has no {ATTACHMENTS[kind]}; rebuild it", str(edition_dir))
    report = DeliveryReport(ml.name, manifest["edition"])

    if dry_run:
        sender = env.get("REPORTGEN_MAIL_FROM", "").strip() or "reportgen@localhost"
        outbox = edition_dir / "outbox" / ml.name
        outbox.mkdir(parents=True, exist_ok=True)
        for i, rcpt in enumerate(recipients, 1):
            path = outbox / f"{i:03d}-{re.sub(r'[^A-Za-z0-9@._-]', '_', rcpt)}.eml"
            path.write_bytes(build_message(manifest, edition_dir, ml, sender, rcpt, test_to is not None).as_bytes())
            report.written.append(path)
        log.info("%s: dry run, wrote %d messages to %s", ml.name, len(report.written), outbox)
        return report

    smtp = SmtpSettings.from_env(env)
    own_ledger = ledger is None
    ledger = ledger or open_ledger(edition_dir.parent.parent)
    try:
        done = set() if (resend or test_to is not None) else ledger.delivered(manifest["edition"], ml.name)
        sender = _Sender(smtp, connect, sleep, attempts, backoff)
        try:
            for rcpt in recipients:
                if rcpt in done:
                    report.skipped.append(rcpt)
                    continue
                msg = build_message(manifest, edition_dir, ml, smtp.sender, rcpt, test_to is not None)
                status, code, reply = sender.send(msg, rcpt)
                ledger.record(manifest["edition"], manifest["quarter"], ml.name, rcpt, status, test_to is not None,
                              code, reply)
                if status == "sent":
                    report.sent.append(rcpt)
                    log.info("%s: sent to %s", ml.name, rcpt)
                else:
                    report.failed.append((rcpt, code, reply))
                    log.warning("%s: not delivered to %s: %s %s", ml.name, rcpt, code or "", reply)
        finally:
            sender.close()
        if report.failed and settings.owner and test_to is None:
            _notify_owner(settings.owner, manifest, report, smtp, connect)
    finally:
        if own_ledger:
            ledger.close()
    return report


def _notify_owner(owner: str, manifest: dict, report: DeliveryReport, smtp: SmtpSettings, connect) -> None:
    """Best effort: tell the person who answers for the mailing who did not get the edition, and why."""
    msg = EmailMessage()
    msg["Subject"] = f"reportgen: {manifest['quarter']} briefing not delivered to {len(report.failed)} recipient(s)"
    msg["From"] = smtp.sender
    msg["To"] = owner
    msg["Date"] = format_datetime(datetime.now(timezone.utc))
    lines = [f"The {manifest['quarter']} briefing (edition {manifest['edition']}) to list '{report.list_name}' was "
             "not delivered to:", ""]
    lines += [f"- {r}: {code or 'no reply'} {reply}".rstrip() for r, code, reply in report.failed]
    lines += ["", "`reportgen send` again delivers only what is missing."]
    msg.set_content("\n".join(lines) + "\n")
    conn = None
    try:
        conn = _connect(smtp, connect)
        conn.send_message(msg, from_addr=smtp.sender, to_addrs=[owner])
        log.info("failure notice sent to %s", owner)
    except (smtplib.SMTPException, OSError) as e:
        log.warning("could not send the failure notice to %s: %s", owner, type(e).__name__)
    finally:
        _close(conn)

