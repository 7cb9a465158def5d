"""Where the time of one build goes: run `reportgen build` in this process and split its wall and CPU time into
phases, each exclusive of the others (an import or a garbage collection inside the charts counts as import or GC).

    python benchmarks/phases.py WORKSPACE [--quarter 2025Q2] [--repeat 3] [--cold] [-- extra reportgen arguments]

Phases: imports (every module loaded, wherever), load data, metrics, charts, HTML, WeasyPrint parse, WeasyPrint
layout, PDF write, xlsx, write files, garbage collection, and the rest (briefing assembly, hashing, start-up).
With --repeat N it runs N fresh processes and prints the median of each phase.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

PHASES = [
    "imports",
    "load data",
    "metrics",
    "charts",
    "HTML",
    "WeasyPrint parse",
    "WeasyPrint layout",
    "PDF write",
    "xlsx",
    "write files",
    "garbage collection",
    "other",
]


class Clock:
    """Exclusive time per phase: entering a phase pauses the one it interrupts."""

    def __init__(self):
        self.wall = dict.fromkeys(PHASES, 0.0)
        self.cpu = dict.fromkeys(PHASES, 0.0)
        self.stack = ["other"]
        self.mark = (time.perf_counter(), time.process_time())

    def _switch(self):
        now = (time.perf_counter(), time.process_time())
        top = self.stack[-1]
        self.wall[top] += now[0] - self.mark[0]
        self.cpu[top] += now[1] - self.mark[1]
        self.mark = now

    def enter(self, phase: str):
        self._switch()
        self.stack.append(phase)

    def leave(self):
        self._switch()
        self.stack.pop()


CLOCK = Clock()


def timed(phase, fn):
    def wrapper(*a, **kw):
        CLOCK.enter(phase)
        try:
            return fn(*a, **kw)
        finally:
            CLOCK.leave()

    wrapper.__wrapped__ = fn
    return wrapper


def _patch(module, attr, phase):
    setattr(module, attr, timed(phase, getattr(module, attr)))


def _after_import(name, module):
    """Wrap the functions of a phase as soon as their module is loaded (most are imported lazily)."""
    if name == "reportgen.pipeline":
        _patch(module, "open_workspace", "load data")
        _patch(module, "metric_table", "metrics")
        _patch(module, "group_stats", "metrics")
        _patch(module, "write_edition", "write files")
    elif name == "reportgen.charts":
        for fn in ("hbars", "trend", "scatter"):
            _patch(module, fn, "charts")
    elif name == "reportgen.render":
        _patch(module, "render_html", "HTML")
    elif name == "reportgen.export":
        for fn in ("xlsx_bytes", "workbook_bytes"):
            if hasattr(module, fn):
                _patch(module, fn, "xlsx")
    elif name == "weasyprint":
        _patch(module.HTML, "__init__", "WeasyPrint parse")
        _patch(module.HTML, "render", "WeasyPrint layout")
    elif name == "weasyprint.document":
        _patch(module.Document, "write_pdf", "PDF write")


class ImportClock:
    """A meta path hook: times the loading of every module (the outermost import only) as "imports"."""

    depth = 0

    def find_spec(self, name, path=None, target=None):
        for finder in sys.meta_path:
            if finder is self:
                continue
            spec = finder.find_spec(name, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None and spec.loader is not None:
                spec.loader = _TimedLoader(spec.loader, name)
                return spec
        return None


class _TimedLoader:
    def __init__(self, loader, name):
        self.loader, self.name = loader, name

    def __getattr__(self, attr):
        return getattr(self.loader, attr)

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        outer = ImportClock.depth == 0
        ImportClock.depth += 1
        if outer:
            CLOCK.enter("imports")
        try:
            self.loader.exec_module(module)
        finally:
            ImportClock.depth -= 1
            if outer:
                CLOCK.leave()
        _after_import(self.name, module)


def _gc_callback(phase, info):
    if phase == "start":
        CLOCK.enter("garbage collection")
    else:
        CLOCK.leave()


def profile_in_process(argv: list[str]) -> dict:
    t0 = time.perf_counter()
    sys.meta_path.insert(0, ImportClock())
    gc.callbacks.append(_gc_callback)
    from reportgen.cli import cli

    try:
        cli.main(argv, prog_name="reportgen", standalone_mode=False)
    finally:
        CLOCK._switch()
        gc.callbacks.remove(_gc_callback)
    total = time.perf_counter() - t0
    return {"wall": CLOCK.wall, "cpu": CLOCK.cpu, "total_wall": total, "total_cpu": time.process_time()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workspace")
    ap.add_argument("--quarter", default="2025Q2")
    ap.add_argument("--repeat", type=int, default=1, help="fresh processes to run; the median of each phase")
    ap.add_argument("--json", action="store_true", help="(internal) one run in this process, JSON on stdout")
    ap.add_argument("--cold", action="store_true", help="remove the chart cache before each run")
    ap.add_argument("extra", nargs="*", help="more reportgen build arguments")
    a = ap.parse_args()
    argv = ["-q", "-C", a.workspace, "build", "--force", "--quarter", a.quarter, *a.extra]
    if a.json:
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):
            result = profile_in_process(argv)
        print(json.dumps(result))
        return
    runs = []
    cmd = [sys.executable, __file__, "--json", a.workspace, "--quarter", a.quarter]
    cmd += ["--", *a.extra] if a.extra else []
    for _ in range(a.repeat):
        if a.cold:
            shutil.rmtree(Path(a.workspace) / "output" / ".chart-cache", ignore_errors=True)
        out = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            env={**os.environ, "SOURCE_DATE_EPOCH": os.environ.get("SOURCE_DATE_EPOCH", "1764547200")},
            check=True,
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(format_table(runs))


def format_table(runs: list[dict]) -> str:
    def med(kind, phase):
        return statistics.median(r[kind][phase] for r in runs)

    total_w = statistics.median(r["total_wall"] for r in runs)
    total_c = statistics.median(r["total_cpu"] for r in runs)
    lines = [f"{'phase':<20} {'wall s':>7} {'wall %':>7} {'CPU s':>7} {'CPU %':>7}   (median of {len(runs)})"]
    for p in PHASES:
        w, c = med("wall", p), med("cpu", p)
        lines.append(f"{p:<20} {w:7.2f} {100 * w / total_w:6.1f}% {c:7.2f} {100 * c / total_c:6.1f}%")
    lines.append(f"{'total (in process)':<20} {total_w:7.2f} {'':>7} {total_c:7.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
