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
    """What to send to one list: the edition's manifest and the files the list asks for (checked against the
    SHA-256 the build recorded), named for the reader."""

    edition_dir: Path
    manifest: dict
    list_name: str
    attach: tuple[str, ...]
    test: bool = False

    @property
    def edition(self) -> str:
        return self.manifest["edition"]

    @property
    def quarter(self) -> str:
        return self.manifest["quarter"]

    def files(self) -> list[tuple[str, str, bytes]]:
        """(file name for the reader, MIME type, bytes) of each attachment, in the list's order."""
        out = []
        for kind in self.attach:
            name, ctype = ATTACHMENTS[kind]
            out.append((f"{self.quarter}-{name}", ctype, (self.edition_dir / name).read_bytes()))
        return out


def check_files(edition_dir: Path, manifest: dict, attach: Sequence[str]) -> None:
    """Every attachment exists and is the file the build wrote (sha256 in manifest.json)."""
    listed = manifest.get("files", {})
    for kind in attach:
        name = ATTACHMENTS[kind][0]
        path = Path(edition_dir) / name
        if not path.is_file():
            raise DeliveryError(f"the edition has no {name}; rebuild it", str(edition_dir), field=f"attach {kind}")
        want = listed.get(name, {}).get("sha256")
        if want and sha256(path.read_bytes()).hexdigest() != want:
            raise DeliveryError(
                f"{name} is not the file this edition's build wrote (sha256 differs from manifest.json); rebuild it",
                str(path),
            )


class Outcome(NamedTuple):
    """What became of one copy: `sent` with the receiver's reply, or `failed`; `stop` ends the list (the channel
    cannot reach anyone)."""

    status: str  # "sent" | "failed"
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
    """Keeps outcomes (the ledger): who has which edition of which list."""

    def delivered(self, edition: str, list_name: str) -> set[str]: ...

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


def send_list(
    channel: Channel,
    parcel: Parcel,
    recipients: Sequence[str],
    journal: Journal,
    *,
    resend: bool = False,
    log: logging.Logger | logging.LoggerAdapter | None = None,
) -> DeliveryReport:
    """Hand each recipient one copy of the parcel, skipping those the journal says have it (unless `resend` or a
    test), recording every outcome the moment it is known. An outcome with `stop` fails the rest of the list."""
    log = log or logging.getLogger("reportgen.channel")
    edition, quarter, name, test = parcel.edition, parcel.quarter, parcel.list_name, parcel.test
    report = DeliveryReport(name, edition, test=test)
    done = set() if (resend or test) else journal.delivered(edition, name)
    todo = [r for r in recipients if r not in done]
    report.skipped = [r for r in recipients if r in done]
    log.info(
        "%s: edition %s %s, %d recipients, %d already have it, %d to send",
        name,
        quarter,
        edition,
        len(recipients),
        len(report.skipped),
        len(todo),
    )
    try:
        for n, rcpt in enumerate(todo):
            outcome = channel.deliver(parcel, rcpt, lambda: None)
            journal.record(edition, quarter, name, rcpt, outcome.status, test, outcome.code, outcome.reply)
            if outcome.status == "sent":
                report.sent.append(rcpt)
                log.info("%s: sent to %s (%s %s)", name, rcpt, outcome.code, outcome.reply)
                continue
            report.failed.append(Failure(rcpt, outcome.code, outcome.reply))
            log.warning("%s: not delivered to %s: %s %s", name, rcpt, outcome.code or "", outcome.reply)
            if outcome.stop:
                rest = todo[n + 1 :]
                for other in rest:
                    journal.record(edition, quarter, name, other, "failed", test, outcome.code, outcome.reply)
                    report.failed.append(Failure(other, outcome.code, outcome.reply))
                if rest:
                    log.warning("%s: %d more recipients not tried", name, len(rest))
                break
    finally:
        channel.close()
    return report
