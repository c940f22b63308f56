"""Every query on a hot path is served by an index: no full table scans (SQLite's plan).

Each named statement (statements.Statement) is read with EXPLAIN QUERY PLAN as it is
compiled for SQLite, so a new statement is checked the moment it is written; the
reaper's queries, which are built as they run, are listed below."""
import re
import uuid

import pytest

from opik_runners.domain import bridge, jobs, listing, maintenance, ownership, runners  # noqa: F401
from opik_runners.control import shared as control, faults, journal  # noqa: F401
from opik_runners.store.models import BridgeCommand, Job, PairingSession, Runner, database, now_us
from opik_runners.store.statements import Statement
from tests.support.databases import POSTGRES_URL, fresh_database_url

# Statements that read a single row by primary key or write one: nothing to index.
BY_KEY = {"start maintenance cycle", "last maintenance start", "insert journal entry",
          "server process seen",
          # server_process holds a row per live worker: a handful, read only by an admin change.
          "live processes behind a generation",
          # The journal holds at most OPIK_RUNNERS_JOURNAL_SIZE rows (10,000); counted once a metrics scrape.
          "count journal entries",
          # A row per live runner (thousands at most); summed once a metrics scrape (2 ms for 1,000).
          "count jobs held"}
REAPER = {
    "stuck jobs": lambda: Job.select().where(
        (Job.status == "running") & (Job.started_at + Job.timeout * 1_000_000 < now_us())
    ),
    "dead runners": lambda: Runner.select().where(Runner.detached_at.is_null() & (Runner.heartbeat_expires_at <= now_us())),
    "finished jobs": lambda: Job.select().where(
        Job.status.in_(["completed", "failed", "cancelled"]) & (Job.completed_at < now_us())
    ),
    "sessions": lambda: PairingSession.select().where(PairingSession.expires_at < now_us()),
    "stale bridge commands": lambda: BridgeCommand.select().where(
        (BridgeCommand.status == "picked_up") & (BridgeCommand.picked_up_at + BridgeCommand.timeout_seconds < 5)
    ),
    "runners of a project": lambda: ownership.owned_runners("default", "admin")
    .where(Runner.project_id == uuid.uuid4())
    .order_by(Runner.connected_at.desc()),
}


def plan(sql, params):
    return [row[-1] for row in database.execute_sql(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()]


# The filtered listing merges one bounded search per status: SQLite names each as a
# co-routine and "scans" its output (at most a page's end of rows), not a table. A job's insert
# under the pending limit is INSERT ... SELECT of its values: a "constant row", not a table.
COROUTINE = re.compile(r"SCAN newest_\d+|SCAN CONSTANT ROW")


def assert_indexed(name, steps):
    # "SEARCH ... USING INDEX" narrows by the index; any "SCAN" walks a whole table or index.
    assert not [step for step in steps if step.startswith("SCAN") and not COROUTINE.fullmatch(step)], f"{name}: {steps}"
    # (A line naming a subquery or a merge only announces the SEARCH steps under it.)
    announces = re.compile(r"(CORRELATED )?SCALAR SUBQUERY( \d+)?|LIST SUBQUERY \d+|MERGE \(UNION ALL\)|LEFT|RIGHT"
                           r"|CO-ROUTINE newest_\d+|SCAN newest_\d+|SCAN CONSTANT ROW")
    assert all(step.startswith("SEARCH") or "TEMP B-TREE" in step or announces.fullmatch(step) for step in steps), (
        f"{name}: {steps}"
    )


# The plans read here are SQLite's; PostgreSQL plans by statistics, not by shape.
pytestmark = pytest.mark.skipif(bool(POSTGRES_URL), reason="SQLite query plans")


@pytest.fixture
def store(app):
    with database.connection_context():
        yield


def test_every_statement_excused_still_exists():
    # A renamed or removed statement leaves its name here, excusing nothing (and "insert job" did).
    assert BY_KEY <= {statement.name for statement in Statement.every}


@pytest.mark.parametrize("statement", [s for s in Statement.every if s.name not in BY_KEY], ids=lambda s: s.name)
def test_statement_uses_an_index(store, statement):
    sql, params = statement.bind({name: 0 for name in statement.names})
    assert_indexed(statement.name, plan(sql, params))


@pytest.mark.parametrize("name", REAPER)
def test_reaper_query_uses_an_index(store, name):
    assert_indexed(name, plan(*REAPER[name]().sql()))


@pytest.mark.parametrize("by_agent", [False, True])
def test_a_filtered_listing_page_is_one_index_search_per_status(store, by_agent):
    statement = listing.FILTERED_PAGE[by_agent]
    steps = plan(*statement.bind({name: 0 for name in statement.names}))
    index = "job_runner_id_agent_name_status_seq" if by_agent else "job_runner_id_status_seq"
    searches = [step for step in steps if step.startswith("SEARCH") and index in step]
    # Each status slot reads the index alone (COVERING: no job rows), newest first...
    assert len(searches) == listing.STATUS_SLOTS and all("COVERING INDEX" in step for step in searches), steps
    # ...and only the page's own documents are read, by (runner, seq).
    assert "SEARCH t1 USING INDEX job_runner_id_seq (runner_id=? AND seq=?)" in steps
    counts = listing.STATUS_COUNTS[by_agent]
    assert [f"SEARCH t1 USING COVERING INDEX {index} ({'runner_id=? AND agent_name=? AND status=?' if by_agent else 'runner_id=? AND status=?'})"] == plan(
        *counts.bind({name: 0 for name in counts.names}))


def test_every_statement_has_a_distinct_name():
    names = [statement.name for statement in Statement.every]
    assert len(names) == len(set(names))


def test_schema_creation_is_idempotent(make_app, tmp_path):
    url = fresh_database_url(tmp_path)
    make_app(DATABASE_URL=url)
    make_app(DATABASE_URL=url)  # a second start on the same database must not fail
    with database.connection_context():
        assert set(database.get_tables()) >= {"runner", "job", "job_log", "pairing_session", "project"}
