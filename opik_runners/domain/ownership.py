"""Who sees what: a runner belongs to the (workspace, user) that activated it, and a job
or bridge command is seen by whoever owns its runner (upstream's per-user runner index).
Every domain rule starts with one of these lookups; someone else's runner or job is
answered exactly like an unknown one."""
from collections import namedtuple

from peewee import fn

from ..errors import failure
from ..store.models import Job, Runner, database
from ..store.statements import Statement

Caller = namedtuple("Caller", "workspace user")


def owned(workspace, user):
    """The condition on Runner: one of (workspace, user)'s live runners (the values may be Params)."""
    return (Runner.workspace == workspace) & (Runner.user_name == user) & Runner.detached_at.is_null()


def owned_runners(workspace, user):
    """The live runners of (workspace, user), as a query (the values may be Params)."""
    return Runner.select().where(owned(workspace, user))


def owns_job_runner(workspace, user):
    """A condition on Job: its runner is one of (workspace, user)'s live runners. An EXISTS
    rather than a join, so PostgreSQL's FOR UPDATE locks the job rows alone."""
    return fn.EXISTS(owned_runners(workspace, user).select(Runner.id).where(Runner.id == Job.runner))


FIND_RUNNER = Statement(
    "find runner", lambda p: owned_runners(p.workspace, p.user).where(Runner.id == p.runner_id)
)
# The same, its row locked until the transaction ends (PostgreSQL): what a rule that counts
# the runner's rows before adding one holds while it counts.
FIND_RUNNER_LOCKED = Statement(
    "find runner, locked",
    lambda p: database.lock_rows(owned_runners(p.workspace, p.user).where(Runner.id == p.runner_id)),
)
# Lighter than FIND_RUNNER for the hot paths (listing, polls), which need no agents or
# checklist (a file tree, often) parsed.
RUNNER_COUNTERS = Statement(
    "runner counters",
    lambda p: owned_runners(p.workspace, p.user)
    .select(Runner.project_id, Runner.job_count, Runner.last_seq)
    .where(Runner.id == p.runner_id),
)
GET_JOB = Statement("get job", lambda p: Job.select().where((Job.id == p.job_id) & owns_job_runner(p.workspace, p.user)))


def find_runner(caller, runner_id, locked=False):
    """The caller's runner, or None; `locked`: its row held until the transaction ends."""
    statement = FIND_RUNNER_LOCKED if locked else FIND_RUNNER
    return statement.first(Runner, workspace=caller.workspace, user=caller.user, runner_id=runner_id)


def get_runner(caller, runner_id, locked=False):
    runner = find_runner(caller, runner_id, locked)
    if runner is None:
        raise failure(404, f"Runner not found: {runner_id}")
    return runner


def require_runner(caller, runner_id):
    """The ownership check alone: (project_id, job_count, last_seq), or 404."""
    found = RUNNER_COUNTERS.one(workspace=caller.workspace, user=caller.user, runner_id=runner_id)
    if found is None:
        raise failure(404, f"Runner not found: {runner_id}")
    return found


def get_job(caller, job_id):
    job = GET_JOB.first(Job, workspace=caller.workspace, user=caller.user, job_id=job_id)
    if job is None:
        raise failure(404, f"Job not found: '{job_id}'")
    return job
