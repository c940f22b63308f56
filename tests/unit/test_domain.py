"""The job state machine without HTTP (docs/opik-behaviour.md#runner-status,
docs/opik-behaviour.md#job-states, docs/opik-behaviour.md#jobs, docs/opik-behaviour.md#limits).

The domain rules run here with a database and a settings object only: no app, no
Flask context. Failures must surface as errors.ApiError carrying the status and body
the routes would answer with.
"""
import base64
import copy
import os
import time
import uuid

import pytest

from opik_runners.protocol import JobStatus, activation_hmac_text
from opik_runners.store import db
from opik_runners import errors
from opik_runners.domain import jobs, maintenance, ownership, pairing, projects, runners
from opik_runners.store.models import SECOND, Job, JobLog, Project, Runner, database, now_us
from opik_runners.settings import load_settings
from tests.support.databases import fresh_database_url

ME = ownership.Caller("default", "admin")
BOB = ownership.Caller("default", "bob")
OTHER_WORKSPACE = ownership.Caller("team-b", "admin")
HOUR = 3600 * SECOND
DAY = 24 * HOUR
CURRENT = {}  # the test's settings, for the helpers below


@pytest.fixture
def domain(tmp_path):
    """Open a fresh database and return the settings (keyword arguments override them, by
    variable name); call again to change the settings on the same database."""
    url = fresh_database_url(tmp_path)
    backend = db.open_and_migrate(url)

    def settings(**overrides):
        CURRENT["settings"] = load_settings({}, DATABASE_URL=url, **overrides)
        return CURRENT["settings"]

    with database.connection_context():
        yield settings
    backend.shut()


@pytest.fixture
def ctx(domain):
    return domain()


def project(caller=ME, name="demo"):
    found = Project.get_or_none((Project.workspace == caller.workspace) & (Project.name == name))
    return found.id if found else projects.create_project(caller, {"name": name}).id


def activate(project_id, caller=ME, runner_type="endpoint", name="runner-1"):
    key = os.urandom(32)
    session = pairing.create_session(
        CURRENT["settings"],
        caller,
        {
            "project_id": project_id,
            "activation_key": base64.b64encode(key).decode(),
            "ttl_seconds": 300,
            "type": runner_type,
        },
    )
    return pairing.activate_session(CURRENT["settings"], caller, session.id, name, activation_hmac_text(session.id, key, name))


def endpoint(caller=ME, project_name="demo", agents=None, **kwargs):
    """An activated endpoint runner with the `answer` agent: (runner_id, project_id)."""
    project_id = project(caller, project_name)
    runner_id = activate(project_id, caller, **kwargs)
    runners.register_agents(caller, runner_id, agents or {"answer": {"timeout": 0}})
    return runner_id, project_id


def new_job(project_id, caller=ME, agent="answer", **extra):
    return jobs.create_job(CURRENT["settings"], caller, {"agent_name": agent, "project_id": project_id, **extra})


def load(job_id):
    return Job.get_by_id(job_id)


def snapshot(job_id):
    return dict(load(job_id).__data__)


def raises(status, call, *args):
    with pytest.raises(errors.ApiError) as caught:
        call(*args)
    assert caught.value.status == status
    return caught.value.body


def claim_running(runner_id, project_id, **extra):
    job = new_job(project_id, **extra)
    claimed = jobs.claim_next_job(runner_id)
    assert claimed is not None and claimed.id == job.id
    return job.id


# -- none -> pending (create)


def test_create_queues_a_pending_job(ctx):
    runner_id, project_id = endpoint()
    before = now_us()
    job = new_job(project_id, inputs={"q": 1})
    stored = load(job.id)
    assert stored.status == JobStatus.PENDING
    assert stored.runner_id == runner_id
    assert stored.project_id == project_id
    assert stored.inputs == {"q": 1}
    assert stored.timeout == 1800
    assert before <= stored.created_at <= now_us()
    assert stored.started_at is None and stored.completed_at is None
    assert stored.result is None and stored.error is None and stored.trace_id is None
    assert uuid.UUID(str(stored.id)).version == 7


def test_create_takes_the_agent_timeout_when_positive(domain):
    domain(OPIK_RUNNER_JOB_TIMEOUT="5m")
    _, project_id = endpoint(agents={"slow": {"timeout": 7}, "none": {"timeout": 0}, "unset": {}})
    assert new_job(project_id, agent="slow").timeout == 7
    assert new_job(project_id, agent="none").timeout == 300
    assert new_job(project_id, agent="unset").timeout == 300


def test_create_without_an_endpoint_runner_is_404(ctx):
    no_runner = {"errors": ["No runner configured. Pair one from the Runners page."]}
    assert raises(404, new_job, project()) == no_runner
    connect_id = activate(project(), runner_type="connect")
    runners.register_agents(ME, connect_id, {"answer": {"timeout": 0}})
    assert raises(404, new_job, project()) == no_runner
    # Another user's or another workspace's endpoint runner is not the caller's.
    _, project_id = endpoint()
    assert raises(404, new_job, project_id, BOB) == no_runner
    assert raises(404, new_job, project(OTHER_WORKSPACE), OTHER_WORKSPACE) == no_runner
    assert Job.select().count() == 0


def test_create_on_a_lapsed_runner_is_409(domain):
    ctx = domain(OPIK_RUNNER_HEARTBEAT_TTL="0.2")
    runner_id, project_id = endpoint()
    time.sleep(0.3)
    body = raises(409, new_job, project_id)
    assert body == {"errors": ["Your runner is not connected. Start it with: opik connect"]}
    assert raises(409, new_job, project_id, ME, "unregistered") == body  # liveness is checked first
    assert Job.select().count() == 0
    runners.heartbeat(ctx, ME, runner_id, None)
    assert new_job(project_id).status == JobStatus.PENDING


def test_create_for_an_unregistered_agent_is_400(ctx):
    _, project_id = endpoint()
    assert raises(400, new_job, project_id, ME, "x") == {"errors": ["Agent 'x' is not registered on this runner"]}
    assert Job.select().count() == 0


def test_create_beyond_the_pending_limit_is_429(domain):
    domain(OPIK_RUNNER_MAX_PENDING="2")
    runner_id, project_id = endpoint()
    new_job(project_id)
    new_job(project_id)
    assert raises(429, new_job, project_id) == {"errors": ["Too many pending jobs for this runner"]}
    assert Job.select().count() == 2
    # The refused job took no number: the runner's counters are those of the two it has.
    runner = Runner.get_by_id(runner_id)
    assert (runner.job_count, runner.last_seq) == (2, 2)
    jobs.claim_next_job(runner_id)  # running jobs do not count
    new_job(project_id)
    assert raises(429, new_job, project_id)["errors"] == ["Too many pending jobs for this runner"]


def test_create_routes_to_the_newest_endpoint_runner(ctx):
    old_id, project_id = endpoint(name="old")
    new_id, _ = endpoint(name="new")
    assert new_job(project_id).runner_id == new_id
    assert jobs.claim_next_job(old_id) is None


# -- pending -> running (claim)


def test_claim_is_fifo_and_marks_running(ctx):
    runner_id, project_id = endpoint()
    ids = [new_job(project_id).id for _ in range(3)]
    for expected in ids:
        before = now_us()
        claimed = jobs.claim_next_job(runner_id)
        assert claimed.id == expected
        assert claimed.status == JobStatus.RUNNING
        stored = load(expected)
        assert stored.status == JobStatus.RUNNING
        assert before <= stored.started_at <= now_us()
        assert stored.completed_at is None
    assert jobs.claim_next_job(runner_id) is None


def test_claim_only_takes_the_given_runners_jobs(ctx):
    runner_id, project_id = endpoint(project_name="alpha")
    other_id, other_project = endpoint(project_name="beta")
    mine = new_job(project_id)
    theirs = new_job(other_project)
    assert jobs.claim_next_job(other_id).id == theirs.id
    assert jobs.claim_next_job(other_id) is None
    assert jobs.claim_next_job(runner_id).id == mine.id


def test_next_job_long_poll(domain):
    ctx = domain(OPIK_RUNNER_NEXT_JOB_POLL_TIMEOUT="0.3")
    runner_id, project_id = endpoint()
    started = time.monotonic()
    assert jobs.next_job(ctx, ME, runner_id) is None
    assert time.monotonic() - started >= 0.25
    job = new_job(project_id)
    assert jobs.next_job(ctx, ME, runner_id).id == job.id
    assert load(job.id).status == JobStatus.RUNNING
    assert raises(404, jobs.next_job, ctx, BOB, runner_id)["message"] == f"Runner not found: {runner_id}"
    unknown = uuid.uuid4()
    assert raises(404, jobs.next_job, ctx, ME, unknown) == {"code": 404, "message": f"Runner not found: {unknown}"}


# -- pending -> cancelled, running -> cancelled


def test_cancel_pending_job(ctx):
    runner_id, project_id = endpoint()
    job = new_job(project_id)
    jobs.cancel_job(ME, job.id)
    stored = load(job.id)
    assert stored.status == JobStatus.CANCELLED
    assert stored.completed_at is not None and stored.started_at is None
    assert jobs.claim_next_job(runner_id) is None  # left the queue
    assert runners.heartbeat(ctx, ME, runner_id, None) == []  # nothing for the runner to stop


def test_cancel_running_job_is_announced_once(ctx):
    runner_id, project_id = endpoint()
    job_id = claim_running(runner_id, project_id)
    still_running = claim_running(runner_id, project_id)
    jobs.cancel_job(ME, job_id)
    stored = load(job_id)
    assert stored.status == JobStatus.CANCELLED
    assert stored.completed_at is not None and stored.started_at is not None
    assert runners.heartbeat(ctx, ME, runner_id, None) == [job_id]
    assert runners.heartbeat(ctx, ME, runner_id, None) == []
    assert load(still_running).status == JobStatus.RUNNING


def test_cancellations_are_announced_to_their_own_runner_only(ctx):
    runner_a, project_a = endpoint(project_name="alpha")
    runner_b, project_b = endpoint(project_name="beta")
    job_a = claim_running(runner_a, project_a)
    job_b = claim_running(runner_b, project_b)
    jobs.cancel_job(ME, job_a)
    jobs.cancel_job(ME, job_b)
    assert runners.heartbeat(ctx, ME, runner_b, None) == [job_b]
    assert runners.heartbeat(ctx, ME, runner_a, None) == [job_a]


# -- running -> running, running -> completed/failed, pending -> completed/failed


def test_running_report_records_in_flight_fields_only(ctx):
    runner_id, project_id = endpoint()
    job_id = claim_running(runner_id, project_id)
    started_at = load(job_id).started_at
    trace_id = uuid.uuid4()
    jobs.report_job_result(ME, job_id, {"status": "running", "trace_id": trace_id, "result": {"p": 1}, "error": "w"})
    stored = load(job_id)
    assert stored.status == JobStatus.RUNNING
    assert stored.trace_id == trace_id
    assert stored.result == {"p": 1}
    assert stored.error == "w"
    assert stored.started_at == started_at
    assert stored.completed_at is None


@pytest.mark.parametrize("final", [JobStatus.COMPLETED, JobStatus.FAILED])
def test_final_report_finishes_a_running_job(ctx, final):
    runner_id, project_id = endpoint()
    job_id = claim_running(runner_id, project_id)
    trace_id = uuid.uuid4()
    jobs.report_job_result(ME, job_id, {"status": "running", "trace_id": trace_id})
    jobs.report_job_result(ME, job_id, {"status": final, "result": {"a": 1}, "error": "e"})
    stored = load(job_id)
    assert stored.status == final
    assert stored.result == {"a": 1} and stored.error == "e"
    assert stored.trace_id == trace_id  # an omitted field keeps its earlier value
    assert stored.started_at <= stored.completed_at <= now_us()
    assert runners.heartbeat(ctx, ME, runner_id, None) == []


@pytest.mark.parametrize("final", [JobStatus.COMPLETED, JobStatus.FAILED])
def test_final_report_finishes_a_never_claimed_job(ctx, final):
    _, project_id = endpoint()
    job = new_job(project_id)
    jobs.report_job_result(ME, job.id, {"status": final})
    stored = load(job.id)
    assert stored.status == final
    assert stored.completed_at is not None
    assert stored.started_at is None


@pytest.mark.parametrize("status", ["pending", "cancelled", "timed_out"])
def test_non_reportable_status_is_400_before_the_lookup(ctx, status):
    runner_id, project_id = endpoint()
    job_id = claim_running(runner_id, project_id)
    expected = {"errors": ["Invalid result status. Must be one of: [running, completed, failed]"]}
    assert raises(400, jobs.report_job_result, ME, job_id, {"status": status}) == expected
    assert raises(400, jobs.report_job_result, ME, uuid.uuid4(), {"status": status}) == expected
    assert raises(400, jobs.report_job_result, BOB, job_id, {"status": status}) == expected
    assert load(job_id).status == JobStatus.RUNNING


# -- terminal -> (none)


def finish(runner_id, project_id, final):
    job_id = claim_running(runner_id, project_id)
    if final == JobStatus.CANCELLED:
        jobs.cancel_job(ME, job_id)
        assert runners.heartbeat(CURRENT["settings"], ME, runner_id, None) == [job_id]
    else:
        jobs.report_job_result(ME, job_id, {"status": final, "result": {"first": True}})
    return job_id


@pytest.mark.parametrize("final", [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED])
def test_finished_job_ignores_later_results_and_cancels(ctx, final):
    runner_id, project_id = endpoint()
    job_id = finish(runner_id, project_id, final)
    before = snapshot(job_id)
    for status in ("running", "completed", "failed"):
        jobs.report_job_result(
            ME, job_id, {"status": status, "result": {"late": status}, "error": status, "trace_id": uuid.uuid4()}
        )
    jobs.cancel_job(ME, job_id)
    assert snapshot(job_id) == before
    assert runners.heartbeat(ctx, ME, runner_id, None) == []
    assert jobs.claim_next_job(runner_id) is None


# -- pending/running -> failed: DELETE, eviction, purge


def test_disconnect_fails_open_jobs_and_hides_them(ctx):
    runner_id, project_id = endpoint()
    done = finish(runner_id, project_id, JobStatus.COMPLETED)
    running = claim_running(runner_id, project_id)
    pending = new_job(project_id).id
    done_before = snapshot(done)
    runners.disconnect_runner(ME, runner_id)
    for job_id in (pending, running):
        stored = load(job_id)
        assert stored.status == JobStatus.FAILED
        assert stored.error == "Runner disconnected"
        assert stored.completed_at is not None
    assert snapshot(done) == done_before
    assert raises(404, ownership.get_job, ME, pending) == {"code": 404, "message": f"Job not found: '{pending}'"}
    assert raises(404, jobs.cancel_job, ME, running)["code"] == 404
    assert raises(404, jobs.report_job_result, ME, running, {"status": "completed"})["code"] == 404
    assert raises(404, ownership.get_runner, ME, runner_id) == {"code": 404, "message": f"Runner not found: {runner_id}"}
    assert raises(410, runners.heartbeat, ctx, ME, runner_id, None) == {"errors": [f"Runner not found: {runner_id}"]}
    assert raises(404, new_job, project_id)["errors"] == ["No runner configured. Pair one from the Runners page."]
    # Idempotent, and a no-op for a foreign or unknown runner.
    runners.disconnect_runner(ME, runner_id)
    runners.disconnect_runner(ME, uuid.uuid4())


def test_disconnect_by_another_user_changes_nothing(ctx):
    runner_id, project_id = endpoint()
    job = new_job(project_id)
    runners.disconnect_runner(BOB, runner_id)
    assert load(job.id).status == JobStatus.PENDING
    assert ownership.get_runner(ME, runner_id).id == runner_id


def test_eviction_fails_the_old_runners_open_jobs(ctx):
    old_id, project_id = endpoint(name="old")
    running = claim_running(old_id, project_id)
    pending = new_job(project_id).id
    new_id, _ = endpoint(name="new")
    for job_id in (pending, running):
        stored = load(job_id)
        assert stored.status == JobStatus.FAILED
        assert stored.error == "Runner disconnected"
    assert raises(410, runners.heartbeat, ctx, ME, old_id, None)["errors"]
    assert raises(404, ownership.get_job, ME, pending)["code"] == 404
    assert ownership.get_runner(ME, new_id).id == new_id


def test_a_connect_runner_does_not_evict_the_endpoint_runner(ctx):
    runner_id, project_id = endpoint()
    job = new_job(project_id)
    activate(project_id, runner_type="connect", name="connect")
    assert load(job.id).status == JobStatus.PENDING
    assert new_job(project_id).runner_id == runner_id


def test_another_users_pairing_does_not_evict(ctx):
    runner_id, project_id = endpoint()
    job = new_job(project_id)
    endpoint(BOB, name="bob's")
    assert load(job.id).status == JobStatus.PENDING
    assert ownership.get_runner(ME, runner_id).id == runner_id


def test_a_lapsed_runner_keeps_its_jobs(domain):
    ctx = domain(OPIK_RUNNER_HEARTBEAT_TTL="0.2")
    runner_id, project_id = endpoint()
    running = claim_running(runner_id, project_id)
    pending = new_job(project_id).id
    time.sleep(0.3)
    assert ownership.get_runner(ME, runner_id).status == "disconnected"
    maintenance.reap(ctx)
    assert load(running).status == JobStatus.RUNNING
    assert load(pending).status == JobStatus.PENDING
    assert ownership.get_runner(ME, runner_id).id == runner_id
    # Its queue is still served, and its cancellations still delivered.
    assert jobs.claim_next_job(runner_id).id == pending
    jobs.cancel_job(ME, running)
    assert runners.heartbeat(ctx, ME, runner_id, None) == [running]
    assert ownership.get_runner(ME, runner_id).status == "connected"


def test_reaper_keeps_a_runner_dead_for_less_than_the_purge_time(ctx):
    runner_id, project_id = endpoint()
    running = claim_running(runner_id, project_id)
    pending = new_job(project_id).id
    Runner.update(heartbeat_expires_at=now_us() - 23 * HOUR).where(Runner.id == runner_id).execute()
    maintenance.reap(ctx)
    assert load(running).status == JobStatus.RUNNING
    assert load(pending).status == JobStatus.PENDING
    assert ownership.get_runner(ME, runner_id).status == "disconnected"


def test_reaper_purges_a_runner_dead_for_the_purge_time(ctx):
    runner_id, project_id = endpoint()
    running = claim_running(runner_id, project_id)
    pending = new_job(project_id).id
    Runner.update(heartbeat_expires_at=now_us() - 25 * HOUR).where(Runner.id == runner_id).execute()
    maintenance.reap(ctx)
    for job_id in (pending, running):
        stored = load(job_id)
        assert stored.status == JobStatus.FAILED
        assert stored.error == "Runner disconnected"
        assert stored.completed_at is not None
    assert raises(404, ownership.get_runner, ME, runner_id)["code"] == 404
    assert raises(410, runners.heartbeat, ctx, ME, runner_id, None)["errors"]
    assert raises(404, ownership.get_job, ME, running)["code"] == 404


# -- running -> failed: the job-timeout reaper


def test_reaper_fails_only_running_jobs_past_their_timeout_even_on_a_live_runner(ctx):
    runner_id, project_id = endpoint(agents={"quick": {"timeout": 1}, "answer": {"timeout": 0}})
    stuck = claim_running(runner_id, project_id, agent="quick")
    patient = claim_running(runner_id, project_id)  # timeout 1800
    waiting = new_job(project_id, agent="quick").id  # never claimed: its clock has not started
    time.sleep(1.15)
    runners.heartbeat(ctx, ME, runner_id, None)  # the runner is alive throughout
    maintenance.reap(ctx)
    stored = load(stuck)
    assert stored.status == JobStatus.FAILED
    assert stored.error == "Job timed out after 1s"
    assert stored.completed_at is not None
    assert ownership.get_runner(ME, runner_id).status == "connected"
    assert runners.heartbeat(ctx, ME, runner_id, None) == []  # the runner is not told
    assert load(patient).status == JobStatus.RUNNING
    assert load(waiting).status == JobStatus.PENDING
    # A later report from the runner is ignored.
    jobs.report_job_result(ME, stuck, {"status": "completed", "result": {"late": True}})
    assert load(stuck).status == JobStatus.FAILED


def test_reaper_expires_finished_jobs_and_their_logs_after_the_ttl(ctx):
    runner_id, project_id = endpoint()
    old = finish(runner_id, project_id, JobStatus.COMPLETED)
    recent = finish(runner_id, project_id, JobStatus.FAILED)
    running = claim_running(runner_id, project_id)
    for job_id in (old, recent, running):
        jobs.append_job_logs(ME, job_id, [{"stream": "stdout", "text": "x"}])
    cancelled = claim_running(runner_id, project_id)
    jobs.cancel_job(ME, cancelled)  # Opik keeps a job cancelled while running forever (docs/opik-behaviour.md#departure-cancelled-running-expiry)
    Job.update(completed_at=now_us() - 8 * DAY).where(Job.id.in_([old, cancelled])).execute()
    Job.update(completed_at=now_us() - 6 * DAY).where(Job.id == recent).execute()  # inside the 7 days
    maintenance.reap(ctx)
    assert Job.get_or_none(Job.id == old) is None
    assert Job.get_or_none(Job.id == cancelled) is None
    assert JobLog.select().where(JobLog.job == old).count() == 0
    assert load(recent).status == JobStatus.FAILED
    assert load(running).status == JobStatus.RUNNING
    assert jobs.get_job_logs(ME, recent, 0) == [{"stream": "stdout", "text": "x"}]


# -- visibility and logs


def test_jobs_are_visible_to_the_runners_owner_only(ctx):
    runner_id, project_id = endpoint()
    job = new_job(project_id)
    assert ownership.get_job(ME, job.id).id == job.id
    for stranger in (BOB, OTHER_WORKSPACE):
        body = raises(404, ownership.get_job, stranger, job.id)
        assert body == {"code": 404, "message": f"Job not found: '{job.id}'"}
        raises(404, jobs.cancel_job, stranger, job.id)
        raises(404, jobs.report_job_result, stranger, job.id, {"status": "completed"})
        raises(404, jobs.get_job_logs, stranger, job.id, 0)
        raises(404, jobs.append_job_logs, stranger, job.id, [{"stream": "stdout", "text": "x"}])
    assert load(job.id).status == JobStatus.PENDING
    assert jobs.get_job_logs(ME, job.id, 0) == []


def test_logs_append_in_order_and_page_by_offset(ctx):
    runner_id, project_id = endpoint()
    job_id = claim_running(runner_id, project_id)
    first = [{"stream": "stdout", "text": "a"}, {"stream": "stderr", "text": "b"}]
    jobs.append_job_logs(ME, job_id, first)
    jobs.append_job_logs(ME, job_id, [])
    jobs.append_job_logs(ME, job_id, [{"stream": "stdout", "text": "c"}])
    everything = first + [{"stream": "stdout", "text": "c"}]
    assert jobs.get_job_logs(ME, job_id, 0) == everything
    assert jobs.get_job_logs(ME, job_id, 1) == everything[1:]
    assert jobs.get_job_logs(ME, job_id, 3) == []
    assert jobs.get_job_logs(ME, job_id, 99) == []


def test_too_many_log_entries_is_400_before_the_lookup(ctx):
    runner_id, project_id = endpoint()
    job_id = claim_running(runner_id, project_id)
    batch = [{"stream": "stdout", "text": str(i)} for i in range(1001)]
    expected = {"errors": ["Too many log entries. Maximum per batch is 1000"]}
    assert raises(400, jobs.append_job_logs, ME, job_id, batch) == expected
    assert raises(400, jobs.append_job_logs, ME, uuid.uuid4(), batch) == expected
    assert jobs.get_job_logs(ME, job_id, 0) == []


def test_heartbeat_of_a_connect_runner_announces_nothing(ctx):
    runner_id = activate(project(), runner_type="connect")
    assert runners.heartbeat(ctx, ME, runner_id, None) == []


# -- deep_merge (checklist PATCH, docs/opik-behaviour.md#checklist)


def test_deep_merge_merges_objects_recursively():
    base = {"a": 1, "b": {"x": 1, "y": {"k": 1, "l": 2}}, "keep": "me"}
    patch = {"b": {"y": {"l": 3, "m": 4}, "z": 5}, "c": 6}
    assert runners.deep_merge(base, patch) == {
        "a": 1,
        "b": {"x": 1, "y": {"k": 1, "l": 3, "m": 4}, "z": 5},
        "keep": "me",
        "c": 6,
    }


@pytest.mark.parametrize(
    "base, patch, expected",
    [
        ({"a": {"x": 1}}, {"a": None}, {"a": None}),  # null replaces (it does not delete)
        ({"a": [1, 2, 3]}, {"a": [4]}, {"a": [4]}),  # arrays replace, never concatenate
        ({"a": {"x": 1}}, {"a": [1]}, {"a": [1]}),
        ({"a": {"x": 1}}, {"a": "s"}, {"a": "s"}),
        ({"a": 5}, {"a": {"x": 1}}, {"a": {"x": 1}}),
        ({"a": None}, {"a": {"x": 1}}, {"a": {"x": 1}}),
        ({"a": {"x": 1}}, {"a": {}}, {"a": {"x": 1}}),  # an empty object merges to no change
        ({"a": 1}, {}, {"a": 1}),
        ({}, {"a": {"b": {"c": 1}}}, {"a": {"b": {"c": 1}}}),
        ({"a": False}, {"a": 0}, {"a": 0}),
    ],
)
def test_deep_merge_replaces_everything_but_objects(base, patch, expected):
    assert runners.deep_merge(base, patch) == expected


def test_deep_merge_leaves_its_inputs_alone():
    base = {"a": {"x": 1, "deep": {"k": [1]}}, "b": [1]}
    patch = {"a": {"y": 2, "deep": {"j": 2}}, "b": [2]}
    base_copy, patch_copy = copy.deepcopy(base), copy.deepcopy(patch)
    merged = runners.deep_merge(base, patch)
    assert base == base_copy and patch == patch_copy
    assert merged is not base
    merged["a"]["deep"]["k"].append(99)
    merged["a"]["z"] = 3
    assert "z" not in base["a"]


def nest(levels, leaf):
    value = leaf
    for _ in range(levels):
        value = {"n": value}
    return value


def test_deep_merge_is_depth_limited():
    # Shallow objects merge...
    assert runners.deep_merge(nest(5, {"old": 1}), nest(5, {"new": 2})) == nest(5, {"old": 1, "new": 2})
    # ...but past the depth limit (10) a nested object replaces the stored one wholesale.
    merged = runners.deep_merge(nest(20, {"old": 1}), nest(20, {"new": 2}))
    leaf = merged
    for _ in range(20):
        leaf = leaf["n"]
    assert leaf == {"new": 2}
