"""The pytest plugin and RunnerServer, as a user of the package meets them: test files in a new
project run by a child pytest (the contract-tests page's example, against the real `opik endpoint`), the
package installed into a fresh venv, and RunnerServer outside pytest."""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap
import urllib.request

import pytest

from opik_runners.client.testing import RunnerServer, RunnerServerError
from tests.support import REPOSITORY, contract
from tests.support.databases import POSTGRES_URL, fresh_database_url

# docs/getting-started/contract-tests.md quotes this file; a person copies it into their project as a test file.
EXAMPLE = pathlib.Path(__file__).with_name("example_test_opik_endpoint.py")
# The plugin's server always runs on its own SQLite file: the PostgreSQL pass would repeat these.
own_sqlite = pytest.mark.skipif(bool(POSTGRES_URL), reason="the plugin's server has its own SQLite database")

RESETS = textwrap.dedent('''
    import json
    import pathlib
    import sys

    SEEN = {}


    def test_a_test_without_the_fixtures_starts_no_server():
        assert "opik_runners.client.testing" not in sys.modules


    def test_one_leaves_everything_behind(opik_runners):
        SEEN["url"] = opik_runners.url
        made = opik_runners.provider_state("an endpoint runner with jobs")
        SEEN["made"] = made
        opik_runners.fault(operation="list_jobs", status=503)
        opik_runners.advance_clock(3600)
        refused = opik_runners.api("GET", f"/local-runners/{made['runner_id']}/jobs", expect=(503,))
        assert refused["code"] == 503
        assert [entry["status"] for entry in opik_runners.requests()] == [503]
        pathlib.Path("server.json").write_text(json.dumps({"url": opik_runners.url,
                                                           "database": opik_runners.env["DATABASE_URL"]}))


    def test_the_next_starts_clean_on_the_same_server(opik_runners):
        assert opik_runners.url == SEEN["url"]  # one server for the session
        assert opik_runners.requests() == []
        assert opik_runners.faults() == []
        assert opik_runners.clock()["offset_s"] == 0
        document = opik_runners.state()
        assert not [key for key, value in document.items() if isinstance(value, list) and value], document
        made = SEEN["made"]
        assert opik_runners.api("GET", f"/local-runners/{made['runner_id']}", expect=(404,))
        for job_id in made["job_ids"]:
            assert opik_runners.api("GET", f"/local-runners/jobs/{job_id}", expect=(404,))
''')


def new_project(tmp_path, **files):
    """A directory with a pytest.ini of its own (so no configuration above it applies) and files."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "pytest.ini").write_text("[pytest]\n")
    for name, text in files.items():
        (project / name).write_text(text)
    return project


def child_pytest(project, python=sys.executable, *args, timeout=240):
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTEST_ADDOPTS")}
    ran = subprocess.run([python, "-m", "pytest", "-p", "no:cacheprovider", "-rA", *args], cwd=project, env=env,
                         capture_output=True, text=True, timeout=timeout)
    return ran.returncode, ran.stdout + ran.stderr


@own_sqlite
def test_the_readme_example_passes_in_a_new_project(tmp_path):
    project = new_project(tmp_path, **{"test_opik_endpoint.py": EXAMPLE.read_text()})
    # -p no:opik: opik's own pytest plugin, which the example does not use, costs seconds to load.
    code, output = child_pytest(project, sys.executable, "-p", "no:opik")
    assert code == 0 and "1 passed" in output, output


@own_sqlite
def test_opik_runners_resets_between_tests_on_one_server_started_once(tmp_path):
    project = new_project(tmp_path, **{"test_resets.py": RESETS})
    code, output = child_pytest(project, sys.executable, "-p", "no:opik")
    assert code == 0 and "3 passed" in output, output
    # The session's end stopped the server and removed its temporary database.
    server = json.loads((project / "server.json").read_text())
    database = pathlib.Path(server["database"].removeprefix("sqlite:///"))
    assert not database.exists() and not database.parent.exists()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{server['url']}/is-alive/ping", timeout=2)


@own_sqlite
@pytest.mark.timeout(300)
def test_pip_install_into_a_fresh_venv_and_the_readme_example_runs_green(tmp_path):
    # The package as pip builds and installs it, away from the checkout: its pytest11 entry point,
    # the plugin module and the admin document must come with it. Its dependencies (and opik,
    # pytest) are this venv's, through a .pth line, to keep the test fast; test_command.py
    # resolves the dependencies from scratch.
    source = tmp_path / "checkout"
    shutil.copytree(REPOSITORY, source, ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__", "*.db"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = str(venv / "bin" / "python")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps",
                              str(source)], capture_output=True, text=True, timeout=240)
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-2000:]
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    ours = subprocess.run([sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    pathlib.Path(purelib, "dev_dependencies.pth").write_text(ours + "\n")
    installed = subprocess.run([python, "-c", textwrap.dedent('''
        import importlib.metadata, importlib.resources, json
        import opik_runners.client.pytest_plugin
        dist = importlib.metadata.distribution("opik-runners")
        print(json.dumps({
            "plugin": opik_runners.client.pytest_plugin.__file__,
            "dist": str(dist.locate_file("")),
            "pytest11": [ep.value for ep in dist.entry_points if ep.group == "pytest11"],
            "document": importlib.resources.files("opik_runners").joinpath("admin-openapi.yaml").is_file(),
        }))
    ''')], capture_output=True, text=True, cwd="/")
    assert installed.returncode == 0, installed.stderr
    found = json.loads(installed.stdout)
    assert found["plugin"].startswith(purelib) and found["dist"].startswith(purelib), found  # not the checkout
    assert found["pytest11"] == ["opik_runners.client.pytest_plugin"] and found["document"], found

    project = new_project(tmp_path, **{"test_opik_endpoint.py": EXAMPLE.read_text()})
    code, output = child_pytest(project, python)  # as a person runs it: every installed plugin loaded
    assert code == 0 and "1 passed" in output, output


def test_runner_server_outside_pytest_serves_helps_and_cleans_up(tmp_path):
    with RunnerServer(workers=1) as server:
        server.check_response = contract.validate_http  # every answer checked against the documents
        database = pathlib.Path(server.env["DATABASE_URL"].removeprefix("sqlite:///"))
        assert database.exists() and server.url == server.api_url == f"{server.root_url}/api"
        assert server.requests() == []  # not even the pings that waited for the start
        assert urllib.request.urlopen(f"{server.root_url}/is-alive/ping", timeout=5).status == 200

        made = server.provider_state("an endpoint runner with jobs", counts={"pending": 1})
        [job_id] = made["job_ids"]
        assert server.job(job_id)["status"] == "pending"
        assert [runner["id"] for runner in server.runners("demo")] == [made["runner_id"]]
        assert server.job(server.create_job("demo", "answer", {"question": "2+2?"}))["agent_name"] == "answer"
        assert server.provider_state("an endpoint runner with jobs", action="teardown") == {}

        # The journal, and a wait that runs out saying what did arrive.
        server.clear_requests()
        server.api("GET", f"/local-runners/jobs/{job_id}", expect=(404,))
        [entry] = server.requests(operation="get_job")
        assert entry["status"] == 404 and entry["path"].endswith(job_id)
        with pytest.raises(AssertionError) as waited:
            server.wait_for(operation="next_job", timeout_s=0.2)
        assert "0 arrived" in str(waited.value) and f"GET /api/v1/private/local-runners/jobs/{job_id} -> 404" \
            in str(waited.value)
        assert server.wait_for(operation="get_job", since=0) == [entry]

        # A fault, deleted on leaving its block.
        with server.fault(operation="get_job", status=503, times=2) as fault:
            assert server.api("GET", f"/local-runners/jobs/{job_id}", expect=(503,))["code"] == 503
            assert [rule["id"] for rule in server.faults()] == [fault["id"]]
        assert server.faults() == []

        # The clock.
        assert server.advance_clock(90)["offset_s"] == 90
        assert server.clock()["offset_s"] == 90
        assert server.reset_clock()["offset_s"] == 0

        # Export, reset, seed.
        document = server.state()
        server.reset()
        assert not [key for key, value in server.state().items() if isinstance(value, list) and value]
        (tmp_path / "state.json").write_text(json.dumps(document))
        assert server.seed(tmp_path / "state.json")["jobs"] == len(document["jobs"])
        assert server.state() == document
    assert server.process.poll() is not None
    assert not database.exists() and not database.parent.exists()  # the temporary database is gone
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{server.root_url}/is-alive/ping", timeout=2)


def test_runner_server_keeps_a_database_it_was_given(tmp_path):
    url = fresh_database_url(tmp_path)
    server = RunnerServer(database_url=url, workers=1).start()
    try:
        server.provider_state("a connected endpoint runner", project="kept")
    finally:
        server.stop()
    again = RunnerServer(database_url=url, workers=1).start()
    try:
        assert [runner["name"] for runner in again.runners("kept")] == ["pact-endpoint"]
    finally:
        again.stop()
    if not POSTGRES_URL:
        assert (tmp_path / "test.db").exists()


def test_runner_server_with_api_keys_calls_as_an_admin_user():
    with RunnerServer(workers=1, OPIK_API_KEYS="alice:key-a,bob:key-b", OPIK_RUNNERS_ADMIN_USERS="bob") as server:
        server.check_response = contract.validate_http
        assert server.admin_key == "key-b"
        assert server.clock()["offset_s"] == 0
        server.admin_key = "key-a"
        with pytest.raises(RunnerServerError) as refused:
            server.clock()
        assert refused.value.status == 403
        server.admin_key = None
        with pytest.raises(RunnerServerError) as refused:
            server.reset()
        assert refused.value.status == 401
