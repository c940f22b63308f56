"""Schema migrations: the database records its schema version, and ordered migrations
bring a database written by any earlier release to the one this code reads.

Each migration is a file here, `mNNNN_what_it_does.py`, with `apply(database, migrator)`
(`migrator` is peewee's playhouse.migrate SchemaMigrator for the backend). A migration
is frozen once released: it defines the tables it creates itself rather than importing
models.py, which describes only the latest schema (a test holds the two together).

A database made before versioning (release 1.0.0) has the tables of m0001 and no
`schema_migration` table; it is taken to be at version 1.
"""
import importlib
import logging
import pkgutil
import re
from collections import namedtuple

import peewee as pw
from playhouse.migrate import SchemaMigrator

from ..models import database, now_us

log = logging.getLogger(__name__)

Migration = namedtuple("Migration", "version name module")


class SchemaMigration(pw.Model):
    """One row per migration applied: the schema's version is the largest."""

    version = pw.IntegerField(primary_key=True)
    name = pw.CharField()
    applied_at = pw.BigIntegerField()

    class Meta:
        database = database  # the open backend (db.open_database), like every model
        table_name = "schema_migration"


class SchemaTooNew(RuntimeError):
    """The database was written by a newer release; this code must not touch it."""


def discover():
    """The migrations of this package, in order; their versions run 1, 2, 3... without gaps."""
    found = []
    for module in pkgutil.iter_modules(__path__):
        match = re.fullmatch(r"m(\d{4})_(\w+)", module.name)
        if match:
            found.append(Migration(int(match[1]), match[2].replace("_", " "), f"{__name__}.{module.name}"))
    found.sort()
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations must be numbered 1, 2, 3... without gaps: {[m.version for m in found]}")
    return found


MIGRATIONS = discover()
LATEST = MIGRATIONS[-1].version


def recorded_version():
    """The schema version of the open database: 0 when empty, 1 for a release before versioning."""
    tables = set(database.get_tables())
    if SchemaMigration._meta.table_name in tables:
        return SchemaMigration.select(pw.fn.MAX(SchemaMigration.version)).scalar() or 0
    return 1 if "runner" in tables else 0


def refuse_newer(version):
    if version > LATEST:
        from ... import __version__

        raise SchemaTooNew(
            f"the database's schema is version {version}, newer than this opik-runners ({__version__}) "
            f"knows (version {LATEST}); upgrade opik-runners, or point DATABASE_URL at another database"
        )


def pending():
    """The migrations the open database lacks (SchemaTooNew if it is newer than this code)."""
    version = recorded_version()
    refuse_newer(version)
    return [m for m in MIGRATIONS if m.version > version]


def migrate():
    """Bring the open database's schema to LATEST; return the migrations applied. Safe to run from every
    worker and instance at once: they take turns (SQLite's write lock, or PostgreSQL's
    advisory lock), and all but the first find nothing to do. Call with a connection open."""
    # Read first, locking nothing: on PostgreSQL even a no-op DDL statement locks its
    # table, and would deadlock with the requests a sibling worker already serves.
    if not pending():
        return []
    with database.atomic():
        database.serialize_schema_changes()
        version = recorded_version()  # again, now that this starter holds the lock
        refuse_newer(version)
        database.create_tables([SchemaMigration], safe=True)
        if version == 1 and not SchemaMigration.select().exists():
            record(MIGRATIONS[0])  # a release before versioning: its schema is the baseline
        applied = [m for m in MIGRATIONS if m.version > version]
        backend = database.obj
        migrator = SchemaMigrator.from_database(backend)
        for migration in applied:
            importlib.import_module(migration.module).apply(backend, migrator)
            record(migration)
            log.info("schema migrated to version %d (%s)", migration.version, migration.name)
    return applied


def record(migration):
    SchemaMigration.create(version=migration.version, name=migration.name, applied_at=now_us())
