"""GET /metrics from a real gunicorn server: prometheus_client's multi-process mode adds up
every worker's numbers, and a worker killed mid-poll stops counting its held polls."""
import os
import signal
import threading

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support.databases import fresh_database_url
from tests.support.servers import Server, child_pids, pair_over_http
from tests.support.waiting import wait_until


def scrape(server):
    response = requests.get(f"{server.url}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0)


COUNT = "opik_runners_request_duration_seconds_count"


def test_every_workers_requests_are_counted_once(tmp_path):
    server = Server(fresh_database_url(tmp_path), OPIK_RUNNERS_WORKERS="2").start()
    try:
        runner_id = pair_over_http(server.url, "default", "metered")["runner_id"]
        assert len(child_pids(server.process.pid)) == 2
        before = scrape(server)
        for _ in range(60):  # a new connection each: gunicorn spreads them over both workers
            response = requests.get(f"{server.url}/api/v1/private/local-runners/{runner_id}/jobs", timeout=10,
                                    headers={"Connection": "close"})
            assert response.status_code == 200
        # Whichever worker answers a scrape (each on a new connection), it counts all 60.
        for _ in range(6):
            after = scrape(server)
            assert value(after, COUNT, operation="list_jobs", status="200") - value(
                before, COUNT, operation="list_jobs", status="200") == 60
        assert value(after, "opik_runners_runners", status="connected") == 1
    finally:
        server.stop()


def test_a_killed_worker_stops_counting_its_held_polls_and_its_counts_stay(tmp_path):
    server = Server(fresh_database_url(tmp_path), OPIK_RUNNERS_WORKERS="1", OPIK_RUNNER_NEXT_JOB_POLL_TIMEOUT="20").start()
    try:
        runner_id = pair_over_http(server.url, "default", "polled")["runner_id"]
        ended = []

        def poll():
            try:
                requests.post(f"{server.url}/api/v1/private/local-runners/{runner_id}/jobs/next", timeout=30)
            except requests.RequestException:
                pass
            ended.append(True)

        polls = [threading.Thread(target=poll) for _ in range(4)]
        for thread in polls:
            thread.start()
        wait_until(lambda: value(scrape(server), "opik_runners_held_polls", kind="jobs") == 4, timeout=20)
        before_kill = scrape(server)
        [worker] = child_pids(server.process.pid)
        os.kill(worker, signal.SIGKILL)
        wait_until(lambda: len(ended) == 4, timeout=30)  # the polls' connections died with it
        # gunicorn starts another worker; the dead one's held polls are not counted any more...
        wait_until(lambda: child_pids(server.process.pid) not in ([], [worker]), timeout=30)
        after = scrape(server)
        assert value(after, "opik_runners_held_polls", kind="jobs") == 0
        # ...while what it counted stays counted.
        for key, number in before_kill.items():
            if key[0] == COUNT:
                assert after.get(key, 0) >= number, key
    finally:
        server.stop()
