"""The bridge endpoints of /v1/private/local-runners (docs/opik-behaviour.md#bridge-fields,
docs/opik-behaviour.md#bridge-states, docs/opik-behaviour.md#error-shapes, docs/opik-behaviour.md#bridge,
docs/opik-behaviour.md#limits, docs/opik-behaviour.md#opik-vs-spec, docs/opik-behaviour.md#cli-bridge-loop,
docs/opik-behaviour.md#bridge-signatures).

One test (or one parametrised group) per row of the behaviour tables. Every
response also goes through the contract check of the test client. Where a rule
depends on time, the setup moves a stored timestamp back (test setup, not a mock)
or uses short configured timeouts; nothing patches the clock.
"""
import threading
import time
import uuid
from datetime import datetime, timezone

import pytest

from opik_runners.domain import bridge
from opik_runners.store import models
from opik_runners.schemas import requests as schemas
from tests.support.data import lapse
from tests.support.in_app import API, ROOT, InApp, reap
from tests.support.threads import Task, run_all
from tests.support.waiting import start_of_fresh_minute_if_needed

MIB = 1024 * 1024
ITEM_KEYS = {"command_id", "type", "args", "timeout_seconds", "submitted_at"}
NOT_CONNECTED = {"errors": ["Runner is not connected"]}
NO_BRIDGE = {"errors": ["Runner does not support bridge commands"]}
TOO_MANY_PENDING = {"errors": ["Too many pending commands"]}
RATE_LIMITED = {"errors": ["Rate limit exceeded"]}
WRITE_RATE_LIMITED = {"errors": ["Write rate limit exceeded"]}
NEITHER = {"errors": ["Either result or error must be provided"]}
ALREADY_COMPLETED = {"errors": ["Command already completed"]}
# The CLI's body for a command whose HMAC did not verify (docs/opik-behaviour.md#cli-bridge-loop,
# docs/opik-behaviour.md#bridge-signatures).
CLI_AUTH_FAILED = {
    "status": "failed",
    "result": {"_hmac": "q8lJ9mFzY0yH1cQmB2gO2c1q7m3dW0rjX0e2mJm6r3w="},
    "error": {"code": "auth_failed", "message": "Invalid command HMAC"},
    "duration_ms": None,
}


@pytest.fixture
def app(make_app):
    # The real bridge poll holds 30 s; an empty poll here gives up quickly.
    return make_app(OPIK_BRIDGE_POLL_TIMEOUT="0.05")


# -- helpers


def runner_not_found(runner_id):
    return {"code": 404, "message": f"Runner not found: {runner_id}"}


def command_not_found(command_id):
    return {"code": 404, "message": f"Command not found: {command_id}"}


def commands_url(runner_id, prefix=API):
    return f"{prefix}/local-runners/{runner_id}/bridge/commands"


def beat(client, runner_id, capabilities=("bridge",), headers=None):
    response = client.post(
        f"{API}/local-runners/{runner_id}/heartbeats", json={"capabilities": list(capabilities)}, headers=headers
    )
    assert response.status_code == 200, response.data
    return response.json


def bridge_runner(client, project="demo", name="connect-1", headers=None):
    """A paired connect runner that declared the `bridge` capability."""
    in_app = InApp(client)
    runner_id, _ = in_app.pair(project=project, runner_type="connect", name=name, headers=headers)
    beat(client, runner_id, headers=headers)
    return runner_id


def submit_raw(client, runner_id, headers=None, **body):
    body.setdefault("type", "ReadFile")
    body.setdefault("args", {"path": "README.md"})
    return client.post(commands_url(runner_id), json=body, headers=headers)


def submit(client, runner_id, headers=None, **body):
    response = submit_raw(client, runner_id, headers, **body)
    assert response.status_code == 201, response.data
    return response.json["command_id"]


def poll_raw(client, runner_id, headers=None, **kwargs):
    return client.post(f"{commands_url(runner_id)}/next", headers=headers, **kwargs)


def poll(client, runner_id, max_commands=None, headers=None):
    body = {} if max_commands is None else {"max_commands": max_commands}
    response = poll_raw(client, runner_id, headers, json=body)
    assert response.status_code == 200, response.data
    return response.json["commands"]


def report(client, runner_id, command_id, headers=None, **body):
    return client.post(f"{commands_url(runner_id)}/{command_id}/results", json=body, headers=headers)


def get_raw(client, runner_id, command_id, headers=None, **query):
    return client.get(f"{commands_url(runner_id)}/{command_id}", query_string=query, headers=headers)


def state(client, runner_id, command_id, headers=None, **query):
    response = get_raw(client, runner_id, command_id, headers, **query)
    assert response.status_code == 200, response.data
    return response.json


def stored(app, command_id):
    """The command row, for commands whose runner no caller can see any more."""
    with models.database.connection_context():
        return models.BridgeCommand.get_by_id(uuid.UUID(command_id))


def move_picked_up_back(app, command_id, seconds):
    with models.database.connection_context():
        row = models.BridgeCommand.get_by_id(uuid.UUID(command_id))
        models.BridgeCommand.update(picked_up_at=row.picked_up_at - int(seconds * models.SECOND)).where(
            models.BridgeCommand.id == row.id
        ).execute()


def age_command(app, command_id, seconds):
    """Move every timestamp of the command `seconds` into the past, as if that much time went by."""
    shift = int(seconds * models.SECOND)
    BridgeCommand = models.BridgeCommand
    with models.database.connection_context():
        BridgeCommand.update(
            submitted_at=BridgeCommand.submitted_at - shift,
            picked_up_at=BridgeCommand.picked_up_at - shift,  # NULL stays NULL
            completed_at=BridgeCommand.completed_at - shift,
            expires_at=BridgeCommand.expires_at - shift,
        ).where(BridgeCommand.id == uuid.UUID(command_id)).execute()


def parse_ts(text):
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text[:-1]).replace(tzinfo=timezone.utc)


def run_in_thread(target):
    outcome = {}

    def wrapper():
        started = time.monotonic()
        try:
            outcome["response"] = target()
        finally:
            outcome["elapsed"] = time.monotonic() - started

    thread = threading.Thread(target=wrapper)
    thread.start()
    return thread, outcome


# -- POST /{runnerId}/bridge/commands: submit


@pytest.mark.parametrize("prefix", [API, ROOT])
def test_submit_is_201_with_uuid7_and_location(client, prefix):
    runner_id = bridge_runner(client)
    response = client.post(commands_url(runner_id, prefix), json={"type": "ReadFile", "args": {"path": "a.py"}})
    assert response.status_code == 201
    assert set(response.json) == {"command_id"}
    command_id = response.json["command_id"]
    assert uuid.UUID(command_id).version == 7
    location = response.headers["Location"]
    assert location.endswith(f"{prefix}/local-runners/{runner_id}/bridge/commands/{command_id}")
    if prefix == ROOT:
        assert "/api/" not in location
    command = state(client, runner_id, command_id)
    assert command["command_id"] == command_id
    assert command["runner_id"] == runner_id
    assert command["type"] == "ReadFile"
    assert command["args"] == {"path": "a.py"}
    assert command["status"] == "pending"
    assert command["timeout_seconds"] == 30
    submitted = parse_ts(command["submitted_at"])
    assert abs((datetime.now(timezone.utc) - submitted).total_seconds()) < 10
    for absent in ("picked_up_at", "completed_at", "result", "error", "duration_ms"):
        assert absent not in command


def test_submitted_ids_are_time_ordered(client):
    runner_id = bridge_runner(client)
    ids = [submit(client, runner_id, args={"i": i}) for i in range(5)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 5


@pytest.mark.parametrize("command_type", ["ReadFile", "WriteFile", "EditFile", "ListFiles", "SearchFiles", "Exec"])
def test_submit_accepts_every_command_type(client, command_type):
    runner_id = bridge_runner(client)
    command_id = submit(client, runner_id, type=command_type, args={"k": "v"})
    assert state(client, runner_id, command_id)["type"] == command_type


def test_submit_to_a_deleted_runner_is_404(client):
    runner_id = bridge_runner(client)
    assert client.delete(f"{API}/local-runners/{runner_id}").status_code == 204
    response = submit_raw(client, runner_id)
    assert response.status_code == 404
    assert response.json == runner_not_found(runner_id)


def test_submit_to_a_lapsed_runner_is_404_not_connected_checked_after_ownership(make_app):
    client = make_app(OPIK_RUNNER_HEARTBEAT_TTL="1", OPIK_BRIDGE_POLL_TIMEOUT="0.2").test_client()
    in_app = InApp(client)
    team_a = {"Comet-Workspace": "team-a"}
    runner_id = bridge_runner(client)
    foreign_id = bridge_runner(client, headers=team_a)
    never_bridged, _ = in_app.pair(project="other", runner_type="connect", name="plain")
    lapse(runner_id, foreign_id, never_bridged)
    response = submit_raw(client, runner_id)
    assert response.status_code == 404
    assert response.json == NOT_CONNECTED
    # Liveness comes before the capability check ...
    response = submit_raw(client, never_bridged)
    assert response.status_code == 404
    assert response.json == NOT_CONNECTED
    # ... and after ownership.
    response = submit_raw(client, foreign_id, headers={"Comet-Workspace": "team-b"})
    assert response.json == runner_not_found(foreign_id)
    # The daemon's poll checks ownership only, not liveness.
    assert poll(client, runner_id) == []
    # The next heartbeat revives the runner and submits are accepted again.
    beat(client, runner_id)
    submit(client, runner_id)


def test_submit_to_a_runner_without_bridge_capability_is_409(client, in_app):
    # A fresh endpoint runner reports the default capabilities ["jobs"]; the type is not checked.
    runner_id, _ = in_app.pair(runner_type="endpoint")
    response = submit_raw(client, runner_id)
    assert response.status_code == 409
    assert response.json == NO_BRIDGE
    beat(client, runner_id, ["jobs", "bridge"])
    submit(client, runner_id)  # an endpoint runner with the capability accepts commands


def test_submit_to_a_fresh_connect_runner_without_bridge_capability_is_409(client, in_app):
    runner_id, _ = in_app.pair(runner_type="connect")
    response = submit_raw(client, runner_id)
    assert response.status_code == 409
    assert response.json == NO_BRIDGE
    beat(client, runner_id, ["jobs"])
    assert submit_raw(client, runner_id).json == NO_BRIDGE


def test_dropping_the_capability_is_409_before_the_pending_cap(make_app):
    client = make_app(OPIK_BRIDGE_MAX_PENDING="2").test_client()
    runner_id = bridge_runner(client)
    submit(client, runner_id)
    submit(client, runner_id)
    assert submit_raw(client, runner_id).json == TOO_MANY_PENDING
    beat(client, runner_id, ["jobs"])
    response = submit_raw(client, runner_id)
    assert response.status_code == 409
    assert response.json == NO_BRIDGE


def test_pending_cap_is_429_and_only_pending_commands_count(make_app):
    app = make_app(OPIK_BRIDGE_MAX_PENDING="3", OPIK_BRIDGE_POLL_TIMEOUT="0.2")
    client = app.test_client()
    runner_id = bridge_runner(client)
    first = [submit(client, runner_id) for _ in range(3)]
    response = submit_raw(client, runner_id)
    assert response.status_code == 429
    assert response.json == TOO_MANY_PENDING
    # Picked-up commands leave the pending queue.
    assert [c["command_id"] for c in poll(client, runner_id, 1)] == first[:1]
    submit(client, runner_id)
    assert submit_raw(client, runner_id).json == TOO_MANY_PENDING
    # The cap is per runner.
    other = bridge_runner(client, project="other", name="connect-2")
    submit(client, other)


def test_pending_refusals_do_not_use_up_the_rate_budget(make_app):
    app = make_app(OPIK_BRIDGE_MAX_PENDING="3", OPIK_BRIDGE_MAX_COMMANDS_PER_MINUTE="4")
    client = app.test_client()
    runner_id = bridge_runner(client)
    start_of_fresh_minute_if_needed()
    for _ in range(3):
        submit(client, runner_id)  # 3 of 4 used
    for _ in range(3):
        assert submit_raw(client, runner_id).json == TOO_MANY_PENDING  # checked before the rate limit
    assert len(poll(client, runner_id)) == 3
    submit(client, runner_id)  # the 4th counted command
    response = submit_raw(client, runner_id)
    assert response.status_code == 429
    assert response.json == RATE_LIMITED


def test_rate_limits_count_refused_commands(make_app):
    app = make_app(OPIK_BRIDGE_MAX_COMMANDS_PER_MINUTE="5", OPIK_BRIDGE_MAX_WRITE_COMMANDS_PER_MINUTE="2")
    client = app.test_client()
    runner_id = bridge_runner(client)
    other = bridge_runner(client, project="other", name="connect-2")
    start_of_fresh_minute_if_needed()
    submit(client, runner_id, type="WriteFile", args={"path": "a", "content": "x"})  # total 1, writes 1
    submit(client, runner_id, type="Exec", args={"command": "ls"})  # total 2, writes 2
    response = submit_raw(client, runner_id, type="EditFile", args={"path": "a", "edits": []})  # total 3, writes 3
    assert response.status_code == 429
    assert response.json == WRITE_RATE_LIMITED
    submit(client, runner_id, type="ReadFile")  # total 4: reads are not write-limited
    submit(client, runner_id, type="ListFiles")  # total 5
    # The refused write used up one of the five: the sixth is refused.
    response = submit_raw(client, runner_id, type="SearchFiles", args={"pattern": "x"})
    assert response.status_code == 429
    assert response.json == RATE_LIMITED
    # The total limit is checked before the write limit.
    assert submit_raw(client, runner_id, type="WriteFile", args={"path": "b"}).json == RATE_LIMITED
    # Both budgets are per runner.
    submit(client, other, type="WriteFile", args={"path": "a"})
    submit(client, other, type="Exec", args={"command": "ls"})
    assert submit_raw(client, other, type="Exec", args={"command": "ls"}).json == WRITE_RATE_LIMITED
    # A refused command leaves nothing behind: the runners get exactly the accepted ones.
    assert [c["type"] for c in poll(client, runner_id, max_commands=20)] == [
        "WriteFile", "Exec", "ReadFile", "ListFiles"]
    assert [c["type"] for c in poll(client, other, max_commands=20)] == ["WriteFile", "Exec"]


def test_rate_limit_is_checked_before_the_payload_size_and_oversized_commands_count(make_app):
    app = make_app(OPIK_BRIDGE_MAX_COMMANDS_PER_MINUTE="3")
    client = app.test_client()
    runner_id = bridge_runner(client)
    big = {"content": "x" * MIB}
    start_of_fresh_minute_if_needed()
    response = submit_raw(client, runner_id, type="ReadFile", args=big)  # total 1
    assert response.status_code == 400
    submit(client, runner_id)  # total 2
    submit(client, runner_id)  # total 3
    response = submit_raw(client, runner_id, args=big)  # total 4: over the limit before the size is looked at
    assert response.status_code == 429
    assert response.json == RATE_LIMITED


def test_args_over_1_mib_is_400(client):
    runner_id = bridge_runner(client)
    # {"c":"xxx..."} serializes to len + 8 characters.
    at_limit = {"c": "x" * (MIB - 8)}
    over = {"c": "x" * (MIB - 7)}
    response = submit_raw(client, runner_id, args=over)
    assert response.status_code == 400
    assert set(response.json) == {"errors"}
    assert len(response.json["errors"]) == 1
    assert response.json["errors"][0].startswith("args payload too large: ")
    assert f"{MIB + 1} bytes" in response.json["errors"][0]
    command_id = submit(client, runner_id, args=at_limit)
    assert state(client, runner_id, command_id)["args"] == at_limit


@pytest.mark.parametrize(
    "body, field",
    [
        ({"args": {"path": "a"}}, "type"),
        ({"type": "ReadFile"}, "args"),
        ({"type": None, "args": {"path": "a"}}, "type"),
        ({"type": "ReadFile", "args": None}, "args"),
        ({}, None),
    ],
)
def test_submit_without_type_or_args_is_422(client, body, field):
    runner_id = bridge_runner(client)
    response = client.post(commands_url(runner_id), json=body)
    assert response.status_code == 422
    assert set(response.json) == {"errors"}
    assert response.json["errors"]
    if field:
        assert any(message.startswith(field) for message in response.json["errors"]), response.json
    # Nothing was queued: the next command is the only one delivered.
    command_id = submit(client, runner_id)
    assert [c["command_id"] for c in poll(client, runner_id)] == [command_id]


def test_submit_with_null_or_empty_body_is_422(client):
    runner_id = bridge_runner(client)
    for kwargs in ({"data": "null", "content_type": "application/json"}, {"data": "", "content_type": "application/json"}):
        response = client.post(commands_url(runner_id), **kwargs)
        assert response.status_code == 422, kwargs
        assert set(response.json) == {"errors"}


@pytest.mark.parametrize("command_type", ["Foo", "readfile", ""])
def test_submit_with_unknown_type_is_400_dropwizard(client, command_type):
    runner_id = bridge_runner(client)
    response = submit_raw(client, runner_id, type=command_type)
    assert response.status_code == 400
    assert set(response.json) == {"code", "message"}
    assert response.json["code"] == 400
    assert response.json["message"].startswith("Unable to process JSON")


@pytest.mark.parametrize(
    "requested, resolved",
    [(None, 30), (0, 30), (-5, 30), (1, 1), (45, 45), (120, 120), (121, 120), (500, 120), ("absent", 30)],
)
def test_submit_clamps_timeout_seconds(client, requested, resolved):
    runner_id = bridge_runner(client)
    body = {} if requested == "absent" else {"timeout_seconds": requested}
    command_id = submit(client, runner_id, **body)
    assert state(client, runner_id, command_id)["timeout_seconds"] == resolved
    assert poll(client, runner_id)[0]["timeout_seconds"] == resolved


# -- POST /{runnerId}/bridge/commands/next


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"data": "", "content_type": "application/json"},
        {"json": {}},
        {"json": {"max_commands": 10}},
        {"json": {"max_commands": None}},
    ],
    ids=["no-body", "empty-body", "empty-object", "max-10", "max-null"],
)
def test_next_body_is_optional(client, kwargs):
    runner_id = bridge_runner(client)
    command_id = submit(client, runner_id)
    response = poll_raw(client, runner_id, **kwargs)
    assert response.status_code == 200
    assert [c["command_id"] for c in response.json["commands"]] == [command_id]


def test_next_returns_commands_fifo_with_exactly_the_item_fields(client):
    runner_id = bridge_runner(client)
    ids = [
        submit(client, runner_id, type=t, args={"i": i}, timeout_seconds=10 + i)
        for i, t in enumerate(["ReadFile", "Exec", "ListFiles"])
    ]
    commands = poll(client, runner_id)
    assert [c["command_id"] for c in commands] == ids
    for i, command in enumerate(commands):
        assert set(command) == ITEM_KEYS
        assert command["args"] == {"i": i}
        assert command["timeout_seconds"] == 10 + i
        assert command["submitted_at"] == state(client, runner_id, command["command_id"])["submitted_at"]
    assert [c["type"] for c in commands] == ["ReadFile", "Exec", "ListFiles"]


def test_next_marks_commands_picked_up_and_delivers_each_once(client):
    runner_id = bridge_runner(client)
    command_id = submit(client, runner_id)
    before = state(client, runner_id, command_id)
    assert [c["command_id"] for c in poll(client, runner_id)] == [command_id]
    command = state(client, runner_id, command_id)
    assert command["status"] == "picked_up"
    assert parse_ts(command["picked_up_at"]) >= parse_ts(before["submitted_at"])
    assert "completed_at" not in command
    assert poll(client, runner_id) == []  # not delivered twice


def test_next_default_batch_is_10(client):
    runner_id = bridge_runner(client)
    ids = [submit(client, runner_id, args={"i": i}) for i in range(12)]
    response = poll_raw(client, runner_id)
    assert response.status_code == 200
    first = [c["command_id"] for c in response.json["commands"]]
    assert first == ids[:10]
    assert [c["command_id"] for c in poll(client, runner_id)] == ids[10:]


def test_next_honours_a_smaller_max_commands(client):
    runner_id = bridge_runner(client)
    ids = [submit(client, runner_id) for _ in range(5)]
    assert [c["command_id"] for c in poll(client, runner_id, 3)] == ids[:3]
    assert state(client, runner_id, ids[3])["status"] == "pending"
    assert [c["command_id"] for c in poll(client, runner_id, 3)] == ids[3:]


def test_next_caps_max_commands_at_20(make_app):
    client = make_app(OPIK_BRIDGE_MAX_PENDING="30", OPIK_BRIDGE_POLL_TIMEOUT="0.3").test_client()
    runner_id = bridge_runner(client)
    ids = [submit(client, runner_id) for _ in range(25)]
    assert [c["command_id"] for c in poll(client, runner_id, 50)] == ids[:20]
    assert [c["command_id"] for c in poll(client, runner_id, 50)] == ids[20:]


@pytest.mark.parametrize("max_commands", [0, -1, -50])
def test_next_with_zero_or_negative_max_commands_takes_10(client, max_commands):
    runner_id = bridge_runner(client)
    ids = [submit(client, runner_id) for _ in range(12)]
    assert [c["command_id"] for c in poll(client, runner_id, max_commands)] == ids[:10]


def test_next_with_nothing_pending_holds_for_the_poll_timeout(make_app):
    client = make_app(OPIK_BRIDGE_POLL_TIMEOUT="0.5").test_client()
    runner_id = bridge_runner(client)
    started = time.monotonic()
    response = poll_raw(client, runner_id)
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert response.json == {"commands": []}
    assert 0.45 <= elapsed < 3


def test_next_skips_commands_that_finished_while_pending(client):
    runner_id = bridge_runner(client)
    done, waiting = submit(client, runner_id), submit(client, runner_id)
    assert report(client, runner_id, done, status="completed", result={"ok": True}).status_code == 204
    assert [c["command_id"] for c in poll(client, runner_id)] == [waiting]
    assert state(client, runner_id, done)["status"] == "completed"


def test_waiting_next_is_woken_by_a_submit(make_app):
    app = make_app(OPIK_BRIDGE_POLL_TIMEOUT="5")
    client = app.test_client()
    runner_id = bridge_runner(client)
    thread, outcome = run_in_thread(lambda: poll_raw(app.test_client(), runner_id, json={"max_commands": 10}))
    time.sleep(0.5)  # the poll is waiting by now
    assert thread.is_alive()
    command_id = submit(app.test_client(), runner_id, type="Exec", args={"command": "pwd"})
    thread.join(timeout=10)
    assert not thread.is_alive()
    response = outcome["response"]
    assert response.status_code == 200
    assert [c["command_id"] for c in response.json["commands"]] == [command_id]
    assert 0.4 <= outcome["elapsed"] < 3
    assert state(client, runner_id, command_id)["status"] == "picked_up"


def test_concurrent_pollers_get_each_command_exactly_once(make_app):
    app = make_app(OPIK_BRIDGE_POLL_TIMEOUT="0.4")
    client = app.test_client()
    runner_id = bridge_runner(client)
    created = [submit(client, runner_id, args={"i": i}) for i in range(30)]
    received = []

    def worker():
        poller = app.test_client()
        while commands := poll(poller, runner_id, max_commands=3):
            assert len(commands) <= 3
            received.extend(c["command_id"] for c in commands)

    run_all([Task(worker) for _ in range(5)], timeout=30)
    assert len(received) == len(set(received)) == len(created)
    assert sorted(received) == sorted(created)
    assert {state(client, runner_id, c)["status"] for c in created} == {"picked_up"}


# -- POST /{runnerId}/bridge/commands/{commandId}/results


@pytest.mark.parametrize(
    "status, body",
    [
        ("completed", {"result": {"content": "hello", "total_lines": 1, "truncated": False}, "duration_ms": 12}),
        ("failed", {"error": {"code": "file_not_found", "message": "nope"}, "duration_ms": 3}),
    ],
)
def test_report_result_is_204_and_recorded(client, status, body):
    runner_id = bridge_runner(client)
    command_id = submit(client, runner_id)
    poll(client, runner_id)
    response = report(client, runner_id, command_id, status=status, **body)
    assert response.status_code == 204
    assert response.data == b""
    command = state(client, runner_id, command_id)
    assert command["status"] == status
    assert command["duration_ms"] == body["duration_ms"]
    for field in ("result", "error"):
        if field in body:
            assert command[field] == body[field]
        else:
            assert field not in command
    assert parse_ts(command["completed_at"]) >= parse_ts(command["picked_up_at"])


def test_report_accepts_the_clis_failed_body(client):
    runner_id = bridge_runner(client)
    command_id = submit(client, runner_id, type="Exec", args={"command": "ls"})
    poll(client, runner_id)
    response = report(client, runner_id, command_id, **CLI_AUTH_FAILED)
    assert response.status_code == 204
    command = state(client, runner_id, command_id)
    assert command["status"] == "failed"
    assert command["result"] == CLI_AUTH_FAILED["result"]
    assert command["error"] == CLI_AUTH_FAILED["error"]
    assert "duration_ms" not in command
    assert "completed_at" in command


def test_report_with_both_result_and_error_keeps_both(client):
    runner_id = bridge_runner(client)
    command_id = submit(client, runner_id)
    body = {"status": "completed", "result": {"a": 1}, "error": {"code": "warn", "message": "partial"}}
    assert report(client, runner_id, command_id, **body).status_code == 204
    command = state(client, runner_id, command_id)
    assert (command["result"], command["error"]) == (body["result"], body["error"])


def test_a_never_polled_command_may_be_reported(client):
    runner_id = bridge_runner(client)
    command_id = submit(client, runner_id)
    assert report(client, runner_id, command_id, status="completed", result={"ok": 1}).status_code == 204
    command = state(client, runner_id, command_id)
    assert command["status"] == "completed"
    assert "picked_up_at" not in command
    assert "completed_at" in command


@pytest.mark.parametrize("status", ["pending", "picked_up", "timed_out"])
def test_report_with_non_reportable_status_is_400(client, status):
    runner_id = bridge_runner(client)
    command_id = submit(client, runner_id)
    response = report(client, runner_id, command_id, status=status, result={"x": 1})
    assert response.status_code == 400
    assert set(response.json) == {"errors"}
    assert len(response.json["errors"]) == 1
    message = response.json["errors"][0]
    assert message.startswith("Invalid result status. Must be one of: [")
    assert "completed" in message and "failed" in message
    assert state(client, runner_id, command_id)["status"] == "pending"


def test_report_with_bogus_status_is_400(client):
    runner_id = bridge_runner(client)
    command_id = submit(client, runner_id)
    response = report(client, runner_id, command_id, status="bogus", result={"x": 1})
    assert response.status_code == 400
    assert response.json["code"] == 400
    assert response.json["message"].startswith("Unable to process JSON")
    assert state(client, runner_id, command_id)["status"] == "pending"


def assert_out_of_range(response, field, kind):
    assert response.status_code == 400, response.data
    assert response.json["code"] == 400
    assert response.json["message"].startswith(f"Unable to process JSON. {field}: Numeric value (")
    assert response.json["message"].endswith(f"out of range of {kind}")


@pytest.mark.parametrize("value", [2**31, -(2**31) - 1, 10**30])
def test_ints_past_the_java_int_range_are_400_and_change_nothing(client, value):
    runner_id = bridge_runner(client)
    assert_out_of_range(submit_raw(client, runner_id, timeout_seconds=value), "timeout_seconds", "int")
    assert_out_of_range(poll_raw(client, runner_id, json={"max_commands": value}), "max_commands", "int")
    assert poll(client, runner_id) == []  # the refused submit queued nothing


@pytest.mark.parametrize("value, accepted", [(2**63 - 1, True), (2**63, False), (10**30, False)])
def test_duration_ms_is_a_java_long(client, value, accepted):
    runner_id = bridge_runner(client)
    command_id = submit(client, runner_id)
    poll(client, runner_id)
    response = report(client, runner_id, command_id, status="completed", result={"x": 1}, duration_ms=value)
    if accepted:
        assert response.status_code == 204, response.data
        assert state(client, runner_id, command_id)["duration_ms"] == value
    else:
        assert_out_of_range(response, "duration_ms", "long")
        assert state(client, runner_id, command_id)["status"] == "picked_up"


def test_report_without_status_is_422(client):
    runner_id = bridge_runner(client)
    command_id = submit(client, runner_id)
    response = report(client, runner_id, command_id, result={"x": 1})
    assert response.status_code == 422
    assert set(response.json) == {"errors"}


@pytest.mark.parametrize(
    "body",
    [{}, {"result": None, "error": None}, {"result": None}, {"error": None, "duration_ms": 5}],
    ids=["both-missing", "both-null", "result-null", "error-null"],
)
def test_report_without_result_or_error_is_400(client, body):
    runner_id = bridge_runner(client)
    command_id = submit(client, runner_id)
    response = report(client, runner_id, command_id, status="completed", **body)
    assert response.status_code == 400
    assert response.json == NEITHER
    assert state(client, runner_id, command_id)["status"] == "pending"


def test_payload_size_counts_utf16_units_as_javas_string_length(client):
    """The size is the length of the serialized JSON as a Java string (docs/opik-behaviour.md#bridge-submit,
    docs/opik-behaviour.md#limits): a character outside the BMP counts 2 (a surrogate pair), one inside
    counts 1 whatever its UTF-8 size."""
    runner_id = bridge_runner(client)
    emoji = "\N{GRINNING FACE}"
    over = {"c": emoji * ((MIB - 7) // 2 + 1)}  # fewer code points than MIB, more UTF-16 units
    response = submit_raw(client, runner_id, args=over)
    assert response.status_code == 400
    assert f"{2 * len(over['c']) + 8} bytes" in response.json["errors"][0]
    accented = {"c": "\N{LATIN SMALL LETTER E WITH ACUTE}" * (MIB - 8)}  # 2 MiB of UTF-8, 1 MiB of units
    command_id = submit(client, runner_id, args=accented)
    response = report(client, runner_id, command_id, status="completed", result=over)
    assert response.status_code == 400
    assert response.json["errors"][0].startswith("result payload too large: ")


@pytest.mark.parametrize("field", ["result", "error"])
def test_report_payload_over_1_mib_is_400(client, field):
    runner_id = bridge_runner(client)
    command_id = submit(client, runner_id)
    response = report(client, runner_id, command_id, status="completed", **{field: {"c": "x" * (MIB - 7)}})
    assert response.status_code == 400
    assert set(response.json) == {"errors"}
    assert response.json["errors"][0].startswith(f"{field} payload too large: ")
    assert state(client, runner_id, command_id)["status"] == "pending"
    # Exactly 1 MiB is still accepted.
    assert report(client, runner_id, command_id, status="completed", **{field: {"c": "x" * (MIB - 8)}}).status_code == 204


@pytest.mark.parametrize(
    "body, expected",
    [
        ({"status": "picked_up", "result": {"a": 1}}, "Invalid result status"),
        ({"status": "completed"}, "Either result or error must be provided"),
        ({"status": "completed", "result": {"c": "x" * MIB}}, "result payload too large"),
    ],
    ids=["status", "neither", "too-large"],
)
def test_report_body_checks_come_before_ownership(client, body, expected):
    bridge_runner(client)
    response = report(client, uuid.uuid4(), uuid.uuid4(), **body)
    assert response.status_code == 400
    assert response.json["errors"][0].startswith(expected)


@pytest.mark.parametrize("first", ["completed", "failed"])
def test_second_report_is_409_and_keeps_the_first(client, first):
    runner_id = bridge_runner(client)
    command_id = submit(client, runner_id)
    poll(client, runner_id)
    assert report(client, runner_id, command_id, status=first, result={"n": 1}).status_code == 204
    before = state(client, runner_id, command_id)
    for second in ("completed", "failed"):
        response = report(client, runner_id, command_id, status=second, result={"n": 2}, error={"code": "x"})
        assert response.status_code == 409
        assert response.json == ALREADY_COMPLETED
    assert state(client, runner_id, command_id) == before


def test_concurrent_reports_exactly_one_wins(app, client):
    runner_id = bridge_runner(client)
    for round_ in range(3):
        command_id = submit(client, runner_id)
        poll(client, runner_id)
        barrier = threading.Barrier(2)

        def send(n):
            reporter = app.test_client()
            barrier.wait()
            return report(reporter, runner_id, command_id, status="completed", result={"n": n})

        runs = [run_in_thread(lambda n=n: send(n)) for n in (1, 2)]
        for thread, _ in runs:
            thread.join(timeout=10)
        responses = [outcome["response"] for _, outcome in runs]
        assert sorted(r.status_code for r in responses) == [204, 409], round_
        loser = next(r for r in responses if r.status_code == 409)
        assert loser.json == ALREADY_COMPLETED
        winner = 1 + [r.status_code for r in responses].index(204)
        assert state(client, runner_id, command_id)["result"] == {"n": winner}


# -- GET /{runnerId}/bridge/commands/{commandId}


def test_get_without_wait_returns_the_current_state_at_once(client):
    runner_id = bridge_runner(client)
    command_id = submit(client, runner_id, type="Exec", args={"command": "ls"}, timeout_seconds=7)
    started = time.monotonic()
    command = state(client, runner_id, command_id)
    assert time.monotonic() - started < 15  # a wait would hold it for the default 30 s
    assert command["status"] == "pending"
    assert set(command) == {"command_id", "runner_id", "type", "status", "args", "timeout_seconds", "submitted_at"}
    assert state(client, runner_id, command_id, wait="false")["status"] == "pending"


def test_get_with_wait_returns_promptly_after_a_report(app, client):
    runner_id = bridge_runner(client)
    command_id = submit(client, runner_id)
    poll(client, runner_id)
    thread, outcome = run_in_thread(
        lambda: get_raw(app.test_client(), runner_id, command_id, wait="true", timeout=10)
    )
    time.sleep(0.5)
    assert thread.is_alive()
    assert report(client, runner_id, command_id, status="completed", result={"out": "ok"}).status_code == 204
    thread.join(timeout=15)
    assert not thread.is_alive()
    response = outcome["response"]
    assert response.status_code == 200
    assert response.json["status"] == "completed"
    assert response.json["result"] == {"out": "ok"}
    assert 0.4 <= outcome["elapsed"] < 5


def test_get_with_wait_on_an_unfinished_command_returns_its_state_after_the_timeout(client):
    runner_id = bridge_runner(client)
    command_id = submit(client, runner_id)
    started = time.monotonic()
    response = get_raw(client, runner_id, command_id, wait="true", timeout=1)
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert response.json["status"] == "pending"
    assert 0.9 <= elapsed < 4


@pytest.mark.parametrize("asked, held", [(-5, 1), (0, 1), (1, 1), (45, 45), (120, 120), (121, 120), (10**6, 120)])
def test_get_wait_is_clamped_to_1_to_120_seconds(asked, held):
    # docs/opik-behaviour.md#bridge-wait; the ends are seen without waiting them out (the 1 s end over
    # HTTP below).
    assert bridge.clamp_wait(asked) == held


def test_get_wait_defaults_to_30_seconds():
    assert schemas.BridgeGetQuery().load({"wait": "true"}) == {"wait": True, "timeout": 30}


def test_get_wait_timeout_0_is_clamped_to_1_second(client):
    # A picked-up command is still unfinished: after the wait it comes back as picked_up.
    runner_id = bridge_runner(client)
    command_id = submit(client, runner_id)
    poll(client, runner_id)
    started = time.monotonic()
    response = get_raw(client, runner_id, command_id, wait="true", timeout=0)
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert response.json["status"] == "picked_up"
    assert "picked_up_at" in response.json
    assert 0.9 <= elapsed < 4


def test_get_with_wait_on_a_finished_command_returns_at_once(client):
    runner_id = bridge_runner(client)
    command_id = submit(client, runner_id)
    assert report(client, runner_id, command_id, status="failed", error={"code": "e", "message": "m"}).status_code == 204
    started = time.monotonic()
    command = state(client, runner_id, command_id, wait="true", timeout=10)
    assert time.monotonic() - started < 5  # well short of the 10 s wait
    assert command["status"] == "failed"
    assert command["error"] == {"code": "e", "message": "m"}


def test_get_with_malformed_ids_is_404(client):
    runner_id = bridge_runner(client)
    assert client.get(f"{commands_url(runner_id)}/not-a-uuid").status_code == 404
    assert client.get(f"{API}/local-runners/not-a-uuid/bridge/commands/{uuid.uuid4()}").status_code == 404


# -- time-outs: DELETE, eviction, the reaper


def test_delete_times_out_pending_and_picked_up_commands(app, client):
    runner_id = bridge_runner(client)
    picked = submit(client, runner_id)
    poll(client, runner_id)
    pending = submit(client, runner_id)
    done = submit(client, runner_id)
    assert report(client, runner_id, done, status="completed", result={"ok": 1}).status_code == 204
    assert client.delete(f"{API}/local-runners/{runner_id}").status_code == 204
    for command_id in (picked, pending):
        row = stored(app, command_id)
        assert row.status == "timed_out", command_id
        assert row.completed_at is not None
    row = stored(app, done)
    assert row.status == "completed"
    assert row.result == {"ok": 1}
    # The runner is gone for every bridge call.
    assert get_raw(client, runner_id, picked).json == runner_not_found(runner_id)
    assert report(client, runner_id, picked, status="completed", result={"a": 1}).json == runner_not_found(runner_id)
    assert poll_raw(client, runner_id).json == runner_not_found(runner_id)


def test_purging_a_long_dead_runner_times_out_its_open_commands(make_app):
    # docs/opik-behaviour.md#purge, docs/opik-behaviour.md#bridge-states: dead for the purge time (24 h by
    # default), the runner is purged by the reaper and its pending and picked-up commands time out.
    app = make_app()
    client = app.test_client()
    runner_id = bridge_runner(client)
    picked = submit(client, runner_id)
    poll(client, runner_id)
    pending = submit(client, runner_id)

    def heartbeat_lapsed(seconds_ago):
        with models.database.connection_context():
            lapsed = models.now_us() - int(seconds_ago * models.SECOND)
            models.Runner.update(heartbeat_expires_at=lapsed).where(models.Runner.id == uuid.UUID(runner_id)).execute()

    heartbeat_lapsed(24 * 3600 - 60)
    reap(app)
    assert state(client, runner_id, picked)["status"] == "picked_up"  # dead, not yet for 24 h
    heartbeat_lapsed(24 * 3600 + 5)
    reap(app)
    assert get_raw(client, runner_id, picked).json == runner_not_found(runner_id)
    for command_id in (picked, pending):
        row = stored(app, command_id)
        assert (row.status, row.completed_at is not None) == ("timed_out", True), command_id


def test_delete_wakes_a_get_waiting_on_the_command(app, client):
    runner_id = bridge_runner(client)
    command_id = submit(client, runner_id)
    poll(client, runner_id)
    thread, outcome = run_in_thread(
        lambda: get_raw(app.test_client(), runner_id, command_id, wait="true", timeout=10)
    )
    time.sleep(0.5)
    assert thread.is_alive()
    assert client.delete(f"{API}/local-runners/{runner_id}").status_code == 204
    thread.join(timeout=15)
    assert not thread.is_alive()
    response = outcome["response"]
    assert response.status_code == 200
    assert response.json["status"] == "timed_out"
    assert "completed_at" in response.json
    assert 0.4 <= outcome["elapsed"] < 5


def test_eviction_times_out_the_old_runners_commands(app, client, in_app):
    old = bridge_runner(client, name="connect-1")
    picked = submit(client, old)
    poll(client, old)
    pending = submit(client, old)
    # An endpoint runner for the same project coexists: no eviction.
    in_app.pair(runner_type="endpoint", name="endpoint-1")
    assert state(client, old, picked)["status"] == "picked_up"
    assert state(client, old, pending)["status"] == "pending"
    new = bridge_runner(client, name="connect-2")
    for command_id in (picked, pending):
        assert stored(app, command_id).status == "timed_out", command_id
    assert client.post(f"{API}/local-runners/{old}/heartbeats").status_code == 410
    # The new runner starts with an empty queue.
    assert poll(client, new) == []


def test_the_reaper_times_out_stale_commands_on_an_endpoint_runner_too(make_app):
    # Opik's reaper looks at connect runners only; the bridge capability is what counts here
    # (docs/opik-behaviour.md#departure-reaper-bridge).
    app = make_app(OPIK_BRIDGE_POLL_TIMEOUT="0.2")
    client = app.test_client()
    in_app = InApp(client)
    runner_id, _ = in_app.pair(runner_type="endpoint", name="endpoint-with-bridge")
    beat(client, runner_id, capabilities=("jobs", "bridge"))
    command_id = submit(client, runner_id, timeout_seconds=5)
    assert len(poll(client, runner_id)) == 1
    move_picked_up_back(app, command_id, 5 + 10 + 2)
    reap(app)
    assert state(client, runner_id, command_id)["status"] == "timed_out"


def test_a_never_polled_command_is_gone_2x_timeout_plus_60_s_after_submit(make_app):
    # docs/opik-behaviour.md#bridge-expiry: the hash expires; GET then 404s, and a poll skips the command.
    app = make_app(OPIK_BRIDGE_POLL_TIMEOUT="0.2")
    client = app.test_client()
    runner_id = bridge_runner(client)
    command_id = submit(client, runner_id, timeout_seconds=5)
    age_command(app, command_id, 2 * 5 + 60 - 2)
    assert state(client, runner_id, command_id)["status"] == "pending"
    age_command(app, command_id, 3)
    response = get_raw(client, runner_id, command_id)
    assert response.status_code == 404
    assert response.json == command_not_found(command_id)
    assert poll(client, runner_id) == []
    response = report(client, runner_id, command_id, status="completed", result={"late": True})
    assert response.status_code == 404
    assert response.json == command_not_found(command_id)


def test_a_reported_command_is_kept_1_hour_after_its_report(make_app):
    # docs/opik-behaviour.md#bridge-expiry: the report resets the TTL to 1 h, whatever the command's timeout.
    app = make_app()
    client = app.test_client()
    runner_id = bridge_runner(client)
    command_id = submit(client, runner_id, timeout_seconds=120)
    poll(client, runner_id)
    age_command(app, command_id, 100)
    assert report(client, runner_id, command_id, status="completed", result={"ok": 1}).status_code == 204
    age_command(app, command_id, 3600 - 2)
    assert state(client, runner_id, command_id)["result"] == {"ok": 1}
    age_command(app, command_id, 3)
    assert get_raw(client, runner_id, command_id).status_code == 404


def test_reaper_times_out_a_stale_picked_up_command(make_app):
    app = make_app(OPIK_BRIDGE_POLL_TIMEOUT="0.2")
    client = app.test_client()
    runner_id = bridge_runner(client)
    stale = submit(client, runner_id, timeout_seconds=5)
    fresh = submit(client, runner_id, timeout_seconds=5)
    assert len(poll(client, runner_id)) == 2
    never_polled = submit(client, runner_id, timeout_seconds=5)
    # Past timeout + 10 s for one; within it for the other.
    move_picked_up_back(app, stale, 5 + 10 + 2)
    move_picked_up_back(app, fresh, 5 + 10 - 3)
    reap(app)
    command = state(client, runner_id, stale)
    assert command["status"] == "timed_out"
    assert parse_ts(command["completed_at"]) >= parse_ts(command["picked_up_at"])
    assert "result" not in command and "error" not in command
    assert state(client, runner_id, fresh)["status"] == "picked_up"
    assert state(client, runner_id, never_polled)["status"] == "pending"
    # A timed-out command is terminal: a late result is refused.
    response = report(client, runner_id, stale, status="completed", result={"late": True})
    assert response.status_code == 409
    assert response.json == ALREADY_COMPLETED
    assert state(client, runner_id, stale)["status"] == "timed_out"
    # The one still within its time can be reported.
    assert report(client, runner_id, fresh, status="completed", result={"ok": 1}).status_code == 204


def test_reaper_wakes_a_get_waiting_on_a_stale_command(make_app):
    app = make_app(OPIK_BRIDGE_POLL_TIMEOUT="0.2")
    client = app.test_client()
    runner_id = bridge_runner(client)
    command_id = submit(client, runner_id, timeout_seconds=1)
    poll(client, runner_id)
    thread, outcome = run_in_thread(
        lambda: get_raw(app.test_client(), runner_id, command_id, wait="true", timeout=10)
    )
    time.sleep(0.5)
    assert thread.is_alive()
    move_picked_up_back(app, command_id, 1 + 10 + 2)
    reap(app)
    thread.join(timeout=15)
    assert not thread.is_alive()
    assert outcome["response"].status_code == 200
    assert outcome["response"].json["status"] == "timed_out"
    assert outcome["elapsed"] < 5
