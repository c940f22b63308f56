"""The listing keeps pages it answered while SQLite's data_version stands still (listing.list_jobs).
Any commit, by any worker or instance, must show in the very next listing: a client that has
its answer to a write finds the write listed, whichever process answers the read."""
import requests

from tests.support.databases import POSTGRES_URL, fresh_database_url
from tests.support.servers import Server, pair_over_http

CLOSE = {"Connection": "close"}  # a new connection each time: gunicorn spreads them over the workers


def test_every_write_shows_in_the_next_listing_whichever_worker_or_instance(tmp_path):
    url = fresh_database_url(tmp_path)
    first = Server(url, OPIK_RUNNERS_WORKERS="2").start()
    second = Server(url, OPIK_RUNNERS_WORKERS="2").start() if not POSTGRES_URL else first
    try:
        runner = pair_over_http(first.url, "default", "cached")
        listing = f"/api/v1/private/local-runners/{runner['runner_id']}/jobs"
        for _ in range(6):  # every worker has the empty page kept
            assert requests.get(first.url + listing, headers=CLOSE, timeout=10).json()["total"] == 0
        made = []
        for i in range(40):
            writer, reader = (first, second) if i % 2 else (second, first)
            created = requests.post(f"{writer.url}/api/v1/private/local-runners/jobs", headers=CLOSE, timeout=10,
                                    json={"agent_name": "answer", "project_id": runner["project_id"], "inputs": {"i": i}})
            assert created.status_code == 201
            made.append(created.headers["Location"].rsplit("/", 1)[1])
            page = requests.get(reader.url + listing, params={"size": 5}, headers=CLOSE, timeout=10).json()
            assert page["total"] == i + 1 and page["content"][0]["id"] == made[-1], i
        # A change to a job already listed (claimed, then finished) shows at once, too.
        claimed = requests.post(f"{second.url}/api/v1/private/local-runners/{runner['runner_id']}/jobs/next",
                                headers=CLOSE, timeout=30).json()
        assert claimed["id"] == made[0]
        done = requests.post(f"{second.url}/api/v1/private/local-runners/jobs/{made[0]}/results", headers=CLOSE,
                             json={"status": "completed", "result": {"ok": 1}}, timeout=10)
        assert done.status_code == 204
        last = requests.get(first.url + listing, params={"page": 7, "size": 5}, headers=CLOSE, timeout=10).json()
        assert [(job["id"], job["status"], job.get("result")) for job in last["content"]][-1] == (
            made[0], "completed", {"ok": 1})
        # And a runner that goes is gone from the listing's answer (404), however warm its pages.
        requests.delete(f"{second.url}/api/v1/private/local-runners/{runner['runner_id']}", headers=CLOSE, timeout=10)
        assert requests.get(first.url + listing, headers=CLOSE, timeout=10).status_code == 404
    finally:
        first.stop()
        if second is not first:
            second.stop()
