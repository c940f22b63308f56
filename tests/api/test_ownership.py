"""Scoping, as one table: every call on a runner, job or bridge command, made for an unknown
id, from another workspace or by another user, answers exactly as Opik does for an id
it does not know (404, 410 for a heartbeat, 204 for a DELETE) and changes nothing.

Alice owns everything here, in workspace team-a; bob is another user of team-a, and
alice in team-b is another workspace."""
import uuid

import pytest

from opik_runners.app import create_app
from opik_runners.protocol import activation_hmac_text
from tests.support.contract import ContractClient
from tests.support.data import AGENT
from tests.support.databases import fresh_database_url
from tests.support.in_app import API, InApp

OWNER = {"Comet-Workspace": "team-a", "Authorization": "key-a"}
STRANGERS = {
    "unknown id": OWNER,
    "other workspace": {"Comet-Workspace": "team-b", "Authorization": "key-a"},
    "other user": {"Comet-Workspace": "team-a", "Authorization": "key-b"},
}


def runner_not_found(ids):
    return 404, {"code": 404, "message": f"Runner not found: {ids['runner']}"}


def runner_gone(ids):
    return 410, {"errors": [f"Runner not found: {ids['runner']}"]}


def job_not_found(ids):
    return 404, {"code": 404, "message": f"Job not found: '{ids['job']}'"}


def command_not_found(ids):
    return 404, {"code": 404, "message": f"Command not found: {ids['command']}"}


def nothing(ids):
    return 204, None


NO_RUNNER = (404, {"errors": ["No runner configured. Pair one from the Runners page."]})
RUNNER = "/local-runners/{runner}"
JOB = "/local-runners/jobs/{job}"
COMMAND = RUNNER + "/bridge/commands/{command}"

# (call, method, path, body, which id an unknown caller gets wrong, the answer)
CALLS = [
    ("get runner", "GET", RUNNER, None, "runner", runner_not_found),
    ("delete runner", "DELETE", RUNNER, None, "runner", nothing),
    ("register agents", "PUT", RUNNER + "/agents", {"mine": {}}, "runner", runner_not_found),
    ("patch checklist", "PATCH", RUNNER + "/checklist", {"a": 1}, "runner", runner_not_found),
    ("heartbeat", "POST", RUNNER + "/heartbeats", {}, "runner", runner_gone),
    ("list jobs", "GET", RUNNER + "/jobs", None, "runner", runner_not_found),
    ("next job", "POST", RUNNER + "/jobs/next", None, "runner", runner_not_found),
    ("create job", "POST", "/local-runners/jobs", {"agent_name": "answer", "project_id": "{project}"}, "project",
     lambda ids: NO_RUNNER),
    ("get job", "GET", JOB, None, "job", job_not_found),
    ("report job result", "POST", JOB + "/results", {"status": "completed", "result": {"a": 1}}, "job", job_not_found),
    ("cancel job", "POST", JOB + "/cancel", None, "job", job_not_found),
    ("read logs", "GET", JOB + "/logs", None, "job", job_not_found),
    ("append logs", "POST", JOB + "/logs", [{"stream": "stdout", "text": "x"}], "job", job_not_found),
    ("submit command", "POST", RUNNER + "/bridge/commands", {"type": "ReadFile", "args": {"path": "a"}}, "runner",
     runner_not_found),
    ("next commands", "POST", RUNNER + "/bridge/commands/next", {}, "runner", runner_not_found),
    ("get command", "GET", COMMAND, None, "command", command_not_found),
    ("get command, waiting", "GET", COMMAND + "?wait=true&timeout=1", None, "command", command_not_found),
    ("report command result", "POST", COMMAND + "/results", {"status": "completed", "result": {"a": 1}}, "command",
     command_not_found),
]
# A stranger is stopped at the runner (before the command or job is looked at); an unknown id
# by the thing it names.
STOPPED_AT_RUNNER = {"get command", "get command, waiting", "report command result"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Alice's endpoint runner (with the bridge capability), a job with a log line, a pending
    bridge command, and her second runner's command; one app for the whole table."""
    app = create_app(
        DATABASE_URL=fresh_database_url(tmp_path_factory.mktemp("ownership")),
        OPIK_API_KEYS="alice:key-a,bob:key-b",
        OPIK_RUNNER_NEXT_JOB_POLL_TIMEOUT="0.05",
        OPIK_BRIDGE_POLL_TIMEOUT="0.05",
        OPIK_RUNNER_REAPER_INTERVAL="0",
    )
    app.test_client_class = ContractClient
    client = app.test_client()
    in_app = InApp(client)
    ids = {}
    for kind, name in (("endpoint", "alice-endpoint"), ("connect", "alice-connect")):
        project_id = in_app.ensure_project(f"project-{kind}", OWNER)
        session_id, runner_id, key = in_app.create_session(project_id, kind, OWNER)
        activated = client.post(f"{API}/pairing/sessions/{session_id}/activate", headers=OWNER,
                                json={"runner_name": name, "hmac": activation_hmac_text(session_id, key, name)})
        assert activated.status_code == 201
        beat = client.post(f"{API}/local-runners/{runner_id}/heartbeats", json={"capabilities": ["jobs", "bridge"]},
                           headers=OWNER)
        assert beat.status_code == 200
        ids[kind], ids[f"{kind} project"] = runner_id, project_id
    assert client.put(f"{API}/local-runners/{ids['endpoint']}/agents", json={"answer": AGENT},
                      headers=OWNER).status_code == 204
    made = client.post(f"{API}/local-runners/jobs", json={"agent_name": "answer", "project_id": ids["endpoint project"]},
                       headers=OWNER)
    job_id = made.headers["Location"].rsplit("/", 1)[1]
    client.post(f"{API}/local-runners/jobs/{job_id}/logs", json=[{"stream": "stdout", "text": "hi"}], headers=OWNER)
    commands = {}
    for kind in ("endpoint", "connect"):
        submitted = client.post(f"{API}/local-runners/{ids[kind]}/bridge/commands", headers=OWNER,
                                json={"type": "ReadFile", "args": {"path": kind}})
        commands[kind] = submitted.json["command_id"]
    return {
        "client": client,
        "ids": {"runner": ids["endpoint"], "job": job_id, "command": commands["endpoint"],
                "project": ids["endpoint project"]},
        "other runner's command": commands["connect"],
        "connect": ids["connect"],
    }


def what_alice_sees(world):
    client, ids = world["client"], world["ids"]
    paths = [RUNNER, JOB, JOB + "/logs", COMMAND, RUNNER + "/jobs"]
    seen = {path: client.get(API + path.format(**ids), headers=OWNER) for path in paths}
    return {path: (answer.status_code, answer.json) for path, answer in seen.items()}


def call(world, method, path, body, ids, headers):
    fill = {key: str(value) for key, value in ids.items()}
    if isinstance(body, dict):
        body = {key: value.format(**fill) if isinstance(value, str) else value for key, value in body.items()}
    return world["client"].open(API + path.format(**fill), method=method, json=body, headers=headers)


@pytest.mark.parametrize("stranger", STRANGERS)
@pytest.mark.parametrize("name, method, path, body, target, answer", CALLS, ids=[c[0] for c in CALLS])
def test_a_stranger_gets_not_found_and_changes_nothing(world, stranger, name, method, path, body, target, answer):
    ids = dict(world["ids"])
    if stranger == "unknown id":
        ids[target] = str(uuid.uuid4())
    before = what_alice_sees(world)
    response = call(world, method, path, body, ids, STRANGERS[stranger])
    expected = answer(ids) if stranger == "unknown id" or name not in STOPPED_AT_RUNNER else runner_not_found(ids)
    assert (response.status_code, response.json) == expected
    assert what_alice_sees(world) == before


@pytest.mark.parametrize("name, method, path, body, target, answer",
                         [c for c in CALLS if c[0] in STOPPED_AT_RUNNER], ids=sorted(STOPPED_AT_RUNNER))
def test_another_runners_command_is_not_found_on_this_one(world, name, method, path, body, target, answer):
    ids = {**world["ids"], "command": world["other runner's command"]}
    before = what_alice_sees(world)
    response = call(world, method, path, body, ids, OWNER)
    assert (response.status_code, response.json) == command_not_found(ids)
    assert what_alice_sees(world) == before
    state = world["client"].get(f"{API}{COMMAND}".format(runner=world["connect"], command=ids["command"]),
                                headers=OWNER)
    assert state.json["status"] == "pending"


def test_the_owner_can_do_what_the_strangers_could_not(world):
    # The table's ids are live: the same calls by alice succeed (the answer is not a 404 for all).
    client, ids = world["client"], world["ids"]
    assert client.get(f"{API}/local-runners/{ids['runner']}", headers=OWNER).status_code == 200
    assert client.get(f"{API}/local-runners/jobs/{ids['job']}/logs", headers=OWNER).json == [
        {"stream": "stdout", "text": "hi"}
    ]
    assert client.get(f"{API}{COMMAND}".format(**ids), headers=OWNER).json["status"] == "pending"
