"""The `opik-runners` command: serve, migrate, reap, backup, seed, simulate, conformance."""
import os

import click

from . import __version__
from .conformance.commands import conformance
from .settings import SettingsError, load_settings


def read_settings(**overrides):
    try:
        return load_settings(**overrides)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def open_database(settings, migrate=True):
    """The backend DATABASE_URL names (migrated, unless `migrate` is off), with a
    connection open; errors become click's. The control plane's shared state comes with it:
    a reaper cycle or a seed reads the server's clock, moved or not."""
    import peewee

    from .control import shared  # noqa: F401 - registers the clock's refresh with the database
    from .store import db, migrations

    try:
        if migrate:
            backend = db.open_and_migrate(settings.database_url, settings.pool_size)
        else:
            backend = db.open_database(settings.database_url, settings.pool_size)
        backend.connect(reuse_if_open=True)
        return backend
    except (ValueError, migrations.SchemaTooNew) as exc:
        raise click.ClickException(str(exc)) from None
    except peewee.DatabaseError as exc:  # a SQLite file it cannot open, a PostgreSQL that refuses, ...
        raise click.ClickException(f"cannot open the database at {settings.database_url}: {exc}"
                                   f"{db.explain_open_failure(settings.database_url)}") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="opik-runners", message="%(prog)s %(version)s")
def main():
    """An Opik-compatible local-runner server: `opik endpoint` and `opik connect` pair with
    it, take jobs and run bridge commands, without the full Opik stack.

    Settings come from the environment (DATABASE_URL, OPIK_RUNNERS_BIND, OPIK_API_KEYS,
    ...: docs/reference/configuration.md, in the source repository, lists them all); command-line
    flags win over them.
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

    The data goes where DATABASE_URL says: by default sqlite:///opik-runners.db, a file in the
    current directory.
    """
    from . import serving

    settings = read_settings()
    serving.Gunicorn(serving.gunicorn_options(settings, bind=bind, workers=workers)).run()


@main.command()
@click.option("--check", is_flag=True, help="Change nothing: exit 1 and list the pending migrations, if any.")
def migrate(check):
    """Bring the database's schema to the version this release reads.

    Servers do this themselves when they start; run it to upgrade ahead of them, or
    with --check to see what an upgrade would do.
    """
    from .store import migrations

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
    from .domain import maintenance

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
    from .store.backend import BackupUnsupported
    from .store.db import open_backend

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


@main.command()
@click.option("--project", required=True, metavar="NAME", help="The Opik project to pair with (created if missing).")
@click.option("--url", envvar="OPIK_URL_OVERRIDE", metavar="URL",
              help="The Opik API base URL, as the opik CLI takes it (default: $OPIK_URL_OVERRIDE, else "
                   "http://127.0.0.1:5173/api, where `opik-runners serve` listens).")
@click.option("--name", metavar="NAME", help="The runner's name (default: simulated-<6 hex digits>). A server that "
                                             "activates pairing itself names the runner after its id.")
@click.option("--agents", "spec", metavar="SPEC", default="echo,fail,sleep:5,logs:10", show_default=True,
              help="Comma-separated [NAME=]SCRIPT items; NAME defaults to the script's word (see SCRIPTS below).")
@click.option("--workspace", envvar="OPIK_WORKSPACE", default="default", show_default=True, metavar="NAME",
              help="Sent as Comet-Workspace (or $OPIK_WORKSPACE).")
@click.option("--api-key", envvar="OPIK_API_KEY", metavar="KEY",
              help="Sent as Authorization, with no Bearer prefix (or $OPIK_API_KEY).")
@click.option("--pairing", type=click.Choice(["auto", "headless", "link"]), default="auto", show_default=True,
              help="auto: take the server's auto-activation, else this server's control plane, else print the "
                   "pairing link; headless: activate with the HMAC itself, as `opik endpoint --headless`; "
                   "link: always wait for the link to be opened (unless the server auto-activates).")
def simulate(project, url, name, spec, workspace, api_key, pairing):
    """Run a simulated `opik endpoint` runner whose agents follow scripts.

    For building a UI or a client on Opik runners without writing an agent. It uses the
    public Opik API only, with the calls the opik CLI makes, so it serves against this
    server or a real Opik alike: it pairs (with the server's auto-activation
    OPIK_PAIRING_AUTO_ACTIVATE, this server's control plane, or a link you open in a
    browser), registers its agents, heartbeats, takes jobs (several at once), reports
    their results, logs and traces, and deletes its runner on Ctrl-C or SIGTERM.

    \b
    SCRIPTS (every agent declares an optional string param `message`; echo also
    `count`, `temperature` and `verbose`, one of each type, for a form to show)
      echo           returns its inputs as the result
      fail           fails; the error is "SimulatedError: <message input, or a default>"
      sleep:SECONDS  waits SECONDS, then returns its inputs
      logs:N         writes N log lines, alternating stdout and stderr, then returns its inputs
      timeout        never answers: the job stays running until the server times it out

    \b
    Example:
      opik-runners simulate --project demo --agents echo,nap=sleep:2,logs:100,stuck=timeout
    """
    from .client import agents as scripts
    from .client import simulate as simulation
    from .client.pairing import SimulationError

    try:
        agents = scripts.parse_agents(spec)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--agents") from None
    try:
        scripts.check_name(name)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--name") from None
    runner = simulation.Simulator(project, agents, url=url, name=name, workspace=workspace, api_key=api_key,
                                  pairing=pairing, say=click.echo)
    try:
        runner.run()
    except SimulationError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option("--workspace", metavar="NAME",
              help="Load into this workspace: items that name none go here, one naming another is an error; "
                   "with --replace, wipe only this workspace.")
@click.option("--replace", is_flag=True, help="Wipe the database (or --workspace) first, in the same transaction.")
def seed(file, workspace, replace):
    """Load a state document (FILE, or - for stdin) into the database.

    The document is what GET /_admin/state answers, or one written by hand: projects,
    runners (connected ones need no pairing), jobs in any status with their logs, pairing
    sessions, bridge commands, traces and spans; docs/reference/state-documents.md gives the format. Loading
    is all or nothing: a document that will not load changes nothing.
    """
    import json

    from .control.state.document import StateError
    from .control.state.seed import load_state
    from .control.state.wipe import wipe
    from .store.models import database

    def refuse(constant):
        raise ValueError(f"{constant} is not a JSON value")

    try:
        document = json.load(file, parse_constant=refuse)
    except ValueError as exc:
        raise click.ClickException(f"{file.name}: not a JSON document: {exc}") from None
    if workspace is not None and isinstance(document, dict):
        if document.get("workspace") not in (None, workspace):
            raise click.ClickException(f"{file.name}: the document is for workspace {document['workspace']!r}, "
                                       f"not {workspace!r}")
        document = {**document, "workspace": workspace}
    settings = read_settings()
    open_database(settings)
    try:
        with database.atomic():
            if replace:
                wipe(workspace)
            loaded = load_state(settings, document)
    except StateError as exc:
        raise click.ClickException(f"{file.name}: {exc}") from None
    if replace:
        click.echo(f"Wiped {'the database' if workspace is None else f'workspace {workspace!r}'}.")
    click.echo("Loaded " + ", ".join(f"{count} {kind.replace('_', ' ')}" for kind, count in loaded.items()) + ".")


main.add_command(conformance)  # opik-runners conformance server | runner
