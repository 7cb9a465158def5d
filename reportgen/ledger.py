"""The workspace's stores under output/: the ledger (builds, deliveries, runs), the lock that keeps builds, sends
and runs from stepping on each other, and the reader of an edition's manifest.

Nothing here knows SMTP: a delivery channel reports outcomes, the ledger keeps them.
"""

from __future__ import annotations

import hashlib
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
#: held while editions are written (build) or mailed (send): two sends never mail anyone twice, and a build never
#: replaces the files of an edition that is being mailed
EDITIONS_LOCK_NAME = ".editions.lock"
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
        what: str = "",
    ):
        self.path = Path(path)
        self.busy, self.error, self.what = busy, error, what
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
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o666)
        except OSError as e:  # a symlink planted there (ELOOP), a folder, no permission
            why = (
                "is a symbolic link; a lock is a file of the workspace: move the link aside"
                if self.path.is_symlink()
                else f"cannot be opened ({e.strerror or e}); check that it is a file you can write"
            )
            raise ReportgenError(why, str(self.path)) from None  # not held by anyone: exit 1, not "busy"
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
            message = self.busy.format(who=who, what=holder.get("what") or "command")
            if issubclass(self.error, LockHeld):
                raise self.error(message, str(self.path), pid, holder) from None
            raise self.error(message, str(self.path)) from None
        except BaseException:
            os.close(fd)
            raise
        started = datetime.now().astimezone().isoformat(timespec="seconds")
        data = f"pid: {os.getpid()}\nhostname: {socket.gethostname()}\nstarted: {started}\n"
        data = (data + (f"what: {self.what}\n" if self.what else "")).encode()
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


def editions_lock(output: Path, what: str) -> Lock:
    """The lock held while a build writes editions or a send mails one, in the workspace whose output/ folder is
    `output`; `what` (e.g. "send 2025Q2") tells whoever finds it held what is going on."""
    return Lock(
        Path(output) / EDITIONS_LOCK_NAME,
        "another reportgen {what} ({who}) is writing or mailing this workspace's editions; nothing was done. Try "
        "again when it has finished",
        what=what,
    )


# -- the manifest -------------------------------------------------------------------------------------------------
def seal(manifest: dict) -> str:
    """The digest of a manifest's content (all but its `sealed` key), written into it by the build: a manifest
    edited by hand no longer matches it, and is not mailed from."""
    body = {k: v for k, v in manifest.items() if k != "sealed"}
    text = json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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
    if "sealed" in manifest and manifest["sealed"] != seal(manifest):
        raise ReportgenError(
            "changed since the build (it no longer matches its seal), so its title, findings and file list cannot "
            "be trusted; rebuild the edition: reportgen build --quarter QUARTER --force",
            str(path),
        )
    for key in required:
        if not isinstance(manifest.get(key), str):
            raise ReportgenError(f"has no '{key}'; rebuild the edition", str(path), field=key)
    return manifest


# -- the ledger ---------------------------------------------------------------------------------------------------
def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class LedgerError(ReportgenError):
    """The ledger cannot be opened, read or written (damaged, another program's file, locked, disk full)."""


_SCHEMA = {
    "deliveries": ["edition", "quarter", "list", "recipient", "status", "test", "smtp_code", "smtp_reply", "at"],
    "builds": ["quarter", "edition", "rebuilt", "at"],
    "runs": ["at", "quarter", "edition", "outcome", "note"],
    "approvals": ["quarter", "edition", "by", "at"],
}
_VERSION = 3  # 2: deliveries may be 'pending' (handed over, outcome not yet recorded); 3: approvals
_CREATE = """
    CREATE TABLE IF NOT EXISTS deliveries (
        edition TEXT NOT NULL, quarter TEXT NOT NULL, list TEXT NOT NULL, recipient TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed')), test INTEGER NOT NULL DEFAULT 0,
        smtp_code INTEGER, smtp_reply TEXT, at TEXT NOT NULL);
    CREATE INDEX IF NOT EXISTS deliveries_key ON deliveries (edition, list, recipient, test);
    CREATE TABLE IF NOT EXISTS builds (
        quarter TEXT NOT NULL, edition TEXT NOT NULL, rebuilt INTEGER NOT NULL, at TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS runs (
        at TEXT NOT NULL, quarter TEXT, edition TEXT, outcome TEXT NOT NULL, note TEXT);
    CREATE TABLE IF NOT EXISTS approvals (
        quarter TEXT NOT NULL, edition TEXT NOT NULL, by TEXT NOT NULL, at TEXT NOT NULL);
"""


class Ledger:
    """SQLite record of builds, of what each server accepted or refused per (edition, list, recipient), and of
    scheduled runs.

    A copy is recorded as `pending` the moment before it is handed over and settled as `sent` or `failed` once the
    server answers, so an acceptance is never forgotten: a copy whose outcome could not be recorded stays
    `pending`, and a later send treats that recipient as in doubt instead of mailing them again blindly.
    Every SQLite problem becomes a LedgerError that names the file."""

    def __init__(self, path: Path, timeout: float = 10.0):
        self.path = Path(path)
        self.db = None
        if self.path.is_symlink():  # the delivery history is a file of the workspace, never one elsewhere
            raise LedgerError("is a symbolic link; the ledger is a file of the workspace: move the link aside "
                              "(and the file it points to back here, if it is the ledger)", str(self.path))  # fmt: skip
        with self._guard("open the ledger"):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fresh = not self.path.exists()
            self.db = sqlite3.connect(self.path, timeout=timeout)
            if self.db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                self.db.execute("PRAGMA journal_mode=WAL")
            if fresh and self.path.exists():  # SQLite makes it 0644 whatever the umask; like the editions, it
                os.chmod(self.path, 0o666 & ~_umask())  # follows the umask (its -wal and -shm files follow it)
            self._check_schema()

    def _guard(self, action: str):
        ledger = self

        class _Guard:
            def __enter__(self):
                return None

            def __exit__(self, typ, e, tb):
                if e is None or not isinstance(e, (sqlite3.Error, OSError)):
                    return False
                if ledger.db is not None and isinstance(e, sqlite3.Error):
                    ledger.db.rollback()
                text = str(e) or type(e).__name__
                if "not a database" in text or "malformed" in text:
                    hint = "it is damaged or not a reportgen ledger; move it aside (it holds the delivery history) "
                    hint += "and run again to start a new one"
                elif "locked" in text or "busy" in text:
                    hint = "another program holds it; try again when that has finished"
                else:
                    hint = "check the disk and the file's permissions"
                raise LedgerError(f"cannot {action} ({text}); {hint}", str(ledger.path)) from None

        return _Guard()

    def _check_schema(self) -> None:
        tables = {
            name: [c[1] for c in self.db.execute(f"PRAGMA table_info({name})")]
            for (name,) in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        for name, cols in _SCHEMA.items():
            if name in tables and tables[name] != cols:
                raise LedgerError(
                    f"its table '{name}' has the columns {', '.join(tables[name])}, not reportgen's; this is not a "
                    "reportgen ledger (or one of a newer version): move it aside and run again",
                    str(self.path),
                )
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > _VERSION:
            raise LedgerError(f"written by a newer reportgen (schema {version}); upgrade reportgen", str(self.path))
        if version == _VERSION and set(_SCHEMA) <= set(tables):
            return  # current: opening writes nothing (a reader never waits for a writer)
        with self.db:
            if "deliveries" in tables and version < 2:  # the CHECK constraint did not allow 'pending'
                self.db.execute("ALTER TABLE deliveries RENAME TO deliveries_v1")
                self.db.execute("DROP INDEX IF EXISTS deliveries_key")
            self.db.executescript(_CREATE)
            if "deliveries" in tables and version < 2:
                self.db.execute("INSERT INTO deliveries SELECT * FROM deliveries_v1")
                self.db.execute("DROP TABLE deliveries_v1")
            self.db.execute(f"PRAGMA user_version = {_VERSION}")

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- deliveries (the Journal a channel reports to) -----------------------------------------------------------
    def _latest(self, edition: str, list_name: str) -> dict[str, str]:
        rows = self.db.execute(
            "SELECT recipient, status FROM deliveries WHERE edition=? AND list=? AND test=0 ORDER BY rowid",
            (edition, list_name),
        )
        latest: dict[str, str] = {}
        for rcpt, status in rows:
            if status == "sent" or latest.get(rcpt) != "sent":  # once accepted, always had it
                latest[rcpt] = status
        return latest

    def delivered(self, edition: str, list_name: str) -> set[str]:
        """Recipients a server accepted for this edition and list (test copies excluded)."""
        with self._guard("read the ledger"):
            return {r for r, s in self._latest(edition, list_name).items() if s == "sent"}

    def in_doubt(self, edition: str, list_name: str) -> set[str]:
        """Recipients whose copy was handed over but whose outcome was never recorded (a crash or a ledger that
        could not be written at that moment): they may have it."""
        with self._guard("read the ledger"):
            return {r for r, s in self._latest(edition, list_name).items() if s == "pending"}

    def begin(self, edition: str, quarter: str, list_name: str, recipient: str, test: bool = False) -> int:
        """Record that a copy is about to be handed over (`pending`), committed before it goes; returns its row."""
        with self._guard(f"record the copy for {recipient} before sending it"), self.db:
            cur = self.db.execute(
                "INSERT INTO deliveries VALUES (?,?,?,?,'pending',?,NULL,'',?)",
                (edition, quarter, list_name, recipient, int(test), _now()),
            )
            return cur.lastrowid

    def settle(self, row: int, status: str, code: int | None = None, reply: str = "") -> None:
        """The outcome of a copy recorded by `begin`."""
        with self._guard("record the server's answer"), self.db:
            self.db.execute(
                "UPDATE deliveries SET status=?, smtp_code=?, smtp_reply=?, at=? WHERE rowid=?",
                (status, code, reply, _now(), row),
            )

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
        """Append one outcome of a copy that was never handed over (refused before, or not tried)."""
        with self._guard(f"record the outcome for {recipient}"), self.db:
            self.db.execute(
                "INSERT INTO deliveries VALUES (?,?,?,?,?,?,?,?,?)",
                (edition, quarter, list_name, recipient, status, int(test), code, reply, _now()),
            )

    # -- builds and runs -------------------------------------------------------------------------------------------
    def record_build(self, quarter: str, edition: str, rebuilt: bool) -> None:
        """Append one build (or a check that found the edition unchanged)."""
        with self._guard("record the build"), self.db:
            self.db.execute("INSERT INTO builds VALUES (?,?,?,?)", (quarter, edition, int(rebuilt), _now()))

    def record_run(self, outcome: str, quarter: str | None = None, edition: str | None = None, note: str = "") -> None:
        """Append one scheduled run: what it found due and what became of it."""
        with self._guard("record the run"), self.db:
            self.db.execute("INSERT INTO runs VALUES (?,?,?,?,?)", (_now(), quarter, edition, outcome, note))

    def record_approval(self, quarter: str, edition: str, by: str) -> None:
        """Who approved which edition for the mailing lists, and when."""
        with self._guard("record the approval"), self.db:
            self.db.execute("INSERT INTO approvals VALUES (?,?,?,?)", (quarter, edition, by, _now()))

    def approval(self, edition: str) -> tuple[str, str] | None:
        """(by, at) of the first approval of `edition`, or None."""
        with self._guard("read the ledger"):
            row = self.db.execute(
                "SELECT by, at FROM approvals WHERE edition=? ORDER BY rowid LIMIT 1", (edition,)
            ).fetchone()
        return tuple(row) if row else None

    def previewed(self, edition: str, recipient: str) -> bool:
        """Whether a preview (test) copy of `edition` was accepted for `recipient`."""
        with self._guard("read the ledger"):
            row = self.db.execute(
                "SELECT 1 FROM deliveries WHERE edition=? AND test=1 AND status='sent' AND lower(recipient)=lower(?)",
                (edition, recipient),
            ).fetchone()
        return row is not None

    def history(self) -> list[dict]:
        """Builds, deliveries, runs and approvals, oldest first: at, kind (build|mail|test|run|approve), quarter,
        edition, list,
        recipient, status (a copy still `pending` shows as `in doubt`), code, reply."""
        with self._guard("read the ledger"):
            rows = self.db.execute(
                "SELECT at, 'build', quarter, edition, '', '', CASE rebuilt WHEN 1 THEN 'built' ELSE 'unchanged' "
                "END, NULL, '', 0 AS src, rowid FROM builds UNION ALL "
                "SELECT at, 'run', COALESCE(quarter, ''), COALESCE(edition, ''), '', '', outcome, NULL, "
                "COALESCE(note, ''), 1 AS src, rowid FROM runs UNION ALL "
                "SELECT at, CASE test WHEN 1 THEN 'test' ELSE 'mail' END, quarter, edition, list, recipient, "
                "CASE status WHEN 'pending' THEN 'in doubt' ELSE status END, smtp_code, smtp_reply, 2 AS src, rowid "
                "FROM deliveries UNION ALL "
                "SELECT at, 'approve', quarter, edition, '', by, 'approved', NULL, '', 3 AS src, rowid FROM approvals "
                "ORDER BY 1, 10, 11"
            ).fetchall()
        keys = ("at", "kind", "quarter", "edition", "list", "recipient", "status", "code", "reply")
        return [dict(zip(keys, r[:9], strict=True)) for r in rows]

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None


def open_ledger(root: Path) -> Ledger:
    """The ledger of the workspace at `root` (output/.ledger.sqlite3)."""
    return Ledger(Path(root) / "output" / LEDGER_NAME)
