"""Schedule: cron parsing and next runs, crontab and systemd text, the run lock, due_quarter, the foreground loop."""

from __future__ import annotations

import calendar
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from reportgen.errors import ConfigError, ReportgenError
from reportgen.ledger import Lock as RunLock
from reportgen.ledger import LockHeld, read_lock_holder
from reportgen.periods import Quarter
from reportgen.schedule import (
    crontab_line,
    due_quarter,
    next_runs,
    on_calendar,
    parse_cron,
    sleep_until_next,
    systemd_units,
)

#: what the crontab line runs before reportgen: the mail settings of ~/.config/reportgen/env, exported
ENV = 'if [ -r "$HOME/.config/reportgen/env" ]; then set -a; . "$HOME/.config/reportgen/env"; set +a; fi && '

D = datetime

# --- next run times, written out by hand ---------------------------------------------------------------------------

# 2025-01-01 is a Wednesday, so 2025-01-03 is a Friday, 01-04 a Saturday, 01-06 a Monday, 02-01 a Saturday.
NEXT_CASES = [
    ("monthly-default", "0 8 1 * *", D(2025, 1, 15, 10, 0), [D(2025, 2, 1, 8), D(2025, 3, 1, 8), D(2025, 4, 1, 8)]),
    ("strictly-after", "0 8 1 * *", D(2025, 2, 1, 8, 0), [D(2025, 3, 1, 8), D(2025, 4, 1, 8)]),
    ("seconds-past-the-minute", "0 8 1 * *", D(2025, 2, 1, 7, 59, 59, 999999), [D(2025, 2, 1, 8)]),
    (
        "working-hours-quarterly",
        "*/15 8-17 * * 1-5",
        D(2025, 1, 3, 17, 50),
        [D(2025, 1, 6, 8, 0), D(2025, 1, 6, 8, 15), D(2025, 1, 6, 8, 30)],
    ),
    (
        "weekend-names",
        "30 6 * * sat,sun",
        D(2025, 1, 1),
        [D(2025, 1, 4, 6, 30), D(2025, 1, 5, 6, 30), D(2025, 1, 11, 6, 30)],
    ),
    ("sunday-as-7", "0 9 * * 7", D(2025, 1, 1), [D(2025, 1, 5, 9), D(2025, 1, 12, 9)]),
    (
        "day-or-weekday",
        "0 8 1 * mon",
        D(2025, 1, 28),
        [D(2025, 2, 1, 8), D(2025, 2, 3, 8), D(2025, 2, 10, 8), D(2025, 2, 17, 8)],
    ),
    (
        "quarter-months",
        "0 8 1 1,4,7,10 *",
        D(2025, 4, 1, 8, 0),
        [D(2025, 7, 1, 8), D(2025, 10, 1, 8), D(2026, 1, 1, 8)],
    ),
    (
        "31st-skips-short-months",
        "0 8 31 * *",
        D(2025, 1, 31, 9),
        [D(2025, 3, 31, 8), D(2025, 5, 31, 8), D(2025, 7, 31, 8)],
    ),
    ("leap-day", "0 0 29 2 *", D(2025, 1, 1), [D(2028, 2, 29), D(2032, 2, 29)]),
    ("alias-monthly", "@monthly", D(2025, 12, 31, 23, 59), [D(2026, 1, 1, 0, 0), D(2026, 2, 1, 0, 0)]),
    (
        "range-step-and-list",
        "5,40 8-12/2 * * *",
        D(2025, 1, 1, 10, 5),
        [D(2025, 1, 1, 10, 40), D(2025, 1, 1, 12, 5), D(2025, 1, 1, 12, 40), D(2025, 1, 2, 8, 5)],
    ),
    ("extra-spaces", "  0  8 1   * * ", D(2025, 1, 15), [D(2025, 2, 1, 8)]),
    ("none-asked", "0 8 1 * *", D(2025, 1, 15), []),
]


@pytest.mark.parametrize(("expr", "after", "expected"), [c[1:] for c in NEXT_CASES], ids=[c[0] for c in NEXT_CASES])
def test_next_runs_by_hand(expr, after, expected):
    assert next_runs(expr, after, len(expected)) == expected


def test_next_runs_aware_keeps_the_zone_across_dst():
    berlin = ZoneInfo("Europe/Berlin")  # CET (+1) until 2025-03-30, CEST (+2) after
    runs = next_runs("0 8 1 * *", D(2025, 3, 15, tzinfo=berlin), 2)
    assert runs == [D(2025, 4, 1, 8, tzinfo=berlin), D(2025, 5, 1, 8, tzinfo=berlin)]
    assert runs[0].utcoffset() == timedelta(hours=2)


def test_parse_cron_values():
    spec = parse_cron("*/15 8-17 * jan-mar mon-fri")
    assert spec.expr == "*/15 8-17 * jan-mar mon-fri"
    assert spec.minute == (0, 15, 30, 45)
    assert spec.hour == tuple(range(8, 18))
    assert spec.day == tuple(range(1, 32))
    assert spec.month == (1, 2, 3)
    assert spec.weekday == (1, 2, 3, 4, 5)
    assert (spec.day_restricted, spec.weekday_restricted, spec.days_or) == (False, True, False)
    assert parse_cron("@weekly").expr == "0 0 * * 0"
    assert parse_cron("0 8 * * 0,7").weekday == (0,)
    assert parse_cron("0 8 1 * mon").days_or


# --- invalid expressions: ConfigError naming the field ---------------------------------------------------------------

BAD_CASES = [
    ("empty", "", "schedule is empty"),
    ("six-fields", "0 0 8 1 * *", "has 6 fields; write 5"),
    ("four-fields", "0 8 1 *", "has 4 fields; write 5"),
    ("minute-60", "60 8 * * *", "minute 60 is out of range 0-59"),
    ("hour-24", "0 24 * * *", "hour 24 is out of range 0-23"),
    ("day-0", "0 8 0 * *", "day-of-month 0 is out of range 1-31"),
    ("day-32", "0 8 32 * *", "day-of-month 32 is out of range 1-31"),
    ("month-13", "0 8 1 13 *", "month 13 is out of range 1-12"),
    ("weekday-8", "0 8 * * 8", "day-of-week 8 is out of range 0-7 (Sunday is 0 or 7)"),
    ("month-name", "0 8 1 foo *", "month 'foo' is not a number 1-12 or a name jan..dec"),
    ("weekday-name-in-hour", "0 mon * * *", "hour 'mon' is not a number 0-23"),
    ("step-zero", "*/0 * * * *", "minute step '/0' must be 1 or more"),
    ("step-without-range", "0 8 5/10 * *", "day-of-month '5/10': a step needs a range or *; write 5-31/10"),
    ("backwards-range", "50-10 * * * *", "minute range '50-10' runs backwards"),
    ("backwards-weekdays", "0 8 * * sat-sun", "day-of-week range 'sat-sun' runs backwards"),
    ("empty-list-item", "0 8 1,,2 * *", "day-of-month '1,,2' has an empty list item"),
    ("garbage", "0 8 1 * mon-", "day-of-week 'mon-' is not cron syntax"),
    ("last-day-L", "0 8 L * *", "day-of-month 'L' uses an extension"),
    ("nth-weekday", "0 8 * * 1#2", "day-of-week '1#2' uses an extension"),
    ("hashed-H", "H 8 * * *", "minute 'H' uses an extension"),
    ("question-mark", "0 8 ? * *", "day-of-month '?' uses an extension"),
    ("nearest-weekday-W", "0 8 15W * *", "day-of-month '15W' uses an extension"),
    ("reboot", "@reboot", "@reboot has no times to compute"),
    ("unknown-alias", "@fortnightly", "unknown alias"),
    ("never-feb-31", "0 8 31 2 *", "never runs: day-of-month 31 does not occur in month 2"),
    ("never-30-feb", "0 8 30,31 2 *", "never runs: day-of-month 30,31 does not occur in month 2"),
    ("star-day-and-weekday", "0 8 */2 * mon", "cron implementations disagree"),
    ("star-weekday-and-day", "0 8 1 * */1", "cron implementations disagree"),
    ("star-in-a-list", "0 8 1,*/2 * *", "day-of-month '1,*/2': write '*/2' on its own, not in a list"),
    ("equal-range-is-one-value", "0 8 * 2-2 *", None),
]


@pytest.mark.parametrize(("expr", "message"), [c[1:] for c in BAD_CASES], ids=[c[0] for c in BAD_CASES])
def test_invalid_expression_names_the_field(expr, message):
    if message is None:  # not invalid: a check that the case next to it is not over-eager
        assert parse_cron(expr).month == (2,)
        return
    with pytest.raises(ConfigError) as info:
        parse_cron(expr)
    assert message in str(info.value)
    assert info.value.field == "cron"


def test_invalid_expression_carries_the_config_location():
    with pytest.raises(ConfigError) as info:
        parse_cron("0 8 32 * *", path="reportgen.toml", line=31)
    assert str(info.value) == "reportgen.toml:31: cron: '0 8 32 * *': day-of-month 32 is out of range 1-31"


@pytest.mark.parametrize("expr", ["0 8 30 2,4 *", "0 8 1-31 * 1", "59 23 31 12 *", "0 0 * * 0-7", "0 8 1 * 1-5"])
def test_valid_edge_expressions(expr):
    parse_cron(expr)


def test_next_runs_refuses_negative_n():
    with pytest.raises(ValueError):
        next_runs("0 8 1 * *", D(2025, 1, 1), -1)


# --- property: next_runs against an independent enumeration ----------------------------------------------------------

_LIMITS = {"minute": (0, 59), "hour": (0, 23), "dom": (1, 31), "month": (1, 12), "dow": (0, 7)}
_MONTH_NAMES = "jan feb mar apr may jun jul aug sep oct nov dec".split()
_DOW_NAMES = "sun mon tue wed thu fri sat".split()


@st.composite
def _field(draw, kind):
    """(text, allowed values) for one field, the values computed here, not by the code under test."""
    lo, hi = _LIMITS[kind]

    def name(v):
        if kind == "month" and draw(st.booleans()):
            return _MONTH_NAMES[v - 1]
        if kind == "dow" and v < 7 and draw(st.booleans()):
            return _DOW_NAMES[v]
        return str(v)

    shape = draw(st.sampled_from(["star", "star-step", "value", "range", "range-step", "list"]))
    if shape == "star":
        return "*", set(range(lo, hi + 1))
    if shape == "star-step":
        k = draw(st.integers(1, hi - lo + 1))
        return f"*/{k}", set(range(lo, hi + 1, k))
    items, values = [], set()
    for _ in range(draw(st.integers(1, 3)) if shape == "list" else 1):
        a = draw(st.integers(lo, hi))
        if shape in ("value", "list") and draw(st.booleans()):
            items.append(name(a))
            values.add(a)
            continue
        b = draw(st.integers(a, hi))
        k = draw(st.integers(1, 12)) if shape == "range-step" or draw(st.booleans()) else 1
        items.append(f"{name(a)}-{name(b)}" + (f"/{k}" if k > 1 else ""))
        values |= set(range(a, b + 1, k))
    return ",".join(items), values


@st.composite
def _expressions(draw):
    fields = [draw(_field(kind)) for kind in ("minute", "hour", "dom", "month", "dow")]
    text = " ".join(f[0] for f in fields)
    minute, hour, dom, month, dow = (f[1] for f in fields)
    dow = {d % 7 for d in dow}
    # POSIX crontab: when both day fields are restricted (not '*'), a day matching either runs.
    either = fields[2][0] != "*" and fields[4][0] != "*"
    return text, minute, hour, dom, month, dow, either


def _expected_runs(minute, hour, dom, month, dow, either, after, n):
    out: list[datetime] = []
    day = after.date()
    for _ in range(366 * 30):
        dom_ok, dow_ok = day.day in dom, day.isoweekday() % 7 in dow
        if day.month in month and ((dom_ok or dow_ok) if either else (dom_ok and dow_ok)):
            for h in sorted(hour):
                for m in sorted(minute):
                    t = datetime.combine(day, time(h, m))
                    if t > after:
                        out.append(t)
                        if len(out) == n:
                            return out
        day += timedelta(days=1)
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_expressions(), st.datetimes(min_value=D(2000, 1, 1), max_value=D(2090, 12, 31)), st.integers(1, 6))
def test_next_runs_property(case, after, n):
    text, minute, hour, dom, month, dow, either = case
    try:
        spec = parse_cron(text)
    except ConfigError as e:
        fields = text.split()
        ambiguous = either and (fields[2].startswith("*") or fields[4].startswith("*"))
        never = (
            not either
            and fields[4] == "*"
            and not any(d <= calendar.monthrange(2024, m)[1] for d in dom for m in month)
        )
        assert ambiguous or never, e
        return
    runs = next_runs(spec, after, n)
    assert all(a < b for a, b in zip(runs, runs[1:], strict=False))
    assert all(r > after and spec.matches(r) for r in runs)
    assert runs == _expected_runs(minute, hour, dom, month, dow, either, after, n)


# --- crontab line -------------------------------------------------------------------------------------------------


def test_crontab_line_exact():
    line = crontab_line("0 8 1 * *", Path("/srv/briefings"), "/opt/reportgen/.venv/bin/reportgen")
    assert line == (
        "0 8 1 * * cd /srv/briefings && mkdir -p output && "
        f"{ENV}/opt/reportgen/.venv/bin/reportgen run "
        ">> /srv/briefings/output/run.log 2>&1"
    )


def test_crontab_line_quotes_spaces_and_escapes_percent():
    line = crontab_line("@monthly", Path("/home/ana/IR briefings 100%"), "/opt/re port/bin/reportgen")
    assert line == (
        "0 0 1 * * cd '/home/ana/IR briefings 100\\%' && mkdir -p output && "
        f"{ENV}'/opt/re port/bin/reportgen' run >> '/home/ana/IR briefings 100\\%/output/run.log' 2>&1"
    )


def test_crontab_line_makes_paths_absolute(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "reportgen"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", str(bindir))
    monkeypatch.chdir(tmp_path)
    line = crontab_line("0 8 1 * *", Path("ws"), "reportgen")
    assert line == (
        f"0 8 1 * * cd {tmp_path}/ws && mkdir -p output && {ENV}{exe} run >> {tmp_path}/ws/output/run.log 2>&1"
    )


def test_crontab_line_unknown_program(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="cannot find the program 'reportgen' on PATH"):
        crontab_line("0 8 1 * *", Path("/srv/ws"), "reportgen")


def test_crontab_line_refuses_line_breaks():
    with pytest.raises(ConfigError, match="line break"):
        crontab_line("0 8 1 * *", Path("/srv/a\nb"), "/usr/bin/reportgen")


# --- systemd units ------------------------------------------------------------------------------------------------

EXPECTED_SERVICE = """\
[Unit]
Description=reportgen: build and send the due briefing (/srv/briefings)

[Service]
Type=oneshot
WorkingDirectory=/srv/briefings
# Secrets such as REPORTGEN_SMTP_PASSWORD=... (one per line); the leading - makes the file optional.
EnvironmentFile=-%h/.config/reportgen/env
ExecStart=/opt/reportgen/.venv/bin/reportgen run
# 75: another run held the lock and is doing the work.
SuccessExitStatus=75
"""

EXPECTED_TIMER = """\
[Unit]
Description=reportgen schedule (0 8 1 * *)

[Timer]
OnCalendar=*-*-01 08:00:00
Persistent=true

[Install]
WantedBy=timers.target
"""


def test_systemd_units_exact():
    service, timer = systemd_units("0 8 1 * *", Path("/srv/briefings"), "/opt/reportgen/.venv/bin/reportgen")
    assert service == EXPECTED_SERVICE
    assert timer == EXPECTED_TIMER


def test_systemd_units_day_or_weekday_gives_two_events():
    _, timer = systemd_units("0 8 1 * mon", Path("/srv/briefings"), "/usr/bin/reportgen")
    assert "OnCalendar=*-*-01 08:00:00\nOnCalendar=Mon *-*-* 08:00:00\nPersistent=true\n" in timer


def test_systemd_units_escape_specifiers_and_quote():
    service, _ = systemd_units("0 8 1 * *", Path("/srv/IR 100%"), "/opt/my venv/bin/reportgen")
    assert "WorkingDirectory=/srv/IR 100%%\n" in service
    assert 'ExecStart="/opt/my venv/bin/reportgen" run\n' in service
    with pytest.raises(ConfigError, match="backslash"):
        systemd_units("0 8 1 * *", Path("/srv/ws"), "/opt/a\\b/reportgen")


CALENDAR_CASES = [
    ("monthly", "0 8 1 * *", ["*-*-01 08:00:00"]),
    ("weekdays-every-15-min", "*/15 8-17 * * 1-5", ["Mon..Fri *-*-* 08..17:00,15,30,45:00"]),
    ("every-5-min", "*/5 * * * *", ["*-*-* *:00,05,10,15,20,25,30,35,40,45,50,55:00"]),
    ("quarter-months", "0 8 1 */3 *", ["*-01,04,07,10-01 08:00:00"]),
    ("weekend", "30 6 * * sat,sun", ["Sat,Sun *-*-* 06:30:00"]),
    ("sunday-0-and-7", "0 9 * * 0", ["Sun *-*-* 09:00:00"]),
    ("weekday-step", "0 8 * * 1-7/2", ["Mon,Wed,Fri,Sun *-*-* 08:00:00"]),
    ("mixed-lists", "5,10-12,40 */6 * jan-mar,dec *", ["*-01..03,12-* 00,06,12,18:05,10..12,40:00"]),
    ("hour-step-range", "0 6-20/2 * * *", ["*-*-* 06,08,10,12,14,16,18,20:00:00"]),
    ("hour-step-to-the-end", "0 6-22/2 * * *", ["*-*-* 06,08,10,12,14,16,18,20,22:00:00"]),
    ("day-step-across-new-year", "3 0 1-29/4 * *", ["*-*-01,05,09,13,17,21,25,29 00:03:00"]),
    ("day-or-weekday", "0 8 1,15 * mon", ["*-*-01,15 08:00:00", "Mon *-*-* 08:00:00"]),
    ("day-or-all-weekdays", "0 8 1 * 0-6", ["*-*-* 08:00:00"]),
    ("leap-day", "0 0 29 2 *", ["*-02-29 00:00:00"]),
]


@pytest.mark.parametrize(("expr", "events"), [c[1:] for c in CALENDAR_CASES], ids=[c[0] for c in CALENDAR_CASES])
def test_on_calendar(expr, events):
    assert on_calendar(expr) == events


_ELAPSE = re.compile(r"(?:Next elapse|Iter\. #\d+): \w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)")


def _systemd_next(events: list[str], base: datetime, n: int) -> list[datetime]:
    """What systemd itself computes for the events (a timer elapses at any of them), in UTC."""
    out: set[datetime] = set()
    for event in events:
        proc = subprocess.run(
            ["systemd-analyze", "calendar", f"--iterations={n}", f"--base-time={base:%Y-%m-%d %H:%M:%S}", event],
            capture_output=True,
            text=True,
            env={**os.environ, "TZ": "UTC"},
        )
        if "--base-time" in proc.stderr or "unrecognized option" in proc.stderr:
            pytest.skip("this systemd-analyze has no --base-time")
        assert proc.returncode == 0, proc.stderr
        out |= {datetime.strptime(t, "%Y-%m-%d %H:%M:%S") for t in _ELAPSE.findall(proc.stdout)}
    return sorted(out)[:n]


needs_systemd = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")


@needs_systemd
@pytest.mark.parametrize("expr", [c[1] for c in CALENDAR_CASES], ids=[c[0] for c in CALENDAR_CASES])
def test_on_calendar_agrees_with_systemd(expr):
    base = D(2025, 1, 30, 9, 0)
    assert _systemd_next(on_calendar(expr), base, 8) == next_runs(expr, base, 8)


@needs_systemd
@settings(max_examples=60, deadline=None)
@given(
    _expressions(),
    st.datetimes(min_value=D(2001, 1, 1), max_value=D(2080, 12, 31)).map(lambda d: d.replace(microsecond=0)),
)
def test_on_calendar_agrees_with_systemd_property(case, base):
    text = case[0]
    try:
        spec = parse_cron(text)
    except ConfigError:
        assume(False)
    assume(next_runs(spec, base, 4)[-1] < D(2099, 1, 1))
    assert _systemd_next(on_calendar(spec), base, 4) == next_runs(spec, base, 4)


# --- the run lock -------------------------------------------------------------------------------------------------

HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from reportgen.ledger import Lock as RunLock
    with RunLock(Path(sys.argv[1])):
        print("locked", flush=True)
        time.sleep(60)
""")

TRY_LOCK = textwrap.dedent("""
    import sys
    from pathlib import Path
    from reportgen.ledger import Lock as RunLock, LockHeld
    try:
        with RunLock(Path(sys.argv[1])):
            print("got it", flush=True)
    except LockHeld as e:
        print(e, flush=True)
        sys.exit(e.exit_code)
""")


@pytest.fixture
def holder_process(tmp_path):
    """A separate process holding the lock on tmp_path/output/.run.lock until killed."""
    path = tmp_path / "output" / ".run.lock"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield proc, path
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()


def test_lock_held_by_another_process_then_taken_after_sigkill(holder_process):
    proc, path = holder_process
    with pytest.raises(LockHeld) as info:
        RunLock(path).acquire()
    assert info.value.pid == proc.pid
    assert f"pid {proc.pid} on {socket.gethostname()}" in str(info.value)
    assert info.value.exit_code == 75
    assert isinstance(info.value, ReportgenError)

    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert read_lock_holder(path)["pid"] == str(proc.pid)  # a killed run leaves its details, not its lock
    with RunLock(path) as lock:
        assert lock.locked
        assert read_lock_holder(path)["pid"] == str(os.getpid())


def test_other_process_refused_while_we_hold(tmp_path):
    path = tmp_path / ".run.lock"
    with RunLock(path):
        proc = subprocess.run([sys.executable, "-c", TRY_LOCK, str(path)], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 75, proc.stderr
        assert f"pid {os.getpid()}" in proc.stdout
        assert "holds the run lock" in proc.stdout
    proc = subprocess.run([sys.executable, "-c", TRY_LOCK, str(path)], capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout) == (0, "got it\n")


def test_lock_file_records_the_holder_and_is_emptied_on_release(tmp_path):
    path = tmp_path / "deep" / "er" / ".run.lock"
    before = datetime.now().astimezone().replace(microsecond=0)
    with RunLock(path):
        holder = read_lock_holder(path)
        assert holder["pid"] == str(os.getpid())
        assert holder["hostname"] == socket.gethostname()
        assert datetime.fromisoformat(holder["started"]) >= before
        # A second lock object on the same file is refused, even in the same process (flock is per open file).
        with pytest.raises(LockHeld, match=f"pid {os.getpid()}"):
            RunLock(path).acquire()
    assert path.exists() and path.read_text() == ""
    with RunLock(path):  # and can be taken again
        pass


def test_lock_unknown_holder_details(tmp_path):
    path = tmp_path / ".run.lock"
    lock = RunLock(path).acquire()
    try:
        path.write_text("scribbled over\n")
        with pytest.raises(LockHeld) as info:
            RunLock(path).acquire()
        assert info.value.pid is None
        assert "pid unknown" in str(info.value)
    finally:
        lock.release()


def test_lock_same_object_twice_is_a_bug(tmp_path):
    lock = RunLock(tmp_path / ".run.lock")
    with lock:
        with pytest.raises(RuntimeError):
            lock.acquire()
    assert not lock.locked
    lock.release()  # releasing when not held does nothing


def test_lock_refuses_a_symlink(tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    (tmp_path / ".run.lock").symlink_to(target)
    with pytest.raises(ReportgenError, match="is a symbolic link; a lock is a file of the workspace"):
        RunLock(tmp_path / ".run.lock").acquire()
    assert target.read_text() == "keep me"


# --- which edition is due -----------------------------------------------------------------------------------------

Q = Quarter.parse
DUE_CASES = [
    # (id, available peers per quarter, subject has, now, min_peers, publish_partial, expected)
    ("complete-latest", {"2025Q1": 9, "2025Q2": 9}, {"2025Q1", "2025Q2"}, D(2025, 8, 15), 5, False, "2025Q2"),
    (
        "latest-short-of-peers-falls-back",
        {"2025Q1": 9, "2025Q2": 3},
        {"2025Q1", "2025Q2"},
        D(2025, 8, 15),
        5,
        False,
        "2025Q1",
    ),
    ("exactly-min-peers", {"2025Q2": 5}, {"2025Q2"}, D(2025, 8, 15), 5, False, "2025Q2"),
    ("partial-publishes-latest", {"2025Q1": 9, "2025Q2": 3}, {"2025Q1", "2025Q2"}, D(2025, 8, 15), 5, True, "2025Q2"),
    (
        "partial-still-needs-one-peer",
        {"2025Q1": 9, "2025Q2": 0},
        {"2025Q1", "2025Q2"},
        D(2025, 8, 15),
        5,
        True,
        "2025Q1",
    ),
    ("partial-quarter-missing-from-available", {"2025Q1": 9}, {"2025Q1", "2025Q2"}, D(2025, 8, 15), 5, True, "2025Q1"),
    ("subject-missing-latest", {"2025Q1": 9, "2025Q2": 9}, {"2025Q1"}, D(2025, 8, 15), 5, False, "2025Q1"),
    (
        "quarter-not-ended-yet",
        {"2025Q1": 9, "2025Q2": 9},
        {"2025Q1", "2025Q2"},
        D(2025, 6, 30, 23, 59),
        5,
        False,
        "2025Q1",
    ),
    (
        "quarter-ended-at-midnight",
        {"2025Q1": 9, "2025Q2": 9},
        {"2025Q1", "2025Q2"},
        D(2025, 7, 1, 0, 0),
        5,
        False,
        "2025Q2",
    ),
    ("q4-over-on-new-year", {"2025Q4": 5}, {"2025Q4"}, D(2026, 1, 1, 8), 5, False, "2025Q4"),
    ("q4-not-over-on-new-years-eve", {"2025Q4": 5}, {"2025Q4"}, D(2025, 12, 31, 23), 5, False, None),
    ("no-quarter-has-enough-peers", {"2025Q1": 4, "2025Q2": 2}, {"2025Q1", "2025Q2"}, D(2025, 8, 15), 5, False, None),
    ("subject-has-nothing", {"2025Q1": 9}, set(), D(2025, 8, 15), 5, False, None),
    ("min-peers-zero", {}, {"2025Q2"}, D(2025, 8, 15), 0, False, "2025Q2"),
    ("partial-never-stricter-than-min", {}, {"2025Q2"}, D(2025, 8, 15), 0, True, "2025Q2"),
    ("aware-now", {"2025Q2": 9}, {"2025Q2"}, D(2025, 7, 1, 0, 30, tzinfo=timezone.utc), 5, False, "2025Q2"),
    ("older-years", {"2023Q4": 9, "2024Q4": 9}, {"2023Q4", "2024Q4"}, D(2025, 3, 1), 5, False, "2024Q4"),
]


@pytest.mark.parametrize(
    ("available", "subject_has", "now", "min_peers", "partial", "expected"),
    [c[1:] for c in DUE_CASES],
    ids=[c[0] for c in DUE_CASES],
)
def test_due_quarter(available, subject_has, now, min_peers, partial, expected):
    got = due_quarter({Q(k): v for k, v in available.items()}, {Q(s) for s in subject_has}, now, min_peers, partial)
    assert got == (None if expected is None else Q(expected))


# --- the foreground loop ------------------------------------------------------------------------------------------


class FakeClock:
    """now() and sleep(seconds) without waiting; run(when) records calls and may take time."""

    def __init__(self, start: datetime, run_takes: timedelta = timedelta(seconds=20), fail: Exception | None = None):
        self.now_value = start
        self.sleeps: list[float] = []
        self.calls: list[tuple[datetime, datetime]] = []
        self.run_takes = run_takes
        self.fail = fail

    def now(self) -> datetime:
        return self.now_value

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now_value += timedelta(seconds=seconds)

    def run(self, when: datetime) -> None:
        self.calls.append((when, self.now_value))
        self.now_value += self.run_takes
        if self.fail:
            raise self.fail


UTC = timezone.utc


def test_sleep_until_next_runs_on_time():
    clock = FakeClock(D(2025, 1, 15, 12, 0, tzinfo=UTC))
    assert sleep_until_next("0 8 1 * *", clock.now, clock.sleep, clock.run, max_runs=2) == 2
    first, second = D(2025, 2, 1, 8, tzinfo=UTC), D(2025, 3, 1, 8, tzinfo=UTC)
    assert clock.calls == [(first, first), (second, second)]
    assert max(clock.sleeps) <= 600
    waited = (first - D(2025, 1, 15, 12, tzinfo=UTC)) + (second - first - timedelta(seconds=20))
    assert sum(clock.sleeps) == pytest.approx(waited.total_seconds())


def test_sleep_until_next_naive_local_clock():
    clock = FakeClock(D(2025, 1, 15, 7, 58, 30))
    sleep_until_next("0 8 * * *", clock.now, clock.sleep, clock.run, max_runs=1)
    assert clock.calls == [(D(2025, 1, 15, 8, 0), D(2025, 1, 15, 8, 0))]
    assert clock.sleeps == [90.0]


def test_sleep_until_next_skips_times_missed_by_a_long_run(caplog):
    clock = FakeClock(D(2025, 1, 15, 10, 1, tzinfo=UTC), run_takes=timedelta(minutes=12))
    with caplog.at_level(logging.WARNING, logger="reportgen.schedule"):
        sleep_until_next("*/5 * * * *", clock.now, clock.sleep, clock.run, max_runs=3)
    assert [c[0] for c in clock.calls] == [D(2025, 1, 15, 10, m, tzinfo=UTC) for m in (5, 20, 35)]
    assert "skipping run times missed" in caplog.text


def test_sleep_until_next_run_ending_on_the_next_time_still_runs_it():
    clock = FakeClock(D(2025, 1, 15, 10, 1, tzinfo=UTC), run_takes=timedelta(minutes=5))
    sleep_until_next("*/5 * * * *", clock.now, clock.sleep, clock.run, max_runs=3)
    assert [c[0] for c in clock.calls] == [D(2025, 1, 15, 10, m, tzinfo=UTC) for m in (5, 10, 15)]


def test_sleep_until_next_goes_on_after_a_failed_run(caplog):
    clock = FakeClock(D(2025, 1, 15, 10, 1, tzinfo=UTC), fail=ConfigError("no reportgen.toml here"))
    with caplog.at_level(logging.ERROR, logger="reportgen.schedule"):
        assert sleep_until_next("*/5 * * * *", clock.now, clock.sleep, clock.run, max_runs=2) == 2
    assert len(clock.calls) == 2
    assert "failed: no reportgen.toml here" in caplog.text


def test_sleep_until_next_goes_on_when_another_run_holds_the_lock(caplog):
    clock = FakeClock(D(2025, 1, 15, 10, 1, tzinfo=UTC), fail=LockHeld("another reportgen run (pid 42) holds it"))
    with caplog.at_level(logging.WARNING, logger="reportgen.schedule"):
        assert sleep_until_next("*/5 * * * *", clock.now, clock.sleep, clock.run, max_runs=2) == 2
    assert len(clock.calls) == 2
    assert "skipped: another reportgen run (pid 42) holds it" in caplog.text


@pytest.mark.parametrize(
    "error",
    [ZeroDivisionError("bug"), OSError(28, "No space left on device"), MemoryError()],
    ids=["bug", "disk-full", "memory"],
)
def test_sleep_until_next_goes_on_after_any_error(caplog, error):
    """A container's only process: one failed run, whatever failed, must not stop the schedule for good."""
    import sqlite3

    clock = FakeClock(D(2025, 1, 15, 10, 1, tzinfo=UTC), fail=error)
    with caplog.at_level(logging.ERROR, logger="reportgen.schedule"):
        assert sleep_until_next("*/5 * * * *", clock.now, clock.sleep, clock.run, max_runs=3) == 3
    assert len(clock.calls) == 3
    assert caplog.text.count(f"failed: {type(error).__name__}") == 3
    clock = FakeClock(D(2025, 1, 15, 10, 1, tzinfo=UTC), fail=sqlite3.OperationalError("database is locked"))
    assert sleep_until_next("*/5 * * * *", clock.now, clock.sleep, clock.run, max_runs=2) == 2


@pytest.mark.parametrize("stop", [KeyboardInterrupt, SystemExit], ids=["sigint", "sigterm"])
def test_sleep_until_next_stops_only_when_told(stop):
    clock = FakeClock(D(2025, 1, 15, 10, 1, tzinfo=UTC), fail=stop())
    with pytest.raises(stop):
        sleep_until_next("*/5 * * * *", clock.now, clock.sleep, clock.run)
    assert len(clock.calls) == 1


def test_sleep_until_next_bad_schedule_fails_before_waiting():
    clock = FakeClock(D(2025, 1, 15, tzinfo=UTC))
    with pytest.raises(ConfigError, match="minute 61"):
        sleep_until_next("61 8 1 * *", clock.now, clock.sleep, clock.run)
    assert clock.sleeps == [] and clock.calls == []


def test_schedule_module_imports_nothing_heavy():
    code = "import sys, json, reportgen.schedule; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = {m.split(".")[0] for m in json.loads(out)}
    assert not loaded & {"click", "jinja2", "matplotlib", "weasyprint", "smtplib", "openpyxl", "pandas"}


def test_default_schedule_matches_settings():
    from reportgen.config import Settings
    from reportgen.schedule import DEFAULT_CRON

    assert Settings().schedule_cron == DEFAULT_CRON
    assert next_runs(Settings().schedule_cron, D(2025, 6, 2), 1) == [D(2025, 7, 1, 8)]
