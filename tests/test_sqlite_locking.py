"""SQLite's write lock is waited for by CooperativeSqliteDatabase, not by SQLite's busy
handler: connections run with busy_timeout 0, and a statement refused as busy (a BEGIN,
or a write in autocommit mode) is retried until the lock frees or the deadline passes."""
import sqlite3
import threading
import time

import peewee as pw
import pytest

import models
from models import Project
from wakeups import Wakeup

from server import POSTGRES_URL

pytestmark = pytest.mark.skipif(bool(POSTGRES_URL), reason="SQLite's locking")


@pytest.fixture
def database(app):
    with app.app_context(), models.database.connection_context():
        yield models.database


def hold_write_lock(database, seconds):
    """Another connection takes the write lock now and keeps it for `seconds`."""
    other = sqlite3.connect(database.obj.database, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO wakeup (key, created_at) VALUES ('held', 0)")

    def release():
        time.sleep(seconds)
        other.execute("COMMIT")
        other.close()

    releaser = threading.Thread(target=release)
    releaser.start()
    return releaser


def new_project(name):
    return Project(workspace="default", name=name, created_by="admin", last_updated_by="admin")


def held_rows():
    return Wakeup.select().where(Wakeup.key == "held").count()


def test_connections_leave_waiting_to_the_database_class(database):
    assert database.execute_sql("PRAGMA busy_timeout").fetchone() == (0,)
    assert database.execute_sql("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_transaction_waits_for_the_write_lock_then_commits(database):
    releaser = hold_write_lock(database, 0.3)
    started = time.monotonic()
    with database.atomic():
        new_project("in-a-transaction").save(force_insert=True)
    waited = time.monotonic() - started
    releaser.join()
    assert waited >= 0.25  # it did wait for the other writer...
    assert held_rows() == 1 and Project.get(Project.name == "in-a-transaction")  # ...and both writes landed


def test_an_autocommit_write_waits_for_the_write_lock_too(database):
    releaser = hold_write_lock(database, 0.3)
    new_project("autocommit").save(force_insert=True)
    releaser.join()
    assert Project.select().where(Project.name == "autocommit").count() == 1


def test_reads_do_not_wait_for_a_writer(database):
    releaser = hold_write_lock(database, 0.5)
    started = time.monotonic()
    assert held_rows() == 0  # WAL: the last committed state
    assert time.monotonic() - started < 0.4
    releaser.join()


def test_the_wait_gives_up_at_the_deadline_and_writes_nothing(database, monkeypatch):
    monkeypatch.setattr(models, "BUSY_TIMEOUT_SECONDS", 0.2)
    releaser = hold_write_lock(database, 1.0)
    with pytest.raises(pw.OperationalError, match="locked"):
        with database.atomic():
            new_project("too-late").save(force_insert=True)
    releaser.join()
    assert Project.select().where(Project.name == "too-late").count() == 0
