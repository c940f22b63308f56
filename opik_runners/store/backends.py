"""The two stores, one class each: SQLite (the embedded default) and PostgreSQL (scale-out).

Each backend is the peewee database itself (a connection pool) plus what differs
between the two, behind one interface the domain calls without asking which it has:

- `lock_rows(query)`: the rows a transaction is about to change, locked against
  concurrent changes (SQLite: BEGIN IMMEDIATE already holds the one write lock);
- `claim_rows(query)`: the same, skipping rows another claim holds (exactly-once claims);
- `hold_rows(query)`: lock the rows of `query` now, in primary-key order, until the
  transaction ends: what a write takes before it deletes many rows, so it takes them in the
  order every other write does (PostgreSQL; nothing to do on SQLite);
- `retrying_deadlocks(transaction)`: run `transaction()` (a function that opens and
  commits its own), again if PostgreSQL aborts it as one side of a deadlock; for writes
  that are safe to run twice and must not fail for that (a reset);
- `notify(key)`: wake the long polls waiting on `key`, in every process, once the
  caller's transaction commits (a `wakeup` row, or `pg_notify`), and `start_watcher()`
  to pass other processes' wake-ups on to this one's waiters (wakeups.py); a key in
  wakeups.ON_EVERY_COMMIT needs no row on SQLite: its watcher wakes it on every commit;
- `execute_rows(sql, rows)`: one statement for many rows of parameters, in as few round
  trips as the store allows (inside a transaction: no busy retry);
- `serialize_schema_changes()`: inside a transaction, make concurrent starters take turns;
- `exclusive(name)`: a named lock that one process holds at a time and that is let go
  when its holder dies (a file lock, or a PostgreSQL advisory lock);
- `backup(path)`: a consistent copy of the live database (SQLite only).
"""
import contextlib
import fcntl
import itertools
import logging
import os
import select
import sqlite3
import threading
import time
import zlib

import peewee as pw
from playhouse.db_url import parse
from playhouse.pool import PooledPostgresqlDatabase, PooledSqliteDatabase

from .. import metrics
from . import wakeups

log = logging.getLogger(__name__)

CHANNEL = "opik_wakeups"  # PostgreSQL's LISTEN/NOTIFY channel
SCHEMA_LOCK = 7146510731  # PostgreSQL advisory lock id: schema changes, one starter at a time
BUSY_TIMEOUT_SECONDS = 30  # how long a statement waits for SQLite's write lock
SQLITE_CHECK_SECONDS = 0.005  # how often the watcher asks SQLite whether anything committed
KEEP_WAKEUPS_SECONDS = 60  # wakeup rows older than this are pruned
_version_connections = itertools.count()  # a serial for each data_version connection opened


class BackupUnsupported(Exception):
    """This backend has no online backup of its own; the message says what to use."""


class Backend:
    """What both backends share; see the module's docstring for the interface."""

    kind = None
    watcher = None

    def hand_back_connection(self):
        """A long poll about to wait gives its connection back to the pool (the next query
        takes one again), so thousands of held polls need no connection each. A connection
        that a `connection_context` owns (a test, the command, the reaper) is left to it."""
        if not self.in_transaction() and not self._state.ctx:
            self.close()

    def start_watcher(self):
        """Start this process's watcher (in the worker: a thread does not survive a fork)."""
        if self.watcher is None:
            self.watcher = self.watcher_class(self)
            self.watcher.start()

    def stop_watcher(self):
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None

    def shut(self):
        """Stop the watcher and close every pooled connection (a test opening the next database)."""
        self.stop_watcher()
        self.close_all()

    def data_version(self):
        """A number that changes whenever anything is committed to the database, by any
        connection of any process; None where the store offers none (a read's answer then
        cannot be kept)."""
        return None


# -- SQLite


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
        if self.database == ":memory:" or not os.path.exists(self.database):
            raise FileNotFoundError(f"no SQLite database at {self.database}")
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


# -- PostgreSQL


class PostgresWatcher(threading.Thread):
    """LISTENs on the wake-up channel and wakes each key notified, reconnecting if it must."""

    def __init__(self, backend):
        super().__init__(name="wakeup-watcher", daemon=True)
        self.backend = backend
        self.stopped = threading.Event()

    def stop(self):
        self.stopped.set()

    def run(self):
        import psycopg2

        while not self.stopped.is_set():
            try:
                conn = psycopg2.connect(dbname=self.backend.database, **self.backend.connect_params)
                conn.autocommit = True
                conn.cursor().execute(f"LISTEN {CHANNEL}")
                wakeups.wake_all()  # a key sent before LISTEN took effect is re-checked by its waiter
                while not self.stopped.is_set():
                    if select.select([conn], [], [], 1.0)[0]:
                        conn.poll()
                        while conn.notifies:
                            wakeups.wake(conn.notifies.pop(0).payload)
                conn.close()
            except Exception:
                log.exception("wake-up listener lost its connection; reconnecting")
                time.sleep(1)


class PostgresBackend(Backend, PooledPostgresqlDatabase):
    kind = "postgresql"
    watcher_class = PostgresWatcher

    def lock_rows(self, query):
        return query.for_update()

    def claim_rows(self, query):
        # A concurrent claim skips the rows this one holds instead of waiting for them.
        return query.for_update("FOR UPDATE SKIP LOCKED")

    def hold_rows(self, query):
        # In key order: two writes locking overlapping sets one row at a time each wait for the
        # other's next row only if they go in different orders.
        query.order_by(query.model._meta.primary_key).for_update().execute()

    DEADLOCK_ATTEMPTS = 3

    def retrying_deadlocks(self, transaction):
        from psycopg2.errors import DeadlockDetected

        # Inside another transaction the attempt would be a savepoint, and the outer one would keep
        # the locks that deadlocked.
        assert not self.in_transaction(), "retrying_deadlocks opens the transaction itself"
        for attempt in range(1, self.DEADLOCK_ATTEMPTS + 1):
            try:
                return transaction()
            except pw.OperationalError as exc:  # peewee's, holding the driver's as `orig`
                if not isinstance(getattr(exc, "orig", None), DeadlockDetected) or attempt == self.DEADLOCK_ATTEMPTS:
                    raise
                metrics.DATABASE_RETRIES.inc()
                log.warning("deadlock, the transaction runs again (attempt %d of %d)", attempt + 1,
                            self.DEADLOCK_ATTEMPTS)

    def _is_closed(self, conn):
        # The pool's check on every checkout. peewee's sends `SELECT 1` when the connection looks
        # idle: a round trip per request, 6% of a worker's time in the fleet (py-spy). The driver's
        # own state is enough here: a connection the server dropped fails its next statement with
        # a 503, and that failure clears the idle ones, dropped with it (_execute_cursor).
        from psycopg2.extensions import TRANSACTION_STATUS_IDLE, TRANSACTION_STATUS_UNKNOWN

        if conn.closed:
            return True
        status = conn.get_transaction_status()
        if status == TRANSACTION_STATUS_UNKNOWN:
            return True
        if status != TRANSACTION_STATUS_IDLE:
            try:
                conn.rollback()
            except Exception:
                return True
        return False

    def rollback(self):
        # A connection the server dropped mid-transaction took the transaction with it; a ROLLBACK
        # on it fails ("connection already closed") and hides the error that mattered (a 503).
        conn = self._state.conn
        if conn is not None and conn.closed:
            return
        super().rollback()

    def _execute_cursor(self, sql, params, **cursor_options):
        try:
            return super()._execute_cursor(sql, params, **cursor_options)
        except (pw.OperationalError, pw.InterfaceError):
            conn = self._state.conn
            if conn is not None and conn.closed:  # the server went away: so did the idle connections' sessions
                self.close_idle()
            raise

    def execute_rows(self, sql, rows):
        # psycopg2's executemany is a round trip per row (a journal flush of 300 entries: 300
        # waits on PostgreSQL, each a switch of this worker's greenlets); execute_batch sends
        # them joined, a page of 100 at a time.
        from psycopg2.extras import execute_batch

        cursor = self.cursor()
        execute_batch(cursor, sql, rows, page_size=100)
        return cursor

    def notify(self, key):
        text = wakeups.key_text(key)
        # Delivered at commit, to this process's watcher too. Not woken here and now: a poll of
        # this process would run its claim at the notifier's next round trip, before the commit.
        self.execute_sql("SELECT pg_notify(%s, %s)", (CHANNEL, text))

    def prune_wakeups(self):
        pass  # NOTIFY leaves nothing behind

    def serialize_schema_changes(self):
        # Instances and workers booting together on one database take turns.
        self.execute_sql("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))

    @contextlib.contextmanager
    def exclusive(self, name):
        """Yields whether this caller holds the lock `name` (never waits): a session advisory
        lock on the caller's connection, which PostgreSQL lets go when the session ends."""
        key = zlib.crc32(f"opik_runners:{name}".encode())
        (taken,) = self.execute_sql("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
        if not taken:
            yield False
            return
        try:
            yield True
        finally:
            self.execute_sql("SELECT pg_advisory_unlock(%s)", (key,))

    def backup(self, target):
        raise BackupUnsupported(
            "DATABASE_URL names PostgreSQL, which this command does not copy; use PostgreSQL's own "
            f"tool, e.g. pg_dump --format=custom --file {target} \"$DATABASE_URL\""
        )


def open_backend(url, pool_size=20):
    """The backend for a DATABASE_URL (peewee's db_url syntax), as a connection pool: a
    request borrows a connection and a held long poll hands it back."""
    scheme, sep, _ = url.partition("://")
    scheme = scheme.split("+")[0]
    if not sep or scheme not in ("sqlite", "postgres", "postgresql"):
        raise ValueError(f"DATABASE_URL must look like sqlite:///path or postgresql://..., got {url!r}")
    # Held polls hand their connection back, so a pool this size serves thousands of them;
    # a request finding it empty waits (up to 30 s) for a free one rather than failing.
    pool = {"max_connections": pool_size, "stale_timeout": 300, "timeout": 30}
    if scheme == "sqlite":
        return SqliteBackend(parse(url)["database"], **pool)
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        raise ValueError("PostgreSQL needs psycopg2: pip install 'opik-runners[postgres]'") from None
    return PostgresBackend(**parse(url), **pool)
