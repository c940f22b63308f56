"""The control plane through Flask's test client: access, reset, the journal and its wait,
fault rules and the movable clock (tests/acceptance/test_admin_server.py runs the same
across workers and instances)."""
import gzip
import json
import threading
import time
import uuid

import pytest

from tests.support.data import AGENT
from tests.support.in_app import API, InApp, reap

KEYS = "alice:alice-key,bob:bob-key"


def admin_get(client, path, **kwargs):
    return client.get(f"/_admin{path}", **kwargs)


def admin_post(client, path, body=None, **kwargs):
    return client.post(f"/_admin{path}", json=body, **kwargs)


# -- access


@pytest.mark.parametrize(
    "admin, keys, admin_users, key, status",
    [
        ("auto", "", "", None, 200),  # a dev server: open
        ("auto", KEYS, "alice", "alice-key", 404),  # keys make auto off
        ("on", "", "", None, 200),
        ("on", KEYS, "alice", "alice-key", 200),
        ("on", KEYS, "alice", "bob-key", 403),  # a user, not an admin
        ("on", KEYS, "", "alice-key", 403),  # no admin named: nobody
        ("on", KEYS, "alice", None, 401),
        ("on", KEYS, "alice", "wrong-key", 401),
        ("off", "", "", None, 404),
        ("off", KEYS, "alice", "alice-key", 404),
    ],
)
def test_admin_access_matrix(make_app, admin, keys, admin_users, key, status):
    client = make_app(OPIK_RUNNERS_ADMIN=admin, OPIK_API_KEYS=keys, OPIK_RUNNERS_ADMIN_USERS=admin_users).test_client()
    headers = {"Authorization": key} if key else {}
    for method, path in (("get", "/_admin/clock"), ("get", "/_admin/requests"), ("post", "/_admin/reset")):
        answer = getattr(client, method)(path, headers=headers)
        assert answer.status_code == (204 if status == 200 and method == "post" else status), (method, path)
        if status >= 400:
            assert "message" in answer.json


def test_the_admin_api_never_widens_the_opik_api(make_app):
    """An admin user reading the Opik API sees their own workspace and runners only."""
    client = make_app(OPIK_RUNNERS_ADMIN="on", OPIK_API_KEYS=KEYS, OPIK_RUNNERS_ADMIN_USERS="alice").test_client()
    in_app = InApp(client)
    runner_id, _ = in_app.pair(headers={"Authorization": "bob-key"})
    assert client.get(f"{API}/local-runners/{runner_id}", headers={"Authorization": "alice-key"}).status_code == 404


def test_the_admin_api_is_served_at_the_root_only(client):
    assert client.get("/_admin/clock").status_code == 200
    assert client.get("/api/_admin/clock").status_code == 404


def test_the_admin_openapi_document_is_served(client):
    import yaml

    answer = client.get("/_admin/openapi.yaml")
    assert answer.status_code == 200
    document = yaml.safe_load(answer.data)
    for path in ("/_admin/reset", "/_admin/requests/wait", "/_admin/faults/{id}", "/_admin/clock"):
        assert path in document["paths"], path


# -- reset


def test_reset_wipes_everything(client, in_app):
    runner_id, project_id = in_app.pair()
    in_app.register(runner_id)
    in_app.create_job(project_id)
    admin_post(client, "/faults", {"operation": "ping", "status": 503})
    admin_post(client, "/clock", {"advance_s": 5})

    assert admin_post(client, "/reset").status_code == 204

    assert client.get(f"{API}/local-runners/{runner_id}").status_code == 404
    assert client.post(f"{API}/projects/retrieve", json={"name": "demo"}).status_code == 404
    assert admin_get(client, "/faults").json == {"faults": []}
    assert admin_get(client, "/clock").json["offset_s"] == 0
    # Only what came after the reset is in the journal.
    assert [e["operation"] for e in admin_get(client, "/requests").json["requests"]] == ["retrieve_project", "get_runner"]


def test_a_reset_logs_one_line_once_it_is_committed(client, in_app, caplog):
    in_app.pair(name="runner-1")
    in_app.pair(name="runner-2")
    in_app.pair(name="theirs", headers={"Comet-Workspace": "theirs"})

    with caplog.at_level("INFO", logger="opik_runners"):
        assert admin_post(client, "/reset?workspace=default").status_code == 204
        assert admin_post(client, "/reset").status_code == 204

    # Logged by the reset after its transaction, which may run again on a deadlock, not by
    # the wipe inside it (a line for an attempt rolled back would stay in the log).
    lines = [r.getMessage() for r in caplog.records if r.name.startswith(("opik_runners.control.reset", "opik_runners.control.state"))]
    assert lines == ["reset workspace default (2 runners removed)", "reset everything (1 runner removed)"]


def test_reset_of_a_workspace_that_will_not_be_stored_is_400(client):
    assert admin_post(client, "/reset?workspace=a%00b").status_code == 400
    assert admin_post(client, "/reset?workspace=" + "w" * 300).status_code == 400


def test_reset_of_one_workspace_leaves_the_others(client, in_app):
    ours, theirs = {"Comet-Workspace": "ours"}, {"Comet-Workspace": "theirs"}
    our_runner, _ = in_app.pair(headers=ours)
    their_runner, _ = in_app.pair(headers=theirs)

    assert admin_post(client, "/reset?workspace=ours").status_code == 204

    workspaces = {e["workspace"] for e in admin_get(client, "/requests?limit=1000").json["requests"]}
    assert workspaces == {"theirs"}
    assert client.get(f"{API}/local-runners/{our_runner}", headers=ours).status_code == 404
    assert client.get(f"{API}/local-runners/{their_runner}", headers=theirs).status_code == 200


def test_reset_ends_held_long_polls_with_their_empty_answer(make_app):
    app = make_app(OPIK_RUNNER_NEXT_JOB_POLL_TIMEOUT="30")
    client = app.test_client()
    in_app = InApp(client)
    runner_id, _ = in_app.pair()
    answers = []
    poll = threading.Thread(
        target=lambda: answers.append(app.test_client().post(f"{API}/local-runners/{runner_id}/jobs/next"))
    )
    poll.start()
    admin_post(client, "/requests/wait", {"operation": "pair", "count": 1, "timeout_s": 0.3})  # let the poll settle
    assert admin_post(client, "/reset").status_code == 204
    poll.join(timeout=10)
    assert not poll.is_alive(), "the held poll outlived the reset"
    assert answers[0].status_code == 200 and answers[0].data == b"null"


# -- the journal


def test_the_journal_records_each_opik_api_request(client, in_app):
    runner_id, project_id = in_app.pair()
    in_app.register(runner_id)
    job_id = in_app.create_job(project_id, inputs={"question": "why"})
    client.get(f"{API}/local-runners/{runner_id}/jobs?page=0&size=5", headers={"Authorization": "secret"})

    entries = admin_get(client, "/requests").json["requests"]
    listing, creation = entries[0], entries[1]
    assert listing["operation"] == "list_jobs" and listing["method"] == "GET"
    assert listing["path"] == f"/api/v1/private/local-runners/{runner_id}/jobs"
    assert listing["query"] == "page=0&size=5"
    assert listing["headers"]["Authorization"] == "<redacted>"
    assert listing["status"] == 200 and json.loads(listing["response_body"])["content"][0]["id"] == job_id
    assert listing["workspace"] == "default" and listing["duration_ms"] > 0
    assert creation["operation"] == "create_job" and creation["status"] == 201
    assert json.loads(creation["request_body"])["inputs"] == {"question": "why"}
    assert [e["id"] for e in entries] == sorted((e["id"] for e in entries), reverse=True)  # newest first
    assert not any(e["path"].startswith("/_admin") for e in entries)  # its own calls are not recorded


def test_the_journal_inflates_gzip_bodies_and_keeps_the_first_64_kib(client, in_app):
    project_id = in_app.ensure_project()
    body = json.dumps({"name": "demo", "description": "x" * 100_000}).encode()
    client.post(f"{API}/projects", data=gzip.compress(body), headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
    entry = admin_get(client, "/requests?operation=create_project").json["requests"][0]
    assert entry["request_body"] == body.decode()[: 64 * 1024]
    assert project_id


def test_journal_notes_say_what_opik_accepts_silently(client, endpoint_runner):
    _, project_id = endpoint_runner
    client.post(f"{API}/local-runners/jobs", json={
        "agent_name": "answer", "project_id": project_id, "mask_id": str(uuid.uuid4()), "agent": "typo",
    })
    client.put(f"{API}/local-runners/{endpoint_runner[0]}/agents", json={"answer": {**AGENT, "timeout": "30"}})
    notes = {e["operation"]: e["notes"] for e in reversed(admin_get(client, "/requests").json["requests"])}
    assert any("ignored field(s) agent" in note for note in notes["create_job"])
    assert any("mask_id is deprecated" in note for note in notes["create_job"])
    assert any("the string '30' was read as the number 30" in note for note in notes["register_agents"])
    assert notes["retrieve_project"] == []


def test_journal_filters_and_limit(client, in_app, endpoint_runner):
    runner_id, project_id = endpoint_runner
    for _ in range(3):
        in_app.create_job(project_id)
    client.get(f"{API}/local-runners/{uuid.uuid4()}")  # 404

    def ops(query):
        return [e["operation"] for e in admin_get(client, f"/requests?{query}").json["requests"]]

    assert ops("operation=create_job") == ["create_job"] * 3
    assert ops("method=post&path=*/local-runners/jobs") == ["create_job"] * 3
    assert ops("status=404&method=GET") == ["get_runner"]
    answer = admin_get(client, "/requests?operation=create_job&limit=2").json
    assert len(answer["requests"]) == 2 and answer["meta"]["total"] == 3
    newest = admin_get(client, "/requests?limit=1").json["requests"][0]["id"]
    client.get("/is-alive/ping")
    assert ops(f"since={newest}") == ["ping"]
    assert admin_get(client, "/requests?limit=0").status_code == 400
    assert admin_get(client, "/requests?since=yesterday").status_code == 400
    exact = admin_get(client, f"/requests?since={answer['requests'][0]['time']}&operation=create_job").json
    assert exact["requests"][-1]["id"] == answer["requests"][0]["id"]  # an entry's own time includes it


def test_the_journal_keeps_the_newest_entries_only(make_app):
    client = make_app(OPIK_RUNNERS_JOURNAL_SIZE="3").test_client()
    for _ in range(5):
        client.get("/is-alive/ping")
    client.get("/is-alive/ver")
    entries = admin_get(client, "/requests").json["requests"]
    assert [e["operation"] for e in entries] == ["version", "ping", "ping"]


def test_journal_size_0_records_nothing(make_app):
    client = make_app(OPIK_RUNNERS_JOURNAL_SIZE="0").test_client()
    client.get("/is-alive/ping")
    assert admin_get(client, "/requests").json["requests"] == []


def test_clearing_the_journal(client):
    client.get("/is-alive/ping")
    assert client.delete("/_admin/requests").status_code == 204
    assert admin_get(client, "/requests").json["requests"] == []


def test_wait_answers_once_the_count_arrives(app, client):
    def later():
        for _ in range(2):
            app.test_client().get("/is-alive/ping")

    client.get("/is-alive/ping")  # before the call: not counted
    threading.Timer(0.3, later).start()  # (had they come before the wait began, it would answer 408)
    answer = admin_post(client, "/requests/wait", {"operation": "ping", "count": 2, "timeout_s": 10})
    assert answer.status_code == 200
    assert [e["operation"] for e in answer.json["requests"]] == ["ping", "ping"]
    assert answer.json["requests"][0]["id"] < answer.json["requests"][1]["id"]  # oldest first


def test_wait_from_since_counts_what_already_arrived(client):
    first = client.get("/is-alive/ping")
    assert first.status_code == 200
    client.get("/is-alive/ping")
    answer = admin_post(client, "/requests/wait", {"operation": "ping", "count": 2, "since": "0", "timeout_s": 1})
    assert answer.status_code == 200 and len(answer.json["requests"]) == 2


def test_wait_times_out_with_408_and_what_did_arrive(app, client):
    threading.Timer(0.05, lambda: app.test_client().get("/is-alive/ping")).start()
    answer = admin_post(client, "/requests/wait", {"path": "/is-alive/*", "count": 2, "timeout_s": 0.5})
    assert answer.status_code == 408
    assert answer.json["code"] == 408 and "1 of 2" in answer.json["message"]
    assert [e["operation"] for e in answer.json["requests"]] == ["ping"]


@pytest.mark.parametrize("body", [{"count": 0}, {"timeout_s": -1}, {"status": "x"}, [1], {"opration": "ping"},
                                  {"since": "9" * 30}])
def test_wait_refuses_bad_patterns(client, body):
    answer = admin_post(client, "/requests/wait", body)
    assert answer.status_code == 400 and answer.json["message"]


# -- faults


def test_a_status_fault_answers_for_times_requests_then_retires(client):
    rule = admin_post(client, "/faults", {"operation": "ping", "status": 503, "times": 2})
    assert rule.status_code == 201 and rule.json["active"] is True
    answers = [client.get("/is-alive/ping") for _ in range(3)]
    assert [a.status_code for a in answers] == [503, 503, 200]
    assert answers[0].json == {"code": 503, "message": f"Injected by fault rule {rule.json['id']}"}
    (listed,) = admin_get(client, "/faults").json["faults"]
    assert listed["fired"] == 2 and listed["active"] is False
    faulted = [e["fault"] for e in admin_get(client, "/requests?operation=ping").json["requests"]]
    assert faulted == [None, rule.json["id"], rule.json["id"]]


def test_a_fault_with_a_body_and_matching_by_method_path_and_workspace(client):
    admin_post(client, "/faults", {
        "method": "POST", "path": "/api/v1/private/projects*", "workspace": "flaky",
        "status": 429, "body": {"errors": ["Too many requests"]},
    })
    assert client.post(f"{API}/projects/retrieve", json={"name": "x"}, headers={"Comet-Workspace": "flaky"}).json == {
        "errors": ["Too many requests"]
    }
    assert client.post(f"{API}/projects/retrieve", json={"name": "x"}).status_code == 404  # another workspace
    assert client.get(f"{API}/projects/{uuid.uuid4()}", headers={"Comet-Workspace": "flaky"}).status_code == 404


def test_a_seeded_probability_fault_repeats_its_pattern(client):
    def pattern():
        admin_post(client, "/faults", {"operation": "ping", "status": 500, "probability": 0.5, "seed": 7})
        statuses = [client.get("/is-alive/ping").status_code for _ in range(20)]
        client.delete("/_admin/faults")
        return statuses

    first, second = pattern(), pattern()
    assert first == second
    assert 500 in first and 200 in first


def test_a_delay_fault_answers_the_real_answer_later(client):
    admin_post(client, "/faults", {"operation": "ping", "delay_ms": 150})
    assert client.get("/is-alive/ping").json == {"healthy": True}
    (entry,) = admin_get(client, "/requests?operation=ping").json["requests"]
    assert entry["duration_ms"] >= 150 and entry["fault"] is not None


def test_a_drop_fault_closes_the_connection_without_an_answer(client):
    rule = admin_post(client, "/faults", {"operation": "ping", "drop": True, "times": 1}).json
    with pytest.raises(ConnectionResetError):
        client.get("/is-alive/ping")
    assert client.get("/is-alive/ping").status_code == 200
    dropped = admin_get(client, "/requests?operation=ping").json["requests"][-1]
    assert dropped["status"] is None and dropped["fault"] == rule["id"] and dropped["response_body"] is None


def test_a_hold_fault_holds_a_long_poll_and_answers_it_empty(client, in_app, endpoint_runner):
    runner_id, project_id = endpoint_runner
    job_id = in_app.create_job(project_id)
    admin_post(client, "/faults", {"operation": "next_job", "hold_ms": 100, "times": 1})
    held = client.post(f"{API}/local-runners/{runner_id}/jobs/next")
    assert held.status_code == 200 and held.data == b"null"
    assert client.get(f"{API}/local-runners/jobs/{job_id}").json["status"] == "pending"  # not claimed
    assert client.post(f"{API}/local-runners/{runner_id}/jobs/next").json["id"] == job_id


def test_an_answer_delay_fault_serves_at_once_and_answers_late(client, in_app, endpoint_runner):
    runner_id, project_id = endpoint_runner
    job_id = in_app.create_job(project_id)
    admin_post(client, "/faults", {"operation": "next_job", "answer_delay_ms": 300, "times": 1})
    started = time.monotonic()
    claimed = client.post(f"{API}/local-runners/{runner_id}/jobs/next")
    assert claimed.json["id"] == job_id and time.monotonic() - started >= 0.3  # claimed, and answered late
    (entry,) = admin_get(client, "/requests?operation=next_job").json["requests"]
    assert entry["duration_ms"] >= 300 and entry["fault"] is not None and job_id in entry["response_body"]


def test_deleting_fault_rules(client):
    first = admin_post(client, "/faults", {"operation": "ping", "status": 500}).json
    admin_post(client, "/faults", {"operation": "version", "status": 500})
    assert client.delete(f"/_admin/faults/{first['id']}").status_code == 204
    assert client.get("/is-alive/ping").status_code == 200
    assert client.delete(f"/_admin/faults/{first['id']}").status_code == 404
    assert client.delete("/_admin/faults").status_code == 204
    assert client.get("/is-alive/ver").status_code == 200


@pytest.mark.parametrize("rule", [
    {"operation": "ping"},  # no effect
    {"operation": "ping", "body": {"x": 1}},  # a body without a status
    {"status": 99},
    {"status": 500, "probability": 1.5},
    {"status": 500, "times": 0},
    {"drop": "sometimes"},
    {"operation": "ping", "status": 500, "time": 4},  # a misspelt `times`: refused, not a rule that never retires
    {"status": 500, "seed": 2**64},
    {"status": 500, "times": 2**40},
])
def test_bad_fault_rules_are_400(client, rule):
    answer = admin_post(client, "/faults", rule)
    assert answer.status_code == 400 and answer.json["message"]
    assert admin_get(client, "/faults").json == {"faults": []}


# -- the clock


def test_the_clock_makes_a_runner_go_disconnected(client, endpoint_runner):
    runner_id, _ = endpoint_runner
    assert client.get(f"{API}/local-runners/{runner_id}").json["status"] == "connected"
    answer = admin_post(client, "/clock", {"advance_s": 16})  # past the 15 s heartbeat TTL
    assert answer.status_code == 200 and answer.json["offset_s"] == 16
    assert client.get(f"{API}/local-runners/{runner_id}").json["status"] == "disconnected"


def test_the_clock_times_out_a_running_job(client, in_app, endpoint_runner):
    runner_id, project_id = endpoint_runner
    job_id = in_app.create_job(project_id)
    client.post(f"{API}/local-runners/{runner_id}/jobs/next")
    admin_post(client, "/clock", {"advance_s": 31 * 60})  # past the 30 min job timeout; the reaper runs at once
    job = client.get(f"{API}/local-runners/jobs/{job_id}").json
    assert job["status"] == "failed" and "timed out" in job["error"]


def test_the_clock_expires_a_pairing_session(client, in_app):
    project_id = in_app.ensure_project()
    session_id, _, key = in_app.create_session(project_id, ttl=60)
    admin_post(client, "/clock", {"advance_s": 61})
    from opik_runners.protocol import activation_hmac_text

    answer = client.post(f"{API}/pairing/sessions/{session_id}/activate",
                         json={"runner_name": "late", "hmac": activation_hmac_text(session_id, key, "late")})
    assert answer.status_code == 404


def test_the_clock_expires_finished_jobs_and_purges_dead_runners(app, client, in_app, endpoint_runner):
    runner_id, project_id = endpoint_runner
    job_id = in_app.create_job(project_id)
    client.post(f"{API}/local-runners/jobs/{job_id}/cancel")
    admin_post(client, "/clock", {"advance_s": 8 * 86400})  # past the 7 d TTL and the 24 h purge
    assert client.get(f"{API}/local-runners/jobs/{job_id}").status_code == 404
    assert client.get(f"{API}/local-runners/{runner_id}").status_code == 404


def test_the_clock_moves_the_bridge_minute_counters(make_app):
    client = make_app(OPIK_BRIDGE_MAX_COMMANDS_PER_MINUTE="1").test_client()
    in_app = InApp(client)
    runner_id, _ = in_app.pair(runner_type="connect")
    client.post(f"{API}/local-runners/{runner_id}/heartbeats", json={"capabilities": ["jobs", "bridge"]})
    command = {"type": "ReadFile", "args": {"path": "a.txt"}}
    assert client.post(f"{API}/local-runners/{runner_id}/bridge/commands", json=command).status_code == 201
    assert client.post(f"{API}/local-runners/{runner_id}/bridge/commands", json=command).status_code == 429
    admin_post(client, "/clock", {"advance_s": 60})
    client.post(f"{API}/local-runners/{runner_id}/heartbeats", json={"capabilities": ["jobs", "bridge"]})
    assert client.post(f"{API}/local-runners/{runner_id}/bridge/commands", json=command).status_code == 201


def test_the_clock_goes_back_to_real_time(client):
    admin_post(client, "/clock", {"advance_s": 3600})
    assert admin_get(client, "/clock").json["offset_s"] == 3600
    answer = client.delete("/_admin/clock")
    assert answer.status_code == 200 and answer.json["offset_s"] == 0


@pytest.mark.parametrize("body", [{}, {"advance_s": -5}, {"advance_s": "soon"}])
def test_the_clock_refuses_bad_moves(client, body):
    assert admin_post(client, "/clock", body).status_code == 400


def test_moving_the_clock_keeps_the_reaper_on_real_time(app, client):
    """Back to real time after a jump, the reaper's next cycle is still due on schedule."""
    admin_post(client, "/clock", {"advance_s": 3600})
    client.delete("/_admin/clock")
    from opik_runners.domain import maintenance
    from opik_runners.store.models import database

    with database.connection_context():
        assert maintenance.seconds_until_due(app.extensions["opik_runners"]._replace(reaper_interval=60)) <= 60
    assert reap(app) is not None
