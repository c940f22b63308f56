"""The conformance kit's server direction, run by this project on every CI pass (SQLite and
PostgreSQL): every shared scenario passes against this server under its own profile; under
Opik's profile exactly the scenarios that show a documented departure differ; and a server that
departs where nothing documents it is reported scenario by scenario."""
import pathlib
import re
import subprocess
import sys

import pytest

from opik_runners.conformance import scenario, server as conformance
from opik_runners.conformance.scenarios import SCENARIOS
from tests.support.databases import fresh_database_url
from tests.support.servers import Server

HERE = pathlib.Path(__file__).parent
# Short enough that the slow scenario (a heartbeat's TTL running out) takes seconds, long enough
# that no other scenario's runner lapses while it runs.
SETTINGS = {"OPIK_RUNNER_HEARTBEAT_TTL": "8s", "OPIK_RUNNER_NEXT_JOB_POLL_TIMEOUT": "2s"}
OPTIONS = scenario.Options(heartbeat_ttl=8, poll_hold=2)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    srv = Server(fresh_database_url(tmp_path_factory.mktemp("conformance")), **SETTINGS).start()
    yield srv
    srv.stop()


def check(srv, profile, only=None):
    return conformance.check(f"{srv.url}/api", profile, only=only, slow=True, options=OPTIONS)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: f"{s.area}.{s.name}")
def test_every_scenario_passes_against_this_server_under_its_own_profile(served, scenario):
    (outcome,) = check(served, "opik-runners", only=f"{scenario.area}.{scenario.name}")
    assert outcome.outcome == "passed", "\n".join(outcome.details) or outcome.reason


def test_under_opiks_profile_exactly_the_documented_departures_differ(served):
    outcomes = check(served, "opik")
    differing = {o.name for o in outcomes if o.outcome == "differs"}
    departures = {s.name for s in SCENARIOS if s.departure}
    assert differing == departures, [(o.name, o.details) for o in outcomes if o.name in differing ^ departures]
    assert [o for o in outcomes if o.outcome == "skipped"] == []
    anchors = (HERE.parents[1] / "docs" / "opik-behaviour.md").read_text()
    for shown in SCENARIOS:  # every departure a scenario shows is one the reference documents
        assert shown.departure is None or f"{{#{shown.departure}}}" in anchors, shown.departure


def test_a_server_that_departs_undocumented_is_reported_scenario_by_scenario(tmp_path):
    srv = Server(fresh_database_url(tmp_path), app="divergent_app:create()", cwd=HERE, **SETTINGS).start()
    try:
        outcomes = check(srv, "opik-runners")
    finally:
        srv.stop()
    differing = {f"{o.group}.{o.name}": "\n".join(o.details) for o in outcomes if o.outcome == "differs"}
    assert sorted(differing) == ["listing.newest_first_in_pages", "runners.delete", "runners.read_runner"], differing
    assert "the status of DELETE /api/v1/private/local-runners/" in differing["runners.delete"]
    assert "expected 204, got 200" in differing["runners.delete"]
    assert re.search(r"connected_at: expected an ISO-8601 UTC time ending in Z, got null", differing["runners.read_runner"])
    assert "the jobs, newest first" in differing["listing.newest_first_in_pages"]
    assert "request: GET " in differing["listing.newest_first_in_pages"]  # the request that showed it


def test_the_command_checks_a_server_in_under_a_minute_and_writes_its_reports(served, tmp_path):
    junit, report = tmp_path / "conformance.xml", tmp_path / "conformance.json"
    done = subprocess.run([sys.executable, "-m", "opik_runners", "conformance", "server", "--url", f"{served.url}/api",
                           "--profile", "opik-runners", "--heartbeat-ttl", "8", "--poll-hold", "2",
                           "--junit", str(junit), "--json", str(report)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    slow = sum(s.slow for s in SCENARIOS)
    assert re.search(rf"^{len(SCENARIOS) - slow} passed, {slow} skipped in (\d+\.\d) s$", done.stdout, re.M), done.stdout
    seconds = float(re.search(r"in (\d+\.\d) s$", done.stdout, re.M).group(1))
    assert seconds < 60, done.stdout
    assert "<testsuites" in junit.read_text() and f'"passed": {len(SCENARIOS) - slow}' in report.read_text()
    differing = subprocess.run([sys.executable, "-m", "opik_runners", "conformance", "server", "--url",
                                f"{served.url}/api", "--only", "pairing.second_activation"],
                               capture_output=True, text=True, timeout=60)
    assert differing.returncode == 1 and "DIFFERS" in differing.stdout, differing.stdout
    # Every difference one of this server's departures: the default profile's run says which to use.
    assert "check it with --profile opik-runners." in differing.stdout, differing.stdout
    assert "check it with --profile" not in done.stdout
