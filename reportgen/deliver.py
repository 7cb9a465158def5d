"""Mail, the delivery channel: addresses, server settings from the environment, one message per recipient built
from an edition, SMTP with retries, the failure notice to the owner. Outcomes go to whoever called (the ledger
keeps them); nothing here writes to the workspace."""

from __future__ import annotations

import base64
import enum
import html
import logging
import re
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, getaddresses, make_msgid, parseaddr
from pathlib import Path
from typing import TYPE_CHECKING

from .channel import DeliveryReport, Outcome, Parcel, load_parcel
from .errors import DeliveryError, ReportgenError
from .i18n import Text
from .model import SUPERSCRIPT

if TYPE_CHECKING:
    from .config import MailList, Settings

LOG = logging.getLogger("reportgen.deliver")
SECURITY_PORTS = {"starttls": 587, "ssl": 465, "none": 25}
#: a second attempt waits BACKOFF s, the third 2 * BACKOFF s, ... (at most ATTEMPTS tries per recipient)
ATTEMPTS = 4
BACKOFF = 2.0
TIMEOUT = 30.0  # seconds per SMTP command
#: RFC 5321 4.5.3.2.6: a client waits 10 minutes for the reply to the end of DATA (servers scan messages then)
DATA_TIMEOUT = 600.0
#: the longest one SMTP conversation step may take, whatever the server trickles (REPORTGEN_SMTP_DEADLINE): the
#: connection with its greeting, TLS and login, or one message from MAIL FROM to the reply after DATA
DEADLINE = 900.0

# RFC 5321 dot-atom local part and an LDH domain of at least two labels whose last label is not all digits.
# Deliberately stricter than RFC 5322 (no quoted local parts, comments, IP literals or non-ASCII addresses).
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*\.(?=[A-Za-z0-9-]*[A-Za-z]){_LABEL}")
_NAMED = re.compile(r"(?P<name>[^<>]*?)\s*<(?P<addr>[^<>]*)>")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


# -- addresses and settings ---------------------------------------------------------------------------------------


def _code_reply(code, reply: str) -> str:
    """A server's reply as people read it: "450 4.2.0 Busy", or the reason alone when no code came back."""
    return " ".join(str(x) for x in (code, reply) if x)


def _ascii_int(text: str) -> bool:
    """Digits 0-9 only (str.isdigit also takes superscripts and other scripts' digits)."""
    return bool(text) and text.isascii() and text.isdigit()


def _valid_host(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    return len(host) <= 253 and all(re.fullmatch(_LABEL, label) for label in labels) and not labels[-1].isdigit()


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


#: valid values put in place of a wrong one, to look for the next problem (never used to send)
_STAND_INS = {
    "REPORTGEN_SMTP_HOST": "localhost",
    "REPORTGEN_SMTP_SECURITY": "starttls",
    "REPORTGEN_SMTP_PORT": "587",
    "REPORTGEN_MAIL_FROM": "reportgen@example.invalid",
    "REPORTGEN_SMTP_RETRIES": "3",
    "REPORTGEN_SMTP_DEADLINE": "30",
}


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
    deadline: float = DEADLINE  # seconds for one SMTP conversation step (REPORTGEN_SMTP_DEADLINE)

    @classmethod
    def problems(cls, env: Mapping[str, str]) -> list[DeliveryError]:
        """Every problem of the mail settings at once (`from_env` stops at the first): each variable found wrong
        is set to a stand-in and the settings are read again, until they read or a problem has no stand-in."""
        env, found = dict(env), []
        while True:
            try:
                cls.from_env(env)
                return found
            except DeliveryError as e:
                found.append(e)
                if e.field not in _STAND_INS or env.get(e.field) == _STAND_INS[e.field]:
                    return found
                env[e.field] = _STAND_INS[e.field]

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SmtpSettings:
        """Read REPORTGEN_SMTP_* and REPORTGEN_MAIL_FROM; DeliveryError names the variable to fix and never quotes
        any part of the password."""
        host = env.get("REPORTGEN_SMTP_HOST", "").strip()
        if not host:
            raise DeliveryError(
                "no mail server: set REPORTGEN_SMTP_HOST (e.g. smtp.example.com) in the environment, or use --dry-run",
                field="REPORTGEN_SMTP_HOST",
            )
        if not _valid_host(host):
            raise DeliveryError(
                f"'{host}' is not a host name or IP address (e.g. smtp.example.com or 192.0.2.10)",
                field="REPORTGEN_SMTP_HOST",
            )
        security = env.get("REPORTGEN_SMTP_SECURITY", "").strip().lower() or "starttls"
        if security not in SECURITY_PORTS:
            raise DeliveryError(f"must be starttls, ssl or none, not '{security}'", field="REPORTGEN_SMTP_SECURITY")
        port_text = env.get("REPORTGEN_SMTP_PORT", "").strip() or str(SECURITY_PORTS[security])
        if not _ascii_int(port_text) or not 0 < int(port_text) < 65536:
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
        if not user.isascii() or _CONTROL.search(user):
            raise DeliveryError("must be plain ASCII text without control characters", field="REPORTGEN_SMTP_USER")
        if not password.isascii() or _CONTROL.search(password):
            # Python's SMTP client sends AUTH credentials as ASCII; say so without showing any of the password
            raise DeliveryError(
                "has a character outside plain ASCII (or a control character), which Python's SMTP login cannot "
                "send; use an ASCII password or an app password",
                field="REPORTGEN_SMTP_PASSWORD",
            )
        if user and security == "none" and host.lower() not in _LOOPBACK:
            raise DeliveryError(
                f"would send the password unencrypted to {host}; use starttls or ssl (none is for a local test server)",
                field="REPORTGEN_SMTP_SECURITY",
            )
        retries = env.get("REPORTGEN_SMTP_RETRIES", "").strip() or str(ATTEMPTS)
        if not _ascii_int(retries) or not 1 <= int(retries) <= 10:
            raise DeliveryError(f"must be 1 to 10 tries per recipient, not '{retries}'", field="REPORTGEN_SMTP_RETRIES")
        deadline = env.get("REPORTGEN_SMTP_DEADLINE", "").strip() or str(int(DEADLINE))
        if not _ascii_int(deadline) or not 1 <= int(deadline) <= 86400:
            raise DeliveryError(
                f"must be a number of seconds from 1 to 86400, not '{deadline}'", field="REPORTGEN_SMTP_DEADLINE"
            )
        return cls(host, int(port_text), security, sender, user, password, int(retries), float(deadline))

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
def _edition_date(manifest: dict, t: Text) -> str:
    """The edition date as the list's language writes it (2026-11-30; 2026年11月30日)."""
    from datetime import date

    try:
        return t.date(date.fromisoformat(manifest["edition_date"]))
    except (TypeError, ValueError):
        return str(manifest["edition_date"])


def _quarter(manifest: dict, t: Text) -> str:
    """The edition's quarter as the list's language writes it (2025Q2; 2025年第二季度)."""
    from .periods import Quarter

    try:
        return t.quarter(Quarter.parse(manifest["quarter"]))
    except ReportgenError:
        return str(manifest["quarter"])


def _subject(template: str, manifest: dict, t: Text | None = None) -> str:
    t = t or Text()
    try:
        text = template.format_map(
            {"title": manifest["title"], "quarter": _quarter(manifest, t), "edition_date": _edition_date(manifest, t)}
        )
    except (KeyError, IndexError, ValueError) as e:
        raise DeliveryError(f"the subject '{template}' cannot be filled in ({e}); use {{title}}, {{quarter}}") from None
    return " ".join(text.split())  # a line break in a title never becomes a header line


def _fmt(addrs) -> str:
    return ", ".join(formataddr(parse_address(a)) for a in addrs)


def build_message(
    manifest: dict,
    edition_dir: Path,
    mail_list: MailList,
    sender: str,
    recipient: str,
    *,
    test: bool = False,
    text: Text | None = None,
    parcel: Parcel | None = None,
) -> EmailMessage:
    """One copy of the edition for `recipient`: subject from the list's template, the key findings as plain text
    and as an HTML alternative, the attachments the list asks for. To/Cc show the list; Bcc never appears.
    A `test` copy is addressed to the recipient alone and its subject starts with [TEST]."""
    t = text or Text()
    _ = t.gettext
    edition_dir = Path(edition_dir)
    msg = EmailMessage()
    preview = bool(manifest.get("preview"))  # the owner's copy of an edition that awaits approval
    prefix = _("[PREVIEW for approval] ") if preview else (_("[TEST] ") if test else "")
    msg["Subject"] = prefix + _subject(mail_list.subject, manifest, t)
    msg["From"] = formataddr(parse_address(sender, "REPORTGEN_MAIL_FROM"))
    msg["To"] = _fmt([recipient] if test or not mail_list.to else mail_list.to)
    if mail_list.cc and not test:
        msg["Cc"] = _fmt(mail_list.cc)
    msg["Date"] = format_datetime(datetime.now(timezone.utc))
    msg["Message-ID"] = make_msgid("reportgen", domain=validate_address(sender).rpartition("@")[2])
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to a scheduled mailing
    msg["X-Reportgen-Edition"] = f"{manifest['quarter']} {manifest['edition']}"

    title, date = manifest["title"], _edition_date(manifest, t)
    findings, notes = list(manifest.get("findings", [])), list(manifest.get("notes", []))
    if parcel is None:
        parcel = load_parcel(edition_dir, manifest, mail_list.name, mail_list.attach, test)
    files = parcel.attachments
    names = [name for name, _ctype, _data in files]
    none = _("(none in this edition)")
    edition_of = _("Edition of {date}.").format(date=date)
    headline = manifest.get("headline", "")
    changed = list(manifest.get("changes", []))
    since = (manifest.get("changes_box") or {}).get("since", "")
    changed_title = _("What changed since the edition of {date}:").format(date=since) if since else _("What changed:")
    body = [title, edition_of, ""]
    if preview:
        body += [
            _(
                "A preview for approval: the mailing lists receive this edition after `reportgen approve --quarter "
                "{quarter}`."
            ).format(quarter=manifest["quarter"]),
            "",
        ]
    body += [headline, ""] if headline else []
    body += [changed_title, *(f"- {c}" for c in changed), ""] if changed else []
    body += [_("Key findings:"), ""]
    body += [f"{i}. {s}" for i, s in enumerate(findings, 1)] or [none]
    body += ["", *notes] if notes else []
    marks = [f"{SUPERSCRIPT.get(f['mark'], f['mark'])} {f['text']}" for f in manifest.get("footnotes", [])]
    marks_line = _("Marks: {marks}.").format(marks=t.seq(marks)) if marks else ""
    body += ["", marks_line] if marks else []
    attached = _("Attached: {files}.").format(files=_(", ").join(names)) if names else ""
    body += ["", attached or _("The briefing is not attached to this message.")]
    # Quoted-printable keeps the message 7-bit clean, so servers without 8BITMIME pass it on unchanged.
    msg.set_content("\n".join(body) + "\n", cte="quoted-printable")
    esc = html.escape
    items = "".join(f"<li>{esc(s)}</li>" for s in findings) or f"<li>{esc(none)}</li>"
    lead = f"<p><strong>{esc(headline)}</strong></p>" if headline else ""
    if changed:
        lead += f"<h3>{esc(changed_title.rstrip(':'))}</h3><ul>{''.join(f'<li>{esc(c)}</li>' for c in changed)}</ul>"
    extra = "".join(f'<p style="color:#555">{esc(n)}</p>' for n in notes)
    if marks:
        extra += f'<p style="color:#555;font-size:smaller">{esc(marks_line)}</p>'
    attached_html = f"<p>{esc(attached)}</p>" if names else ""
    msg.add_alternative(
        f'<!DOCTYPE html><html><body style="font-family:sans-serif"><h2>{esc(title)}</h2><p>{esc(edition_of)}'
        f"</p>{lead}<h3>{esc(_('Key findings'))}</h3><ol>{items}</ol>{extra}{attached_html}</body></html>\n",
        subtype="html",
        cte="quoted-printable",
    )
    for name, ctype, data in files:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg


def message_bytes(msg: EmailMessage) -> bytes:
    """The message as sent on the wire: CRLF line ends, 7-bit."""
    return msg.as_bytes(policy=policy.SMTP)


# -- SMTP ---------------------------------------------------------------------------------------------------------
class Kind(enum.Enum):
    """How bad an SMTP failure is: TEMPORARY is retried, PERMANENT fails this recipient, FATAL the whole list.
    IN_DOUBT: the message and its end were handed over but no reply could be read (the deadline, the read timeout,
    a reply cut off or garbled), so the server may have accepted it: never retried, and the list stops."""

    TEMPORARY = "temporary"
    PERMANENT = "permanent"
    FATAL = "fatal"
    IN_DOUBT = "in doubt"


class _Fail(Exception):
    """One SMTP step failed, with the server's code and reply and how bad it is."""

    def __init__(self, code: int | None, reply: str, kind: Kind, at_connect: bool = False):
        super().__init__(code, reply)
        self.code, self.reply, self.kind, self.at_connect = code, reply, kind, at_connect


def _text(resp) -> str:
    raw = resp.decode("utf-8", "replace") if isinstance(resp, bytes) else str(resp)
    return " ".join(raw.split())


def _kind(code: int, worst: Kind = Kind.PERMANENT) -> Kind:
    """TEMPORARY for a 4xx reply, else `worst`."""
    return Kind.TEMPORARY if 400 <= code < 500 else worst


def _open_failure(e: OSError, where: str) -> tuple[int | None, str, Kind]:
    """(code, reply, kind) for a failure to connect, greet, start TLS or log in. 4xx replies and network errors
    are temporary; anything else will not get better by retrying, so it stops the list."""
    if isinstance(e, smtplib.SMTPAuthenticationError):
        hint = "; check REPORTGEN_SMTP_USER and REPORTGEN_SMTP_PASSWORD" if e.smtp_code >= 500 else ""
        return e.smtp_code, f"authentication refused: {_text(e.smtp_error)}{hint}", _kind(e.smtp_code, Kind.FATAL)
    if isinstance(e, smtplib.SMTPResponseException):  # e.g. a greeting other than 220, or STARTTLS refused
        return e.smtp_code, _text(e.smtp_error), _kind(e.smtp_code, Kind.FATAL)
    if isinstance(e, smtplib.SMTPNotSupportedError):
        fix = (
            "unset REPORTGEN_SMTP_USER or use the submission port"
            if "AUTH" in str(e)
            else "check REPORTGEN_SMTP_SECURITY"
        )
        return None, f"{where}: {str(e).rstrip('.')}; {fix}", Kind.FATAL
    if isinstance(e, ssl.SSLCertVerificationError):
        return None, f"{where}: TLS certificate not trusted ({e.verify_message})", Kind.FATAL
    if isinstance(e, ssl.SSLError):
        return None, f"{where}: TLS failed ({e}); check REPORTGEN_SMTP_SECURITY and REPORTGEN_SMTP_PORT", Kind.FATAL
    if isinstance(e, smtplib.SMTPServerDisconnected):
        return None, f"{where} closed the connection", Kind.TEMPORARY
    if isinstance(e, smtplib.SMTPException):  # e.g. no login mechanism in common
        return None, f"{where}: {e}", Kind.FATAL
    return None, f"cannot connect to {where}: {type(e).__name__}: {e}", Kind.TEMPORARY  # refused, unreachable, timeout


class _Watchdog:
    """Ends an SMTP conversation step that outlives its deadline: each read has a timeout, but a server that
    trickles a byte every few seconds never trips it, so when the deadline passes the socket is shut down and the
    blocked read returns (with whatever part of a reply had come, or nothing).

    Once the `with` block is left, `fired` is final: True when the deadline passed first, and then whatever the
    step read is not to be trusted (a reply cut off by the shutdown reads as "2" or "25") and the connection is
    dead. The caller checks it after the block, whatever the step returned."""

    def __init__(self, seconds: float, get_sock):
        self.seconds, self.get_sock, self.fired = seconds, get_sock, False
        self._timer: threading.Timer | None = None
        self._done = threading.Event()
        self._lock = threading.Lock()

    def _fire(self):
        with self._lock:
            if self._done.is_set():  # the step ended first
                return
            self.fired = True
        while not self._done.is_set():  # the socket may not exist yet (still connecting)
            sock = self.get_sock()
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            self._done.wait(0.05)

    def __enter__(self) -> _Watchdog:
        self._timer = threading.Timer(self.seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        with self._lock:
            self._done.set()
        self._timer.cancel()


#: a reply line (RFC 5321 4.2): a code, then "-" and text (more lines follow), or SP and text or nothing (the last)
_REPLY_LINE = re.compile(rb"([2-5][0-9][0-9])(?:([ -])([^\r\n]*))?\r?\n")


def _read_reply(conn, got: bytearray) -> tuple[int | None, bytes]:
    """One SMTP reply, read strictly: (code, text) of a well-formed reply (every line complete, one 3-digit code),
    (None, what came) for anything else. Every byte read is appended to `got`, so a caller that gets an exception
    (timeout, reset, the end of the connection) knows whether part of a reply had come. smtplib's own reader takes
    a line cut off by the end of the connection for a whole reply: "25" then EOF reads as code 25."""
    if conn.file is None:
        conn.file = conn.sock.makefile("rb")
    code, lines = None, []
    while True:
        line = conn.file.readline(8193)
        got += line
        if not line.endswith(b"\n"):  # the end of the connection (possibly in the middle of a line)
            raise smtplib.SMTPServerDisconnected("the connection ended" + (" inside the reply" if got else ""))
        m = _REPLY_LINE.fullmatch(line)
        if m is None or code not in (None, int(m.group(1))):
            return None, bytes(got)
        code = int(m.group(1))
        lines.append((m.group(3) or b"").strip())
        if m.group(2) != b"-":
            return code, b"\n".join(lines)


def _with_end(data: bytes) -> bytes:
    """The message as it goes after DATA: lines starting with a dot doubled, then CRLF . CRLF (RFC 5321 4.5.2)."""
    q = re.sub(rb"(?m)^\.", b"..", data)
    return (q if q.endswith(b"\r\n") else q + b"\r\n") + b".\r\n"


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

    def _overdue(self, step: str) -> _Fail:
        return _Fail(
            None,
            f"{self.smtp.host}:{self.smtp.port} did not finish {step} within {self.smtp.deadline:g} s "
            "(REPORTGEN_SMTP_DEADLINE)",
            Kind.FATAL,
        )

    def open(self) -> None:
        """Connect, greet, STARTTLS and log in as the settings say, within the deadline; raises _Fail."""
        if self.conn is not None:
            return
        s = self.smtp
        self.log.info("connecting to %s:%s (%s%s)", s.host, s.port, s.security, f", as {s.user}" if s.user else "")
        conn = None
        holder: list = []
        failure = None
        with _Watchdog(s.deadline, lambda: getattr(holder[0], "sock", None) if holder else None) as dog:
            try:
                if self.connect is not None:
                    conn = self.connect(s.host, s.port, timeout=TIMEOUT)
                    holder.append(conn)
                else:
                    # made unconnected, then connected, so the watchdog can reach the socket during the greeting
                    if s.security == "ssl":
                        conn = smtplib.SMTP_SSL(timeout=TIMEOUT, context=ssl.create_default_context())
                    else:
                        conn = smtplib.SMTP(timeout=TIMEOUT)
                    holder.append(conn)
                    conn.connect(s.host, s.port)
                conn.ehlo_or_helo_if_needed()
                if s.security == "starttls":
                    conn.starttls(context=ssl.create_default_context())
                    conn.ehlo()
                if s.user:
                    conn.login(s.user, s.password)
            except (OSError, UnicodeError) as e:  # smtplib's exceptions are OSErrors too
                code, reply, kind = _open_failure(e, f"{s.host}:{s.port}")
                failure = self._fail(code, reply, kind, at_connect=True)
        if dog.fired:  # a step the deadline cut may even have "succeeded" on half a reply: the connection is dead
            if holder:
                holder[0].close()
            raise self._overdue("the greeting, TLS and login")
        self.conn = conn
        if failure is not None:
            self.close()
            raise failure

    def send(self, envelope_from: str, rcpt: str, data: bytes, before_data=None) -> tuple[int, str]:
        """MAIL, RCPT, DATA for one recipient: the server's (code, reply) on acceptance; raises _Fail.

        `before_data()` is called once the server has accepted the recipient, right before the message goes; if it
        raises, the transaction is abandoned (nothing is sent) and the exception passes on. Two steps, each bounded
        by the deadline: the message up to and including its end (CRLF . CRLF), then the server's reply to it,
        each read of which may take DATA_TIMEOUT (RFC 5321: 10 minutes). Until the end is sent, a failure is an
        ordinary one (the server cannot have accepted the message); after it, a deadline, a read timeout or a reply
        cut off or garbled is Kind.IN_DOUBT (the server may have accepted it: never retried). A server that closes
        the connection without a byte of reply did not take the message (RFC 5321 6.1: a server takes
        responsibility by its 250), so it is sent again."""
        self.open()
        conn, s = self.conn, self.smtp
        where = f"{s.host}:{s.port}"
        failure = None
        with _Watchdog(s.deadline, lambda: conn.sock) as dog:
            try:
                for verb, call, good in (
                    ("MAIL FROM", lambda: conn.mail(envelope_from), (250,)),
                    ("RCPT TO", lambda: conn.rcpt(rcpt), (250, 251)),
                    ("DATA", lambda: conn.docmd("data"), (354,)),
                ):
                    if verb == "DATA" and before_data is not None:
                        try:
                            before_data()
                        except BaseException:
                            self.close()
                            raise
                    code, resp = call()
                    if dog.fired:
                        break
                    if code not in good:
                        # 5xx to MAIL FROM refuses the sender, i.e. every recipient: stop the list.
                        kind = Kind.FATAL if verb == "MAIL FROM" and code >= 500 else _kind(code)
                        self._reset(code)
                        raise self._fail(code, resp, kind)
                else:
                    conn.send(_with_end(data))  # raises SMTPServerDisconnected unless all of it, its end too, went
            except _Fail as e:  # refused; the session was reset (or closed after a 421)
                failure = e
            except OSError as e:  # smtplib's exceptions are OSErrors too
                self.drop()
                failure = self._fail(None, f"connection lost: {type(e).__name__}: {e}".rstrip(": "), Kind.TEMPORARY)
        if dog.fired:  # nothing the server said in this step counts: it cannot have accepted the message
            self.drop()
            raise self._overdue(f"the message to {rcpt}")
        if failure is not None:
            raise failure

        # The message and its end are on their way: from here the server may accept it whatever we read next.
        got, error, code, resp = bytearray(), None, None, b""
        with _Watchdog(s.deadline, lambda: conn.sock) as dog:
            try:
                if conn.sock is not None:
                    conn.sock.settimeout(DATA_TIMEOUT)
                code, resp = _read_reply(conn, got)
            except OSError as e:
                error = e
        if not (dog.fired or error is not None or code is None):
            if conn.sock is not None:
                conn.sock.settimeout(TIMEOUT)
            if 200 <= code < 300:
                return code, self._scrub(_text(resp))
            self._reset(code)
            raise self._fail(code, resp, _kind(code))
        self.drop()  # no QUIT: the server may be stuck, and the socket still waits DATA_TIMEOUT per read
        if error is not None and not got and not dog.fired and not isinstance(error, TimeoutError):
            raise self._fail(None, f"{where} closed the connection after the message, before any reply", Kind.TEMPORARY)
        came = self._scrub(_text(bytes(got))) if got else ""
        if dog.fired:
            why = f"its reply did not come within {s.deadline:g} s (REPORTGEN_SMTP_DEADLINE)"
        elif isinstance(error, TimeoutError):
            why = f"no reply came within {DATA_TIMEOUT:g} s (RFC 5321's wait for the reply to a message)"
        elif error is not None:
            why = "the connection ended inside its reply"
        else:
            why = "its reply is not an SMTP reply"
        why += f" (what came: '{came[:80]}')" if came else ""
        raise _Fail(None, f"{where} took the message to {rcpt}, but {why}", Kind.IN_DOUBT)

    def _reset(self, code: int) -> None:
        if code == 421:  # the server is closing the channel
            self.close()
            return
        conn = self.conn
        with _Watchdog(self.smtp.deadline, lambda: conn.sock):  # RSET's reply may trickle too
            try:
                conn.rset()
                return
            except (smtplib.SMTPException, OSError):
                pass
        self.drop()

    def close(self) -> None:
        """QUIT and close, within the deadline (a server may trickle its goodbye too)."""
        conn, self.conn = self.conn, None
        if conn is not None:
            with _Watchdog(self.smtp.deadline, lambda: conn.sock):
                _close(conn)

    def drop(self) -> None:
        """Close the connection without a QUIT (it is dead, or its server cannot be trusted to answer)."""
        if self.conn is not None:
            try:
                self.conn.close()
            except OSError:
                pass
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


def _send_one(session, envelope_from, rcpt, data, sleep, attempts, backoff, log, before_data=None) -> tuple[int, str]:
    """Deliver one copy with at most `attempts` tries, waiting backoff * 2**n s between them; raises _Fail."""
    attempt = 1
    while True:
        try:
            return session.send(envelope_from, rcpt, data, before_data)
        except _Fail as e:
            if e.kind is not Kind.TEMPORARY:
                raise
            if attempt >= attempts:
                # Still failing to connect: the server is unreachable for everyone, not only for this recipient.
                raise _Fail(e.code, e.reply, Kind.FATAL if e.at_connect else Kind.PERMANENT, e.at_connect) from None
            delay = backoff * 2 ** (attempt - 1)
            log.info(
                "%s: temporary failure (%s); try %d of %d in %g s",
                rcpt,
                _code_reply(e.code, e.reply),
                attempt + 1,
                attempts,
                delay,
            )
            sleep(delay)
            attempt += 1


# -- the mail channel ---------------------------------------------------------------------------------------------
def pick_list(settings: Settings, list_name: str | None) -> MailList:
    """The mailing list `list_name` (the only one when None)."""
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


def recipients(ml: MailList, settings: Settings, test_to: str | None, sender: str | None) -> list[str]:
    """Every bare address of the list, in order, once each; all addresses checked before anything is sent."""
    problems, bare = [], []
    checks = [(a, f"mail.lists.{ml.name}.{k}") for k in ("to", "cc", "bcc") for a in getattr(ml, k)]
    checks += [(settings.owner, "mail.owner")] if settings.owner else []
    if test_to is not None:  # from the command line, not the file: said without the file's name
        validate_address(test_to, "--test-to")
    if sender:  # the sender is the environment's, not the workspace's: its problem names the variable alone
        parse_address(sender, "REPORTGEN_MAIL_FROM")
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


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9@._+-]", "_", name).lstrip(".") or "_"


def write_outbox(parcel: Parcel, ml: MailList, sender: str, rcpts: list[str], skip: set[str], text: Text | None = None):
    """A dry run: the messages a real send would send, as .eml files under the edition's outbox/LIST/ (replacing
    that folder's earlier ones). Returns the report."""
    report = DeliveryReport(ml.name, parcel.edition, test=parcel.test)
    outbox = report.outbox = parcel.edition_dir / "outbox" / _safe(ml.name)
    outbox.mkdir(parents=True, exist_ok=True)
    for old in outbox.glob("*.eml"):
        old.unlink()
    for i, rcpt in enumerate(rcpts, 1):
        if rcpt in skip:
            report.skipped.append(rcpt)
            continue
        path = outbox / f"{i:03d}-{_safe(rcpt)}.eml"
        msg = build_message(
            parcel.manifest, parcel.edition_dir, ml, sender, rcpt, test=parcel.test, text=text, parcel=parcel
        )
        path.write_bytes(message_bytes(msg))
        report.written.append(path)
    return report


class MailChannel:
    """The `channel.Channel` that carries an edition by SMTP, one copy per recipient, retrying temporary failures
    (at most `attempts` tries, waiting `backoff` * 2**n s through `sleep`). `connect(host, port, timeout=s)` makes
    the connection (default smtplib.SMTP, or SMTP_SSL for ssl)."""

    def __init__(
        self,
        smtp: SmtpSettings,
        mail_list: MailList,
        *,
        connect: Callable | None = None,
        sleep: Callable[[float], object] = time.sleep,
        attempts: int | None = None,
        backoff: float = BACKOFF,
        log: logging.Logger | logging.LoggerAdapter | None = None,
        text: Text | None = None,
    ):
        if attempts is not None and attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.smtp, self.ml, self.sleep, self.backoff = smtp, mail_list, sleep, backoff
        self.attempts = attempts or smtp.attempts
        self.log = log or LOG
        self.text = text
        self.session = _Session(smtp, connect, self.log)

    def deliver(self, parcel: Parcel, recipient: str, before_handover) -> Outcome:
        msg = build_message(
            parcel.manifest,
            parcel.edition_dir,
            self.ml,
            self.smtp.sender,
            recipient,
            test=parcel.test,
            text=self.text,
            parcel=parcel,
        )
        try:
            code, reply = _send_one(
                self.session,
                self.smtp.envelope_from,
                recipient,
                message_bytes(msg),
                self.sleep,
                self.attempts,
                self.backoff,
                self.log,
                before_handover,
            )
        except _Fail as e:
            if e.kind is Kind.IN_DOUBT:  # handed over, no readable reply: the list stops, nothing is resent
                return Outcome("in doubt", e.code, e.reply, stop=True)
            return Outcome("failed", e.code, e.reply, stop=e.kind is Kind.FATAL)
        return Outcome("sent", code, reply)

    def close(self) -> None:
        self.session.close()


def notify_owner(owner, manifest, report, smtp, connect=None, log=None, text: Text | None = None) -> str:
    """Best effort, one try: tell the owner who did not get the edition and why. Returns what happened."""
    _ = (text or Text()).gettext
    log = log or LOG
    msg = EmailMessage()
    n = len(report.failed) + len(report.in_doubt)
    msg["Subject"] = _("reportgen: the {quarter} briefing was not delivered to {n} recipient(s)").format(
        quarter=manifest["quarter"], n=n
    )
    msg["From"] = formataddr(parse_address(smtp.sender))
    msg["To"] = owner
    msg["Date"] = format_datetime(datetime.now(timezone.utc))
    msg["Message-ID"] = make_msgid("reportgen", domain=smtp.envelope_from.rpartition("@")[2])
    msg["Auto-Submitted"] = "auto-generated"
    no_reply = _("no reply")
    lines = [
        _("The {quarter} briefing (edition {edition}) to the mailing list '{list}' was not delivered to:").format(
            quarter=manifest["quarter"], edition=manifest["edition"], list=report.list_name
        ),
        "",
        *[f"- {f.recipient}: {f.code or no_reply} {f.reply}".rstrip() for f in report.failed],
        *[f"- {r}: " + _("in doubt (handed over; the outcome was not recorded)") for r in report.in_doubt],
        "",
        _("Delivered now: {sent}; had it already: {skipped}.").format(
            sent=len(report.sent), skipped=len(report.skipped)
        ),
        _("Running `reportgen send` again delivers only what is missing."),
    ]
    msg.set_content("\n".join(lines) + "\n", cte="quoted-printable")
    session = _Session(smtp, connect, log)
    to = validate_address(owner)
    try:
        session.send(smtp.envelope_from, to, message_bytes(msg))
    except _Fail as e:
        log.warning("could not send the failure notice to %s: %s", to, _code_reply(e.code, e.reply))
        if e.kind is Kind.IN_DOUBT:
            return f"failure notice to {to} in doubt ({e.reply})"
        return f"failure notice to {to} not sent ({e.code or 'no reply'} {e.reply})".replace(" )", ")")
    finally:
        session.close()
    log.info("failure notice sent to %s", to)
    return f"failure notice sent to {to}"
