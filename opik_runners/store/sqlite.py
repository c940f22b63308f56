"""SQLite, the embedded default: one file, one writer at a time, waited for cooperatively.

WAL lets readers run beside the one writer; every transaction is BEGIN IMMEDIATE, so it holds
the write lock from its start and never fails half-way upgrading to it. That one lock is
every row lock (lock_rows, claim_rows and hold_rows have nothing to add), and one writer at a
time cannot deadlock. Other processes' wake-ups arrive through `wakeup` rows and
`PRAGMA data_version`, which the watcher checks every few milliseconds while a poll waits."""
import contextlib
import fcntl
import itertools
import logging
import os
import sqlite3
import threading
import time

import peewee as pw
from playhouse.pool import PooledSqliteDatabase

from .. import metrics
from . import wakeups
from .backend import Backend

log = logging.getLogger(__name__)

BUSY_TIMEOUT_SECONDS = 30  # how long a statement waits for SQLite's write lock
SQLITE_CHECK_SECONDS = 0.005  # how often the watcher asks SQLite whether anything committed
KEEP_WAKEUPS_SECONDS = 60  # wakeup rows older than this are pruned
_version_connections = itertools.count()  # a serial for each data_version connection opened


def retry_while_locked(run, *args, **kwargs):
    """run(*args, **kwargs), again while SQLite refuses it as locked: sub-millisecond sleeps that
    yield to other greenlets, up to BUSY_TIMEOUT_SECONDS."""
    delay, deadline = 0.0002, time.monotonic() + BUSY_TIMEOUT_SECONDS
    while True:
        try:
            return run(*args, **kwargs)
        except (pw.OperationalError, sqlite3.OperationalError) as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        metrics.DATABASE_RETRIES.inc()
        time.sleep(delay)
        delay = min(delay * 2, 0.005)


class SqliteWatcher(threading.Thread):
    """Checks `PRAGMA data_version` (which moves when another connection commits) every few
    milliseconds while a poll waits here, and wakes the keys of new `wakeup` rows."""

    def __init__(self, backend):
        super().__init__(name="wakeup-watcher", daemon=True)
        self.path = backend.database
        self.stopped = threading.Event()

    def stop(self):
        self.stopped.set()

    def run(self):
        conn = sqlite3.connect(self.path, check_same_thread=False)
        try:
            last = conn.execute("SELECT coalesce(max(id), 0) FROM wakeup").fetchone()[0]
            wakeups.wake_all()  # anything committed before `last` was read is re-checked by its waiter
            version = None
            while not self.stopped.is_set():
                current = conn.execute("PRAGMA data_version").fetchone()[0]
                if current != version:
                    version = current
                    for text in wakeups.ON_EVERY_COMMIT:
                        wakeups.wake(text)
                    for row_id, text in conn.execute("SELECT id, key FROM wakeup WHERE id > ? ORDER BY id", (last,)):
                        last = row_id
                        wakeups.wake(text)
                time.sleep(SQLITE_CHECK_SECONDS)
                wakeups.someone_waits.wait(1.0)  # no poll held here: nothing to wake, so check rarely
        except Exception:
            log.exception("wake-up watcher stopped; polls fall back to their timeouts")
        finally:
            conn.close()


class SqliteBackend(Backend, PooledSqliteDatabase):
    """SQLite whose locks are waited for cooperatively.

    SQLite's own busy handler sleeps 1 to 100 ms inside C while another process holds
    the write lock, which stalls every greenlet of a gevent worker meanwhile. So the
    connections run with busy_timeout 0, and a statement refused as busy is retried
    here. Only a statement outside a transaction can be refused (a BEGIN IMMEDIATE, or
    one in autocommit mode: reads never wait in WAL mode), and a refused statement
    changed nothing, so running it again is safe.

    The connection's pragmas are retried the same way. Workers booting together on a
    new file all switch it to WAL at once, and SQLite refuses all but one of them at
    once, without a busy handler (two readers upgrading would deadlock).
    """

    kind = "sqlite"
    watcher_class = SqliteWatcher
    NOTIFY = "INSERT INTO wakeup (key, created_at) VALUES (?, ?)"
    # Never the newest row: SQLite numbers a new row max(id) + 1, so an emptied table
    # would restart at 1, below every watcher's `last`.
    PRUNE_WAKEUPS = "DELETE FROM wakeup WHERE created_at < ? AND id < (SELECT max(id) FROM wakeup)"

    def __init__(self, database, **pool):
        # WAL lets readers run beside the one writer; IMMEDIATE takes the write lock
        # at BEGIN, so a transaction never fails half-way upgrading to it.
        pragmas = {"journal_mode": "wal", "foreign_keys": 1, "synchronous": "normal"}
        super().__init__(database, pragmas=pragmas, lock_type="IMMEDIATE", check_same_thread=False, **pool)

    def init(self, database, **kwargs):
        super().init(database, **kwargs)
        self._timeout = 0  # what sqlite3.connect sets as the busy_timeout (`timeout` here is the pool's)

    def begin(self, lock_type=None):
        self._execute_cursor(f"BEGIN {lock_type or self._lock_type or ''}", ())

    _version = None  # (pid, connection, serial): the connection reads PRAGMA data_version, and never writes

    def data_version(self):
        # PRAGMA data_version moves when any *other* connection commits; this connection only
        # reads it, so every commit anywhere moves it (~2.6 us, against ~40 us for the listing's
        # statement). Opened per process: a connection does not survive a fork.
        # The answer also names this backend and process: each opens its own connection, whose
        # counter is its own (a forked child, a test's next database, must not match).
        version = self._version
        if version is None or version[0] != os.getpid():
            connection = sqlite3.connect(self.database, check_same_thread=False, isolation_level=None)
            version = self._version = (os.getpid(), connection, next(_version_connections))
        return version[0], version[2], version[1].execute("PRAGMA data_version").fetchone()[0]

    def shut(self):
        super().shut()
        if self._version is not None:
            self._version[1].close()
            self._version = None

    def disk_full(self, error):
        return "database or disk is full" in str(error)

    def rollback(self):
        # SQLite ends a transaction itself on some errors (SQLITE_FULL: a full disk), and a
        # ROLLBACK then fails with "no transaction is active", hiding the error that mattered.
        if not self.is_closed() and not self.connection().in_transaction:
            return
        super().rollback()

    def execute_rows(self, sql, rows):
        # SQLite runs in this process: executemany is a loop in C.
        cursor = self.cursor()
        cursor.executemany(sql, rows)
        return cursor

    def _execute_cursor(self, sql, params, **cursor_options):
        if self.in_transaction():  # holds the write lock (IMMEDIATE): nothing to wait for
            return super()._execute_cursor(sql, params, **cursor_options)
        return retry_while_locked(super()._execute_cursor, sql, params, **cursor_options)

    def _set_pragmas(self, conn):
        for pragma, value in self._pragmas:
            retry_while_locked(conn.execute, f"PRAGMA {pragma} = {value}")

    def lock_rows(self, query):
        return query  # the transaction's BEGIN IMMEDIATE holds the database's one write lock

    def claim_rows(self, query):
        return query

    def hold_rows(self, query):
        pass  # BEGIN IMMEDIATE holds every row

    def retrying_deadlocks(self, transaction):
        return transaction()  # one writer at a time: no deadlocks

    def notify(self, key):
        text = wakeups.key_text(key)
        if text not in wakeups.ON_EVERY_COMMIT:
            self.execute_sql(self.NOTIFY, (text, time.time()))
        wakeups.wake(text)

    def prune_wakeups(self):
        self.execute_sql(self.PRUNE_WAKEUPS, (time.time() - KEEP_WAKEUPS_SECONDS,))

    def serialize_schema_changes(self):
        pass  # the transaction's BEGIN IMMEDIATE already excludes every other writer

    @contextlib.contextmanager
    def exclusive(self, name):
        """Yields whether this caller holds the lock `name` (never waits): an flock on a file
        beside the database, which the kernel lets go when the holder's process dies."""
        with open(f"{self.database}.{name}.lock", "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def backup(self, target):
        """Copy the live database to `target` with SQLite's online backup API, in one step:
        one read transaction, so the copy is one consistent snapshot, while writers go on
        in the WAL. Written beside `target` and renamed into place once checked."""
        if self.database == ":memory:":
            raise FileNotFoundError("no SQLite database to back up: DATABASE_URL names an in-memory one")
        if not os.path.exists(self.database):
            raise FileNotFoundError(f"no SQLite database at {os.path.abspath(self.database)}")
        partial = f"{target}.partial-{os.getpid()}"
        source = sqlite3.connect(self.database, timeout=0)
        copy = sqlite3.connect(partial)
        try:
            retry_while_locked(source.backup, copy)
            copy.execute("PRAGMA journal_mode = delete")  # one self-contained file
            (check,) = copy.execute("PRAGMA integrity_check").fetchone()
            if check != "ok":
                raise RuntimeError(f"the copy failed its integrity check: {check}")
            copy.close()
            os.replace(partial, target)
        finally:
            copy.close()
            source.close()
            if os.path.exists(partial):
                os.remove(partial)


def why_sqlite_cannot_write(path):
    """For a database file whose directory (or the file itself) this process may not write: what
    to change, as a parenthesis to add to SQLite's own message; empty when it can write there."""
    if path == ":memory:":
        return ""
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        return f" ({directory} does not exist)"
    if os.access(directory, os.W_OK | os.X_OK) and (not os.path.exists(path) or os.access(path, os.W_OK)):
        return ""
    return (f" ({directory} is not writable by uid {os.getuid()}, the user this server runs as: make it "
            f"writable by that user, or point DATABASE_URL elsewhere)")
