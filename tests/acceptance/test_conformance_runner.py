"""The conformance kit's runner direction, proven on real clients: the real Python CLI
(`opik endpoint`), the TypeScript SDK's runner (the opik npm package, launched by `opik
endpoint`), `opik connect` (the bridge), this project's `opik-runners simulate` (through the
command, as a person runs it), and a runner with four deliberate faults, which must fail exactly
those checks. The gradings run at once, each against a server of its own.

A real client that fails a check is a finding about the client, held to the reference: the
CLI's supervisor takes cancel announcements half the time and ignores them
(docs/opik-behaviour.md#cli-cancellation)."""
import concurrent.futures
import json
import pathlib
import shutil
import subprocess
import sys

import pytest

from tests.support.cli import ENDPOINT_AGENT_FILE, OPIK
from opik_runners.conformance.checks import CHECKS
from opik_runners.conformance.runner import Grader, Setup
from tests.support.databases import POSTGRES_URL

# The module's fixture (an npm install, then every client graded at once: 80-120 s on 2 cores) counts against
# its first test's limit: 900 s, not the suite's 180.
pytestmark = [pytest.mark.skipif(bool(POSTGRES_URL), reason="the grader serves from a SQLite database of its own"),
              pytest.mark.timeout(900)]

HERE = pathlib.Path(__file__).parent
ALL = {check.__name__ for check in CHECKS}
BRIDGE = {"signs_results", "refuses_forgeries"}
JOBS = {"runs_a_job", "reports_a_failure", "flushes_logs", "honours_cancels", "reports_only_claimed_jobs"}
# The one finding the reference explains (docs/opik-behaviour.md#cli-cancellation): under opik endpoint the
# child skips a job announced on its own heartbeats, and runs one announced on its supervisor's, which ignores
# them. The check shows both sides (a job announced to each kind of heartbeat), so a child that stopped
# honouring its own would fail without this wording.
SUPERVISOR_FINDING = "only one process honours the announcements"


def python_cli(tmp):
    (tmp / "agent.py").write_text(ENDPOINT_AGENT_FILE)
    return Setup([OPIK, "endpoint", "--project", "conformance", "--headless", "--no-watch", "--name", "py-graded",
                  "--", sys.executable, "agent.py"], pairing="self", fail_agent="boom", cwd=str(tmp))


def typescript(tmp):
    if not shutil.which("npm") or not shutil.which("node"):
        pytest.skip("Node.js and npm are not installed")
    for name in ("agent.mjs", "package.json"):
        shutil.copy(HERE / "ts_agent" / name, tmp / name)
    installed = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=tmp,
                               capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return Setup([OPIK, "endpoint", "--project", "conformance", "--headless", "--no-watch", "--name", "ts-graded",
                  "--", "node", "agent.mjs"], pairing="self", cwd=str(tmp),
                 env={"OPIK_LOG_LEVEL": "WARN"})  # the SDK's own log lines would join the job's


def connect(tmp):
    subprocess.run(["git", "init", "-q"], cwd=tmp, check=True)  # opik connect serves a repository
    (tmp / "README.md").write_text("graded\n")
    return Setup([OPIK, "connect", "--project", "conformance", "--non-interactive", "--name", "c-graded"],
                 pairing="auto", cwd=str(tmp))


def faulty(tmp):
    return Setup([sys.executable, str(HERE / "faulty_runner.py")], pairing="grader", cwd=str(tmp))


CLIENTS = {"python-cli": python_cli, "typescript": typescript, "connect": connect, "faulty": faulty}


def grade_simulate_through_the_command(tmp):
    """`opik-runners conformance runner -- opik-runners simulate`, as a person types it; its JSON."""
    report = tmp / "scorecard.json"
    done = subprocess.run([sys.executable, "-m", "opik_runners", "conformance", "runner", "--quiet", "--json",
                           str(report), "--", sys.executable, "-m", "opik_runners", "simulate", "--project",
                           "conformance", "--agents", "logs:2,fail"], cwd=tmp, capture_output=True, text=True,
                          timeout=600)
    return done, json.loads(report.read_text()) if report.exists() else None


@pytest.fixture(scope="module")
def scorecards(tmp_path_factory):
    """Every client graded at once (a few minutes in all, not one after another): {name: outcomes
    by check name, or the exception that stopped its grading}."""
    setups = {}
    for name, make in CLIENTS.items():
        try:
            setups[name] = make(tmp_path_factory.mktemp(name))
        except pytest.skip.Exception as skipped:
            setups[name] = skipped
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(setups) + 1) as pool:
        futures = {name: pool.submit(Grader(setup).run, CHECKS) for name, setup in setups.items()
                   if isinstance(setup, Setup)}
        futures["simulate"] = pool.submit(grade_simulate_through_the_command, tmp_path_factory.mktemp("simulate"))
        results = {name: setup for name, setup in setups.items() if not isinstance(setup, Setup)}
        for name, future in futures.items():
            try:
                outcome = future.result()
            except Exception as exc:  # reported by the client's own test
                outcome = exc
            results[name] = outcome if name == "simulate" or isinstance(outcome, Exception) else {
                o.name: o for o in outcome}
    return results


def card(scorecards, name):
    found = scorecards[name]
    if isinstance(found, pytest.skip.Exception):
        pytest.skip(str(found))
    if isinstance(found, Exception):
        raise found
    return found


def verdicts(outcomes):
    return {kind: {name for name, o in outcomes.items() if o.outcome == kind} for kind in ("passed", "failed", "skipped")}


def explain(outcomes):
    return "\n".join(f"{o.outcome} {name}: {o.reason} {o.details}" for name, o in outcomes.items() if o.outcome != "passed")


@pytest.mark.parametrize("client", ["python-cli", "typescript"])
def test_a_real_endpoint_client_passes_every_check_that_applies(scorecards, client):
    outcomes = card(scorecards, client)
    seen = verdicts(outcomes)
    assert seen["skipped"] == BRIDGE, explain(outcomes)  # an endpoint runner polls no bridge commands
    if "honours_cancels" in seen["failed"]:
        assert SUPERVISOR_FINDING in outcomes["honours_cancels"].details[0], explain(outcomes)
    assert seen["failed"] <= {"honours_cancels"}, explain(outcomes)
    assert "agent 'answer' called with inputs" in outcomes["runs_a_job"].details[0]


def test_opik_connect_passes_the_bridge_checks(scorecards):
    outcomes = card(scorecards, "connect")
    seen = verdicts(outcomes)
    assert seen["skipped"] == JOBS and seen["failed"] == set(), explain(outcomes)
    assert seen["passed"] == ALL - JOBS
    assert "auth_failed" in outcomes["refuses_forgeries"].details[0]


def test_the_faulty_runner_fails_exactly_its_four_faults(scorecards):
    outcomes = card(scorecards, "faulty")
    seen = verdicts(outcomes)
    assert seen["failed"] == {"heartbeats", "honours_cancels", "backs_off", "reports_only_claimed_jobs"}, \
        explain(outcomes)
    assert seen["skipped"] == BRIDGE | {"ends_on_410", "deletes_on_ctrl_c"}, explain(outcomes)
    assert "0 heartbeat(s)" in outcomes["heartbeats"].details[0]
    assert "retried without backing off" in outcomes["backs_off"].details[0]


def test_the_simulated_runner_passes_through_the_command(scorecards):
    done, report = card(scorecards, "simulate")
    assert done.returncode == 0, done.stdout + done.stderr
    assert report["direction"] == "runner" and report["summary"]["failed"] == 0, report
    results = {r["name"]: r for r in report["results"]}
    assert {name for name, r in results.items() if r["outcome"] == "skipped"} == BRIDGE, report
    assert "Runner client:" in done.stdout and "it claims a job" in done.stdout
