"""The `opik-runners` command, run as a user runs it: the console script of the installed
package (and, once, a fresh venv with `pip install .`, away from the checkout)."""
import json
import os
import pathlib
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid

import pytest
import requests

from opik_runners import __version__
from opik_runners.store import db
from opik_runners.store.migrations import LATEST, MIGRATIONS, SchemaMigration
from opik_runners.store.models import Job, MaintenanceTask, now_us
from tests.support import REPOSITORY
from tests.support.data import running_job
from tests.support.databases import POSTGRES_URL
from tests.support.servers import Server, child_pids, free_port, pair_over_http
from tests.support.waiting import wait_until

COMMAND = str(pathlib.Path(sys.executable).with_name("opik-runners"))
SUBCOMMANDS = ["serve", "migrate", "reap", "backup", "seed"]
ROOT_FIXTURES = REPOSITORY / "tests" / "fixtures"
sqlite_only = pytest.mark.skipif(bool(POSTGRES_URL), reason="SQLite files")


def run(*args, env=None, cwd=None, timeout=120, command=COMMAND):
    return subprocess.run([command, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          env={**os.environ, **(env or {})})


def sqlite_url(tmp_path, name="runners"):
    return f"sqlite:///{tmp_path / (name + '.db')}"


def listening(port):
    try:
        return requests.get(f"http://127.0.0.1:{port}/is-alive/ping", timeout=1).status_code == 200
    except requests.RequestException:
        return False


class Process:
    """A server command started in its own session, stopped (SIGQUIT, then SIGKILL) at the end."""

    def __init__(self, args, env, cwd=None):
        self.process = subprocess.Popen(args, env={**os.environ, **env}, cwd=cwd, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, start_new_session=True)

    def wait_listening(self, port, timeout=30):
        """Until the server answers on `port`; fails with what it printed if it exits first."""
        deadline = time.monotonic() + timeout
        while not listening(port):
            assert self.process.poll() is None, f"the server exited:\n{self.stop()}"
            assert time.monotonic() < deadline, f"the server did not answer in {timeout} s:\n{self.stop()}"
            time.sleep(0.1)

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGQUIT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.communicate()[0]


# -- what a newcomer sees


def test_version_and_help_say_what_each_command_does():
    version = run("--version")
    assert (version.returncode, version.stdout.strip()) == (0, f"opik-runners {__version__}")
    top = run("--help")
    assert top.returncode == 0 and "Opik-compatible local-runner server" in top.stdout
    for name in SUBCOMMANDS:
        assert name in top.stdout
        help_text = run(name, "--help")
        assert help_text.returncode == 0, help_text.stderr
        assert help_text.stdout.startswith(f"Usage: opik-runners {name}")
        description = help_text.stdout.split("Options:")[0].split("\n\n", 1)[1].strip()
        assert len(description) > 60, f"{name} --help says too little: {description!r}"
    assert "--bind HOST:PORT" in run("serve", "--help").stdout and "--workers N" in run("serve", "--help").stdout
    assert "pg_dump" in run("backup", "--help").stdout


@pytest.mark.parametrize("args, says", [
    (["serve", "--workers", "0"], "Invalid value for '--workers'"),
    (["serve", "--workers", "many"], "Invalid value for '--workers'"),
    (["serve", "--port", "80"], "No such option '--port'"),
    (["backup"], "Missing argument 'FILE'"),
    (["frobnicate"], "No such command 'frobnicate'"),
])
def test_a_bad_flag_gets_a_usage_error_not_a_traceback(args, says):
    result = run(*args)
    assert result.returncode == 2
    assert says in result.stderr and "Usage: opik-runners" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_bad_setting_is_named(tmp_path):
    result = run("reap", env={"DATABASE_URL": sqlite_url(tmp_path), "OPIK_RUNNER_HEARTBEAT_TTL": "soon"})
    assert result.returncode == 1
    assert result.stderr.strip() == "Error: OPIK_RUNNER_HEARTBEAT_TTL='soon': not a duration: 'soon'"
    result = run("migrate", env={"DATABASE_URL": "mysql://x/y"})
    assert result.returncode == 1 and "DATABASE_URL must look like sqlite:///path or postgresql://" in result.stderr


# -- serve


def test_serve_flags_win_over_the_environment(tmp_path):
    from_env, from_flag = free_port(), free_port()
    server = Process([COMMAND, "serve", "--bind", f"127.0.0.1:{from_flag}", "--workers", "1"],
                     env={"DATABASE_URL": sqlite_url(tmp_path), "OPIK_RUNNERS_BIND": f"127.0.0.1:{from_env}",
                          "OPIK_RUNNERS_WORKERS": "3"})
    try:
        server.wait_listening(from_flag)
        assert not listening(from_env)
        assert len(child_pids(server.process.pid)) == 1
    finally:
        server.stop()


def test_the_checkouts_gunicorn_entry_serves_with_the_same_configuration(tmp_path):
    # The README's first command: gunicorn -c gunicorn.conf.py 'app:create_app()', from the checkout;
    # `-b` on gunicorn's command line wins over OPIK_RUNNERS_BIND.
    port = free_port()
    gunicorn = str(pathlib.Path(sys.executable).with_name("gunicorn"))
    server = Process([gunicorn, "-c", "gunicorn.conf.py", "-b", f"127.0.0.1:{port}", "app:create_app()"],
                     env={"DATABASE_URL": sqlite_url(tmp_path), "OPIK_RUNNERS_BIND": "127.0.0.1:1"}, cwd=REPOSITORY)
    try:
        server.wait_listening(port)
        assert requests.get(f"http://127.0.0.1:{port}/opik/pair/v1", timeout=5).status_code == 200
        assert len(child_pids(server.process.pid)) == 2  # OPIK_RUNNERS_WORKERS' default
    finally:
        log = server.stop()
    assert "Using worker: gevent" in log


def test_every_bind_of_gunicorn_is_allowed_as_a_host_and_one_beyond_loopback_is_warned_of(tmp_path):
    # Two -b flags: the second names this machine (resolving beyond the loopback names); a request that
    # names it in Host is served, as one naming the first, and the start logs one warning naming it.
    first, second = free_port(), free_port()
    name = socket.gethostname()
    try:
        socket.getaddrinfo(name, second)
    except OSError:
        pytest.skip(f"this machine's name, {name!r}, does not resolve")
    gunicorn = str(pathlib.Path(sys.executable).with_name("gunicorn"))
    server = Process([gunicorn, "-c", "gunicorn.conf.py", "-b", f"127.0.0.1:{first}", "-b", f"{name}:{second}",
                      "app:create_app()"], env={"DATABASE_URL": sqlite_url(tmp_path)}, cwd=REPOSITORY)
    try:
        server.wait_listening(first)
        for host in (f"127.0.0.1:{first}", f"{name}:{second}"):
            answer = requests.get(f"http://127.0.0.1:{first}/is-alive/ping", headers={"Host": host}, timeout=5)
            assert answer.status_code == 200, (host, answer.text)
        refused = requests.get(f"http://127.0.0.1:{first}/is-alive/ping", headers={"Host": f"other{name}"}, timeout=5)
        assert refused.status_code == 403
    finally:
        log = server.stop()
    warnings = [line for line in log.splitlines() if "beyond loopback" in line]
    assert len(warnings) == 1 and f"{name}:{second}" in warnings[0] and f"127.0.0.1:{first}" not in warnings[0], log
    assert f"OPIK_API_KEYS is unset while listening on {name}:{second}" in log, log  # no keys: say so too


@sqlite_only
def test_the_background_reaper_fails_a_timed_out_job_with_no_request_arriving(tmp_path):
    interval = 2
    url = sqlite_url(tmp_path)
    srv = Server(url, OPIK_RUNNER_REAPER_INTERVAL=str(interval)).start()
    try:
        runner = pair_over_http(srv.url, "reaper", "runner", agents={"answer": {"timeout": 1}})
        api = f"{srv.url}/api/v1/private/local-runners"
        made = requests.post(f"{api}/jobs", json={"agent_name": "answer", "project_id": runner["project_id"]},
                             headers=runner["headers"], timeout=5)
        claimed = requests.post(f"{api}/{runner['runner_id']}/jobs/next", headers=runner["headers"], timeout=15).json()
        assert claimed["id"] == made.headers["Location"].rsplit("/", 1)[1]
        timed_out_at = time.time() + 1  # nothing is sent to the server from here on
        job_id = uuid.UUID(claimed["id"]).hex
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            def status():
                return conn.execute("SELECT status, error FROM job WHERE id = ?", (job_id,)).fetchone()

            while status()[0] == "running" and time.time() < timed_out_at + 2 * interval + 5:
                time.sleep(0.1)
            failed_at = time.time()
            assert status() == ("failed", "Job timed out after 1s")
        assert failed_at <= timed_out_at + 2 * interval, (
            f"failed {failed_at - timed_out_at:.1f} s after its timeout passed: more than two {interval} s intervals"
        )
    finally:
        srv.stop()


# -- migrate


@sqlite_only
def test_migrate_check_lists_what_an_upgrade_would_do_and_migrate_does_it(tmp_path):
    env = {"DATABASE_URL": sqlite_url(tmp_path)}
    check = run("migrate", "--check", env=env)
    assert check.returncode == 1
    assert check.stdout.splitlines()[:4] == [f"{LATEST} pending migration(s), to version {LATEST}:", "  0001 baseline",
                                             "  0002 maintenance task", "  0003 control plane"]
    assert check.stdout.splitlines()[1:] == [f"  {m.version:04d} {m.name}" for m in MIGRATIONS]
    done = run("migrate", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"applied {m.version:04d} {m.name}" for m in MIGRATIONS] + [
        f"The schema is current (version {LATEST})."]
    again = run("migrate", "--check", env=env)
    assert (again.returncode, again.stdout.strip()) == (0, f"The schema is current (version {LATEST}).")


@sqlite_only
def test_migrate_upgrades_a_release_database(tmp_path):
    path = tmp_path / "release.db"
    path.write_bytes((ROOT_FIXTURES / "release-1.0.0.db").read_bytes())
    env = {"DATABASE_URL": f"sqlite:///{path}"}
    check = run("migrate", "--check", env=env)
    assert (check.returncode, check.stdout.splitlines()[1:]) == (1, [f"  {m.version:04d} {m.name}" for m in MIGRATIONS[1:]])
    assert run("migrate", env=env).returncode == 0
    assert run("migrate", "--check", env=env).returncode == 0


def test_a_newer_database_is_refused_by_migrate_and_by_serve(tmp_path):
    from tests.support.databases import fresh_database_url

    url = fresh_database_url(tmp_path)
    backend = db.open_and_migrate(url)
    with backend.connection_context():
        SchemaMigration.create(version=LATEST + 1, name="from the future", applied_at=0)
    backend.shut()
    for args in (["migrate"], ["migrate", "--check"]):
        refused = run(*args, env={"DATABASE_URL": url})
        assert refused.returncode == 1
        assert f"schema is version {LATEST + 1}, newer than this opik-runners ({__version__}) knows (version {LATEST})" \
            in refused.stderr
    port = free_port()
    served = run("serve", "--bind", f"127.0.0.1:{port}", env={"DATABASE_URL": url}, timeout=60)
    assert served.returncode == 1
    assert f"schema is version {LATEST + 1}" in served.stderr
    assert "Booting worker" not in served.stderr  # refused before any worker started


# -- reap


def test_reap_runs_one_cycle_now_and_says_what_it_did(tmp_path):
    from tests.support.databases import fresh_database_url

    url = fresh_database_url(tmp_path)
    backend = db.open_and_migrate(url)
    with backend.connection_context():
        stuck = running_job(timeout=1, started_ago=5)
        MaintenanceTask.update(last_started_at=now_us()).execute()  # a cycle just ran: the command does not wait
    backend.shut()
    result = run("reap", env={"DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ("Reaper cycle done: 1 jobs timed out, 0 runners purged, 0 commands timed out, "
                                     "0 jobs expired, 0 runners dropped, 0 sessions expired.")
    backend = db.open_database(url)
    with backend.connection_context():
        assert Job.get_by_id(stuck).status == "failed"
        with backend.exclusive("reaper") as taken:  # a cycle running elsewhere
            assert taken
            busy = run("reap", env={"DATABASE_URL": url})
    backend.shut()
    assert busy.returncode == 1 and "another reaper cycle is running right now; nothing done" in busy.stderr


# -- backup


@sqlite_only
def test_a_backup_under_write_load_is_whole_and_holds_every_acknowledged_job(tmp_path):
    url = sqlite_url(tmp_path)
    srv = Server(url, OPIK_RUNNER_MAX_PENDING="1000000", OPIK_RUNNER_HEARTBEAT_TTL="600").start()
    acknowledged, stop = [], threading.Event()
    try:
        runner = pair_over_http(srv.url, "backup", "runner")

        def writer():
            with requests.Session() as session:
                while not stop.is_set():
                    made = session.post(f"{srv.url}/api/v1/private/local-runners/jobs", headers=runner["headers"],
                                        json={"agent_name": "answer", "project_id": runner["project_id"],
                                              "inputs": {"text": "x" * 2000}}, timeout=10)
                    assert made.status_code == 201, made.text
                    acknowledged.append((made.headers["Location"].rsplit("/", 1)[1], time.monotonic()))

        writers = [threading.Thread(target=writer) for _ in range(4)]
        for thread in writers:
            thread.start()
        wait_until(lambda: len(acknowledged) > 300, timeout=60)
        began = time.monotonic()
        copy = tmp_path / "copy.db"
        backup = run("backup", str(copy), env={"DATABASE_URL": url})
        ended = time.monotonic()
        time.sleep(0.3)
        stop.set()
        for thread in writers:
            thread.join(timeout=30)
    finally:
        stop.set()
        srv.stop()
    assert backup.returncode == 0, backup.stderr
    assert backup.stdout.startswith(f"Backed up {url.removeprefix('sqlite:///')} to {copy}")
    before = {job_id.replace("-", "") for job_id, at in acknowledged if at < began}
    after = [job_id for job_id, at in acknowledged if at > ended]
    assert after, "the server stopped acknowledging writes around the backup"
    with sqlite3.connect(copy) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)  # one self-contained file
        held = {job_id for (job_id,) in conn.execute("SELECT id FROM job")}
    assert before <= held, f"{len(before - held)} jobs acknowledged before the backup are missing"
    assert not pathlib.Path(f"{copy}-wal").exists()


@sqlite_only
def test_backup_refuses_to_overwrite_without_force(tmp_path):
    env = {"DATABASE_URL": sqlite_url(tmp_path)}
    assert run("migrate", env=env).returncode == 0
    target = tmp_path / "existing.db"
    target.write_text("keep me")
    refused = run("backup", str(target), env=env)
    assert refused.returncode == 1 and f"{target} exists; add --force to replace it" in refused.stderr
    assert target.read_text() == "keep me"
    forced = run("backup", "--force", str(target), env=env)
    assert forced.returncode == 0, forced.stderr
    with sqlite3.connect(target) as conn:
        assert conn.execute("SELECT count(*) FROM schema_migration").fetchone() == (LATEST,)


def test_backup_of_a_missing_database_creates_nothing(tmp_path):
    missing = tmp_path / "missing.db"
    result = run("backup", str(tmp_path / "copy.db"), env={"DATABASE_URL": f"sqlite:///{missing}"})
    assert result.returncode == 1 and f"no SQLite database at {missing}" in result.stderr
    assert not missing.exists() and not (tmp_path / "copy.db").exists()


def test_backup_of_postgresql_says_to_use_pg_dump(tmp_path):
    result = run("backup", str(tmp_path / "copy.db"), env={"DATABASE_URL": "postgresql://u:p@127.0.0.1:1/opik"})
    assert result.returncode == 1
    assert "use PostgreSQL's own tool, e.g. pg_dump" in result.stderr
    assert not (tmp_path / "copy.db").exists()


# -- seed


SEED = {
    "version": 1,
    "runners": [{"project": "demo", "name": "seeded", "agents": {"answer": {"timeout": 0}}}],
    "jobs": [{"runner_id": "0190d2b4-0000-7000-8000-000000000001", "agent_name": "answer", "status": "completed",
              "result": {"answer": "4"}, "logs": [{"stream": "stdout", "text": "done"}]},
             {"runner_id": "0190d2b4-0000-7000-8000-000000000001", "agent_name": "answer"}],
}
SEED["runners"][0]["id"] = SEED["jobs"][0]["runner_id"]


def seed(url, *args, document=None):
    """`opik-runners seed ARGS`, with `document` on its standard input (for FILE `-`)."""
    return subprocess.run([COMMAND, "seed", *args], input=None if document is None else json.dumps(document),
                          capture_output=True, text=True, timeout=120, env={**os.environ, "DATABASE_URL": url})


def stored(url, workspace=None):
    from opik_runners.control.state.export import export_state

    backend = db.open_and_migrate(url)
    with backend.connection_context():
        document = export_state(workspace)
    backend.shut()
    return document


def test_seed_loads_a_file_or_stdin_and_replace_wipes_first(tmp_path):
    from tests.support.databases import fresh_database_url

    url = fresh_database_url(tmp_path)
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(SEED))
    loaded = seed(url, str(path))
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == ("Loaded 1 projects, 1 runners, 2 jobs, 1 job logs, 0 pairing sessions, "
                                     "0 bridge commands, 0 traces, 0 spans.")
    first = stored(url)
    assert [(r["name"], r["status"]) for r in first["runners"]] == [("seeded", "connected")]
    assert [j["status"] for j in first["jobs"]] == ["completed", "pending"]
    again = seed(url, "-", document=SEED)  # the same ids again: refused, nothing written
    assert again.returncode == 1
    assert again.stderr.strip() == f"Error: <stdin>: runners[0].id: {SEED['runners'][0]['id']} exists already"
    other = {"runners": [{"project": "other", "name": "replacing"}]}
    replaced = seed(url, "--replace", "-", document=other)
    assert replaced.returncode == 0, replaced.stderr
    assert replaced.stdout.splitlines()[0] == "Wiped the database."
    assert [r["name"] for r in stored(url)["runners"]] == ["replacing"]
    assert [p["name"] for p in stored(url)["projects"]] == ["other"]


def test_seed_into_one_workspace_replaces_that_workspace_only(tmp_path):
    from tests.support.databases import fresh_database_url

    url = fresh_database_url(tmp_path)
    assert seed(url, "-", document={"runners": [{"project": "demo", "name": "kept"}]}).returncode == 0
    assert seed(url, "--workspace", "team-b", "-", document=SEED).returncode == 0
    team = seed(url, "--workspace", "team-b", "--replace", "-", document={"runners": [{"project": "demo"}]})
    assert team.returncode == 0, team.stderr
    assert team.stdout.splitlines()[0] == "Wiped workspace 'team-b'."
    assert [r["name"] for r in stored(url, "default")["runners"]] == ["kept"]
    assert len(stored(url, "team-b")["runners"]) == 1 and stored(url, "team-b")["jobs"] == []
    elsewhere = seed(url, "--workspace", "team-b", "-", document={"workspace": "team-c"})
    assert elsewhere.returncode == 1
    assert elsewhere.stderr.strip() == "Error: <stdin>: the document is for workspace 'team-c', not 'team-b'"


def test_a_bad_seed_file_is_a_clear_error_and_changes_nothing(tmp_path):
    from tests.support.databases import fresh_database_url

    url = fresh_database_url(tmp_path)
    assert seed(url, "-", document=SEED).returncode == 0
    before = stored(url)
    missing = seed(url, str(tmp_path / "missing.json"))
    assert missing.returncode == 2
    assert f"Invalid value for 'FILE': '{tmp_path / 'missing.json'}': No such file or directory" in missing.stderr
    (tmp_path / "broken.json").write_text('{"runners": [')
    broken = seed(url, "--replace", str(tmp_path / "broken.json"))
    assert broken.returncode == 1 and broken.stderr.startswith(f"Error: {tmp_path / 'broken.json'}: not a JSON document:")
    wrong = seed(url, "--replace", "-", document={"runners": [{"project_id": str(uuid.UUID(int=7))}]})
    assert wrong.returncode == 1
    assert wrong.stderr.strip() == "Error: <stdin>: runners[0].project_id: no such project"
    for result in (missing, broken, wrong):
        assert "Traceback" not in result.stderr
    assert stored(url) == before  # --replace's wipe went with the refused load


@sqlite_only
def test_a_servers_export_seeded_into_another_database_serves_the_same_pages(tmp_path):
    source = Server(sqlite_url(tmp_path, "source"), OPIK_RUNNER_HEARTBEAT_TTL="600").start()
    try:
        runner = pair_over_http(source.url, "default", "exported")
        api = f"{source.url}/api/v1/private/local-runners"
        for i in range(3):
            made = requests.post(f"{api}/jobs", json={"agent_name": "answer", "project_id": runner["project_id"],
                                                      "inputs": {"i": i}}, timeout=5)
            assert made.status_code == 201
        requests.post(f"{api}/{runner['runner_id']}/jobs/next", timeout=15)
        exported = requests.get(f"{source.url}/_admin/state", timeout=5)
        pages = [requests.get(f"{api}/{runner['runner_id']}/jobs", params=q, timeout=5).content
                 for q in ({}, {"size": 2}, {"page": 1, "size": 2})]
    finally:
        source.stop()
    assert exported.status_code == 200
    target_url = sqlite_url(tmp_path, "target")
    (tmp_path / "state.json").write_bytes(exported.content)
    assert seed(target_url, str(tmp_path / "state.json")).returncode == 0
    target = Server(target_url).start()
    try:
        api = f"{target.url}/api/v1/private/local-runners"
        assert [requests.get(f"{api}/{runner['runner_id']}/jobs", params=q, timeout=5).content
                for q in ({}, {"size": 2}, {"page": 1, "size": 2})] == pages
        assert requests.get(f"{target.url}/_admin/state", timeout=5).content == exported.content
    finally:
        target.stop()


# -- installed from a fresh venv, away from the checkout


@sqlite_only
@pytest.mark.timeout(900)
def test_pip_install_into_a_fresh_venv_serves_from_anywhere(tmp_path):
    # From a copy of the checkout's files: pip builds in the source tree, and a build/ left there
    # by an earlier build would be packaged again (a removed module included).
    source = tmp_path / "checkout"
    shutil.copytree(REPOSITORY, source, ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__", "*.db"))
    venv = tmp_path / "v"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(source)], capture_output=True, text=True,
                             timeout=800)
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-2000:]
    located = subprocess.run([str(venv / "bin" / "python"), "-c", "import opik_runners; print(opik_runners.__file__)"],
                             capture_output=True, text=True, cwd="/", check=True)
    assert located.stdout.startswith(str(venv)), located.stdout  # the installed copy, not the checkout
    command = str(venv / "bin" / "opik-runners")
    assert run("--version", command=command, cwd="/").stdout.strip() == f"opik-runners {__version__}"
    port = free_port()
    server = Process([command, "serve", "--bind", f"127.0.0.1:{port}"],
                     env={"DATABASE_URL": sqlite_url(tmp_path), "PYTHONPATH": ""}, cwd="/")
    try:
        server.wait_listening(port)
        base = f"http://127.0.0.1:{port}"
        assert requests.get(f"{base}/opik/pair/v1", timeout=5).status_code == 200  # package data
        for asset in ("pair.js", "pair.css"):
            assert requests.get(f"{base}/opik/pair/{asset}", timeout=5).status_code == 200, asset
        console = REPOSITORY / "opik_runners" / "static" / "console"  # the console's, every file (views/ too)
        for asset in sorted(path.relative_to(console).as_posix() for path in console.rglob("*") if path.is_file()):
            assert requests.get(f"{base}/console/assets/{asset}", timeout=5).status_code == 200, asset
        assert b"/console/assets/app.js" in requests.get(f"{base}/", timeout=5).content
        made = requests.post(f"{base}/api/v1/private/projects", json={"name": "demo"}, timeout=5)
        assert made.status_code == 201
        assert requests.get(made.headers["Location"], timeout=5).json()["name"] == "demo"
    finally:
        server.stop()
