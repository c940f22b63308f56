"""The control plane's shared state (/_admin/): the clock offset, the fault rules and the
reset count, which every worker and instance must apply alike.

The values live in the database (`control_value`, `fault_rule`); every change bumps the
`generation` value in the same transaction. Each process keeps a copy (`current`) and a
listener thread that looks at the generation every CHECK_SECONDS and reloads the copy
when it moved. The listener also keeps the process's `server_process` row: the
generation it has taken, and when it was last seen. `change()` answers once every
process seen lately has taken the new generation, so when an admin call returns, every
worker and instance answers with the new clock, the new rules, or the reset done.

Polling one indexed row every 25 ms costs a process about 0.2% of a core; it needs no
channel between processes beyond the database they already share.
"""
import logging
import os
import socket
import threading
import time
from collections import namedtuple

from .. import clock
from . import journal
from ..store import db, wakeups
from ..store.models import ControlValue, FaultRule, ServerProcess, database
from ..store.statements import Param, Statement

log = logging.getLogger(__name__)

CHECK_SECONDS = 0.025  # how often a process looks for a new generation
SEEN_EVERY_SECONDS = 1.0  # how often it says it is alive
ALIVE_SECONDS = 3.0  # a process not seen for this long is not waited for (it died, or is stuck)
FORGET_SECONDS = 60.0  # its row is deleted after this long
TAKE_TIMEOUT_SECONDS = 5.0  # how long a change waits for the other processes to take it

Snapshot = namedtuple("Snapshot", "generation clock_offset_us resets journal_flushes rules")
current = Snapshot(None, 0, 0, 0, ())  # this process's copy

GENERATION = Statement(
    "control generation", lambda p: ControlValue.select(ControlValue.value).where(ControlValue.key == "generation")
)
BUMP = Statement(
    "bump control value",
    lambda p: ControlValue.update(value=ControlValue.value + p.by).where(ControlValue.key == p.key)
    .returning(ControlValue.value),
)
SET_VALUE = Statement(
    "set control value",
    lambda p: ControlValue.update(value=Param("value", ControlValue.value)).where(ControlValue.key == p.key),
)
SEEN = Statement(
    "server process seen",
    lambda p: ServerProcess.insert(
        holder=Param("holder", ServerProcess.holder),
        generation=Param("generation", ServerProcess.generation),
        seen_at=Param("seen_at", ServerProcess.seen_at),
    ).on_conflict(
        conflict_target=[ServerProcess.holder],
        update={ServerProcess.generation: Param("generation", ServerProcess.generation),
                ServerProcess.seen_at: Param("seen_at", ServerProcess.seen_at)},
    ),
)
BEHIND = Statement(
    "live processes behind a generation",
    lambda p: ServerProcess.select(ServerProcess.holder).where(
        (ServerProcess.generation < p.generation) & (ServerProcess.seen_at > p.alive_after)
        & (ServerProcess.holder != p.holder)
    ),
)


def bump(key, by=1):
    """Add `by` to a control value; its new value. (All rows read: SQLite refuses to commit while
    an UPDATE ... RETURNING has rows left unread.)"""
    ((value,),) = BUMP.execute(key=key, by=by).fetchall()
    return value


def holder():
    """This process, as the `server_process` table names it (after a fork: the worker's pid)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def read_generation():
    row = GENERATION.one()
    return row[0] if row else None


def refresh():
    """Take the database's control state into this process if its generation moved; whether it
    did. Call with a connection open."""
    global current
    generation = read_generation()
    if generation is None or generation == current.generation:
        return False
    values = dict(ControlValue.select(ControlValue.key, ControlValue.value).tuples())
    rules = tuple(FaultRule.select().order_by(FaultRule.id).dicts())
    previous, current = current, Snapshot(
        generation, values["clock_offset_us"], values["resets"], values["journal_flushes"], rules
    )
    clock.offset_us = current.clock_offset_us
    if previous.generation is not None and current.resets != previous.resets:
        wakeups.interrupt_all()  # held long polls answer now, empty, rather than wait out a reset
    if previous.generation is not None and current.journal_flushes != previous.journal_flushes:
        journal.flush()  # a reader waits for this process's buffered entries
    return True


def forget():
    """Drop this process's copy (a test switching databases): the next refresh loads it whole."""
    global current
    current = Snapshot(None, 0, 0, 0, ())
    clock.offset_us = 0


def mark_seen():
    SEEN.execute(holder=holder(), generation=current.generation or 0, seen_at=clock.real_now_us())


def change(write):
    """Run `write()` in one transaction that bumps the generation, take the change here, and
    wait until every other live process has taken it. Returns what `write()` returned.

    Run again if PostgreSQL aborts it in a deadlock: a reset deletes many rows of several
    tables, and a test's fixture must not fail because a write was in flight."""
    def transaction():
        with database.atomic():
            return write(), bump("generation")

    result, generation = database.retrying_deadlocks(transaction)
    refresh()
    mark_seen()
    wait_until_taken(generation)
    return result


def wait_until_taken(generation, timeout=TAKE_TIMEOUT_SECONDS):
    """Wait until no process seen in the last ALIVE_SECONDS is behind `generation`."""
    deadline = time.monotonic() + timeout
    while True:
        behind = BEHIND.execute(
            generation=generation, alive_after=clock.real_now_us() - int(ALIVE_SECONDS * 1e6), holder=holder()
        ).fetchall()
        if not behind:
            return True
        if time.monotonic() > deadline:
            log.warning("control change %s not yet taken by %s", generation, ", ".join(h for (h,) in behind))
            return False
        database.hand_back_connection()
        time.sleep(CHECK_SECONDS / 2)


def advance_clock(seconds):
    """Move every process's clock `seconds` forward; the new offset in seconds."""
    return change(lambda: bump("clock_offset_us", int(seconds * 1e6))) / 1e6


def zero_clock():
    """In a change's transaction: back to real time."""
    SET_VALUE.execute(key="clock_offset_us", value=0)


def reset_clock():
    change(zero_clock)


def flush_journals():
    """Have every process write the journal entries it has buffered (journal.py), before a read.
    This process flushes too, once its listener's flush (if it took the change first) is done."""
    change(lambda: bump("journal_flushes"))
    journal.flush()


def count_reset():
    """In a reset's transaction: make every process end its held long polls (not journal waits)."""
    bump("resets")


class Listener(threading.Thread):
    """Takes other processes' changes into this one, and keeps its `server_process` row."""

    def __init__(self):
        super().__init__(name="control-listener", daemon=True)
        self.stopped = threading.Event()
        self.failing_since = None

    def stop(self):
        self.stopped.set()

    def run(self):
        last_seen = last_pruned = 0.0
        while not self.stopped.wait(CHECK_SECONDS):
            try:
                with database.connection_context():
                    moved = refresh()
                    if moved or time.monotonic() - last_seen > SEEN_EVERY_SECONDS:
                        mark_seen()
                        last_seen = time.monotonic()
                    if time.monotonic() - last_pruned > FORGET_SECONDS:
                        ServerProcess.delete().where(
                            ServerProcess.seen_at < clock.real_now_us() - int(FORGET_SECONDS * 1e6)
                        ).execute()
                        last_pruned = time.monotonic()
                self.failing_since = None
            except Exception:
                # The database may be away (or, in tests, being replaced): say so once a minute.
                if self.failing_since is None or time.monotonic() - self.failing_since > 60:
                    log.warning("control listener cannot read the database; retrying", exc_info=True)
                    self.failing_since = time.monotonic()


_running = {"listener": None}


def start():
    """Start this process's listener (in each worker, after the fork), replacing an earlier one."""
    stop()
    _running["listener"] = Listener()
    _running["listener"].start()
    return _running["listener"]


def stop():
    """Stop this process's listener, waiting for its last look at the database; whether one ran."""
    listener, _running["listener"] = _running["listener"], None
    if listener is None:
        return False
    listener.stop()
    if listener is not threading.current_thread():
        listener.join(timeout=5)
    return True


# The database is this process's to share: a new one (tests open one after another) stops the
# listener while it is swapped, and starts with its own clock and rules.


@db.on_switch
def pause_listener():
    return start if stop() else None


@db.on_migrated
def take_the_new_database():
    forget()
    refresh()
