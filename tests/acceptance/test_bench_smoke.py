"""The benchmark suite in smoke mode: it must keep running (timings are never asserted here;
the figures live in BENCHMARKS.md). Its correctness rows (exactly-once, no 5xx) must hold."""
import os
import shutil
import subprocess
import sys

import pytest

from tests.support.databases import POSTGRES_URL

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def smoke(script, timeout):
    """`script --smoke`, which must exit 0."""
    run = subprocess.run([sys.executable, script, "--smoke"], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run


@pytest.mark.skipif(not shutil.which("wrk") and not os.environ.get("CI"), reason="wrk is not installed")
@pytest.mark.skipif(bool(POSTGRES_URL), reason="the bench runs on its own SQLite files: once per CI run is enough")
@pytest.mark.timeout(600)
def test_bench_smoke_runs_and_claims_exactly_once():
    run = smoke("bench/run.py", timeout=600)
    table = [line for line in run.stdout.splitlines() if line.startswith("| ") and not line.startswith("| figure")]
    figures = {line.split(" | ")[0][2:]: line.rsplit(" | ", 1)[1].strip(" |") for line in table}
    assert len(figures) >= 15, run.stdout[-3000:]
    correctness = [name for name in figures if name.startswith(("exactly-once", "5xx", "64 concurrent writers"))]
    assert len(correctness) == 4
    assert all(figures[name] == "yes" for name in correctness), run.stdout[-3000:]


@pytest.mark.skipif(bool(POSTGRES_URL), reason="the bench runs on its own SQLite files: once per CI run is enough")
@pytest.mark.timeout(300)
def test_fleet_smoke_delivers_every_job_and_command_without_errors():
    run = smoke("bench/fleet.py", timeout=300)
    [line] = [line for line in run.stdout.splitlines() if line.strip().startswith("N=")]
    # Timings are the benchmark's business; what must hold at any size is correctness.
    assert "errors 0," in line and "undelivered 0," in line, line


@pytest.mark.skipif(bool(POSTGRES_URL), reason="no database in it: once per CI run is enough")
@pytest.mark.timeout(120)
def test_held_floor_smoke_holds_every_request():
    # held_floor.py exits 1 when a variant answered instead of holding (it would measure nothing).
    run = smoke("bench/held_floor.py", timeout=120)
    rows = [line for line in run.stdout.splitlines() if line.startswith("| flask")]
    assert len(rows) == 2 and all("| 50 of 50 |" in row for row in rows), run.stdout
