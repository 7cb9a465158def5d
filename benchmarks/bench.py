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


def run(cmd, cwd=None, env=None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one child process; raises if it fails."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=cwd, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
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
        build = median_of(a.runs, REPORTGEN + ["-q", "build", "--quarter", "2025Q2"], cwd=ws, env=env)
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
            max(1, a.runs // 2), REPORTGEN + ["-q", "build", "--quarter", "2024Q3..2025Q2"], cwd=ws, env=env
        )
        sep = []
        for _ in range(max(1, a.runs // 2)):
            sep.append(sum(run(REPORTGEN + ["-q", "build", "--quarter", q], cwd=ws, env=env)[0] for q in quarters))
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
                max(1, a.runs // 2), REPORTGEN + ["-q", "build", "--quarter", "2025Q2"], cwd=one_group, env=env
            )
            print(f"   build, one group of 10     {b[0]:6.2f} s  peak {b[1]:6.0f} MiB")


if __name__ == "__main__":
    main()
