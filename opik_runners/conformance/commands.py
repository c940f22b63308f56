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
    differences = [o for o in outcomes if o.bad]
    if profile == "opik" and differences and all(o.departure for o in differences):
        click.echo("Each difference is one of opik-runners' documented departures from Opik: if this server is "
                   "opik-runners, check it with --profile opik-runners.")
    about = {"direction": "server", "url": url, "profile": profile, "seconds": round(seconds, 1)}
    if junit:
        report.write_junit(junit, outcomes, "opik-runners-conformance")
    if json_file:
        report.write_json(json_file, outcomes, **about)
    sys.exit(1 if any(o.bad for o in outcomes) else 0)


@conformance.command(context_settings={"ignore_unknown_options": True},
                     short_help="Grade a runner client against a server of the grader's own.")
@click.option("--pairing", type=click.Choice(["auto", "self", "grader"]), default="auto", show_default=True,
              help="auto: the server activates the session COMMAND creates (opik endpoint, opik connect, "
                   "opik-runners simulate); self: COMMAND activates it with the HMAC (opik endpoint --headless); "
                   "grader: the grader pairs, and runs COMMAND as the runner's own process, with "
                   "OPIK_RUNNER_MODE=true and OPIK_RUNNER_ID (node agent.mjs, python agent.py).")
@click.option("--project", default="conformance", show_default=True, metavar="NAME",
              help="The project COMMAND pairs with (also given to it as $OPIK_PROJECT_NAME).")
@click.option("--workspace", default="default", show_default=True, metavar="NAME",
              help="The workspace (given to COMMAND as $OPIK_WORKSPACE).")
@click.option("--agent", metavar="NAME", help="The agent the job checks call (default: the first registered).")
@click.option("--inputs", metavar="JSON", help="Its inputs, a JSON object (default: generated from its params: "
                                               "strings \"conformance\", integers 7, floats 0.5, booleans true).")
@click.option("--fail-agent", metavar="NAME",
              help="An agent whose job fails (default: the first whose name contains \"fail\").")
@click.option("--heartbeat-ttl", type=float, default=15.0, show_default=True, metavar="SECONDS",
              help="The time-to-live a runner must heartbeat within (Opik's OPIK_RUNNER_HEARTBEAT_TTL).")
@click.option("--start-timeout", type=float, default=90.0, show_default=True, metavar="SECONDS",
              help="How long COMMAND may take to pair and register its agents.")
@click.option("--only", metavar="PATTERN", help="Only these checks: comma-separated globs of groups or names.")
@click.option("--junit", type=click.Path(dir_okay=False, writable=True), metavar="FILE", help="Also write JUnit XML.")
@click.option("--json", "json_file", type=click.Path(dir_okay=False, writable=True), metavar="FILE",
              help="Also write the scorecard as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines, only the scorecard.")
@click.argument("command", nargs=-1, required=True, metavar="-- COMMAND...")
def runner(pairing, project, workspace, agent, inputs, fail_agent, heartbeat_ttl, start_timeout, only, junit,
           json_file, quiet, command):
    """Grade a runner client: run COMMAND against a server of the grader's own, and check
    what it does from the server's request journal.

    The grader serves it on a free port with a temporary database and the control plane on,
    and starts COMMAND with the environment an Opik runner expects ($OPIK_URL_OVERRIDE,
    $OPIK_WORKSPACE, $OPIK_PROJECT_NAME, a scratch $HOME). Once it has paired, the grader
    runs jobs through it (one that completes, one that fails, one cancelled before it
    starts), injects 503s, 429s and dropped connections into its polls and heartbeats,
    restarts the server, deletes its runner (a 410) and presses Ctrl-C; for a runner that
    polls bridge commands, it sends a signed command and a forged one. The scorecard lists
    every check with its evidence, the journal's entries. Exit status 0 when no check fails.

    \b
    Examples:
      opik-runners conformance runner --pairing self -- \\
          opik endpoint --project conformance --headless -- python agent.py
      opik-runners conformance runner --pairing grader -- node agent.mjs
      opik-runners conformance runner -- opik-runners simulate --project conformance
    """
    import fnmatch
    import json as json_module
    import os

    from . import report
    from .checks import CHECKS
    from .runner import Grader, GraderError, Setup

    try:
        parsed = json_module.loads(inputs) if inputs else None
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--inputs") from None
    if parsed is not None and not isinstance(parsed, dict):
        raise click.BadParameter("a JSON object, e.g. '{\"question\": \"2+2?\"}'", param_hint="--inputs")
    chosen = CHECKS
    if only:
        patterns = [p.strip() for p in only.split(",") if p.strip()]
        chosen = [c for c in CHECKS if any(fnmatch.fnmatch(n, p) for p in patterns for n in (c.group, c.__name__))]
        if not chosen:
            raise click.ClickException(f"no check matches --only {only!r}")
    setup = Setup(list(command), pairing, project, workspace, agent, parsed, fail_agent, heartbeat_ttl,
                  start_timeout, cwd=os.getcwd())
    say = (lambda line: None) if quiet else (lambda line: click.echo(f"{time.strftime('%H:%M:%S')} {line}", err=True))
    started = time.monotonic()
    try:
        outcomes = Grader(setup, say).run(chosen)
    except GraderError as exc:
        raise click.ClickException(str(exc)) from None
    seconds = time.monotonic() - started
    heading = f"Runner client: {' '.join(command)} (pairing {pairing})"
    click.echo(report.table(outcomes, heading, groups=[c.group for c in CHECKS], evidence=True).rsplit("\n", 1)[0]
               + "\n" + report.summary(outcomes, seconds))
    if junit:
        report.write_junit(junit, outcomes, "opik-runners-runner-conformance")
    if json_file:
        report.write_json(json_file, outcomes, direction="runner", command=list(command), pairing=pairing,
                          seconds=round(seconds, 1))
    sys.exit(1 if any(o.bad for o in outcomes) else 0)
