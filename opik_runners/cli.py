"""The `opik-runners` command: serve, migrate, reap, backup."""
import os

import click

from . import __version__
from .settings import SettingsError, load_settings


def read_settings(**overrides):
    try:
        return load_settings(**overrides)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def open_database(settings, migrate=True):
    """The backend DATABASE_URL names (migrated, unless `migrate` is off), with a
    connection open; errors become click's."""
    from . import db, migrations

    try:
        if migrate:
            backend = db.open_and_migrate(settings.database_url, settings.pool_size)
        else:
            backend = db.open_database(settings.database_url, settings.pool_size)
        backend.connect(reuse_if_open=True)
        return backend
    except (ValueError, migrations.SchemaTooNew) as exc:
        raise click.ClickException(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="opik-runners", message="%(prog)s %(version)s")
def main():
    """An Opik-compatible local-runner server: `opik endpoint` and `opik connect` pair with
    it, take jobs and run bridge commands, without the full Opik stack.

    Settings come from the environment (DATABASE_URL, OPIK_RUNNERS_BIND, OPIK_API_KEYS,
    ...: the README's configuration table lists them all); command-line flags win over them.
    """


@main.command()
@click.option("--bind", metavar="HOST:PORT", help="Where to listen (default: $OPIK_RUNNERS_BIND, else 127.0.0.1:5173).")
@click.option("--workers", type=click.IntRange(min=1), metavar="N",
              help="Worker processes (default: $OPIK_RUNNERS_WORKERS, else 2).")
def serve(bind, workers):
    """Serve the API (gunicorn with gevent workers, the shipped configuration).

    The database's schema is brought up to date first; a database written by a newer
    release is refused. Maintenance (job time-outs, purges, expiry) runs in the
    background every OPIK_RUNNER_REAPER_INTERVAL.
    """
    from . import serving

    settings = read_settings()
    serving.Server(serving.gunicorn_options(settings, bind=bind, workers=workers)).run()


@main.command()
@click.option("--check", is_flag=True, help="Change nothing: exit 1 and list the pending migrations, if any.")
def migrate(check):
    """Bring the database's schema to the version this release reads.

    Servers do this themselves when they start; run it to upgrade ahead of them, or
    with --check to see what an upgrade would do.
    """
    from . import migrations

    open_database(read_settings(), migrate=False)
    try:
        todo = migrations.pending()
    except migrations.SchemaTooNew as exc:
        raise click.ClickException(str(exc)) from None
    if check:
        if not todo:
            click.echo(f"The schema is current (version {migrations.LATEST}).")
            return
        click.echo(f"{len(todo)} pending migration(s), to version {migrations.LATEST}:")
        for migration in todo:
            click.echo(f"  {migration.version:04d} {migration.name}")
        raise SystemExit(1)
    applied = migrations.migrate()
    for migration in applied:
        click.echo(f"applied {migration.version:04d} {migration.name}")
    click.echo(f"The schema is current (version {migrations.LATEST}).")


@main.command()
def reap():
    """Run one maintenance cycle now.

    A cycle fails running jobs past their timeout, times out stale bridge commands, purges
    runners dead past OPIK_RUNNER_DEAD_PURGE_HOURS, and deletes finished jobs, their logs
    and pairing sessions past their TTL.

    Servers run one in the background every OPIK_RUNNER_REAPER_INTERVAL, one at a time
    across all their workers and instances. This one does not wait for the interval, and
    does nothing if a cycle is running elsewhere right now.
    """
    from . import maintenance

    settings = read_settings()
    open_database(settings)
    report = maintenance.run_cycle(settings, force=True)
    if report is None:
        raise click.ClickException("another reaper cycle is running right now; nothing done")
    click.echo(f"Reaper cycle done: {maintenance.describe(report)}.")


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
def backup(file, force):
    """Back up the live SQLite database that DATABASE_URL names to FILE.

    The copy is one consistent snapshot, taken with SQLite's online backup API while the
    server keeps serving, and checked with PRAGMA integrity_check. For PostgreSQL, use
    pg_dump.
    """
    from .backends import BackupUnsupported, open_backend

    if os.path.exists(file) and not force:
        raise click.ClickException(f"{file} exists; add --force to replace it")
    settings = read_settings()
    try:
        # Not connected through the pool: opening a missing SQLite file would create it.
        backend = open_backend(settings.database_url)
        backend.backup(file)
    except (BackupUnsupported, OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    size = os.path.getsize(file)
    click.echo(f"Backed up {backend.database} to {file} ({size:,} bytes, integrity check ok).")
