"""Bridge commands: submitted for a connect runner, polled, reported and waited for
(docs/opik-behaviour.md#bridge-submit, docs/opik-behaviour.md#bridge-next,
docs/opik-behaviour.md#bridge-results, docs/opik-behaviour.md#bridge-wait, docs/opik-behaviour.md#bridge-states)."""
import threading
import time
import uuid

from ...protocol import BridgeStatus, BridgeType, RunnerType, bridge_key, signed
from ..scenario import scenario


def connect_runner(ctx):
    runner = ctx.runner(RunnerType.CONNECT)
    if not ctx.expect_status(ctx.beat(runner, ["bridge"]), 200, "the connect runner's heartbeat"):
        ctx.skip("the connect runner's heartbeat was refused")
    return runner


def commands(runner):
    return f"v1/private/local-runners/{runner.id}/bridge/commands"


def submit(ctx, runner, args=None, command_type=BridgeType.READ_FILE):
    key = bridge_key(runner.key, runner.session_id)
    answer = ctx.api.call("POST", commands(runner), {"type": command_type,
                                                     "args": signed(key, command_type, args or {"path": "README.md"}),
                                                     "timeout_seconds": 30})
    return answer, (answer.json or {}).get("command_id")


@scenario("bridge", "a command is submitted, polled, reported and read back")
def command_life(ctx):
    runner = connect_runner(ctx)
    answer, command_id = submit(ctx, runner)
    ctx.expect_status(answer, 201)
    location = answer.headers.get("Location", "")
    ctx.expect(location.endswith(f"/bridge/commands/{command_id}"), "the Location header",
               f".../bridge/commands/{command_id}", location, answer)
    polled = ctx.api.call("POST", f"{commands(runner)}/next", {"max_commands": 10})
    batch = (polled.json or {}).get("commands", [])
    ctx.expect_equal("the commands polled", [c.get("command_id") for c in batch], [command_id], polled)
    if batch:
        ctx.expect_equal("the polled command's type", batch[0].get("type"), BridgeType.READ_FILE, polled)
        ctx.expect_time("its submitted_at", batch[0].get("submitted_at"), polled)
    read = ctx.api.call("GET", f"{commands(runner)}/{command_id}")
    ctx.expect_equal("the command's status once polled", (read.json or {}).get("status"), BridgeStatus.PICKED_UP, read)
    reported = ctx.api.call("POST", f"{commands(runner)}/{command_id}/results",
                            {"status": "completed", "result": {"content": "hello"}, "duration_ms": 12})
    ctx.expect_status(reported, 204)
    read = ctx.api.call("GET", f"{commands(runner)}/{command_id}")
    body = read.json or {}
    ctx.expect_equal("the completed command", (body.get("status"), body.get("result"), body.get("duration_ms")),
                     (BridgeStatus.COMPLETED, {"content": "hello"}, 12), read)
    again = ctx.api.call("POST", f"{commands(runner)}/{command_id}/results", {"status": "failed", "error": {}})
    ctx.expect_errors(again, 409, "Command already completed")


@scenario("bridge", "a wait answers the command once it finishes")
def wait(ctx):
    runner = connect_runner(ctx)
    _, command_id = submit(ctx, runner)
    waited = {}

    def waiter():
        started = time.monotonic()
        waited["answer"] = ctx.api.call("GET", f"{commands(runner)}/{command_id}?wait=true&timeout=20")
        waited["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=waiter, daemon=True)
    thread.start()
    time.sleep(0.5)
    ctx.api.call("POST", f"{commands(runner)}/next", {"max_commands": 1})
    ctx.api.call("POST", f"{commands(runner)}/{command_id}/results", {"status": "completed", "result": {"ok": True}})
    thread.join(timeout=30)
    answer = waited.get("answer")
    if not ctx.expect(answer is not None, "the wait's answer", "an answer within 20 s", "none"):
        return
    ctx.expect_equal("the command the wait answered", (answer.json or {}).get("status"), BridgeStatus.COMPLETED,
                     answer)
    ctx.expect(waited["seconds"] < 15, "how long the wait took", "until the result (well under its 20 s)",
               f"{waited['seconds']:.1f} s", answer)


@scenario("bridge", "a runner that never declared the bridge takes no commands")
def needs_the_capability(ctx):
    runner = ctx.runner()  # an endpoint runner, capabilities ["jobs"]
    answer, _ = submit(ctx, runner)
    ctx.expect_errors(answer, 409, "Runner does not support bridge commands")


@scenario("bridge", "a result needs a result or an error, and a reportable status",
          departure="departure-invalid-status-message")
def bad_results(ctx):
    runner = connect_runner(ctx)
    _, command_id = submit(ctx, runner)
    ctx.api.call("POST", f"{commands(runner)}/next", {"max_commands": 1})
    empty = ctx.api.call("POST", f"{commands(runner)}/{command_id}/results", {"status": "completed"})
    ctx.expect_errors(empty, 400, "Either result or error must be provided")
    pending = ctx.api.call("POST", f"{commands(runner)}/{command_id}/results", {"status": "pending", "result": {}})
    if ctx.profile == "opik":
        ctx.expect_status(pending, 400)
        errors = (pending.json or {}).get("errors") or [""]
        ctx.expect("COMPLETED" in errors[0], "the error's message",
                   "Invalid result status. Must be one of: [COMPLETED, FAILED] (in any order)", errors, pending)
    else:
        ctx.expect_errors(pending, 400, "Invalid result status. Must be one of: [completed, failed]")
    unknown = str(uuid.uuid4())
    ctx.expect_message(ctx.api.call("GET", f"{commands(runner)}/{unknown}"), 404, f"Command not found: {unknown}")
