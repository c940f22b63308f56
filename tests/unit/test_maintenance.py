"""The reaper's lock, its schedule and its background thread, with a database and settings only.

One cycle runs at a time across every worker and instance sharing the database, once per
interval; `force` (the `opik-runners reap` command) skips the wait but not the lock, and a
holder that dies lets the lock go."""
import signal
import subprocess
import sys
import threading
import time

import pytest

from opik_runners.domain import bridge, jobs, maintenance, runners
from opik_runners.store import db
from opik_runners.control.state.wipe import wipe
from opik_runners.domain.maintenance import REAPER
from opik_runners.store.models import (
    SECOND, BridgeCommand, BridgeRate, Job, MaintenanceTask, PairingSession, Runner, database, holder_name, now_us,
)
from opik_runners.settings import load_settings
from tests.support.data import running_job
from tests.support.databases import POSTGRES_URL, fresh_database_url, waiting_on_locks
from tests.support.threads import Task, join_all, run_all
from tests.support.waiting import wait_until

# A process that takes the reaper's lock through the backend, says so, and waits to be killed.
HOLDER = """
import sys, time
from opik_runners.store import db
backend = db.open_database(sys.argv[1])
backend.connect()
with backend.exclusive("reaper") as taken:
    print("held" if taken else "refused", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def settings(tmp_path):
    url = fresh_database_url(tmp_path)
    backend = db.open_and_migrate(url)
    with database.connection_context():
        yield load_settings({}, DATABASE_URL=url, OPIK_RUNNER_REAPER_INTERVAL="60")
    maintenance.stop()
    backend.shut()


# A statement waiting for a runner's row lock (PostgreSQL's pg_stat_activity.query).
RUNNER_LOCKED = '%FROM "runner"%FOR UPDATE%'


def task():
    return MaintenanceTask.get_by_id(REAPER)


def holding_process(settings):
    """Another process holding the reaper's lock (until killed)."""
    process = subprocess.Popen([sys.executable, "-c", HOLDER, settings.database_url], stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_due_cycle_runs_and_reports_what_it_did(settings):
    stuck = running_job(timeout=1, started_ago=5)
    report = maintenance.run_cycle(settings)
    assert report.jobs_timed_out == 1 and sum(report) == 1
    assert Job.get_by_id(stuck).status == "failed"
    assert task().last_started_at > 0 and task().last_holder == holder_name()


def test_a_cycle_is_not_due_again_within_the_interval(settings):
    assert maintenance.run_cycle(settings) is not None
    running_job(timeout=1, started_ago=5)
    assert maintenance.run_cycle(settings) is None  # due 60 s after the last start
    assert maintenance.run_cycle(settings, force=True).jobs_timed_out == 1  # the command does not wait


def test_a_cycle_running_elsewhere_excludes_even_a_forced_one(settings):
    holder = holding_process(settings)
    try:
        assert maintenance.run_cycle(settings, force=True) is None
        assert task().last_started_at == 0
    finally:
        holder.kill()
        holder.wait()


def test_a_holder_killed_mid_cycle_lets_the_lock_go(settings):
    holder = holding_process(settings)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    # PostgreSQL ends the session once it sees the connection close; a file lock goes at once.
    assert wait_until(lambda: maintenance.run_cycle(settings) is not None, timeout=10)


def test_of_many_workers_trying_at_once_one_runs_the_cycle(settings):
    reports, barrier = [], threading.Barrier(6)

    def worker():
        barrier.wait()
        with database.connection_context():
            reports.append(maintenance.run_cycle(settings))

    run_all([Task(worker) for _ in range(6)], timeout=60)
    assert sum(report is not None for report in reports) == 1


def test_the_background_reaper_acts_with_nothing_else_running(settings):
    # (tests/acceptance/test_command.py holds a real server to "within two intervals".)
    job_id = running_job(timeout=1, started_ago=0)
    maintenance.start(settings._replace(reaper_interval=0.3))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Job.get_by_id(job_id).status == "running":
        time.sleep(0.05)
    job = Job.get_by_id(job_id)
    assert (job.status, job.error) == ("failed", "Job timed out after 1s")


def test_interval_0_runs_no_background_reaper(settings):
    assert maintenance.start(settings._replace(reaper_interval=0)) is None


def run_behind_a_held_runner(settings, runner_id, first, second, first_waits_in=RUNNER_LOCKED):
    """Hold the runner's row from outside, start `first` (name, call) and wait until it waits in a
    statement LIKE `first_waits_in`, then start `second` and wait until it waits too; let the row
    go. Each call runs on its own connection; {name: what it returned, or what it raised}."""
    import psycopg2

    holder = psycopg2.connect(settings.database_url)
    with holder.cursor() as cur:
        cur.execute("SELECT 1 FROM runner WHERE id = %s FOR UPDATE", (str(runner_id),))
    outcomes = {}

    def run(name, call):
        with database.connection_context():
            try:
                outcomes[name] = call()
            except Exception as exc:
                outcomes[name] = exc

    tasks = []
    try:
        for (name, call), waiting, like in ((first, 1, first_waits_in), (second, 2, "%")):
            tasks.append(Task(run, name, call))
            tasks[-1].start()
            wait_until(lambda: waiting_on_locks(settings.database_url, like) >= waiting, timeout=10)
    finally:
        holder.rollback()
        holder.close()
    join_all(tasks, timeout=30)
    return outcomes


@pytest.mark.skipif(not POSTGRES_URL, reason="row locks: SQLite's one write lock orders every write")
def test_the_expiry_and_a_reset_take_a_runner_in_one_order(settings):
    """A reset waiting for a runner's row and the reaper's expiry of that runner's finished jobs:
    the expiry takes the runner's row before it deletes the jobs, as the reset does, so it waits
    behind the reset. (It deleted the jobs first, then updated the runner's count: the reset,
    given the row, then waited for those jobs, and PostgreSQL failed one of the two.)"""
    job_id = running_job(timeout=0, started_ago=5)
    Job.update(status="completed", completed_at=1).where(Job.id == job_id).execute()
    outcomes = run_behind_a_held_runner(settings, Job.get_by_id(job_id).runner_id, ("reset", wipe),
                                        ("expiry", lambda: jobs.expire_finished_jobs(2)))
    assert outcomes == {"reset": 1, "expiry": 0}  # the reset deleted the job first
    assert Job.select().count() == 0


@pytest.mark.skipif(not POSTGRES_URL, reason="row locks: SQLite's one write lock orders every write")
def test_the_reapers_command_expiry_and_a_reset_take_a_runner_in_one_order(settings):
    """A reset waiting for a runner's row, and the reaper's time-out and expiry of that runner's
    bridge commands and rate counters: the reaper takes the runner's row first too, so it waits
    behind the reset. (It deleted the commands in the order its scan found them; the reset,
    given the runner, deletes them in its own, and two such deletes could each hold a command
    the other waited for.)"""
    runner_id = Job.get_by_id(running_job(timeout=0, started_ago=5)).runner_id
    for status in ("completed", "completed", "picked_up"):
        BridgeCommand.create(runner=runner_id, type="ReadFile", args={}, timeout_seconds=1, status=status,
                             picked_up_at=1, expires_at=1 if status == "completed" else now_us() + 600 * SECOND)
    BridgeRate.create(runner_id=runner_id, minute=1, total=1, writes=0)
    outcomes = run_behind_a_held_runner(settings, runner_id, ("reset", wipe),
                                        ("reaper", lambda: bridge.reap_commands(now_us())))
    assert outcomes == {"reset": 1, "reaper": 0}  # the reset removed them first: nothing left to time out
    assert BridgeCommand.select().count() == 0 and BridgeRate.select().count() == 0


@pytest.mark.skipif(not POSTGRES_URL, reason="row locks: SQLite's one write lock orders every write")
def test_a_heartbeat_committed_while_the_purge_waits_keeps_its_runner(settings):
    """The purge reads the dead runners, then detaches each under its row's lock: a runner whose
    heartbeat commits in between is alive again and stays. (Detached on the stale read, it lost
    its jobs and its pairing though it had just beaten.)"""
    import psycopg2

    runner_id = Job.get_by_id(running_job(timeout=0, started_ago=0)).runner_id
    long_dead = now_us() - int((settings.dead_runner_purge + 60) * SECOND)
    Runner.update(heartbeat_expires_at=long_dead).where(Runner.id == runner_id).execute()
    holder = psycopg2.connect(settings.database_url)  # the heartbeat, committed once the purge waits for it
    with holder.cursor() as cur:
        cur.execute("UPDATE runner SET heartbeat_expires_at = %s WHERE id = %s", (now_us() + 600 * SECOND, str(runner_id)))
    outcomes = {}

    def purge():
        with database.connection_context():
            outcomes["purged"] = runners.purge_dead_runners(settings, now_us())

    try:
        purger = Task(purge)
        purger.start()
        wait_until(lambda: waiting_on_locks(settings.database_url, RUNNER_LOCKED) >= 1, timeout=10)
    finally:
        holder.commit()
        holder.close()
    join_all([purger], timeout=30)
    assert outcomes == {"purged": 0}
    assert Runner.get_by_id(runner_id).detached_at is None
    assert Job.get(Job.runner == runner_id).status == "running"


@pytest.mark.skipif(not POSTGRES_URL, reason="row locks: SQLite's one write lock orders every write")
def test_a_reaper_cycle_and_a_reset_take_rows_in_one_order(settings):
    """A reaper cycle waiting for a runner's row (to expire its finished jobs), then a reset:
    the cycle drops expired pairing sessions in a transaction of its own, after the runner's, so
    it waits for the reset's sessions without holding the runner. (In one transaction, the cycle
    held the runner and waited for a session the reset held, which waited for the runner.)"""
    job = Job.get_by_id(running_job(timeout=0, started_ago=5))
    Job.update(status="completed", completed_at=1).where(Job.id == job.id).execute()  # long expired
    PairingSession.create(workspace="w", user_name="u", project_id=job.project_id, type="endpoint",
                          activation_key="k", expires_at=1)
    outcomes = run_behind_a_held_runner(settings, job.runner_id, ("cycle", lambda: maintenance.reap(settings)),
                                        ("reset", wipe), first_waits_in='%"runner"%')
    assert outcomes["reset"] == 1, outcomes
    assert not isinstance(outcomes["cycle"], Exception), outcomes
    assert (outcomes["cycle"].jobs_expired, outcomes["cycle"].sessions_expired) == (1, 0)  # the reset took the session
    assert Job.select().count() == 0 and PairingSession.select().count() == 0
