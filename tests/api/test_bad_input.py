"""Bad input on every JSON-body endpoint: never a 500, always one of Opik's two error
shapes (docs/opik-behaviour.md#error-shapes), and nothing half-written."""
import base64
import json
import uuid
from types import SimpleNamespace

import pytest

from opik_runners.store import models
from opik_runners.domain.limits import MAX_REQUEST_BYTES
from opik_runners.protocol import activation_hmac_text
from tests.support.in_app import API, ROOT

# name -> (method, path template); {runner}, {job} and {session} are filled from the `world` fixture.
ENDPOINTS = {
    "projects": ("POST", "/projects"),
    "projects_retrieve": ("POST", "/projects/retrieve"),
    "pairing_sessions": ("POST", "/pairing/sessions"),
    "activate": ("POST", "/pairing/sessions/{session}/activate"),
    "agents": ("PUT", "/local-runners/{runner}/agents"),
    "checklist": ("PATCH", "/local-runners/{runner}/checklist"),
    "heartbeats": ("POST", "/local-runners/{runner}/heartbeats"),
    "jobs_create": ("POST", "/local-runners/jobs"),
    "job_results": ("POST", "/local-runners/jobs/{job}/results"),
    "job_logs": ("POST", "/local-runners/jobs/{job}/logs"),
}
OBJECT_ENDPOINTS = [name for name in ENDPOINTS if name != "job_logs"]
# Endpoints whose body is required (heartbeat's is optional).
BODY_REQUIRED = [name for name in ENDPOINTS if name != "heartbeats"]


@pytest.fixture
def world(in_app):
    """A paired endpoint runner with an agent and one pending job, plus an open pairing session."""
    runner_id, project_id = in_app.pair()
    in_app.register(runner_id)
    job_id = in_app.create_job(project_id)
    session_id, session_runner, key = in_app.create_session(project_id)
    return SimpleNamespace(runner=runner_id, project=project_id, job=job_id, session=session_id,
                           session_runner=session_runner, key=key)


def send(client, world, name, body=None, raw=None, prefix=API, content_type="application/json", headers=None):
    method, template = ENDPOINTS[name]
    path = prefix + template.format(runner=world.runner, job=world.job, session=world.session)
    if raw is None:
        raw = json.dumps(body).encode()
    return client.open(path, method=method, data=raw, content_type=content_type, headers=headers)


def assert_dropwizard(response, status):
    assert response.status_code == status, (response.status_code, response.data[:300])
    assert response.is_json, response.headers.get("Content-Type")
    body = response.json
    assert set(body) <= {"code", "message", "details"}, body
    assert body["code"] == status and isinstance(body["message"], str) and body["message"]


def assert_unable_to_process(response):
    assert_dropwizard(response, 400)
    assert response.json["message"].startswith("Unable to process JSON"), response.json


def assert_error_shape(response, *statuses):
    assert response.status_code in statuses, (response.status_code, response.data[:300])
    body = response.json
    if "errors" in body:
        assert set(body) == {"errors"}
        assert body["errors"] and all(isinstance(m, str) and m for m in body["errors"])
    else:
        assert set(body) <= {"code", "message", "details"}
        assert body["code"] == response.status_code and isinstance(body["message"], str)


def job_total(client, world):
    response = client.get(f"{API}/local-runners/{world.runner}/jobs")
    assert response.status_code == 200
    return response.json["total"]


def runner_list(client, world):
    response = client.get(f"{API}/local-runners", query_string={"project_id": world.project, "size": 100})
    assert response.status_code == 200
    return [runner["id"] for runner in response.json["content"]]


def state(client, world):
    """Everything a rejected request must leave as it was."""
    job = client.get(f"{API}/local-runners/jobs/{world.job}").json
    runner = client.get(f"{API}/local-runners/{world.runner}").json
    logs = client.get(f"{API}/local-runners/jobs/{world.job}/logs").json
    runner.pop("status")  # derived from the clock
    return {"jobs": job_total(client, world), "runners": runner_list(client, world), "job": job,
            "runner": runner, "logs": logs}


# -- malformed JSON


MALFORMED = [
    b'{"name": ',
    b"{",
    b"{'name': 'x'}",
    b'{"name": "x",}',
    b"nope",
    b'{"name": "x"} trailing',
    b'{"a": INF}',
    b"\xff\xfe\xfa",
    b'{"name": "\xc3\x28"}',
    b"[1, 2",
]


@pytest.mark.parametrize("name", list(ENDPOINTS))
def test_malformed_json_is_400(client, world, name):
    before = state(client, world)
    for raw in MALFORMED:
        assert_unable_to_process(send(client, world, name, raw=raw))
    for prefix in (API, ROOT):
        assert_unable_to_process(send(client, world, name, raw=b"{oops", prefix=prefix))
    # Whatever the content type says, a body that will not parse is a parse error.
    assert_unable_to_process(send(client, world, name, raw=b"{oops", content_type="application/json; charset=utf-8"))
    assert state(client, world) == before


@pytest.mark.parametrize("name", list(ENDPOINTS))
def test_deeply_nested_json_is_400_not_500(client, world, name):
    # Jackson refuses documents nested deeper than its limit (1000): a parse error, never a crash.
    before = state(client, world)
    problems = []
    for raw in (b'{"a":' * 1500 + b"1" + b"}" * 1500, b"[" * 100_000 + b"]" * 100_000):
        response = send(client, world, name, raw=raw)
        body = response.json if response.is_json else None
        if response.status_code != 400 or not (body or {}).get("message", "").startswith("Unable to process JSON"):
            problems.append((raw[:5], response.status_code, response.data[:80]))
    assert not problems
    assert state(client, world) == before


def test_moderately_nested_documents_are_fine(client, in_app, world):
    inputs = json.loads('{"a":' * 200 + "1" + "}" * 200)
    before = job_total(client, world)
    in_app.create_job(world.project, inputs=inputs)
    assert job_total(client, world) == before + 1
    response = send(client, world, "checklist", {"deep": inputs})
    assert response.status_code == 204, response.data


# -- a JSON value of the wrong kind at the top level


@pytest.mark.parametrize("name", OBJECT_ENDPOINTS)
def test_non_object_body_is_400(client, world, name):
    before = state(client, world)
    for value in ([], [1, 2], [{"name": "x"}], "text", 5, 1.5, True):
        assert_error_shape(send(client, world, name, value), 400)
    assert state(client, world) == before


def test_logs_body_must_be_an_array(client, world):
    before = state(client, world)
    for value in ({}, {"stream": "stdout", "text": "x"}, "text", 5, True):
        assert_error_shape(send(client, world, "job_logs", value), 400)
    assert state(client, world) == before


def test_checklist_non_object_message(client, world):
    for value in ([1], "x", 3):
        response = send(client, world, "checklist", value)
        assert response.status_code == 400
        assert response.json == {"errors": ["Checklist must be a JSON object"]}


# -- wrong field types (Jackson parse errors: 400 Dropwizard shape)


# Numbers and booleans where a string goes are not here: Jackson takes them as their text.
WRONG_TYPES = {
    "projects": [{"name": ["demo"]}, {"name": "x", "description": {"a": 1}}, {"name": "x", "visibility": "secret"}],
    "projects_retrieve": [{"name": {"a": 1}}, {"name": [5]}],
    "pairing_sessions": [{"project_id": "not-a-uuid"}, {"project_id": 5}, {"ttl_seconds": "x"},
                         {"ttl_seconds": "1.5"}, {"ttl_seconds": "\u0663\u0660\u0660"}, {"ttl_seconds": [300]},
                         {"ttl_seconds": True},
                         {"ttl_seconds": 2**31}, {"ttl_seconds": "2147483648"}, {"ttl_seconds": 3e9},
                         {"activation_key": [5]}, {"type": 5}],
    "activate": [{"runner_name": ["x"]}, {"hmac": {"a": 1}}],
    # The agents body is replaced whole (a map of agent name -> Agent).
    # A Java int: past 32 bits the timeout does not parse (nor reach a job's column).
    "agents": [{"answer": {"timeout": "x"}}, {"answer": {"timeout": True}}, {"answer": {"timeout": 2**31}},
               {"answer": {"timeout": 10**30}}, {"answer": {"timeout": "9" * 5000}}, {"answer": {"params": "x"}},
               {"answer": {"params": [{"name": "q", "type": "string", "presence": "sometimes"}]}},
               {"answer": {"description": ["d"]}}, {"answer": "not-an-object"}, {"answer": [1]},
               {"answer": {"params": [5]}}],
    "heartbeats": [{"capabilities": "jobs"}, {"capabilities": [["jobs"]]}, {"capabilities": {"jobs": True}}],
    "jobs_create": [{"agent_name": ["answer"]}, {"project_id": "not-a-uuid"}, {"inputs": [1, 2]}, {"inputs": "x"},
                    {"mask_id": "x"}, {"prompt_masks": {"not-a-uuid": "x"}}, {"prompt_masks": [1]},
                    {"metadata": {"dataset_id": "x"}}, {"metadata": "x"}, {"metadata": [1]}],
    "job_results": [{"status": 5}, {"status": "bogus"}, {"result": [1]}, {"error": {"a": 1}}, {"trace_id": "x"}],
    # The logs body is replaced whole (an array of entries).
    "job_logs": [[{"stream": {"a": 1}, "text": "x"}], [{"stream": "stdout", "text": ["x"]}], [5], ["a line"],
                 [{"stream": "stdout", "text": "ok"}, [1]]],
}
WHOLE_BODY = ("agents", "job_logs")


def valid_body(world, name):
    """A body the endpoint accepts, so one bad field is the only thing wrong."""
    return {
        "projects": {"name": "fresh"},
        "projects_retrieve": {"name": "demo"},
        "pairing_sessions": {"project_id": world.project, "activation_key": base64.b64encode(bytes(32)).decode(),
                             "ttl_seconds": 300, "type": "endpoint"},
        "activate": {"runner_name": "r", "hmac": activation_hmac_text(world.session, world.key, "r")},
        "agents": {"answer": {"description": "d", "timeout": 1, "params": []}},
        "checklist": {"a": 1},
        "heartbeats": {"capabilities": ["jobs"]},
        "jobs_create": {"agent_name": "answer", "project_id": world.project},
        "job_results": {"status": "running"},
        "job_logs": [{"stream": "stdout", "text": "x"}],
    }[name]


def test_valid_bodies_are_accepted(client, world):
    """The baseline for the tables below: with nothing wrong, each call succeeds."""
    # Activation last: it evicts the fixture's runner, which the others use.
    for name in sorted(ENDPOINTS, key=lambda n: n == "activate"):
        response = send(client, world, name, valid_body(world, name))
        assert response.status_code in (200, 201, 204), (name, response.data)


@pytest.mark.parametrize("name", list(WRONG_TYPES))
def test_wrong_field_type_is_400(client, world, name):
    before = state(client, world)
    problems = []
    for patch in WRONG_TYPES[name]:
        body = patch if name in WHOLE_BODY else {**valid_body(world, name), **patch}
        response = send(client, world, name, body)
        message = response.json.get("message", "") if response.is_json and isinstance(response.json, dict) else ""
        if response.status_code != 400 or not message.startswith("Unable to process JSON"):
            problems.append((patch, response.status_code, response.data[:100]))
    assert not problems
    assert state(client, world) == before


# -- missing required fields (bean validation: 422 `{"errors": [...]}`)


MISSING = {
    "projects": [({}, ["name must not be null"]), ({"name": None}, ["name must not be null"]),
                 ({"description": "d"}, ["name must not be null"])],
    "projects_retrieve": [({}, ["name must not be null"]), ({"name": None}, ["name must not be null"])],
    "pairing_sessions": [
        ({}, ["project_id must not be null", "activation_key must not be null", "type must not be null"]),
        ({"project_id": None, "activation_key": "A" * 43 + "=", "type": "endpoint"}, ["project_id must not be null"]),
    ],
    "activate": [({}, ["runner_name must not be null", "hmac must not be null"]),
                 ({"runner_name": "r"}, ["hmac must not be null"]),
                 ({"hmac": "A" * 44}, ["runner_name must not be null"])],
    "jobs_create": [({}, ["agent_name must not be null", "project_id must not be null"]),
                    ({"project_id": "{project}"}, ["agent_name must not be null"]),
                    ({"agent_name": "answer"}, ["project_id must not be null"]),
                    ({"agent_name": None, "project_id": None},
                     ["agent_name must not be null", "project_id must not be null"])],
    "job_results": [({}, ["status must not be null"]), ({"result": {"a": 1}}, ["status must not be null"]),
                    ({"status": None}, ["status must not be null"])],
}


@pytest.mark.parametrize("name", list(MISSING))
def test_missing_required_field_is_422(client, world, name):
    before = state(client, world)
    for body, errors in MISSING[name]:
        body = {k: (world.project if v == "{project}" else v) for k, v in body.items()}
        response = send(client, world, name, body)
        assert response.status_code == 422, (body, response.data)
        assert set(response.json) == {"errors"}
        assert sorted(response.json["errors"]) == sorted(errors), body
    assert state(client, world) == before


def test_log_entry_missing_field_is_422(client, world):
    before = state(client, world)
    response = send(client, world, "job_logs", [{"stream": "stdout", "text": "ok"}, {"text": "x"}])
    assert response.status_code == 422, response.data
    assert len(response.json["errors"]) == 1
    assert response.json["errors"][0].endswith("stream must not be null")
    assert state(client, world) == before  # the valid first entry was not written either


def test_agent_param_missing_or_blank_is_422(client, world):
    before = state(client, world)
    for param, field in (({"type": "string"}, "name"), ({"name": "q", "type": " "}, "type"),
                         ({"name": "", "type": "string"}, "name")):
        response = send(client, world, "agents", {"answer": {"params": [param]}})
        assert response.status_code == 422, (param, response.data)
        assert len(response.json["errors"]) == 1 and field in response.json["errors"][0]
    assert state(client, world) == before


def test_empty_body_is_422_where_a_body_is_required(client, world):
    before = state(client, world)
    for name in BODY_REQUIRED:
        response = send(client, world, name, raw=b"")
        if name == "checklist":
            assert_error_shape(response, 400, 422)
        else:
            assert response.status_code == 422, (name, response.data)
            assert set(response.json) == {"errors"} and response.json["errors"]
    assert state(client, world) == before


def test_null_body(client, world):
    before = state(client, world)
    for name in ("projects", "projects_retrieve", "pairing_sessions", "activate", "jobs_create", "job_results"):
        response = send(client, world, name, raw=b"null")
        assert response.status_code == 422, (name, response.data)
        assert set(response.json) == {"errors"} and response.json["errors"]
    for name in ("agents", "checklist", "job_logs"):
        assert_error_shape(send(client, world, name, raw=b"null"), 400, 422)
    assert state(client, world) == before


def test_heartbeat_body_is_optional(client, world):
    for raw in (b"", b"null", b"{}", b"  ", b'{"capabilities": null}', b'{"capabilities": []}'):
        response = send(client, world, "heartbeats", raw=raw)
        assert response.status_code == 200, (raw, response.data)
        assert response.json == {"cancelled_job_ids": []}


# -- strings the store cannot take


def test_lone_surrogates_never_500(client, world):
    cases = [
        ("projects", {"name": "bad\ud800name"}),
        ("projects_retrieve", {"name": "bad\udfffname"}),
        ("activate", {"runner_name": "bad\ud800", "hmac": "A" * 44}),
        ("jobs_create", {"agent_name": "answer", "project_id": world.project, "inputs": {"q": "\udc00"}}),
        ("job_logs", [{"stream": "stdout", "text": "half a pair \ud83d"}]),
        ("checklist", {"k": "\ud800"}),
    ]
    problems = []
    for name, body in cases:
        # json.dumps keeps the \\udXXX escapes, as any client may send them.
        response = send(client, world, name, raw=json.dumps(body).encode())
        if response.status_code >= 500:
            problems.append((name, response.status_code, response.data[:100]))
        elif response.status_code >= 400:
            assert_error_shape(response, response.status_code)
    assert not problems


# -- size limit


def test_body_over_the_size_limit_is_413(client, world):
    before = state(client, world)
    head, tail = b'{"name":"', b'"}'
    raw = head + b"a" * (MAX_REQUEST_BYTES + 1 - len(head) - len(tail)) + tail
    assert len(raw) == MAX_REQUEST_BYTES + 1
    for name in ENDPOINTS:
        assert_dropwizard(send(client, world, name, raw=raw), 413)
    assert state(client, world) == before


# -- routing


NOT_FOUND = [
    # (GET / is the console's page.)
    ("GET", "/nope"),
    ("GET", "/console/assets/missing.js"),
    ("GET", "/api"),
    ("GET", "/api/nope"),
    ("POST", "/v1/private/nope"),
    ("POST", "/api/v1/private/nope"),
    ("GET", "/v1/private/local-runners/{runner}/nope"),
    ("POST", "/api/v1/private/pairing/sessions/not-a-uuid/activate"),
    ("POST", "/api/v1/private/pairing/sessions/{runner}/activate/extra"),
    ("GET", "/api/v1/private/pairing"),
    ("PUT", "/api/v1/private/local-runners/not-a-uuid/agents"),
]


def test_unknown_path_is_404_json(client, world):
    for method, path in NOT_FOUND:
        response = client.open(path.format(runner=world.runner), method=method, json={})
        assert_dropwizard(response, 404)


WRONG_METHOD = [
    ("GET", "/api/v1/private/pairing/sessions"),
    ("GET", "/v1/private/projects/retrieve"),
    ("DELETE", "/api/v1/private/projects"),
    ("PUT", "/api/is-alive/ping"),
    ("POST", "/is-alive/ver"),
    ("GET", "/api/v1/private/local-runners/{runner}/heartbeats"),
    ("POST", "/api/v1/private/local-runners/{runner}/agents"),
    ("PUT", "/api/v1/private/local-runners/{runner}/checklist"),
    ("GET", "/api/v1/private/local-runners/jobs"),
    ("PATCH", "/api/v1/private/local-runners/{runner}"),
    ("GET", "/api/v1/private/local-runners/jobs/{job}/results"),
]


def test_wrong_method_is_405_json(client, world):
    for method, path in WRONG_METHOD:
        response = client.open(path.format(runner=world.runner, job=world.job), method=method, json={})
        assert_dropwizard(response, 405)


def test_405_lists_the_allowed_methods(client, world):
    # RFC 9110 §15.5.6: a 405 response MUST carry Allow (Jersey sends it).
    response = client.get(f"{API}/pairing/sessions")
    assert response.status_code == 405
    assert "POST" in {m.strip() for m in response.headers.get("Allow", "").split(",")}


def test_unknown_paths_and_methods_need_no_key(make_app):
    client = make_app(OPIK_API_KEYS="alice:key-a").test_client()
    assert_dropwizard(client.get("/api/v1/private/nope"), 404)
    assert_dropwizard(client.get(f"{API}/pairing/sessions"), 405)


# -- nothing half-written


REJECTED_JOBS = [
    (b'{"agent_name": "answer", "project_id": ', None),
    (None, {"agent_name": 5, "project_id": "{project}"}),
    (None, {"agent_name": "answer", "project_id": "not-a-uuid"}),
    (None, {"agent_name": "answer", "project_id": "{project}", "inputs": [1, 2]}),
    (None, {"agent_name": "answer", "project_id": "{project}", "mask_id": "x"}),
    (None, {"agent_name": "answer", "project_id": "{project}", "prompt_masks": {str(uuid.uuid4()): "x"}}),
    (None, {"agent_name": "answer", "project_id": "{project}", "metadata": {"dataset_item_id": "x"}}),
    (None, {"agent_name": "answer"}),
    (None, {"agent_name": " ", "project_id": "{project}"}),
    (None, {"agent_name": "unregistered", "project_id": "{project}"}),
    (None, {"agent_name": "answer", "project_id": str(uuid.uuid4())}),
    (None, {"agent_name": "answer", "project_id": "{project}", "metadata": "x"}),
    (None, [{"agent_name": "answer", "project_id": "{project}"}]),
]


def test_rejected_job_create_writes_nothing(client, world):
    assert job_total(client, world) == 1
    for raw, body in REJECTED_JOBS:
        if body is not None:
            raw = json.dumps(body).replace('"{project}"', json.dumps(world.project)).encode()
        response = send(client, world, "jobs_create", raw=raw)
        assert 400 <= response.status_code < 500, (raw[:80], response.status_code, response.data)
        assert_error_shape(response, response.status_code)
        listed = client.get(f"{API}/local-runners/{world.runner}/jobs").json
        assert listed["total"] == 1 and [job["id"] for job in listed["content"]] == [world.job], raw[:80]
    # The pending queue still holds only the original job.
    claimed = client.post(f"{API}/local-runners/{world.runner}/jobs/next")
    assert claimed.json["id"] == world.job
    assert client.post(f"{API}/local-runners/{world.runner}/jobs/next").json is None


def test_rejected_job_create_over_the_size_limit_writes_nothing(client, world):
    inputs = {"blob": "x" * MAX_REQUEST_BYTES}
    response = client.post(f"{API}/local-runners/jobs",
                           json={"agent_name": "answer", "project_id": world.project, "inputs": inputs})
    assert_dropwizard(response, 413)
    assert job_total(client, world) == 1


def rejected_activations(world):
    good = activation_hmac_text(world.session, world.key, "new-runner")
    wrong = activation_hmac_text(world.session, b"\x00" * 32, "new-runner")
    return [
        ("malformed", b'{"runner_name": "new-runner", "hmac": '),
        ("wrong hmac", {"runner_name": "new-runner", "hmac": wrong}),
        ("hmac of another name", {"runner_name": "other", "hmac": good}),
        ("non-base64 hmac", {"runner_name": "new-runner", "hmac": "!" * 44}),
        ("short hmac", {"runner_name": "new-runner", "hmac": good[:40]}),
        ("blank name", {"runner_name": " ", "hmac": good}),
        ("long name", {"runner_name": "n" * 129, "hmac": good}),
        ("missing hmac", {"runner_name": "new-runner"}),
        ("wrong types", {"runner_name": 5, "hmac": good}),
        ("array", [{"runner_name": "new-runner", "hmac": good}]),
    ]


def test_rejected_activations_write_nothing_and_evict_nothing(client, world):
    before = runner_list(client, world)
    assert before == [world.runner]
    for label, body in rejected_activations(world):
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = send(client, world, "activate", raw=raw)
        assert 400 <= response.status_code < 500, (label, response.status_code, response.data)
        assert_error_shape(response, response.status_code)
        assert runner_list(client, world) == before, label
        assert client.get(f"{API}/local-runners/{world.session_runner}").status_code == 404, label
        # The existing runner of the same type was not evicted, and its job is untouched.
        beat = client.post(f"{API}/local-runners/{world.runner}/heartbeats")
        assert beat.status_code == 200, (label, beat.data)
        assert client.get(f"{API}/local-runners/jobs/{world.job}").json["status"] == "pending", label
    # After all that, the session still activates (and only then evicts the old runner).
    good = {"runner_name": "new-runner", "hmac": activation_hmac_text(world.session, world.key, "new-runner")}
    assert send(client, world, "activate", good).status_code == 201
    assert runner_list(client, world) == [world.session_runner]


def test_second_activation_writes_nothing(client, world):
    good = {"runner_name": "new-runner", "hmac": activation_hmac_text(world.session, world.key, "new-runner")}
    assert send(client, world, "activate", good).status_code == 201
    other = {"runner_name": "again", "hmac": activation_hmac_text(world.session, world.key, "again")}
    response = send(client, world, "activate", other)
    assert response.status_code == 409
    assert runner_list(client, world) == [world.session_runner]
    runner = client.get(f"{API}/local-runners/{world.session_runner}").json
    assert runner["name"] == "new-runner" and runner["status"] == "connected"


def test_rejected_session_create_writes_nothing(app, client, world):
    def count():
        with models.database.connection_context():
            return models.PairingSession.select().count()

    before = count()
    for body in ({"project_id": world.project, "activation_key": "!" * 44, "type": "endpoint"},
                 {"project_id": world.project, "activation_key": "A" * 44, "type": "bogus"},
                 {"project_id": world.project, "activation_key": "A" * 44, "type": "endpoint", "ttl_seconds": 5},
                 {"project_id": str(uuid.uuid4()), "activation_key": "A" * 44, "type": "endpoint"}):
        response = send(client, world, "pairing_sessions", body)
        assert 400 <= response.status_code < 500, response.data
    assert count() == before


def test_scalars_are_coerced_as_jackson_coerces_them(client, world):
    """Opik's Jackson mapper takes a number or boolean where a string goes as its text, cuts a
    fraction where an integer goes, and reads an integer from a string of digits."""
    response = send(client, world, "projects", {"name": 5, "description": True})
    assert response.status_code == 201, response.data
    project = client.post(f"{API}/projects/retrieve", json={"name": "5"}).json
    assert project["description"] == "true"
    agents = {"answer": {"description": 1.5, "timeout": "60"}, "other": {"timeout": 7.9}, "blank": {"timeout": " "}}
    assert send(client, world, "agents", agents).status_code == 204
    runner = client.get(f"{API}/local-runners/{world.runner}").json
    agents = {agent["name"]: agent for agent in runner["agents"]}
    assert {name: agent["timeout"] for name, agent in agents.items()} == {"answer": 60, "other": 7, "blank": 0}  # "" is null
    assert agents["answer"]["description"] == "1.5"
    entries = [{"stream": "stdout", "text": 42}, {"stream": "stderr", "text": False}]
    assert send(client, world, "job_logs", entries).status_code == 204
    logs = client.get(f"{API}/local-runners/jobs/{world.job}/logs").json
    assert [(entry["stream"], entry["text"]) for entry in logs] == [("stdout", "42"), ("stderr", "false")]


def test_nan_and_infinity_are_taken_and_come_back_as_strings(client, world):
    # Opik enables ALLOW_NON_NUMERIC_NUMBERS and writes such a double back as a string.
    raw = b'{"agent_name": "answer", "project_id": "%s", "inputs": {"x": NaN, "y": [Infinity, -Infinity]}}'
    response = send(client, world, "jobs_create", raw=raw % world.project.encode())
    assert response.status_code == 201, response.data
    job = client.get(response.headers["Location"]).json
    assert job["inputs"] == {"x": "NaN", "y": ["Infinity", "-Infinity"]}
    response = send(client, world, "pairing_sessions", raw=b'{"ttl_seconds": Infinity}')
    assert_unable_to_process(response)
    assert "ttl_seconds" in response.json["message"]


def test_a_number_as_a_capability_is_a_bad_capability_not_a_parse_error(client, world):
    # Jackson reads [1] as ["1"]; then the capability check refuses it (docs/opik-behaviour.md#heartbeats).
    response = send(client, world, "heartbeats", {"capabilities": [1]})
    assert response.status_code == 400
    assert response.json == {"errors": ["Invalid capability value: 1"]}


def test_rejected_project_create_writes_nothing(client, world):
    for raw in (b'{"name": ', b'{"name": [5]}', b'{"name": ""}', b'["x"]',
                b'{"name": "x", "description": "' + b"d" * 256 + b'"}'):
        response = send(client, world, "projects", raw=raw)
        assert 400 <= response.status_code < 500, (raw[:40], response.data)
    assert client.post(f"{API}/projects/retrieve", json={"name": "x"}).status_code == 404


def test_rejected_logs_write_nothing(client, world):
    batch = [{"stream": "stdout", "text": f"line {i}"} for i in range(3)] + [{"stream": "stdout", "text": [5]}]
    assert_unable_to_process(send(client, world, "job_logs", batch))
    assert client.get(f"{API}/local-runners/jobs/{world.job}/logs").json == []


def test_nul_characters_are_refused_cleanly(client):
    # PostgreSQL text cannot hold NUL; both stores refuse it the same way, never with a 500.
    response = client.post("/api/v1/private/projects", data=b'{"name": "a\\u0000b"}',
                           headers={"content-type": "application/json"})
    assert response.status_code == 400 and "NUL" in response.json["message"]
    response = client.post("/api/v1/private/projects/retrieve", json={"name": "x"},
                           headers={"Comet-Workspace": "a\x00b"})
    assert response.status_code == 400
