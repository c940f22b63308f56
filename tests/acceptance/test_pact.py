"""A Pact verification run: the consumer pact tests/pacts/opik-cli-opik-runners.json (the jobs
listing, job creation, and job creation with no runner) verified against a real server with
pact-python's verifier (the Pact Rust core), which sets each interaction's provider state up
through POST /_admin/provider-states, injects the ids the state answers into the request
(`ProviderState` generators: `${runner_id}`, `${project_id}`), replays it, matches the answer
with the pact's matching rules, and tears the state down."""
import json
import os

import pact
import pytest
import requests

from tests.support import REPOSITORY
from tests.support.databases import fresh_database_url
from tests.support.servers import Server

PACT = os.path.join(REPOSITORY, "tests", "pacts", "opik-cli-opik-runners.json")


@pytest.fixture
def server(tmp_path, monkeypatch):
    # The verifier would report usage to the Pact project's servers: nothing leaves this machine.
    monkeypatch.setenv("PACT_DO_NOT_TRACK", "true")
    srv = Server(fresh_database_url(tmp_path), OPIK_RUNNERS_ADMIN="on").start()
    yield srv
    srv.stop()


def verifier(server, source):
    return (
        pact.Verifier("opik-runners", host="127.0.0.1")
        .add_transport(url=server.url)
        .add_source(source)
        .state_handler(f"{server.url}/_admin/provider-states", teardown=True, body=True)
        .set_request_timeout(15_000)
    )


def test_the_consumer_pact_verifies_against_the_server(server):
    run = verifier(server, PACT)
    run.verify()  # raises RuntimeError on any failure
    results = run.results
    assert results["result"] is True, run.output(strip_ansi=True)
    assert [r["result"] for r in results["interactionResults"]] == ["OK"] * 3
    # The requests carried the ids the provider states made (the listing found its runner, the job
    # its project), and each state was torn down after its interaction: no runner is left.
    journal = requests.get(f"{server.url}/_admin/requests", timeout=5).json()["requests"]
    replayed = sorted((entry["operation"], entry["status"]) for entry in journal if entry["operation"] != "ping")
    assert replayed == [("create_job", 201), ("create_job", 404), ("list_jobs", 200)]
    assert requests.get(f"{server.url}/_admin/state", timeout=5).json()["runners"] == []


def test_a_pact_the_server_does_not_keep_fails_verification(server, tmp_path):
    broken = json.loads(open(PACT).read())
    listing = broken["interactions"][0]
    listing["response"]["body"]["total"] = 4
    listing["providerStates"][0]["params"]["statuses"] = ["pending", "running", "completed"]
    broken["interactions"] = [listing]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    run = verifier(server, str(path))
    with pytest.raises(RuntimeError):
        run.verify()
    mismatches = run.results["interactionResults"][0]["mismatch"]["mismatches"]
    assert [(m["path"], m["expected"], m["actual"]) for m in mismatches] == [("$.total", "4", "3")]
