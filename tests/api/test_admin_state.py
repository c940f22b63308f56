"""The control plane's state and Pact provider states through HTTP: GET/POST /_admin/state,
POST /_admin/reset between them, and POST /_admin/provider-states.

Exported, reset and seeded again, the server must answer every read byte for byte."""
import uuid

import pytest

from opik_runners.control import provider_states
from tests.support.in_app import API, InApp

TEAM = {"Comet-Workspace": "team-b"}


def build(client):
    """Runners and jobs as clients leave them, in two workspaces; the runners' (id, headers)."""
    in_app = InApp(client)
    made = []
    for headers in (None, TEAM):
        runner_id, project_id = in_app.pair(headers=headers)
        in_app.register(runner_id, headers=headers)
        ids = [in_app.create_job(project_id, headers=headers, inputs={"question": f"q{i}"}) for i in range(5)]
        for outcome in ({"status": "completed", "result": {"answer": "4"}}, {"status": "failed", "error": "boom"}):
            claimed = client.post(f"{API}/local-runners/{runner_id}/jobs/next", headers=headers).json
            assert client.post(f"{API}/local-runners/jobs/{claimed['id']}/results", json=outcome,
                               headers=headers).status_code == 204
        assert client.post(f"{API}/local-runners/jobs/{ids[0]}/logs", headers=headers,
                           json=[{"stream": "stdout", "text": "hello"}]).status_code == 204
        client.post(f"{API}/local-runners/{runner_id}/jobs/next", headers=headers)
        assert client.post(f"{API}/local-runners/jobs/{ids[2]}/cancel", headers=headers).status_code == 204
        assert client.patch(f"{API}/local-runners/{runner_id}/checklist", json={"ok": True},
                            headers=headers).status_code == 204
        made.append((runner_id, headers))
    return made


def reads(client, made):
    """Every read of what `build` made, as the bytes served."""
    seen = {}
    for runner_id, headers in made:
        for query in ({}, {"size": 2}, {"page": 1, "size": 2}, {"page": 3, "size": 2}):
            listing = client.get(f"{API}/local-runners/{runner_id}/jobs", query_string=query, headers=headers)
            assert listing.status_code == 200
            seen[f"jobs {runner_id} {query}"] = listing.data
        seen[f"runner {runner_id}"] = client.get(f"{API}/local-runners/{runner_id}", headers=headers).data
        for job in client.get(f"{API}/local-runners/{runner_id}/jobs", headers=headers).json["content"]:
            seen[f"job {job['id']}"] = client.get(f"{API}/local-runners/jobs/{job['id']}", headers=headers).data
            seen[f"logs {job['id']}"] = client.get(f"{API}/local-runners/jobs/{job['id']}/logs", headers=headers).data
    return seen


def test_export_reset_seed_answers_every_read_byte_for_byte(client):
    made = build(client)
    before = reads(client, made)
    exported = client.get("/_admin/state")
    assert exported.status_code == 200 and exported.json["version"] == 1
    assert client.post("/_admin/reset").status_code == 204
    runner_id, _ = made[0]
    assert client.get(f"{API}/local-runners/{runner_id}/jobs").status_code == 404
    seeded = client.post("/_admin/state", data=exported.data, content_type="application/json")
    assert seeded.status_code == 200
    assert seeded.json == {"loaded": {"projects": 2, "runners": 2, "jobs": 10, "job_logs": 2, "pairing_sessions": 2,
                                      "bridge_commands": 0, "traces": 0, "spans": 0}}
    assert reads(client, made) == before
    assert client.get("/_admin/state").data == exported.data


def test_one_workspace_round_trips_alone(client):
    made = build(client)
    before = reads(client, made)
    team = client.get("/_admin/state", query_string={"workspace": "team-b"})
    others = client.get("/_admin/state", query_string={"workspace": "default"})
    assert {runner["workspace"] for runner in team.json["runners"]} == {"team-b"}
    assert client.post("/_admin/reset", query_string={"workspace": "team-b"}).status_code == 204
    assert client.get(f"{API}/local-runners/{made[1][0]}", headers=TEAM).status_code == 404
    assert client.get(f"{API}/local-runners/{made[0][0]}").status_code == 200
    assert client.post("/_admin/state", data=team.data, content_type="application/json").status_code == 200
    assert reads(client, made) == before
    assert client.get("/_admin/state", query_string={"workspace": "team-b"}).data == team.data
    assert client.get("/_admin/state", query_string={"workspace": "default"}).data == others.data


def test_a_seeded_runner_takes_jobs_without_pairing(client, in_app):
    seed = {"runners": [{"project": "demo", "name": "seeded", "agents": {"answer": {"params": [
        {"name": "question", "type": "string", "presence": "required"}]}}}]}
    assert client.post("/_admin/state", json=seed).json["loaded"]["runners"] == 1
    runner = client.get("/_admin/state").json["runners"][0]
    project_id = runner["project_id"]
    assert client.post(f"{API}/projects/retrieve", json={"name": "demo"}).json["id"] == project_id
    job_id = in_app.create_job(project_id, inputs={"question": "2+2?"})
    shown = client.get(f"{API}/local-runners/{runner['id']}").json
    assert (shown["name"], shown["status"], shown["agents"][0]["name"]) == ("seeded", "connected", "answer")
    assert client.post(f"{API}/local-runners/{runner['id']}/jobs/next").json["id"] == job_id


@pytest.mark.parametrize("body, message", [
    ({"runners": [{"project_id": str(uuid.UUID(int=1))}]}, "runners[0].project_id: no such project"),
    ({"version": 9}, "version: 9 is not a version this server reads (1)"),
    ({"jobs": [{"runner_id": str(uuid.UUID(int=2)), "agent_name": "a"}]}, "jobs[0].runner_id: no such runner"),
    ({"runners": [{"project": "demo"}], "spans": [{"data": {"trace_id": "x"}}]},
     "spans[0].data.trace_id: Not a valid UUID."),
    ([{"runners": []}], "The body must be a state document (a JSON object), as GET /_admin/state answers"),
])
def test_a_bad_document_is_400_and_changes_nothing(client, in_app, body, message):
    in_app.pair()
    before = client.get("/_admin/state").data
    refused = client.post("/_admin/state", json=body)
    assert (refused.status_code, refused.json) == (400, {"code": 400, "message": message})
    assert client.get("/_admin/state").data == before


# -- provider states


def provider_state(client, state, params=None, action=None):
    body = {"state": state, **({"params": params} if params is not None else {}),
            **({"action": action} if action else {})}
    return client.post("/_admin/provider-states", json=body)


def test_a_connected_endpoint_runner_takes_a_job(client, in_app):
    made = provider_state(client, "a connected endpoint runner")
    assert made.status_code == 200 and set(made.json) == {"runner_id", "project_id"}
    runner = client.get(f"{API}/local-runners/{made.json['runner_id']}").json
    assert (runner["status"], runner["type"], runner["name"], runner["project_id"]) == \
        ("connected", "endpoint", "pact-endpoint", made.json["project_id"])
    assert [agent["name"] for agent in runner["agents"]] == ["answer"]
    assert runner["agents"][0]["params"] == [{"name": "question", "type": "string", "presence": "required"}]
    in_app.create_job(made.json["project_id"])
    # Teardown removes the runner it made; setting it up again makes another.
    assert provider_state(client, "a connected endpoint runner", action="teardown").json == {}
    assert client.get(f"{API}/local-runners/{made.json['runner_id']}").status_code == 404
    again = provider_state(client, "a connected endpoint runner").json
    assert again["runner_id"] != made.json["runner_id"] and again["project_id"] == made.json["project_id"]


def test_the_endpoint_runner_takes_its_params(client, in_app):
    params = {"workspace": "team-b", "project": "shop", "runner": "mine", "user": "admin",
              "agents": {"greet": {"params": [{"name": "who", "type": "string"}], "timeout": 5}}}
    made = provider_state(client, "a connected endpoint runner", params).json
    runner = client.get(f"{API}/local-runners/{made['runner_id']}", headers=TEAM).json
    assert (runner["name"], [a["name"] for a in runner["agents"]]) == ("mine", ["greet"])
    assert client.post(f"{API}/projects/retrieve", json={"name": "shop"}, headers=TEAM).json["id"] == made["project_id"]
    job_id = in_app.create_job(made["project_id"], agent="greet", headers=TEAM)
    assert client.get(f"{API}/local-runners/jobs/{job_id}", headers=TEAM).json["timeout"] == 5
    assert client.get(f"{API}/local-runners/{made['runner_id']}").status_code == 404  # not the default workspace's


def test_a_connect_runner_takes_bridge_commands(client):
    made = provider_state(client, "a connected connect runner with the bridge capability").json
    runner = client.get(f"{API}/local-runners/{made['runner_id']}").json
    assert (runner["type"], runner["capabilities"]) == ("connect", ["jobs", "bridge"])
    submitted = client.post(f"{API}/local-runners/{made['runner_id']}/bridge/commands",
                            json={"type": "ReadFile", "args": {"path": "README.md"}})
    assert submitted.status_code == 201
    assert provider_state(client, "a connected connect runner with the bridge capability",
                          action="teardown").status_code == 200
    assert client.get(f"{API}/local-runners/{made['runner_id']}").status_code == 404


@pytest.mark.parametrize("params, statuses", [
    (None, ["pending", "running", "completed"]),
    ({"statuses": ["failed", "cancelled"]}, ["failed", "cancelled"]),
    ({"counts": {"completed": 2, "pending": 1}}, ["completed", "completed", "pending"]),
    ({"statuses": []}, []),
])
def test_a_runner_with_jobs_lists_them_newest_first(client, params, statuses):
    made = provider_state(client, "an endpoint runner with jobs", params).json
    assert len(made["job_ids"]) == len(statuses)
    page = client.get(f"{API}/local-runners/{made['runner_id']}/jobs").json
    assert page["total"] == len(statuses)
    assert [(job["id"], job["status"]) for job in page["content"]] == list(zip(made["job_ids"], statuses))[::-1]
    for job in page["content"]:
        assert job["inputs"] == {"question": "2+2?"} and job["project_id"] == made["project_id"]
        assert ("result" in job) == (job["status"] == "completed") and ("error" in job) == (job["status"] == "failed")


def test_no_runners_leaves_job_creation_nowhere_to_go(client, in_app):
    runner_id, project_id = in_app.pair()
    in_app.register(runner_id)
    made = provider_state(client, "no runners").json
    assert made == {"project_id": project_id}
    assert client.get(f"{API}/local-runners/{runner_id}").status_code == 404
    refused = client.post(f"{API}/local-runners/jobs", json={"agent_name": "answer", "project_id": project_id})
    assert (refused.status_code, refused.json) == (404, {"errors": ["No runner configured. Pair one from the Runners page."]})
    assert provider_state(client, "no runners", action="teardown").json == {}


def test_an_unknown_state_is_400_naming_the_known_ones(client):
    refused = provider_state(client, "a runner on the moon")
    assert refused.status_code == 400
    assert refused.json["message"].startswith("unknown provider state 'a runner on the moon'; known states: ")
    for name in provider_states.KNOWN:
        assert repr(name) in refused.json["message"]


@pytest.mark.parametrize("params, message", [
    ({"colour": "red"}, "params.colour: not a param of 'an endpoint runner with jobs' (it takes agent, agents, "
                        "counts, inputs, project, runner, statuses, user, workspace)"),
    ({"statuses": ["done"]}, "params: jobs[0].status: Must be one of: pending, running, completed, failed, cancelled."),
    ({"counts": {"pending": -1}}, "params.counts: an object of status -> count, e.g. {\"completed\": 2}"),
    ({"workspace": ""}, "params.workspace: a name, got ''"),
])
def test_bad_params_are_400(client, params, message):
    refused = provider_state(client, "an endpoint runner with jobs", params)
    assert (refused.status_code, refused.json) == (400, {"code": 400, "message": message})
    assert client.get("/_admin/state").json["runners"] == []
