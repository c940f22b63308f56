"""Heartbeats: liveness, and the running jobs cancelled since the last beat
(docs/opik-behaviour.md#heartbeats, docs/opik-behaviour.md#cancel-announcements)."""
import uuid

from ..scenario import scenario


@scenario("heartbeats", "a heartbeat answers the cancelled job ids, an empty list when there are none")
def beat(ctx):
    runner = ctx.runner()
    for body in (None, {"capabilities": ["jobs"]}):
        answer = ctx.beat(runner, None if body is None else body["capabilities"])
        ctx.expect_status(answer, 200)
        ctx.expect_equal("the heartbeat's answer", answer.json, {"cancelled_job_ids": []}, answer)


@scenario("heartbeats", "an unknown runner's heartbeat is 410")
def unknown_runner(ctx):
    runner_id = str(uuid.uuid4())
    answer = ctx.api.call("POST", f"v1/private/local-runners/{runner_id}/heartbeats", {"capabilities": ["jobs"]})
    ctx.expect_errors(answer, 410, f"Runner not found: {runner_id}")


@scenario("heartbeats", "a running job cancelled is announced once, by the next heartbeat")
def cancel_announced(ctx):
    runner = ctx.runner()
    job_id = ctx.create_job(runner)
    claimed, job = ctx.claim(runner)
    ctx.expect_equal("the job claimed", (job or {}).get("id"), job_id, claimed)
    ctx.expect_status(ctx.api.call("POST", f"v1/private/local-runners/jobs/{job_id}/cancel"), 204)
    first = ctx.beat(runner)
    ctx.expect_equal("the next heartbeat's answer", first.json, {"cancelled_job_ids": [job_id]}, first)
    second = ctx.beat(runner)
    ctx.expect_equal("the heartbeat after it", second.json, {"cancelled_job_ids": []}, second)


@scenario("heartbeats", "a pending job cancelled is never announced")
def pending_cancel_not_announced(ctx):
    runner = ctx.runner()
    job_id = ctx.create_job(runner)
    ctx.expect_status(ctx.api.call("POST", f"v1/private/local-runners/jobs/{job_id}/cancel"), 204)
    answer = ctx.beat(runner)
    ctx.expect_equal("the heartbeat's answer", answer.json, {"cancelled_job_ids": []}, answer)
