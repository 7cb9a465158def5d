"""Command-line interface: options in, one library call, output out. The one place errors become messages."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from . import __version__
from .errors import Problems, ReportgenError
from .periods import Quarter, parse_range

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}
log = logging.getLogger("reportgen")


LATEST = "latest"


class QuarterType(click.ParamType):
    """`2025Q2` -> Quarter (or `latest`, resolved once the workspace is open); rejects `2025Q5` before any file is
    read."""

    name = "quarter"

    def convert(self, value, param, ctx):
        if isinstance(value, Quarter) or value == LATEST:
            return value
        if str(value).strip().lower() == LATEST:
            return LATEST
        try:
            return Quarter.parse(value)
        except ReportgenError as e:
            self.fail(e.message, param, ctx)


class QuarterRangeType(click.ParamType):
    """`2025Q2` or `2024Q3..2025Q2` -> list of Quarter."""

    name = "quarter[..quarter]"

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        if str(value).strip().lower() == LATEST:
            return [LATEST]
        try:
            quarters = parse_range(value)
        except ReportgenError as e:
            self.fail(e.message, param, ctx)
        if len(quarters) > 40:
            self.fail(f"'{value}' spans {len(quarters)} quarters; at most 40 at once", param, ctx)
        return quarters


class LanguagesType(click.ParamType):
    """One language or several, comma-separated: en, zh-CN, zh-CN,en."""

    name = "LANG[,LANG]"

    def convert(self, value, param, ctx):
        from .i18n import LANGUAGES

        if isinstance(value, tuple):
            return value
        langs = tuple(dict.fromkeys(x.strip() for x in str(value).split(",") if x.strip()))
        unknown = [x for x in langs if x not in LANGUAGES]
        if not langs or unknown:
            self.fail(f"{value!r}: choose from {', '.join(LANGUAGES)} (several: zh-CN,en)", param, ctx)
        return langs


class ReportgenGroup(click.Group):
    """Turns a ReportgenError into `Error: FILE:LINE: field: message` and exit status 1 (or a traceback
    with --debug)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ReportgenError as e:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            err = click.ClickException(str(e))
            err.exit_code = e.exit_code  # e.g. 75 when another run holds the lock
            raise err from None
        except OSError as e:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            where = f"{e.filename}: " if getattr(e, "filename", None) else ""
            raise click.ClickException(f"{where}{e.strerror or e}") from None


def workspace_of(ctx) -> Path:
    """The workspace a command works in, found as git finds its repository: the folder given with -C (or
    REPORTGEN_WORKSPACE), else the current folder or the nearest one above it that has reportgen.toml. Said
    plainly when there is none."""
    from .config import CONFIG_NAME
    from .errors import ConfigError

    obj = ctx.find_root().obj
    if obj.get("resolved") is not None:
        return obj["resolved"]
    given = obj.get("workspace")
    if given is not None:
        root = Path(given)
        if not root.is_dir():
            raise ConfigError("no such folder; -C (or REPORTGEN_WORKSPACE) must name a workspace folder", str(root))
        if not (root / CONFIG_NAME).is_file():
            raise ConfigError(
                f"not a reportgen workspace (no {CONFIG_NAME} in it); run `reportgen init {root}` to make one",
                str(root),
            )
    else:
        here = Path.cwd()
        root = next((d for d in (here, *here.parents) if (d / CONFIG_NAME).is_file()), None)
        if root is None:
            raise ConfigError(
                f"no reportgen workspace here or in any folder above (no {CONFIG_NAME}); pass -C DIR, or run "
                "`reportgen init DIR` to make one",
                str(here),
            )
        if root != here:
            log.info("workspace: %s", root)
    obj["resolved"] = root
    return root


@click.group(cls=ReportgenGroup, context_settings=CONTEXT_SETTINGS)
@click.option(
    "-C",
    "--workspace",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    envvar="REPORTGEN_WORKSPACE",
    help="Workspace folder (has reportgen.toml). Default: the current folder or the nearest one above it with one.",
)
@click.option("--debug", is_flag=True, help="Show Python tracebacks instead of short messages.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
@click.version_option(__version__, prog_name="reportgen")
@click.pass_context
def cli(ctx, workspace, debug, quiet):
    """Peer-comparison briefings from published financial statements.

    \b
    Example:
        reportgen build --quarter 2025Q2
        reportgen metrics --quarter 2025Q2 --format json
    """
    ctx.ensure_object(dict)
    ctx.obj.update(workspace=workspace, debug=debug, quiet=quiet)
    _configure_logging(quiet)


class _StderrHandler(logging.Handler):
    """Writes to whatever sys.stderr is at the time (so click's test runner captures it too)."""

    def emit(self, record):
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # a logging failure must never stop a build
            self.handleError(record)


def _configure_logging(quiet: bool) -> None:
    """Progress lines of reportgen on stderr; libraries only when something is wrong."""
    logger = logging.getLogger("reportgen")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    # WeasyPrint warns about every SVG presentation property inside inline charts; they render fine.
    logging.getLogger("weasyprint").setLevel(logging.ERROR)


class _progress_bar:
    """`with _progress_bar(ctx, label) as on_rendered:` a progress bar on stderr while editions render in parallel
    (one step per edition and language), shown only on a terminal and never with -q."""

    def __init__(self, ctx, label: str):
        self.show = not ctx.find_root().obj.get("quiet") and sys.stderr.isatty()
        self.label, self.bar = label, None

    def __enter__(self):
        return self.step if self.show else None

    def step(self, quarter, lang, total) -> None:
        if self.bar is None:
            self.bar = click.progressbar(length=total, label=self.label, file=sys.stderr, show_pos=True)
            self.bar.__enter__()
        self.bar.update(1, f"{quarter} {lang}")
        if self.bar.pos >= total:  # ended with its line, before the build says what it wrote
            self.__exit__(None, None, None)

    def __exit__(self, *exc):
        if self.bar is not None:
            bar, self.bar = self.bar, None
            bar.__exit__(*exc)


def quarter_option(required=True):
    return click.option(
        "--quarter",
        type=QuarterType(),
        required=required,
        help="Calendar quarter, e.g. 2025Q2, or `latest`: the quarter a scheduled run would publish now.",
    )


def _resolve(ctx, quarter):
    """A quarter as given, or the one `latest` stands for (printed, so the reader knows which)."""
    if quarter != LATEST:
        return quarter
    from . import pipeline

    q = pipeline.latest_quarter(workspace_of(ctx))
    log.info("latest quarter: %s", q)
    return q


class MetricListType(click.ParamType):
    """`revenue,gross_margin` -> a list of metric ids of the catalogue."""

    name = "id,id"

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        from .metrics import BY_ID, REVENUE_SHARE

        ids = [v.strip() for v in value.split(",") if v.strip()]
        unknown = [i for i in ids if i not in BY_ID and i != REVENUE_SHARE.id]  # a segment metric, with --segments
        if unknown or not ids:
            self.fail(f"unknown metric '{unknown[0] if unknown else value}'; known: {', '.join(BY_ID)}", param, ctx)
        return ids


def _metrics_help() -> str:
    from .metrics import METRICS

    return ", ".join(m.id for m in METRICS)


@cli.command(
    help=f"""Print the computed metric table: one record per (company, metric).

    Values are plain fractions for ratios and growth (0.065 = 6.5%) and RMB million for amounts.
    Metric ids: {_metrics_help()}.

    \b
    Example:
        reportgen metrics --quarter 2025Q2 --basis ytd --format csv > h1.csv
        reportgen metrics --quarter 2025Q2 --metrics selling_expense_ratio,gross_margin --peer-stats
    """
)
@quarter_option()
@click.option(
    "--basis",
    type=click.Choice(["quarter", "ytd"]),
    default="quarter",
    show_default=True,
    help="Single quarter, or year to date (2025Q2 ytd = first half).",
)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--metrics", "metric_ids", type=MetricListType(), help="Only these metrics (comma-separated ids).")
@click.option("--peer-stats", is_flag=True, help="Add each group's median and mean and the subject's rank.")
@click.option(
    "--segments", is_flag=True, help="Add the subject's segments (revenue, growth, gross margin, share of revenue)."
)
@click.pass_context
def metrics(ctx, quarter, basis, fmt, metric_ids, peer_stats, segments):
    from . import export, pipeline

    quarter = _resolve(ctx, quarter)
    c = pipeline.open_workspace(workspace_of(ctx), [quarter], trend=False)
    table = pipeline.metric_table(c, quarter, basis, segments=segments)
    stats = pipeline.group_stats(c, table) if peer_stats else None
    if metric_ids:
        table = table[table.metric.isin(metric_ids)]
        stats = None if stats is None else stats[stats.metric.isin(metric_ids)]
    if fmt == "json":
        click.echo(json.dumps(export.records(table, stats), ensure_ascii=False, indent=2))
    elif fmt == "csv":
        click.echo(export.csv_text(table, stats), nl=False)
    else:
        labels = {g.id: g.label for g in c.settings.groups} | {"segment": "Segments"}
        shown = metric_ids or [m for m in c.settings.metrics if m in set(table.metric)]
        click.echo(export.table_text(table, stats, shown, group_labels=labels, fit=not metric_ids))


@cli.command()
@click.pass_context
def validate(ctx):
    """Check every data and config file; list each problem as FILE:LINE: field: message.

    \b
    Example:
        reportgen -C my-workspace validate
    """
    from . import pipeline

    warnings: list = []
    problems = pipeline.validate(workspace_of(ctx), warnings)
    for w in warnings:
        click.echo(f"Warning: {w}", err=True)
    if problems:
        raise Problems(problems)
    if not ctx.find_root().obj.get("quiet"):  # -q: errors only; the exit status says it is valid
        click.echo("All data and config files are valid." + (" (see the warnings above)" if warnings else ""), err=True)


@cli.command()
@click.option(
    "--quarter",
    "quarters",
    type=QuarterRangeType(),
    required=True,
    help="A quarter (2025Q2), a range (2024Q3..2025Q2), or `latest` (the quarter a scheduled run would publish).",
)
@click.option(
    "--date",
    "edition_date",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="Edition date (default: SOURCE_DATE_EPOCH's date, else today).",
)
@click.option("--force", is_flag=True, help="Rebuild even when nothing changed since the last build.")
@click.option(
    "--lang",
    "languages",
    type=LanguagesType(),
    default=None,
    help="Languages of the briefing: en, zh-CN or both (zh-CN,en) (default: the report's and the mailing lists').",
)
@click.pass_context
def build(ctx, quarters, edition_date, force, languages):
    """Build output/<quarter>/: the HTML and PDF briefing, metrics CSV and XLSX, manifest.json.

    An edition whose inputs and files are unchanged since its build is left as it is (--force rebuilds it).

    \b
    Example:
        reportgen build --quarter 2025Q2
        reportgen build --quarter 2024Q3..2025Q2
    """
    from . import pipeline

    quarters = [_resolve(ctx, q) for q in quarters]
    with _progress_bar(ctx, "rendering") as on_rendered:
        editions = pipeline.build(
            workspace_of(ctx),
            quarters,
            edition_date.date() if edition_date else None,
            progress=log.info,
            force=force,
            languages=languages,
            on_rendered=on_rendered,
        )
    for e in editions:
        for names in pipeline.briefing_names(pipeline.languages_of(e.manifest)).values():
            click.echo(str(e.path / names["pdf"]))


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace files that differ from the defaults (and list them).")
@click.option(
    "--example",
    default=None,
    metavar="NAME",
    help="Also lay an example over the workspace, e.g. global_anchors (Apple and Tesla as a peer group).",
)
def init(directory, force, example):
    """Create a workspace in DIRECTORY from the packaged defaults (Xiaomi and nine peers).

    Writes only the files that are missing: a file already there is never overwritten (it is listed as kept);
    --force replaces the files that differ from the defaults and lists them.

    \b
    Example:
        reportgen init ~/briefings && reportgen -C ~/briefings build --quarter 2025Q2
    """
    from . import pipeline

    if example is not None and example not in pipeline.examples():
        raise click.BadParameter(
            f"no example '{example}'; known: {', '.join(pipeline.examples())}", param_hint="--example"
        )
    report = pipeline.init_workspace(directory, force)
    extended: list = []
    if example:
        created, extended = pipeline.apply_example(directory, example)
        report.written += [p for p in created if p not in report.written]
    for p in report.written:
        click.echo(f"wrote     {p}" + (f" (with the {example} example's entries)" if p in extended else ""))
    for p in report.replaced:
        click.echo(f"replaced  {p}")
    for p in report.kept:
        click.echo(f"kept      {p} (yours differs from the default; --force replaces it)")
    for p, why in report.skipped:
        click.echo(f"skipped   {p} ({why}; nothing was written there)")
    for p in [p for p in extended if p not in report.written]:
        click.echo(f"added to  {p} (the {example} example's entries; what was there is kept)")
    if report.kept:
        log.warning("%d existing file(s) kept as they are; nothing of yours was overwritten", len(report.kept))
    if report.skipped:
        log.warning("%d place(s) skipped: see the skipped lines; move them aside to get the defaults there",
                    len(report.skipped))  # fmt: skip
    log.info("workspace ready: reportgen -C %s build --quarter 2025Q2", directory)


@cli.command()
@click.option("--cron", "mode", flag_value="cron", help="Print a crontab line that runs `reportgen run`.")
@click.option("--systemd", "mode", flag_value="systemd", help="Print reportgen.service and reportgen.timer.")
@click.option("--next", "mode", flag_value="next", default=True, help="Print the next run times (default).")
@click.option("--foreground", "mode", flag_value="foreground", help="Sleep until each run time and run (containers).")
@click.option(
    "-n", "count", type=click.IntRange(1, 100), default=5, show_default=True, help="How many times --next shows."
)
@click.pass_context
def schedule(ctx, mode, count):
    """Show or install the schedule from reportgen.toml ([schedule] cron, default monthly 0 8 1 * *).

    \b
    Example:
        (crontab -l; reportgen -C /srv/briefings schedule --cron) | crontab -
        reportgen schedule --systemd
    """
    import shutil as _shutil
    from datetime import datetime

    from . import config, pipeline
    from . import schedule as sched

    root = workspace_of(ctx).resolve()
    settings = config.load_settings(root)
    spec = pipeline.cron_spec(settings)
    exe = _shutil.which("reportgen") or sys.argv[0]
    if mode == "cron":
        click.echo(sched.crontab_line(spec, root, exe))
    elif mode == "systemd":
        service, timer = sched.systemd_units(spec, root, exe)
        click.echo(
            f"# ~/.config/systemd/user/reportgen.service\n{service}\n# ~/.config/systemd/user/reportgen.timer\n{timer}",
            nl=False,
        )
    elif mode == "foreground":
        import signal

        def stop(signum, frame):
            raise SystemExit(0)

        signal.signal(signal.SIGTERM, stop)  # `docker stop`: end between runs, cleanly
        try:
            sched.sleep_until_next(
                spec, datetime.now, __import__("time").sleep, lambda when: pipeline.run(root, progress=log.info)
            )
        except (KeyboardInterrupt, SystemExit):
            log.info("schedule stopped")
    else:
        # in the machine's time zone, said: cron and systemd run by it
        for t in sched.next_runs(spec, datetime.now().astimezone(), count):
            click.echo(f"{t:%Y-%m-%d %H:%M} {t.tzname() or t.strftime('%z')} (UTC{t:%z})")


@cli.command("run")
@click.option(
    "--now",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"]),
    default=None,
    help="Act as if it were this time (ISO, local time), e.g. 2025-10-01T08:00.",
)
@click.pass_context
def run_cmd(ctx, now):
    """The job a schedule calls: build the due edition if its inputs changed, send it to lists that lack it.

    Exit status: 0 done or nothing to do; 75 another run holds the lock; other non-zero a failure.

    \b
    Example:
        reportgen run --now 2025-10-01T08:00
    """
    from . import pipeline
    from .errors import DeliveryError

    report = pipeline.run(workspace_of(ctx), now, progress=log.info)
    if not report.ok:
        failed = [f"{d.list_name}: {d.summary()}" for d in report.deliveries if not d.ok]
        raise DeliveryError("not everything was delivered: " + "; ".join(failed))


@cli.command()
@quarter_option()
@click.option("--list", "list_name", help="Only this mailing list (default: every list in reportgen.toml).")
@click.option("--dry-run", is_flag=True, help="Write the messages as .eml files under output/QUARTER/outbox/.")
@click.option("--resend", is_flag=True, help="Send again to recipients who already received this edition.")
@click.option(
    "--resend-to",
    metavar="ADDRESS",
    multiple=True,
    help="Send again to this recipient of the list (repeatable), e.g. one recorded as in doubt.",
)
@click.option("--test-to", metavar="ADDRESS", help="Send one preview copy to ADDRESS only (recorded apart).")
@click.pass_context
def send(ctx, quarter, list_name, dry_run, resend, resend_to, test_to):
    """Mail the edition (the PDF, and HTML or XLSX where a list asks) to each recipient once; builds it first if needed.

    SMTP settings come from the environment: REPORTGEN_SMTP_HOST, _PORT, _USER, _PASSWORD, _SECURITY
    (starttls, ssl or none) and REPORTGEN_MAIL_FROM. Exit status is non-zero when anyone was not delivered.

    \b
    Example:
        reportgen send --quarter 2025Q2 --test-to me@example.com
        reportgen send --quarter 2025Q2 --list board
    """
    from . import pipeline
    from .errors import DeliveryError

    quarter = _resolve(ctx, quarter)
    reports = pipeline.send(
        workspace_of(ctx), quarter, list_name, dry_run, resend, test_to, progress=log.info, resend_to=resend_to
    )
    for r in reports:
        click.echo(f"{r.list_name}: {r.summary()}")
    failed = [r for r in reports if not r.ok]
    if failed and test_to:
        raise DeliveryError(
            f"the preview to {test_to} was not delivered; `reportgen send --quarter {quarter} --test-to {test_to}` "
            "tries again (a plain `send` would mail the whole list)"
        )
    if failed:
        doubt = " (those in doubt are not mailed again: `--resend-to ADDRESS` does that on purpose)"
        raise DeliveryError(
            "not everything was delivered; `reportgen send` again delivers only what is missing"
            + (doubt if any(r.in_doubt for r in failed) else "")
        )


@cli.command()
@quarter_option()
@click.option("--by", default=None, help="Who approves (default: your user name).")
@click.pass_context
def approve(ctx, quarter, by):
    """Approve the built edition of a quarter for the mailing lists (with require_approval = true under [mail]).

    The next `reportgen run`, or a `reportgen send`, then mails it. A rebuilt edition whose text changed needs
    approval again. `reportgen history` shows who approved which edition and when.

    \b
    Example:
        reportgen approve --quarter 2025Q2
    """
    import getpass

    from . import pipeline

    quarter = _resolve(ctx, quarter)
    who = by or getpass.getuser()
    manifest = pipeline.approve(workspace_of(ctx), quarter, who, progress=log.info)
    click.echo(f"{quarter} {manifest['edition']} approved by {who}")


@cli.command()
@click.pass_context
def history(ctx):
    """List past builds, deliveries and scheduled runs from the workspace's ledger (output/.ledger.sqlite3).

    \b
    Example:
        reportgen history
    """
    from . import pipeline

    rows = pipeline.history(workspace_of(ctx))
    if not rows:
        click.echo("no builds or deliveries yet", err=True)
        return
    for r in rows:
        what = f"{r['list']} -> {r['recipient']}" if r["kind"] in ("mail", "test") else ""
        what = f"by {r['recipient']}" if r["kind"] == "approve" else what
        shown = r["status"] in ("failed", "in doubt")
        reply = f" ({' '.join(str(x) for x in (r['code'], r['reply']) if x)})" if shown else ""
        line = f"{r['at']}  {r['kind']:<7}  {r['quarter']}  {r['edition']}  {r['status']:<9}  {what}{reply}"
        click.echo(line.rstrip())


@cli.command("open")
@quarter_option()
@click.option(
    "--lang",
    "language",
    type=click.Choice(["en", "zh-CN"]),
    default=None,
    help="The briefing in this language, where there are several.",
)
@click.pass_context
def open_cmd(ctx, quarter, language):
    """Open the quarter's PDF briefing with the system's viewer (or print its path where there is none).

    \b
    Example:
        reportgen open --quarter 2025Q2
    """
    import os
    import shutil as _shutil
    import subprocess

    from . import ledger, pipeline
    from .errors import ReportgenError as _Error

    quarter = _resolve(ctx, quarter)
    folder = workspace_of(ctx) / "output" / str(quarter)
    manifest = ledger.read_manifest(folder)
    if manifest is None:
        raise _Error(f"{quarter} has not been built; `reportgen build --quarter {quarter}` first", str(folder))
    names = pipeline.briefing_names(pipeline.languages_of(manifest))
    from .config import load_settings

    preferred = load_settings(workspace_of(ctx)).language
    lang = language or (preferred if preferred in names else next(iter(names)))
    if lang not in names:
        raise _Error(f"no briefing in {lang}; this edition has {', '.join(names)}", str(folder), field="--lang")
    pdf = (folder / names[lang]["pdf"]).resolve()
    if not pdf.is_file():
        raise _Error("the PDF is missing; rebuild the edition with --force", str(pdf))
    viewer = None
    if sys.platform == "darwin":
        viewer = _shutil.which("open")
    elif sys.platform.startswith("linux") and (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        viewer = _shutil.which("xdg-open")
    if sys.platform == "win32":
        os.startfile(pdf)  # noqa: S606 (the system's viewer for a file reportgen wrote)
        return
    if viewer is None:
        click.echo(str(pdf))
        log.info("no viewer to open it with here (no display); the path is above")
        return
    subprocess.Popen([viewer, str(pdf)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    click.echo(str(pdf))


IMPORT_FORMATS = ("akshare-sina", "akshare-hk", "tushare-income", "sec-companyfacts")


def _print_import(report) -> None:
    for line in report.lines():
        click.echo(line)


@cli.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--company", required=True, help="Company id in data/companies.toml, e.g. midea.")
@click.option("--format", "fmt", type=click.Choice(IMPORT_FORMATS), required=True, help="The provider's file format.")
@click.option("--dry-run", is_flag=True, help="Print what would change; write nothing.")
@click.option("--replace", is_flag=True, help="Where a figure differs from the one in the data, take the new one.")
@click.pass_context
def import_cmd(ctx, file, company, fmt, dry_run, replace):
    """Merge a provider's income statement (AKShare, Tushare, SEC EDGAR) into data/financials/COMPANY.csv.

    Figures stay in the company's own form (cumulative stays cumulative), each with the provider as its source.
    Identical figures are left alone; a figure that differs from one already in the data is a conflict, reported
    with both values, and kept as it was unless --replace.

    \b
    Example:
        reportgen import midea-sina.csv --company midea --format akshare-sina --dry-run
        reportgen import nio-companyfacts.json --company nio --format sec-companyfacts
    """
    from . import importers

    report = importers.import_file(workspace_of(ctx), file, company, fmt, dry_run=dry_run, replace=replace)
    _print_import(report)


@cli.command()
@click.option("--company", required=True, help="Company id in data/companies.toml, e.g. midea.")
@click.option("--provider", type=click.Choice(["akshare", "tushare", "sec"]), required=True)
@click.option("--dry-run", is_flag=True, help="Download and print what would change; write nothing to data/.")
@click.option("--replace", is_flag=True, help="Where a figure differs from the one in the data, take the new one.")
@click.pass_context
def fetch(ctx, company, provider, dry_run, replace):
    """Download a company's income statement from a provider, keep the raw file under data/raw/, and import it.

    Needs the optional extra (pip install 'reportgen[fetch]') and the network; Tushare's token comes from
    REPORTGEN_TUSHARE_TOKEN.

    \b
    Example:
        reportgen fetch --company midea --provider akshare
    """
    from . import importers

    report = importers.fetch(workspace_of(ctx), company, provider, dry_run=dry_run, replace=replace, progress=log.info)
    _print_import(report)
