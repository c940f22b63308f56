"""Runners and their jobs: every rule and state transition of behaviour notes §2-§3.

Functions take the caller (workspace, user) explicitly and raise ApiError, so they
run without HTTP; routes in api.py only parse, call one of these, and dump.
"""
import json
import logging
import re
import threading
import time
from collections import Counter, namedtuple

from flask import has_request_context
from peewee import JOIN, fn

import bridge
import schemas
import wakeups
from config import CHECKLIST_MAX_DEPTH, MAX_AGENTS_PER_RUNNER, MAX_LOG_ENTRIES_PER_BATCH, MAX_PAYLOAD_BYTES, setting
from errors import error, failure
from models import (
    SECOND,
    BridgeCommand,
    Job,
    JobLog,
    PairingSession,
    Runner,
    database,
    first,
    is_postgres,
    new_id,
    now_us,
    run,
)

log = logging.getLogger("opik_runners")

Caller = namedtuple("Caller", "workspace user")

PENDING, RUNNING, COMPLETED, FAILED, CANCELLED = "pending", "running", "completed", "failed", "cancelled"
UNFINISHED = (PENDING, RUNNING)
FINISHED = (COMPLETED, FAILED, CANCELLED)
REPORTABLE = (RUNNING, COMPLETED, FAILED)
CAPABILITY = re.compile(r"[a-z_]+")  # the whole value, as Java's String.matches
JOB_SCHEMA = schemas.JobSchema()


# -- runners


def owned_runners(caller):
    """The caller's runners: upstream's (workspace, user) runner index."""
    return Runner.select().where(
        (Runner.workspace == caller.workspace)
        & (Runner.user_name == caller.user)
        & Runner.detached_at.is_null()
    )


def find_runner(caller, runner_id):
    params = (caller.workspace, caller.user, Runner.id.db_value(runner_id))
    return first(Runner, "find_runner", lambda: owned_runners(caller).where(Runner.id == runner_id), params)


def get_runner(caller, runner_id):
    runner = find_runner(caller, runner_id)
    if runner is None:
        raise failure(404, f"Runner not found: {runner_id}")
    return runner


def require_runner(caller, runner_id):
    """The ownership check alone: (project_id, job_count, last_seq), or 404. Lighter than
    get_runner on the hot paths (listing, polls), which need no agents or checklist (a
    file tree, often) parsed."""
    params = (caller.workspace, caller.user, Runner.id.db_value(runner_id))
    build = lambda: (  # noqa: E731
        owned_runners(caller).select(Runner.project_id, Runner.job_count, Runner.last_seq).where(Runner.id == runner_id)
    )
    found = run("require_runner", build, params).fetchone()
    if found is None:
        raise failure(404, f"Runner not found: {runner_id}")
    return found


def list_runners(caller, project_id, status, page, size):
    query = owned_runners(caller).where(Runner.project_id == project_id)
    now = now_us()
    if status == "connected":
        query = query.where(Runner.heartbeat_expires_at > now)
    elif status == "disconnected":
        query = query.where(Runner.heartbeat_expires_at <= now)
    elif status == "pairing":
        return 0, []  # only the retired /pairs flow ever produced it
    total = query.count()
    rows = list(query.order_by(Runner.connected_at.desc(), Runner.id.desc()).paginate(page + 1, size))
    return total, rows


def detach_runner(runner_id, reason):
    """DELETE, eviction and purge: fail the runner's open jobs, time out its open bridge
    commands, and hide the runner."""
    now = now_us()
    with database.atomic():
        failed = len(
            change_jobs(
                (Job.runner == runner_id) & Job.status.in_(UNFINISHED),
                status=FAILED, error="Runner disconnected", completed_at=now, cancel_unannounced=False,
            )
        )
        timed_out = bridge.time_out_commands(BridgeCommand.runner == runner_id)
        Runner.update(detached_at=now, heartbeat_expires_at=now).where(
            (Runner.id == runner_id) & Runner.detached_at.is_null()
        ).execute()
    log.info(
        "runner %s detached (%s); %d open jobs failed, %d bridge commands timed out",
        runner_id, reason, failed, len(timed_out),
    )


def disconnect_runner(caller, runner_id):
    """Idempotent: an unknown or foreign runner is a no-op."""
    if find_runner(caller, runner_id) is not None:
        detach_runner(runner_id, "disconnected")


def register_agents(caller, runner_id, agents):
    require_runner(caller, runner_id)
    if len(agents) > MAX_AGENTS_PER_RUNNER:
        raise error(400, f"Too many agents. Maximum is {MAX_AGENTS_PER_RUNNER}")
    Runner.update(agents=agents).where(Runner.id == runner_id).execute()


def deep_merge(base, patch, depth=0):
    """Objects merge recursively up to CHECKLIST_MAX_DEPTH; any other value replaces."""
    merged = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and depth < CHECKLIST_MAX_DEPTH:
            merged[key] = deep_merge(merged[key], value, depth + 1)
        else:
            merged[key] = value
    return merged


def serialized_length(value):
    """The size upstream's payload limits measure: the length of the serialized JSON as a
    Java string, so UTF-16 code units (an emoji counts 2), not bytes."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-16-le")) // 2


def patch_checklist(caller, runner_id, patch):
    if not isinstance(patch, dict):
        raise error(400, "Checklist must be a JSON object")
    with database.atomic():
        runner = get_runner(caller, runner_id)
        merged = deep_merge(runner.checklist or {}, patch)
        size = serialized_length(merged)
        if size > MAX_PAYLOAD_BYTES:
            raise error(400, f"Checklist too large: {size} bytes (max {MAX_PAYLOAD_BYTES})")
        Runner.update(checklist=merged).where(Runner.id == runner_id).execute()


def heartbeat(caller, runner_id, capabilities):
    """Refresh liveness; return the ids of running jobs cancelled since the last beat."""
    runner = find_runner(caller, runner_id)
    if runner is None:
        raise error(410, f"Runner not found: {runner_id}")
    expires = now_us() + int(setting("OPIK_RUNNER_HEARTBEAT_TTL") * SECOND)
    Runner.update(heartbeat_expires_at=expires).where(Runner.id == runner_id).execute()
    if capabilities:
        bad = [c for c in capabilities if not isinstance(c, str) or not CAPABILITY.fullmatch(c)]
        if bad:
            raise error(400, f"Invalid capability value: {bad[0]}")
        Runner.update(capabilities=capabilities).where(Runner.id == runner_id).execute()
    if runner.type != "endpoint":
        return []
    # One statement takes and clears the set, so two beats never announce a job twice.
    announced = (
        Job.update(cancel_unannounced=False)
        .where((Job.runner == runner_id) & (Job.cancel_unannounced == True))  # noqa: E712
        .returning(Job.id)
        .execute()
    )
    return [row.id for row in announced]


# -- jobs


def visible_jobs(caller):
    """Jobs whose runner the caller still owns."""
    return (
        Job.select()
        .join(Runner)
        .where(
            (Runner.workspace == caller.workspace)
            & (Runner.user_name == caller.user)
            & Runner.detached_at.is_null()
        )
    )


def get_job(caller, job_id):
    params = (caller.workspace, caller.user, Job.id.db_value(job_id))
    job = first(Job, "get_job", lambda: visible_jobs(caller).where(Job.id == job_id), params)
    if job is None:
        raise failure(404, f"Job not found: '{job_id}'")
    return job


def render(job):
    return json.dumps(JOB_SCHEMA.dump(job), separators=(",", ":"), ensure_ascii=False)


def apply(job, **changes):
    """The one way a job changes: set the fields, re-render its document, write both.
    Call inside a transaction that holds the row (SQLite's write lock, or FOR UPDATE)."""
    for name, value in changes.items():
        setattr(job, name, value)
    job.document = render(job)
    columns = [Job.status, Job.result, Job.error, Job.trace_id, Job.started_at, Job.completed_at,
               Job.cancel_unannounced, Job.document]
    params = [c.db_value(getattr(job, c.name)) for c in columns] + [Job.id.db_value(job.id)]
    update = lambda: Job.update({c: getattr(job, c.name) for c in columns}).where(Job.id == job.id)  # noqa: E731
    run("apply", update, params)
    return job


def change_jobs(where, **changes):
    """Apply `changes` to every job matching `where`, atomically; return the changed jobs."""
    with database.atomic():
        query = Job.select().where(where)
        if is_postgres():
            query = query.for_update()
        return [apply(job, **changes) for job in query]


def unfinished_jobs(caller):
    """The caller's pending and running jobs. Ownership is an EXISTS on the runner rather
    than a join, so PostgreSQL's FOR UPDATE locks the job rows alone."""
    owned = Runner.select(Runner.id).where(
        (Runner.id == Job.runner)
        & (Runner.workspace == caller.workspace)
        & (Runner.user_name == caller.user)
        & Runner.detached_at.is_null()
    )
    return Job.select().where(Job.status.in_(UNFINISHED) & fn.EXISTS(owned))


def locked_unfinished_job(caller, job_id):
    """The caller's job if it is still pending or running, locked for a change (inside a transaction)."""

    def build():
        query = unfinished_jobs(caller).where(Job.id == job_id)
        return query.for_update() if is_postgres() else query

    params = (*UNFINISHED, caller.workspace, caller.user, Job.id.db_value(job_id))
    return first(Job, "unfinished_job", build, params)


def job_page(caller, runner_id, skip, size):
    """The runner's (project_id, job_count, last_seq) beside each job document of the page
    (one row with no document when the page is empty or the seqs have gaps)."""
    newest, oldest = Runner.job_count - skip, Runner.job_count - (skip + size)
    no_gaps = Runner.last_seq == Runner.job_count
    in_page = (Job.runner == Runner.id) & no_gaps & (Job.seq <= newest) & (Job.seq > oldest)
    return (
        owned_runners(caller)
        .select(Runner.project_id, Runner.job_count, Runner.last_seq, Job.document)
        .join(Job, JOIN.LEFT_OUTER, on=in_page)
        .where(Runner.id == runner_id)
        .order_by(Job.seq.desc())
    )


def list_jobs(caller, runner_id, project_id, page, size):
    """(total, documents) of one page, newest first. A runner serves one project, so the
    project filter keeps all of its jobs or none.

    One statement checks ownership, reads the counters and the page: the runner's
    `job_count` gives `total`, and while no job has expired (`last_seq == job_count`)
    job seqs are 1..job_count, so any page is one index range, however deep.
    """
    skip = page * size
    params = (skip, skip + size, caller.workspace, caller.user, Runner.id.db_value(runner_id))
    build = lambda: job_page(caller, runner_id, skip, size)  # noqa: E731
    rows = run("page", build, params).fetchall()
    if not rows:
        raise failure(404, f"Runner not found: {runner_id}")
    runner_project, job_count, last_seq, _ = rows[0]
    if project_id is not None and Runner.project_id.python_value(runner_project) != project_id:
        return 0, []
    if last_seq == job_count:
        return job_count, [document for *_, document in rows if document is not None]
    # Expired jobs left gaps in the seqs: count past them.
    query = Job.select(Job.document).where(Job.runner == runner_id).order_by(Job.seq.desc())
    return job_count, [document for (document,) in query.limit(size).offset(skip).tuples()]


def active_runner(caller, project_id, runner_type):
    """The (workspace, project, user, type) runner that new work is routed to (a query)."""
    return (
        owned_runners(caller)
        .where((Runner.project_id == project_id) & (Runner.type == runner_type))
        .order_by(Runner.connected_at.desc())
        .limit(1)
    )


def create_job(caller, data):
    """Route a job to the caller's active endpoint runner for the project (checks in upstream order)."""
    with database.atomic():
        params = (caller.workspace, caller.user, Runner.project_id.db_value(data["project_id"]), "endpoint", 1)
        build = lambda: active_runner(caller, data["project_id"], "endpoint")  # noqa: E731
        runner = first(Runner, "active_runner", build, params)
        if runner is None:
            raise error(404, "No runner configured. Pair one from the Runners page.")
        if runner.status != "connected":
            raise error(409, "Your runner is not connected. Start it with: opik connect")
        agent = runner.agents.get(data["agent_name"])
        if agent is None:
            raise error(400, f"Agent '{data['agent_name']}' is not registered on this runner")
        params = (Job.runner.db_value(runner.id), PENDING)
        build = lambda: Job.select(fn.COUNT(Job.id)).where((Job.runner == runner.id) & (Job.status == PENDING))  # noqa: E731
        (pending,) = run("pending_count", build, params).fetchone()
        if pending >= setting("OPIK_RUNNER_MAX_PENDING"):
            raise error(429, "Too many pending jobs for this runner")
        params = (1, 1, Runner.id.db_value(runner.id))
        build = lambda: (  # noqa: E731
            Runner.update(job_count=Runner.job_count + 1, last_seq=Runner.last_seq + 1)
            .where(Runner.id == runner.id)
            .returning(Runner.last_seq)
        )
        (last_seq,) = run("count_job", build, params).fetchone()
        timeout = agent.get("timeout") or 0
        job = Job(
            id=new_id(),
            runner=runner.id,
            seq=last_seq,
            timeout=timeout if timeout > 0 else int(setting("OPIK_RUNNER_JOB_TIMEOUT")),
            created_at=now_us(),
            **data,
        )
        job.document = render(job)
        # Values from __data__: getattr on the runner foreign key would load the Runner row.
        values = {field: job.__data__.get(field.name) for field in Job._meta.sorted_fields}
        params = [field.db_value(value) for field, value in values.items()]
        build = lambda: Job.insert(values)  # noqa: E731
        run("insert_job", build, params)
        wakeups.notify(("jobs", runner.id))
    log.info("job %s created for runner %s (agent %s)", job.id, runner.id, job.agent_name)
    return job


def claim_next_job(runner_id):
    """Move the oldest pending job to running, or return None. One short write transaction:
    SQLite's BEGIN IMMEDIATE makes it exclusive; PostgreSQL skips rows another claim holds."""
    def oldest_pending():
        return Job.select().where((Job.runner == runner_id) & (Job.status == PENDING)).order_by(Job.seq).limit(1)

    def oldest_pending_locked():
        query = oldest_pending()
        return query.for_update("FOR UPDATE SKIP LOCKED") if is_postgres() else query

    params = (Job.runner.db_value(runner_id), PENDING, 1)
    # A plain read first: an idle poll never takes the write lock.
    peek = lambda: oldest_pending().select(Job.id)  # noqa: E731
    if run("peek_pending", peek, params).fetchone() is None:
        return None
    with database.atomic():
        job = first(Job, "claim", oldest_pending_locked, params)
        if job is None:
            return None
        apply(job, status=RUNNING, started_at=now_us())
    log.info("job %s claimed by runner %s", job.id, runner_id)
    return job


def next_job(caller, runner_id):
    """Long-poll: the claimed job, or None once the poll timeout passes."""
    require_runner(caller, runner_id)
    return wakeups.poll(
        ("jobs", runner_id),
        lambda: claim_next_job(runner_id),
        setting("OPIK_RUNNER_NEXT_JOB_POLL_TIMEOUT"),
        release=release_connection,
    )


def release_connection():
    """Hand the request's connection back to the pool while it waits; the next query takes
    one again. (Outside a request, e.g. in a `connection_context`, the owner closes it.)"""
    if has_request_context() and not database.in_transaction():
        database.close()


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
        job = locked_unfinished_job(caller, job_id)
        if job is None:
            # Someone else's job: 404. A job finished meanwhile ignores the report (204, no 409).
            get_job(caller, job_id)
            return
        apply(job, **changes)
    if "status" in changes:
        log.info("job %s %s", job.id, changes["status"])


def cancel_job(caller, job_id):
    with database.atomic():
        job = locked_unfinished_job(caller, job_id)
        if job is None:
            get_job(caller, job_id)  # someone else's job: 404; finished already: a no-op
            return
        # A pending job just leaves the queue; a running one is also announced to its
        # runner on the next heartbeat, since only the runner can stop it.
        was = job.status
        apply(job, status=CANCELLED, completed_at=now_us(), cancel_unannounced=was == RUNNING)
    log.info("job %s cancelled while %s", job.id, was)


def get_job_logs(caller, job_id, offset):
    job = get_job(caller, job_id)
    query = JobLog.select(JobLog.stream, JobLog.text).where(JobLog.job == job.id).order_by(JobLog.id)
    return list(query.offset(offset).dicts())


def append_job_logs(caller, job_id, entries):
    if len(entries) > MAX_LOG_ENTRIES_PER_BATCH:
        raise error(400, f"Too many log entries. Maximum per batch is {MAX_LOG_ENTRIES_PER_BATCH}")
    job = get_job(caller, job_id)
    if entries:
        with database.atomic():
            JobLog.insert_many([{"job": job.id, **entry} for entry in entries]).execute()


# -- the reaper (behaviour notes §2, §5)

_reaper_lock = threading.Lock()
_last_reap = [0.0]


def reap():
    """One reaper cycle: time out stuck jobs, purge long-dead runners, expire old rows."""
    now = now_us()
    for job in Job.select(Job.id, Job.timeout, Job.started_at).where(
        (Job.status == RUNNING) & (Job.started_at + Job.timeout * SECOND < now)
    ):
        if change_jobs(
            (Job.id == job.id) & (Job.status == RUNNING),
            status=FAILED, error=f"Job timed out after {job.timeout}s", completed_at=now,
        ):
            log.info("job %s timed out after %ss", job.id, job.timeout)
    purge_before = now - int(setting("OPIK_RUNNER_DEAD_PURGE_HOURS") * SECOND)
    for runner in Runner.select(Runner.id).where(
        Runner.detached_at.is_null() & (Runner.heartbeat_expires_at <= purge_before)
    ):
        detach_runner(runner.id, "purged after staying dead")
    bridge.reap_commands()
    expire_before = now - int(setting("OPIK_RUNNER_COMPLETED_JOB_TTL") * SECOND)
    with database.atomic():
        expired = Job.delete().where(Job.status.in_(FINISHED) & (Job.completed_at < expire_before))
        for runner_id, count in Counter(row.runner_id for row in expired.returning(Job.runner).execute()).items():
            Runner.update(job_count=Runner.job_count - count).where(Runner.id == runner_id).execute()
        # A detached runner's jobs are invisible already; drop the row once they would have expired.
        Runner.delete().where(Runner.detached_at < expire_before).execute()
        PairingSession.delete().where(PairingSession.expires_at < now).execute()
        wakeups.prune()
    for runner in Runner.select(Runner.id).where(Runner.last_seq != Runner.job_count):
        renumber_jobs(runner.id)


def renumber_jobs(runner_id):
    """Close the gaps expired jobs left in a runner's numbering, so every listing page is
    an index seek again. Serialized with job creation by the runner row's lock."""
    with database.atomic():
        runner = Runner.select().where(Runner.id == runner_id)
        if is_postgres():
            runner = runner.for_update()
        runner = runner.first()
        if runner is None:
            return
        ranked = (
            Job.select(Job.id, fn.row_number().over(order_by=[Job.seq]).alias("position"))
            .where(Job.runner == runner_id)
            .alias("ranked")
        )
        Job.update(seq=ranked.c.position).from_(ranked).where(Job.id == ranked.c.id).execute()
        Runner.update(last_seq=Runner.job_count).where(Runner.id == runner_id).execute()


def reap_if_due():
    """Run the reaper at most once per interval per process, from whichever request comes first."""
    interval = setting("OPIK_RUNNER_REAPER_INTERVAL")
    if time.monotonic() - _last_reap[0] < interval or not _reaper_lock.acquire(blocking=False):
        return
    try:
        _last_reap[0] = time.monotonic()
        reap()
    finally:
        _reaper_lock.release()
