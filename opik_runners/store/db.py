"""The database a process serves from: which backend DATABASE_URL names, its schema brought
up to date, a pooled connection per request (flaskr's `db.init_app`), and the hooks of what
runs beside it.

Whatever must pause while the database is swapped, or start afresh on a new one (the control
plane's listener and journal flusher), registers itself here with `on_switch` and
`on_migrated`: the store imports nothing above it."""
import sqlite3

import peewee
from playhouse.db_url import parse

from . import migrations
from .models import database
from .postgres import PostgresBackend
from .sqlite import SqliteBackend, why_sqlite_cannot_write
from .urls import kind_of

# What a failing database raises, whichever it is: the app answers each with a 503 (or 507).
# peewee.InterfaceError is not a DatabaseError in peewee: a connection the database dropped
# ("connection already closed"); sqlite3's own errors escape peewee from the backup and the
# data_version reads.
FAILURES = (peewee.DatabaseError, peewee.InterfaceError, sqlite3.DatabaseError)

_on_switch = []  # called before the open database is swapped; each returns what to call after, or None
_on_migrated = []  # called with a connection open, once a database is open and its schema current


def on_switch(hook):
    """Register `hook()`: called before another database replaces the open one; it returns
    a function to call once the new one is bound (to start again what it stopped), or None."""
    _on_switch.append(hook)
    return hook


def on_migrated(hook):
    """Register `hook()`: called once a database is opened and its schema is current."""
    _on_migrated.append(hook)
    return hook


def open_backend(url, pool_size=20):
    """The backend for a DATABASE_URL (peewee's db_url syntax), as a connection pool: a
    request borrows a connection and a held long poll hands it back."""
    kind = kind_of(url)
    # Held polls hand their connection back, so a pool this size serves thousands of them;
    # a request finding it empty waits (up to 30 s) for a free one rather than failing.
    pool = {"max_connections": pool_size, "stale_timeout": 300, "timeout": 30}
    if kind == "sqlite":
        return SqliteBackend(parse(url)["database"], **pool)
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        raise ValueError("PostgreSQL needs psycopg2: pip install 'opik-runners[postgres]'") from None
    return PostgresBackend(**parse(url), **pool)


def open_database(url, pool_size=20):
    """Bind the models to the backend for `url`; a previously open one (tests open one per
    test) stops its watcher and gives its connections back."""
    backend = open_backend(url, pool_size)
    # What reads the database from threads of its own must not while it is swapped.
    resume = [after for after in (hook() for hook in _on_switch) if after is not None]
    previous = database.obj
    database.initialize(backend)
    try:
        if previous is not None:
            previous.shut()
    finally:  # they resume on the new one, even when the old one failed to shut
        for after in resume:
            after()
    return backend


def open_and_migrate(url, pool_size=20):
    """open_database, then bring the schema to the current version (migrations.SchemaTooNew
    if the database is newer than this code)."""
    backend = open_database(url, pool_size)
    with backend.connection_context():
        migrations.migrate()
        for hook in _on_migrated:
            hook()
    return backend


def explain_open_failure(url):
    """What to change, where the store can tell why the database at `url` would not open (a
    SQLite file in a directory this process may not write, as a container's /data of another
    owner: SQLite alone says "unable to open database file"); empty otherwise."""
    if kind_of(url) != "sqlite":
        return ""
    return why_sqlite_cannot_write(parse(url)["database"])


def disk_full(error):
    """Whether a database error says the database's disk is full."""
    return database.obj is not None and database.obj.disk_full(error)


def init_app(app, settings):
    backend = open_and_migrate(settings.database_url, settings.pool_size)
    backend.start_watcher()
    app.before_request(open_connection)
    app.teardown_request(close_connection)
    return backend


def open_connection():
    database.connect(reuse_if_open=True)


def close_connection(exc):
    if not database.is_closed():
        database.close()
