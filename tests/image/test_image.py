"""The container image (Dockerfile) and the compose files, run with podman.

.ci/image builds the image and names it in OPIK_RUNNERS_IMAGE; without it these tests are
skipped. The commands are the README's docker commands with the flags this machine needs:
--network host instead of -p (the tests reach the containers on loopback only, the port in
OPIK_RUNNERS_BIND), and for compose an override file that does the same
(compose.host.yaml, compose.scale-out.host.yaml). .ci/image's CONTAINERS_CONF holds the rest.
"""
import json
import os
import pathlib
import re
import subprocess
import sys
import time
import uuid

import pytest
import requests
import yaml

from tests.support.cli import CLI, agent_file, cli_env
from opik_runners import __version__
from tests.support.servers import child_pids, free_port, pair_over_http
from tests.support.waiting import wait_until
from tests.support.threads import Task, join_all

IMAGE = os.environ.get("OPIK_RUNNERS_IMAGE", "")
# compose.scale-out.yaml's POSTGRES_IMAGE here: postgres:16 cannot be pulled on CI's machine.
POSTGRES_IMAGE = os.environ.get("OPIK_RUNNERS_CI_POSTGRES_IMAGE", "")
PODMAN_COMPOSE = os.environ.get("PODMAN_COMPOSE", "podman-compose")
# Everything made here carries it, so .ci/image can remove what a failed test left behind.
LABEL = f"opik-runners-ci={os.environ.get('OPIK_RUNNERS_CI_LABEL', 'tests')}"
ROOT = pathlib.Path(__file__).resolve().parents[2]
API = "/api/v1/private"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not IMAGE, reason="needs a built image: .ci/image builds the Dockerfile with podman "
                                         "and names it in OPIK_RUNNERS_IMAGE"),
]


def podman(*args, check=True, timeout=120, command="podman", env=None):
    done = subprocess.run([command, *args], capture_output=True, text=True, timeout=timeout, env=env,
                          stdin=subprocess.DEVNULL)
    if check and done.returncode != 0:
        raise AssertionError(f"{command} {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Container:
    def __init__(self, name, port):
        self.name, self.port = name, port
        self.url = f"http://127.0.0.1:{port}"

    def logs(self):
        done = podman("logs", self.name, check=False)
        return done.stdout + done.stderr

    def running(self):
        return podman("inspect", "--format", "{{.State.Running}}", self.name, check=False).stdout.strip() == "true"

    def health(self):
        """`podman healthcheck run`: the image's own HEALTHCHECK, run now (podman runs it on a
        systemd timer, which this machine lacks)."""
        return podman("healthcheck", "run", self.name, check=False).returncode == 0

    def wait_healthy(self, timeout=90):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.health():
                return self
            if not self.running():
                break
            time.sleep(0.5)
        raise AssertionError(f"{self.name} did not become healthy (running: {self.running()}):\n{self.logs()}")

    def exec(self, *args, check=True):
        return podman("exec", self.name, *args, check=check)

    def api(self, method, path, **kwargs):
        return requests.request(method, f"{self.url}{API}{path}", timeout=10, **kwargs)


@pytest.fixture
def containers():
    """Start containers of the image (`podman run -d`), each on a free loopback port; removed,
    with the volumes made here, at teardown (their logs shown when the test failed)."""
    started, volumes = [], []

    def volume():
        name = unique("opik-runners-test-data")
        podman("volume", "create", "--label", LABEL, name)
        volumes.append(name)
        return name

    def run(data=None, env=None):
        container = Container(unique("opik-runners-test"), free_port())
        args = ["run", "-d", "--name", container.name, "--label", LABEL, "--network", "host",
                "-e", f"OPIK_RUNNERS_BIND=127.0.0.1:{container.port}"]
        for name, value in (env or {}).items():
            args += ["-e", f"{name}={value}"]
        if data:
            args += ["-v", f"{data}:/data"]
        podman(*args, IMAGE)
        started.append(container)
        return container.wait_healthy()

    run.volume = volume
    yield run
    for container in started:
        print(f"--- {container.name}:\n{container.logs()}")
        podman("rm", "-f", "-v", "-t", "2", container.name, check=False)
    for name in volumes:
        podman("volume", "rm", "-f", name, check=False)


# -- the image


def inspect_image():
    return json.loads(podman("image", "inspect", IMAGE).stdout)[0]


def test_the_image_says_its_version():
    done = podman("run", "--rm", "--network", "host", IMAGE, "opik-runners", "--version")
    assert done.stdout.strip() == f"opik-runners {__version__}"


def test_the_image_declares_its_user_volume_port_healthcheck_and_command():
    image = inspect_image()
    config = image["Config"]
    assert config["User"] == "10001:10001"
    assert list(config["Volumes"]) == ["/data"]
    assert list(config["ExposedPorts"]) == ["5173/tcp"]
    assert config["Cmd"] == ["opik-runners", "serve"]
    assert image["Healthcheck"]["Test"][:2] == ["CMD", "python3"], image.get("Healthcheck")
    assert "DATABASE_URL=sqlite:////data/opik-runners.db" in config["Env"]


def test_the_healthcheck_fails_when_nothing_answers():
    """The HEALTHCHECK's own command, in a container of the image where no server runs, on the
    port OPIK_RUNNERS_BIND names: it must fail (a check that cannot fail checks nothing)."""
    test = inspect_image()["Healthcheck"]["Test"]
    done = podman("run", "--rm", "--network", "host", "-e", f"OPIK_RUNNERS_BIND=0.0.0.0:{free_port()}",
                  IMAGE, *test[1:], check=False)
    assert done.returncode != 0, done.stdout + done.stderr
    assert "Connection refused" in done.stderr


def test_a_container_is_healthy_serves_the_api_and_the_console_as_a_non_root_user(containers):
    container = containers(data=containers.volume())  # healthy by `podman healthcheck run`
    status = podman("inspect", "--format", "{{.State.Healthcheck.Status}}", container.name).stdout.strip()
    assert status == "healthy"

    assert requests.get(f"{container.url}/is-alive/ping", timeout=5).json() == {"healthy": True}
    assert requests.get(f"{container.url}/is-alive/ver", timeout=5).json() == {"version": __version__}
    assert container.api("POST", "/projects", json={"name": "in-a-container"}).status_code == 201
    found = container.api("POST", "/projects/retrieve", json={"name": "in-a-container"})
    assert found.status_code == 200 and found.json()["name"] == "in-a-container"
    console = requests.get(f"{container.url}/", timeout=5)
    assert console.status_code == 200 and "text/html" in console.headers["Content-Type"]
    script = requests.get(f"{container.url}/console/assets/app.js", timeout=5)  # the package's data files
    assert script.status_code == 200 and "javascript" in script.headers["Content-Type"]
    metrics = requests.get(f"{container.url}/metrics", timeout=5).text  # added up across the workers
    assert 'opik_runners_request_duration_seconds_count{operation="ping",status="200"}' in metrics

    # gunicorn's master (the container's first process) and its two workers run as uid 10001,
    # as the host sees them (no user namespace here).
    master = int(podman("inspect", "--format", "{{.State.Pid}}", container.name).stdout)
    processes = [master, *child_pids(master)]
    assert len(processes) == 3, processes

    def uids(pid):
        status = pathlib.Path(f"/proc/{pid}/status").read_text()
        return re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()

    assert all(uids(pid) == ["10001"] * 4 for pid in processes), [uids(pid) for pid in processes]
    assert container.exec("ls", "-ln", "/data").stdout.count(" 10001 10001 ") >= 1


def test_a_container_refuses_to_start_when_data_is_not_writable(tmp_path):
    """/data bind-mounted from a host directory the image's user may not write (root's, 0755):
    the server exits at once and says why, instead of serving without a database."""
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    name = unique("opik-runners-test")
    try:
        done = podman("run", "--name", name, "--label", LABEL, "--network", "host",
                      "-e", f"OPIK_RUNNERS_BIND=127.0.0.1:{free_port()}", "-v", f"{data}:/data", IMAGE,
                      check=False, timeout=60)
    finally:
        podman("rm", "-f", name, check=False)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert ("cannot open the database at sqlite:////data/opik-runners.db: unable to open database file "
            "(/data is not writable by uid 10001, the user this server runs as") in output, output
    assert not list(data.iterdir())


def test_data_survives_a_new_container_and_backs_up_through_exec(containers):
    volume = containers.volume()
    first = containers(data=volume)
    runner = pair_over_http(first.url, "default", "kept-runner")
    created = first.api("POST", "/local-runners/jobs", json={
        "agent_name": "answer", "project_id": runner["project_id"], "inputs": {"question": "kept?"}})
    assert created.status_code == 201, created.text
    job_id = created.headers["Location"].rsplit("/", 1)[1]

    # `opik-runners backup` inside the running container, into the volume.
    backup = first.exec("opik-runners", "backup", "/data/backup.db")
    assert re.fullmatch(r"Backed up /data/opik-runners\.db to /data/backup\.db \([\d,]+ bytes, integrity check ok\)\.",
                        backup.stdout.strip()), backup.stdout + backup.stderr

    # The container replaced by a new one on the same volume: the same runner, project and job.
    podman("stop", "-t", "20", first.name)
    podman("rm", first.name)
    second = containers(data=volume)
    job = second.api("GET", f"/local-runners/jobs/{job_id}")
    assert job.status_code == 200 and job.json()["status"] == "pending", job.text
    assert job.json()["inputs"] == {"question": "kept?"}
    assert second.api("GET", f"/local-runners/{runner['runner_id']}").json()["name"] == "kept-runner"

    # The backup is a database a server opens: one more container serves it.
    restored = containers(data=volume, env={"DATABASE_URL": "sqlite:////data/backup.db"})
    assert restored.api("GET", f"/local-runners/jobs/{job_id}").json()["inputs"] == {"question": "kept?"}


AGENT_FILE = agent_file('''
    @opik.track(entrypoint=True)
    def answer(question: str) -> str:
        """Answer a question."""
        print(f"answering {question!r}")
        return f"42 ({question})"
''')


def test_the_opik_cli_on_the_host_pairs_with_the_container_and_runs_a_job(containers, tmp_path):
    container = containers(data=containers.volume())
    agent_dir = tmp_path / "agent"
    agent_dir.mkdir()
    (agent_dir / "agent.py").write_text(AGENT_FILE)
    endpoint = CLI(["endpoint", "--project", "boxed", "--headless", "--no-watch", "--name", "host-runner",
                    "--", sys.executable, "agent.py"], cwd=agent_dir, env=cli_env(container.url, tmp_path / "home"))
    try:
        project_id = wait_until(lambda: container.api("POST", "/projects/retrieve", json={"name": "boxed"}).json().get("id"),
                                timeout=60)

        def registered():
            page = container.api("GET", "/local-runners", params={"project_id": project_id}).json()
            found = page["content"][0] if page["content"] else None
            return found if found and found["status"] == "connected" and found["agents"] else None

        runner = wait_until(registered, timeout=60)
        assert runner["name"] == "host-runner" and [a["name"] for a in runner["agents"]] == ["answer"]

        created = container.api("POST", "/local-runners/jobs", json={
            "agent_name": "answer", "project_id": project_id, "inputs": {"question": "in a box"}})
        assert created.status_code == 201, created.text
        job_id = created.headers["Location"].rsplit("/", 1)[1]

        def finished():
            job = container.api("GET", f"/local-runners/jobs/{job_id}").json()
            return job if job["status"] in ("completed", "failed", "cancelled") else None

        job = wait_until(finished, timeout=60)
        assert job["status"] == "completed" and job["result"] == {"result": "42 (in a box)"}, job
        logs = wait_until(lambda: container.api("GET", f"/local-runners/jobs/{job_id}/logs").json())
        assert {"stream": "stdout", "text": "answering 'in a box'"} in logs

        # Ctrl-C: the CLI deletes its runner on the containerised server on its way out.
        assert endpoint.interrupt() == 0, endpoint.output
        assert container.api("GET", f"/local-runners/{runner['id']}").status_code == 404
    finally:
        endpoint.kill()


# -- the compose files, with podman-compose


class Compose:
    """`podman-compose -p PROJECT -f FILE -f OVERRIDE ...` for one test; `down -v` at the end."""

    def __init__(self, *files, **env):
        self.project = unique(f"opik-runners-test-{LABEL.rsplit('=', 1)[1]}")
        self.files = [str(ROOT / name) for name in files]
        self.env = {**os.environ, "OPIK_RUNNERS_IMAGE": IMAGE, **env}

    def __call__(self, *args, timeout=300):
        files = [arg for name in self.files for arg in ("-f", name)]
        return podman("-p", self.project, *files, *args, command=PODMAN_COMPOSE, env=self.env, timeout=timeout)

    def container(self, service):
        names = podman("ps", "-a", "--format", "{{.Names}}", "--filter", f"label=io.podman.compose.project={self.project}",
                       "--filter", f"label=com.docker.compose.service={service}").stdout.split()
        assert len(names) == 1, (service, names)
        port = self.env.get(f"CI_{service.upper().replace('-', '_')}_PORT", "5173")
        return Container(names[0], port)

    def logs(self):
        names = podman("ps", "-a", "--format", "{{.Names}}", "--filter",
                       f"label=io.podman.compose.project={self.project}").stdout.split()
        return "\n".join(f"--- {name}:\n{Container(name, 0).logs()}" for name in names)

    def down(self):
        """`down -v`, and the anonymous volumes podman-compose leaves (the image's /data of the
        scale-out nodes, which keep nothing there)."""
        names = podman("ps", "-a", "-q", "--filter", f"label=io.podman.compose.project={self.project}").stdout.split()
        volumes = podman("inspect", "--format", "{{range .Mounts}}{{.Name}} {{end}}", *names).stdout.split() if names else []
        self("down", "-v", "-t", "5")
        for volume in volumes:
            podman("volume", "rm", "-f", volume, check=False)


@pytest.fixture
def compose():
    made = []

    def make(*files, **env):
        made.append(Compose(*files, **env))
        return made[-1]

    yield make
    for project in made:
        print(project.logs())
        project.down()


def test_compose_serves_one_node_with_its_volume(compose):
    node = compose("compose.yaml", "tests/image/compose.host.yaml", CI_OPIK_RUNNERS_PORT=str(free_port()))
    node("up", "-d")
    container = node.container("opik-runners").wait_healthy()  # the image's HEALTHCHECK
    assert container.api("POST", "/projects", json={"name": "composed"}).status_code == 201
    # Its service name passes the host check (compose.yaml lists it), another name does not.
    assert container.api("GET", "/projects", headers={"Host": "opik-runners:5173"}).status_code == 200
    assert container.api("GET", "/projects", headers={"Host": "elsewhere.example:5173"}).status_code == 403
    volumes = podman("volume", "ls", "--format", "{{.Name}}", "--filter",
                     f"label=io.podman.compose.project={node.project}").stdout.split()
    assert volumes == [f"{node.project}_data"]
    assert "opik-runners.db" in container.exec("ls", "/data").stdout.split()


def test_compose_scale_out_two_instances_on_one_postgres_wake_each_other(compose):
    spec = yaml.safe_load((ROOT / "compose.scale-out.yaml").read_text())
    for node in ("node-a", "node-b"):
        assert spec["services"][node]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert "healthcheck" in spec["services"]["postgres"]

    ports = {f"CI_{name}_PORT": str(free_port()) for name in ("POSTGRES", "NODE_A", "NODE_B")}
    cluster = compose("compose.scale-out.yaml", "tests/image/compose.scale-out.host.yaml",
                      POSTGRES_IMAGE=POSTGRES_IMAGE, **ports)
    # podman 4.3 (Debian's) has no `podman wait --condition=healthy`, so podman-compose skips
    # service_healthy (it says so); start PostgreSQL first and wait for its healthcheck, as
    # compose would, then the rest.
    cluster("up", "-d", "postgres")
    cluster.container("postgres").wait_healthy()
    cluster("up", "-d")
    a, b = (cluster.container(node).wait_healthy() for node in ("node-a", "node-b"))
    for node in (a, b):
        # Both started at once on an empty database and neither failed: the schema lock made
        # one wait while the other migrated.
        assert podman("inspect", "--format", "{{.RestartCount}}", node.name).stdout.strip() == "0"
        assert "The schema is current" in node.exec("opik-runners", "migrate", "--check").stdout

    # A poll held on B is answered by a job created through A, and one held on A by a job
    # created through B: long before the polls' 20 s timeout, so by the cross-instance wake-up.
    first, second = pair_over_http(a.url, "ws-a", "runner-1"), pair_over_http(b.url, "ws-b", "runner-2")

    def hold(node, runner):
        def poll():
            response = requests.post(f"{node.url}{API}/local-runners/{runner['runner_id']}/jobs/next",
                                     headers=runner["headers"], timeout=30)
            runner["answer"], runner["answered_at"] = response, time.monotonic()

        task = Task(poll)
        task.start()
        return task

    held = [hold(b, first), hold(a, second)]
    time.sleep(1.0)
    assert all(task.is_alive() for task in held), "a poll returned before any job existed"
    for node, runner in ((a, first), (b, second)):
        created = node.api("POST", "/local-runners/jobs", headers=runner["headers"], json={
            "agent_name": "answer", "project_id": runner["project_id"], "inputs": {"question": "across"}})
        assert created.status_code == 201, created.text
        runner["job_id"] = created.headers["Location"].rsplit("/", 1)[1]
    created_at = time.monotonic()
    join_all(held, timeout=10, what="held polls (20 s poll timeout, so: not woken by the other instance)")
    for runner in (first, second):
        job = runner["answer"].json()
        assert job is not None and job["id"] == runner["job_id"] and job["status"] == "running", job
        assert runner["answered_at"] - created_at < 5
