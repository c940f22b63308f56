"""Schema migrations: a new database is built by them, to exactly the schema models.py
describes; an older one is upgraded; a newer one is refused, never touched."""
import threading

import peewee as pw
import pytest

from opik_runners import __version__
from opik_runners.store import db, migrations
from opik_runners.store.migrations import LATEST, MIGRATIONS, SchemaMigration, SchemaTooNew, m0001_baseline
from opik_runners.store.models import MODELS, database
from tests.support.databases import fresh_database_url
from tests.support.threads import Task, run_all


def schema(backend):
    """Tables, columns, indexes and foreign keys, as the database reports them."""
    described = {}
    for table in sorted(set(backend.get_tables()) - {SchemaMigration._meta.table_name}):
        columns = sorted((c.name, c.data_type.lower(), c.null, c.primary_key) for c in backend.get_columns(table))
        indexes = sorted((i.name, tuple(i.columns), i.unique) for i in backend.get_indexes(table))
        keys = sorted((k.column, k.dest_table, k.dest_column) for k in backend.get_foreign_keys(table))
        described[table] = {"columns": columns, "indexes": indexes, "foreign keys": keys}
    return described


def versions(backend):
    return [row.version for row in SchemaMigration.select().order_by(SchemaMigration.version)]


@pytest.fixture
def fresh(tmp_path):
    """An empty database, opened (not migrated), with a connection."""
    backend = db.open_database(fresh_database_url(tmp_path))
    with backend.connection_context():
        yield backend
    backend.shut()


def test_migrations_are_numbered_from_1_without_gaps():
    assert [m.version for m in MIGRATIONS] == list(range(1, LATEST + 1))
    assert MIGRATIONS[0].name == "baseline"


def test_an_empty_database_needs_every_migration(fresh):
    assert migrations.recorded_version() == 0
    assert migrations.pending() == MIGRATIONS


def test_the_migrations_build_exactly_the_schema_of_models_py(tmp_path):
    # A model changed without a migration (or the other way) fails here.
    backend = db.open_and_migrate(fresh_database_url(tmp_path, "migrated"))
    with backend.connection_context():
        migrated = schema(backend)
        assert versions(backend) == list(range(1, LATEST + 1))
    backend = db.open_database(fresh_database_url(tmp_path, "modelled"))
    with backend.connection_context():
        database.create_tables(MODELS)
        modelled = schema(backend)
    backend.shut()
    assert migrated == modelled


def test_a_database_from_before_versioning_is_version_1_and_is_upgraded(fresh):
    m0001_baseline.apply(fresh, None)  # what release 1.0.0 created: the tables, no version table
    assert migrations.recorded_version() == 1
    assert migrations.pending() == MIGRATIONS[1:]
    applied = migrations.migrate()
    assert applied == MIGRATIONS[1:]
    assert versions(fresh) == list(range(1, LATEST + 1))  # the baseline is recorded as adopted
    assert migrations.pending() == []


def test_migrating_again_changes_nothing(fresh):
    assert migrations.migrate() == MIGRATIONS
    before = schema(fresh)
    assert migrations.migrate() == []
    assert schema(fresh) == before and versions(fresh) == list(range(1, LATEST + 1))


def test_a_newer_database_is_refused_with_both_versions_named(fresh):
    migrations.migrate()
    SchemaMigration.create(version=LATEST + 1, name="from the future", applied_at=0)
    before = schema(fresh)
    for attempt in (migrations.pending, migrations.migrate):
        with pytest.raises(SchemaTooNew) as refused:
            attempt()
        message = str(refused.value)
        assert f"version {LATEST + 1}" in message and f"version {LATEST}" in message and __version__ in message
    assert schema(fresh) == before  # nothing was touched


def test_an_app_refuses_to_start_on_a_newer_database(tmp_path, make_app):
    url = fresh_database_url(tmp_path)
    backend = db.open_and_migrate(url)
    with backend.connection_context():
        SchemaMigration.create(version=LATEST + 1, name="from the future", applied_at=0)
    with pytest.raises(SchemaTooNew, match=f"version {LATEST + 1}"):
        make_app(DATABASE_URL=url)


def test_starters_racing_on_a_new_database_migrate_it_once(tmp_path):
    # Every worker (and instance) of a server migrates at start; they take turns.
    url = fresh_database_url(tmp_path)
    backend = db.open_database(url)
    applied = []
    barrier = threading.Barrier(4)

    def start():
        barrier.wait()
        with backend.connection_context():
            applied.append(migrations.migrate())

    run_all([Task(start) for _ in range(4)], timeout=60)
    assert sorted(len(batch) for batch in applied) == [0, 0, 0, LATEST]
    with backend.connection_context():
        assert versions(backend) == list(range(1, LATEST + 1))
    backend.shut()


def test_a_failed_migration_leaves_the_database_as_it_was(fresh, monkeypatch):
    m0001_baseline.apply(fresh, None)
    before = schema(fresh)

    def broken(database, migrator):
        database.execute_sql("CREATE TABLE half_done (id INTEGER)")
        raise pw.OperationalError("disk full, say")

    module = __import__(MIGRATIONS[1].module, fromlist=["apply"])
    monkeypatch.setattr(module, "apply", broken)
    with pytest.raises(pw.OperationalError):
        migrations.migrate()
    assert schema(fresh) == before
    assert migrations.recorded_version() == 1
