"""The workspace's stores under output/: the ledger (builds, deliveries, runs), the lock that keeps builds, sends
and runs from stepping on each other, and the reader of an edition's manifest.

Nothing here knows SMTP: a delivery channel reports outcomes, the ledger keeps them.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

from .errors import ReportgenError

logger = logging.getLogger("reportgen.ledger")

#: the ledger lives in the workspace's output/ folder, next to the editions
LEDGER_NAME = ".ledger.sqlite3"
#: held while `reportgen run` works (exit status 75 for a second run)
RUN_LOCK_NAME = ".run.lock"
#: held while a list is being sent, so two sends of one workspace never mail anyone twice
SEND_LOCK_NAME = ".send.lock"
MANIFEST = "manifest.json"
#: exit status when another process holds a lock (EX_TEMPFAIL in sysexits.h: try again later)
EXIT_LOCK_HELD = 75


# -- the lock -----------------------------------------------------------------------------------------------------
class LockHeld(ReportgenError):
    """Another process holds a workspace lock; `pid` is its process id when the lock file names it."""

    exit_code = EXIT_LOCK_HELD

    def __init__(self, message: str, path: str | None = None, pid: int | None = None, holder: dict | None = None):
        super().__init__(message, path)
        self.pid = pid
        self.holder = holder or {}


def read_lock_holder(path: Path) -> dict[str, str]:
    """What a lock file says about its holder (`pid`, `hostname`, `started`); empty when unreadable.

    Only meaningful while the lock is held: a process that was killed leaves its details behind."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    out = {}
    for ln in text.splitlines():
        key, sep, value = ln.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


class Lock:
    """`with Lock(path):` an OS advisory lock (flock, non-blocking) on `path`, the one lock of builds, sends and runs.

    The kernel releases it when the holder's process ends in any way, a SIGKILL included: there is no stale lock
    to clean up after a crash. While held, the file records the holder's pid, hostname and start time for people;
    the file itself is left in place. When another process (or another Lock on the same file) holds it, raises
    `error(busy.format(who=...), path)` (LockHeld, exit status 75, unless told otherwise).
    """

    # Why stdlib fcntl and not the filelock package: filelock's Unix lock is this same flock call, so it would add
    # a dependency without adding safety, and we also want the holder's details written into the lock file and read
    # back for the message. reportgen runs from cron and systemd, i.e. on POSIX; where fcntl is missing the lock
    # refuses to start rather than run unguarded. flock works on local file systems; on NFS Linux maps it to a
    # POSIX byte-range lock, which also covers other hosts (hence the hostname in the file).

    def __init__(
        self,
        path: Path,
        busy: str = "another reportgen run ({who}) holds the run lock; this run did nothing. Try again "
        "when it has finished (the lock is released when that process ends)",
        error: type[ReportgenError] = LockHeld,
    ):
        self.path = Path(path)
        self.busy, self.error = busy, error
        self._fd: int | None = None

    @property
    def locked(self) -> bool:
        return self._fd is not None

    def acquire(self) -> Lock:
        try:
            import fcntl
        except ImportError:  # not POSIX
            raise ReportgenError("workspace locks need a POSIX system (fcntl.flock)", str(self.path)) from None
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already locked by this Lock")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # O_NOFOLLOW: never write through a symlink planted at the lock path; O_CLOEXEC: programs this process
        # starts do not inherit the lock (and so cannot keep it after it ends).
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = read_lock_holder(self.path)
            pid = int(holder["pid"]) if holder.get("pid", "").isdigit() else None
            who = f"pid {pid}" if pid is not None else "pid unknown"
            if holder.get("hostname"):
                who += f" on {holder['hostname']}"
            if holder.get("started"):
                who += f", started {holder['started']}"
            message = self.busy.format(who=who)
            if issubclass(self.error, LockHeld):
                raise self.error(message, str(self.path), pid, holder) from None
            raise self.error(message, str(self.path)) from None
        except BaseException:
            os.close(fd)
            raise
        started = datetime.now().astimezone().isoformat(timespec="seconds")
        data = f"pid: {os.getpid()}\nhostname: {socket.gethostname()}\nstarted: {started}\n".encode()
        # Write, then cut to length: a reader sees the old text or the new, never an empty file in between.
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
        self._fd = fd
        logger.debug("took the lock %s (pid %d)", self.path, os.getpid())
        return self

    def release(self) -> None:
        import fcntl

        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # no holder's details left behind after a clean end
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
        logger.debug("released the lock %s", self.path)

    def __enter__(self) -> Lock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def run_lock(root: Path) -> Lock:
    """The lock `reportgen run` holds: a second run stops with exit status 75."""
    return Lock(Path(root) / "output" / RUN_LOCK_NAME)


def send_lock(output: Path) -> Lock:
    """The lock held while a list is being mailed from the workspace whose output/ folder is `output`."""
    from .errors import DeliveryError

    return Lock(
        Path(output) / SEND_LOCK_NAME,
        "another `reportgen send` or `run` is mailing from this workspace ({who}); try again when it has finished",
        DeliveryError,
    )


# -- the manifest -------------------------------------------------------------------------------------------------
def read_manifest(edition_dir: Path, required: tuple[str, ...] = ()) -> dict | None:
    """An edition's manifest.json; None when there is none. A damaged one, or one lacking a `required` key, is a
    ReportgenError that says to rebuild."""
    path = Path(edition_dir) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise ReportgenError(f"not a readable manifest ({e}); rebuild the edition", str(path)) from None
    if not isinstance(manifest, dict):
        raise ReportgenError("not a manifest (a JSON object); rebuild the edition", str(path))
    for key in required:
        if not isinstance(manifest.get(key), str):
            raise ReportgenError(f"has no '{key}'; rebuild the edition", str(path), field=key)
    return manifest


# -- the ledger ---------------------------------------------------------------------------------------------------
def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Ledger:
    """SQLite record of builds, of what each server accepted or refused per (edition, list, recipient), and of
    scheduled runs."""

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
            CREATE TABLE IF NOT EXISTS runs (
                at TEXT NOT NULL, quarter TEXT, edition TEXT, outcome TEXT NOT NULL, note TEXT);
            """
        )

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- deliveries (the Journal a channel reports to) -----------------------------------------------------------
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

    # -- builds and runs -------------------------------------------------------------------------------------------
    def record_build(self, quarter: str, edition: str, rebuilt: bool) -> None:
        """Append one build (or a check that found the edition unchanged)."""
        with self.db:
            self.db.execute("INSERT INTO builds VALUES (?,?,?,?)", (quarter, edition, int(rebuilt), _now()))

    def record_run(self, outcome: str, quarter: str | None = None, edition: str | None = None, note: str = "") -> None:
        """Append one scheduled run: what it found due and what became of it."""
        with self.db:
            self.db.execute("INSERT INTO runs VALUES (?,?,?,?,?)", (_now(), quarter, edition, outcome, note))

    def history(self) -> list[dict]:
        """Builds, deliveries and runs, oldest first: at, kind (build|mail|test|run), quarter, edition, list,
        recipient, status, code, reply."""
        rows = self.db.execute(
            "SELECT at, 'build', quarter, edition, '', '', CASE rebuilt WHEN 1 THEN 'built' ELSE 'unchanged' END, "
            "NULL, '', 0 AS src, rowid FROM builds UNION ALL "
            "SELECT at, 'run', COALESCE(quarter, ''), COALESCE(edition, ''), '', '', outcome, NULL, "
            "COALESCE(note, ''), 1 AS src, rowid FROM runs UNION ALL "
            "SELECT at, CASE test WHEN 1 THEN 'test' ELSE 'mail' END, quarter, edition, list, recipient, status, "
            "smtp_code, smtp_reply, 2 AS src, rowid FROM deliveries ORDER BY 1, 10, 11"
        )
        keys = ("at", "kind", "quarter", "edition", "list", "recipient", "status", "code", "reply")
        return [dict(zip(keys, r[:9], strict=True)) for r in rows]

    def close(self) -> None:
        self.db.close()


def open_ledger(root: Path) -> Ledger:
    """The ledger of the workspace at `root` (output/.ledger.sqlite3)."""
    return Ledger(Path(root) / "output" / LEDGER_NAME)
