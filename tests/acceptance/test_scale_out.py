"""Scale-out under load, on real gunicorn servers: exactly-once job and bridge-command claims
across worker processes (and across server instances sharing one PostgreSQL), wake-ups of
held polls across processes, and a worker SIGKILLed under load (docs/opik-behaviour.md#job-states,
docs/opik-behaviour.md#bridge-states, docs/opik-behaviour.md#job-claim,
docs/opik-behaviour.md#bridge-next)."""
import asyncio
import base64
import json
import os
import re
import signal
import threading
import time
import uuid
from collections import Counter
from datetime import datetime

import pytest
import requests

from opik_runners.protocol import activation_hmac_text
from tests.support.databases import POSTGRES_URL, fresh_database_url, waiting_on_locks
from tests.support.servers import Server, child_pids, pair_over_http
from tests.support.threads import Task, join_all, run_all
from tests.support.waiting import start_of_fresh_minute_if_needed, wait_until

# Every server here: runners stay connected for the whole test, queues never hit their cap.
BASE_ENV = {
    "OPIK_RUNNER_HEARTBEAT_TTL": "600",
    "OPIK_RUNNER_MAX_PENDING": "100000",
    "OPIK_RUNNER_NEXT_JOB_POLL_TIMEOUT": "1",
}
# Lines of the server log worth showing when a test fails.
PROBLEM = re.compile(r"error|exception|traceback|locked|deadlock|could not|timeout|\[CRITICAL\]", re.I)


# -- servers


@pytest.fixture
def start_server(tmp_path):
    """Start real gunicorn servers (the shipped config, BASE_ENV + overrides); all are stopped
    at teardown, and their logs shown when they hold errors."""
    started = []

    def start(database_url=None, **env):
        srv = Server(database_url or fresh_database_url(tmp_path), **{**BASE_ENV, **env})
        try:
            srv.start()
        except Exception:
            srv.stop()
            raise
        started.append(srv)
        return srv

    yield start
    for srv in started:
        text = srv.stop()
        # Shown by pytest when the test failed: the server's side of the story.
        trouble = [block for block in re.split(r"\n(?=\[)", text) if PROBLEM.search(block.split("\n", 1)[0])]
        if trouble:
            print(f"--- server on port {srv.port}: {len(trouble)} error lines, the last ones:")
            print("\n".join(trouble[-10:]))


def log_lines(srv):
    return srv.output().splitlines()


def problems(*servers):
    """The server log lines that look like trouble (for assertion messages)."""
    lines = [line.rstrip() for srv in servers for line in log_lines(srv) if PROBLEM.search(line)]
    return "\n".join(lines[-40:]) or "(no error lines in the server log)"


DEADLOCK_RETRIED = "deadlock, the transaction runs again"


def assert_clean_log(*servers):
    """No [ERROR] line at all (a 500 answered, or a wake-up watcher that died quietly), and no
    control-plane change run again after a deadlock: it answers as if nothing happened, but a
    deadlock means two writes took rows in different orders."""
    errors = [line for srv in servers for line in log_lines(srv) if "[ERROR]" in line or DEADLOCK_RETRIED in line]
    assert not errors, problems(*servers)


# -- the API


def api_of(url):
    return f"{url}/api/v1/private"


def create_job(session, url, runner, n=0):
    """POST jobs; return the response (201 with the job id in Location)."""
    return session.post(
        f"{api_of(url)}/local-runners/jobs",
        json={"agent_name": "answer", "project_id": runner["project_id"], "inputs": {"question": f"q{n}"}},
        headers=runner["headers"],
        timeout=30,
    )


def job_id_of(response):
    assert response.status_code == 201, (response.status_code, response.text)
    return response.headers["Location"].rsplit("/", 1)[1]


def submit_command(session, url, runner, n=0):
    response = session.post(
        f"{api_of(url)}/local-runners/{runner['runner_id']}/bridge/commands",
        json={"type": "ReadFile", "args": {"path": f"file-{n}.txt"}},
        headers=runner["headers"],
        timeout=30,
    )
    assert response.status_code == 201, (response.status_code, response.text)
    return response.json()["command_id"]


def list_jobs(url, runner):
    response = requests.get(
        f"{api_of(url)}/local-runners/{runner['runner_id']}/jobs",
        params={"size": 100000},
        headers=runner["headers"],
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()


def parse_time(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# -- threads


def create_jobs(url, runner, count, threads=4, into=None, offset=0):
    """Create `count` jobs over HTTP from `threads` sessions; return their ids."""
    ids = [] if into is None else into

    def make(first):
        with requests.Session() as session:
            for n in range(first, offset + count, threads):
                ids.append(job_id_of(create_job(session, url, runner, n)))

    run_all([Task(make, offset + t) for t in range(threads)])
    return ids


def job_poller(url, runner, done, delivered):
    """Poll jobs/next on its own connection until two `null`s in a row, both asked after
    `done` was set (so nothing created before `done` can still be waiting)."""
    poll = f"{api_of(url)}/local-runners/{runner['runner_id']}/jobs/next"
    nulls = 0
    with requests.Session() as session:
        while nulls < 2:
            after_done = done.is_set()
            response = session.post(poll, headers=runner["headers"], timeout=30)
            assert response.status_code == 200, (response.status_code, response.text)
            job = response.json()
            if job is None:
                nulls = nulls + 1 if after_done else 0
                continue
            nulls = 0
            assert job["status"] == "running" and job["runner_id"] == runner["runner_id"], job
            delivered.append(job)


def command_poller(url, runner, done, delivered, batch=7):
    poll = f"{api_of(url)}/local-runners/{runner['runner_id']}/bridge/commands/next"
    empties = 0
    with requests.Session() as session:
        while empties < 2:
            after_done = done.is_set()
            response = session.post(poll, json={"max_commands": batch}, headers=runner["headers"], timeout=30)
            assert response.status_code == 200, (response.status_code, response.text)
            commands = response.json()["commands"]
            if not commands:
                empties = empties + 1 if after_done else 0
                continue
            empties = 0
            assert len(commands) <= batch, len(commands)
            delivered.extend(commands)


def poll_while(pollers, create, done):
    """Start the pollers, run `create()` beside them, then set `done` (also when `create`
    fails, so the pollers finish) and wait for the pollers."""
    for poller in pollers:
        poller.start()
    try:
        run_all([Task(create)])
    finally:
        done.set()
    join_all(pollers)


def assert_exactly_once(created, delivered_ids, what, *servers):
    duplicates = sorted(i for i, times in Counter(delivered_ids).items() if times > 1)
    missing = set(created) - set(delivered_ids)
    unknown = set(delivered_ids) - set(created)
    assert not duplicates, f"{len(duplicates)} {what} delivered twice, e.g. {duplicates[:3]}\n{problems(*servers)}"
    assert not missing, f"{len(missing)} of {len(created)} {what} never delivered\n{problems(*servers)}"
    assert not unknown, f"{len(unknown)} {what} delivered that were never created"
    assert len(delivered_ids) == len(created)


def assert_all_running(url, runner, created):
    listing = list_jobs(url, runner)
    assert listing["total"] == len(created)
    assert {job["id"] for job in listing["content"]} == set(created)
    statuses = {job["status"] for job in listing["content"]}
    assert statuses == {"running"}, statuses


# -- 1. jobs: exactly once across four workers


def test_jobs_created_beforehand_are_claimed_exactly_once_across_workers(start_server):
    srv = start_server(OPIK_RUNNERS_WORKERS="4")
    runner = pair_over_http(srv.url, "scale", "runner")
    created = create_jobs(srv.url, runner, 1500)
    assert len(set(created)) == 1500

    done, delivered = threading.Event(), []
    done.set()  # everything is queued already
    run_all([Task(job_poller, srv.url, runner, done, delivered) for _ in range(16)])

    assert_exactly_once(created, [job["id"] for job in delivered], "jobs", srv)
    assert_all_running(srv.url, runner, created)
    assert_clean_log(srv)


def test_jobs_created_while_polled_are_claimed_exactly_once_across_workers(start_server):
    srv = start_server(OPIK_RUNNERS_WORKERS="4")
    runner = pair_over_http(srv.url, "scale", "runner")

    done, delivered, created = threading.Event(), [], []
    pollers = [Task(job_poller, srv.url, runner, done, delivered) for _ in range(16)]

    def creator():
        time.sleep(0.3)  # the pollers are waiting: most jobs below wake a held poll, in any worker
        create_jobs(srv.url, runner, 1000, threads=2, into=created)

    poll_while(pollers, creator, done)

    assert len(set(created)) == 1000
    assert_exactly_once(created, [job["id"] for job in delivered], "jobs", srv)
    assert_all_running(srv.url, runner, created)
    assert_clean_log(srv)
    delays = sorted(parse_time(job["started_at"]) - parse_time(job["created_at"]) for job in delivered)
    print(f"create->claim delay: median {delays[len(delays) // 2]:.3f}s, max {delays[-1]:.3f}s")


# -- 2. bridge commands: exactly once across four workers


def test_bridge_commands_are_claimed_exactly_once_across_workers(start_server):
    srv = start_server(
        OPIK_RUNNERS_WORKERS="4",
        OPIK_BRIDGE_MAX_PENDING="100000",
        OPIK_BRIDGE_MAX_COMMANDS_PER_MINUTE="100000",
        OPIK_BRIDGE_MAX_WRITE_COMMANDS_PER_MINUTE="100000",
        OPIK_BRIDGE_POLL_TIMEOUT="1",
    )
    runner = pair_over_http(srv.url, "scale", "daemon", runner_type="connect", capabilities=["bridge"])
    submitted = []

    def submit(first, count, step):
        with requests.Session() as session:
            for n in range(first, count, step):
                submitted.append(submit_command(session, srv.url, runner, n))

    # Half queued before the pollers start, half submitted while they poll.
    run_all([Task(submit, t, 400, 4) for t in range(4)])
    done, delivered = threading.Event(), []
    pollers = [Task(command_poller, srv.url, runner, done, delivered) for _ in range(16)]
    poll_while(pollers, lambda: run_all([Task(submit, 400 + t, 800, 2) for t in range(2)]), done)

    assert len(set(submitted)) == 800
    assert_exactly_once(submitted, [c["command_id"] for c in delivered], "bridge commands", srv)
    paths = sorted(c["args"]["path"] for c in delivered)
    assert paths == sorted(f"file-{n}.txt" for n in range(800))
    # Every command is now picked up (a sample, read back through all the workers).
    with requests.Session() as session:
        for command_id in submitted[::20]:
            got = session.get(
                f"{api_of(srv.url)}/local-runners/{runner['runner_id']}/bridge/commands/{command_id}",
                headers=runner["headers"],
                timeout=10,
            )
            assert got.status_code == 200 and got.json()["status"] == "picked_up", got.text
    assert_clean_log(srv)


# -- the pending caps hold when the writes come all at once


def all_at_once(urls, path, body, headers, count):
    """`count` POSTs to `path` sent at once, each on its own connection, spread over the servers at
    `urls` (aiohttp: threads sending with requests reached the server too far apart to race);
    [(status, json, Location)]."""
    import aiohttp

    async def send_all():
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            async def send(url):
                async with session.post(f"{api_of(url)}{path}", json=body, headers=headers) as response:
                    text = await response.text()  # a job's 201 has no body
                    return response.status, json.loads(text) if text else None, response.headers.get("Location", "")
            return await asyncio.gather(*(send(urls[n % len(urls)]) for n in range(count)))

    return asyncio.run(send_all())


@pytest.mark.parametrize("kind", ["jobs", "bridge commands"])
def test_the_pending_cap_holds_when_writers_race(start_server, kind):
    """200 writes at once, on 200 connections to 4 workers (two instances of two on PostgreSQL),
    against a cap of 5: exactly 5 accepted, the rest 429. (On PostgreSQL each count read what was
    committed before it waited for the runner's lock, and up to 19 were accepted.)"""
    caps = {"OPIK_RUNNER_MAX_PENDING": "5", "OPIK_BRIDGE_MAX_PENDING": "5", "OPIK_BRIDGE_MAX_COMMANDS_PER_MINUTE": "100000"}
    if POSTGRES_URL:
        srv = start_server(OPIK_RUNNERS_WORKERS="2", **caps)
        servers = [srv, start_server(srv.env["DATABASE_URL"], OPIK_RUNNERS_WORKERS="2", **caps)]
    else:
        srv = start_server(OPIK_RUNNERS_WORKERS="4", **caps)
        servers = [srv]
    if kind == "jobs":
        runner = pair_over_http(srv.url, "caps", "laptop")
        path, body = "/local-runners/jobs", {"agent_name": "answer", "project_id": runner["project_id"]}
        refusal = "Too many pending jobs for this runner"
    else:
        runner = pair_over_http(srv.url, "caps", "daemon", runner_type="connect", capabilities=["bridge"])
        path, body = f"/local-runners/{runner['runner_id']}/bridge/commands", {"type": "ReadFile", "args": {"path": "a"}}
        refusal = "Too many pending commands"
    responses = all_at_once([s.url for s in servers], path, body, runner["headers"], 200)

    assert Counter(status for status, _, _ in responses) == {201: 5, 429: 195}, problems(srv)
    assert all(answer == {"errors": [refusal]} for status, answer, _ in responses if status == 429)
    # What is stored agrees: five waiting, each of them one of the acknowledged.
    accepted = {location.rsplit("/", 1)[1] for status, _, location in responses if status == 201}
    if kind == "jobs":
        listed = list_jobs(srv.url, runner)
        assert {job["id"] for job in listed["content"]} == accepted and listed["total"] == 5
    else:
        for command_id in accepted:
            got = requests.get(f"{api_of(srv.url)}{path}/{command_id}", headers=runner["headers"], timeout=10)
            assert got.json()["status"] == "pending", got.text
    assert_clean_log(*servers)


def test_activations_at_once_leave_one_runner_connected(start_server):
    """Eight pairing sessions for one project, activated at once (over two instances on
    PostgreSQL): each activation evicts the runner before it, so one stays connected. (On
    PostgreSQL each read the runners to evict before the others committed: up to five stayed.)"""
    import aiohttp

    srv = start_server(OPIK_RUNNERS_WORKERS="2")
    servers = [srv, start_server(srv.env["DATABASE_URL"], OPIK_RUNNERS_WORKERS="2")] if POSTGRES_URL else [srv]
    headers = {"Comet-Workspace": "race"}
    api = api_of(srv.url)
    assert requests.post(f"{api}/projects", json={"name": "demo"}, headers=headers, timeout=10).status_code == 201
    project_id = requests.post(f"{api}/projects/retrieve", json={"name": "demo"}, headers=headers, timeout=10).json()["id"]
    sessions = []
    for _ in range(8):
        key = os.urandom(32)
        made = requests.post(f"{api}/pairing/sessions", headers=headers, timeout=10, json={
            "project_id": project_id, "activation_key": base64.b64encode(key).decode(), "type": "endpoint"})
        sessions.append((made.json(), key))

    async def activate_all():
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            async def activate(n, made, key):
                url = f"{api_of(servers[n % len(servers)].url)}/pairing/sessions/{made['session_id']}/activate"
                body = {"runner_name": f"laptop-{n}", "hmac": activation_hmac_text(made["session_id"], key, f"laptop-{n}")}
                async with session.post(url, json=body, headers=headers) as response:
                    return response.status
            return await asyncio.gather(*(activate(n, made, key) for n, (made, key) in enumerate(sessions)))

    assert asyncio.run(activate_all()) == [201] * 8
    listed = requests.get(f"{api}/local-runners", params={"project_id": project_id}, headers=headers, timeout=10)
    assert listed.json()["total"] == 1, listed.text
    [runner] = listed.json()["content"]
    assert runner["id"] in {made["runner_id"] for made, _ in sessions} and runner["status"] == "connected"
    assert_clean_log(*servers)


def test_jobs_created_while_the_runner_is_re_paired_are_never_left_pending_on_it(start_server):
    """Jobs sent at once while a new pairing evicts their runner (over two instances on
    PostgreSQL): each acknowledged job is on the live runner or failed with the old one; none
    stays pending on a detached runner, and nobody gets a 5xx. (On PostgreSQL a job routed before
    the eviction was numbered after it, and waited on the detached runner.)"""
    import aiohttp

    srv = start_server(OPIK_RUNNERS_WORKERS="2", OPIK_RUNNERS_ADMIN="on")
    servers = [srv, start_server(srv.env["DATABASE_URL"], OPIK_RUNNERS_WORKERS="2")] if POSTGRES_URL else [srv]
    for round_ in range(3):
        old = pair_over_http(srv.url, "repair", f"laptop-{round_}")
        key = os.urandom(32)
        made = requests.post(f"{api_of(srv.url)}/pairing/sessions", headers=old["headers"], timeout=10, json={
            "project_id": old["project_id"], "activation_key": base64.b64encode(key).decode(), "type": "endpoint"}).json()

        async def race():
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
                async def create(n):
                    url = f"{api_of(servers[n % len(servers)].url)}/local-runners/jobs"
                    body = {"agent_name": "answer", "project_id": old["project_id"]}
                    async with session.post(url, json=body, headers=old["headers"]) as response:
                        return response.status

                async def activate():
                    await asyncio.sleep(0.01)  # among the creates, not before them
                    url = f"{api_of(servers[-1].url)}/pairing/sessions/{made['session_id']}/activate"
                    body = {"runner_name": "laptop-new", "hmac": activation_hmac_text(made["session_id"], key, "laptop-new")}
                    async with session.post(url, json=body, headers=old["headers"]) as response:
                        return response.status
                return await asyncio.gather(activate(), *(create(n) for n in range(100)))

        activated, *created = asyncio.run(race())
        assert activated == 201
        # The new runner has no agents yet: a job routed to it is a 400, as upstream answers.
        assert set(created) <= {201, 400} and 201 in created, Counter(created)
        state = requests.get(f"{srv.url}/_admin/state", params={"workspace": "repair"}, timeout=30).json()
        detached = {r["id"] for r in state["runners"] if r.get("detached_at")}
        assert old["runner_id"] in detached
        stranded = [j for j in state["jobs"] if j["runner_id"] in detached and j["status"] in ("pending", "running")]
        assert not stranded, f"{len(stranded)} of {Counter(created)[201]} jobs left open on a detached runner"
    assert_clean_log(*servers)


@pytest.mark.parametrize("how", ["provider states", "seeds", "no-runners states"])
def test_control_plane_writes_at_once_share_the_project_they_name(start_server, how):
    """Eight provider-state setups, or eight seeds, sent at once (over two instances on
    PostgreSQL), each naming the same new project: each is loaded, all into one project. (On
    PostgreSQL each looked for the project before the others committed, and 3-4 of 8 were
    refused with a unique-key conflict.) "no runners" makes its project itself
    (provider_states.project_for): each of the eight answers the same project."""
    import aiohttp

    srv = start_server(OPIK_RUNNERS_WORKERS="2", OPIK_RUNNERS_ADMIN="on")
    servers = [srv, start_server(srv.env["DATABASE_URL"], OPIK_RUNNERS_WORKERS="2", OPIK_RUNNERS_ADMIN="on")] \
        if POSTGRES_URL else [srv]

    def request(n):
        if how == "provider states":
            return "/_admin/provider-states", {"action": "setup", "state": "a connected endpoint runner",
                                               "params": {"workspace": "shared", "project": "new", "runner": f"r{n}"}}
        if how == "no-runners states":
            return "/_admin/provider-states", {"action": "setup", "state": "no runners",
                                               "params": {"workspace": "shared", "project": "new"}}
        return "/_admin/state", {"runners": [{"workspace": "shared", "project": "new", "name": f"r{n}"}]}

    async def send_all():
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            async def send(n):
                path, body = request(n)
                async with session.post(servers[n % len(servers)].url + path, json=body) as response:
                    return response.status, await response.text()
            return await asyncio.gather(*(send(n) for n in range(8)))

    answers = asyncio.run(send_all())
    assert [status for status, _ in answers] == [200] * 8, [text for status, text in answers if status != 200][:1]
    state = requests.get(f"{srv.url}/_admin/state", params={"workspace": "shared"}, timeout=30).json()
    [project] = [p for p in state["projects"] if p["name"] == "new"]
    if how == "no-runners states":
        assert {json.loads(text)["project_id"] for _, text in answers} == {project["id"]}
    else:
        assert sorted(r["name"] for r in state["runners"] if r["project_id"] == project["id"]) == [f"r{n}" for n in range(8)]
    assert_clean_log(*servers)


def test_checklist_patches_at_once_are_all_merged(start_server):
    """Twenty PATCHes of a runner's checklist sent at once (over two instances on PostgreSQL),
    each adding its own key: the checklist holds all twenty."""
    import aiohttp

    srv = start_server(OPIK_RUNNERS_WORKERS="2")
    servers = [srv, start_server(srv.env["DATABASE_URL"], OPIK_RUNNERS_WORKERS="2")] if POSTGRES_URL else [srv]
    runner = pair_over_http(srv.url, "merge", "laptop")
    path = f"/local-runners/{runner['runner_id']}/checklist"

    async def patch_all():
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            async def patch(n):
                url = f"{api_of(servers[n % len(servers)].url)}{path}"
                async with session.patch(url, json={"steps": {f"step-{n}": "done"}}, headers=runner["headers"]) as r:
                    return r.status
            return await asyncio.gather(*(patch(n) for n in range(20)))

    assert asyncio.run(patch_all()) == [204] * 20
    got = requests.get(f"{api_of(srv.url)}/local-runners/{runner['runner_id']}", headers=runner["headers"], timeout=10)
    assert sorted(got.json()["checklist"]["steps"]) == sorted(f"step-{n}" for n in range(20)), got.text
    assert_clean_log(*servers)


def test_trace_writes_at_once_are_all_merged(start_server):
    """Twenty PATCHes of one new trace, each with its own field, and batches naming the same ten
    traces in opposite orders, all sent at once (over two instances on PostgreSQL): every field
    is kept, and no batch fails."""
    import aiohttp

    srv = start_server(OPIK_RUNNERS_WORKERS="2")
    servers = [srv, start_server(srv.env["DATABASE_URL"], OPIK_RUNNERS_WORKERS="2")] if POSTGRES_URL else [srv]
    headers = {"Comet-Workspace": "traces"}
    patched = str(uuid.uuid4())
    batched = [str(uuid.uuid4()) for _ in range(10)]

    async def send_all():
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            async def send(n, method, path, body):
                url = f"{api_of(servers[n % len(servers)].url)}{path}"
                async with session.request(method, url, json=body, headers=headers) as r:
                    return r.status
            patches = [send(n, "PATCH", f"/traces/{patched}", {f"field_{n}": n}) for n in range(20)]
            batches = [send(n, "POST", "/traces/batch", {"traces": [
                {"id": trace_id, f"from_{n}": True} for trace_id in (batched if n % 2 else batched[::-1])]})
                for n in range(10)]
            return await asyncio.gather(*patches, *batches)

    statuses = asyncio.run(send_all())
    assert statuses == [204] * 30, (Counter(statuses[:20]), Counter(statuses[20:]), problems(*servers))
    got = requests.get(f"{api_of(srv.url)}/traces/{patched}", headers=headers, timeout=10).json()
    assert {key for key in got if key.startswith("field_")} == {f"field_{n}" for n in range(20)}, got
    for trace_id in batched:
        got = requests.get(f"{api_of(srv.url)}/traces/{trace_id}", headers=headers, timeout=10).json()
        assert {key for key in got if key.startswith("from_")} == {f"from_{n}" for n in range(10)}, got
    assert_clean_log(*servers)


# -- a reset waits for the writes in flight (PostgreSQL's row locks)


def send_behind_a_held_runner(srv, runner_id, write, headers=None):
    """Hold the runner's row from outside, send `write` (url, JSON body) and wait until it waits
    for a runner's row, then send a reset and wait until it waits too; let the row go. The
    write's response and the reset's."""
    import psycopg2

    holder = psycopg2.connect(srv.env["DATABASE_URL"])
    answers = {}

    def send(url, body=None):
        answers[url] = requests.post(url, json=body, headers=headers, timeout=60)

    tasks = []
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT 1 FROM runner WHERE id = %s FOR UPDATE", (runner_id,))
            assert cur.rowcount == 1
        for request, waiting, like in ((write, 1, '%FROM "runner"%FOR UPDATE%'),
                                       ((f"{srv.url}/_admin/reset",), 2, "%")):
            tasks.append(Task(send, *request))
            tasks[-1].start()
            wait_until(lambda: waiting_on_locks(srv.env["DATABASE_URL"], like) >= waiting)
    finally:
        holder.commit()
        holder.close()
    join_all(tasks, timeout=60)
    return answers[write[0]], answers[f"{srv.url}/_admin/reset"]


@pytest.mark.skipif(not POSTGRES_URL, reason="row locks: SQLite's one write lock orders every write")
@pytest.mark.parametrize("write", ["bridge submission", "activation"])
def test_a_reset_waits_for_a_write_in_flight_instead_of_deadlocking(start_server, write):
    """A write that holds a runner's row, and a reset, both in flight: the reset waits for the
    write, and both succeed. The runner's row is held from outside until the write waits for it
    and the reset waits too, so the write goes first: the reset that deleted the runner's
    children before taking its row deadlocked with a bridge submission (its rate counter) and
    with an activation evicting a runner with pending jobs; PostgreSQL failed one of the two
    with a 503 every time."""
    srv = start_server(OPIK_RUNNERS_ADMIN="on", OPIK_BRIDGE_MAX_COMMANDS_PER_MINUTE="100000")
    with requests.Session() as http:
        if write == "bridge submission":
            runner = pair_over_http(srv.url, "w", "daemon", runner_type="connect", capabilities=["bridge"])
            # This minute's rate counter exists, and the held submission adds to it (a new minute
            # would insert a row of its own): the reset deletes it.
            start_of_fresh_minute_if_needed(needed=15)
            submit_command(http, srv.url, runner)
            path = f"/local-runners/{runner['runner_id']}/bridge/commands"
            body, expected = {"type": "ReadFile", "args": {"path": "a"}}, 201
        else:
            runner = pair_over_http(srv.url, "w", "laptop")
            assert create_job(http, srv.url, runner).status_code == 201  # pending: the eviction fails it
            key = os.urandom(32)
            made = http.post(f"{api_of(srv.url)}/pairing/sessions", headers=runner["headers"], timeout=10, json={
                "project_id": runner["project_id"], "activation_key": base64.b64encode(key).decode(),
                "type": "endpoint"}).json()
            path = f"/pairing/sessions/{made['session_id']}/activate"
            body, expected = {"runner_name": "new", "hmac": activation_hmac_text(made["session_id"], key, "new")}, 201

    written, reset = send_behind_a_held_runner(srv, runner["runner_id"], (f"{api_of(srv.url)}{path}", body),
                                               runner["headers"])
    assert (written.status_code, reset.status_code) == (expected, 204), (written.text, reset.text)
    state = requests.get(f"{srv.url}/_admin/state", timeout=30).json()
    assert state["runners"] == [] and state["jobs"] == [] and state["bridge_commands"] == [], state
    assert_clean_log(srv)


@pytest.mark.skipif(not POSTGRES_URL, reason="row locks: SQLite's one write lock orders every write")
def test_a_reset_that_loses_a_deadlock_runs_again(start_server):
    """A write that takes rows against the reset's order (from outside: a bridge command's row,
    then its runner's) deadlocks with a reset; PostgreSQL aborts the reset, which waited first,
    and the reset runs again instead of answering 503."""
    import psycopg2

    srv = start_server(OPIK_RUNNERS_ADMIN="on")
    runner = pair_over_http(srv.url, "w", "daemon", runner_type="connect", capabilities=["bridge"])
    with requests.Session() as http:
        command_id = submit_command(http, srv.url, runner)
    holder = psycopg2.connect(srv.env["DATABASE_URL"])
    answers = {}

    def reset():
        answers["reset"] = requests.post(f"{srv.url}/_admin/reset", timeout=60)

    def take_the_runner():  # waits for the reset, which holds the runner: the deadlock
        with holder.cursor() as cur:
            cur.execute("SELECT 1 FROM runner WHERE id = %s FOR UPDATE", (runner["runner_id"],))
        holder.commit()

    try:
        with holder.cursor() as cur:
            cur.execute("SELECT 1 FROM bridge_command WHERE id = %s FOR UPDATE", (command_id,))
        resetting = Task(reset)
        resetting.start()
        # At once: the reset waited first, so its one deadlock check (deadlock_timeout, 1 s, after
        # it began to wait) comes first and finds the cycle, if the outside wait has begun by then.
        wait_until(lambda: waiting_on_locks(srv.env["DATABASE_URL"], '%DELETE FROM "bridge_command"%') >= 1,
                   interval=0.01)
        outside = Task(take_the_runner)
        outside.start()
        join_all([outside, resetting], timeout=60)
    finally:
        holder.close()
    assert answers["reset"].status_code == 204, (answers["reset"].text, srv.output()[-3000:])
    assert requests.get(f"{srv.url}/_admin/state", timeout=30).json()["runners"] == []
    assert f"{DEADLOCK_RETRIED} (attempt 2 of 3)" in srv.output()


@pytest.mark.skipif(not POSTGRES_URL, reason="row locks: SQLite's one write lock orders every write")
def test_a_seed_naming_stored_runners_and_a_reset_take_them_in_one_order(start_server):
    """A seed whose jobs name two stored runners, the higher id first, and a reset, both in
    flight: the seed takes the runners in key order, as the reset does, and both succeed. The
    higher runner's row is held from outside until both wait. (Taken in the document's order,
    the seed held the higher and waited for the lower, which the reset held while it waited for
    the higher.)"""
    srv = start_server(OPIK_RUNNERS_ADMIN="on")
    seeded = requests.post(f"{srv.url}/_admin/state", timeout=30, json={"runners": [
        {"workspace": "w", "project": "one", "name": "a"}, {"workspace": "w", "project": "two", "name": "b"}]})
    assert seeded.status_code == 200, seeded.text
    low, high = sorted(r["id"] for r in requests.get(f"{srv.url}/_admin/state", timeout=30).json()["runners"])
    document = {"jobs": [{"runner_id": high, "agent_name": "answer"}, {"runner_id": low, "agent_name": "answer"}]}
    loaded, reset = send_behind_a_held_runner(srv, high, (f"{srv.url}/_admin/state", document))
    assert (loaded.status_code, reset.status_code) == (200, 204), (loaded.text, reset.text)
    assert requests.get(f"{srv.url}/_admin/state", timeout=30).json()["jobs"] == []  # the reset came second
    assert_clean_log(srv)


@pytest.mark.skipif(not POSTGRES_URL, reason="row locks: SQLite's one write lock orders every write")
def test_logs_for_a_job_deleted_while_they_are_written_are_a_404(start_server):
    """A job deleted (expired, reset) between the log batch's read of it and its insert: the batch
    is a 404, as for a job already gone, not a 503. The deletion is held open from outside until
    the insert waits for it."""
    import psycopg2

    srv = start_server()
    runner = pair_over_http(srv.url, "w", "laptop")
    with requests.Session() as http:
        job_id = job_id_of(create_job(http, srv.url, runner))
    holder = psycopg2.connect(srv.env["DATABASE_URL"])
    answers = {}

    def send():
        answers["logs"] = requests.post(f"{api_of(srv.url)}/local-runners/jobs/{job_id}/logs", timeout=60,
                                        json=[{"stream": "stdout", "text": "hi"}], headers=runner["headers"])

    try:
        with holder.cursor() as cur:
            cur.execute("DELETE FROM job WHERE id = %s", (job_id,))
            assert cur.rowcount == 1
        writer = Task(send)
        writer.start()
        wait_until(lambda: waiting_on_locks(srv.env["DATABASE_URL"], '%INSERT INTO "job_log"%') >= 1)
    finally:
        holder.commit()
        holder.close()
    join_all([writer], timeout=60)
    assert answers["logs"].status_code == 404, answers["logs"].text
    assert answers["logs"].json() == {"code": 404, "message": f"Job not found: '{job_id}'"}
    assert_clean_log(srv)


# -- 3. a job wakes the poll held for its runner, whichever worker holds it


def hold_polls(url, runners, timeout=30):
    """Start one jobs/next per runner, each on its own connection; return the threads."""
    tasks = []
    for runner in runners:

        def poll(runner=runner):
            response = requests.post(
                f"{api_of(url)}/local-runners/{runner['runner_id']}/jobs/next",
                headers=runner["headers"],
                timeout=timeout,
            )
            runner["answer"], runner["answered_at"] = response, time.monotonic()

        tasks.append(Task(poll))
    for task in tasks:
        task.start()
    return tasks


def test_a_new_job_wakes_the_poll_held_in_any_worker(start_server):
    srv = start_server(OPIK_RUNNERS_WORKERS="4", OPIK_RUNNER_NEXT_JOB_POLL_TIMEOUT="8")
    runners = [pair_over_http(srv.url, f"ws-{i}", f"runner-{i}") for i in range(8)]
    polls = hold_polls(srv.url, runners)
    time.sleep(1.0)
    assert all(poll.is_alive() for poll in polls), "a poll returned before any job existed"

    for i, runner in enumerate(runners):
        runner["job_id"] = job_id_of(create_job(requests, srv.url, runner, i))  # a new connection each
    created_at = time.monotonic()
    join_all(polls, timeout=5, what="held polls (8 s poll timeout, so: not woken by their job)")

    for runner in runners:
        assert runner["answer"].status_code == 200
        job = runner["answer"].json()
        assert job is not None, f"the poll of {runner['runner_id']} was not woken\n{problems(srv)}"
        assert job["id"] == runner["job_id"] and job["status"] == "running"
        assert runner["answered_at"] - created_at < 5
    assert_clean_log(srv)


# -- 4. two instances sharing one PostgreSQL


@pytest.mark.skipif(not POSTGRES_URL, reason="needs TEST_DATABASE_URL (two instances share one PostgreSQL)")
def test_two_instances_on_one_postgres_claim_exactly_once_and_wake_each_other(start_server, tmp_path):
    database_url = fresh_database_url(tmp_path)
    a = start_server(database_url, OPIK_RUNNERS_WORKERS="2")
    b = start_server(database_url, OPIK_RUNNERS_WORKERS="2")
    assert a.port != b.port

    # Paired through A; jobs created through A and B alternately, claimed by pollers on
    # both: exactly once.
    runner = pair_over_http(a.url, "scale", "runner")
    created, delivered, done = [], [], threading.Event()
    for srv in (a, b):  # a queue to start from, filled through both
        create_jobs(srv.url, runner, 200, threads=2, into=created, offset=len(created))
    pollers = [Task(job_poller, srv.url, runner, done, delivered) for srv in (a, b) for _ in range(8)]

    def creator():
        with requests.Session() as via_a, requests.Session() as via_b:
            for n in range(400):
                session, srv = (via_a, a) if n % 2 == 0 else (via_b, b)
                created.append(job_id_of(create_job(session, srv.url, runner, n)))

    poll_while(pollers, creator, done)
    assert len(set(created)) == 800
    assert_exactly_once(created, [job["id"] for job in delivered], "jobs", a, b)
    assert_all_running(b.url, runner, created)
    assert_clean_log(a, b)

    # Both instances again, now holding polls up to 8 s, started while the schema exists:
    # a poll held on B is woken by a job created through A, and one held on A by a job
    # created through B.
    for srv in (a, b):
        srv.stop()
    a = start_server(database_url, OPIK_RUNNERS_WORKERS="2", OPIK_RUNNER_NEXT_JOB_POLL_TIMEOUT="8")
    b = start_server(database_url, OPIK_RUNNERS_WORKERS="2", OPIK_RUNNER_NEXT_JOB_POLL_TIMEOUT="8")
    first, second = pair_over_http(a.url, "ws-1", "runner-1"), pair_over_http(b.url, "ws-2", "runner-2")
    held = hold_polls(b.url, [first]) + hold_polls(a.url, [second])
    time.sleep(1.0)
    assert all(poll.is_alive() for poll in held), "a poll returned before any job existed"
    first["job_id"] = job_id_of(create_job(requests, a.url, first))
    second["job_id"] = job_id_of(create_job(requests, b.url, second))
    created_at = time.monotonic()
    join_all(held, timeout=5, what="held polls (8 s poll timeout, so: not woken by the other instance)")
    for runner in (first, second):
        assert runner["answer"].status_code == 200
        job = runner["answer"].json()
        assert job is not None, f"a held poll was not woken by the other instance\n{problems(a, b)}"
        assert job["id"] == runner["job_id"] and job["status"] == "running"
        assert runner["answered_at"] - created_at < 5
    assert_clean_log(a, b)


# -- 5. a worker SIGKILLed under load


def test_a_worker_killed_under_load_loses_no_acknowledged_job_and_delivers_none_twice(start_server):
    srv = start_server(
        OPIK_RUNNERS_WORKERS="2",
        OPIK_RUNNER_JOB_TIMEOUT="2",
        OPIK_RUNNER_REAPER_INTERVAL="0.5",  # the background reaper, in whichever worker takes its lock
    )
    runner = pair_over_http(srv.url, "scale", "runner")
    stop = threading.Event()
    acknowledged, claims, broken, unexpected = [], [], [], []
    kill = {}

    def creator():
        session, n = requests.Session(), 0
        while not stop.is_set():
            n += 1
            try:
                response = create_job(session, srv.url, runner, n)
            except requests.RequestException as exc:  # in flight on the killed worker: not acknowledged
                broken.append(("create", repr(exc)))
                session = requests.Session()
                continue
            if response.status_code == 201:
                acknowledged.append((job_id_of(response), time.monotonic()))
            else:
                unexpected.append(("create", response.status_code, response.text))

    def poller():
        session = requests.Session()
        poll = f"{api_of(srv.url)}/local-runners/{runner['runner_id']}/jobs/next"
        while not stop.is_set():
            try:
                response = session.post(poll, headers=runner["headers"], timeout=30)
            except requests.RequestException as exc:
                broken.append(("claim", repr(exc)))
                session = requests.Session()
                continue
            if response.status_code != 200:
                unexpected.append(("claim", response.status_code, response.text))
            elif response.json() is not None:
                claims.append((response.json()["id"], time.monotonic()))

    tasks = [Task(creator)] + [Task(poller) for _ in range(4)]
    for task in tasks:
        task.start()
    try:
        time.sleep(1.0)
        workers = child_pids(srv.process.pid)
        assert len(workers) == 2, workers
        victim = workers[0]
        os.kill(victim, signal.SIGKILL)
        kill["at"] = time.monotonic()
        # The master replaces the worker; the load goes on through it and the survivor.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            now = child_pids(srv.process.pid)
            if len(now) == 2 and victim not in now:
                break
            time.sleep(0.05)
        assert len(now) == 2 and victim not in now, f"the master did not replace worker {victim}: {now}"
        time.sleep(1.0)
    finally:
        stop.set()
    join_all(tasks, timeout=40)
    ended = time.monotonic()

    assert not unexpected, f"{unexpected[:3]}\n{problems(srv)}"
    assert acknowledged and claims
    assert any(at > kill["at"] for _, at in acknowledged), "no job was created after the kill"
    print(f"{len(acknowledged)} jobs acknowledged, {len(claims)} claims, {len(broken)} requests broken by the kill")

    # No job was delivered twice.
    claimed = [job_id for job_id, _ in claims]
    twice = {job_id for job_id, times in Counter(claimed).items() if times > 1}
    assert not twice, f"jobs delivered twice: {sorted(twice)[:3]}\n{problems(srv)}"
    # Nothing acknowledged is lost: every 201 can be read back, through either worker.
    with requests.Session() as session:
        for job_id, _ in acknowledged:
            got = session.get(f"{api_of(srv.url)}/local-runners/jobs/{job_id}", headers=runner["headers"], timeout=10)
            assert got.status_code == 200, f"acknowledged job {job_id} is gone: {got.status_code}\n{problems(srv)}"
    # Every delivered job left the queue: it is running, or already timed out.
    jobs = {job["id"]: job for job in list_jobs(srv.url, runner)["content"]}
    assert {job_id for job_id, _ in acknowledged} <= set(jobs)
    for job_id in claimed:
        assert job_id in jobs, f"claimed job {job_id} does not exist"
        assert jobs[job_id]["status"] in ("running", "failed"), jobs[job_id]

    # Claimed and never reported: the reaper fails each 2 s after it started (here about 3 s
    # after the load stopped), including any claimed by a request the kill cut off.
    time.sleep(max(0.0, ended + 2.5 - time.monotonic()))
    deadline = time.monotonic() + 8
    while True:
        jobs = {job["id"]: job for job in list_jobs(srv.url, runner)["content"]}
        running = [job for job in jobs.values() if job["status"] == "running"]
        if not running or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not running, f"{len(running)} jobs still running 2 s past their timeout: {running[0]}\n{problems(srv)}"
    for job_id in claimed:
        job = jobs[job_id]
        assert job["status"] == "failed" and job["error"] == "Job timed out after 2s", job
        assert parse_time(job["completed_at"]) - parse_time(job["started_at"]) >= 2
    # The rest never left the queue.
    assert {job["status"] for job in jobs.values()} <= {"pending", "failed"}
    for job in jobs.values():
        if job["status"] == "failed":
            assert job["error"] == "Job timed out after 2s", job
