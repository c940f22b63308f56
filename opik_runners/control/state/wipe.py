"""Wipe: delete the store's rows, or one workspace's, in one transaction of bulk deletes, in
the order every other write takes its locks (a reset, `opik-runners seed --replace`)."""
from ...store.models import BridgeCommand, BridgeRate, Job, JobLog, PairingSession, Project, Runner, Span, Trace, database


def remove_runners(runner_ids):
    """Delete runners (a query of their ids) with their jobs, logs, bridge commands and rate
    counters, in bulk; the runners' number. Call inside a transaction.

    The runners' rows are locked before their children are deleted (PostgreSQL): every write
    that takes both takes a runner's row before its jobs', commands' or counters' (a job's
    numbering, a bridge submission, an activation's eviction). Deleting the children first
    deadlocked with those: of 15 resets, each sent among 166 writes, 2 failed, and 247 of the
    writes with them (503)."""
    database.hold_rows(Runner.select(Runner.id).where(Runner.id.in_(runner_ids)))
    job_ids = Job.select(Job.id).where(Job.runner.in_(runner_ids))
    JobLog.delete().where(JobLog.job.in_(job_ids)).execute()
    Job.delete().where(Job.runner.in_(runner_ids)).execute()
    BridgeRate.delete().where(BridgeRate.runner_id.in_(runner_ids)).execute()
    BridgeCommand.delete().where(BridgeCommand.runner.in_(runner_ids)).execute()
    return Runner.delete().where(Runner.id.in_(runner_ids)).execute()


def wipe(workspace=None):
    """Delete every row of the domain (projects, runners, jobs, logs, bridge commands and
    their rate counters, pairing sessions, traces, spans), or one workspace's, in one
    transaction of bulk deletes; the number of runners removed. The control plane's own tables
    are left alone. Call with a connection open. The caller logs it once its own transaction
    commits: a reset that deadlocks runs again, and a line logged here would stay for an
    attempt rolled back."""
    def scoped(query, model):
        return query if workspace is None else query.where(model.workspace == workspace)

    with database.atomic():
        # Rows are locked in the order an activation takes them, its session, then the project,
        # then the runners (whose children every other write takes after them: remove_runners),
        # so a reset waits for the writes in flight instead of deadlocking with them (PostgreSQL).
        for model in (PairingSession, Project):
            database.hold_rows(scoped(model.select(model.id), model))
        if workspace is None:
            database.hold_rows(Runner.select(Runner.id))  # remove_runners does, for a workspace's
            # Children first: SQLite checks each foreign key of a deleted parent row.
            for model in (JobLog, Job, BridgeRate, BridgeCommand):
                model.delete().execute()
            removed = Runner.delete().execute()
        else:
            removed = remove_runners(scoped(Runner.select(Runner.id), Runner))
        for model in (PairingSession, Span, Trace, Project):
            scoped(model.delete(), model).execute()
    return removed
