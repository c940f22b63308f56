"""Jobs: creation and routing, the claim, results, cancellation, logs and the listing
(docs/opik-behaviour.md#runner-status, docs/opik-behaviour.md#job-states,
docs/opik-behaviour.md#jobs). Functions take the settings and the caller they need and raise
ApiError, so they run without HTTP; api.py only parses and dumps."""
import functools
import json
import logging

from peewee import SQL, IntegrityError, NodeList, Select, fn

from . import polls
from ..errors import error, failure
from .limits import MAX_LOG_ENTRIES_PER_BATCH
from ..store.models import SECOND, Job, JobLog, Runner, database, new_id, now_us
from .ownership import get_job, owned_runners, owns_job_runner, require_runner
from ..schemas.responses import JobSchema
from ..store.statements import Param, Statement, columns

log = logging.getLogger(__name__)

PENDING, RUNNING, COMPLETED, FAILED, CANCELLED = "pending", "running", "completed", "failed", "cancelled"
UNFINISHED = (PENDING, RUNNING)
FINISHED = (COMPLETED, FAILED, CANCELLED)
STATUSES = (PENDING, RUNNING, COMPLETED, FAILED, CANCELLED)
REPORTABLE = (RUNNING, COMPLETED, FAILED)
JOB_SCHEMA = JobSchema()
# What a job's life changes, rewritten together with its rendered document.
CHANGEABLE = (Job.status, Job.result, Job.error, Job.trace_id, Job.started_at, Job.completed_at,
              Job.cancel_unannounced, Job.document)


def oldest_pending(runner_id):
    return Job.select().where((Job.runner == runner_id) & (Job.status == PENDING)).order_by(Job.seq).limit(1)


# The (workspace, project, user) endpoint runner new jobs are routed to: the newest activated.
ACTIVE_ENDPOINT_RUNNER = Statement(
    "active endpoint runner",
    lambda p: owned_runners(p.workspace, p.user)
    .where((Runner.project_id == p.project_id) & (Runner.type == "endpoint"))
    .order_by(Runner.connected_at.desc())
    .limit(1),
)
# The new job's number. On PostgreSQL the UPDATE takes the runner's row lock, and every job
# created for the runner waits for it until the commit. No number for a runner detached (a new
# pairing evicted it, a DELETE, a reset) since the job was routed to it: PostgreSQL re-checks
# the condition on the row it waited for.
NUMBER_NEW_JOB = Statement(
    "number a new job",
    lambda p: Runner.update(job_count=Runner.job_count + 1, last_seq=Runner.last_seq + 1)
    .where((Runner.id == p.runner_id) & Runner.detached_at.is_null())
    .returning(Runner.last_seq),
)
# The insert, made only while fewer than `max_pending` jobs wait for the runner: the limit is
# counted in a statement that begins after the numbering took the runner's lock. (On PostgreSQL a
# statement reads what was committed when it began; counted in the numbering's own RETURNING,
# which began before it waited for the lock, it missed the jobs created meanwhile: a limit of 5
# let 6-19 through with 200 created at once: test_scale_out.py, the pending cap.)
INSERT_JOB_UNDER_LIMIT = Statement(
    "insert job under the pending limit",
    lambda p: Job.insert_from(
        Select(columns=list(columns(Job).values())).where(
            Job.select(fn.COUNT(Job.id)).where((Job.runner == Param("runner", Job.runner)) & (Job.status == PENDING))
            < p.max_pending
        ),
        Job._meta.sorted_fields,
    ),
)
# A plain read first: an idle poll never takes the write lock.
PEEK_PENDING = Statement("peek pending job", lambda p: oldest_pending(p.runner_id).select(Job.id))
CLAIM = Statement("claim oldest pending job", lambda p: database.claim_rows(oldest_pending(p.runner_id)))
UPDATE_JOB = Statement(
    "update job", lambda p: Job.update(columns(Job, *CHANGEABLE)).where(Job.id == Param("id", Job.id))
)
UNFINISHED_JOB = Statement(
    "caller's unfinished job, locked",
    lambda p: database.lock_rows(
        Job.select().where((Job.id == p.job_id) & Job.status.in_(UNFINISHED) & owns_job_runner(p.workspace, p.user))
    ),
)
# One statement takes and clears the set, so two beats never announce a job twice.
# Only a job cancelled while running is announced, so the search stays in the runner's cancelled
# jobs ((runner, status, seq)), not all of them; and a plain read first, so that the heartbeat of
# a runner with nothing to announce (nearly every one) writes nothing here.
def cancel_unannounced(p):
    return (Job.runner == p.runner_id) & (Job.status == CANCELLED) & (Job.cancel_unannounced == True)  # noqa: E712


def any_cancel_announcement(p):
    """EXISTS: a cancel waits to be announced to runner `p.runner_id` (the heartbeat returns it)."""
    return NodeList((SQL("EXISTS"), Job.select(Job.id).where(cancel_unannounced(p)).limit(1)))


TAKE_CANCEL_ANNOUNCEMENTS = Statement(
    "take cancel announcements",
    lambda p: Job.update(cancel_unannounced=False).where(cancel_unannounced(p)).returning(Job.id),
)
LOGS = Statement(
    "job logs",
    lambda p: JobLog.select(JobLog.stream, JobLog.text).where(JobLog.job == p.job_id).order_by(JobLog.id)
    .offset(p.offset),
)


# -- writing a job


def render(job):
    """The job as the API shows it (JobSchema's JSON), stored with it."""
    return json.dumps(JOB_SCHEMA.dump(job), separators=(",", ":"), ensure_ascii=False)


def apply(job, **changes):
    """The one way a job changes: set the fields, re-render its document, write both.
    Call inside a transaction that holds the row (SQLite's write lock, or lock_rows)."""
    for name, value in changes.items():
        setattr(job, name, value)
    job.document = render(job)
    UPDATE_JOB.execute(id=job.id, **{field.name: getattr(job, field.name) for field in CHANGEABLE})
    return job


def change_jobs(where, **changes):
    """Apply `changes` to every job matching `where`, atomically; return the changed jobs."""
    with database.atomic():
        return [apply(job, **changes) for job in database.lock_rows(Job.select().where(where))]


def fail_open_jobs(runner_id, reason, now):
    """Fail the runner's pending and running jobs (its runner is gone); their number."""
    changed = change_jobs(
        (Job.runner == runner_id) & Job.status.in_(UNFINISHED),
        status=FAILED, error=reason, completed_at=now, cancel_unannounced=False,
    )
    return len(changed)


NO_RUNNER = "No runner configured. Pair one from the Runners page."


def route_job(caller, data):
    """The caller's active endpoint runner for the project and the job's agent on it, or the
    error upstream answers (checks in its order)."""
    runner = ACTIVE_ENDPOINT_RUNNER.first(Runner, workspace=caller.workspace, user=caller.user,
                                          project_id=data["project_id"])
    if runner is None:
        raise error(404, NO_RUNNER)
    if runner.status != "connected":
        raise error(409, "Your runner is not connected. Start it with: opik connect")
    agent = runner.agents.get(data["agent_name"])
    if agent is None:
        raise error(400, f"Agent '{data['agent_name']}' is not registered on this runner")
    return runner, agent


def create_job(settings, caller, data):
    """Route a job to the caller's active endpoint runner for the project (checks in upstream order)."""
    with database.atomic():
        # Routed again, once, if the runner was detached meanwhile (PostgreSQL: NUMBER_NEW_JOB);
        # the second routing is a statement of its own, so it sees the detach and the runner
        # paired in its place.
        for _ in range(2):
            runner, agent = route_job(caller, data)
            # The wake-up is sent at commit, wherever it is asked for; asked for before the
            # runner's row is locked (NUMBER_NEW_JOB), it keeps that lock one round trip shorter,
            # and every job created for the runner waits for it (PostgreSQL; SQLite holds one
            # lock for all).
            database.notify(("jobs", runner.id))
            numbered = NUMBER_NEW_JOB.one(runner_id=runner.id)
            if numbered is not None:
                break
        else:
            raise error(404, NO_RUNNER)
        (seq,) = numbered
        timeout = agent.get("timeout") or 0
        job = Job(
            id=new_id(),
            runner=runner.id,
            seq=seq,
            timeout=timeout if timeout > 0 else int(settings.job_timeout),
            created_at=now_us(),
            **data,
        )
        job.document = render(job)
        # Values from __data__: getattr on the runner foreign key would load the Runner row.
        values = {field.name: job.__data__.get(field.name) for field in Job._meta.sorted_fields}
        if not INSERT_JOB_UNDER_LIMIT.execute(max_pending=settings.max_pending_jobs, **values).rowcount:
            raise error(429, "Too many pending jobs for this runner")  # atomic() rolls back the number
    log.info("job %s created for runner %s (agent %s)", job.id, runner.id, job.agent_name)
    return job


# -- the runner's side


def claim_next_job(runner_id):
    """Move the oldest pending job to running, or return None. One short write transaction:
    SQLite's BEGIN IMMEDIATE makes it exclusive; PostgreSQL skips rows another claim holds."""
    if PEEK_PENDING.one(runner_id=runner_id) is None:
        return None
    with database.atomic():
        job = CLAIM.first(Job, runner_id=runner_id)
        if job is None:
            return None
        apply(job, status=RUNNING, started_at=now_us())
    log.info("job %s claimed by runner %s", job.id, runner_id)
    return job


def next_job(settings, caller, runner_id):
    """Long-poll: the claimed job, or None once the poll timeout passes."""
    require_runner(caller, runner_id)
    return polls.wait_for_claim("jobs", runner_id, functools.partial(claim_next_job, runner_id),
                                settings.job_poll_timeout, database.hand_back_connection, made_at=job_created_at)


def job_created_at(job):
    return job.created_at


def take_cancel_announcements(runner_id):
    """The running jobs cancelled since the runner's last heartbeat, now announced."""
    return [job.id for job in TAKE_CANCEL_ANNOUNCEMENTS.all(Job, runner_id=runner_id)]


def report_job_result(caller, job_id, report):
    if report["status"] not in REPORTABLE:
        raise error(400, f"Invalid result status. Must be one of: [{', '.join(REPORTABLE)}]")
    changes = {k: report[k] for k in ("result", "error", "trace_id") if report.get(k) is not None}
    if report["status"] != RUNNING:
        changes.update(status=report["status"], completed_at=now_us())
    if not changes:
        get_job(caller, job_id)  # still 404 for someone else's job
        return
    with database.atomic():
        job = UNFINISHED_JOB.first(Job, workspace=caller.workspace, user=caller.user, job_id=job_id)
        if job is None:
            # Someone else's job: 404. A job finished meanwhile ignores the report (204, no 409).
            get_job(caller, job_id)
            return
        apply(job, **changes)
    if "status" in changes:
        log.info("job %s %s", job.id, changes["status"])


def cancel_job(caller, job_id):
    with database.atomic():
        job = UNFINISHED_JOB.first(Job, workspace=caller.workspace, user=caller.user, job_id=job_id)
        if job is None:
            get_job(caller, job_id)  # someone else's job: 404; finished already: a no-op
            return
        # A pending job just leaves the queue; a running one is also announced to its
        # runner on the next heartbeat, since only the runner can stop it.
        was = job.status
        apply(job, status=CANCELLED, completed_at=now_us(), cancel_unannounced=was == RUNNING)
    log.info("job %s cancelled while %s", job.id, was)


# -- logs


def get_job_logs(caller, job_id, offset):
    job = get_job(caller, job_id)
    return [{"stream": stream, "text": text} for stream, text in LOGS.execute(job_id=job.id, offset=offset)]


def append_job_logs(caller, job_id, entries):
    if len(entries) > MAX_LOG_ENTRIES_PER_BATCH:
        raise error(400, f"Too many log entries. Maximum per batch is {MAX_LOG_ENTRIES_PER_BATCH}")
    job = get_job(caller, job_id)
    if entries:
        try:
            with database.atomic():
                JobLog.insert_many([{"job": job.id, **entry} for entry in entries]).execute()
        except IntegrityError:  # the job's foreign key: deleted since it was read (expired, reset)
            raise failure(404, f"Job not found: '{job_id}'") from None


# -- the listing


# -- the reaper's part (maintenance.py runs it)


def time_out_running_jobs(now):
    """Fail running jobs past their timeout; their number."""
    timed_out = 0
    # Read whole before writing: a SELECT still being stepped keeps its connection on the snapshot
    # it began at, and once another connection commits, SQLite refuses that connection's
    # BEGIN IMMEDIATE as busy for as long as the SELECT stays open (the reaper stalled so, once
    # the control plane's listeners committed beside it).
    stuck = list(Job.select(Job.id, Job.timeout).where(
        (Job.status == RUNNING) & (Job.started_at + Job.timeout * SECOND < now)
    ))
    for job in stuck:
        if change_jobs(
            (Job.id == job.id) & (Job.status == RUNNING),
            status=FAILED, error=f"Job timed out after {job.timeout}s", completed_at=now,
        ):
            timed_out += 1
            log.info("job %s timed out after %ss", job.id, job.timeout)
    return timed_out


EXPIRE_RUNNERS_PER_DELETE = 500  # well under SQLite's bound parameters per statement (32,766)


def expire_finished_jobs(before):
    """Delete jobs (and their logs) finished before `before`, keeping the runners' counts; their number."""
    finished = Job.status.in_(FINISHED) & (Job.completed_at < before)
    with database.atomic():
        # Their runners' rows first, in key order, as a reset takes them before their jobs
        # (state.remove_runners; PostgreSQL). The deletes name the runners locked: a job that
        # matches only now (a seed's old completed_at, the clock moved back) waits for a cycle.
        runner_ids = [runner.id for runner in database.lock_rows(
            Runner.select(Runner.id).where(Runner.id.in_(Job.select(Job.runner).where(finished))).order_by(Runner.id)
        )]
        per_runner = {}
        for start in range(0, len(runner_ids), EXPIRE_RUNNERS_PER_DELETE):
            expired = Job.delete().where(finished & Job.runner.in_(runner_ids[start:start + EXPIRE_RUNNERS_PER_DELETE]))
            for row in expired.returning(Job.runner).execute():
                per_runner[row.runner_id] = per_runner.get(row.runner_id, 0) + 1
        for runner_id, count in per_runner.items():
            Runner.update(job_count=Runner.job_count - count).where(Runner.id == runner_id).execute()
    return sum(per_runner.values())


def renumber_jobs(runner_id):
    """Close the gaps expired jobs left in a runner's numbering, so every listing page is
    an index seek again. Serialized with job creation by the runner row's lock."""
    with database.atomic():
        runner = database.lock_rows(Runner.select(Runner.id).where(Runner.id == runner_id)).first()
        if runner is None:
            return
        ranked = (
            Job.select(Job.id, fn.row_number().over(order_by=[Job.seq]).alias("position"))
            .where(Job.runner == runner_id)
            .alias("ranked")
        )
        Job.update(seq=ranked.c.position).from_(ranked).where(Job.id == ranked.c.id).execute()
        Runner.update(last_seq=Runner.job_count).where(Runner.id == runner_id).execute()


def renumber_gapped_runners():
    for runner in list(Runner.select(Runner.id).where(Runner.last_seq != Runner.job_count)):  # whole: see above
        renumber_jobs(runner.id)
