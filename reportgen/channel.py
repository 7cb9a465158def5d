"""What delivering an edition means, whatever carries it: a parcel (the edition's files for one list), the
recipients, an outcome per recipient, and the loop that hands each recipient one copy exactly once.

A channel (mail in `deliver`; a webhook would be one more module) implements `Channel`; the ledger implements
`Journal`. This module knows neither SMTP nor SQLite.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import NamedTuple, Protocol

from .errors import DeliveryError

#: what `attach = [...]` in a mailing list may name: file in the edition folder, MIME type
ATTACHMENTS = {
    "pdf": ("briefing.pdf", "application/pdf"),
    "html": ("briefing.html", "text/html"),
    "xlsx": ("metrics.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
}


@dataclass(frozen=True)
class Parcel:
    """What to send to one list: the edition's manifest and the bytes of the files the list asks for, read once
    (and checked against the SHA-256 the build recorded), so every recipient gets the same edition."""

    edition_dir: Path
    manifest: dict
    list_name: str
    attachments: tuple[tuple[str, str, bytes], ...] = ()  # (file name for the reader, MIME type, bytes)
    test: bool = False

    @property
    def edition(self) -> str:
        return self.manifest["edition"]

    @property
    def quarter(self) -> str:
        return self.manifest["quarter"]


def load_parcel(edition_dir: Path, manifest: dict, list_name: str, attach: Sequence[str], test: bool = False) -> Parcel:
    """The parcel for one list: every attachment read once, refused unless it is a plain file of the edition (not a
    link elsewhere) whose SHA-256 is the one manifest.json recorded at build time."""
    edition_dir = Path(edition_dir)
    listed = manifest.get("files", {}) if isinstance(manifest.get("files"), dict) else {}
    out = []
    names = manifest.get("names") if isinstance(manifest.get("names"), dict) else {}
    for kind in attach:
        name, ctype = ATTACHMENTS[kind]
        name = names.get(kind, name)  # a briefing in one of several languages: briefing.zh-CN.pdf
        path = edition_dir / name
        if path.is_symlink() or not path.is_file():
            raise DeliveryError(f"the edition has no {name}; rebuild it", str(edition_dir), field=f"attach {kind}")
        data = path.read_bytes()
        want = (listed.get(name) or {}).get("sha256")
        if want and sha256(data).hexdigest() != want:
            raise DeliveryError(
                f"{name} is not the file this edition's build wrote (sha256 differs from manifest.json); rebuild it",
                str(path),
            )
        out.append((f"{manifest['quarter']}-{name}", ctype, data))
    return Parcel(edition_dir, manifest, list_name, tuple(out), test)


class Outcome(NamedTuple):
    """What became of one copy: `sent` with the receiver's reply, `failed`, or `in doubt` (handed over, but the
    receiver's answer could not be read: it may have the copy; `reply` says why); `stop` ends the list (the channel
    cannot reach anyone, or cannot be trusted to answer)."""

    status: str  # "sent" | "failed" | "in doubt"
    code: int | None = None
    reply: str = ""
    stop: bool = False


class Failure(NamedTuple):
    """A recipient that was not delivered: the receiver's code (None when there was no reply) and reply text."""

    recipient: str
    code: int | None
    reply: str


class Channel(Protocol):
    """Carries a parcel to one recipient at a time. `deliver` makes its own retries and calls `before_handover()`
    at the last moment before the copy is handed over (so a journal can record the attempt); it returns the
    Outcome and never raises for a refusal."""

    def deliver(self, parcel: Parcel, recipient: str, before_handover: Callable[[], None]) -> Outcome: ...

    def close(self) -> None: ...


class Journal(Protocol):
    """Keeps outcomes (the ledger): who has which edition of which list. `begin` records a copy the moment before
    it is handed over and `settle` its outcome; both raise a ReportgenError when they cannot write."""

    def delivered(self, edition: str, list_name: str) -> set[str]: ...

    def in_doubt(self, edition: str, list_name: str) -> set[str]: ...

    def begin(self, edition: str, quarter: str, list_name: str, recipient: str, test: bool = False) -> int: ...

    def settle(self, row: int, status: str, code: int | None = None, reply: str = "") -> None: ...

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
    ) -> None: ...


@dataclass
class DeliveryReport:
    """What happened to one list for one edition."""

    list_name: str
    edition: str
    sent: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # the journal says they already have this edition
    failed: list[Failure] = field(default_factory=list)
    in_doubt: list[str] = field(default_factory=list)  # handed over, outcome unknown: not sent again blindly
    stopped: str = ""  # why the list stopped early (the journal could not be written)
    written: list[Path] = field(default_factory=list)  # .eml files of a dry run
    outbox: Path | None = None  # where a dry run wrote them
    test: bool = False
    notice: str = ""  # what became of the failure notice to the owner

    @property
    def ok(self) -> bool:
        """True when everybody has the edition (nobody failed, nobody in doubt)."""
        return not (self.failed or self.in_doubt or self.stopped)

    def summary(self) -> str:
        """One line for people, e.g. `3 sent, 1 already had it, 1 failed: a@b.c (550 5.1.1 No such user)`."""
        if self.outbox is not None:
            n = len(self.written)
            parts = [f"dry run: {n} {'message' if n == 1 else 'messages'} written to {self.outbox}"]
        elif self.test:
            parts = [f"test copy sent to {self.sent[0]}" if self.sent else "test copy not sent"]
        else:
            parts = [f"{len(self.sent)} sent"]
        if not self.test:
            parts.append(f"{len(self.skipped)} already had it")
        if self.failed:
            parts.append(
                f"{len(self.failed)} failed: "
                + "; ".join(
                    f"{f.recipient} ({f.code} {f.reply})".replace(" )", ")")
                    if f.code
                    else f"{f.recipient} (no reply: {f.reply})".replace(": )", ")")
                    for f in self.failed
                )
            )
        if self.in_doubt:
            parts.append(
                f"{len(self.in_doubt)} in doubt (handed over, whether it arrived is unknown; check with them, then "
                f"`reportgen send --resend-to ADDRESS` if they lack it): {', '.join(self.in_doubt)}"
            )
        if self.notice:
            parts.append(self.notice)
        if self.stopped:
            parts.append(f"stopped: {self.stopped}")
        return ", ".join(parts)


def send_list(
    channel: Channel,
    parcel: Parcel,
    recipients: Sequence[str],
    journal: Journal,
    *,
    resend: bool = False,
    resend_to: Sequence[str] = (),
    log: logging.Logger | logging.LoggerAdapter | None = None,
) -> DeliveryReport:
    """Hand each recipient one copy of the parcel, skipping those the journal says have it or may have it (in
    doubt), unless `resend`, listed in `resend_to`, or a test copy.

    Each copy is recorded as pending the moment before it is handed over and settled the moment the outcome is
    known. When the journal cannot be written the list stops at once: a copy the receiver accepted but the journal
    could not settle stays in doubt, so a rerun does not mail that recipient again blindly. So does a copy whose
    outcome is `in doubt` (handed over, the receiver's answer unreadable): it stays pending in the journal and the
    list stops at once, saying how to resend it on purpose. An outcome with `stop` (the channel cannot reach anyone)
    fails the rest of the list."""
    from .errors import ReportgenError

    log = log or logging.getLogger("reportgen.channel")
    edition, quarter, name, test = parcel.edition, parcel.quarter, parcel.list_name, parcel.test
    report = DeliveryReport(name, edition, test=test)
    forced = {r.lower() for r in resend_to}
    if resend or test:
        done, doubt = set(), set()
    else:
        done, doubt = journal.delivered(edition, name), journal.in_doubt(edition, name)
    todo = [r for r in recipients if r.lower() in forced or (r not in done and r not in doubt)]
    report.skipped = [r for r in recipients if r in done and r not in todo]
    report.in_doubt = [r for r in recipients if r in doubt and r not in done and r not in todo]
    log.info(
        "%s: edition %s %s, %d %s, %d already have it, %d in doubt, %d to send",
        name,
        quarter,
        edition,
        len(recipients),
        "recipient" if len(recipients) == 1 else "recipients",
        len(report.skipped),
        len(report.in_doubt),
        len(todo),
    )
    try:
        for n, rcpt in enumerate(todo):
            rest = todo[n + 1 :]
            row: list[int] = []

            def handover(rcpt=rcpt, row=row):
                if not row:  # a retry of the same copy keeps its one pending record
                    row.append(journal.begin(edition, quarter, name, rcpt, test))

            try:
                outcome = channel.deliver(parcel, rcpt, handover)
            except ReportgenError as e:  # the journal could not record the copy: it was not handed over
                report.stopped = f"{e}; nothing was sent to {rcpt}"
                report.failed += [Failure(r, None, "not tried: the ledger cannot be written") for r in [rcpt, *rest]]
                log.error("%s: %s", name, report.stopped)
                break
            doubtful = outcome.status == "in doubt"
            status = "pending" if doubtful else outcome.status  # in doubt stays pending: a rerun skips it
            try:
                if row:
                    journal.settle(row[0], status, outcome.code, outcome.reply)
                else:
                    journal.record(edition, quarter, name, rcpt, status, test, outcome.code, outcome.reply)
            except ReportgenError as e:
                accepted = outcome.status == "sent"
                if accepted or doubtful:
                    report.in_doubt.append(rcpt)
                else:
                    report.failed.append(Failure(rcpt, outcome.code, outcome.reply))
                if accepted:
                    what = (
                        f"the copy for {rcpt} was accepted ({outcome.code} {outcome.reply}) but could not be "
                        "recorded: it stays in doubt, and a rerun does not mail it again"
                    )
                elif doubtful:
                    what = f"{outcome.reply}; the copy for {rcpt} stays in doubt, and a rerun does not mail it again"
                else:
                    what = f"the failure for {rcpt} could not be recorded"
                report.stopped = f"{e}; {what}"
                report.failed += [Failure(r, None, "not tried: the ledger cannot be written") for r in rest]
                log.error("%s: %s", name, report.stopped)
                break
            if doubtful:  # the receiver may have it: never sent again blindly, and nobody else is tried
                report.in_doubt.append(rcpt)
                if test:
                    what = f"check whether it arrived before `reportgen send --quarter {quarter} --test-to {rcpt}`"
                else:
                    what = (
                        f"{rcpt} is recorded as in doubt and a rerun does not mail them again; once you know they "
                        f"lack it, `reportgen send --quarter {quarter} --list {name} --resend-to {rcpt}` sends it"
                    )
                report.stopped = f"{outcome.reply}. It may have arrived: {what}" + (
                    f"; the list stopped, {len(rest)} not tried" if rest else ""
                )
                log.error("%s: %s", name, report.stopped)
                why = f"not tried: the list stopped after the copy for {rcpt} was left in doubt"
                for other in rest:
                    report.failed.append(Failure(other, None, why))
                    try:
                        journal.record(edition, quarter, name, other, "failed", test, None, why)
                    except ReportgenError:  # not recording a copy never handed over costs nothing: it is sent later
                        pass
                break
            if outcome.status == "sent":
                report.sent.append(rcpt)
                log.info("%s: sent to %s (%s %s)", name, rcpt, outcome.code, outcome.reply)
                continue
            report.failed.append(Failure(rcpt, outcome.code, outcome.reply))
            log.warning("%s: not delivered to %s: %s %s", name, rcpt, outcome.code or "", outcome.reply)
            if outcome.stop:
                for other in rest:
                    journal.record(edition, quarter, name, other, "failed", test, outcome.code, outcome.reply)
                    report.failed.append(Failure(other, outcome.code, outcome.reply))
                if rest:
                    log.warning("%s: %d more recipients not tried", name, len(rest))
                break
    finally:
        channel.close()
    return report
