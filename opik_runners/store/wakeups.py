"""Wake-ups for long polls, within one process: a poll waits on a key, and whatever
makes work for it wakes that key at once.

This module knows nothing of the database. The backend (store/sqlite.py, store/postgres.py) records each
wake-up in the writer's transaction and runs one watcher per process that passes
other processes' wake-ups on to `wake` here. A waiter sleeps until woken or its
deadline: no periodic re-check, so idle polls cost nothing.

A waiter that *claims* work (a poll for jobs or bridge commands) is woken one at a time:
a wake-up announces one piece of work, which one claim takes, and waking every poller of a
runner made each of them try (32 pollers: 32 claims, 31 of them for nothing, each three
round trips on PostgreSQL). Other waiters (a command's result, the journal) all wake.
"""
import threading
import time
from collections import defaultdict

_lock = threading.Lock()
_waiters = defaultdict(dict)  # key text -> {event: whether the waiter claims}
someone_waits = threading.Event()  # a watcher may idle while nobody waits
# Keys whose writes are so frequent (the request journal: one per request) that a wake-up row
# each would double them: SQLite's watcher wakes these whenever anything commits instead.
ON_EVERY_COMMIT = frozenset({"journal"})
_interruptions = [0]  # how many times interrupt_all ran: a waiter that sees it move gives up


def key_text(key):
    """The text form of a key such as ("jobs", runner_id), as it travels between processes."""
    return ":".join(str(part) for part in key)


def wake(text):
    """Wake the waiters of one key (its text form): every one that does not claim, and one
    claimer that is not awake already (one that is will try anyway, and see the new work)."""
    with _lock:
        waiting = list(_waiters.get(text, {}).items())
    claimer_woken = False
    for event, claims in waiting:
        if not claims:
            event.set()
        elif not claimer_woken and not event.is_set():
            event.set()
            claimer_woken = True


def wake_all():
    """Wake every waiter once: for a watcher that (re)starts and may have missed keys."""
    with _lock:
        events = [event for events in _waiters.values() for event in events]  # each claimer too
    for event in events:
        event.set()


def interrupt_all():
    """End every wait now, with None (the control plane's reset: the polls' runners are gone)."""
    _interruptions[0] += 1
    wake_all()


def wait_for(key, attempt, timeout, release=None, interruptible=True, claims=False):
    """Call `attempt()` until it returns something other than None or `timeout` passes, or
    interrupt_all() runs (unless not `interruptible`). `release()` runs before each wait (to
    hand back the database connection).

    `attempt` runs at the start, on each wake-up and, unless the waiter `claims`, once more at
    the deadline. A claimer is woken one at a time (see above), and gets no last attempt:
    nothing woke it, so nothing new is there, and a fleet's idle polls end at a steady rate
    (800 runners: 80 a second), each last claim a connection and a statement for nothing.
    Work whose wake-up is still on its way is claimed by the runner's next poll, at once."""
    text = key_text(key)
    interruptions = _interruptions[0]
    deadline = time.monotonic() + timeout
    event = threading.Event()
    with _lock:
        _waiters[text][event] = claims
        someone_waits.set()
    try:
        while True:
            event.clear()  # cleared before the attempt, so a wake-up during it is kept
            if interruptible and _interruptions[0] != interruptions:
                return None
            found = attempt()
            remaining = deadline - time.monotonic()
            if found is not None or remaining <= 0:
                return found
            if release:
                release()
            if not event.wait(remaining) and claims:
                return None
    finally:
        with _lock:
            del _waiters[text][event]
            if not _waiters[text]:
                del _waiters[text]
            if not _waiters:
                someone_waits.clear()
        if claims and event.is_set():
            # Woken during its last attempt (one that found other work, or nothing as the
            # deadline passed): the wake-up is for work another claimer must now try for.
            wake(text)
