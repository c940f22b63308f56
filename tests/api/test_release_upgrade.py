"""A database written by an earlier release opens with today's code, is migrated, and
serves exactly what that release served: the same runners, jobs, listing pages and logs.

tests/fixtures/release-<version>.db was written by that release's own server, and
release-<version>.json holds its answers (tests/fixtures/make_release_db.py makes both).
Every later schema change adds a migration, and a release database beside these."""
import json
import pathlib
import shutil
import sqlite3

import pytest

from opik_runners.store import migrations
from opik_runners.app import create_app
from opik_runners.store.models import database
from tests.support.contract import ContractClient
from tests.support.in_app import API

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures"
RELEASES = sorted(path.stem for path in FIXTURES.glob("release-*.db"))
USERS = {
    "alice": {"Authorization": "key-a"},
    "bob": {"Authorization": "key-b"},
    "alice@team-a": {"Authorization": "key-a", "Comet-Workspace": "team-a"},
}


def rows(path, tables):
    with sqlite3.connect(path) as conn:
        return {table: sorted(conn.execute(f"SELECT * FROM {table}").fetchall(), key=repr) for table in tables}


def tables(path):
    with sqlite3.connect(path) as conn:
        return [name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]


@pytest.fixture(params=RELEASES)
def release(request, tmp_path):
    """(a copy of the release's database, what the release answered)."""
    copy = tmp_path / f"{request.param}.db"
    shutil.copyfile(FIXTURES / f"{request.param}.db", copy)
    return copy, json.loads((FIXTURES / f"{request.param}.json").read_text())


def test_there_is_a_release_database():
    assert "release-1.0.0" in RELEASES


def test_the_upgraded_database_serves_what_the_release_served(release):
    path, recorded = release
    old_tables = tables(path)
    before = rows(path, old_tables)
    app = create_app(DATABASE_URL=f"sqlite:///{path}", OPIK_API_KEYS=recorded["api_keys"],
                     OPIK_RUNNER_REAPER_INTERVAL="0")
    app.test_client_class = ContractClient
    client = app.test_client()
    for read in recorded["reads"]:
        response = client.get(API + read["path"], headers=USERS[read["user"]])
        answer = response.json if response.data else None
        assert (response.status_code, answer) == (read["status"], read["body"]), f"{read['user']} GET {read['path']}"
    with database.connection_context():
        assert migrations.recorded_version() == migrations.LATEST
    assert rows(path, old_tables) == before  # the migration kept every row of every table as it was


def test_the_upgraded_database_takes_new_work(release):
    # Not only readable: alice's lapsed runner beats again and takes a new job for its agent.
    path, recorded = release
    app = create_app(DATABASE_URL=f"sqlite:///{path}", OPIK_API_KEYS=recorded["api_keys"],
                     OPIK_RUNNER_REAPER_INTERVAL="0", OPIK_RUNNER_NEXT_JOB_POLL_TIMEOUT="0.1")
    app.test_client_class = ContractClient
    client, alice = app.test_client(), USERS["alice"]
    demo = client.post(f"{API}/projects/retrieve", json={"name": "demo"}, headers=alice).json["id"]
    runners = client.get(f"{API}/local-runners?project_id={demo}", headers=alice).json["content"]
    endpoint = next(r["id"] for r in runners if r["type"] == "endpoint")
    listing = f"{API}/local-runners/{endpoint}/jobs"
    total = client.get(listing, headers=alice).json["total"]
    assert client.post(f"{API}/local-runners/{endpoint}/heartbeats", json={}, headers=alice).status_code == 200
    made = client.post(f"{API}/local-runners/jobs", json={"agent_name": "answer", "project_id": demo}, headers=alice)
    assert made.status_code == 201
    page = client.get(listing, headers=alice).json
    assert page["total"] == total + 1 and page["content"][0]["id"] == made.headers["Location"].rsplit("/", 1)[1]
