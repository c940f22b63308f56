"""The runner endpoints: list, get, delete, agents, checklist, heartbeats, and the
liveness rules and reaper behind them (docs/opik-behaviour.md#runner-status,
docs/opik-behaviour.md#job-states, docs/opik-behaviour.md#error-shapes,
docs/opik-behaviour.md#runners, docs/opik-behaviour.md#limits, docs/opik-behaviour.md#scoping,
docs/opik-behaviour.md#opik-vs-spec).

Most job state is only visible through the API while the runner is still owned;
once a runner is deleted, evicted or purged its jobs 404, so those transitions
are read straight from the store (the rows the server itself reads).
"""
import json
import time
import uuid
from datetime import datetime, timezone

import pytest

from opik_runners.store import models
from tests.support.data import AGENT, lapse
from tests.support.in_app import API, ROOT, InApp, reap

LAPSE = 1.1  # a little over OPIK_RUNNER_HEARTBEAT_TTL="1"
MAX_CHECKLIST = 1048576


# -- helpers


def runner_url(runner_id, prefix=API):
    return f"{prefix}/local-runners/{runner_id}"


def get_runner(client, runner_id, headers=None, prefix=API):
    return client.get(runner_url(runner_id, prefix), headers=headers)


def list_runners(client, project_id=None, headers=None, prefix=API, **query):
    if project_id is not None:
        query["project_id"] = project_id
    return client.get(f"{prefix}/local-runners", query_string=query, headers=headers)


def listed_ids(client, project_id, headers=None, **query):
    response = list_runners(client, project_id, headers=headers, **query)
    assert response.status_code == 200, response.data
    return [runner["id"] for runner in response.json["content"]]


def heartbeat(client, runner_id, body=None, headers=None, prefix=API):
    url = f"{runner_url(runner_id, prefix)}/heartbeats"
    if body is None:
        return client.post(url, headers=headers)
    return client.post(url, json=body, headers=headers)


def put_agents(client, runner_id, agents, headers=None):
    return client.put(f"{runner_url(runner_id)}/agents", json=agents, headers=headers)


def patch_checklist(client, runner_id, body, headers=None):
    return client.patch(f"{runner_url(runner_id)}/checklist", json=body, headers=headers)


def delete_runner(client, runner_id, headers=None, prefix=API):
    return client.delete(runner_url(runner_id, prefix), headers=headers)


def claim(client, runner_id, headers=None):
    response = client.post(f"{runner_url(runner_id)}/jobs/next", headers=headers)
    assert response.status_code == 200, response.data
    return response.json


def cancel(client, job_id, headers=None):
    response = client.post(f"{API}/local-runners/jobs/{job_id}/cancel", headers=headers)
    assert response.status_code == 204, response.data


def get_job(client, job_id, headers=None):
    return client.get(f"{API}/local-runners/jobs/{job_id}", headers=headers)


def stored_job(job_id):
    """The job row as stored: the only view left once its runner is gone."""
    with models.database.connection_context():
        return models.Job.get_by_id(uuid.UUID(job_id))


def runner_not_found(runner_id):
    return {"code": 404, "message": f"Runner not found: {runner_id}"}


def runner_gone(runner_id):
    return {"errors": [f"Runner not found: {runner_id}"]}


def agents_by_name(runner):
    return {agent["name"]: agent for agent in runner["agents"]}


def nested(keys, leaf):
    """{"k1": {"k2": ... {"kn": leaf}}}; the object under kn sits at depth len(keys)."""
    for key in reversed(keys):
        leaf = {key: leaf}
    return leaf


def dig(document, keys):
    for key in keys:
        document = document[key]
    return document


ALICE = {"Authorization": "key-a"}
BOB = {"Authorization": "key-b"}


@pytest.fixture
def users_client(make_app):
    """A client for an app with two users, alice and bob, in the same workspace."""
    return make_app(OPIK_API_KEYS="alice:key-a,bob:key-b").test_client()


@pytest.fixture
def lapsing_client(make_app):
    """Heartbeats live one second; nothing is purged within a test (24 h)."""
    return make_app(OPIK_RUNNER_HEARTBEAT_TTL="1").test_client()


# -- GET /local-runners (list)


def test_list_requires_project_id(client, endpoint_runner):
    response = list_runners(client)
    assert response.status_code == 400
    assert response.json == {"errors": ["query param project_id must not be null"]}


def test_list_malformed_project_id_is_404(client, endpoint_runner):
    response = list_runners(client, "not-a-uuid")
    assert response.status_code == 404
    assert response.json == {"code": 404, "message": "HTTP 404 Not Found"}


@pytest.mark.parametrize(
    "query, message",
    [
        ({"page": -1}, "query param page must be greater than or equal to 0"),
        ({"size": 0}, "query param size must be greater than or equal to 1"),
        ({"page": 2**63}, "query param page must be an integer"),
        ({"size": 2**31}, "query param size must be an integer"),
    ],
)
def test_list_bad_page_or_size_is_400(client, endpoint_runner, query, message):
    _, project_id = endpoint_runner
    response = list_runners(client, project_id, **query)
    assert response.status_code == 400
    assert response.json == {"errors": [message]}


def test_list_returns_the_runner_with_defaults(client, endpoint_runner):
    runner_id, project_id = endpoint_runner
    response = list_runners(client, project_id)
    assert response.status_code == 200
    body = response.json
    assert (body["page"], body["size"], body["total"]) == (0, 25, 1)
    assert body["content"] == [get_runner(client, runner_id).json]
    assert body["content"][0]["status"] == "connected"


def test_list_an_unknown_project_is_empty(client, endpoint_runner):
    response = list_runners(client, str(uuid.uuid4()))
    assert response.status_code == 200
    assert response.json == {"page": 0, "size": 25, "total": 0, "content": []}


def test_list_status_filter_connected_and_disconnected(lapsing_client):
    client = lapsing_client
    in_app = InApp(client)
    lapsed, project_id = in_app.pair(runner_type="endpoint", name="old")
    time.sleep(LAPSE)
    live, _ = in_app.pair(runner_type="connect", name="new")
    for status, expected in (("connected", [live]), ("disconnected", [lapsed])):
        response = list_runners(client, project_id, status=status)
        assert response.status_code == 200
        assert response.json["total"] == 1
        assert [r["id"] for r in response.json["content"]] == expected
        assert [r["status"] for r in response.json["content"]] == [status]
    # Case-insensitive, as Dropwizard matches enum query values.
    assert listed_ids(client, project_id, status="CONNECTED") == [live]
    assert listed_ids(client, project_id, status="Disconnected") == [lapsed]
    # Without a filter both are listed, the lapsed one still there.
    assert listed_ids(client, project_id) == [live, lapsed]


def test_list_status_filter_is_case_insensitive(client, in_app):
    endpoint_id, project_id = in_app.pair(runner_type="endpoint")
    connect_id, _ = in_app.pair(runner_type="connect")
    assert listed_ids(client, project_id, status="CONNECTED") == [connect_id, endpoint_id]
    assert listed_ids(client, project_id, status="cOnNeCtEd") == [connect_id, endpoint_id]
    response = list_runners(client, project_id, status="DISCONNECTED")
    assert response.json["total"] == 0 and response.json["content"] == []


def test_list_status_pairing_is_always_empty(client, endpoint_runner):
    _, project_id = endpoint_runner
    for value in ("pairing", "PAIRING"):
        response = list_runners(client, project_id, status=value)
        assert response.status_code == 200
        assert response.json == {"page": 0, "size": 25, "total": 0, "content": []}


@pytest.mark.parametrize("value", ["bogus", "connected!"])
def test_list_unknown_status_is_400(client, endpoint_runner, value):
    _, project_id = endpoint_runner
    response = list_runners(client, project_id, status=value)
    assert response.status_code == 400
    assert "status" in json.dumps(response.json)


def test_list_paging_with_exact_total(client, in_app):
    endpoint_id, project_id = in_app.pair(runner_type="endpoint")
    connect_id, _ = in_app.pair(runner_type="connect")
    seen = []
    for page in range(2):
        body = list_runners(client, project_id, page=page, size=1).json
        assert (body["page"], body["size"], body["total"]) == (page, 1, 2)
        assert len(body["content"]) == 1
        seen.append(body["content"][0]["id"])
    assert seen == [connect_id, endpoint_id]
    past = list_runners(client, project_id, page=2, size=1).json
    assert past == {"page": 2, "size": 1, "total": 2, "content": []}
    wide = list_runners(client, project_id, page=0, size=100).json
    assert wide["total"] == 2 and [r["id"] for r in wide["content"]] == [connect_id, endpoint_id]


def test_list_newest_activation_first(client, in_app):
    first_endpoint, project_id = in_app.pair(runner_type="endpoint", name="e1")
    connect_id, _ = in_app.pair(runner_type="connect", name="c1")
    assert listed_ids(client, project_id) == [connect_id, first_endpoint]
    # Re-pairing the endpoint evicts the old one; the new one is now the newest.
    second_endpoint, _ = in_app.pair(runner_type="endpoint", name="e2")
    assert listed_ids(client, project_id) == [second_endpoint, connect_id]


def test_list_only_this_project(client, in_app):
    alpha_id, alpha = in_app.pair(project="alpha")
    beta_id, beta = in_app.pair(project="beta")
    # Runner eviction is per project: both endpoint runners stay.
    assert listed_ids(client, alpha) == [alpha_id]
    assert listed_ids(client, beta) == [beta_id]


def test_list_only_the_callers_own_runners(users_client):
    client = users_client
    in_app = InApp(client)
    alice_id, project_id = in_app.pair(headers=ALICE)
    bob_id, same_project = in_app.pair(headers=BOB)
    assert same_project == project_id
    assert listed_ids(client, project_id, headers=ALICE) == [alice_id]
    assert listed_ids(client, project_id, headers=BOB) == [bob_id]
    # Bob's pairing did not evict Alice's runner of the same type and project.
    assert heartbeat(client, alice_id, headers=ALICE).status_code == 200


def test_list_other_workspace_sees_nothing(client, in_app):
    team_a = {"Comet-Workspace": "team-a"}
    runner_id, project_id = in_app.pair(headers=team_a)
    assert listed_ids(client, project_id, headers=team_a) == [runner_id]
    response = list_runners(client, project_id, headers={"Comet-Workspace": "team-b"})
    assert response.status_code == 200
    assert response.json["total"] == 0 and response.json["content"] == []
    assert listed_ids(client, project_id) == []  # the default workspace neither


def test_list_omits_deleted_and_evicted_runners(client, in_app):
    endpoint_id, project_id = in_app.pair(runner_type="endpoint")
    connect_id, _ = in_app.pair(runner_type="connect")
    assert delete_runner(client, connect_id).status_code == 204
    body = list_runners(client, project_id).json
    assert body["total"] == 1 and [r["id"] for r in body["content"]] == [endpoint_id]
    newer_id, _ = in_app.pair(runner_type="endpoint")  # evicts endpoint_id
    body = list_runners(client, project_id).json
    assert body["total"] == 1 and [r["id"] for r in body["content"]] == [newer_id]


# -- GET /local-runners/{runnerId}


def test_get_runner_every_field(client, in_app):
    runner_id, project_id = in_app.pair(name="devbox-01")
    full = {
        "name": "not-the-key",  # the map key wins
        "description": "Summarise a document.",
        "language": "typescript",
        "executable": "/usr/bin/node",
        "source_file": "agents/summarise.ts",
        "params": [
            {"name": "doc", "type": "string", "presence": "required"},
            {"name": "style", "type": "string", "presence": "optional"},
            {"name": "verbose", "type": "boolean"},
        ],
        "timeout": 90,
    }
    in_app.register(runner_id, {"answer": AGENT, "summarise": full, "bare": {}})
    before = datetime.now(timezone.utc)
    response = get_runner(client, runner_id)
    assert response.status_code == 200
    runner = response.json
    assert runner["id"] == runner_id
    assert runner["name"] == "devbox-01"
    assert runner["project_id"] == project_id
    assert runner["status"] == "connected"
    assert runner["type"] == "endpoint"
    assert runner["capabilities"] == ["jobs"]
    assert "checklist" not in runner
    assert runner["connected_at"].endswith("Z")
    connected_at = datetime.fromisoformat(runner["connected_at"].replace("Z", "+00:00"))
    assert abs((before - connected_at).total_seconds()) < 60
    assert agents_by_name(runner) == {
        "answer": {**AGENT, "name": "answer"},
        "summarise": {**full, "name": "summarise"},
        "bare": {"name": "bare", "timeout": 0},
    }
    assert set(runner) == {"id", "name", "project_id", "status", "connected_at", "agents", "capabilities", "type"}


def test_get_connect_runner_type(client, in_app):
    runner_id, project_id = in_app.pair(runner_type="connect")
    runner = get_runner(client, runner_id).json
    assert runner["type"] == "connect"
    assert runner["agents"] == []
    assert runner["capabilities"] == ["jobs"]


@pytest.mark.parametrize("prefix", [API, ROOT])
def test_get_runner_on_both_prefixes(client, endpoint_runner, prefix):
    runner_id, _ = endpoint_runner
    response = get_runner(client, runner_id, prefix=prefix)
    assert response.status_code == 200
    assert response.json["id"] == runner_id
    assert [a["name"] for a in response.json["agents"]] == ["answer"]


def test_get_malformed_runner_id_is_404(client):
    response = client.get(f"{API}/local-runners/not-a-uuid")
    assert response.status_code == 404


def test_get_deleted_runner_is_404(client, endpoint_runner):
    runner_id, _ = endpoint_runner
    assert delete_runner(client, runner_id).status_code == 204
    response = get_runner(client, runner_id)
    assert response.status_code == 404
    assert response.json == runner_not_found(runner_id)


def test_get_evicted_runner_is_404(client, in_app, endpoint_runner):
    old_id, _ = endpoint_runner
    new_id, _ = in_app.pair(runner_type="endpoint", name="replacement")
    response = get_runner(client, old_id)
    assert response.status_code == 404
    assert response.json == runner_not_found(old_id)
    assert get_runner(client, new_id).json["name"] == "replacement"


def test_get_disconnected_runner_hides_agents(lapsing_client):
    client = lapsing_client
    in_app = InApp(client)
    runner_id, project_id = in_app.pair()
    in_app.register(runner_id)
    assert [a["name"] for a in get_runner(client, runner_id).json["agents"]] == ["answer"]
    lapse(runner_id)
    runner = get_runner(client, runner_id).json
    assert runner["status"] == "disconnected"
    assert runner["agents"] == []
    assert list_runners(client, project_id).json["content"][0]["agents"] == []
    # Hidden, not forgotten: the next heartbeat shows them again.
    assert heartbeat(client, runner_id).status_code == 200
    runner = get_runner(client, runner_id).json
    assert runner["status"] == "connected"
    assert [a["name"] for a in runner["agents"]] == ["answer"]


# -- DELETE /local-runners/{runnerId}


def test_delete_twice_is_204_both_times(client, endpoint_runner):
    runner_id, _ = endpoint_runner
    assert delete_runner(client, runner_id).status_code == 204
    assert delete_runner(client, runner_id).status_code == 204


def test_delete_fails_pending_and_running_jobs(client, in_app, endpoint_runner):
    runner_id, project_id = endpoint_runner
    done = in_app.create_job(project_id)
    assert claim(client, runner_id)["id"] == done
    client.post(f"{API}/local-runners/jobs/{done}/results", json={"status": "completed", "result": {"ok": 1}})
    running = in_app.create_job(project_id)
    assert claim(client, runner_id)["id"] == running
    pending = in_app.create_job(project_id)
    assert get_job(client, pending).json["status"] == "pending"

    assert delete_runner(client, runner_id).status_code == 204

    for job_id in (running, pending):
        job = stored_job(job_id)
        assert job.status == "failed"
        assert job.error == "Runner disconnected"
        assert job.completed_at is not None
    finished = stored_job(done)
    assert finished.status == "completed" and finished.error is None


def test_delete_makes_the_runner_unreachable(client, in_app, endpoint_runner):
    runner_id, project_id = endpoint_runner
    job_id = in_app.create_job(project_id)
    assert delete_runner(client, runner_id, prefix=ROOT).status_code == 204

    assert get_runner(client, runner_id).json == runner_not_found(runner_id)
    response = heartbeat(client, runner_id)
    assert response.status_code == 410
    assert response.json == runner_gone(runner_id)
    assert list_runners(client, project_id).json["total"] == 0
    response = get_job(client, job_id)
    assert response.status_code == 404
    assert response.json == {"code": 404, "message": f"Job not found: '{job_id}'"}
    assert client.get(f"{API}/local-runners/jobs/{job_id}/logs").status_code == 404
    assert client.get(f"{runner_url(runner_id)}/jobs").status_code == 404
    assert put_agents(client, runner_id, {"answer": AGENT}).status_code == 404
    assert patch_checklist(client, runner_id, {"a": 1}).status_code == 404
    # The active-runner pointer is cleared too: new jobs have nowhere to go.
    response = client.post(f"{API}/local-runners/jobs", json={"agent_name": "answer", "project_id": project_id})
    assert response.status_code == 404
    assert response.json == {"errors": ["No runner configured. Pair one from the Runners page."]}


# -- PUT /local-runners/{runnerId}/agents


def test_put_agents_replaces_the_whole_set(client, in_app, endpoint_runner):
    runner_id, _ = endpoint_runner
    in_app.register(runner_id, {"one": {"timeout": 5}, "two": {"language": "python"}})
    assert sorted(agents_by_name(get_runner(client, runner_id).json)) == ["one", "two"]
    in_app.register(runner_id, {"three": {"description": "only me"}})
    assert agents_by_name(get_runner(client, runner_id).json) == {
        "three": {"name": "three", "description": "only me", "timeout": 0}
    }


def test_put_empty_agents_clears_them(client, endpoint_runner):
    runner_id, project_id = endpoint_runner
    response = put_agents(client, runner_id, {})
    assert response.status_code == 204
    runner = get_runner(client, runner_id).json
    assert runner["status"] == "connected" and runner["agents"] == []
    response = client.post(f"{API}/local-runners/jobs", json={"agent_name": "answer", "project_id": project_id})
    assert response.status_code == 400
    assert response.json == {"errors": ["Agent 'answer' is not registered on this runner"]}


def test_put_fifty_agents_is_allowed(client, endpoint_runner):
    runner_id, _ = endpoint_runner
    agents = {f"agent-{i:02d}": {"timeout": i} for i in range(50)}
    assert put_agents(client, runner_id, agents).status_code == 204
    assert len(get_runner(client, runner_id).json["agents"]) == 50


def test_put_fifty_one_agents_is_400(client, endpoint_runner):
    runner_id, _ = endpoint_runner
    agents = {f"agent-{i:02d}": {} for i in range(51)}
    response = put_agents(client, runner_id, agents)
    assert response.status_code == 400
    assert response.json == {"errors": ["Too many agents. Maximum is 50"]}
    # Rejected as a whole: the previous set is still there.
    assert [a["name"] for a in get_runner(client, runner_id).json["agents"]] == ["answer"]


@pytest.mark.parametrize(
    "param",
    [
        {"name": "   ", "type": "string"},
        {"name": "question", "type": ""},
    ],
)
def test_put_agents_blank_param_name_or_type_is_422(client, endpoint_runner, param):
    runner_id, _ = endpoint_runner
    response = put_agents(client, runner_id, {"answer": {"params": [param]}})
    assert response.status_code == 422
    errors = response.json["errors"]
    assert isinstance(errors, list) and len(errors) == 1
    assert "must not be blank" in errors[0]
    field = "name" if not param["name"].strip() else "type"
    assert field in errors[0]
    # Nothing was stored.
    assert agents_by_name(get_runner(client, runner_id).json)["answer"] == {**AGENT, "name": "answer"}


def test_put_agents_ownership_is_checked_before_the_count(client):
    unknown = str(uuid.uuid4())
    response = put_agents(client, unknown, {f"agent-{i}": {} for i in range(51)})
    assert response.status_code == 404
    assert response.json == runner_not_found(unknown)


def test_put_agents_on_a_lapsed_runner(lapsing_client):
    client = lapsing_client
    in_app = InApp(client)
    runner_id, _ = in_app.pair()
    lapse(runner_id)
    assert get_runner(client, runner_id).json["status"] == "disconnected"
    assert put_agents(client, runner_id, {"late": {"timeout": 7}}).status_code == 204
    assert get_runner(client, runner_id).json["agents"] == []  # hidden while disconnected
    assert heartbeat(client, runner_id).status_code == 200
    assert get_runner(client, runner_id).json["agents"] == [{"name": "late", "timeout": 7}]


# -- PATCH /local-runners/{runnerId}/checklist


def test_checklist_first_patch_is_stored(client, endpoint_runner):
    runner_id, _ = endpoint_runner
    response = patch_checklist(client, runner_id, {"python": {"ok": True, "version": "3.12"}, "steps": [1, 2]})
    assert response.status_code == 204
    assert get_runner(client, runner_id).json["checklist"] == {
        "python": {"ok": True, "version": "3.12"},
        "steps": [1, 2],
    }


def test_checklist_empty_patch(client, endpoint_runner):
    runner_id, _ = endpoint_runner
    assert patch_checklist(client, runner_id, {}).status_code == 204
    assert get_runner(client, runner_id).json["checklist"] == {}
    patch_checklist(client, runner_id, {"a": {"b": 1}})
    assert patch_checklist(client, runner_id, {}).status_code == 204
    assert get_runner(client, runner_id).json["checklist"] == {"a": {"b": 1}}


def test_checklist_nested_objects_merge(client, endpoint_runner):
    runner_id, _ = endpoint_runner
    patch_checklist(client, runner_id, {"env": {"python": "3.12", "tools": {"git": True}}, "name": "box"})
    assert patch_checklist(client, runner_id, {"env": {"tools": {"uv": True}}, "ready": False}).status_code == 204
    assert get_runner(client, runner_id).json["checklist"] == {
        "env": {"python": "3.12", "tools": {"git": True, "uv": True}},
        "name": "box",
        "ready": False,
    }


def test_checklist_arrays_replace(client, endpoint_runner):
    runner_id, _ = endpoint_runner
    patch_checklist(client, runner_id, {"steps": [1, 2, 3], "env": {"paths": ["/a", "/b"]}})
    patch_checklist(client, runner_id, {"steps": [4], "env": {"paths": []}})
    assert get_runner(client, runner_id).json["checklist"] == {"steps": [4], "env": {"paths": []}}


def test_checklist_null_replaces(client, endpoint_runner):
    runner_id, _ = endpoint_runner
    patch_checklist(client, runner_id, {"env": {"python": "3.12"}, "keep": 1})
    patch_checklist(client, runner_id, {"env": None})
    assert get_runner(client, runner_id).json["checklist"] == {"env": None, "keep": 1}


def test_checklist_scalars_and_objects_replace_each_other(client, endpoint_runner):
    runner_id, _ = endpoint_runner
    patch_checklist(client, runner_id, {"a": {"x": 1}, "b": "text"})
    patch_checklist(client, runner_id, {"a": "flat now", "b": {"y": 2}})
    assert get_runner(client, runner_id).json["checklist"] == {"a": "flat now", "b": {"y": 2}}


def test_checklist_merges_objects_down_to_depth_ten(client, endpoint_runner):
    runner_id, _ = endpoint_runner
    keys = [f"l{i}" for i in range(1, 11)]  # the innermost object is at depth 10
    patch_checklist(client, runner_id, nested(keys, {"old": 1}))
    patch_checklist(client, runner_id, nested(keys, {"new": 2}))
    assert dig(get_runner(client, runner_id).json["checklist"], keys) == {"old": 1, "new": 2}


def test_checklist_replaces_objects_deeper_than_ten(client, endpoint_runner):
    runner_id, _ = endpoint_runner
    keys = [f"l{i}" for i in range(1, 12)]  # the innermost object is at depth 11
    patch_checklist(client, runner_id, nested(keys, {"old": 1}))
    patch_checklist(client, runner_id, nested(keys, {"new": 2}))
    checklist = get_runner(client, runner_id).json["checklist"]
    assert dig(checklist, keys) == {"new": 2}
    # Everything above the cut still merged: a sibling at depth 10 survives.
    patch_checklist(client, runner_id, nested(keys[:10], {"sibling": True}))
    checklist = get_runner(client, runner_id).json["checklist"]
    assert dig(checklist, keys[:10]) == {"l11": {"new": 2}, "sibling": True}


@pytest.mark.parametrize("body", [[1, 2], "a string", 42])
def test_checklist_must_be_an_object(client, endpoint_runner, body):
    runner_id, _ = endpoint_runner
    response = patch_checklist(client, runner_id, body)
    assert response.status_code == 400
    assert response.json == {"errors": ["Checklist must be a JSON object"]}
    assert "checklist" not in get_runner(client, runner_id).json


@pytest.mark.parametrize("body", [["x"], "a string"])
def test_checklist_shape_is_checked_before_ownership(client, body):
    response = patch_checklist(client, str(uuid.uuid4()), body)
    assert response.status_code == 400
    assert response.json == {"errors": ["Checklist must be a JSON object"]}


def test_checklist_exactly_one_mib_is_accepted(client, endpoint_runner):
    runner_id, _ = endpoint_runner
    body = {"big": "x" * (MAX_CHECKLIST - len('{"big":""}'))}
    assert len(json.dumps(body, separators=(",", ":"))) == MAX_CHECKLIST
    assert patch_checklist(client, runner_id, body).status_code == 204
    assert len(get_runner(client, runner_id).json["checklist"]["big"]) == len(body["big"])


def test_checklist_over_one_mib_is_400(client, endpoint_runner):
    runner_id, _ = endpoint_runner
    patch_checklist(client, runner_id, {"small": True})
    body = {"big": "x" * (MAX_CHECKLIST - len('{"small":true,"big":""}') + 1)}
    response = patch_checklist(client, runner_id, body)
    assert response.status_code == 400
    assert response.json == {"errors": [f"Checklist too large: {MAX_CHECKLIST + 1} bytes (max {MAX_CHECKLIST})"]}
    assert get_runner(client, runner_id).json["checklist"] == {"small": True}


def test_checklist_size_is_checked_on_the_merged_document(client, endpoint_runner):
    runner_id, _ = endpoint_runner
    half = "x" * 600_000
    assert patch_checklist(client, runner_id, {"a": half}).status_code == 204
    response = patch_checklist(client, runner_id, {"b": half})
    merged = len(json.dumps({"a": half, "b": half}, separators=(",", ":")))
    assert merged == 1_200_015
    assert response.status_code == 400
    assert response.json == {"errors": [f"Checklist too large: {merged} bytes (max {MAX_CHECKLIST})"]}
    assert get_runner(client, runner_id).json["checklist"] == {"a": half}


def test_checklist_size_counts_characters_not_utf8_bytes(client, endpoint_runner):
    """Upstream measures `serialized.length()` of the compact JSON (docs/opik-behaviour.md#checklist,
    docs/opik-behaviour.md#limits); 600,000 "é" are 600,008 characters, well under the
    cap, even though they take 1,200,008 bytes in UTF-8."""
    runner_id, _ = endpoint_runner
    body = {"t": "é" * 600_000}
    response = patch_checklist(client, runner_id, body)
    assert response.status_code == 204, response.data
    assert get_runner(client, runner_id).json["checklist"] == body


# -- POST /local-runners/{runnerId}/heartbeats


@pytest.mark.parametrize("prefix", [API, ROOT])
def test_heartbeat_answers_no_cancellations(client, endpoint_runner, prefix):
    runner_id, _ = endpoint_runner
    response = heartbeat(client, runner_id, prefix=prefix)
    assert response.status_code == 200
    assert response.json == {"cancelled_job_ids": []}
    response = heartbeat(client, runner_id, body={}, prefix=prefix)
    assert response.status_code == 200
    assert response.json == {"cancelled_job_ids": []}


def test_heartbeat_deleted_runner_is_410(client, endpoint_runner):
    runner_id, _ = endpoint_runner
    delete_runner(client, runner_id)
    response = heartbeat(client, runner_id)
    assert response.status_code == 410
    assert response.json == runner_gone(runner_id)


def test_heartbeat_evicted_runner_is_410(client, in_app, endpoint_runner):
    old_id, project_id = endpoint_runner
    job_id = in_app.create_job(project_id)
    new_id, _ = in_app.pair(runner_type="endpoint", name="newer")
    response = heartbeat(client, old_id)
    assert response.status_code == 410
    assert response.json == runner_gone(old_id)
    assert heartbeat(client, new_id).status_code == 200
    # Eviction has DELETE's effects on the old runner's jobs.
    job = stored_job(job_id)
    assert (job.status, job.error) == ("failed", "Runner disconnected")


def test_endpoint_and_connect_runners_coexist(client, in_app):
    endpoint_id, project_id = in_app.pair(runner_type="endpoint")
    connect_id, _ = in_app.pair(runner_type="connect")
    assert heartbeat(client, endpoint_id).status_code == 200
    assert heartbeat(client, connect_id).status_code == 200
    assert get_runner(client, endpoint_id).json["type"] == "endpoint"
    assert get_runner(client, connect_id).json["type"] == "connect"
    assert listed_ids(client, project_id) == [connect_id, endpoint_id]


def test_heartbeat_capabilities_replace_the_stored_list(client, endpoint_runner):
    runner_id, _ = endpoint_runner
    assert heartbeat(client, runner_id, {"capabilities": ["jobs", "bridge"]}).status_code == 200
    assert get_runner(client, runner_id).json["capabilities"] == ["jobs", "bridge"]
    assert heartbeat(client, runner_id, {"capabilities": ["bridge"]}).status_code == 200
    assert get_runner(client, runner_id).json["capabilities"] == ["bridge"]


@pytest.mark.parametrize("body", [None, {}, {"capabilities": []}, {"capabilities": None}])
def test_heartbeat_without_capabilities_keeps_them(client, endpoint_runner, body):
    runner_id, _ = endpoint_runner
    heartbeat(client, runner_id, {"capabilities": ["bridge", "snake_case"]})
    response = heartbeat(client, runner_id, body)
    assert response.status_code == 200
    assert get_runner(client, runner_id).json["capabilities"] == ["bridge", "snake_case"]


def test_heartbeat_bad_capability_is_400_but_refreshes_liveness(lapsing_client):
    client = lapsing_client
    in_app = InApp(client)
    runner_id, _ = in_app.pair()
    heartbeat(client, runner_id, {"capabilities": ["bridge"]})
    lapse(runner_id)
    assert get_runner(client, runner_id).json["status"] == "disconnected"
    response = heartbeat(client, runner_id, {"capabilities": ["jobs", "Bad-Cap"]})
    assert response.status_code == 400
    assert len(response.json["errors"]) == 1 and "Bad-Cap" in response.json["errors"][0]
    runner = get_runner(client, runner_id).json
    assert runner["status"] == "connected"
    assert runner["capabilities"] == ["bridge"]


@pytest.mark.parametrize("bad", ["UPPER", "with space", "", "jobs\n", "dash-ed"])
def test_heartbeat_capability_must_match_pattern(client, endpoint_runner, bad):
    runner_id, _ = endpoint_runner
    response = heartbeat(client, runner_id, {"capabilities": [bad]})
    assert response.status_code == 400
    assert isinstance(response.json["errors"], list) and len(response.json["errors"]) == 1
    assert get_runner(client, runner_id).json["capabilities"] == ["jobs"]


def test_heartbeat_revives_a_lapsed_runner(lapsing_client):
    client = lapsing_client
    in_app = InApp(client)
    runner_id, project_id = in_app.pair()
    time.sleep(LAPSE)
    assert get_runner(client, runner_id).json["status"] == "disconnected"
    assert listed_ids(client, project_id, status="disconnected") == [runner_id]
    response = heartbeat(client, runner_id)
    assert response.status_code == 200
    assert response.json == {"cancelled_job_ids": []}
    assert get_runner(client, runner_id).json["status"] == "connected"
    assert listed_ids(client, project_id, status="connected") == [runner_id]


def test_heartbeat_announces_a_cancelled_running_job_once(client, in_app, endpoint_runner):
    runner_id, project_id = endpoint_runner
    job_id = in_app.create_job(project_id)
    assert claim(client, runner_id)["id"] == job_id
    assert heartbeat(client, runner_id).json == {"cancelled_job_ids": []}
    cancel(client, job_id)
    assert get_job(client, job_id).json["status"] == "cancelled"
    assert heartbeat(client, runner_id).json == {"cancelled_job_ids": [job_id]}
    assert heartbeat(client, runner_id).json == {"cancelled_job_ids": []}


def test_heartbeat_announces_every_cancelled_running_job(client, in_app, endpoint_runner):
    runner_id, project_id = endpoint_runner
    first, second = in_app.create_job(project_id), in_app.create_job(project_id)
    claim(client, runner_id)
    claim(client, runner_id)
    cancel(client, first)
    cancel(client, second)
    cancel(client, second)  # a second cancel is a no-op, not a second announcement
    assert sorted(heartbeat(client, runner_id).json["cancelled_job_ids"]) == sorted([first, second])
    assert heartbeat(client, runner_id).json == {"cancelled_job_ids": []}


def test_heartbeat_does_not_announce_a_cancelled_pending_job(client, in_app, endpoint_runner):
    runner_id, project_id = endpoint_runner
    job_id = in_app.create_job(project_id)
    cancel(client, job_id)
    assert get_job(client, job_id).json["status"] == "cancelled"
    assert heartbeat(client, runner_id).json == {"cancelled_job_ids": []}


def test_heartbeat_of_a_connect_runner_is_always_empty(client, in_app, endpoint_runner):
    endpoint_id, project_id = endpoint_runner
    connect_id, _ = in_app.pair(runner_type="connect")
    job_id = in_app.create_job(project_id)
    claim(client, endpoint_id)
    cancel(client, job_id)
    response = heartbeat(client, connect_id, {"capabilities": ["bridge"]})
    assert response.status_code == 200
    assert response.json == {"cancelled_job_ids": []}
    # The endpoint runner's announcement was not consumed by the connect runner.
    assert heartbeat(client, endpoint_id).json == {"cancelled_job_ids": [job_id]}


# -- liveness and the reaper (docs/opik-behaviour.md#runner-status, docs/opik-behaviour.md#job-timeouts,
# docs/opik-behaviour.md#reaper, docs/opik-behaviour.md#purge)


def test_reaper_purges_a_runner_dead_longer_than_the_purge_time(make_app):
    app = make_app(OPIK_RUNNER_HEARTBEAT_TTL="1", OPIK_RUNNER_DEAD_PURGE_HOURS="1s")
    client = app.test_client()
    in_app = InApp(client)
    doomed, project_id = in_app.pair(runner_type="endpoint")
    in_app.register(doomed)
    running = in_app.create_job(project_id)
    assert claim(client, doomed)["id"] == running
    pending = in_app.create_job(project_id)
    survivor, _ = in_app.pair(runner_type="connect")
    lapse(doomed, ago=1.5)  # dead for longer than the purge time
    lapse(survivor, ago=0.5)  # dead, but for less
    reap(app)

    assert get_runner(client, survivor).json["status"] == "disconnected"
    assert get_runner(client, doomed).json == runner_not_found(doomed)
    assert heartbeat(client, doomed).json == runner_gone(doomed)
    assert heartbeat(client, doomed).status_code == 410
    assert listed_ids(client, project_id) == [survivor]
    for job_id in (running, pending):
        assert get_job(client, job_id).status_code == 404
        job = stored_job(job_id)
        assert (job.status, job.error) == ("failed", "Runner disconnected")
        assert job.completed_at is not None
    assert client.get(f"{runner_url(doomed)}/jobs").status_code == 404
    assert put_agents(client, doomed, {"answer": AGENT}).status_code == 404
    assert patch_checklist(client, doomed, {"a": 1}).status_code == 404
    response = client.post(f"{API}/local-runners/jobs", json={"agent_name": "answer", "project_id": project_id})
    assert response.status_code == 404
    assert response.json == {"errors": ["No runner configured. Pair one from the Runners page."]}


def test_reaper_times_out_a_running_job_on_a_live_runner(make_app):
    app = make_app(OPIK_RUNNER_JOB_TIMEOUT="1")
    client = app.test_client()
    in_app = InApp(client)
    runner_id, project_id = in_app.pair()
    in_app.register(runner_id)
    job_id = in_app.create_job(project_id)
    time.sleep(LAPSE)
    reap(app)
    # Older than its timeout, but never claimed: pending jobs do not time out.
    assert get_job(client, job_id).json["status"] == "pending"
    job = claim(client, runner_id)
    assert (job["id"], job["status"], job["timeout"]) == (job_id, "running", 1)
    # The clock starts at the claim (started_at), not at creation.
    assert get_job(client, job_id).json["status"] == "running"
    pending = in_app.create_job(project_id)
    time.sleep(LAPSE)
    reap(app)

    job = get_job(client, job_id).json
    assert job["status"] == "failed"
    assert job["error"] == "Job timed out after 1s"
    assert job["started_at"] <= job["completed_at"]
    assert get_job(client, pending).json["status"] == "pending"
    assert get_runner(client, runner_id).json["status"] == "connected"
    assert heartbeat(client, runner_id).json == {"cancelled_job_ids": []}  # the runner is not told


def test_lapsed_runner_keeps_its_jobs_until_purged(lapsing_client):
    client = lapsing_client
    in_app = InApp(client)
    runner_id, project_id = in_app.pair()
    in_app.register(runner_id)
    running = in_app.create_job(project_id)
    claim(client, runner_id)
    pending = in_app.create_job(project_id)
    lapse(runner_id)
    reap(client.application)  # lapsed, not purged: the reaper leaves its jobs alone

    runner = get_runner(client, runner_id).json
    assert runner["status"] == "disconnected"
    assert listed_ids(client, project_id, status="disconnected") == [runner_id]
    assert get_job(client, running).json["status"] == "running"
    assert get_job(client, pending).json["status"] == "pending"
    assert "error" not in get_job(client, pending).json
    # Back on its next heartbeat, the pending job still waits for it.
    heartbeat(client, runner_id)
    assert claim(client, runner_id)["id"] == pending


def test_create_job_on_a_lapsed_runner_is_409(lapsing_client):
    client = lapsing_client
    in_app = InApp(client)
    runner_id, project_id = in_app.pair()
    in_app.register(runner_id)
    lapse(runner_id)
    response = client.post(f"{API}/local-runners/jobs", json={"agent_name": "answer", "project_id": project_id})
    assert response.status_code == 409
    assert response.json == {"errors": ["Your runner is not connected. Start it with: opik connect"]}
    assert client.get(f"{runner_url(runner_id)}/jobs").json["total"] == 0
    heartbeat(client, runner_id)
    in_app.create_job(project_id)  # accepted again once it is back
