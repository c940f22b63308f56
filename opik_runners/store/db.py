"""The database an app serves from: which backend, its schema brought up to date, and
a pooled connection per request (flaskr's `db.init_app`)."""
from . import backends, migrations
from ..control import shared as control, journal
from .models import database


def open_database(url, pool_size=20):
    """Bind the models to the backend for `url`; a previously open one (tests open one per
    test) stops its watcher and gives its connections back."""
    backend = backends.open_backend(url, pool_size)
    # The control listener reads the database from its own thread: not while it is swapped.
    listening = control.stop()
    journal.stop_flusher()
    if database.obj is not None:
        database.obj.shut()
    database.initialize(backend)
    if listening:
        control.start()
    return backend


def open_and_migrate(url, pool_size=20):
    """open_database, then bring the schema to the current version (migrations.SchemaTooNew
    if the database is newer than this code)."""
    backend = open_database(url, pool_size)
    with backend.connection_context():
        migrations.migrate()
        control.forget()  # the clock and fault rules are this database's (tests open one after another)
        control.refresh()
    return backend


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
