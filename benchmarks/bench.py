"""Benchmarks: print wall time and peak memory of whole commands, beside floors measured in the same run.

    python benchmarks/bench.py [--runs 5] [--skip-scale]

Every figure is a fresh process (the way an analyst runs reportgen), timed with os.wait4, whose rusage gives
that child's own peak resident memory. Targets (issue 7) are printed beside the figures; nothing here is a test.
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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import synth  # noqa: E402

PY = sys.executable
REPORTGEN = [PY, "-m", "reportgen"]


def run(cmd, cwd=None, env=None, exit_codes=(0,)) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one child process; raises if it ends otherwise than `exit_codes`."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=cwd, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) not in exit_codes:
        raise SystemExit(f"failed: {' '.join(map(str, cmd))}\n{err}")
    return wall, usage.ru_maxrss / 1024


def median_of(n, cmd, **kw) -> tuple[float, float]:
    results = [run(cmd, **kw) for _ in range(n)]
    return statistics.median(r[0] for r in results), max(r[1] for r in results)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def default_workspace(tmp: Path) -> Path:
    ws = tmp / "default"
    ws.mkdir()
    for part in ("reportgen.toml", "data", "templates"):
        src = REPO / part
        (shutil.copytree if src.is_dir() else shutil.copy)(src, ws / part)
    (ws / "output").mkdir()
    return ws


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--skip-scale", action="store_true", help="skip the 1,000-company workspace (slow to generate)")
    a = ap.parse_args()
    env = {"SOURCE_DATE_EPOCH": "1764547200"}
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.platform()}"
    )
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        ws = default_workspace(tmp)

        print("\n1. Default 2025Q2 build, fresh processes")
        build = median_of(a.runs, REPORTGEN + ["-q", "build", "--force", "--quarter", "2025Q2"], cwd=ws, env=env)
        imports = median_of(a.runs, [PY, "-c", "import pandas, matplotlib, weasyprint, jinja2, click"])
        html = ws / "output" / "2025Q2" / "briefing.html"
        wp = median_of(
            a.runs,
            [
                PY,
                "-c",
                "import sys; from weasyprint import HTML; HTML(filename=sys.argv[1]).write_pdf(sys.argv[2])",
                str(html),
                str(tmp / "x.pdf"),
            ],
        )
        ratio = build[0] / (imports[0] + wp[0])
        print(f"   build                 {build[0]:6.2f} s  peak {build[1]:6.0f} MiB  (median of {a.runs})")
        print(f"   import floor          {imports[0]:6.2f} s  peak {imports[1]:6.0f} MiB")
        print(f"   WeasyPrint-only       {wp[0]:6.2f} s  peak {wp[1]:6.0f} MiB")
        print(f"   build / (imports + WeasyPrint) = {ratio:.2f}   target <= 1.5   {verdict(ratio <= 1.5)}")

        print("\n3. Four quarters in one command against four commands (default workspace)")
        quarters = ["2024Q3", "2024Q4", "2025Q1", "2025Q2"]
        one = median_of(
            max(1, a.runs // 2), REPORTGEN + ["-q", "build", "--force", "--quarter", "2024Q3..2025Q2"], cwd=ws, env=env
        )
        sep = []
        for _ in range(max(1, a.runs // 2)):
            sep.append(
                sum(run(REPORTGEN + ["-q", "build", "--force", "--quarter", q], cwd=ws, env=env)[0] for q in quarters)
            )
        sep_t = statistics.median(sep)
        print(f"   one command           {one[0]:6.2f} s  peak {one[1]:6.0f} MiB")
        print(f"   separate commands     {sep_t:6.2f} s")
        print(f"   one / separate = {one[0] / sep_t:.2f}   target <= 0.5   {verdict(one[0] / sep_t <= 0.5)}")

        print("\n4. reportgen run with nothing to do")
        help_text = subprocess.run(REPORTGEN + ["--help"], capture_output=True, text=True).stdout
        if " run " in help_text:
            run(REPORTGEN + ["-q", "run"], cwd=ws, env=env)  # builds and (with no mail lists) sends nothing
            noop = median_of(a.runs, REPORTGEN + ["-q", "run"], cwd=ws, env=env)
            print(
                f"   run (nothing to do)   {noop[0]:6.2f} s  peak {noop[1]:6.0f} MiB   target < 1 s   "
                f"{verdict(noop[0] < 1)}"
            )
        else:
            print("   reportgen run is not available in this version")

        if not a.skip_scale:
            print("\n2. Scale: 1,000 companies x 40 quarters (synthetic, real file formats)")
            t0 = time.perf_counter()
            big = synth.generate(tmp / "scale", 1000, 40, groups="all")
            print(
                f"   generated in {time.perf_counter() - t0:.1f} s: "
                f"{sum(1 for _ in (big / 'data' / 'financials').iterdir())} files"
            )
            m = median_of(a.runs, REPORTGEN + ["-q", "metrics", "--quarter", "2025Q2", "--format", "csv"], cwd=big)
            print(
                f"   metrics, 1,000 companies   {m[0]:6.2f} s  peak {m[1]:6.0f} MiB   targets 3 s, 1024 MiB   "
                f"{verdict(m[0] <= 3 and m[1] <= 1024)}"
            )
            one_group = synth.generate(tmp / "scale1", 1000, 40, groups="one")
            b = median_of(
                max(1, a.runs // 2),
                REPORTGEN + ["-q", "build", "--force", "--quarter", "2025Q2"],
                cwd=one_group,
                env=env,
            )
            print(f"   build, one group of 10     {b[0]:6.2f} s  peak {b[1]:6.0f} MiB")

            print(
                "\n5. A 200 MB financials file (streamed: read a line at a time, skipped outside the quarters needed)"
            )
            big_csv(tmp, a.runs)


def big_csv(tmp: Path, runs: int) -> None:
    """A peer's file of 200 MB (decades of quarterly rows before the briefing's window): `metrics` on it, and on the
    same file with a bad figure on line 22, which must stop there rather than read the rest."""
    (tmp / "bigcsv").mkdir()
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
    mb = path.stat().st_size / 1024 / 1024
    m = median_of(max(1, runs // 2), REPORTGEN + ["-q", "metrics", "--quarter", "2025Q2", "--format", "csv"], cwd=ws)
    print(f"   metrics, {mb:.0f} MB file ({k:,} rows)    {m[0]:6.2f} s  peak {m[1]:6.0f} MiB   target < 500 MiB   "
          f"{verdict(m[1] < 500)}")  # fmt: skip
    typo = {"period": "2025Q2", "basis": "6M", "label": "营业收入", "value": "12o0", "unit": "yuan",
            "currency": "RMB", "vintage": "published", "source_url": "https://example.test/typo"}  # fmt: skip
    bad = lines[:21] + [",".join(typo.get(h, "") for h in header) + "\n"]
    typo_path = path.with_suffix(".typo")
    with open(path, encoding="utf-8") as src, open(typo_path, "w", encoding="utf-8") as dst:  # streamed: the
        dst.writelines(bad)  # benchmark holds no copy, or the child's peak (counted from the fork) would show it
        for n, line in enumerate(src):
            if n >= 21:
                dst.write(line)
    typo_path.replace(path)
    e = median_of(max(1, runs // 2), REPORTGEN + ["-q", "metrics", "--quarter", "2025Q2"], cwd=ws, exit_codes=(1,))
    print(f"   metrics, error on line 22       {e[0]:6.2f} s  peak {e[1]:6.0f} MiB   (stops at the error)")


if __name__ == "__main__":
    main()
