"""Maintenance: the reaper's cycle (docs/opik-behaviour.md#reaper, docs/opik-behaviour.md#limits), and the
background thread that runs it on its interval in every server, whether or not requests arrive.

Of all the workers and instances sharing a database, one runs each cycle:
- exclusion: the cycle runs under the backend's `exclusive("reaper")` lock (a file lock
  beside a SQLite database, a PostgreSQL advisory lock), which is let go when its
  holder dies, so a worker killed mid-cycle never stalls the reaper;
- schedule: the `reaper` row of `maintenance_task` records when the last cycle started;
  the lock's holder starts one only when an interval has passed since, so the fleet
  reaps once per interval, not once per worker.
"""
import logging
import os
import random
import socket
import threading
import time
from collections import namedtuple

from . import bridge, jobs, pairing, runners
from .. import clock, metrics
from ..store.models import SECOND, MaintenanceTask, database, now_us
from ..store.statements import Param, Statement

log = logging.getLogger(__name__)

REAPER = "reaper"
HOLDER = f"{socket.gethostname()}:{os.getpid()}"

Report = namedtuple(
    "Report", "jobs_timed_out runners_purged commands_timed_out jobs_expired runners_dropped sessions_expired"
)

START_CYCLE = Statement(
    "start maintenance cycle",
    lambda p: MaintenanceTask.update({
        MaintenanceTask.last_started_at: Param("now", MaintenanceTask.last_started_at),
        MaintenanceTask.last_holder: Param("holder", MaintenanceTask.last_holder),
    }).where((MaintenanceTask.name == p.name) & (MaintenanceTask.last_started_at <= p.due_before)),
)
LAST_START = Statement(
    "last maintenance start",
    lambda p: MaintenanceTask.select(MaintenanceTask.last_started_at).where(MaintenanceTask.name == p.name),
)


def reap(settings):
    """One reaper cycle: time out stuck jobs and bridge commands, purge long-dead runners,
    expire old rows. Returns what it did, as a Report."""
    now = now_us()
    timed_out = jobs.time_out_running_jobs(now)
    purged = runners.purge_dead_runners(settings, now)
    commands = bridge.reap_commands(now)
    expire_before = now - int(settings.completed_job_ttl * SECOND)
    # One transaction each: together, the sessions would be taken after the runners, against
    # the order a reset takes them (PostgreSQL).
    expired = jobs.expire_finished_jobs(expire_before)
    dropped = runners.drop_detached_runners(expire_before)
    sessions = pairing.drop_expired_sessions(now)
    database.prune_wakeups()
    jobs.renumber_gapped_runners()
    return Report(timed_out, purged, commands, expired, dropped, sessions)


def run_cycle(settings, force=False):
    """A reaper cycle, if one is due (or `force`) and no worker or instance runs one now.
    Returns its Report, or None when it did not run. Call with a connection open: on
    PostgreSQL the lock belongs to it."""
    with database.exclusive(REAPER) as taken:
        if not taken:
            return None
        # The schedule keeps real time: the control plane's clock moves what is due, not when.
        now = clock.real_now_us()
        due_before = now if force else now - int(settings.reaper_interval * SECOND)
        if not START_CYCLE.execute(name=REAPER, now=now, holder=HOLDER, due_before=due_before).rowcount:
            return None
        report = reap(settings)
    metrics.REAPER_CYCLES.inc()
    for what, count in report._asdict().items():
        if count:
            metrics.REAPED.labels(what).inc(count)
    if any(report):
        log.info("reaper cycle: %s", describe(report, skip_zeros=True))
    return report


def run_cycle_now(settings, timeout=10.0):
    """A cycle that starts now: forced, and if another worker or instance holds the lock (its
    cycle may have read the time before a change), run once it is let go. Its Report, or None
    if the lock stayed taken for `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        report = run_cycle(settings, force=True)
        if report is not None or time.monotonic() > deadline:
            return report
        database.hand_back_connection()
        time.sleep(0.01)


def describe(report, skip_zeros=False):
    """'1 jobs timed out, 0 runners purged, ...': what a cycle did, for the log and the command."""
    return ", ".join(f"{n} {what.replace('_', ' ')}" for what, n in report._asdict().items() if n or not skip_zeros)


def seconds_until_due(settings):
    (last_started_at,) = LAST_START.one(name=REAPER)
    return max(0.0, (last_started_at + int(settings.reaper_interval * SECOND) - clock.real_now_us()) / SECOND)


class Reaper(threading.Thread):
    """Runs a cycle whenever one is due, from now until the process ends."""

    def __init__(self, settings):
        super().__init__(name="reaper", daemon=True)
        self.settings = settings
        self.stopped = threading.Event()

    def stop(self):
        self.stopped.set()

    def pause(self):
        """Until the next cycle is due, plus up to 5% of the interval so that the workers
        sharing the database do not all try at the same instant."""
        interval = self.settings.reaper_interval
        try:
            with database.connection_context():
                wait = min(seconds_until_due(self.settings), interval)
        except Exception:
            wait = interval
        return wait + random.uniform(0, 0.05 * interval)

    def run(self):
        while not self.stopped.wait(self.pause()):
            try:
                with database.connection_context():
                    run_cycle(self.settings)
            except Exception:
                # The database may be away for a while; the next cycle tries again.
                log.exception("reaper cycle failed; the next one tries again")


_running = {"reaper": None}


def start(settings):
    """Start this process's reaper (in each worker, after the fork), replacing an earlier
    one; none when the interval is 0."""
    stop()
    if settings.reaper_interval > 0:
        _running["reaper"] = Reaper(settings)
        _running["reaper"].start()
    return _running["reaper"]


def stop():
    reaper, _running["reaper"] = _running["reaper"], None
    if reaper is not None:
        reaper.stop()
