"""What the database holds, counted for the metrics (metrics.py reads it at each scrape):
runners by status, jobs by status and the pending depth, the journal's size. Each is one
statement over an index; with a settings object and an open connection, no Flask."""
from peewee import SQL, fn

from ..store.models import Job, JournalEntry, Runner, now_us
from ..settings import admin_enabled
from ..store.statements import Statement

# Live runners (not detached) on either side of now: two ranges of (detached_at, heartbeat_expires_at).
RUNNERS_CONNECTED = Statement("count connected runners", lambda p: Runner.select(fn.COUNT(SQL("*"))).where(
    Runner.detached_at.is_null() & (Runner.heartbeat_expires_at > p.now)))
RUNNERS_DISCONNECTED = Statement("count disconnected runners", lambda p: Runner.select(fn.COUNT(SQL("*"))).where(
    Runner.detached_at.is_null() & (Runner.heartbeat_expires_at <= p.now)))
# Pending and running jobs are few: a range of (status, completed_at) each. Finished ones are
# counted from the runners' job_count (every job the store holds) less those: counting a million
# completed jobs by status took 57 ms warm and 610 ms cold on the benchmark's store, and a worker
# waits for SQLite meanwhile; the runners' sum took 2 ms.
JOBS_IN_STATUS = Statement("count jobs in a status", lambda p: Job.select(fn.COUNT(SQL("*"))).where(
    Job.status == p.status))
JOBS_HELD = Statement("count jobs held", lambda p: Runner.select(fn.COALESCE(fn.SUM(Runner.job_count), 0)))
JOURNAL_ENTRIES = Statement("count journal entries", lambda p: JournalEntry.select(fn.COUNT(SQL("*"))))


def database_state(settings):
    """{metric name: (help, label name or None, {label value: number})}."""
    now = now_us()
    jobs = {status: JOBS_IN_STATUS.one(status=status)[0] for status in ("pending", "running")}
    jobs["finished"] = JOBS_HELD.one()[0] - jobs["pending"] - jobs["running"]
    state = {
        "opik_runners_runners": ("Runners not detached, by status (a heartbeat within its time-to-live: connected)",
                                 "status", {"connected": RUNNERS_CONNECTED.one(now=now)[0],
                                            "disconnected": RUNNERS_DISCONNECTED.one(now=now)[0]}),
        "opik_runners_jobs": ("Jobs the store holds: pending, running, and finished (completed, failed or "
                              "cancelled, until they expire)", "status", jobs),
        "opik_runners_pending_jobs": ("Jobs waiting for a runner to claim them", None, {"": jobs["pending"]}),
    }
    if admin_enabled(settings) and settings.journal_size > 0:
        state["opik_runners_journal_entries"] = (
            "Entries in the request journal (written; a worker's last 50 ms may still be buffered)", None,
            {"": JOURNAL_ENTRIES.one()[0]})
    return state
