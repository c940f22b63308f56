"""Wake-ups for long polls: a request that made work wakes the requests waiting for it.

Within one process this is immediate (an Event per waiter, keyed by runner).
Other processes sharing the database are caught by the waiter's periodic
re-check, so a wake-up is never lost, only delayed by at most RECHECK_SECONDS.
"""
import threading
import time
from collections import defaultdict

RECHECK_SECONDS = 0.2

_lock = threading.Lock()
_waiters = defaultdict(set)


def notify(key):
    with _lock:
        events = list(_waiters.get(key, ()))
    for event in events:
        event.set()


def poll(key, attempt, timeout):
    """Call `attempt()` until it returns something other than None or `timeout` passes."""
    deadline = time.monotonic() + timeout
    event = threading.Event()
    with _lock:
        _waiters[key].add(event)
    try:
        while True:
            event.clear()  # cleared before the attempt, so a notify during it is kept
            found = attempt()
            remaining = deadline - time.monotonic()
            if found is not None or remaining <= 0:
                return found
            event.wait(min(remaining, RECHECK_SECONDS))
    finally:
        with _lock:
            _waiters[key].discard(event)
            if not _waiters[key]:
                del _waiters[key]
