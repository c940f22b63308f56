"""The control plane on real servers: two instances of two gunicorn workers each, sharing
one database (a SQLite file, or PostgreSQL), so that every admin change must reach the
other worker and the other instance; and the real `opik endpoint` against fault rules."""
import sys
import threading
import time
import uuid

import pytest
import requests

from tests.support.cli import CLI, ENDPOINT_AGENT_FILE, cli_env
from tests.support.databases import fresh_database_url
from tests.support.servers import HttpApi, Server, pair_over_http


@pytest.fixture
def instances(tmp_path):
    url = fresh_database_url(tmp_path)
    env = {"OPIK_RUNNERS_ADMIN": "on", "OPIK_RUNNERS_WORKERS": "2", "OPIK_RUNNER_NEXT_JOB_POLL_TIMEOUT": "30"}
    first = Server(url, **env).start()
    second = Server(url, **env).start()
    yield first, second
    first.stop()
    second.stop()


def admin(server, method, path, **kwargs):
    return requests.request(method, f"{server.url}/_admin{path}", timeout=30, **kwargs)


def spread(server, method, path, times=8, **kwargs):
    """The same request `times` times on fresh connections: gunicorn hands them to either worker."""
    return [requests.request(method, f"{server.url}{path}", timeout=30, **kwargs) for _ in range(times)]


def test_a_fault_rule_applies_in_every_worker_and_instance_once_added(instances):
    first, second = instances
    rule = admin(first, "POST", "/faults", json={"operation": "ping", "status": 503}).json()
    statuses = [r.status_code for r in spread(first, "GET", "/is-alive/ping") + spread(second, "GET", "/is-alive/ping")]
    assert statuses == [503] * 16
    admin(second, "DELETE", f"/faults/{rule['id']}")
    statuses = [r.status_code for r in spread(first, "GET", "/is-alive/ping") + spread(second, "GET", "/is-alive/ping")]
    assert statuses == [200] * 16


def test_a_fault_fires_its_times_between_all_workers_and_instances(instances):
    first, second = instances
    admin(first, "POST", "/faults", json={"path": "/is-alive/*", "status": 500, "times": 5})
    statuses = [r.status_code for r in spread(first, "GET", "/is-alive/ping") + spread(second, "GET", "/is-alive/ver")]
    assert statuses.count(500) == 5 and statuses[:5] == [500] * 5


def test_a_drop_fault_closes_the_connection(instances):
    first, _ = instances
    admin(first, "POST", "/faults", json={"operation": "version", "drop": True, "times": 1})
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{first.url}/is-alive/ver", timeout=10)
    assert requests.get(f"{first.url}/is-alive/ver", timeout=10).status_code == 200
    dropped = admin(first, "GET", "/requests?operation=version").json()["requests"][-1]
    assert dropped["status"] is None and dropped["fault"] is not None
    assert "Traceback" not in first.output()


def test_the_clock_moves_for_every_worker_and_instance(instances):
    first, second = instances
    runner_id = pair_over_http(first.url, "default", "clocked")["runner_id"]
    assert admin(second, "POST", "/clock", json={"advance_s": 20}).json()["offset_s"] == 20
    runners = spread(first, "GET", f"/api/v1/private/local-runners/{runner_id}")
    runners += spread(second, "GET", f"/api/v1/private/local-runners/{runner_id}")
    assert {r.json()["status"] for r in runners} == {"disconnected"}
    assert {admin(s, "GET", "/clock").json()["offset_s"] for s in (first, second) for _ in range(4)} == {20}
    admin(first, "DELETE", "/clock")
    assert {admin(s, "GET", "/clock").json()["offset_s"] for s in (first, second) for _ in range(4)} == {0}


def test_reset_ends_polls_held_in_another_instance_and_wipes_for_all(instances):
    first, second = instances
    runner_id = pair_over_http(first.url, "default", "reset-me")["runner_id"]
    polls = []

    def poll():
        polls.append(requests.post(f"{second.url}/api/v1/private/local-runners/{runner_id}/jobs/next", timeout=60))

    threads = [threading.Thread(target=poll) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # the polls are held by now (a poll arriving after the reset would get 404, failing the test)
    assert admin(first, "POST", "/reset").status_code == 204
    for thread in threads:
        thread.join(timeout=10)
    assert [p.status_code for p in polls] == [200] * 4 and {p.text for p in polls} == {"null"}
    gone = spread(second, "GET", f"/api/v1/private/local-runners/{runner_id}", times=4)
    assert {r.status_code for r in gone} == {404}


def test_a_journal_wait_is_woken_by_requests_to_another_instance(instances):
    first, second = instances
    answers = []
    # since=0: the whole journal, which holds no `version` call yet (the wait may start after them).
    waiter = threading.Thread(target=lambda: answers.append(admin(
        first, "POST", "/requests/wait", json={"operation": "version", "count": 3, "timeout_s": 20, "since": "0"}
    )))
    waiter.start()
    time.sleep(0.5)  # most likely held by now: then the entries wake it
    spread(second, "GET", "/is-alive/ver", times=3)
    waiter.join(timeout=30)
    assert answers[0].status_code == 200, answers[0].text
    entries = answers[0].json()["requests"]
    assert [e["operation"] for e in entries] == ["version"] * 3


def test_the_journal_sees_every_worker_and_instance(instances):
    first, second = instances
    marker = f"/api/v1/private/local-runners/{uuid.uuid4()}"
    spread(first, "GET", marker, times=5)
    spread(second, "GET", marker, times=5)
    entries = admin(second, "GET", f"/requests?path={marker}").json()["requests"]
    assert len(entries) == 10 and {e["status"] for e in entries} == {404}


# -- the real CLI against faults


@pytest.fixture
def endpoint(tmp_path):
    server = Server(fresh_database_url(tmp_path), OPIK_RUNNERS_ADMIN="on", OPIK_RUNNER_NEXT_JOB_POLL_TIMEOUT="1").start()
    agent_dir = tmp_path / "agent"
    agent_dir.mkdir()
    (agent_dir / "agent.py").write_text(ENDPOINT_AGENT_FILE)
    cli = CLI(["endpoint", "--project", "faulty", "--headless", "--no-watch", "--name", "flaky-runner",
               "--", sys.executable, "agent.py"], cwd=agent_dir, env=cli_env(server.url, tmp_path / "home"))
    yield server, cli
    cli.kill()
    server.stop()


def test_opik_endpoint_rides_out_failing_heartbeats_and_polls(endpoint):
    server, cli = endpoint
    api = HttpApi(server.url)
    # The runner is up: its agents are registered.
    admin(server, "POST", "/requests/wait", json={"operation": "register_agents", "timeout_s": 60}).raise_for_status()
    project_id = api.post("/projects/retrieve", json={"name": "faulty"}).json()["id"]

    # Heartbeats answer 503 four times (the supervisor's and the child's, every 5 s each),
    # the job poll twice, and one poll loses its connection.
    admin(server, "POST", "/faults", json={"operation": "heartbeat", "status": 503, "times": 4})
    admin(server, "POST", "/faults", json={"operation": "next_job", "status": 503, "times": 2})
    admin(server, "POST", "/faults", json={"operation": "next_job", "drop": True, "times": 1})
    failed = admin(server, "POST", "/requests/wait",
                   json={"operation": "heartbeat", "status": 503, "count": 4, "timeout_s": 30})
    assert failed.status_code == 200, failed.text
    recovered = admin(server, "POST", "/requests/wait",
                      json={"operation": "heartbeat", "status": 200, "count": 1, "timeout_s": 15})
    assert recovered.status_code == 200, recovered.text

    # The runner never lapsed, and still takes and runs jobs.
    runner = api.get("/local-runners", params={"project_id": project_id}).json()["content"][0]
    assert runner["status"] == "connected"
    job_id = api.create_job(project_id, "answer", {"question": "still there?"})
    report = admin(server, "POST", "/requests/wait",
                   json={"operation": "report_job_result", "count": 1, "timeout_s": 60})
    assert report.status_code == 200, report.text
    assert api.finished_job(job_id)["status"] == "completed"

    # The journal shows the retries: failed polls, a dropped one, then polls answered again.
    polls = admin(server, "GET", "/requests?operation=next_job&limit=1000").json()["requests"][::-1]
    outcomes = [p["status"] for p in polls if p["fault"] is not None]
    assert outcomes == [503, 503, None]
    assert polls[-1]["status"] == 200
    faults = {f["operation"]: f for f in admin(server, "GET", "/faults").json()["faults"] if not f.get("drop")}
    assert faults["heartbeat"]["fired"] == 4 and faults["next_job"]["fired"] == 2
