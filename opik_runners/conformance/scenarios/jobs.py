"""Jobs: creation and routing, the claim, results, logs and cancellation
(docs/opik-behaviour.md#job-create, docs/opik-behaviour.md#job-claim, docs/opik-behaviour.md#job-results,
docs/opik-behaviour.md#job-logs, docs/opik-behaviour.md#job-cancel, docs/opik-behaviour.md#job-fields)."""
import time
import uuid

from ...protocol import JobStatus
from ..scenario import scenario


def report(ctx, job_id, **body):
    return ctx.api.call("POST", f"v1/private/local-runners/jobs/{job_id}/results", body)


@scenario("jobs", "a job is created with its URL in Location, and read there")
def create(ctx):
    runner = ctx.runner()
    made = ctx.api.call("POST", "v1/private/local-runners/jobs", {
        "agent_name": "answer", "project_id": runner.project_id, "inputs": {"question": "2+2?"}})
    ctx.expect_status(made, 201)
    location = made.headers.get("Location", "")
    job_id = location.rsplit("/", 1)[-1]
    ctx.expect(location.endswith(f"/v1/private/local-runners/jobs/{job_id}") and job_id, "the Location header",
               ".../v1/private/local-runners/jobs/{id}", location, made)
    read, job = ctx.job(job_id)
    if not ctx.expect_status(read, 200):
        return
    for field, expected in (("id", job_id), ("runner_id", runner.id), ("agent_name", "answer"),
                            ("status", JobStatus.PENDING), ("project_id", runner.project_id),
                            ("inputs", {"question": "2+2?"})):
        ctx.expect_equal(field, job.get(field), expected, read)
    ctx.expect_time("created_at", job.get("created_at"), read)
    ctx.expect(isinstance(job.get("timeout"), int), "timeout", "an integer", job.get("timeout"), read)


@scenario("jobs", "a job for a project without a runner is 404, and for an agent not registered 400")
def routing(ctx):
    _, project_id = ctx.project()
    answer = ctx.api.call("POST", "v1/private/local-runners/jobs", {"agent_name": "answer", "project_id": project_id})
    ctx.expect_errors(answer, 404, "No runner configured. Pair one from the Runners page.")
    runner = ctx.runner()
    unknown = ctx.api.call("POST", "v1/private/local-runners/jobs", {"agent_name": "nope",
                                                                     "project_id": runner.project_id})
    ctx.expect_errors(unknown, 400, "Agent 'nope' is not registered on this runner")


@scenario("jobs", "jobs/next answers null once its hold passes with nothing to claim")
def next_answers_null(ctx):
    runner = ctx.runner()
    started = time.monotonic()
    answer = ctx.api.call("POST", f"v1/private/local-runners/{runner.id}/jobs/next")
    held = time.monotonic() - started
    ctx.expect_status(answer, 200)
    ctx.expect_equal("the body", answer.text.strip(), "null", answer)
    if ctx.options.poll_hold is not None:
        ctx.expect(abs(held - ctx.options.poll_hold) < 2, "how long the poll was held",
                   f"{ctx.options.poll_hold:g} s", f"{held:.1f} s", answer)


@scenario("jobs", "jobs are claimed oldest first, each once, and become running")
def claim_in_order(ctx):
    runner = ctx.runner()
    made = [ctx.create_job(runner, inputs={"question": f"q{i}"}) for i in range(3)]
    claimed = []
    for _ in made:
        answer, job = ctx.claim(runner)
        if ctx.expect_status(answer, 200) and job:
            claimed.append(job.get("id"))
            ctx.expect_equal("a claimed job's status", job.get("status"), JobStatus.RUNNING, answer)
            ctx.expect_time("a claimed job's started_at", job.get("started_at"), answer)
    ctx.expect_equal("the jobs claimed, in order", claimed, made)


@scenario("jobs", "a runner reports running, then completed or failed; a report after the end changes nothing")
def results(ctx):
    runner = ctx.runner()
    done, broken = ctx.create_job(runner), ctx.create_job(runner)
    ctx.claim(runner)
    ctx.claim(runner)
    trace_id = str(uuid.uuid4())
    ctx.expect_status(report(ctx, done, status="running", trace_id=trace_id), 204)
    read, job = ctx.job(done)
    ctx.expect_equal("a running job's trace_id", (job or {}).get("trace_id"), trace_id, read)
    ctx.expect_status(report(ctx, done, status="completed", result={"answer": "4"}, trace_id=trace_id), 204)
    ctx.expect_status(report(ctx, broken, status="failed", error="ValueError: no"), 204)
    read, job = ctx.job(done)
    ctx.expect_equal("the completed job's status", (job or {}).get("status"), JobStatus.COMPLETED, read)
    ctx.expect_equal("its result", (job or {}).get("result"), {"answer": "4"}, read)
    ctx.expect_time("its completed_at", (job or {}).get("completed_at"), read)
    read, job = ctx.job(broken)
    ctx.expect_equal("the failed job", ((job or {}).get("status"), (job or {}).get("error")),
                     (JobStatus.FAILED, "ValueError: no"), read)
    ctx.expect_status(report(ctx, done, status="failed", error="late"), 204, "a report after the end")
    read, job = ctx.job(done)
    ctx.expect_equal("the job after a late report", (job or {}).get("status"), JobStatus.COMPLETED, read)


@scenario("jobs", "a status a runner cannot report is 400", departure="departure-invalid-status-message")
def invalid_status(ctx):
    runner = ctx.runner()
    job_id = ctx.create_job(runner)
    answer = report(ctx, job_id, status="pending")
    if ctx.profile == "opik":  # a Java Set of the enum constants, in no fixed order
        ctx.expect_status(answer, 400)
        errors = (answer.json or {}).get("errors") or [""]
        ctx.expect(errors[0].startswith("Invalid result status. Must be one of: [") and "RUNNING" in errors[0],
                   "the error's message", "Invalid result status. Must be one of: [RUNNING, COMPLETED, FAILED] "
                   "(in any order)", errors, answer)
    else:
        ctx.expect_errors(answer, 400, "Invalid result status. Must be one of: [running, completed, failed]")


@scenario("jobs", "a result for a job never claimed finishes it, and the next poll hands out the next job",
          departure="departure-result-before-claim")
def result_before_claim(ctx):
    runner = ctx.runner()
    first, second = ctx.create_job(runner), ctx.create_job(runner)
    ctx.expect_status(report(ctx, first, status="completed", result={"early": True}), 204)
    answer, job = ctx.claim(runner)
    # Opik keeps the id in its pending queue and hands the finished job out again, as running.
    ctx.expect_equal("the job the next poll hands out", (job or {}).get("id"),
                     ctx.pick(opik=first, opik_runners=second), answer)


@scenario("jobs", "logs are appended in batches and read from an offset; a batch holds at most 1000")
def logs(ctx):
    runner = ctx.runner()
    job_id = ctx.create_job(runner)
    ctx.claim(runner)
    path = f"v1/private/local-runners/jobs/{job_id}/logs"
    lines = [{"stream": "stdout", "text": "one"}, {"stream": "stderr", "text": "two"}, {"stream": "stdout", "text": "3"}]
    ctx.expect_status(ctx.api.call("POST", path, lines[:2]), 204)
    ctx.expect_status(ctx.api.call("POST", path, lines[2:]), 204)
    read = ctx.api.call("GET", path)
    ctx.expect_equal("the job's logs", read.json, lines, read)
    later = ctx.api.call("GET", f"{path}?offset=1")
    ctx.expect_equal("the logs from offset 1", later.json, lines[1:], later)
    too_many = ctx.api.call("POST", path, [{"stream": "stdout", "text": "x"}] * 1001)
    ctx.expect_errors(too_many, 400, "Too many log entries. Maximum per batch is 1000")


@scenario("jobs", "a pending job cancelled is never handed out; an unknown job is 404")
def cancel_pending(ctx):
    runner = ctx.runner()
    cancelled, kept = ctx.create_job(runner), ctx.create_job(runner)
    ctx.expect_status(ctx.api.call("POST", f"v1/private/local-runners/jobs/{cancelled}/cancel"), 204)
    read, job = ctx.job(cancelled)
    ctx.expect_equal("the cancelled job's status", (job or {}).get("status"), JobStatus.CANCELLED, read)
    answer, job = ctx.claim(runner)
    ctx.expect_equal("the job the next poll hands out", (job or {}).get("id"), kept, answer)
    unknown = str(uuid.uuid4())
    ctx.expect_message(ctx.api.call("GET", f"v1/private/local-runners/jobs/{unknown}"), 404,
                       f"Job not found: '{unknown}'")


@scenario("jobs", "a runner holds at most the pending jobs the server allows; one more is 429")
def pending_cap(ctx):
    runner = ctx.runner()
    for i in range(ctx.options.max_pending):
        ctx.create_job(runner, inputs={"question": f"q{i}"})
    answer = ctx.api.call("POST", "v1/private/local-runners/jobs", {"agent_name": "answer",
                                                                    "project_id": runner.project_id})
    ctx.expect_errors(answer, 429, "Too many pending jobs for this runner")
