"""Every query on a hot path is served by an index: no full table scans (SQLite's plan)."""
import re
import uuid

import pytest

import models
import runners
from models import Job, JobLog, PairingSession, Runner, now_us
from runners import Caller

from server import POSTGRES_URL, fresh_database_url

CALLER = Caller("default", "admin")
RID, JID, PID = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def plan(query):
    sql, params = query.sql()
    rows = models.database.execute_sql(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
    return [row[-1] for row in rows]


QUERIES = {
    "listing": lambda: runners.job_page(CALLER, RID, 50_000, 25),
    "listing after expiries": lambda: Job.select(Job.document)
    .where(Job.runner == RID)
    .order_by(Job.seq.desc())
    .limit(25)
    .offset(50),
    "claim": lambda: Job.select()
    .where((Job.runner == RID) & (Job.status == "pending"))
    .order_by(Job.seq)
    .limit(1),
    "job visibility": lambda: runners.visible_jobs(CALLER).where(Job.id == JID),
    "job to change": lambda: runners.unfinished_jobs(CALLER).where(Job.id == JID),
    "runner ownership": lambda: runners.owned_runners(CALLER).where(Runner.id == RID),
    "runners listing": lambda: runners.owned_runners(CALLER)
    .where(Runner.project_id == PID)
    .order_by(Runner.connected_at.desc()),
    "active runner": lambda: runners.owned_runners(CALLER).where(
        (Runner.project_id == PID) & (Runner.type == "endpoint")
    ),
    "logs": lambda: JobLog.select().where(JobLog.job == JID).order_by(JobLog.id).offset(10),
    "reaper: stuck jobs": lambda: Job.select().where(
        (Job.status == "running") & (Job.started_at + Job.timeout * 1_000_000 < now_us())
    ),
    "reaper: dead runners": lambda: Runner.select().where(
        Runner.detached_at.is_null() & (Runner.heartbeat_expires_at <= now_us())
    ),
    "reaper: finished jobs": lambda: Job.select().where(
        Job.status.in_(["completed", "failed", "cancelled"]) & (Job.completed_at < now_us())
    ),
    "reaper: sessions": lambda: PairingSession.select().where(PairingSession.expires_at < now_us()),
}


# The plans read here are SQLite's; PostgreSQL plans by statistics, not by shape.
@pytest.mark.skipif(bool(POSTGRES_URL), reason="SQLite query plans")
@pytest.mark.parametrize("name", QUERIES)
def test_query_uses_an_index(app, name):
    with app.app_context(), models.database.connection_context():
        steps = plan(QUERIES[name]())
    # "SEARCH ... USING INDEX" narrows by the index; any "SCAN" walks a whole table or index.
    assert not [step for step in steps if step.startswith("SCAN")], f"{name}: {steps}"
    # (A line naming a subquery only announces the SEARCH steps under it.)
    announces = re.compile(r"(CORRELATED )?SCALAR SUBQUERY( \d+)?")
    assert all(step.startswith("SEARCH") or "TEMP B-TREE" in step or announces.fullmatch(step) for step in steps), (
        f"{name}: {steps}"
    )


def test_schema_creation_is_idempotent(make_app, tmp_path):
    url = fresh_database_url(tmp_path)
    make_app(DATABASE_URL=url)
    make_app(DATABASE_URL=url)  # a second start on the same database must not fail
    with models.database.connection_context():
        assert set(models.database.get_tables()) >= {"runner", "job", "job_log", "pairing_session", "project"}
