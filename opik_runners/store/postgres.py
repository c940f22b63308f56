"""PostgreSQL, for scale-out: several instances of the service on one database.

Row locks are `FOR UPDATE` (and `SKIP LOCKED` for claims), taken in key order where a write
takes many; a deadlock that happens anyway is retried where the write is safe to run twice.
Wake-ups go through LISTEN/NOTIFY, delivered at commit to every instance's watcher; schema
changes and the reaper take advisory locks."""
import contextlib
import logging
import select
import threading
import time
import zlib

import peewee as pw
from playhouse.pool import PooledPostgresqlDatabase

from .. import metrics
from . import wakeups
from .backend import Backend, BackupUnsupported

log = logging.getLogger(__name__)

CHANNEL = "opik_wakeups"  # PostgreSQL's LISTEN/NOTIFY channel
SCHEMA_LOCK = 7146510731  # PostgreSQL advisory lock id: schema changes, one starter at a time


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

    def disk_full(self, error):
        # "could not extend file ...: No space left on device", and the like.
        return "No space left" in str(error)

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
