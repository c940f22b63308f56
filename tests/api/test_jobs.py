"""The job endpoints of /v1/private/local-runners (docs/opik-behaviour.md#job-fields,
docs/opik-behaviour.md#job-logs, docs/opik-behaviour.md#job-states, docs/opik-behaviour.md#error-shapes,
docs/opik-behaviour.md#jobs, docs/opik-behaviour.md#limits, docs/opik-behaviour.md#opik-vs-spec).

One test (or one parametrised group) per row of the behaviour tables. Every
response also goes through the contract check of the test client.
"""
import threading
import time
import uuid

import pytest

from tests.support.data import AGENT, lapse
from tests.support.in_app import API, ROOT, InApp
from tests.support.threads import Task, join_all, run_all

JOBS = f"{API}/local-runners/jobs"
NO_RUNNER = {"errors": ["No runner configured. Pair one from the Runners page."]}
NOT_CONNECTED = {"errors": ["Your runner is not connected. Start it with: opik connect"]}
BAD_STATUS = {"errors": ["Invalid result status. Must be one of: [running, completed, failed]"]}


def job_not_found(job_id):
    return {"code": 404, "message": f"Job not found: '{job_id}'"}


def get_job(client, job_id, headers=None, prefix=API):
    return client.get(f"{prefix}/local-runners/jobs/{job_id}", headers=headers)


def job_state(client, job_id, headers=None):
    response = get_job(client, job_id, headers)
    assert response.status_code == 200, response.data
    return response.json


def next_job(client, runner_id, headers=None):
    response = client.post(f"{API}/local-runners/{runner_id}/jobs/next", headers=headers)
    assert response.status_code == 200, response.data
    return response.json


def report(client, job_id, headers=None, **body):
    return client.post(f"{JOBS}/{job_id}/results", json=body, headers=headers)


def cancel(client, job_id, headers=None):
    return client.post(f"{JOBS}/{job_id}/cancel", headers=headers)


def heartbeat(client, runner_id, headers=None):
    response = client.post(f"{API}/local-runners/{runner_id}/heartbeats", headers=headers)
    assert response.status_code == 200, response.data
    return response.json["cancelled_job_ids"]


def append_logs(client, job_id, entries, headers=None):
    return client.post(f"{JOBS}/{job_id}/logs", json=entries, headers=headers)


def read_logs(client, job_id, headers=None, **query):
    return client.get(f"{JOBS}/{job_id}/logs", query_string=query, headers=headers)


def lines(*texts, stream="stdout"):
    return [{"stream": stream, "text": text} for text in texts]


# -- POST /jobs: create


@pytest.mark.parametrize("prefix", [API, ROOT])
def test_create_is_201_without_body_and_location_under_own_prefix(client, endpoint_runner, prefix):
    _, project_id = endpoint_runner
    response = client.post(f"{prefix}/local-runners/jobs", json={"agent_name": "answer", "project_id": project_id})
    assert response.status_code == 201
    assert response.data == b""
    location = response.headers["Location"]
    job_id = location.rsplit("/", 1)[1]
    uuid.UUID(job_id)
    assert location.endswith(f"{prefix}/local-runners/jobs/{job_id}")
    if prefix == ROOT:
        assert "/api/" not in location
    # The Location resolves to the new job.
    assert job_state(client, job_id)["id"] == job_id


def test_created_job_is_pending_and_routed_to_callers_runner(client, in_app, endpoint_runner):
    runner_id, project_id = endpoint_runner
    job_id = in_app.create_job(project_id, inputs={"question": "why?"})
    job = job_state(client, job_id)
    assert job["status"] == "pending"
    assert job["runner_id"] == runner_id
    assert job["project_id"] == project_id
    assert job["agent_name"] == "answer"
    assert job["inputs"] == {"question": "why?"}
    assert job["created_at"].endswith("Z")
    for absent in ("started_at", "completed_at", "result", "error", "trace_id"):
        assert absent not in job


def test_create_without_any_runner_is_404(client, in_app):
    project_id = in_app.ensure_project()
    response = client.post(JOBS, json={"agent_name": "answer", "project_id": project_id})
    assert response.status_code == 404
    assert response.json == NO_RUNNER


def test_create_for_unknown_project_is_404(client, endpoint_runner):
    response = client.post(JOBS, json={"agent_name": "answer", "project_id": str(uuid.uuid4())})
    assert response.status_code == 404
    assert response.json == NO_RUNNER


def test_create_with_only_a_connect_runner_is_404(client, in_app):
    runner_id, project_id = in_app.pair(runner_type="connect")
    in_app.register(runner_id)
    response = client.post(JOBS, json={"agent_name": "answer", "project_id": project_id})
    assert response.status_code == 404
    assert response.json == NO_RUNNER


def test_create_routes_to_the_endpoint_runner_when_a_connect_runner_coexists(client, in_app):
    connect_id, project_id = in_app.pair(runner_type="connect", name="connect-1")
    in_app.register(connect_id)
    endpoint_id, _ = in_app.pair(runner_type="endpoint", name="endpoint-1")
    in_app.register(endpoint_id)
    job_id = in_app.create_job(project_id)
    assert job_state(client, job_id)["runner_id"] == endpoint_id


def test_create_after_the_runner_is_deleted_is_404(client, endpoint_runner):
    runner_id, project_id = endpoint_runner
    assert client.delete(f"{API}/local-runners/{runner_id}").status_code == 204
    response = client.post(JOBS, json={"agent_name": "answer", "project_id": project_id})
    assert response.status_code == 404
    assert response.json == NO_RUNNER


def test_create_on_a_lapsed_runner_is_409_and_next_job_neither_checks_nor_revives(make_app):
    client = make_app(OPIK_RUNNER_HEARTBEAT_TTL="1").test_client()
    in_app = InApp(client)
    runner_id, project_id = in_app.pair()
    in_app.register(runner_id)
    queued = in_app.create_job(project_id)
    lapse(runner_id)
    response = client.post(JOBS, json={"agent_name": "answer", "project_id": project_id})
    assert response.status_code == 409
    assert response.json == NOT_CONNECTED
    # Liveness comes before the agent check (order of checks, docs/opik-behaviour.md#job-create).
    response = client.post(JOBS, json={"agent_name": "nope", "project_id": project_id})
    assert response.status_code == 409
    assert response.json == NOT_CONNECTED
    # jobs/next checks ownership only and does not refresh the heartbeat.
    assert next_job(client, runner_id)["id"] == queued
    assert client.get(f"{API}/local-runners/{runner_id}").json["status"] == "disconnected"
    assert client.post(JOBS, json={"agent_name": "answer", "project_id": project_id}).status_code == 409
    # A heartbeat brings a lapsed (not purged) runner back (docs/opik-behaviour.md#runner-status).
    heartbeat(client, runner_id)
    in_app.create_job(project_id)


def test_create_for_unregistered_agent_is_400(client, endpoint_runner):
    _, project_id = endpoint_runner
    response = client.post(JOBS, json={"agent_name": "x", "project_id": project_id})
    assert response.status_code == 400
    assert response.json == {"errors": ["Agent 'x' is not registered on this runner"]}


def test_create_after_agents_are_cleared_is_400(client, endpoint_runner):
    runner_id, project_id = endpoint_runner
    assert client.put(f"{API}/local-runners/{runner_id}/agents", json={}).status_code == 204
    response = client.post(JOBS, json={"agent_name": "answer", "project_id": project_id})
    assert response.status_code == 400
    assert response.json == {"errors": ["Agent 'answer' is not registered on this runner"]}


def test_full_pending_queue_is_429_and_only_pending_jobs_count(make_app):
    client = make_app(OPIK_RUNNER_MAX_PENDING="3").test_client()
    in_app = InApp(client)
    runner_id, project_id = in_app.pair()
    in_app.register(runner_id)
    ids = [in_app.create_job(project_id) for _ in range(3)]
    response = client.post(JOBS, json={"agent_name": "answer", "project_id": project_id})
    assert response.status_code == 429
    assert response.json == {"errors": ["Too many pending jobs for this runner"]}
    # The agent check comes before the queue check.
    response = client.post(JOBS, json={"agent_name": "nope", "project_id": project_id})
    assert response.status_code == 400
    # A claimed (running) job leaves the pending queue, so there is room again.
    assert next_job(client, runner_id)["id"] == ids[0]
    in_app.create_job(project_id)
    assert client.post(JOBS, json={"agent_name": "answer", "project_id": project_id}).status_code == 429
    # Cancelling a pending job frees a slot too.
    assert cancel(client, ids[1]).status_code == 204
    in_app.create_job(project_id)


@pytest.mark.parametrize(
    "body, message",
    [
        ({"agent_name": "   ", "project_id": "PROJECT"}, "agent_name must not be blank"),
        ({"agent_name": "", "project_id": "PROJECT"}, "agent_name must not be blank"),
        ({"project_id": "PROJECT"}, "agent_name must not be null"),
        ({"agent_name": "answer"}, "project_id must not be null"),
        ({"agent_name": "answer", "project_id": None}, "project_id must not be null"),
        ({"agent_name": "answer", "project_id": "PROJECT", "blueprint_name": "  "}, "blueprint_name must not be blank"),
    ],
)
def test_create_constraint_violations_are_422(client, endpoint_runner, body, message):
    _, project_id = endpoint_runner
    body = {k: (project_id if v == "PROJECT" else v) for k, v in body.items()}
    response = client.post(JOBS, json=body)
    assert response.status_code == 422
    assert response.json == {"errors": [message]}


def test_create_with_null_body_is_422(client, endpoint_runner):
    response = client.post(JOBS, data="", content_type="application/json")
    assert response.status_code == 422
    assert isinstance(response.json["errors"], list) and response.json["errors"]


def test_job_timeout_defaults_to_config_when_agent_has_none(client, in_app, endpoint_runner):
    _, project_id = endpoint_runner
    assert job_state(client, in_app.create_job(project_id))["timeout"] == 1800


def test_job_timeout_is_the_agents_when_above_zero(client, in_app, endpoint_runner):
    runner_id, project_id = endpoint_runner
    in_app.register(runner_id, {"answer": {**AGENT, "timeout": 42}, "zero": AGENT})
    assert job_state(client, in_app.create_job(project_id))["timeout"] == 42
    assert job_state(client, in_app.create_job(project_id, agent="zero"))["timeout"] == 1800


def test_job_timeout_follows_the_configured_default(make_app):
    client = make_app(OPIK_RUNNER_JOB_TIMEOUT="90").test_client()
    in_app = InApp(client)
    runner_id, project_id = in_app.pair()
    in_app.register(runner_id)
    assert job_state(client, in_app.create_job(project_id))["timeout"] == 90


def test_create_routes_to_the_newest_endpoint_runner_after_repairing(client, in_app):
    old_id, project_id = in_app.pair(name="old")
    in_app.register(old_id)
    old_job = in_app.create_job(project_id)
    new_id, same_project = in_app.pair(name="new")
    assert same_project == project_id
    in_app.register(new_id)
    job_id = in_app.create_job(project_id)
    assert job_state(client, job_id)["runner_id"] == new_id
    # The evicted runner's jobs are gone from view and it cannot poll any more.
    assert get_job(client, old_job).status_code == 404
    assert client.post(f"{API}/local-runners/{old_id}/jobs/next").status_code == 404
    assert next_job(client, new_id)["id"] == job_id


# -- GET /jobs/{id}


@pytest.mark.parametrize("prefix", [API, ROOT])
def test_get_job_is_200(client, in_app, endpoint_runner, prefix):
    runner_id, project_id = endpoint_runner
    job_id = in_app.create_job(project_id)
    response = get_job(client, job_id, prefix=prefix)
    assert response.status_code == 200
    assert response.json["id"] == job_id
    assert response.json["runner_id"] == runner_id


def test_get_job_after_its_runner_is_deleted_is_404(client, in_app, endpoint_runner):
    runner_id, project_id = endpoint_runner
    job_id = in_app.create_job(project_id)
    assert client.delete(f"{API}/local-runners/{runner_id}").status_code == 204
    response = get_job(client, job_id)
    assert response.status_code == 404
    assert response.json == job_not_found(job_id)


def test_get_job_with_malformed_id_is_404(client, endpoint_runner):
    assert get_job(client, "not-a-uuid").status_code == 404


# -- POST /{runnerId}/jobs/next


def test_next_with_nothing_pending_is_200_null(client, endpoint_runner):
    runner_id, _ = endpoint_runner
    response = client.post(f"{API}/local-runners/{runner_id}/jobs/next")
    assert response.status_code == 200
    assert response.data == b"null"


def test_next_holds_for_the_poll_timeout_before_null(make_app):
    client = make_app(OPIK_RUNNER_NEXT_JOB_POLL_TIMEOUT="1.0").test_client()
    in_app = InApp(client)
    runner_id, _ = in_app.pair()
    in_app.register(runner_id)
    started = time.monotonic()
    response = client.post(f"{API}/local-runners/{runner_id}/jobs/next")
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert response.data == b"null"
    assert 0.9 <= elapsed < 5


def test_next_accepts_an_empty_json_body(client, in_app, endpoint_runner):
    runner_id, project_id = endpoint_runner
    job_id = in_app.create_job(project_id)
    response = client.post(f"{API}/local-runners/{runner_id}/jobs/next", data="", content_type="application/json")
    assert response.status_code == 200
    assert response.json["id"] == job_id


def test_next_claims_oldest_pending_first(client, in_app, endpoint_runner):
    runner_id, project_id = endpoint_runner
    ids = [in_app.create_job(project_id, inputs={"i": i}) for i in range(4)]
    claimed = [next_job(client, runner_id) for _ in range(4)]
    assert [job["id"] for job in claimed] == ids
    assert [job["inputs"] for job in claimed] == [{"i": i} for i in range(4)]
    assert next_job(client, runner_id) is None


def test_claimed_job_is_running_with_started_at(client, in_app, endpoint_runner):
    runner_id, project_id = endpoint_runner
    job_id = in_app.create_job(project_id, inputs={"question": "q"})
    job = next_job(client, runner_id)
    assert job["id"] == job_id
    assert job["status"] == "running"
    assert job["agent_name"] == "answer"
    assert job["inputs"] == {"question": "q"}
    assert job["timeout"] == 1800
    assert job["created_at"] <= job["started_at"]
    assert "completed_at" not in job
    stored = job_state(client, job_id)
    assert stored["status"] == "running"
    assert stored["started_at"] == job["started_at"]


def test_waiting_next_is_woken_by_a_job_created_elsewhere(make_app):
    app = make_app(OPIK_RUNNER_NEXT_JOB_POLL_TIMEOUT="5")
    client = app.test_client()
    in_app = InApp(client)
    runner_id, project_id = in_app.pair()
    in_app.register(runner_id)
    outcome = {}

    def poll():
        poller = app.test_client()
        started = time.monotonic()
        response = poller.post(f"{API}/local-runners/{runner_id}/jobs/next")
        outcome.update(status=response.status_code, body=response.json, elapsed=time.monotonic() - started)

    thread = threading.Thread(target=poll)
    thread.start()
    time.sleep(0.5)  # the poll is waiting by now
    assert thread.is_alive()
    job_id = InApp(app.test_client()).create_job(project_id)
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert outcome["status"] == 200
    assert outcome["body"]["id"] == job_id
    assert outcome["body"]["status"] == "running"
    assert 0.4 <= outcome["elapsed"] < 4


def test_next_for_a_deleted_runner_is_404(client, endpoint_runner):
    runner_id, _ = endpoint_runner
    assert client.delete(f"{API}/local-runners/{runner_id}").status_code == 204
    assert client.post(f"{API}/local-runners/{runner_id}/jobs/next").status_code == 404


def test_concurrent_claims_deliver_each_job_exactly_once(app, client, in_app, endpoint_runner):
    runner_id, project_id = endpoint_runner
    created = [in_app.create_job(project_id) for _ in range(12)]
    claimed = []

    def worker():
        poller = app.test_client()
        while (job := next_job(poller, runner_id)) is not None:
            claimed.append(job["id"])

    run_all([Task(worker) for _ in range(5)], timeout=30)
    assert len(claimed) == len(set(claimed)) == len(created)
    assert sorted(claimed) == sorted(created)
    assert {job_state(client, job_id)["status"] for job_id in created} == {"running"}


def test_concurrent_waiting_polls_share_new_jobs_exactly_once(make_app):
    app = make_app(OPIK_RUNNER_NEXT_JOB_POLL_TIMEOUT="1.5")
    client = app.test_client()
    in_app = InApp(client)
    runner_id, project_id = in_app.pair()
    in_app.register(runner_id)
    results = []
    polls = [Task(lambda: results.append(next_job(app.test_client(), runner_id))) for _ in range(4)]
    for task in polls:
        task.start()
    time.sleep(0.3)
    created = [in_app.create_job(project_id) for _ in range(2)]
    join_all(polls, timeout=10)
    delivered = [job["id"] for job in results if job is not None]
    assert sorted(delivered) == sorted(created)
    assert results.count(None) == 2


# -- POST /jobs/{id}/results


def test_running_report_records_trace_result_and_error_only(client, in_app, endpoint_runner):
    runner_id, project_id = endpoint_runner
    job_id = in_app.create_job(project_id)
    claimed = next_job(client, runner_id)
    trace_id = str(uuid.uuid4())
    response = report(client, job_id, status="running", trace_id=trace_id, result={"partial": 1}, error="warn")
    assert response.status_code == 204
    assert response.data == b""
    job = job_state(client, job_id)
    assert job["status"] == "running"
    assert job["trace_id"] == trace_id
    assert job["result"] == {"partial": 1}
    assert job["error"] == "warn"
    assert job["started_at"] == claimed["started_at"]
    assert "completed_at" not in job


@pytest.mark.parametrize("status", ["completed", "failed"])
def test_final_report_sets_status_and_completed_at(client, in_app, endpoint_runner, status):
    runner_id, project_id = endpoint_runner
    job_id = in_app.create_job(project_id)
    next_job(client, runner_id)
    trace_id = str(uuid.uuid4())
    assert report(client, job_id, status="running", trace_id=trace_id).status_code == 204
    body = {"result": {"answer": 42}} if status == "completed" else {"error": "ValueError: boom"}
    assert report(client, job_id, status=status, trace_id=trace_id, **body).status_code == 204
    job = job_state(client, job_id)
    assert job["status"] == status
    assert job["trace_id"] == trace_id
    assert job["started_at"] <= job["completed_at"]
    if status == "completed":
        assert job["result"] == {"answer": 42}
    else:
        assert job["error"] == "ValueError: boom"


@pytest.mark.parametrize("status", ["pending", "cancelled"])
def test_report_with_non_reportable_status_is_400(client, in_app, endpoint_runner, status):
    runner_id, project_id = endpoint_runner
    job_id = in_app.create_job(project_id)
    next_job(client, runner_id)
    response = report(client, job_id, status=status)
    assert response.status_code == 400
    assert response.json == BAD_STATUS
    assert job_state(client, job_id)["status"] == "running"


@pytest.mark.parametrize("status", ["pending", "cancelled"])
def test_report_status_is_checked_before_the_job_lookup(client, endpoint_runner, status):
    response = report(client, str(uuid.uuid4()), status=status)
    assert response.status_code == 400
    assert response.json == BAD_STATUS


def test_report_with_unknown_enum_is_a_400_parse_error(client, in_app, endpoint_runner):
    runner_id, project_id = endpoint_runner
    job_id = in_app.create_job(project_id)
    response = report(client, job_id, status="bogus")
    assert response.status_code == 400
    assert response.json["code"] == 400
    assert response.json["message"].startswith("Unable to process JSON")
    assert set(response.json) <= {"code", "message", "details"}


def test_report_without_status_is_422(client, in_app, endpoint_runner):
    _, project_id = endpoint_runner
    job_id = in_app.create_job(project_id)
    response = client.post(f"{JOBS}/{job_id}/results", json={"result": {"a": 1}})
    assert response.status_code == 422
    assert response.json == {"errors": ["status must not be null"]}


@pytest.mark.parametrize("final", ["completed", "failed"])
def test_finished_job_ignores_later_reports(client, in_app, endpoint_runner, final):
    runner_id, project_id = endpoint_runner
    job_id = in_app.create_job(project_id)
    next_job(client, runner_id)
    assert report(client, job_id, status=final, result={"v": 1}, error="first").status_code == 204
    before = job_state(client, job_id)
    for later in (
        {"status": "completed", "result": {"v": 2}},
        {"status": "failed", "error": "second"},
        {"status": "running", "trace_id": str(uuid.uuid4()), "result": {"v": 3}, "error": "third"},
    ):
        response = report(client, job_id, **later)
        assert response.status_code == 204
        assert response.data == b""
    assert job_state(client, job_id) == before


@pytest.mark.parametrize("status", ["completed", "failed"])
def test_never_claimed_pending_job_can_be_finished(client, in_app, endpoint_runner, status):
    runner_id, project_id = endpoint_runner
    job_id = in_app.create_job(project_id)
    assert report(client, job_id, status=status, error="e" if status == "failed" else None).status_code == 204
    job = job_state(client, job_id)
    assert job["status"] == status
    assert "completed_at" in job
    assert "started_at" not in job
    # Finished for good: a claim does not hand it out (Opik's would, as running: docs/opik-behaviour.md#departure-result-before-claim).
    assert next_job(client, runner_id) is None
    assert job_state(client, job_id)["status"] == status


# -- POST /jobs/{id}/cancel


def test_cancel_pending_job(client, in_app, endpoint_runner):
    runner_id, project_id = endpoint_runner
    job_id = in_app.create_job(project_id)
    response = cancel(client, job_id)
    assert response.status_code == 204
    assert response.data == b""
    job = job_state(client, job_id)
    assert job["status"] == "cancelled"
    assert "completed_at" in job and "started_at" not in job
    # Never handed out afterwards, and not announced (only running jobs are).
    assert next_job(client, runner_id) is None
    assert heartbeat(client, runner_id) == []
    assert job_state(client, job_id)["status"] == "cancelled"


def test_cancel_pending_job_keeps_the_queue_order_of_the_rest(client, in_app, endpoint_runner):
    runner_id, project_id = endpoint_runner
    first, second, third = (in_app.create_job(project_id) for _ in range(3))
    assert cancel(client, second).status_code == 204
    assert next_job(client, runner_id)["id"] == first
    assert next_job(client, runner_id)["id"] == third
    assert next_job(client, runner_id) is None


def test_cancel_running_job_is_announced_once_by_heartbeat(client, in_app, endpoint_runner):
    runner_id, project_id = endpoint_runner
    job_id = in_app.create_job(project_id)
    other = in_app.create_job(project_id)
    next_job(client, runner_id)
    next_job(client, runner_id)
    assert heartbeat(client, runner_id) == []
    assert cancel(client, job_id).status_code == 204
    job = job_state(client, job_id)
    assert job["status"] == "cancelled"
    assert "completed_at" in job
    assert heartbeat(client, runner_id) == [job_id]
    assert heartbeat(client, runner_id) == []
    # Cancelling again announces nothing new.
    assert cancel(client, job_id).status_code == 204
    assert heartbeat(client, runner_id) == []
    assert job_state(client, other)["status"] == "running"


def test_cancelled_running_job_ignores_the_runners_late_result(client, in_app, endpoint_runner):
    runner_id, project_id = endpoint_runner
    job_id = in_app.create_job(project_id)
    next_job(client, runner_id)
    assert cancel(client, job_id).status_code == 204
    before = job_state(client, job_id)
    assert report(client, job_id, status="completed", result={"late": True}).status_code == 204
    assert job_state(client, job_id) == before


@pytest.mark.parametrize("final", ["completed", "failed"])
def test_cancel_finished_job_is_a_no_op(client, in_app, endpoint_runner, final):
    runner_id, project_id = endpoint_runner
    job_id = in_app.create_job(project_id)
    next_job(client, runner_id)
    assert report(client, job_id, status=final).status_code == 204
    before = job_state(client, job_id)
    response = cancel(client, job_id)
    assert response.status_code == 204
    assert job_state(client, job_id) == before
    assert heartbeat(client, runner_id) == []


# -- logs


def test_logs_append_then_read_in_order(client, in_app, endpoint_runner):
    runner_id, project_id = endpoint_runner
    job_id = in_app.create_job(project_id)
    next_job(client, runner_id)
    assert read_logs(client, job_id).json == []
    first = lines("one", "two") + lines("oops", stream="stderr")
    response = append_logs(client, job_id, first)
    assert response.status_code == 204
    assert response.data == b""
    assert append_logs(client, job_id, lines("four")).status_code == 204
    response = read_logs(client, job_id)
    assert response.status_code == 200
    assert response.json == first + lines("four")


def test_logs_offset_pages_from_that_entry(client, in_app, endpoint_runner):
    _, project_id = endpoint_runner
    job_id = in_app.create_job(project_id)
    entries = lines(*(f"line {i}" for i in range(5)))
    assert append_logs(client, job_id, entries).status_code == 204
    assert read_logs(client, job_id, offset=0).json == entries
    assert read_logs(client, job_id, offset=2).json == entries[2:]
    assert read_logs(client, job_id, offset=4).json == entries[4:]
    assert read_logs(client, job_id, offset=5).json == []
    assert read_logs(client, job_id, offset=500).json == []


def test_logs_are_per_job(client, in_app, endpoint_runner):
    _, project_id = endpoint_runner
    a, b = in_app.create_job(project_id), in_app.create_job(project_id)
    append_logs(client, a, lines("a1"))
    append_logs(client, b, lines("b1"))
    append_logs(client, a, lines("a2"))
    assert read_logs(client, a).json == lines("a1", "a2")
    assert read_logs(client, b).json == lines("b1")


@pytest.mark.parametrize("offset", [-1, 2**31, 10**30])
def test_logs_negative_or_overflowing_offset_is_400(client, in_app, endpoint_runner, offset):
    _, project_id = endpoint_runner
    job_id = in_app.create_job(project_id)
    response = read_logs(client, job_id, offset=offset)
    assert response.status_code == 400
    assert list(response.json) == ["errors"]
    assert len(response.json["errors"]) == 1 and "offset" in response.json["errors"][0]


def test_logs_over_1000_entries_is_400_and_appends_nothing(client, in_app, endpoint_runner):
    _, project_id = endpoint_runner
    job_id = in_app.create_job(project_id)
    response = append_logs(client, job_id, lines(*(f"l{i}" for i in range(1001))))
    assert response.status_code == 400
    assert response.json == {"errors": ["Too many log entries. Maximum per batch is 1000"]}
    assert read_logs(client, job_id).json == []
    assert append_logs(client, job_id, lines(*(f"l{i}" for i in range(1000)))).status_code == 204
    assert len(read_logs(client, job_id).json) == 1000


def test_logs_batch_size_is_checked_before_the_job_lookup(client, endpoint_runner):
    response = append_logs(client, str(uuid.uuid4()), lines(*(f"l{i}" for i in range(1001))))
    assert response.status_code == 400
    assert response.json == {"errors": ["Too many log entries. Maximum per batch is 1000"]}


@pytest.mark.parametrize("entry", [{"stream": "stdout", "text": "  "}, {"stream": "stdout", "text": ""},
                                   {"stream": "stdout"}, {"stream": " ", "text": "x"}])
def test_logs_blank_or_missing_fields_are_422(client, in_app, endpoint_runner, entry):
    _, project_id = endpoint_runner
    job_id = in_app.create_job(project_id)
    response = append_logs(client, job_id, lines("fine") + [entry])
    assert response.status_code == 422
    assert list(response.json) == ["errors"] and response.json["errors"]
    assert read_logs(client, job_id).json == []


@pytest.mark.parametrize("final", ["completed", "failed", "cancelled"])
def test_logs_can_be_appended_to_a_finished_job(client, in_app, endpoint_runner, final):
    runner_id, project_id = endpoint_runner
    job_id = in_app.create_job(project_id)
    next_job(client, runner_id)
    if final == "cancelled":
        assert cancel(client, job_id).status_code == 204
    else:
        assert report(client, job_id, status=final).status_code == 204
    assert append_logs(client, job_id, lines("after the end")).status_code == 204
    assert read_logs(client, job_id).json == lines("after the end")
    assert job_state(client, job_id)["status"] == final


def test_logs_of_a_deleted_runners_job_are_404(client, in_app, endpoint_runner):
    runner_id, project_id = endpoint_runner
    job_id = in_app.create_job(project_id)
    append_logs(client, job_id, lines("x"))
    assert client.delete(f"{API}/local-runners/{runner_id}").status_code == 204
    assert read_logs(client, job_id).status_code == 404
    assert append_logs(client, job_id, lines("y")).status_code == 404


# A server without API keys (the dev default): the workspace header alone scopes a job. A
# mutation audit found that dropping the workspace from the job's ownership check went unnoticed.
@pytest.mark.parametrize("claimed", [False, True], ids=["pending", "running"])
@pytest.mark.parametrize("call, body", [
    ("cancel", None),
    ("results", {"status": "completed", "result": {"stolen": True}}),
    ("results", {"status": "failed", "error": "nope"}),
])
def test_cancel_and_results_on_another_workspaces_job_are_404_and_change_nothing(client, in_app, claimed, call, body):
    mine = {"Comet-Workspace": "team-a"}
    runner_id, project_id = in_app.pair(headers=mine)
    in_app.register(runner_id, headers=mine)
    job_id = in_app.create_job(project_id, headers=mine)
    if claimed:
        assert next_job(client, runner_id, headers=mine)["id"] == job_id
    before = client.get(f"{API}/local-runners/jobs/{job_id}", headers=mine).json
    for theirs in ({"Comet-Workspace": "team-b"}, {}):  # another workspace; no header (the default one)
        response = client.post(f"{API}/local-runners/jobs/{job_id}/{call}", json=body, headers=theirs)
        assert (response.status_code, response.json) == (404, {"code": 404, "message": f"Job not found: '{job_id}'"})
    assert client.get(f"{API}/local-runners/jobs/{job_id}", headers=mine).json == before
    # The owner's own call goes through (the 404 above is not the answer for everyone).
    assert client.post(f"{API}/local-runners/jobs/{job_id}/{call}", json=body, headers=mine).status_code in (200, 204)
