"""POST /v1/private/pairing/sessions and /sessions/{id}/activate (docs/opik-behaviour.md#pairing,
docs/opik-behaviour.md#activation-hmac, docs/opik-behaviour.md#eviction, docs/opik-behaviour.md#cli-startup,
docs/opik-behaviour.md#cli-pairing-link, docs/opik-behaviour.md#cli-pairing-poll)."""
import base64
import hashlib
import hmac as hmaclib
import os
import uuid
from urllib.parse import urlsplit

import pytest

from opik_runners import protocol
from opik_runners.protocol import activation_hmac_text
from opik_runners.store import models
from tests.support.in_app import API, ROOT, InApp

# Upstream's PairingServiceImplTest vectors (docs/opik-behaviour.md#activation-hmac).
VECTORS = [
    (
        "00000000-0000-0000-0000-000000000001",
        bytes(range(32)),
        "test-runner",
        "127a99c794575e17cfe04628f23eef16155fdb2c5534ac54c7c780d611d86645",
    ),
    (
        "550e8400-e29b-41d4-a716-446655440000",
        b"\xa1" * 32,
        "devbox-01",
        "081d9cb7963ef516ae705fe8658464901a445de154ae0f8ff7284253296585f0",
    ),
]

ALICE = {"Authorization": "key-a"}
BOB = {"Authorization": "key-b"}


def b64(raw):
    return base64.b64encode(raw).decode()


def session_body(project_id, key=None, **extra):
    body = {"project_id": project_id, "activation_key": b64(key or os.urandom(32)), "ttl_seconds": 300,
            "type": "endpoint"}
    body.update(extra)
    return body


def activate(client, session_id, key, name="runner-1", headers=None, hmac=None, prefix=API):
    return client.post(
        f"{prefix}/pairing/sessions/{session_id}/activate",
        json={"runner_name": name, "hmac": hmac if hmac is not None else activation_hmac_text(session_id, key, name)},
        headers=headers,
    )


def get_runner(client, runner_id, headers=None):
    return client.get(f"{API}/local-runners/{runner_id}", headers=headers)


def runner_ids(client, project_id, headers=None):
    response = client.get(f"{API}/local-runners", query_string={"project_id": project_id, "size": 100},
                          headers=headers)
    assert response.status_code == 200, response.data
    return [runner["id"] for runner in response.json["content"]]


def heartbeat(client, runner_id, headers=None):
    return client.post(f"{API}/local-runners/{runner_id}/heartbeats", json={"capabilities": ["jobs"]},
                       headers=headers)


def stored_session(app, session_id):
    with models.database.connection_context():
        return models.PairingSession.get_by_id(uuid.UUID(session_id))


# -- the HMAC


@pytest.mark.parametrize("session_id, key, name, expected", VECTORS)
def test_activation_hmac_vectors(session_id, key, name, expected):
    assert protocol.activation_hmac(uuid.UUID(session_id), key, name).hex() == expected


@pytest.mark.parametrize("session_id, key, name, expected", VECTORS)
def test_conftest_hmac_helper_agrees_with_vectors(session_id, key, name, expected):
    # The text form every HTTP test sends (the protocol module's, no copy of the tests'): pin it too.
    assert base64.b64decode(activation_hmac_text(session_id, key, name)).hex() == expected


@pytest.mark.parametrize("session_id, key, name, expected", VECTORS)
def test_vector_activates_over_http(app, client, in_app, session_id, key, name, expected):
    """Create the session over HTTP with the vector key, give it the vector's id, then
    activate with the vector's HMAC, exactly as a browser would send it."""
    project_id = in_app.ensure_project()
    created, runner_id, _ = in_app.create_session(project_id, key=key)
    with models.database.connection_context():
        moved = models.PairingSession.update(id=uuid.UUID(session_id)).where(
            models.PairingSession.id == uuid.UUID(created)
        ).execute()
        assert moved == 1
    tag = b64(bytes.fromhex(expected))
    # A tag for another name does not match.
    wrong = client.post(f"{API}/pairing/sessions/{session_id}/activate",
                        json={"runner_name": name + "x", "hmac": tag})
    assert wrong.status_code == 403
    response = client.post(f"{API}/pairing/sessions/{session_id}/activate",
                           json={"runner_name": name, "hmac": tag})
    assert response.status_code == 201, response.data
    assert get_runner(client, runner_id).json["name"] == name


def test_unpadded_hmac_is_accepted(client, in_app):
    project_id = in_app.ensure_project()
    session_id, runner_id, key = in_app.create_session(project_id)
    tag = activation_hmac_text(session_id, key, "r").rstrip("=")
    assert len(tag) == 43
    assert activate(client, session_id, key, name="r", hmac=tag).status_code == 201
    assert get_runner(client, runner_id).json["status"] == "connected"


# -- creating a session


@pytest.mark.parametrize("prefix", [API, ROOT])
def test_create_session_returns_two_v7_ids_without_location(client, in_app, prefix):
    project_id = in_app.ensure_project()
    response = client.post(f"{prefix}/pairing/sessions", json=session_body(project_id))
    assert response.status_code == 201, response.data
    assert set(response.json) == {"session_id", "runner_id"}
    session_id, runner_id = uuid.UUID(response.json["session_id"]), uuid.UUID(response.json["runner_id"])
    assert session_id.version == 7 and runner_id.version == 7
    assert session_id != runner_id
    assert "Location" not in response.headers


def test_each_session_gets_fresh_ids(in_app):
    project_id = in_app.ensure_project()
    first = in_app.create_session(project_id)
    second = in_app.create_session(project_id)
    assert len({first[0], first[1], second[0], second[1]}) == 4


def test_runner_does_not_exist_before_activation(client, in_app):
    project_id = in_app.ensure_project()
    _, runner_id, _ = in_app.create_session(project_id)
    assert get_runner(client, runner_id).status_code == 404
    assert runner_ids(client, project_id) == []


def test_activation_key_is_stored_as_sent(app, client, in_app):
    project_id = in_app.ensure_project()
    key_text = b64(os.urandom(32)).rstrip("=")
    response = client.post(f"{API}/pairing/sessions", json=session_body(project_id, activation_key=key_text))
    assert response.status_code == 201
    assert stored_session(app, response.json["session_id"]).activation_key == key_text


def test_activation_key_of_wrong_length_is_422(client, in_app):
    project_id = in_app.ensure_project()
    for length in (0, 42, 45, 64):
        key_text = (b64(os.urandom(48)) * 2)[:length]
        response = client.post(f"{API}/pairing/sessions", json=session_body(project_id, activation_key=key_text))
        assert response.status_code == 422, (length, response.data)
        assert response.json == {"errors": ["activation_key size must be between 43 and 44"]}


def test_activation_key_not_base64_is_400(client, in_app):
    project_id = in_app.ensure_project()
    for key_text in ("!" * 44, "a" * 43 + "!", "abc$" * 11, " " * 44, "=" * 44, "A" * 42 + "-_"):
        response = client.post(f"{API}/pairing/sessions", json=session_body(project_id, activation_key=key_text))
        assert response.status_code == 400, (key_text, response.data)
        assert response.json == {"code": 400, "message": "activation_key must be valid base64"}


def test_activation_key_not_32_bytes_is_400(client, in_app):
    project_id = in_app.ensure_project()
    for size in (31, 33):
        key_text = b64(os.urandom(size))
        assert len(key_text) == 44
        response = client.post(f"{API}/pairing/sessions", json=session_body(project_id, activation_key=key_text))
        assert response.status_code == 400, (size, response.data)
        assert set(response.json) == {"code", "message"}  # the Dropwizard shape
        assert response.json["code"] == 400
        assert "32 bytes" in response.json["message"]


def test_unpadded_43_char_key_is_accepted_and_activates(client, in_app):
    project_id = in_app.ensure_project()
    key = os.urandom(32)
    key_text = b64(key).rstrip("=")
    assert len(key_text) == 43
    response = client.post(f"{API}/pairing/sessions", json=session_body(project_id, activation_key=key_text))
    assert response.status_code == 201, response.data
    session_id, runner_id = response.json["session_id"], response.json["runner_id"]
    assert activate(client, session_id, key).status_code == 201
    assert get_runner(client, runner_id).json["status"] == "connected"


def test_ttl_out_of_range_is_422(client, in_app):
    project_id = in_app.ensure_project()
    for ttl in (59, 601, 0, -5):
        response = client.post(f"{API}/pairing/sessions", json=session_body(project_id, ttl_seconds=ttl))
        assert response.status_code == 422, (ttl, response.data)
        assert len(response.json["errors"]) == 1 and response.json["errors"][0].startswith("ttl_seconds ")


def ttl_of(app, response):
    assert response.status_code == 201, response.data
    session = stored_session(app, response.json["session_id"])
    return round((session.expires_at - session.created_at) / 1_000_000)


def test_ttl_bounds_are_accepted(app, client, in_app):
    project_id = in_app.ensure_project()
    for ttl in (60, 600):
        response = client.post(f"{API}/pairing/sessions", json=session_body(project_id, ttl_seconds=ttl))
        assert ttl_of(app, response) == ttl


def test_ttl_defaults_to_300(app, client, in_app):
    project_id = in_app.ensure_project()
    for body_ttl in ({}, {"ttl_seconds": None}):
        body = session_body(project_id)
        del body["ttl_seconds"]
        body.update(body_ttl)
        assert ttl_of(app, client.post(f"{API}/pairing/sessions", json=body)) == 300, body_ttl


def test_missing_required_field_is_422(client, in_app):
    project_id = in_app.ensure_project()
    for field in ("type", "project_id", "activation_key"):
        body = session_body(project_id)
        del body[field]
        response = client.post(f"{API}/pairing/sessions", json=body)
        assert response.status_code == 422, (field, response.data)
        assert response.json == {"errors": [f"{field} must not be null"]}


def test_bogus_type_is_400(client, in_app):
    project_id = in_app.ensure_project()
    for runner_type in ("bogus", "ENDPOINT", "Connect", ""):
        response = client.post(f"{API}/pairing/sessions", json=session_body(project_id, type=runner_type))
        assert response.status_code == 400, (runner_type, response.data)
        assert response.json["code"] == 400 and response.json["message"].startswith("Unable to process JSON")


def test_unknown_project_is_404(client, in_app):
    in_app.ensure_project()
    response = client.post(f"{API}/pairing/sessions", json=session_body(str(uuid.uuid4())))
    assert response.status_code == 404, response.data
    assert "code" in response.json or "errors" in response.json


def test_project_of_another_workspace_is_404(client, in_app):
    project_id = in_app.ensure_project(headers={"Comet-Workspace": "team-a"})
    response = client.post(f"{API}/pairing/sessions", json=session_body(project_id),
                           headers={"Comet-Workspace": "team-b"})
    assert response.status_code == 404, response.data
    ok = client.post(f"{API}/pairing/sessions", json=session_body(project_id), headers={"Comet-Workspace": "team-a"})
    assert ok.status_code == 201


# -- activating


@pytest.mark.parametrize("prefix", [API, ROOT])
def test_activation_is_201_empty_with_location(client, in_app, prefix):
    project_id = in_app.ensure_project()
    session_id, runner_id, key = in_app.create_session(project_id)
    response = activate(client, session_id, key, prefix=prefix)
    assert response.status_code == 201, response.data
    assert response.data == b""
    location = urlsplit(response.headers["Location"])
    path = location.path
    assert path == f"{prefix}/local-runners/{runner_id}"
    followed = client.get(path)
    assert followed.status_code == 200 and followed.json["id"] == runner_id


@pytest.mark.parametrize("runner_type", ["endpoint", "connect"])
def test_runner_is_connected_right_after_activation(client, in_app, runner_type):
    project_id = in_app.ensure_project()
    session_id, runner_id, key = in_app.create_session(project_id, runner_type)
    assert activate(client, session_id, key, name="devbox-01").status_code == 201
    runner = get_runner(client, runner_id)
    assert runner.status_code == 200
    body = runner.json
    assert body["id"] == runner_id
    assert body["name"] == "devbox-01"
    assert body["project_id"] == project_id
    assert body["type"] == runner_type
    assert body["status"] == "connected"
    assert body["connected_at"].endswith("Z")
    assert runner_ids(client, project_id) == [runner_id]
    listed = client.get(f"{API}/local-runners", query_string={"project_id": project_id, "status": "connected"})
    assert [r["id"] for r in listed.json["content"]] == [runner_id]


def test_wrong_hmac_is_403_and_session_stays_usable(client, in_app):
    project_id = in_app.ensure_project()
    session_id, runner_id, key = in_app.create_session(project_id)
    wrong_key = activation_hmac_text(session_id, os.urandom(32), "runner-1")
    response = activate(client, session_id, key, hmac=wrong_key)
    assert response.status_code == 403, response.data
    assert response.json == {"code": 403, "message": "Invalid activation hmac"}
    # The HMAC of another name, and one for another session, are wrong too.
    other_name = activation_hmac_text(session_id, key, "someone-else")
    assert activate(client, session_id, key, hmac=other_name).status_code == 403
    other_session = activation_hmac_text(str(uuid.uuid4()), key, "runner-1")
    assert activate(client, session_id, key, hmac=other_session).status_code == 403
    # Nothing was created by the failures.
    assert get_runner(client, runner_id).status_code == 404
    assert runner_ids(client, project_id) == []
    # The right one still works.
    assert activate(client, session_id, key).status_code == 201
    assert get_runner(client, runner_id).json["status"] == "connected"


def hmac_of(key, message):
    return base64.b64encode(hmaclib.new(key, message, hashlib.sha256).digest()).decode()


@pytest.mark.parametrize("message", [
    lambda session, name: uuid.UUID(session).bytes,  # the name's SHA-256 left out
    lambda session, name: uuid.UUID(session).bytes + name.encode(),  # the raw name in its place
    lambda session, name: hashlib.sha256(name.encode()).digest() + uuid.UUID(session).bytes,  # the order flipped
    lambda session, name: session.encode() + hashlib.sha256(name.encode()).digest(),  # the session's text, not bytes
], ids=["no-name-digest", "raw-name", "flipped", "session-text"])
def test_an_hmac_over_the_wrong_message_is_403_and_the_session_stays_usable(client, in_app, message):
    # (A mutation audit found nothing here would notice a server that skipped the name's digest.)
    project_id = in_app.ensure_project()
    session_id, runner_id, key = in_app.create_session(project_id)
    response = activate(client, session_id, key, hmac=hmac_of(key, message(session_id, "runner-1")))
    assert response.status_code == 403 and response.json == {"code": 403, "message": "Invalid activation hmac"}
    assert get_runner(client, runner_id).status_code == 404
    assert activate(client, session_id, key).status_code == 201
    assert get_runner(client, runner_id).json["status"] == "connected"


def test_hmac_not_base64_is_403(client, in_app):
    project_id = in_app.ensure_project()
    session_id, runner_id, key = in_app.create_session(project_id)
    for bad in ("!" * 44, "#" * 43, "a" * 43 + "$", "=" * 44):
        response = activate(client, session_id, key, hmac=bad)
        assert response.status_code == 403, (bad, response.data)
        assert response.json == {"code": 403, "message": "Invalid activation hmac"}
    assert activate(client, session_id, key).status_code == 201


def test_hmac_of_wrong_length_is_422(client, in_app):
    project_id = in_app.ensure_project()
    session_id, _, key = in_app.create_session(project_id)
    for length in (0, 42, 45):
        response = activate(client, session_id, key, hmac=("A" * 64)[:length])
        assert response.status_code == 422, (length, response.data)
        assert response.json == {"errors": ["hmac size must be between 43 and 44"]}


def test_second_activation_is_409(client, in_app):
    project_id = in_app.ensure_project()
    session_id, runner_id, key = in_app.create_session(project_id)
    assert activate(client, session_id, key).status_code == 201
    again = activate(client, session_id, key)
    assert again.status_code == 409, again.data
    assert again.json == {"errors": ["Session already activated"]}
    renamed = activate(client, session_id, key, name="other-name")
    assert renamed.status_code == 409
    # The runner is unchanged and was not evicted by the refused attempts.
    runner = get_runner(client, runner_id).json
    assert runner["name"] == "runner-1" and runner["status"] == "connected"
    assert heartbeat(client, runner_id).status_code == 200
    assert runner_ids(client, project_id) == [runner_id]


def test_expired_session_is_404(app, client, in_app):
    project_id = in_app.ensure_project()
    session_id, runner_id, key = in_app.create_session(project_id, ttl=60)
    with models.database.connection_context():
        models.PairingSession.update(expires_at=models.now_us() - 1_000).where(
            models.PairingSession.id == uuid.UUID(session_id)
        ).execute()
    response = activate(client, session_id, key)
    assert response.status_code == 404, response.data
    assert get_runner(client, runner_id).status_code == 404
    assert runner_ids(client, project_id) == []


def test_unknown_session_is_404(client, in_app):
    in_app.ensure_project()
    session_id, key = str(uuid.uuid4()), os.urandom(32)
    assert activate(client, session_id, key).status_code == 404


def test_session_of_another_workspace_is_404(client, in_app):
    team_a, team_b = {"Comet-Workspace": "team-a"}, {"Comet-Workspace": "team-b"}
    project_id = in_app.ensure_project(headers=team_a)
    session_id, runner_id, key = in_app.create_session(project_id, headers=team_a)
    response = activate(client, session_id, key, headers=team_b)
    assert response.status_code == 404, response.data  # deliberately not 403
    # Not consumed: the right workspace can still activate it.
    assert activate(client, session_id, key, headers=team_a).status_code == 201
    assert get_runner(client, runner_id, headers=team_a).status_code == 200
    assert get_runner(client, runner_id, headers=team_b).status_code == 404


def test_activator_owns_the_runner(make_app):
    client = make_app(OPIK_API_KEYS="alice:key-a,bob:key-b").test_client()
    in_app = InApp(client)
    project_id = in_app.ensure_project(headers=ALICE)
    session_id, runner_id, key = in_app.create_session(project_id, headers=ALICE)
    assert activate(client, session_id, key, headers=BOB).status_code == 201
    assert get_runner(client, runner_id, headers=BOB).status_code == 200
    assert get_runner(client, runner_id, headers=ALICE).status_code == 404
    assert runner_ids(client, project_id, headers=BOB) == [runner_id]
    assert runner_ids(client, project_id, headers=ALICE) == []
    assert heartbeat(client, runner_id, headers=BOB).status_code == 200
    assert heartbeat(client, runner_id, headers=ALICE).status_code == 410


def test_activation_needs_a_key_when_keys_are_set(make_app):
    client = make_app(OPIK_API_KEYS="alice:key-a,bob:key-b").test_client()
    in_app = InApp(client)
    project_id = in_app.ensure_project(headers=ALICE)
    session_id, runner_id, key = in_app.create_session(project_id, headers=ALICE)
    response = activate(client, session_id, key)
    assert response.status_code == 401
    assert response.json == {"code": 401, "message": "API key should be provided"}
    assert activate(client, session_id, key, headers=ALICE).status_code == 201


# -- eviction (docs/opik-behaviour.md#eviction)


def test_new_endpoint_runner_evicts_the_old_one(app, client, in_app):
    old_id, project_id = in_app.pair(name="old")
    in_app.register(old_id)
    pending = in_app.create_job(project_id)
    running = in_app.create_job(project_id)
    claimed = client.post(f"{API}/local-runners/{old_id}/jobs/next")
    assert claimed.json["id"] == pending
    new_id, _ = in_app.pair(name="new")
    assert new_id != old_id

    beat = heartbeat(client, old_id)
    assert beat.status_code == 410, beat.data
    assert beat.json["errors"] and isinstance(beat.json["errors"][0], str)
    assert get_runner(client, old_id).status_code == 404
    assert runner_ids(client, project_id) == [new_id]
    assert heartbeat(client, new_id).status_code == 200

    # Both the running and the pending job of the evicted runner failed.
    with models.database.connection_context():
        for job_id in (pending, running):
            job = models.Job.get_by_id(uuid.UUID(job_id))
            assert job.status == "failed", (job_id, job.status)
            assert job.error == "Runner disconnected"
            assert job.completed_at is not None

    # New work goes to the new runner only.
    in_app.register(new_id)
    job_id = in_app.create_job(project_id)
    assert client.get(f"{API}/local-runners/jobs/{job_id}").json["runner_id"] == new_id


def test_endpoint_and_connect_runners_coexist(client, in_app):
    endpoint_id, project_id = in_app.pair(runner_type="endpoint", name="ep")
    connect_id, _ = in_app.pair(runner_type="connect", name="cn")
    assert heartbeat(client, endpoint_id).status_code == 200
    assert heartbeat(client, connect_id).status_code == 200
    assert set(runner_ids(client, project_id)) == {endpoint_id, connect_id}
    # A second connect runner evicts only the first connect runner.
    connect_two, _ = in_app.pair(runner_type="connect", name="cn2")
    assert heartbeat(client, connect_id).status_code == 410
    assert heartbeat(client, endpoint_id).status_code == 200
    assert heartbeat(client, connect_two).status_code == 200
    assert set(runner_ids(client, project_id)) == {endpoint_id, connect_two}


def test_eviction_is_per_project(client, in_app):
    alpha, alpha_project = in_app.pair(project="alpha")
    beta, beta_project = in_app.pair(project="beta")
    assert heartbeat(client, alpha).status_code == 200
    assert heartbeat(client, beta).status_code == 200
    assert runner_ids(client, alpha_project) == [alpha]
    assert runner_ids(client, beta_project) == [beta]


def test_eviction_is_per_user(make_app):
    client = make_app(OPIK_API_KEYS="alice:key-a,bob:key-b").test_client()
    in_app = InApp(client)
    alice_runner, project_id = in_app.pair(headers=ALICE)
    bob_runner, _ = in_app.pair(headers=BOB)
    assert heartbeat(client, alice_runner, headers=ALICE).status_code == 200
    assert heartbeat(client, bob_runner, headers=BOB).status_code == 200
    assert runner_ids(client, project_id, headers=ALICE) == [alice_runner]
    assert runner_ids(client, project_id, headers=BOB) == [bob_runner]


def test_eviction_follows_the_activator_not_the_creator(make_app):
    client = make_app(OPIK_API_KEYS="alice:key-a,bob:key-b").test_client()
    in_app = InApp(client)
    bob_runner, project_id = in_app.pair(headers=BOB)
    # Alice creates a session, Bob activates it: Bob's previous runner is the one evicted.
    session_id, runner_id, key = in_app.create_session(project_id, headers=ALICE)
    assert activate(client, session_id, key, headers=BOB).status_code == 201
    assert heartbeat(client, bob_runner, headers=BOB).status_code == 410
    assert runner_ids(client, project_id, headers=BOB) == [runner_id]


# -- runner names


def test_blank_runner_name_is_422(client, in_app):
    project_id = in_app.ensure_project()
    session_id, _, key = in_app.create_session(project_id)
    for name in ("", " ", "   \t  "):
        response = activate(client, session_id, key, name=name)
        assert response.status_code == 422, (name, response.data)
        assert response.json == {"errors": ["runner_name must not be blank"]}
        assert runner_ids(client, project_id) == []
    assert activate(client, session_id, key).status_code == 201


def test_missing_runner_name_is_422(client, in_app):
    project_id = in_app.ensure_project()
    session_id, _, key = in_app.create_session(project_id)
    response = client.post(f"{API}/pairing/sessions/{session_id}/activate",
                           json={"hmac": activation_hmac_text(session_id, key, "x")})
    assert response.status_code == 422
    assert response.json == {"errors": ["runner_name must not be null"]}


def test_runner_name_over_128_chars_is_422(client, in_app):
    project_id = in_app.ensure_project()
    session_id, runner_id, key = in_app.create_session(project_id)
    response = activate(client, session_id, key, name="n" * 129)
    assert response.status_code == 422, response.data
    assert len(response.json["errors"]) == 1 and response.json["errors"][0].startswith("runner_name size")
    assert runner_ids(client, project_id) == []
    name = "m" * 128
    assert activate(client, session_id, key, name=name).status_code == 201
    assert get_runner(client, runner_id).json["name"] == name


def test_unicode_runner_names(client, in_app):
    project_id = in_app.ensure_project()
    for name in ("Ünïcødé-ランナー", "laptop-🚀-01", "ру́сский бегун", "a\u200bb", "名" * 128, "tab\there"):
        session_id, runner_id, key = in_app.create_session(project_id)
        # The HMAC covers the UTF-8 bytes; recompute it here independently of opik_runners.protocol.
        message = uuid.UUID(session_id).bytes + hashlib.sha256(name.encode("utf-8")).digest()
        tag = b64(hmaclib.new(key, message, hashlib.sha256).digest())
        response = activate(client, session_id, key, name=name, hmac=tag)
        assert response.status_code == 201, (name, response.data)
        runner = get_runner(client, runner_id)
        assert runner.json["name"] == name
        assert runner.json["status"] == "connected"
