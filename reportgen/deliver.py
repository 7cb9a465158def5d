"""Mail delivery: one message per recipient built from an edition, sent over SMTP exactly once, with a ledger."""

from __future__ import annotations

import base64
import html
import json
import logging
import os
import re
import smtplib
import sqlite3
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, getaddresses, make_msgid, parseaddr
from hashlib import sha256
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from .errors import DeliveryError

if TYPE_CHECKING:
    from .config import MailList, Settings

LOG = logging.getLogger("reportgen.deliver")
# the findings carry footnote marks as superscript letters (reportgen.findings); the mail explains them
_SUPERSCRIPT = {"a": "ᵃ", "d": "ᵈ", "s": "ˢ", "c": "ᶜ", "t": "ᵗ", "p": "ᵖ", "r": "ʳ", "n": "ⁿ", "x": "ˣ"}
#: the ledger lives in the workspace's output/ folder, next to the editions
LEDGER_NAME = ".ledger.sqlite3"
#: held (flock) while a list is being sent, so two sends of one workspace never mail anyone twice
SEND_LOCK_NAME = ".send.lock"
#: what `attach = [...]` in a mailing list may name: file in the edition folder, MIME type
ATTACHMENTS = {
    "pdf": ("briefing.pdf", "application/pdf"),
    "html": ("briefing.html", "text/html"),
    "xlsx": ("metrics.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
}
SECURITY_PORTS = {"starttls": 587, "ssl": 465, "none": 25}
#: a second attempt waits BACKOFF s, the third 2 * BACKOFF s, ... (at most ATTEMPTS tries per recipient)
ATTEMPTS = 4
BACKOFF = 2.0
TIMEOUT = 30.0  # seconds per SMTP command

# RFC 5321 dot-atom local part and an LDH domain of at least two labels whose last label is not all digits.
# Deliberately stricter than RFC 5322 (no quoted local parts, comments, IP literals or non-ASCII addresses).
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*\.(?=[A-Za-z0-9-]*[A-Za-z]){_LABEL}")
_NAMED = re.compile(r"(?P<name>[^<>]*?)\s*<(?P<addr>[^<>]*)>")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


# -- addresses and settings ---------------------------------------------------------------------------------------
def parse_address(addr: str, where: str = "address") -> tuple[str, str]:
    """(display name, bare address) of `Name <a@b.c>` or `a@b.c`; DeliveryError for anything else."""
    if not isinstance(addr, str):
        raise DeliveryError(f"{addr!r} is not an e-mail address", field=where)
    if _CONTROL.search(addr):
        # A CR or LF in an address would let the value add header lines (e.g. a Bcc) to every message.
        raise DeliveryError(f"{addr!r} contains a line break or control character; refused", field=where)
    text = addr.strip()
    named = _NAMED.fullmatch(text)
    bare = named.group("addr").strip() if named else text
    name = named.group("name").strip() if named else ""
    ok = (
        len(getaddresses([text])) == 1
        and parseaddr(text)[1] == bare
        and _ADDRESS.fullmatch(bare) is not None
        and len(bare) <= 254
        and len(bare.rpartition("@")[0]) <= 64
    )
    if not ok:
        raise DeliveryError(f"'{addr}' is not a valid e-mail address (write name@example.com)", field=where)
    return parseaddr(text)[0] if name else "", bare


def validate_address(addr: str, where: str = "address") -> str:
    """The bare address of `addr`, or DeliveryError for a malformed one or one carrying CR/LF (header injection)."""
    return parse_address(addr, where)[1]


@dataclass(frozen=True)
class SmtpSettings:
    """How to reach the mail server; from the environment only, never from the workspace."""

    host: str
    port: int
    security: str  # starttls | ssl | none
    sender: str  # as written in REPORTGEN_MAIL_FROM, may carry a display name
    user: str = ""
    password: str = field(default="", repr=False)
    attempts: int = ATTEMPTS  # tries per recipient (REPORTGEN_SMTP_RETRIES)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SmtpSettings:
        """Read REPORTGEN_SMTP_* and REPORTGEN_MAIL_FROM; DeliveryError names the variable to fix."""
        host = env.get("REPORTGEN_SMTP_HOST", "").strip()
        if not host:
            raise DeliveryError(
                "no mail server: set REPORTGEN_SMTP_HOST (e.g. smtp.example.com) in the environment, or use --dry-run",
                field="REPORTGEN_SMTP_HOST",
            )
        security = env.get("REPORTGEN_SMTP_SECURITY", "").strip().lower() or "starttls"
        if security not in SECURITY_PORTS:
            raise DeliveryError(f"must be starttls, ssl or none, not '{security}'", field="REPORTGEN_SMTP_SECURITY")
        port_text = env.get("REPORTGEN_SMTP_PORT", "").strip() or str(SECURITY_PORTS[security])
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise DeliveryError(f"must be a port number (e.g. 587), not '{port_text}'", field="REPORTGEN_SMTP_PORT")
        sender = env.get("REPORTGEN_MAIL_FROM", "").strip()
        if not sender:
            raise DeliveryError(
                "no sender: set REPORTGEN_MAIL_FROM to the address the briefing comes from",
                field="REPORTGEN_MAIL_FROM",
            )
        parse_address(sender, "REPORTGEN_MAIL_FROM")
        user = env.get("REPORTGEN_SMTP_USER", "").strip()
        password = env.get("REPORTGEN_SMTP_PASSWORD", "")
        if user and not password:
            raise DeliveryError("REPORTGEN_SMTP_USER is set but this is not", field="REPORTGEN_SMTP_PASSWORD")
        if password and not user:
            raise DeliveryError("REPORTGEN_SMTP_PASSWORD is set but this is not", field="REPORTGEN_SMTP_USER")
        if user and security == "none" and host.lower() not in _LOOPBACK:
            raise DeliveryError(
                f"would send the password unencrypted to {host}; use starttls or ssl (none is for a local test server)",
                field="REPORTGEN_SMTP_SECURITY",
            )
        retries = env.get("REPORTGEN_SMTP_RETRIES", "").strip() or str(ATTEMPTS)
        if not retries.isdigit() or not 1 <= int(retries) <= 10:
            raise DeliveryError(f"must be 1 to 10 tries per recipient, not '{retries}'", field="REPORTGEN_SMTP_RETRIES")
        return cls(host, int(port_text), security, sender, user, password, int(retries))

    @property
    def envelope_from(self) -> str:
        """The bare sender address (SMTP MAIL FROM)."""
        return parse_address(self.sender, "REPORTGEN_MAIL_FROM")[1]

    def secrets(self) -> tuple[str, ...]:
        """The password in every form an SMTP exchange carries it (plain, base64, AUTH PLAIN)."""
        if not self.password:
            return ()
        b64 = base64.b64encode
        return (
            self.password,
            b64(self.password.encode()).decode(),
            b64(f"\0{self.user}\0{self.password}".encode()).decode(),
        )


# -- messages (pure: no network, reads only the edition's files) -------------------------------------------------
def _subject(template: str, manifest: dict) -> str:
    try:
        text = template.format_map(
            {"title": manifest["title"], "quarter": manifest["quarter"], "edition_date": manifest["edition_date"]}
        )
    except (KeyError, IndexError, ValueError) as e:
        raise DeliveryError(f"the subject '{template}' cannot be filled in ({e}); use {{title}}, {{quarter}}") from None
    return " ".join(text.split())  # a line break in a title never becomes a header line


def _fmt(addrs) -> str:
    return ", ".join(formataddr(parse_address(a)) for a in addrs)


def build_message(
    manifest: dict, edition_dir: Path, mail_list: MailList, sender: str, recipient: str, *, test: bool = False
) -> EmailMessage:
    """One copy of the edition for `recipient`: subject from the list's template, the key findings as plain text
    and as an HTML alternative, the attachments the list asks for. To/Cc show the list; Bcc never appears.
    A `test` copy is addressed to the recipient alone and its subject starts with [TEST]."""
    edition_dir = Path(edition_dir)
    msg = EmailMessage()
    msg["Subject"] = ("[TEST] " if test else "") + _subject(mail_list.subject, manifest)
    msg["From"] = formataddr(parse_address(sender, "REPORTGEN_MAIL_FROM"))
    msg["To"] = _fmt([recipient] if test or not mail_list.to else mail_list.to)
    if mail_list.cc and not test:
        msg["Cc"] = _fmt(mail_list.cc)
    msg["Date"] = format_datetime(datetime.now(timezone.utc))
    msg["Message-ID"] = make_msgid("reportgen", domain=validate_address(sender).rpartition("@")[2])
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to a scheduled mailing
    msg["X-Reportgen-Edition"] = f"{manifest['quarter']} {manifest['edition']}"

    title, date = manifest["title"], manifest["edition_date"]
    findings, notes = list(manifest.get("findings", [])), list(manifest.get("notes", []))
    files = [ATTACHMENTS[kind] for kind in mail_list.attach]
    names = [f"{manifest['quarter']}-{name}" for name, _ in files]
    text = [title, f"Edition of {date}.", "", "Key findings:", ""]
    text += [f"{i}. {s}" for i, s in enumerate(findings, 1)] or ["(none in this edition)"]
    text += ["", *notes] if notes else []
    marks = [f"{_SUPERSCRIPT.get(f['mark'], f['mark'])} {f['text']}" for f in manifest.get("footnotes", [])]
    text += ["", "Marks: " + "; ".join(marks) + "."] if marks else []
    text += ["", f"Attached: {', '.join(names)}." if names else "The briefing is not attached to this message."]
    # Quoted-printable keeps the message 7-bit clean, so servers without 8BITMIME pass it on unchanged.
    msg.set_content("\n".join(text) + "\n", cte="quoted-printable")
    esc = html.escape
    items = "".join(f"<li>{esc(s)}</li>" for s in findings) or "<li>(none in this edition)</li>"
    extra = "".join(f'<p style="color:#555">{esc(n)}</p>' for n in notes)
    if marks:
        extra += f'<p style="color:#555;font-size:smaller">Marks: {esc("; ".join(marks))}.</p>'
    attached = f"<p>Attached: {esc(', '.join(names))}.</p>" if names else ""
    msg.add_alternative(
        f'<!DOCTYPE html><html><body style="font-family:sans-serif"><h2>{esc(title)}</h2><p>Edition of {esc(date)}.'
        f"</p><h3>Key findings</h3><ol>{items}</ol>{extra}{attached}</body></html>\n",
        subtype="html",
        cte="quoted-printable",
    )
    for (name, ctype), filename in zip(files, names, strict=True):
        maintype, subtype = ctype.split("/")
        msg.add_attachment((edition_dir / name).read_bytes(), maintype=maintype, subtype=subtype, filename=filename)
    return msg


def message_bytes(msg: EmailMessage) -> bytes:
    """The message as sent on the wire: CRLF line ends, 7-bit."""
    return msg.as_bytes(policy=policy.SMTP)


# -- ledger -------------------------------------------------------------------------------------------------------
class Ledger:
    """SQLite record of what each server accepted or refused, per (edition, list, recipient), and of builds."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(
            """
            CREATE TABLE IF NOT EXISTS deliveries (
                edition TEXT NOT NULL, quarter TEXT NOT NULL, list TEXT NOT NULL, recipient TEXT NOT NULL,
                status TEXT NOT NULL CHECK (status IN ('sent', 'failed')), test INTEGER NOT NULL DEFAULT 0,
                smtp_code INTEGER, smtp_reply TEXT, at TEXT NOT NULL);
            CREATE INDEX IF NOT EXISTS deliveries_key ON deliveries (edition, list, status, test);
            CREATE TABLE IF NOT EXISTS builds (
                quarter TEXT NOT NULL, edition TEXT NOT NULL, rebuilt INTEGER NOT NULL, at TEXT NOT NULL);
            """
        )

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def delivered(self, edition: str, list_name: str) -> set[str]:
        """Recipients a server accepted for this edition and list (test copies excluded)."""
        rows = self.db.execute(
            "SELECT recipient FROM deliveries WHERE edition=? AND list=? AND status='sent' AND test=0",
            (edition, list_name),
        )
        return {r[0] for r in rows}

    def record(
        self,
        edition: str,
        quarter: str,
        list_name: str,
        recipient: str,
        status: str,
        test: bool = False,
        code: int | None = None,
        reply: str = "",
    ) -> None:
        """Append one outcome and commit at once, so a crash right after never mails `recipient` again."""
        with self.db:
            self.db.execute(
                "INSERT INTO deliveries VALUES (?,?,?,?,?,?,?,?,?)",
                (edition, quarter, list_name, recipient, status, int(test), code, reply, _now()),
            )

    def record_build(self, quarter: str, edition: str, rebuilt: bool) -> None:
        """Append one build (or a check that found the edition unchanged)."""
        with self.db:
            self.db.execute("INSERT INTO builds VALUES (?,?,?,?)", (quarter, edition, int(rebuilt), _now()))

    def history(self) -> list[dict]:
        """Builds and deliveries, oldest first: at, kind (build|mail|test), quarter, edition, list, recipient,
        status, code, reply."""
        rows = self.db.execute(
            "SELECT at, 'build', quarter, edition, '', '', CASE rebuilt WHEN 1 THEN 'built' ELSE 'unchanged' END, "
            "NULL, '', 0 AS src, rowid FROM builds UNION ALL "
            "SELECT at, CASE test WHEN 1 THEN 'test' ELSE 'mail' END, quarter, edition, list, recipient, status, "
            "smtp_code, smtp_reply, 1 AS src, rowid FROM deliveries ORDER BY 1, 10, 11"
        )
        keys = ("at", "kind", "quarter", "edition", "list", "recipient", "status", "code", "reply")
        return [dict(zip(keys, r[:9], strict=True)) for r in rows]

    def close(self) -> None:
        self.db.close()


def open_ledger(root: Path) -> Ledger:
    """The ledger of the workspace at `root` (output/.ledger.sqlite3)."""
    return Ledger(Path(root) / "output" / LEDGER_NAME)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class _SendLock:
    """Non-blocking flock on output/.send.lock; released by the kernel if the process dies."""

    def __init__(self, path: Path):
        self.path, self.fd = Path(path), None

    def __enter__(self) -> _SendLock:
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock (reportgen runs from cron/systemd; see schedule.RunLock)
            return self
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            self.fd = None
            raise DeliveryError(
                "another `reportgen send` or `run` is mailing from this workspace; try again when it has finished",
                str(self.path),
            ) from None
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


# -- SMTP ---------------------------------------------------------------------------------------------------------
class Failure(NamedTuple):
    """A recipient that was not delivered: the server's code (None when there was no reply) and reply text."""

    recipient: str
    code: int | None
    reply: str


@dataclass
class DeliveryReport:
    """What happened to one mailing list for one edition."""

    list_name: str
    edition: str
    sent: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # the ledger says they already have this edition
    failed: list[Failure] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)  # .eml files of a dry run
    outbox: Path | None = None  # where a dry run wrote them
    test: bool = False
    notice: str = ""  # what became of the failure notice to the owner

    @property
    def ok(self) -> bool:
        """True when nobody failed."""
        return not self.failed

    def summary(self) -> str:
        """One line for people, e.g. `3 sent, 1 already had it, 1 failed: a@b.c (550 5.1.1 No such user)`."""
        if self.outbox is not None:
            parts = [f"dry run: {len(self.written)} written to {self.outbox}"]
        elif self.test:
            parts = [f"test copy sent to {self.sent[0]}" if self.sent else "test copy not sent"]
        else:
            parts = [f"{len(self.sent)} sent"]
        if not self.test:
            parts.append(f"{len(self.skipped)} already had it")
        if self.failed:
            parts.append(
                f"{len(self.failed)} failed: "
                + "; ".join(f"{f.recipient} ({f.code or 'no reply'} {f.reply})".replace(" )", ")") for f in self.failed)
            )
        if self.notice:
            parts.append(self.notice)
        return ", ".join(parts)


class _Fail(Exception):
    """One SMTP step failed. `kind`: temporary (retry), permanent (this recipient) or fatal (the whole list)."""

    def __init__(self, code: int | None, reply: str, kind: str, at_connect: bool = False):
        super().__init__(code, reply)
        self.code, self.reply, self.kind, self.at_connect = code, reply, kind, at_connect


def _text(resp) -> str:
    raw = resp.decode("utf-8", "replace") if isinstance(resp, bytes) else str(resp)
    return " ".join(raw.split())


def _kind(code: int, worst: str = "permanent") -> str:
    """temporary for a 4xx reply, else `worst`."""
    return "temporary" if 400 <= code < 500 else worst


def _open_failure(e: OSError, where: str) -> tuple[int | None, str, str]:
    """(code, reply, kind) for a failure to connect, greet, start TLS or log in. 4xx replies and network errors
    are temporary; anything else will not get better by retrying, so it stops the list."""
    if isinstance(e, smtplib.SMTPAuthenticationError):
        hint = "; check REPORTGEN_SMTP_USER and REPORTGEN_SMTP_PASSWORD" if e.smtp_code >= 500 else ""
        return e.smtp_code, f"authentication refused: {_text(e.smtp_error)}{hint}", _kind(e.smtp_code, "fatal")
    if isinstance(e, smtplib.SMTPResponseException):  # e.g. a greeting other than 220, or STARTTLS refused
        return e.smtp_code, _text(e.smtp_error), _kind(e.smtp_code, "fatal")
    if isinstance(e, smtplib.SMTPNotSupportedError):
        fix = (
            "unset REPORTGEN_SMTP_USER or use the submission port"
            if "AUTH" in str(e)
            else "check REPORTGEN_SMTP_SECURITY"
        )
        return None, f"{where}: {str(e).rstrip('.')}; {fix}", "fatal"
    if isinstance(e, ssl.SSLCertVerificationError):
        return None, f"{where}: TLS certificate not trusted ({e.verify_message})", "fatal"
    if isinstance(e, ssl.SSLError):
        return None, f"{where}: TLS failed ({e}); check REPORTGEN_SMTP_SECURITY and REPORTGEN_SMTP_PORT", "fatal"
    if isinstance(e, smtplib.SMTPServerDisconnected):
        return None, f"{where} closed the connection", "temporary"
    if isinstance(e, smtplib.SMTPException):  # e.g. no login mechanism in common
        return None, f"{where}: {e}", "fatal"
    return None, f"cannot connect to {where}: {type(e).__name__}: {e}", "temporary"  # refused, unreachable, timeout


class _Session:
    """One SMTP connection, opened on demand, reused across recipients and reopened after a drop."""

    def __init__(self, smtp: SmtpSettings, connect: Callable | None, log: logging.Logger):
        self.smtp, self.connect, self.log = smtp, connect, log
        self.conn = None

    def _scrub(self, text: str) -> str:
        for secret in self.smtp.secrets():
            text = text.replace(secret, "***")
        return text

    def _fail(self, code, reply, kind, at_connect=False) -> _Fail:
        return _Fail(code, self._scrub(_text(reply)), kind, at_connect)

    def open(self) -> None:
        """Connect, greet, STARTTLS and log in as the settings say; raises _Fail."""
        if self.conn is not None:
            return
        s = self.smtp
        self.log.info("connecting to %s:%s (%s%s)", s.host, s.port, s.security, f", as {s.user}" if s.user else "")
        conn = None
        try:
            if self.connect is not None:
                conn = self.connect(s.host, s.port, timeout=TIMEOUT)
            elif s.security == "ssl":
                conn = smtplib.SMTP_SSL(s.host, s.port, timeout=TIMEOUT, context=ssl.create_default_context())
            else:
                conn = smtplib.SMTP(s.host, s.port, timeout=TIMEOUT)
            conn.ehlo_or_helo_if_needed()
            if s.security == "starttls":
                conn.starttls(context=ssl.create_default_context())
                conn.ehlo()
            if s.user:
                conn.login(s.user, s.password)
        except OSError as e:  # smtplib's exceptions are OSErrors too
            _close(conn)
            code, reply, kind = _open_failure(e, f"{s.host}:{s.port}")
            raise self._fail(code, reply, kind, at_connect=True) from None
        self.conn = conn

    def send(self, envelope_from: str, rcpt: str, data: bytes) -> tuple[int, str]:
        """MAIL, RCPT, DATA for one recipient: the server's (code, reply) on acceptance; raises _Fail."""
        self.open()
        conn = self.conn
        try:
            for verb, call, good in (
                ("MAIL FROM", lambda: conn.mail(envelope_from), (250,)),
                ("RCPT TO", lambda: conn.rcpt(rcpt), (250, 251)),
                ("DATA", lambda: conn.data(data), (250,)),
            ):
                try:
                    code, resp = call()
                except smtplib.SMTPDataError as e:  # DATA itself was refused (no 354)
                    code, resp = e.smtp_code, e.smtp_error
                if code not in good:
                    # 5xx to MAIL FROM refuses the sender, i.e. every recipient: stop the list.
                    kind = "fatal" if verb == "MAIL FROM" and code >= 500 else _kind(code)
                    self._reset(code)
                    raise self._fail(code, resp, kind)
        except (smtplib.SMTPServerDisconnected, OSError) as e:
            self.close()
            raise self._fail(None, f"connection lost: {type(e).__name__}: {e}".rstrip(": "), "temporary") from None
        return code, self._scrub(_text(resp))

    def _reset(self, code: int) -> None:
        if code == 421:  # the server is closing the channel
            self.close()
            return
        try:
            self.conn.rset()
        except (smtplib.SMTPException, OSError):
            self.close()

    def close(self) -> None:
        _close(self.conn)
        self.conn = None


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


def _send_one(session, envelope_from, rcpt, data, sleep, attempts, backoff, log) -> tuple[int, str]:
    """Deliver one copy with at most `attempts` tries, waiting backoff * 2**n s between them; raises _Fail."""
    attempt = 1
    while True:
        try:
            return session.send(envelope_from, rcpt, data)
        except _Fail as e:
            if e.kind != "temporary":
                raise
            if attempt >= attempts:
                # Still failing to connect: the server is unreachable for everyone, not only for this recipient.
                raise _Fail(e.code, e.reply, "fatal" if e.at_connect else "permanent", e.at_connect) from None
            delay = backoff * 2 ** (attempt - 1)
            log.info(
                "%s: temporary failure (%s %s); try %d of %d in %g s",
                rcpt,
                e.code or "",
                e.reply,
                attempt + 1,
                attempts,
                delay,
            )
            sleep(delay)
            attempt += 1


# -- send_edition -------------------------------------------------------------------------------------------------
def read_manifest(edition_dir: Path) -> dict:
    """The edition's manifest.json, checked for the keys a message needs."""
    path = Path(edition_dir) / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DeliveryError("no edition here; run `reportgen build --quarter QUARTER` first", str(path)) from None
    except (ValueError, UnicodeDecodeError) as e:
        raise DeliveryError(f"not valid JSON ({e}); rebuild the edition", str(path)) from None
    for key in ("quarter", "edition", "title", "edition_date"):
        if not isinstance(manifest.get(key), str):
            raise DeliveryError(f"has no '{key}'; rebuild the edition", str(path), field=key)
    return manifest


def _pick_list(settings: Settings, list_name: str | None) -> MailList:
    lists = {ml.name: ml for ml in settings.mail_lists}
    if not lists:
        raise DeliveryError("no mailing lists: add a [mail.lists.NAME] table with to = [...]", settings.path)
    if list_name is None:
        if len(lists) > 1:
            raise DeliveryError(f"several mailing lists ({', '.join(lists)}); name one with --list", settings.path)
        list_name = next(iter(lists))
    if list_name not in lists:
        raise DeliveryError(f"no mailing list '{list_name}'; known: {', '.join(lists)}", settings.path, field="--list")
    return lists[list_name]


def _recipients(ml: MailList, settings: Settings, test_to: str | None, sender: str | None) -> list[str]:
    """Every bare address of the list, in order, once each; all addresses checked before anything is sent."""
    problems, bare = [], []
    checks = [(a, f"mail.lists.{ml.name}.{k}") for k in ("to", "cc", "bcc") for a in getattr(ml, k)]
    checks += [(settings.owner, "mail.owner")] if settings.owner else []
    checks += [(test_to, "--test-to")] if test_to is not None else []
    checks += [(sender, "REPORTGEN_MAIL_FROM")] if sender else []
    for addr, where in checks:
        try:
            b = validate_address(addr, where)
        except DeliveryError as e:
            problems.append(str(e))
            continue
        if where.startswith("mail.lists.") and b.lower() not in {x.lower() for x in bare}:
            bare.append(b)
    if problems:
        raise DeliveryError("nothing was sent: " + "; ".join(problems), settings.path)
    if test_to is not None:
        return [validate_address(test_to)]
    if not bare:
        raise DeliveryError(f"mailing list '{ml.name}' has no recipients", settings.path, field=f"mail.lists.{ml.name}")
    return bare


def _check_files(edition_dir: Path, manifest: dict, ml: MailList) -> None:
    """Every attachment exists and is the file the build wrote (sha256 in manifest.json)."""
    listed = manifest.get("files", {})
    for kind in ml.attach:
        name = ATTACHMENTS[kind][0]
        path = edition_dir / name
        if not path.is_file():
            raise DeliveryError(f"the edition has no {name}; rebuild it", str(edition_dir), field=f"attach {kind}")
        want = listed.get(name, {}).get("sha256")
        if want and sha256(path.read_bytes()).hexdigest() != want:
            raise DeliveryError(
                f"{name} is not the file this edition's build wrote (sha256 differs from manifest.json); rebuild it",
                str(path),
            )


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9@._+-]", "_", name).lstrip(".") or "_"


def send_edition(
    edition_dir: Path,
    settings: Settings,
    *,
    list_name: str | None = None,
    dry_run: bool = False,
    resend: bool = False,
    test_to: str | None = None,
    env: Mapping[str, str] = os.environ,
    connect: Callable | None = None,
    sleep: Callable[[float], object] = time.sleep,
    ledger: Ledger | None = None,
    log: logging.Logger | logging.LoggerAdapter | None = None,
    attempts: int | None = None,
    backoff: float = BACKOFF,
) -> DeliveryReport:
    """Send a built edition to one mailing list (the only one when `list_name` is None), each recipient once.

    All addresses are checked first. Recipients the ledger records as accepted for this edition and list are
    skipped unless `resend`. `test_to` sends one copy to that address alone, recorded as a test. `dry_run` writes
    the messages a real send would send as .eml files under edition_dir/outbox/LIST/ and records nothing.
    Temporary (4xx) replies and dropped connections are retried: at most `attempts` tries per recipient (default
    REPORTGEN_SMTP_RETRIES, else 4), waiting `backoff` * 2**n s between them through `sleep`. A permanent (5xx)
    refusal fails that recipient only; an unreachable server or a refused login fails the rest of the list.
    `connect(host, port, timeout=s)` makes the SMTP connection (default smtplib.SMTP, or SMTP_SSL for ssl).
    The ledger defaults to the workspace's output/.ledger.sqlite3. When anyone was not delivered, the settings'
    owner gets a notice (best effort, reported in `DeliveryReport.notice`).
    """
    if attempts is not None and attempts < 1:
        raise ValueError("attempts must be at least 1")
    log = log or LOG
    edition_dir = Path(edition_dir)
    manifest = read_manifest(edition_dir)
    ml = _pick_list(settings, list_name)
    sender_env = env.get("REPORTGEN_MAIL_FROM", "").strip()
    recipients = _recipients(ml, settings, test_to, sender_env)
    _check_files(edition_dir, manifest, ml)
    smtp = None if dry_run else SmtpSettings.from_env(env)
    attempts = attempts or (smtp.attempts if smtp else ATTEMPTS)
    sender = smtp.sender if smtp else (sender_env or "reportgen@localhost.localdomain")
    edition, quarter, test = manifest["edition"], manifest["quarter"], test_to is not None
    build_message(manifest, edition_dir, ml, sender, recipients[0], test=test)  # a bad template fails before sending
    report = DeliveryReport(ml.name, edition, test=test)
    ledger_path = ledger.path if ledger is not None else edition_dir.parent / LEDGER_NAME

    if dry_run:
        done = set()
        if not (resend or test) and ledger is not None:
            done = ledger.delivered(edition, ml.name)
        elif not (resend or test) and ledger_path.exists():  # a dry run never creates the ledger
            with Ledger(ledger_path) as book:
                done = book.delivered(edition, ml.name)
        outbox = report.outbox = edition_dir / "outbox" / _safe(ml.name)
        outbox.mkdir(parents=True, exist_ok=True)
        for old in outbox.glob("*.eml"):
            old.unlink()
        for i, rcpt in enumerate(recipients, 1):
            if rcpt in done:
                report.skipped.append(rcpt)
                continue
            path = outbox / f"{i:03d}-{_safe(rcpt)}.eml"
            path.write_bytes(message_bytes(build_message(manifest, edition_dir, ml, sender, rcpt, test=test)))
            report.written.append(path)
        log.info("%s: dry run, %d messages written to %s, nothing sent", ml.name, len(report.written), outbox)
        return report

    own = ledger is None
    with _SendLock(ledger_path.with_name(SEND_LOCK_NAME)):
        book = ledger or Ledger(ledger_path)
        try:
            done = set() if (resend or test) else book.delivered(edition, ml.name)
            todo = [r for r in recipients if r not in done]
            report.skipped = [r for r in recipients if r in done]
            log.info(
                "%s: edition %s %s, %d recipients, %d already have it, %d to send",
                ml.name,
                quarter,
                edition,
                len(recipients),
                len(report.skipped),
                len(todo),
            )
            session = _Session(smtp, connect, log)
            try:
                for n, rcpt in enumerate(todo):
                    data = message_bytes(build_message(manifest, edition_dir, ml, smtp.sender, rcpt, test=test))
                    try:
                        code, reply = _send_one(session, smtp.envelope_from, rcpt, data, sleep, attempts, backoff, log)
                    except _Fail as e:
                        book.record(edition, quarter, ml.name, rcpt, "failed", test, e.code, e.reply)
                        report.failed.append(Failure(rcpt, e.code, e.reply))
                        log.warning("%s: not delivered to %s: %s %s", ml.name, rcpt, e.code or "", e.reply)
                        if e.kind == "fatal":
                            for rest in todo[n + 1 :]:
                                book.record(edition, quarter, ml.name, rest, "failed", test, e.code, e.reply)
                                report.failed.append(Failure(rest, e.code, e.reply))
                            if todo[n + 1 :]:
                                log.warning("%s: %d more recipients not tried", ml.name, len(todo) - n - 1)
                            break
                        continue
                    book.record(edition, quarter, ml.name, rcpt, "sent", test, code, reply)
                    report.sent.append(rcpt)
                    log.info("%s: sent to %s (%s %s)", ml.name, rcpt, code, reply)
            finally:
                session.close()
        finally:
            if own:
                book.close()
    if report.failed and settings.owner and not test:
        report.notice = _notify_owner(settings.owner, manifest, report, smtp, connect, log)
    return report


def _notify_owner(owner, manifest, report, smtp, connect, log) -> str:
    """Best effort, one try: tell the owner who did not get the edition and why. Returns what happened."""
    msg = EmailMessage()
    n = len(report.failed)
    msg["Subject"] = f"reportgen: the {manifest['quarter']} briefing was not delivered to {n} recipient(s)"
    msg["From"] = formataddr(parse_address(smtp.sender))
    msg["To"] = owner
    msg["Date"] = format_datetime(datetime.now(timezone.utc))
    msg["Message-ID"] = make_msgid("reportgen", domain=smtp.envelope_from.rpartition("@")[2])
    msg["Auto-Submitted"] = "auto-generated"
    lines = [
        f"The {manifest['quarter']} briefing (edition {manifest['edition']}) to the mailing list '{report.list_name}'"
        " was not delivered to:",
        "",
        *[f"- {f.recipient}: {f.code or 'no reply'} {f.reply}".rstrip() for f in report.failed],
        "",
        f"Delivered now: {len(report.sent)}; had it already: {len(report.skipped)}.",
        "Running `reportgen send` again delivers only what is missing.",
    ]
    msg.set_content("\n".join(lines) + "\n", cte="quoted-printable")
    session = _Session(smtp, connect, log)
    to = validate_address(owner)
    try:
        session.send(smtp.envelope_from, to, message_bytes(msg))
    except _Fail as e:
        log.warning("could not send the failure notice to %s: %s %s", to, e.code or "", e.reply)
        return f"failure notice to {to} not sent ({e.code or 'no reply'} {e.reply})".replace(" )", ")")
    finally:
        session.close()
    log.info("failure notice sent to %s", to)
    return f"failure notice sent to {to}"
