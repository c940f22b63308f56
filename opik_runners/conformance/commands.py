"""`opik-runners conformance`: the kit's two commands (cli.py adds the group to the command)."""
import sys
import time

import click

DEFAULT_URL = "http://127.0.0.1:5173/api"


@click.group()
def conformance():
    """Check Opik's runner protocol, in either direction.

    \b
    server  checks a server that speaks Opik's runner API (a real Opik, or this one)
            against Opik's behaviour, scenario by scenario, through its public API;
    runner  grades a runner client (the opik CLI, an SDK's runner, your own) against
            a server of its own, from the requests the client made.
    """


@conformance.command()
@click.option("--url", envvar="OPIK_URL_OVERRIDE", default=DEFAULT_URL, show_default=True, metavar="URL",
              help="The Opik API's base, as OPIK_URL_OVERRIDE names it (default: $OPIK_URL_OVERRIDE).")
@click.option("--api-key", envvar="OPIK_API_KEY", metavar="KEY", help="Sent as Authorization (or $OPIK_API_KEY).")
@click.option("--workspace", envvar="OPIK_WORKSPACE", default="default", show_default=True, metavar="NAME",
              help="Sent as Comet-Workspace (or $OPIK_WORKSPACE).")
@click.option("--project", "prefix", default="conformance", show_default=True, metavar="NAME",
              help="The first word of the projects the scenarios make (each scenario makes its own, with a "
                   "unique name, and deletes the runners it pairs).")
@click.option("--profile", type=click.Choice(["opik", "opik-runners"]), default="opik", show_default=True,
              help="What to expect: opik, Opik's behaviour; opik-runners, this server's documented departures "
                   "from it (docs/opik-behaviour.md#departures).")
@click.option("--only", metavar="PATTERN", help="Only these scenarios: comma-separated globs of areas, names or "
                                                "area.name (e.g. 'pairing,jobs.claim*').")
@click.option("--slow", is_flag=True, help="Also run the scenarios that wait for real time (a heartbeat's TTL).")
@click.option("--heartbeat-ttl", type=float, default=15.0, show_default=True, metavar="SECONDS",
              help="The server's OPIK_RUNNER_HEARTBEAT_TTL (for --slow).")
@click.option("--max-pending", type=click.IntRange(min=1), default=100, show_default=True, metavar="N",
              help="The server's OPIK_RUNNER_MAX_PENDING.")
@click.option("--poll-hold", type=float, metavar="SECONDS",
              help="The server's OPIK_RUNNER_NEXT_JOB_POLL_TIMEOUT; when given, an empty jobs/next must be "
                   "held that long.")
@click.option("--junit", type=click.Path(dir_okay=False, writable=True), metavar="FILE", help="Also write JUnit XML.")
@click.option("--json", "json_file", type=click.Path(dir_okay=False, writable=True), metavar="FILE",
              help="Also write the results as JSON.")
def server(url, api_key, workspace, prefix, profile, only, slow, heartbeat_ttl, max_pending, poll_hold, junit,
           json_file):
    """Check a server against Opik's runner protocol.

    Every area (health, projects, pairing, runners, heartbeats, jobs, the jobs listing, bridge
    commands, error shapes) through the public API only, as a runner and the Opik UI call it:
    nothing under /_admin/, and nothing reset. Each scenario works in a project of its own.

    A difference is reported with the request that showed it, what the profile expected and
    what came back. Exit status 0 only when nothing differs.

    \b
    Example:
      opik-runners conformance server --url http://localhost:5173/api --profile opik-runners
    """
    from . import report
    from . import server as server_check
    from .scenario import AREAS, Options

    options = Options(heartbeat_ttl=heartbeat_ttl, max_pending=max_pending, poll_hold=poll_hold)
    progress = report.Progress()
    started = time.monotonic()
    try:
        outcomes = server_check.check(url, profile, workspace, api_key, only, slow, options, progress, prefix)
    except (server_check.Unreachable, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        progress.end()
    seconds = time.monotonic() - started
    if not outcomes:
        raise click.ClickException(f"no scenario matches --only {only!r}")
    heading = f"Opik runner protocol: {url}, profile {profile}"
    click.echo(report.table(outcomes, heading, groups=AREAS).rsplit("\n", 1)[0] + "\n"
               + report.summary(outcomes, seconds))
    about = {"direction": "server", "url": url, "profile": profile, "seconds": round(seconds, 1)}
    if junit:
        report.write_junit(junit, outcomes, "opik-runners-conformance")
    if json_file:
        report.write_json(json_file, outcomes, **about)
    sys.exit(1 if any(o.bad for o in outcomes) else 0)
