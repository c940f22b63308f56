"""Runners: the listing, one runner, its capabilities, agents and checklist, and what a DELETE
leaves (docs/opik-behaviour.md#runner-fields, docs/opik-behaviour.md#runner-listing,
docs/opik-behaviour.md#agents, docs/opik-behaviour.md#checklist, docs/opik-behaviour.md#runner-delete,
docs/opik-behaviour.md#runner-status)."""
import time
import uuid

from ...protocol import RunnerStatus, RunnerType
from ..scenario import AGENT, scenario


@scenario("runners", "a project's runners are listed, and filtered by status")
def listing(ctx):
    runner = ctx.runner()
    answer = ctx.api.call("GET", f"v1/private/local-runners?project_id={runner.project_id}")
    if ctx.expect_status(answer, 200):
        page = answer.json
        ctx.expect_equal("the runners listed", [r.get("id") for r in page.get("content", [])], [runner.id], answer)
        ctx.expect_equal("total", page.get("total"), 1, answer)
    connected = ctx.api.call("GET", f"v1/private/local-runners?project_id={runner.project_id}&status=connected")
    ctx.expect_equal("connected runners", (connected.json or {}).get("total"), 1, connected)
    lapsed = ctx.api.call("GET", f"v1/private/local-runners?project_id={runner.project_id}&status=disconnected")
    ctx.expect_equal("disconnected runners", (lapsed.json or {}).get("total"), 0, lapsed)
    bad = ctx.api.call("GET", f"v1/private/local-runners?project_id={runner.project_id}&status=busy")
    # docs/opik-behaviour.md#runner-listing: 400; its wording (Dropwizard's converter's) is not the reference's.
    ctx.expect_status(bad, 400, "a status filter that names no status")


@scenario("runners", "a runner is read with its fields")
def read_runner(ctx):
    runner = ctx.runner()
    answer = ctx.api.call("GET", f"v1/private/local-runners/{runner.id}")
    if not ctx.expect_status(answer, 200):
        return
    body = answer.json
    for field, expected in (("id", runner.id), ("name", runner.name), ("project_id", runner.project_id),
                            ("status", RunnerStatus.CONNECTED), ("type", RunnerType.ENDPOINT)):
        ctx.expect_equal(field, body.get(field), expected, answer)
    ctx.expect_time("connected_at", body.get("connected_at"), answer)
    ctx.expect_equal("capabilities of a runner that never declared any", body.get("capabilities"), ["jobs"], answer)
    ctx.expect_equal("its agents, each with its name", [a.get("name") for a in body.get("agents", [])], ["answer"],
                     answer)
    unknown = uuid.uuid4()
    ctx.expect_message(ctx.api.call("GET", f"v1/private/local-runners/{unknown}"), 404, f"Runner not found: {unknown}")


@scenario("runners", "a heartbeat's capabilities are kept, and a bad one is 400")
def capabilities(ctx):
    runner = ctx.runner()
    ctx.expect_status(ctx.beat(runner, ["jobs", "bridge"]), 200)
    read = ctx.api.call("GET", f"v1/private/local-runners/{runner.id}")
    ctx.expect_equal("capabilities", (read.json or {}).get("capabilities"), ["jobs", "bridge"], read)
    ctx.expect_errors(ctx.beat(runner, ["Bad-Capability"]), 400, "Invalid capability value: Bad-Capability")


@scenario("runners", "agents are replaced as a whole, at most 50")
def agents(ctx):
    runner = ctx.runner()
    path = f"v1/private/local-runners/{runner.id}/agents"
    ctx.expect_status(ctx.api.call("PUT", path, {"first": AGENT, "second": {**AGENT, "timeout": 5}}), 204)
    read = ctx.api.call("GET", f"v1/private/local-runners/{runner.id}")
    listed = {a.get("name"): a for a in (read.json or {}).get("agents", [])}
    ctx.expect_equal("agents", sorted(listed), ["first", "second"], read)
    ctx.expect_equal("an agent's timeout", listed.get("second", {}).get("timeout"), 5, read)
    too_many = ctx.api.call("PUT", path, {f"agent_{i}": AGENT for i in range(51)})
    ctx.expect_errors(too_many, 400, "Too many agents. Maximum is 50")


@scenario("runners", "checklist patches merge, and a checklist must be an object under 1 MiB")
def checklist(ctx):
    runner = ctx.runner()
    path = f"v1/private/local-runners/{runner.id}/checklist"
    ctx.expect_status(ctx.api.call("PATCH", path, {"a": {"x": 1}, "b": 1}), 204)
    ctx.expect_status(ctx.api.call("PATCH", path, {"a": {"y": 2}, "c": 3}), 204)
    read = ctx.api.call("GET", f"v1/private/local-runners/{runner.id}")
    ctx.expect_equal("the merged checklist", (read.json or {}).get("checklist"),
                     {"a": {"x": 1, "y": 2}, "b": 1, "c": 3}, read)
    ctx.expect_errors(ctx.api.call("PATCH", path, [1, 2]), 400, "Checklist must be a JSON object")
    huge = ctx.api.call("PATCH", path, {"file_tree": "x" * 1_100_000})
    ctx.expect_status(huge, 400)
    errors = (huge.json or {}).get("errors") or [""]
    ctx.expect(errors[0].startswith("Checklist too large"), "the error's message", "Checklist too large: ...",
               errors, huge)


@scenario("runners", "a deleted runner is gone: 404 to read, 410 to its heartbeat, and a DELETE again is 204")
def delete(ctx):
    runner = ctx.runner()
    path = f"v1/private/local-runners/{runner.id}"
    ctx.expect_status(ctx.api.call("DELETE", path), 204)
    ctx.expect_message(ctx.api.call("GET", path), 404, f"Runner not found: {runner.id}")
    ctx.expect_errors(ctx.beat(runner), 410, f"Runner not found: {runner.id}")
    ctx.expect_status(ctx.api.call("DELETE", path), 204, "a second DELETE")


@scenario("runners", "a runner without heartbeats goes disconnected after the heartbeat TTL", slow=True)
def lapse(ctx):
    runner = ctx.runner()
    time.sleep(ctx.options.heartbeat_ttl + 1.5)
    read = ctx.api.call("GET", f"v1/private/local-runners/{runner.id}")
    ctx.expect_equal("the lapsed runner's status", (read.json or {}).get("status"), RunnerStatus.DISCONNECTED, read)
    ctx.expect_equal("its agents, hidden while it is disconnected", (read.json or {}).get("agents"), [], read)
    job = ctx.api.call("POST", "v1/private/local-runners/jobs",
                       {"agent_name": "answer", "project_id": runner.project_id, "inputs": {"question": "?"}})
    ctx.expect_errors(job, 409, "Your runner is not connected. Start it with: opik connect")
    ctx.expect_status(ctx.beat(runner), 200, "a heartbeat that brings it back")
