"""The shipped serving configuration (`opik-runners serve`: gunicorn, gevent workers), run for real."""
import threading

import pytest
import requests

from tests.support.databases import fresh_database_url
from tests.support.servers import Server, child_pids, pair_over_http


@pytest.fixture
def server(tmp_path):
    srv = Server(fresh_database_url(tmp_path), OPIK_RUNNER_NEXT_JOB_POLL_TIMEOUT="6").start()
    yield srv
    srv.stop()


def test_held_long_polls_do_not_block_other_requests(server):
    url = server.url
    runners = [pair_over_http(url, f"ws-{i}", f"runner-{i}") for i in range(5)]

    def long_poll(runner):
        runner["result"] = requests.post(
            f"{url}/api/v1/private/local-runners/{runner['runner_id']}/jobs/next",
            headers=runner["headers"],
            timeout=30,
        )

    threads = [threading.Thread(target=long_poll, args=(runner,)) for runner in runners]
    for thread in threads:
        thread.start()
    # While all five polls are held, listings answer, under both prefixes.
    for runner in runners:
        for prefix in ("/api", ""):
            listing = requests.get(
                f"{url}{prefix}/v1/private/local-runners/{runner['runner_id']}/jobs",
                headers=runner["headers"],
                timeout=5,
            )
            assert listing.status_code == 200 and listing.json()["total"] == 0
    assert all(thread.is_alive() for thread in threads), "a long poll returned before its timeout"

    # A job created now wakes the first runner's held poll, which hands it out.
    first = runners[0]
    created = requests.post(
        f"{url}/api/v1/private/local-runners/jobs",
        json={"agent_name": "answer", "project_id": first["project_id"], "inputs": {"question": "hi"}},
        headers=first["headers"],
        timeout=5,
    )
    assert created.status_code == 201
    threads[0].join(timeout=5)
    assert not threads[0].is_alive(), "the held poll was not woken by the new job"
    assert first["result"].status_code == 200
    assert first["result"].json()["id"] == created.headers["Location"].rsplit("/", 1)[1]
    assert first["result"].json()["status"] == "running"
    # The others end with 200 and the literal body `null` at the poll timeout.
    for runner, thread in zip(runners[1:], threads[1:]):
        thread.join(timeout=15)
        assert runner["result"].status_code == 200
        assert runner["result"].content == b"null"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def test_gzip_bomb_is_refused_without_the_worker_growing(server):
    import zlib

    # 512 MiB of zeros in about half a megabyte of gzip.
    deflater = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = b"\0" * (1 << 20)
    bomb = b"".join(deflater.compress(chunk) for _ in range(512)) + deflater.flush()
    workers = child_pids(server.process.pid)
    requests.get(f"{server.url}/is-alive/ping", timeout=5)
    before = sum(rss_kib(pid) for pid in workers)
    response = requests.post(
        f"{server.url}/api/v1/private/projects", data=bomb,
        headers={"Content-Encoding": "gzip", "content-type": "application/json"}, timeout=30,
    )
    assert response.status_code == 413
    assert response.json()["code"] == 413
    grown_mib = (sum(rss_kib(pid) for pid in workers) - before) / 1024
    assert grown_mib < 48, f"the workers grew {grown_mib:.0f} MiB on a refused bomb"
