"""The database failing under a real server: a full disk (a small tmpfs holding the SQLite
file) answers writes 507 with a clear message, keeps reads working, corrupts nothing, and
takes writes again once there is room. (A database that will not take a write at all answers
503: tests/api/test_database_errors.py.)"""
import os
import sqlite3
import subprocess

import pytest
import requests

from server import POSTGRES_URL, Server, pair

pytestmark = pytest.mark.skipif(bool(POSTGRES_URL), reason="SQLite's file on a disk of its own")


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


def test_a_full_disk_refuses_writes_clearly_keeps_reads_and_recovers(small_disk):
    # The journal off: this is about the API's own writes (the journal's are best effort).
    server = Server(f"sqlite:///{small_disk / 'runners.db'}", OPIK_RUNNERS_JOURNAL_SIZE="0").start()
    try:
        runner = pair(server.url, "default", "on-a-small-disk")
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
