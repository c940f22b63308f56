"""Wake-ups for long polls, within one process: a poll waits on a key, and whatever
makes work for it wakes that key at once.

This module knows nothing of the database. The backend (backends.py) records each
wake-up in the writer's transaction and runs one watcher per process that passes
other processes' wake-ups on to `wake` here. A waiter sleeps until woken or its
deadline: no periodic re-check, so idle polls cost nothing.
"""
import threading
import time
from collections import defaultdict

_lock = threading.Lock()
_waiters = defaultdict(set)
someone_waits = threading.Event()  # a watcher may idle while nobody waits
# Keys whose writes are so frequent (the request journal: one per request) that a wake-up row
# each would double them: SQLite's watcher wakes these whenever anything commits instead.
ON_EVERY_COMMIT = frozenset({"journal"})
_interruptions = [0]  # how many times interrupt_all ran: a waiter that sees it move gives up


def key_text(key):
    """The text form of a key such as ("jobs", runner_id), as it travels between processes."""
    return ":".join(str(part) for part in key)


def wake(text):
    """Wake the waiters of one key (its text form)."""
    with _lock:
        events = list(_waiters.get(text, ()))
    for event in events:
        event.set()


def wake_all():
    """Wake every waiter once: for a watcher that (re)starts and may have missed keys."""
    with _lock:
        events = [event for events in _waiters.values() for event in events]
    for event in events:
        event.set()


def interrupt_all():
    """End every wait now, with None (the control plane's reset: the polls' runners are gone)."""
    _interruptions[0] += 1
    wake_all()


def wait_for(key, attempt, timeout, release=None, interruptible=True, check_at_deadline=True):
    """Call `attempt()` until it returns something other than None or `timeout` passes, or
    interrupt_all() runs (unless not `interruptible`). `release()` runs before each wait (to
    hand back the database connection).

    `attempt` runs at the start, on each wake-up and, unless not `check_at_deadline`, once
    more at the deadline. A poll for work passes False: nothing woke it, so nothing new is
    there, and a fleet's idle polls end at a steady rate (800 runners: 80 a second), each
    last claim a connection and a statement for nothing. Work whose wake-up is still on its
    way is claimed by the runner's next poll, at once."""
    text = key_text(key)
    interruptions = _interruptions[0]
    deadline = time.monotonic() + timeout
    event = threading.Event()
    with _lock:
        _waiters[text].add(event)
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
            if not event.wait(remaining) and not check_at_deadline:
                return None
    finally:
        with _lock:
            _waiters[text].discard(event)
            if not _waiters[text]:
                del _waiters[text]
            if not _waiters:
                someone_waits.clear()
