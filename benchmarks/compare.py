"""Does a change pay for itself? Run one reportgen command from several source trees, alternating (A, B, A, B...),
and print each tree's median wall and CPU time and peak memory, and its ratio to the first tree.

    python benchmarks/compare.py BASE_TREE OTHER_TREE [...] [--runs 6] [--before "rm -rf ws/output/.chart-cache"]
        -- -C WORKSPACE build --force --quarter 2025Q2

A tree is a folder holding a `reportgen` package (a copy of the repository with a change applied); "-" is the
installed one. Each run is a fresh process (os.wait4 gives its CPU time and peak memory). `--before` runs a shell
command, untimed, before each run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import EPOCH, Runner  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trees", nargs="+")
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--before", help="a shell command run (untimed) before each run")
    ap.add_argument("--module", default="reportgen", help="the module to run (python -m MODULE)")
    a, rest = ap.parse_known_args()
    args = rest[1:] if rest[:1] == ["--"] else rest
    runners = []
    for tree in a.trees:
        env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = "/tmp/reportgen-compare-pycache"
        if tree != "-":
            env["PYTHONPATH"] = str(Path(tree).resolve())
        runners.append(Runner(env))
    cmd = [sys.executable, "-m", a.module, *args]

    def before():
        if a.before:
            subprocess.run(a.before, shell=True, check=True)

    for r in runners:  # warm-up: bytecode, page cache
        r.run(cmd, before=before)
    samples = runners[0].alternate(a.runs, *[lambda r=r: r.run(cmd, before=before) for r in runners])
    base = samples[0]
    print(f"{' '.join(args)}: {a.runs} alternating runs; load average {os.getloadavg()[0]:.2f}")
    for tree, s in zip(a.trees, samples, strict=True):
        rw = statistics.median(x.wall / y.wall for x, y in zip(s, base, strict=True))
        rc = statistics.median(x.cpu / y.cpu for x, y in zip(s, base, strict=True))
        wall, cpu = statistics.median(x.wall for x in s), statistics.median(x.cpu for x in s)
        print(
            f"  {tree:<28} wall {wall:6.2f} s ({rw:4.2f})  CPU {cpu:6.2f} s ({rc:4.2f})  "
            f"peak {max(x.rss for x in s):5.0f} MiB"
        )


if __name__ == "__main__":
    main()
