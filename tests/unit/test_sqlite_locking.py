"""SQLite's write lock is waited for by the SQLite backend, not by SQLite's busy
handler: connections run with busy_timeout 0, and a statement refused as busy (a BEGIN,
or a write in autocommit mode) is retried until the lock frees or the deadline passes."""
import sqlite3
import threading

import peewee as pw
import pytest

from opik_runners.store import models
from opik_runners.store import sqlite
from opik_runners.store.sqlite import SqliteBackend
from opik_runners.store.models import Project, Wakeup

from tests.support.databases import POSTGRES_URL

pytestmark = pytest.mark.skipif(bool(POSTGRES_URL), reason="SQLite's locking")


@pytest.fixture
def database(app):
    with models.database.connection_context():
        yield models.database


class WriteLock:
    """Another connection takes SQLite's write lock (and writes a `held` row) until release."""

    def __init__(self, database):
        self.other = sqlite3.connect(database.obj.database, isolation_level=None, check_same_thread=False)
        self.other.execute("BEGIN IMMEDIATE")
        self.other.execute("INSERT INTO wakeup (key, created_at) VALUES ('held', 0)")
        self.released = threading.Event()
        self.releaser = None

    def release(self):
        self.released.set()  # set first: whatever succeeds after this waited for the lock
        self.other.execute("COMMIT")
        self.other.close()

    def release_after(self, seconds):
        self.releaser = threading.Timer(seconds, self.release)
        self.releaser.start()
        return self

    def join(self):
        if self.releaser:
            self.releaser.join()


def new_project(name):
    return Project(workspace="default", name=name, created_by="admin", last_updated_by="admin")


def held_rows():
    return Wakeup.select().where(Wakeup.key == "held").count()


def test_connections_leave_waiting_to_the_database_class(database):
    assert database.execute_sql("PRAGMA busy_timeout").fetchone() == (0,)
    assert database.execute_sql("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_transaction_waits_for_the_write_lock_then_commits(database):
    lock = WriteLock(database).release_after(0.3)
    with database.atomic():
        new_project("in-a-transaction").save(force_insert=True)
    assert lock.released.is_set()  # it waited for the other writer...
    lock.join()
    assert held_rows() == 1 and Project.get(Project.name == "in-a-transaction")  # ...and both writes landed


def test_an_autocommit_write_waits_for_the_write_lock_too(database):
    lock = WriteLock(database).release_after(0.3)
    new_project("autocommit").save(force_insert=True)
    assert lock.released.is_set()
    lock.join()
    assert Project.select().where(Project.name == "autocommit").count() == 1


def test_reads_do_not_wait_for_a_writer(database):
    lock = WriteLock(database)  # held until released below: a read that waited would fail at the deadline
    assert held_rows() == 0  # WAL: the last committed state, at once
    assert not lock.released.is_set()
    lock.release()
    assert held_rows() == 1


def test_the_wait_gives_up_at_the_deadline_and_writes_nothing(database, monkeypatch):
    monkeypatch.setattr(sqlite, "BUSY_TIMEOUT_SECONDS", 0.2)
    lock = WriteLock(database)  # never released while the write waits
    with pytest.raises(pw.OperationalError, match="locked"):
        with database.atomic():
            new_project("too-late").save(force_insert=True)
    lock.release()
    assert Project.select().where(Project.name == "too-late").count() == 0


def connect_together(paths, per_file=4):
    """Open `per_file` connections at once (threads behind a barrier) to each new file in turn, as
    the workers of a server do when it starts on a new database; return the errors raised."""
    errors = []

    def open_one(path, barrier):
        database = SqliteBackend(path, max_connections=1)
        barrier.wait()
        try:
            database.connect()
            assert database.execute_sql("PRAGMA journal_mode").fetchone() == ("wal",)
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(repr(exc))
        finally:
            database.close_all()

    for path in paths:
        barrier = threading.Barrier(per_file)
        threads = [threading.Thread(target=open_one, args=(str(path), barrier)) for _ in range(per_file)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return errors


def test_workers_opening_a_new_file_together_all_connect(tmp_path):
    # Switching a new file to WAL from four connections at once: SQLite refuses all but one
    # at once, busy handler or not (about 1 in 20 starts failed a worker before the retry).
    errors = connect_together([tmp_path / f"new-{n}.db" for n in range(60)])
    assert not errors, f"{len(errors)} connections failed, e.g. {errors[0]}"


def test_a_new_connection_waits_for_a_lock_held_on_the_file(tmp_path):
    path = str(tmp_path / "held.db")
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE held (n)")
    other.execute("BEGIN EXCLUSIVE")  # a new file is not in WAL mode yet: no one can switch it
    released = threading.Event()

    def release():
        released.set()
        other.execute("COMMIT")
        other.close()

    releaser = threading.Timer(0.3, release)
    releaser.start()
    database = SqliteBackend(path, max_connections=1)
    database.connect()
    assert released.is_set()  # it waited for the other connection, then switched the file to WAL
    assert database.execute_sql("PRAGMA journal_mode").fetchone() == ("wal",)
    releaser.join()
    database.close_all()


# -- data_version: what the listing's kept pages are checked against (listing.list_jobs)


def test_data_version_moves_with_every_commit_and_only_then(database):
    before = database.data_version()
    Project.select().count()  # a read
    assert database.data_version() == before
    with database.atomic():
        Project.create(workspace="w", name="one", visibility="private", created_at=1, created_by="u",
                       last_updated_at=1, last_updated_by="u")
    after_own = database.data_version()
    assert after_own != before  # a commit by this process's own pool
    other = sqlite3.connect(database.obj.database, isolation_level=None)
    other.execute("UPDATE project SET name = 'two'")
    other.close()
    assert database.data_version() not in (before, after_own)  # a commit by another connection (any process)


def test_data_version_names_its_database(make_app, tmp_path):
    # A test's next database (or a forked child) counts on its own: its numbers must not match.
    from tests.support.databases import fresh_database_url

    make_app(DATABASE_URL=fresh_database_url(tmp_path, "a"))
    with models.database.connection_context():
        first = models.database.data_version()
    make_app(DATABASE_URL=fresh_database_url(tmp_path, "b"))
    with models.database.connection_context():
        assert models.database.data_version() != first
