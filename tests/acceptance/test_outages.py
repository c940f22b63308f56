"""The database failing under a real server: a full disk (a small tmpfs holding the SQLite
file) answers writes 507 with a clear message, keeps reads working, corrupts nothing, and
takes writes again once there is room; PostgreSQL restarted under load answers 503 meanwhile, then
serves again without a restart. (A database that will not take a write at all answers
503: tests/api/test_database_errors.py.)"""
import datetime
import os
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.support.databases import POSTGRES_URL, fresh_database_url
from tests.support.servers import Server, child_pids, pair_over_http
from tests.support.waiting import wait_until

sqlite_only = pytest.mark.skipif(bool(POSTGRES_URL), reason="SQLite's file on a disk of its own")


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MiB tmpfs (mounting needs root, which CI has; elsewhere this skips)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(path, leave_bytes):
    """A file taking all but `leave_bytes` of the disk's free space."""
    stats = os.statvfs(path.parent)
    size = max(stats.f_bavail * stats.f_frsize - leave_bytes, 0)
    with open(path, "wb") as filler:
        filler.write(b"\0" * size)


@sqlite_only
def test_a_full_disk_refuses_writes_clearly_keeps_reads_and_recovers(small_disk):
    # The journal off: this is about the API's own writes (the journal's are best effort).
    server = Server(f"sqlite:///{small_disk / 'runners.db'}", OPIK_RUNNERS_JOURNAL_SIZE="0").start()
    try:
        runner = pair_over_http(server.url, "default", "on-a-small-disk")
        api = f"{server.url}/api/v1/private"
        listing = f"{api}/local-runners/{runner['runner_id']}/jobs"
        fill(small_disk / "filler", leave_bytes=256 * 1024)
        acknowledged, refused = [], []
        for i in range(200):
            answer = requests.post(f"{api}/local-runners/jobs", timeout=10, json={
                "agent_name": "answer", "project_id": runner["project_id"], "inputs": {"i": i, "pad": "x" * 20_000}})
            assert answer.status_code in (201, 507), (answer.status_code, answer.text)
            if answer.status_code == 201:
                acknowledged.append(answer.headers["Location"].rsplit("/", 1)[1])
            else:
                refused.append(answer.json())
                if len(refused) >= 3:
                    break
        assert acknowledged and refused, "the disk never filled"
        assert refused[0]["code"] == 507 and refused[0]["message"].startswith("The database's disk is full")
        # Reads go on: every acknowledged job is there, and nothing else.
        page = requests.get(listing, params={"size": 1000}, timeout=10)
        assert page.status_code == 200
        assert [job["id"] for job in page.json()["content"]] == acknowledged[::-1]
        # Nothing is corrupted.
        with sqlite3.connect(f"file:{small_disk / 'runners.db'}?mode=ro", uri=True) as check:
            assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        # Room again: writes succeed, and what was acknowledged is still there.
        os.remove(small_disk / "filler")
        again = requests.post(f"{api}/local-runners/jobs", timeout=10, json={
            "agent_name": "answer", "project_id": runner["project_id"], "inputs": {"after": True}})
        assert again.status_code == 201, again.text
        ids = [job["id"] for job in requests.get(listing, params={"size": 1000}, timeout=10).json()["content"]]
        assert ids[1:] == acknowledged[::-1] and ids[0] == again.headers["Location"].rsplit("/", 1)[1]
        metrics = requests.get(f"{server.url}/metrics", timeout=10).text
        assert 'opik_runners_database_errors_total{error="OperationalError"}' in metrics
    finally:
        server.stop()


# -- PostgreSQL restarted under load


def restart_postgres(down_seconds):
    """Stop the local cluster, wait, start it again (CI's PostgreSQL 15 cluster, as root)."""
    subprocess.run(["pg_ctlcluster", "15", "main", "stop", "-m", "fast"], check=True, capture_output=True)
    time.sleep(down_seconds)
    subprocess.run(["pg_ctlcluster", "15", "main", "start"], check=True, capture_output=True)
    return time.monotonic()


@pytest.mark.skipif(not POSTGRES_URL or not shutil.which("pg_ctlcluster") or os.geteuid() != 0,
                    reason="restarts the local PostgreSQL 15 cluster (CI's PostgreSQL pass)")
def test_postgresql_restarted_under_load_answers_503_then_serves_again_and_loses_nothing(tmp_path):
    server = Server(fresh_database_url(tmp_path), OPIK_RUNNER_NEXT_JOB_POLL_TIMEOUT="2",
                    OPIK_RUNNERS_JOURNAL_SIZE="0").start()
    stop = threading.Event()
    acknowledged, answers, lock = [], [], threading.Lock()
    try:
        runner = pair_over_http(server.url, "default", "through-a-restart")
        api = f"{server.url}/api/v1/private"

        def create():
            while not stop.is_set():
                started = time.monotonic()
                try:
                    answer = requests.post(f"{api}/local-runners/jobs", timeout=15, json={
                        "agent_name": "answer", "project_id": runner["project_id"]})
                except requests.RequestException as exc:
                    answer = exc
                with lock:
                    answers.append((started, time.monotonic(), answer))
                    if not isinstance(answer, Exception) and answer.status_code == 201:
                        acknowledged.append(answer.headers["Location"].rsplit("/", 1)[1])
                time.sleep(0.02)

        def poll():
            while not stop.is_set():
                started = time.monotonic()
                try:
                    answer = requests.post(f"{api}/local-runners/{runner['runner_id']}/jobs/next", timeout=15)
                except requests.RequestException as exc:
                    answer = exc
                with lock:
                    answers.append((started, time.monotonic(), answer))
                time.sleep(0.05)

        workers = [threading.Thread(target=create) for _ in range(2)] + [threading.Thread(target=poll) for _ in range(3)]
        for worker in workers:
            worker.start()
        time.sleep(2)
        back_at = restart_postgres(down_seconds=3)
        # Within 5 s of the database returning, writes go through again (no restart of this server).
        def write_works():
            answer = requests.post(f"{api}/local-runners/jobs", timeout=15, json={
                "agent_name": "answer", "project_id": runner["project_id"]})
            if answer.status_code == 201:
                with lock:
                    acknowledged.append(answer.headers["Location"].rsplit("/", 1)[1])
                return True
            return False

        wait_until(write_works, timeout=15, interval=0.2)
        recovered_after = time.monotonic() - back_at
        time.sleep(1)
        stop.set()
        for worker in workers:
            worker.join(20)
        assert recovered_after <= 5, f"served again {recovered_after:.1f} s after PostgreSQL returned"
        # Every answer was an answer: 2xx, or a 503 saying the database is unavailable; none hung.
        statuses = {}
        for started, ended, answer in answers:
            assert not isinstance(answer, Exception), answer
            assert ended - started < 12, f"an answer took {ended - started:.1f} s"  # poll time-out 2 s
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
            if answer.status_code >= 500:
                assert answer.status_code == 503, answer.text + "\n" + server.output()[-6000:]  # with the traceback
                body = answer.json()
                assert body["code"] == 503 and body["message"].startswith("The database is unavailable"), body
        assert statuses.get(503), f"no request met the outage: {statuses}"
        # Nothing acknowledged was lost.
        listed = requests.get(f"{api}/local-runners/{runner['runner_id']}/jobs", params={"size": 100000},
                              timeout=30).json()["content"]
        assert set(acknowledged) <= {job["id"] for job in listed}
    finally:
        stop.set()
        server.stop()


# -- a worker killed under a fleet's load


def test_a_worker_killed_under_fleet_load_loses_nothing_and_its_runners_carry_on(tmp_path):
    """100 runners driven as the CLI drives them (bench/fleet.py's simulator), jobs created
    beside them, and one of the two workers SIGKILLed half-way: every acknowledged job exists,
    every job made after the kill reaches its runner, and every runner is still connected."""
    import multiprocessing
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    import fleet

    server = Server(fresh_database_url(tmp_path), OPIK_RUNNERS_WORKERS="2", OPIK_RUNNERS_JOURNAL_SIZE="0",
                    OPIK_RUNNER_NEXT_JOB_POLL_TIMEOUT="3").start()
    queue = multiprocessing.Queue()
    try:
        runners = fleet.seed_fleet(server.url, 100)
        endpoints = [r for r in runners if r["type"] == "endpoint"]
        simulator = multiprocessing.Process(target=fleet.simulator, args=(
            [server.url], [(r["id"], r["type"]) for r in runners], 18, 1.0, queue))
        simulator.start()
        time.sleep(2)
        api = f"{server.url}/api/v1/private"
        made, killed_at = [], None
        started = time.monotonic()
        while time.monotonic() - started < 12:
            if killed_at is None and time.monotonic() - started > 4:
                os.kill(child_pids(server.process.pid)[0], signal.SIGKILL)
                killed_at = time.monotonic()
            runner = endpoints[len(made) % len(endpoints)]
            try:
                answer = requests.post(f"{api}/local-runners/jobs", timeout=10, json={
                    "agent_name": "echo", "project_id": runner["project_id"], "inputs": {"n": len(made)}})
            except requests.ConnectionError:  # its connection was on the killed worker: not acknowledged
                continue
            assert answer.status_code == 201, answer.text
            made.append((answer.headers["Location"].rsplit("/", 1)[1], time.monotonic()))
            time.sleep(0.05)
        # The runners whose connections died with the worker beat again: every runner's expiry was
        # pushed past what a beat before the kill gave it (the TTL, 15 s, from the kill at the latest).
        killed_wall = time.time() - (time.monotonic() - killed_at)
        state = requests.get(f"{server.url}/_admin/state", timeout=30).json()
        late = [r["id"] for r in state["runners"] if datetime.datetime.fromisoformat(
            r["heartbeat_expires_at"].replace("Z", "+00:00")).timestamp() <= killed_wall + 15]
        assert not late, f"{len(late)} runners did not beat after the kill"
        results = queue.get(timeout=60)
        simulator.join(30)
        received = dict(results["received"])
        # Every acknowledged job is there...
        for job_id, _ in made:
            assert requests.get(f"{api}/local-runners/jobs/{job_id}", timeout=10).status_code == 200
        # ...those made once gunicorn had replaced the worker reached their runners...
        after = [job_id for job_id, at in made if at > killed_at + 2]
        assert after and all(job_id in received for job_id in after), (
            len([j for j in after if j not in received]), len(after))
    finally:
        server.stop()
