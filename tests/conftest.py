"""Shared fixtures: a CLI runner, a copy of the default workspace, and small hand-made workspaces."""

from __future__ import annotations

import functools
import io
import shutil
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).resolve().parent / "golden"
FIN_HEADER = "period,basis,label,value,unit,currency,vintage,source_url\n"
#: the date and SOURCE_DATE_EPOCH of the shared 2025Q2 edition (2025-12-01)
EDITION_DATE, EPOCH = "2026-11-24", "1764547200"


@functools.lru_cache(maxsize=16)
def _pdf_text(path: str, stamp: tuple) -> tuple[str, ...]:
    from pypdf import PdfReader

    return tuple(p.extract_text() for p in PdfReader(path).pages)


def pdf_pages(pdf: Path) -> list[str]:
    """The text of each page of a PDF as pypdf reads it back. Read once per version of the file (pypdf takes
    seconds on a briefing, and many tests read the same shared edition)."""
    st = Path(pdf).stat()
    return list(_pdf_text(str(Path(pdf).resolve()), (st.st_mtime_ns, st.st_size, st.st_ino)))


def pytest_addoption(parser):
    parser.addoption(
        "--rewrite-golden",
        action="store_true",
        help="Rewrite tests/golden/ from the current code instead of comparing with it (review the diff!).",
    )


def copy_default_workspace(dest: Path) -> Path:
    """A copy of the repository's default workspace (Xiaomi and nine peers) at `dest`."""
    dest.mkdir(parents=True)
    for part in ("reportgen.toml", "data", "templates"):
        src = REPO / part
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / part)
    (dest / "output").mkdir()
    return dest


def shared_build(tmp_path_factory, name: str, *args: str) -> Path:
    """A copy of the default workspace with its 2025Q2 edition built (with `args`), once for the whole session:
    the first xdist worker to ask builds it under a file lock, the others wait for it and read it. Tests must only
    read it (copy it to change it)."""
    import fcntl
    import os

    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # shared by the session's workers
    folder = root / f"shared-{name}"
    with open(root / f"shared-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "built").exists():
            shutil.rmtree(folder, ignore_errors=True)
            ws = copy_default_workspace(folder / "ws")
            res = CliRunner().invoke(
                cli_main(),
                ["-C", str(ws), "build", "--quarter", "2025Q2", "--date", EDITION_DATE, *args],
                env={"SOURCE_DATE_EPOCH": EPOCH},
                catch_exceptions=False,
            )
            assert res.exit_code == 0, res.output
            (folder / "built").write_text("ok\n")
    return folder / "ws"


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """The default workspace's 2025Q2 edition, built once for every test that only reads it:
    (workspace, output/2025Q2)."""
    ws = shared_build(tmp_path_factory, "en")
    return ws, ws / "output" / "2025Q2"


def cli_main():
    from reportgen.cli import cli

    return cli


#: what a workspace keeps in output/ beside its editions (the ledger, the locks, the chart cache): state, not partial
#: output
STATE_FILES = (
    ".ledger.sqlite3",
    ".ledger.sqlite3-wal",
    ".ledger.sqlite3-shm",
    ".editions.lock",
    ".run.lock",
    ".chart-cache",  # charts of successful builds (see charts.cache_in)
)


def leftovers(output: Path) -> list[str]:
    """What output/ holds besides its state files: editions, and whatever a failed build left behind."""
    return sorted(p.name for p in output.iterdir() if p.name not in STATE_FILES)


@pytest.fixture
def rewrite_golden(request) -> bool:
    return request.config.getoption("--rewrite-golden")


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def default_ws(tmp_path) -> Path:
    """A copy of the repository's default workspace (Xiaomi and nine peers)."""
    return copy_default_workspace(tmp_path / "ws")


def write_mini(root: Path, files: dict[str, str]) -> Path:
    """A small synthetic workspace: subject 'alpha' (quarterly, RMB), peers 'beta' (quarterly, HKD) and
    'gamma' (year-to-date A-share, yuan). Figures are invented test data, not company figures.
    `files` overrides or adds files by relative path."""
    base = {
        "reportgen.toml": """
            [report]
            subject = "alpha"
            title = "{subject} vs peers: {quarter} briefing"
            min_peers_reported = 1
            [groups.peers]
            label = "Peers"
            members = ["beta", "gamma"]
        """,
        "data/companies.toml": """
            [alpha]
            name = "Alpha"
            name_zh = "阿尔法"
            ticker = "AAA"
            exchange = "HKEX"
            standard = "IFRS"
            currency = "RMB"
            reporting = "quarterly"
            [beta]
            name = "Beta"
            name_zh = "贝塔"
            ticker = "BBB"
            exchange = "HKEX"
            standard = "IFRS"
            currency = "HKD"
            reporting = "quarterly"
            [gamma]
            name = "Gamma"
            name_zh = "伽马"
            ticker = "000001.SZ"
            exchange = "SZSE"
            standard = "CAS"
            currency = "RMB"
            reporting = "ytd"
        """,
        "data/labels.toml": (REPO / "data" / "labels.toml").read_text(encoding="utf-8"),
        "data/fx.csv": """
            currency,period,basis,rmb_per_unit,source_url
            HKD,2025Q1,3M,0.92,https://example.test/fx
            HKD,2025Q2,3M,0.90,https://example.test/fx
            HKD,2024Q2,3M,0.91,https://example.test/fx
        """,
        "data/financials/alpha.csv": FIN_HEADER
        + """
            2024Q2,3M,Revenue,800,million,RMB,published,https://example.test/a
            2025Q1,3M,Revenue,900,million,RMB,published,https://example.test/a
            2025Q2,3M,Revenue,1000,million,RMB,published,https://example.test/a
            2025Q2,3M,Cost of sales,-750,million,RMB,published,https://example.test/a
            2025Q2,3M,Selling and marketing expenses,-60,million,RMB,published,https://example.test/a
        """,
        "data/financials/beta.csv": FIN_HEADER
        + """
            2024Q2,3M,Revenue,500,million,HKD,published,https://example.test/b
            2025Q1,3M,Revenue,400,million,HKD,published,https://example.test/b
            2025Q2,3M,Revenue,600,million,HKD,published,https://example.test/b
            2025Q2,3M,Selling and distribution expenses,-54,million,HKD,published,https://example.test/b
        """,
        "data/financials/gamma.csv": FIN_HEADER
        + """
            2025Q1,3M,营业收入,300000000,yuan,RMB,published,https://example.test/g
            2025Q1,3M,销售费用,30000000,yuan,RMB,published,https://example.test/g
            2025Q2,6M,营业收入,7.5,hundred_million,RMB,published,https://example.test/g
            2025Q2,6M,销售费用,0.66,hundred_million,RMB,published,https://example.test/g
        """,
    }
    base.update(files)
    for rel, text in base.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if text is None:
            continue
        body = textwrap.dedent(text)
        if rel.endswith(".csv"):
            body = "\n".join(ln.strip() for ln in body.strip().splitlines() if ln.strip()) + "\n"
        p.write_text(body, encoding="utf-8")
    (root / "output").mkdir(exist_ok=True)
    if (REPO / "templates").exists() and not (root / "templates").exists():
        shutil.copytree(REPO / "templates", root / "templates")
    return root


@pytest.fixture
def mini_ws(tmp_path) -> Path:
    return write_mini(tmp_path / "mini", {})


class CountingFile(io.BytesIO):
    """A file that counts the bytes a reader took from it, however it reads (to see that a reader streams)."""

    taken = 0

    def readline(self, size=-1):
        line = super().readline(size)
        self.taken += len(line)
        return line

    def read(self, size=-1):
        data = super().read(size)
        self.taken += len(data)
        return data
