"""When to run: cron expressions, crontab and systemd unit text, and the "which edition is due" choice."""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from croniter import CroniterError, croniter

from .errors import ConfigError, ReportgenError
from .ledger import EXIT_LOCK_HELD, LockHeld
from .periods import Quarter

logger = logging.getLogger("reportgen.schedule")

#: the schedule used when reportgen.toml has none: 08:00 on the 1st of every month
DEFAULT_CRON = "0 8 1 * *"

#: the longest single sleep of `sleep_until_next`, so a wall-clock change (NTP step, suspend) is noticed in time
MAX_SLEEP_SECONDS = 600.0

# (name in messages, lowest, highest, names allowed in place of numbers)
_MONTHS = {m: i for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), start=1)}
_WEEKDAYS = {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}
_FIELDS = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day-of-month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 7, _WEEKDAYS),
)
_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_TOKEN = re.compile(r"^(?:(?P<star>\*)|(?P<lo>[0-9a-z]+)(?:-(?P<hi>[0-9a-z]+))?)(?:/(?P<step>[0-9]+))?$")
# Extensions croniter (Quartz, Jenkins) accepts but Vixie cron / cronie do not: L, W, #, ?, H.
_EXTENSION = re.compile(r"[#?]|^(?:l|lw|\d*l|\d+w|w\d+|h(?:\(.*\))?(?:/\d+)?)$")
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # February 29 happens, so it counts
_SYSTEMD_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class CronSpec:
    """A checked 5-field cron expression and the values each field allows.

    `day_restricted` and `weekday_restricted` say whether the day-of-month and day-of-week fields restrict the
    days; when both do, a day matches if EITHER matches (POSIX crontab), otherwise both must.
    """

    #: the expression with single spaces, any @alias written out and a range a-a written a, e.g. "0 8 1 * *"
    expr: str
    minute: tuple[int, ...]
    hour: tuple[int, ...]
    #: day of month, 1-31
    day: tuple[int, ...]
    month: tuple[int, ...]
    #: 0 = Sunday ... 6 = Saturday (7 in the expression is read as 0)
    weekday: tuple[int, ...]
    day_restricted: bool
    weekday_restricted: bool

    def __str__(self) -> str:
        return self.expr

    @property
    def days_or(self) -> bool:
        """True when day-of-month and day-of-week both restrict, so a day matching either one runs."""
        return self.day_restricted and self.weekday_restricted

    def matches(self, when: datetime) -> bool:
        """Whether the minute `when` falls in is a run time (seconds are ignored; wall-clock fields)."""
        if when.minute not in self.minute or when.hour not in self.hour or when.month not in self.month:
            return False
        day_ok = when.day in self.day
        weekday_ok = (when.isoweekday() % 7) in self.weekday
        return (day_ok or weekday_ok) if self.days_or else (day_ok and weekday_ok)


def parse_cron(expr: str, *, path: str | None = None, line: int | None = None) -> CronSpec:
    """Check a 5-field cron expression (minute hour day-of-month month day-of-week) and expand it.

    Accepts what the system cron (Vixie cron, cronie) accepts: numbers, `*`, lists `a,b`, ranges `a-b`, steps `*/n`
    and `a-b/n`, month names jan..dec, weekday names sun..sat (Sunday is 0 or 7) and the @yearly, @monthly,
    @weekly, @daily, @hourly aliases. Anything else raises ConfigError naming the field; `path` and `line` (of
    reportgen.toml) are put on the error when given. croniter does the expansion.
    """

    def fail(msg: str) -> ConfigError:
        return ConfigError(f"'{expr}': {msg}", path, line, "cron")

    if not isinstance(expr, str) or not expr.strip():
        raise ConfigError(
            "the schedule is empty; write 5 fields: minute hour day-of-month month day-of-week, "
            f"e.g. '{DEFAULT_CRON}' (08:00 on the 1st of every month)",
            path,
            line,
            "cron",
        )
    text = " ".join(expr.split())
    if text.startswith("@"):
        if text.lower() == "@reboot":
            raise fail("@reboot has no times to compute; write a timed schedule such as '0 8 1 * *'")
        if text.lower() not in _ALIASES:
            raise fail(f"unknown alias; known: {', '.join(_ALIASES)}")
        text = _ALIASES[text.lower()]
    fields = text.split(" ")
    if len(fields) != 5:
        extra = " (no seconds or year field)" if len(fields) > 5 else ""
        raise fail(
            f"has {len(fields)} field{'s' if len(fields) != 1 else ''}; write 5: minute hour day-of-month "
            f"month day-of-week{extra}"
        )
    fields = [
        _check_field(field_text, name, lo, hi, names, fail)
        for (name, lo, hi, names), field_text in zip(_FIELDS, fields, strict=True)
    ]
    text = " ".join(fields)
    day_text, weekday_text = fields[2], fields[4]
    if day_text != "*" and weekday_text != "*" and (day_text.startswith("*") or weekday_text.startswith("*")):
        # Vixie cron (Debian, Ubuntu) treats a day field starting with '*' as unrestricted, so '*/2' and 'mon' means
        # both there, while POSIX says either. Refuse rather than predict one and have cron do the other.
        raise fail(
            f"day-of-month '{day_text}' and day-of-week '{weekday_text}' both restrict the day and one starts "
            "with '*': cron implementations disagree whether that means both or either; write the days "
            "without '*' (e.g. 1-31/2) or leave one of the two fields as '*'"
        )

    try:
        expanded = croniter.expand(text)[0]
    except CroniterError as e:  # the checks above should have caught it; keep croniter's reason
        raise fail(str(e)) from None
    values = []
    for i, (_name, lo, hi, _names) in enumerate(_FIELDS):
        vals = expanded[i]
        if vals == ["*"]:
            vals = range(lo, 7 if i == 4 else hi + 1)
        values.append(tuple(sorted({int(v) % 7 if i == 4 else int(v) for v in vals})))
    spec = CronSpec(text, *values, day_restricted=expanded[2] != ["*"], weekday_restricted=expanded[4] != ["*"])

    if spec.day_restricted and not spec.weekday_restricted:
        if not any(d <= _DAYS_IN_MONTH[m - 1] for d in spec.day for m in spec.month):
            raise fail(f"never runs: day-of-month {_join(spec.day)} does not occur in month {_join(spec.month)}")
    return spec


def _join(values) -> str:
    return ",".join(str(v) for v in values)


def _check_field(text: str, name: str, lo: int, hi: int, names: dict[str, int], fail) -> str:
    """The field as croniter should read it; raises (via `fail`) when it is not plain crontab syntax or a value is
    out of range."""
    tokens = []
    for token in text.split(","):
        if not token:
            raise fail(f"{name} '{text}' has an empty list item")
        if _EXTENSION.search(token.lower()):
            raise fail(
                f"{name} '{token}' uses an extension (L, W, #, ?, H) that the system cron does not "
                "understand; use numbers, *, lists, ranges and steps"
            )
        m = _TOKEN.match(token.lower())
        if not m:
            raise fail(f"{name} '{token}' is not cron syntax; use a number, *, a list a,b, a range a-b or a step */n")
        if m["star"] and text != token:
            # croniter and cron disagree on which day field counts as restricted then; it is never needed.
            raise fail(f"{name} '{text}': write '{token}' on its own, not in a list")
        bounds = []
        for group in ("lo", "hi"):
            if m[group] is None:
                continue
            part = token[m.start(group) : m.end(group)]
            if part.isdigit():
                value = int(part)
            elif part.lower() in names:
                value = names[part.lower()]
            else:
                what = f"a number {lo}-{hi}" + (f" or a name {next(iter(names))}..{list(names)[-1]}" if names else "")
                raise fail(f"{name} '{part}' is not {what}")
            if not lo <= value <= hi:
                sunday = " (Sunday is 0 or 7)" if name == "day-of-week" else ""
                raise fail(f"{name} {part} is out of range {lo}-{hi}{sunday}")
            bounds.append(value)
        if len(bounds) == 2 and bounds[0] > bounds[1]:
            sunday = "; Sunday can also be written 7" if name == "day-of-week" else ""
            raise fail(
                f"{name} range '{token.split('/')[0]}' runs backwards; write low-high, or two ranges for one "
                f"that wraps round{sunday}"
            )
        if m["step"] is not None:
            if int(m["step"]) == 0:
                raise fail(f"{name} step '/{m['step']}' must be 1 or more")
            if len(bounds) == 1:
                raise fail(f"{name} '{token}': a step needs a range or *; write {token.split('/')[0]}-{hi}/{m['step']}")
        if len(bounds) == 2 and bounds[0] == bounds[1]:
            # cron reads 5-5 as 5; croniter reads an equal range as the whole cycle ("Jan-Jan"), so write it as 5.
            token = token[m.start("lo") : m.end("lo")]
        tokens.append(token)
    return ",".join(tokens)


def _as_spec(expr: str | CronSpec) -> CronSpec:
    return expr if isinstance(expr, CronSpec) else parse_cron(expr)


def next_runs(expr: str | CronSpec, after: datetime, n: int) -> list[datetime]:
    """The next `n` run times strictly after `after`, earliest first.

    A naive `after` is read as wall-clock local time, as cron does (DST changes are not applied); an aware one
    gives aware results in its time zone, with croniter's DST handling.
    """
    spec = _as_spec(expr)
    if n < 0:
        raise ValueError(f"n must be 0 or more, not {n}")
    it = croniter(spec.expr, after)
    try:
        return [it.get_next(datetime) for _ in range(n)]
    except CroniterError as e:  # parse_cron refuses schedules that never run; this is a safety net
        raise ConfigError(f"'{spec.expr}': no run time found after {after:%Y-%m-%d %H:%M} ({e})", field="cron") from e


# --- crontab and systemd ---------------------------------------------------------------------------------------


def _absolute_executable(executable: str) -> str:
    """`executable` as an absolute path: cron and systemd start jobs with a minimal PATH."""
    if os.path.isabs(executable):
        return executable
    found = shutil.which(executable)
    if not found:
        raise ConfigError(f"cannot find the program '{executable}' on PATH; give its absolute path")
    return os.path.abspath(found)


def _no_newline(*values: str) -> None:
    for v in values:
        if "\n" in v or "\r" in v:
            raise ConfigError(f"a path with a line break cannot go in a crontab or unit file: {v!r}")


def crontab_line(expr: str | CronSpec, workspace: Path, executable: str) -> str:
    """One crontab line: at the schedule, cd into the workspace, load the mail settings from
    ~/.config/reportgen/env when it exists (as the systemd unit does), and run `reportgen run`, appending its
    output to <workspace>/output/run.log. Paths are made absolute and shell-quoted."""
    spec = _as_spec(expr)
    ws = str(Path(workspace).absolute())
    exe = _absolute_executable(executable)
    _no_newline(ws, exe)
    log = str(Path(ws) / "output" / "run.log")
    # the mail settings, as the systemd unit reads them: KEY="value" lines, exported (set -a) for reportgen
    env = '"$HOME/.config/reportgen/env"'
    load = f"if [ -r {env} ]; then set -a; . {env}; set +a; fi"
    command = f"cd {shlex.quote(ws)} && mkdir -p output && {load} && {shlex.quote(exe)} run >> {shlex.quote(log)} 2>&1"
    # cron turns an unescaped % in the command into a line break (crontab(5)); \% is a literal %.
    return f"{spec.expr} {command.replace('%', chr(92) + '%')}"


def _unit_text(value: str) -> str:
    """Text for a unit file setting: % starts a specifier (systemd.unit(5)), so it is doubled."""
    return value.replace("%", "%%")


def _exec_word(path: str) -> str:
    """A program path for ExecStart=: specifiers escaped, quoted when it has spaces or quotes (systemd.service(5),
    "Command lines"; $VARIABLES are not expanded in the program path itself)."""
    if "\\" in path:  # systemd refuses an executable name with a backslash ("contains special characters")
        raise ConfigError(f"systemd cannot run a program whose path has a backslash: {path}")
    value = _unit_text(path)
    if re.fullmatch(r"[A-Za-z0-9_./+:@,=%$-]+", value):
        return value
    return '"' + value.replace('"', '\\"') + '"'


def _compress(values: tuple[int, ...], lo: int, hi: int) -> str:
    """Numbers as systemd calendar syntax: '*' for all, else runs 'a..b' and lists.

    Steps ('01/4') are written out as lists: systemd 252's repetition in the day field skips the 1st of the next
    year (systemd-analyze calendar --base-time=2001-12-30 '*-*-01/4' gives 2002-01-05), found by the property test.
    """
    if values == tuple(range(lo, hi + 1)):
        return "*"
    return ",".join(
        f"{a:02d}" if a == b else f"{a:02d}..{b:02d}" if b - a >= 2 else f"{a:02d},{b:02d}" for a, b in _runs(values)
    )


def _runs(values) -> list[tuple[int, int]]:
    runs: list[list[int]] = []
    for v in values:
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    return [(a, b) for a, b in runs]


def _systemd_weekdays(weekdays: tuple[int, ...]) -> str:
    iso = sorted(7 if d == 0 else d for d in weekdays)  # systemd weeks start on Monday
    parts = []
    for a, b in _runs(iso):
        names = [_SYSTEMD_DAYS[d - 1] for d in range(a, b + 1)]
        parts.append(f"{names[0]}..{names[-1]}" if len(names) >= 3 else ",".join(names))
    return ",".join(parts)


def on_calendar(expr: str | CronSpec) -> list[str]:
    """systemd OnCalendar= values equivalent to the cron expression (local time), e.g. '0 8 1 * *' ->
    ['*-*-01 08:00:00'].

    When day-of-month and day-of-week both restrict, cron runs on a day matching either; one calendar event means
    both, so that case gives two events (a timer elapses when any of its OnCalendar= events does).
    """
    spec = _as_spec(expr)
    time = f"{_compress(spec.hour, 0, 23)}:{_compress(spec.minute, 0, 59)}:00"
    month = _compress(spec.month, 1, 12)
    day = _compress(spec.day, 1, 31)
    weekdays = _systemd_weekdays(spec.weekday) if spec.weekday_restricted else ""
    if not spec.days_or:
        return [f"{weekdays + ' ' if weekdays else ''}*-{month}-{day} {time}"]
    if day == "*" or len(spec.weekday) == 7:  # one side already allows every day
        return [f"*-{month}-* {time}"]
    return [f"*-{month}-{day} {time}", f"{weekdays} *-{month}-* {time}"]


def systemd_units(expr: str | CronSpec, workspace: Path, executable: str) -> tuple[str, str]:
    """The text of reportgen.service (a oneshot `reportgen run` in the workspace) and reportgen.timer (the cron
    schedule as OnCalendar=, Persistent=true so a run missed while the machine was off happens at the next boot)."""
    spec = _as_spec(expr)
    ws = str(Path(workspace).absolute())
    exe = _absolute_executable(executable)
    _no_newline(ws, exe)
    service = (
        "[Unit]\n"
        f"Description=reportgen: build and send the due briefing ({_unit_text(ws)})\n"
        "\n"
        "[Service]\n"
        "Type=oneshot\n"
        f"WorkingDirectory={_unit_text(ws)}\n"
        "# Secrets such as REPORTGEN_SMTP_PASSWORD=... (one per line); the leading - makes the file optional.\n"
        "EnvironmentFile=-%h/.config/reportgen/env\n"
        f"ExecStart={_exec_word(exe)} run\n"
        f"# {EXIT_LOCK_HELD}: another run held the lock and is doing the work.\n"
        f"SuccessExitStatus={EXIT_LOCK_HELD}\n"
    )
    events = "".join(f"OnCalendar={event}\n" for event in on_calendar(spec))
    timer = (
        "[Unit]\n"
        f"Description=reportgen schedule ({spec.expr})\n"
        "\n"
        "[Timer]\n"
        f"{events}"
        "Persistent=true\n"
        "\n"
        "[Install]\n"
        "WantedBy=timers.target\n"
    )
    return service, timer


# --- which edition is due --------------------------------------------------------------------------------------


def _quarter_start(q: Quarter) -> date:
    return date(q.year, q.end_month - 2, 1)


def due_quarter(
    available: dict[Quarter, int], subject_has: set[Quarter], now: datetime, min_peers: int, publish_partial: bool
) -> Quarter | None:
    """The quarter whose edition a scheduled run should build, or None when there is none yet.

    That is the latest quarter which
    - has ended before `now` (on `now`'s calendar date: 2025Q2 is over from 2025-07-01),
    - the subject has data for (`subject_has`), and
    - at least `min_peers` peers have data for (`available` maps quarter -> number of peers with data; the subject
      is not counted). With `publish_partial`, one peer is enough (never more than `min_peers`).
    An older quarter is chosen when the newest one does not yet qualify, so the edition that can be complete is
    (re)built while peers are still publishing. Whether that edition is already built and sent is for the caller
    (manifest, sent ledger) to decide.
    """
    need = min(min_peers, 1) if publish_partial else min_peers
    today = now.date()
    due = [q for q in subject_has if _quarter_start(q.shift(1)) <= today and available.get(q, 0) >= need]
    return max(due, default=None)


# --- foreground scheduler --------------------------------------------------------------------------------------


def _seconds_until(now: datetime, when: datetime) -> float:
    if now.tzinfo is None and when.tzinfo is None:
        # Naive times are local wall-clock times: timestamp() applies the local DST rules, plain subtraction not.
        return when.timestamp() - now.timestamp()
    return (when - now).total_seconds()


def sleep_until_next(
    expr: str | CronSpec,
    now_fn: Callable[[], datetime],
    sleep_fn: Callable[[float], object],
    run_fn: Callable[[datetime], object],
    max_runs: int | None = None,
) -> int:
    """Wait for each run time of the schedule and call `run_fn(scheduled_time)`; for `reportgen schedule
    --foreground` (containers, where there is no cron).

    `now_fn` gives the current time (naive local, like `datetime.now`, or aware) and `sleep_fn(seconds)` waits;
    tests pass a fake clock. Sleeps are at most MAX_SLEEP_SECONDS each, so a changed wall clock is noticed. A
    failed run is logged and the schedule goes on, whatever the error (a locked ledger, a full disk, a bug): a
    container's scheduler must not stop for good because one run failed. Only KeyboardInterrupt and SystemExit
    (SIGINT, SIGTERM) end it. Run times missed while `run_fn` was busy are skipped, not caught up. Returns the
    number of runs after `max_runs` of them (never returns when None).
    """
    spec = _as_spec(expr)
    runs = 0
    after = now_fn()
    while max_runs is None or runs < max_runs:
        when = next_runs(spec, after, 1)[0]
        logger.info("next run at %s (schedule %s)", when.isoformat(sep=" "), spec.expr)
        while (remaining := _seconds_until(now_fn(), when)) > 0:
            sleep_fn(min(remaining, MAX_SLEEP_SECONDS))
        try:
            run_fn(when)
        except LockHeld as e:
            logger.warning("scheduled run at %s skipped: %s", when.isoformat(sep=" "), e)
        except ReportgenError as e:
            logger.error("scheduled run at %s failed: %s", when.isoformat(sep=" "), e)
        except Exception as e:  # not reportgen's own: log it whole, and keep the schedule going
            logger.error(
                "scheduled run at %s failed: %s: %s", when.isoformat(sep=" "), type(e).__name__, e, exc_info=True
            )
        runs += 1
        now = now_fn()
        if _seconds_until(now, next_runs(spec, when, 1)[0]) < 0:
            logger.warning("the run took until %s; skipping run times missed meanwhile", now.isoformat(sep=" "))
        # Go on from now, so a run time equal to now still counts; never from before `when`, so it cannot repeat.
        after = now - timedelta(microseconds=1) if _seconds_until(when, now) > 0 else when
    return runs
