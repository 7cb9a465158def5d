"""Benchmarks: ratios measured side by side in one run, each printed with its goal.

    python benchmarks/bench.py [--runs 5] [--quick] [--skip-scale] [--only build,rebuild,quarters,metrics,peers]

Every figure is a fresh process (the way an analyst runs reportgen), timed with os.wait4, whose rusage gives the
child's own CPU time and peak resident memory. Absolute times vary with the machine's load (the same build takes
4 s or 9 s here depending on what else runs), so nothing is judged on them: each comparison alternates its
commands (A, B, A, B, ...) and the ratio printed is the median of the ratios of each round, wall time and CPU time.

Ratios (issue 17):
  build     fresh build / floor <= 1.15. The floor is one process that imports the libraries a build uses and runs
            WeasyPrint on the product's own built HTML (benchmarks/floor.py). Also shown: the same build with no
            chart cache, against the same floor.
  rebuild   unchanged rebuild / fresh build <= 0.2 (and `run` with nothing due against the same fresh build).
  languages both editions in one command (`--lang zh-CN,en`) / one language (English) <= 1.6 (issue 14), wall and
            CPU.
  quarters  four quarters in one command / four separate commands, wall and CPU.
  metrics   `metrics` on 1,000 and 10,000 synthetic companies / the same pandas work in a plain script
            (benchmarks/plain_metrics.py), with peak memory: linear in the number of companies, <= 1 GiB at 10,000.
  peers     a 100-company workspace with a 30-peer group: its build against the default fresh build.
  bigfile   `metrics` on a workspace whose peer file is 200 MB: peak memory <= 500 MiB (rows stream through), and
            the same file with a bad figure on line 22 stops there.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import synth  # noqa: E402

PY = sys.executable
REPORTGEN = [PY, "-m", "reportgen", "-q"]
EPOCH = "1764547200"
SECTIONS = ("build", "rebuild", "languages", "quarters", "metrics", "peers", "bigfile")


@dataclass
class Sample:
    wall: float
    cpu: float  # user + system seconds of the child
    rss: float  # peak resident MiB of the child
    err: str = ""

    def __add__(self, other: Sample) -> Sample:  # commands run one after the other
        return Sample(self.wall + other.wall, self.cpu + other.cpu, max(self.rss, other.rss), self.err + other.err)


class Runner:
    def __init__(self, env: dict):
        self.env = env

    def run(self, cmd, cwd=None, exit_codes=(0,), before=None) -> Sample:
        """One child process: wall, CPU and peak memory; raises if it ends otherwise than `exit_codes`.
        `before` runs first, untimed (e.g. removing a cache)."""
        if before:
            before()
        t0 = time.perf_counter()
        proc = subprocess.Popen(  # not in the repository: `python -m` puts the folder it runs in first on sys.path
            [str(c) for c in cmd],
            cwd=cwd or tempfile.gettempdir(),
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        err = proc.stderr.read()  # read while it runs: a full pipe would stall the child
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.stderr.close()
        proc.returncode = os.waitstatus_to_exitcode(status)
        text = err.decode(errors="replace")
        if proc.returncode not in exit_codes:
            raise SystemExit(f"failed ({proc.returncode}): {' '.join(map(str, cmd))}\n{text}")
        return Sample(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, text)

    def seq(self, cmds, cwd=None) -> Sample:
        out = None
        for c in cmds:
            s = self.run(c, cwd=cwd)
            out = s if out is None else out + s
        return out

    def alternate(self, runs: int, *jobs) -> list[list[Sample]]:
        """Each job (a function returning a Sample) run `runs` times, in turn: A, B, A, B, ..."""
        out: list[list[Sample]] = [[] for _ in jobs]
        for _ in range(runs):
            for i, job in enumerate(jobs):
                out[i].append(job())
        return out


def med(samples, attr="wall") -> float:
    return statistics.median(getattr(s, attr) for s in samples)


def ratio(a: list[Sample], b: list[Sample], attr="wall") -> float:
    """The median of the per-round ratios (a round ran A then B, under the same load)."""
    return statistics.median(getattr(x, attr) / getattr(y, attr) for x, y in zip(a, b, strict=True))


def line(label: str, a: list[Sample], b: list[Sample], goal: float | None = None, goal_cpu: float | None = None):
    """One ratio, wall and CPU, with the medians it came from and its goal."""
    rw, rc = ratio(a, b), ratio(a, b, "cpu")

    def judged(r, g):
        return f"  goal <= {g:g}: {'met' if r <= g else 'NOT MET'}" if g is not None else ""

    print(f"   {label}")
    print(f"      wall {rw:5.2f}   ({med(a):6.2f} s / {med(b):6.2f} s){judged(rw, goal)}")
    print(f"      CPU  {rc:5.2f}   ({med(a, 'cpu'):6.2f} s / {med(b, 'cpu'):6.2f} s){judged(rc, goal_cpu)}")
    return rw, rc


def peak(label: str, samples: list[Sample], limit: float | None = None) -> None:
    m = max(s.rss for s in samples)
    goal = f"   goal <= {limit:g} MiB: {'met' if m <= limit else 'NOT MET'}" if limit else ""
    print(f"      peak memory of {label}: {m:.0f} MiB{goal}")


#: where the default workspace is copied from: the repository, or a source tree under test (--tree) that has one
SOURCE = REPO


def default_workspace(tmp: Path) -> Path:
    ws = tmp / "default"
    ws.mkdir(parents=True)
    for part in ("reportgen.toml", "data", "templates"):
        src = SOURCE / part
        (shutil.copytree if src.is_dir() else shutil.copy)(src, ws / part)
    (ws / "output").mkdir()
    return ws


def no_chart_cache(ws: Path):
    def clear():
        for p in (ws / "output").glob(".chart-cache*"):
            shutil.rmtree(p, ignore_errors=True)

    return clear


def bench_build(r: Runner, ws: Path, runs: int, tmp: Path) -> list[Sample]:
    print("\n1. Fresh build / floor (default workspace, 2025Q2)")
    build = REPORTGEN + ["-C", ws, "build", "--force", "--quarter", "2025Q2"]
    r.run(build)  # warm-up: bytecode, disk cache, the chart cache; and the HTML the floor lays out
    html = ws / "output" / "2025Q2" / "briefing.html"
    shutil.copy(html, tmp / "floor.html")
    floor = [PY, HERE / "floor.py", tmp / "floor.html", tmp / "floor.pdf"]
    r.run(floor)
    fresh, fl, cold = r.alternate(
        runs, lambda: r.run(build), lambda: r.run(floor), lambda: r.run(build, before=no_chart_cache(ws))
    )
    line("fresh build / floor", fresh, fl, goal=1.15)
    line("fresh build, no chart cache / floor (for information)", cold, fl)
    peak("the build", fresh)
    peak("the floor", fl)
    return fresh


def bench_rebuild(r: Runner, ws: Path, runs: int) -> None:
    print("\n2. Unchanged rebuild / fresh build (default workspace, 2025Q2)")
    fresh_cmd = REPORTGEN + ["-C", ws, "build", "--force", "--quarter", "2025Q2"]
    again_cmd = [PY, "-m", "reportgen", "-C", ws, "build", "--quarter", "2025Q2"]  # not quiet: it says it skipped
    run_cmd = REPORTGEN + ["-C", ws, "run", "--now", "2025-10-01T08:00"]
    r.run(fresh_cmd)
    r.run(run_cmd)  # `run` builds the due edition once; later runs find nothing to do
    again, fresh, noop = r.alternate(runs, lambda: r.run(again_cmd), lambda: r.run(fresh_cmd), lambda: r.run(run_cmd))
    if not all("nothing to build" in s.err for s in again):
        raise SystemExit(f"the unchanged rebuild did not skip:\n{again[0].err}")
    line("unchanged rebuild / fresh build", again, fresh, goal=0.2)
    line("`run` with nothing to do / fresh build (for information)", noop, fresh)


def bench_languages(r: Runner, ws: Path, runs: int) -> None:
    print("\n3. Both languages in one command / one language (default workspace, 2025Q2)")
    one = REPORTGEN + ["-C", ws, "build", "--force", "--quarter", "2025Q2", "--lang", "en"]
    both = REPORTGEN + ["-C", ws, "build", "--force", "--quarter", "2025Q2", "--lang", "zh-CN,en"]
    r.run(both)
    b, o = r.alternate(runs, lambda: r.run(both), lambda: r.run(one))
    print(f"   ({os.cpu_count()} cores: the two languages render in one forked process each)")
    line("zh-CN + en / en", b, o, goal=1.6)


def bench_quarters(r: Runner, ws: Path, runs: int) -> None:
    print("\n4. Four quarters in one command / four separate commands (default workspace, 2024Q3..2025Q2)")
    quarters = ["2024Q3", "2024Q4", "2025Q1", "2025Q2"]
    one_cmd = REPORTGEN + ["-C", ws, "build", "--force", "--quarter", f"{quarters[0]}..{quarters[-1]}"]
    sep_cmds = [REPORTGEN + ["-C", ws, "build", "--force", "--quarter", q] for q in quarters]
    r.run(one_cmd)
    one, sep = r.alternate(runs, lambda: r.run(one_cmd), lambda: r.seq(sep_cmds))
    print(f"   ({os.cpu_count()} cores: one command renders in one forked process per core)")
    line("one command / separate commands", one, sep, goal=0.5)
    print("      (CPU: the workers share the parent's imports, so three of the four start-ups are saved)")
    peak("the one command (parent; each worker has its own)", one)


def bench_metrics(r: Runner, tmp: Path, runs: int, sizes: list[int]) -> None:
    print("\n5. `metrics` / the same pandas work in a plain script (synthetic companies x 40 quarters)")
    per: dict[int, tuple[list[Sample], list[Sample]]] = {}
    for n in sizes:
        t0 = time.perf_counter()
        ws = synth.preset(tmp / f"scale{n}", {1000: "scale1k", 10000: "scale10k"}[n])
        print(f"   {n:,} companies: workspace generated in {time.perf_counter() - t0:.0f} s")
        cmd = REPORTGEN + ["-C", ws, "metrics", "--quarter", "2025Q2", "--format", "csv"]
        plain = [PY, HERE / "plain_metrics.py", ws, "--quarter", "2025Q2"]
        r.run(cmd), r.run(plain)  # warm-up (the files into the page cache)
        rg, pl = r.alternate(runs, lambda c=cmd: r.run(c), lambda c=plain: r.run(c))
        line(f"metrics / plain script, {n:,} companies", rg, pl)
        peak("metrics", rg, 1024 if n >= 10000 else None)
        peak("the plain script", pl)
        per[n] = (rg, pl)
    if len(per) == 2:
        (small, big) = sorted(per)
        k = big / small
        g_rg = med(per[big][0]) / med(per[small][0])
        g_pl = med(per[big][1]) / med(per[small][1])
        c_rg = med(per[big][0], "cpu") / med(per[small][0], "cpu")
        rel = ratio(per[big][0], per[big][1]) / ratio(per[small][0], per[small][1])
        print(f"   scaling {small:,} -> {big:,} companies (x{k:g}): linear is x{k:g}")
        print(f"      metrics wall x{g_rg:.1f}, CPU x{c_rg:.1f}; plain script wall x{g_pl:.1f}")
        print(
            f"      (metrics / plain) at {big:,} over the same at {small:,}: {rel:.2f}   goal <= 1.25 (linear like the "
            f"plain script): {'met' if rel <= 1.25 else 'NOT MET'}"
        )
        mem = max(s.rss for s in per[big][0]) / max(s.rss for s in per[small][0])
        print(f"      peak memory x{mem:.1f} (the interpreter and libraries are a fixed part)")


def bench_peers(r: Runner, tmp: Path, runs: int, fresh: list[Sample] | None, ws_default: Path) -> None:
    print("\n6. 100 companies, one group of 30 peers and seven of ten (synthetic, 2025Q2)")
    ws = synth.preset(tmp / "peers100", "peers100")
    cmd = REPORTGEN + ["-C", ws, "build", "--force", "--quarter", "2025Q2"]
    default = REPORTGEN + ["-C", ws_default, "build", "--force", "--quarter", "2025Q2"]
    r.run(cmd)
    big, small = r.alternate(max(1, runs // 2), lambda: r.run(cmd), lambda: r.run(default))
    line("100-company build / default build (for information)", big, small)
    peak("the 100-company build", big)
    print(f"      pages: {ws / 'output' / '2025Q2' / 'briefing.pdf'} (kept with --keep)")


def bench_bigfile(r: Runner, tmp: Path, runs: int) -> None:
    """A peer's file of 200 MB (decades of quarterly rows before the briefing's window): `metrics` on it, and on the
    same file with a bad figure on line 22, which must stop there rather than read the rest."""
    print("\n7. A 200 MB financials file (streamed: read a line at a time, skipped outside the quarters needed)")
    ws = default_workspace(tmp / "bigcsv")
    path = ws / "data" / "financials" / "transsion.csv"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    header = lines[0].strip().split(",")
    target, k = 200 * 1024 * 1024, 0
    with open(path, "a", encoding="utf-8") as fh:
        size = path.stat().st_size
        while size < target:
            q = f"{1000 + k // 4 % 1000}Q{k % 4 + 1}"  # years 1000-1999 again and again: all before the window
            cells = {"period": q, "basis": "3M", "label": "营业收入", "value": f"{123456789 + k}.25"}
            cells.update(unit="yuan", currency="RMB", vintage="published", source_url=f"https://example.test/h/{k}")
            row = ",".join(cells.get(h, "") for h in header) + "\n"
            fh.write(row)
            size += len(row.encode())
            k += 1
    cmd = REPORTGEN + ["-C", ws, "metrics", "--quarter", "2025Q2", "--format", "csv"]
    big = [r.run(cmd) for _ in range(runs)]
    print(f"   metrics, {path.stat().st_size / 2**20:.0f} MB file ({k:,} rows): {med(big):.2f} s")
    peak("metrics", big, 500)
    typo = {"period": "2025Q2", "basis": "6M", "label": "营业收入", "value": "12o0", "unit": "yuan",
            "currency": "RMB", "vintage": "published", "source_url": "https://example.test/typo"}  # fmt: skip
    bad = lines[:21] + [",".join(typo.get(h, "") for h in header) + "\n"]
    typo_path = path.with_suffix(".typo")
    with open(path, encoding="utf-8") as src, open(typo_path, "w", encoding="utf-8") as dst:  # streamed: the
        dst.writelines(bad)  # benchmark holds no copy, or the child's peak (counted from the fork) would show it
        for n, text in enumerate(src):
            if n >= 21:
                dst.write(text)
    typo_path.replace(path)
    stop = [r.run(cmd, exit_codes=(1,)) for _ in range(runs)]
    print(f"   metrics, the same file with an error on line 22: {med(stop):.2f} s, against {med(big):.2f} s reading it")
    line("error on line 22 / whole file (it stops at the error)", stop, big)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="rounds of each comparison (default 5)")
    ap.add_argument("--quick", action="store_true", help="3 rounds, 1,000 companies only")
    ap.add_argument("--skip-scale", action="store_true", help="no synthetic workspaces (metrics, peers)")
    ap.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections of {', '.join(SECTIONS)}")
    ap.add_argument(
        "--tree",
        type=Path,
        help="run reportgen from this source tree (a folder holding the reportgen package, and the default "
        "workspace's reportgen.toml, data/ and templates/ when it has them)",
    )
    ap.add_argument("--keep", type=Path, help="keep the workspaces in this folder")
    ap.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="keep PYTHONDONTWRITEBYTECODE as it is (default: children cache bytecode, as an installed copy does)",
    )
    a = ap.parse_args()
    runs = 3 if a.quick and a.runs == 5 else a.runs
    only = {s.strip() for s in a.only.split(",")}
    if a.skip_scale:
        only -= {"metrics", "peers", "bigfile"}
    if a.quick:
        only -= {"bigfile"}
    env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH}
    tmp = Path(a.keep or tempfile.mkdtemp(prefix="reportgen-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    if not a.no_bytecode_cache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    if a.tree:
        global SOURCE
        env["PYTHONPATH"] = os.pathsep.join([str(a.tree.resolve()), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        if (a.tree / "templates").is_dir():  # the tree's own workspace and templates, matching its code
            SOURCE = synth.SOURCE = a.tree.resolve()
    r = Runner(env)
    import weasyprint

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.platform()}, WeasyPrint {weasyprint.__version__}; {runs} alternating rounds per ratio"
    )
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    t0 = time.perf_counter()
    try:
        ws = default_workspace(tmp / "ws")
        fresh = bench_build(r, ws, runs, tmp) if "build" in only else None
        if "rebuild" in only:
            bench_rebuild(r, ws, runs)
        if "languages" in only:
            bench_languages(r, ws, runs)
        if "quarters" in only:
            bench_quarters(r, ws, max(2, runs // 2 + 1))
        if "metrics" in only:
            bench_metrics(r, tmp, runs if a.quick else max(3, runs // 2 + 1), [1000] if a.quick else [1000, 10000])
        if "peers" in only:
            bench_peers(r, tmp, runs, fresh, ws)
        if "bigfile" in only:
            bench_bigfile(r, tmp, max(1, runs // 2))
    finally:
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
