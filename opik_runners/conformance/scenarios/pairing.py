"""Pairing: sessions, the activation HMAC, and what a second or a wrong activation does
(docs/opik-behaviour.md#pairing-sessions, docs/opik-behaviour.md#pairing-activation,
docs/opik-behaviour.md#second-activation, docs/opik-behaviour.md#eviction)."""
import uuid

from ...protocol import RunnerStatus, RunnerType, activation_hmac_text
from ..scenario import scenario


def activate(ctx, session_id, key, name, hmac=None):
    return ctx.api.call("POST", f"v1/private/pairing/sessions/{session_id}/activate",
                        {"runner_name": name, "hmac": hmac or activation_hmac_text(session_id, key, name)})


@scenario("pairing", "a session activated with the right HMAC makes a connected runner")
def activation(ctx):
    _, project_id = ctx.project()
    made, session_id, runner_id, key = ctx.session(project_id)
    if not ctx.expect_status(made, 201):
        return
    ctx.expect(uuid.UUID(str(session_id)) and uuid.UUID(str(runner_id)), "session_id and runner_id", "two UUIDs",
               made.text, made)
    ctx.on_exit(lambda: ctx.api.call("DELETE", f"v1/private/local-runners/{runner_id}", timeout=10))
    name = ctx.unique("runner")
    answer = activate(ctx, session_id, key, name)
    ctx.expect_status(answer, 201)
    location = answer.headers.get("Location", "")
    ctx.expect(location.endswith(f"/v1/private/local-runners/{runner_id}"), "the Location header",
               f".../v1/private/local-runners/{runner_id}", location, answer)
    read = ctx.api.call("GET", f"v1/private/local-runners/{runner_id}")
    if ctx.expect_status(read, 200):
        runner = read.json
        ctx.expect_equal("the runner's status", runner.get("status"), RunnerStatus.CONNECTED, read)
        ctx.expect_equal("the runner's name", runner.get("name"), name, read)
        ctx.expect_equal("the runner's type", runner.get("type"), RunnerType.ENDPOINT, read)
        ctx.expect_equal("the runner's project", runner.get("project_id"), project_id, read)


@scenario("pairing", "a wrong HMAC is 403 and leaves the session usable")
def wrong_hmac(ctx):
    _, project_id = ctx.project()
    _, session_id, runner_id, key = ctx.session(project_id)
    ctx.on_exit(lambda: ctx.api.call("DELETE", f"v1/private/local-runners/{runner_id}", timeout=10))
    name = ctx.unique("runner")
    forged = activate(ctx, session_id, key, name, hmac=activation_hmac_text(session_id, b"\0" * 32, name))
    ctx.expect_message(forged, 403, "Invalid activation hmac")
    ctx.expect_status(activate(ctx, session_id, key, name), 201, "then the right HMAC")


@scenario("pairing", "a second activation of a session is 409", departure="departure-session-conflict-message")
def second_activation(ctx):
    _, project_id = ctx.project()
    _, session_id, runner_id, key = ctx.session(project_id)
    ctx.on_exit(lambda: ctx.api.call("DELETE", f"v1/private/local-runners/{runner_id}", timeout=10))
    name = ctx.unique("runner")
    ctx.expect_status(activate(ctx, session_id, key, name), 201, "the first activation")
    again = activate(ctx, session_id, key, name)
    ctx.expect_errors(again, 409, ctx.pick(opik=f"Session already activated: {session_id}",
                                           opik_runners="Session already activated"))


@scenario("pairing", "an unknown session is 404")
def unknown_session(ctx):
    session_id = str(uuid.uuid4())
    answer = activate(ctx, session_id, b"\1" * 32, "nobody")
    ctx.expect_message(answer, 404, f"Pairing session not found: {session_id}")


@scenario("pairing", "a session for a project the workspace lacks is 404",
          departure="departure-session-project-404")
def unknown_project(ctx):
    project_id = str(uuid.uuid4())
    answer, _, _, _ = ctx.session(project_id)
    if ctx.profile == "opik":
        ctx.expect_errors(answer, 404, "Project not found")
    else:
        ctx.expect_message(answer, 404, f"Project not found: {project_id}")


@scenario("pairing", "an activation key that is not base64 of 32 bytes is 400")
def bad_activation_key(ctx):
    _, project_id = ctx.project()
    body = {"project_id": project_id, "ttl_seconds": 300, "type": RunnerType.ENDPOINT}
    not_base64 = ctx.api.call("POST", "v1/private/pairing/sessions", {**body, "activation_key": "!" * 44})
    ctx.expect_message(not_base64, 400, "activation_key must be valid base64")
    too_short = ctx.api.call("POST", "v1/private/pairing/sessions", {**body, "activation_key": "A" * 44})
    ctx.expect_message(too_short, 400, "activation_key must decode to exactly 32 bytes")


@scenario("pairing", "pairing again evicts the runner it replaces")
def eviction(ctx):
    project = ctx.project()
    first = ctx.runner(project=project)
    second = ctx.runner(project=project)
    gone = ctx.api.call("GET", f"v1/private/local-runners/{first.id}")
    ctx.expect_message(gone, 404, f"Runner not found: {first.id}")
    ctx.expect_status(ctx.beat(first), 410, "the evicted runner's heartbeat")
    ctx.expect_status(ctx.beat(second), 200, "the new runner's heartbeat")
