"""A build killed at any point leaves the previous edition intact and no partial file in it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from .conftest import leftovers, write_mini

# Loaded by the child through PYTHONPATH: pauses the build at one step so the test can kill it there.
HOOK = textwrap.dedent("""
    import os, pathlib, time
    STEP = os.environ["KILL_TEST_STEP"]
    MARK = pathlib.Path(os.environ["KILL_TEST_MARK"])
    def pause():
        MARK.write_text("here")
        time.sleep(60)
    if STEP == "pdf":
        import reportgen.render as r
        real = r.render_pdf
        def render_pdf(*a, **k):
            pause()
            return real(*a, **k)
        r.render_pdf = render_pdf
    elif STEP == "swap":
        import reportgen.pipeline as p
        real = p._swap_in
        def swap_in(*a, **k):
            pause()
            return real(*a, **k)
        p._swap_in = swap_in
""")


@pytest.mark.slow
@pytest.mark.parametrize("step", ["pdf", "swap"], ids=["during-pdf-render", "before-swap-after-pdf-write"])
def test_killed_build_keeps_previous_edition(tmp_path, step):
    ws = write_mini(tmp_path / "w", {})
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "KILL_TEST_STEP": "none", "KILL_TEST_MARK": str(tmp_path / "m")}
    (tmp_path / "sitecustomize.py").write_text(HOOK)
    cmd = [sys.executable, "-m", "reportgen", "-C", str(ws), "-q", "build", "--quarter", "2025Q2"]
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=120)
    edition = ws / "output" / "2025Q2"
    before = {p.name: p.read_bytes() for p in edition.iterdir()}

    # change an input so the next build would differ, then kill it at the step
    fin = ws / "data" / "financials" / "alpha.csv"
    fin.write_text(fin.read_text().replace(",1000,", ",1100,"))
    proc = subprocess.Popen(
        cmd, env={**env, "KILL_TEST_STEP": step}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 60
    while not (tmp_path / "m").exists():
        assert proc.poll() is None and time.time() < deadline, "the build did not reach the step"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    after = {p.name: p.read_bytes() for p in edition.iterdir()}
    assert after == before  # the previous edition, byte for byte
    left = [n for n in leftovers(ws / "output") if n != "2025Q2"]
    if step == "pdf":
        assert left == []  # nothing was written before the PDF was in memory
    # the next build cleans up what the killed one left and succeeds
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=120)
    assert leftovers(ws / "output") == ["2025Q2"]
    assert (edition / "briefing.pdf").read_bytes() != before["briefing.pdf"]
