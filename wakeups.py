"""Wake-ups for long polls: whatever makes work for a waiting poll wakes it at once,
in this process or in any other process sharing the database.

`notify(key)` records the key in the database as part of the caller's transaction
(a `wakeup` row on SQLite, `pg_notify` on PostgreSQL) and wakes this process's
waiters. One watcher thread per process picks up other processes' keys: on
SQLite it checks `PRAGMA data_version` (which moves when another connection
commits) every few milliseconds; on PostgreSQL it LISTENs. A waiter sleeps until
woken or its deadline: no periodic re-check, so idle polls cost nothing.
"""
import logging
import select
import sqlite3
import threading
import time
from collections import defaultdict

import peewee as pw

log = logging.getLogger("opik_runners")

CHANNEL = "opik_wakeups"
SQLITE_CHECK_SECONDS = 0.005  # how often the watcher asks SQLite whether anything committed
KEEP_SIGNALS_SECONDS = 60  # wakeup rows older than this are pruned

_lock = threading.Lock()
_waiters = defaultdict(set)
_someone_waits = threading.Event()  # the SQLite watcher idles while nobody waits
_target = {"db": None, "watcher": None}


class Wakeup(pw.Model):
    """A key some process woke; read by every other process's watcher (SQLite only)."""

    id = pw.AutoField()
    key = pw.CharField()
    created_at = pw.FloatField(default=time.time)


def key_text(key):
    return ":".join(str(part) for part in key)


def configure(db):
    """Follow the database the app opened (tests open one per test), and watch it."""
    with _lock:
        _target["db"] = db
        watcher, _target["watcher"] = _target["watcher"], None
    if watcher:
        watcher.stop()
    Wakeup.bind(db)


def start_watcher():
    """Start this process's watcher (app start, in the worker: a thread does not survive a fork)."""
    with _lock:
        if _target["watcher"] is None and _target["db"] is not None:
            db = _target["db"]
            cls = PostgresWatcher if isinstance(db, pw.PostgresqlDatabase) else SqliteWatcher
            _target["watcher"] = cls(db)
            _target["watcher"].start()


def _wake_all():
    """Wake every waiter once: used when the watcher (re)starts and may have missed keys."""
    with _lock:
        events = [event for events in _waiters.values() for event in events]
    for event in events:
        event.set()


def _wake_local(text):
    with _lock:
        events = list(_waiters.get(text, ()))
    for event in events:
        event.set()


def notify(key):
    """Wake the polls waiting on `key`: call inside the transaction that made the work."""
    text = key_text(key)
    db = _target["db"]
    if isinstance(db, pw.PostgresqlDatabase):
        db.execute_sql("SELECT pg_notify(%s, %s)", (CHANNEL, text))
    else:
        from models import run  # models imports this module; run compiles the insert once

        now = time.time()
        run("wakeup", lambda: Wakeup.insert(key=text, created_at=now), (text, now))
    _wake_local(text)


def prune():
    """Drop old wake-up rows, but never the newest: SQLite numbers a new row max(id) + 1,
    so an emptied table would restart at 1, below every watcher's `last`."""
    if not isinstance(_target["db"], pw.PostgresqlDatabase):
        newest = Wakeup.select(pw.fn.MAX(Wakeup.id)).scalar() or 0
        Wakeup.delete().where((Wakeup.created_at < time.time() - KEEP_SIGNALS_SECONDS) & (Wakeup.id < newest)).execute()


def poll(key, attempt, timeout, release=None):
    """Call `attempt()` until it returns something other than None or `timeout` passes.
    `release()` runs before each wait (to hand back the database connection)."""
    start_watcher()
    text = key_text(key)
    deadline = time.monotonic() + timeout
    event = threading.Event()
    with _lock:
        _waiters[text].add(event)
        _someone_waits.set()
    try:
        while True:
            event.clear()  # cleared before the attempt, so a wake-up during it is kept
            found = attempt()
            remaining = deadline - time.monotonic()
            if found is not None or remaining <= 0:
                return found
            if release:
                release()
            event.wait(remaining)
    finally:
        with _lock:
            _waiters[text].discard(event)
            if not _waiters[text]:
                del _waiters[text]
            if not _waiters:
                _someone_waits.clear()


class SqliteWatcher(threading.Thread):
    def __init__(self, db):
        super().__init__(name="wakeup-watcher", daemon=True)
        self.path = db.database
        self.stopped = threading.Event()

    def stop(self):
        self.stopped.set()

    def run(self):
        conn = sqlite3.connect(self.path, check_same_thread=False)
        try:
            last = conn.execute("SELECT coalesce(max(id), 0) FROM wakeup").fetchone()[0]
            _wake_all()  # anything committed before `last` was read is re-checked by its waiter
            version = None
            while not self.stopped.is_set():
                current = conn.execute("PRAGMA data_version").fetchone()[0]
                if current != version:
                    version = current
                    for row_id, text in conn.execute("SELECT id, key FROM wakeup WHERE id > ? ORDER BY id", (last,)):
                        last = row_id
                        _wake_local(text)
                time.sleep(SQLITE_CHECK_SECONDS)
                _someone_waits.wait(1.0)  # no poll held here: nothing to wake, so check rarely
        except Exception:
            log.exception("wake-up watcher stopped; polls fall back to their timeouts")
        finally:
            conn.close()


class PostgresWatcher(threading.Thread):
    def __init__(self, db):
        super().__init__(name="wakeup-watcher", daemon=True)
        self.db = db
        self.stopped = threading.Event()

    def stop(self):
        self.stopped.set()

    def run(self):
        import psycopg2

        while not self.stopped.is_set():
            try:
                conn = psycopg2.connect(dbname=self.db.database, **self.db.connect_params)
                conn.autocommit = True
                conn.cursor().execute(f"LISTEN {CHANNEL}")
                _wake_all()  # a key sent before LISTEN took effect is re-checked by its waiter
                while not self.stopped.is_set():
                    if select.select([conn], [], [], 1.0)[0]:
                        conn.poll()
                        while conn.notifies:
                            _wake_local(conn.notifies.pop(0).payload)
            except Exception:
                log.exception("wake-up listener lost its connection; reconnecting")
                time.sleep(1)
