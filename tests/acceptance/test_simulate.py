"""`opik-runners simulate`, the simulated endpoint runner: a `python -m opik_runners simulate`
process against real servers, driven through the public API as a UI would drive it."""
import json
import os
import re
import signal
import sys
from datetime import datetime, timedelta

import pytest
import requests

from opik_runners.client.agents import parse_agents
from opik_runners.protocol import activation_hmac_text, read_link_fragment
from tests.support.cli import CLI, LINK, Collected, agent_file, cli_env
from tests.support.databases import fresh_database_url
from tests.support.servers import Server, free_port
from tests.support.waiting import wait_until

JOB_TIMEOUT = 4  # seconds: the `timeout` script's job is failed by the reaper once it passes


class Simulator(Collected):
    """An `opik-runners simulate` process whose output is collected in the background."""

    what = "simulator"

    def __init__(self, server_url, *args):
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPIK_")}
        super().__init__([sys.executable, "-m", "opik_runners", "simulate", "--url", f"{server_url}/api", *args],
                         env=env)

    def wait_for(self, pattern, timeout=30):
        return super().wait_for(pattern, timeout)

    def wait(self, timeout=30):
        """Its exit code, once it has exited by itself."""
        self.process.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return self.process.returncode

    def send(self, signum):
        """Send `signum` (Ctrl-C is SIGINT); its exit code."""
        os.kill(self.process.pid, signum)
        return self.wait()

@pytest.fixture
def simulators():
    started = []

    def start(url, *args):
        started.append(Simulator(url, *args))
        return started[-1]

    yield start
    for simulator in started:
        simulator.kill()


class Api:
    def __init__(self, url, workspace="default", api_key=None):
        self.base = f"{url}/api/v1/private"
        self.headers = {"Comet-Workspace": workspace, **({"Authorization": api_key} if api_key else {})}

    def call(self, method, path, **kwargs):
        return requests.request(method, f"{self.base}{path}", headers=self.headers, timeout=10, **kwargs)

    def project_id(self, name):
        return wait_until(lambda: self.call("POST", "/projects/retrieve", json={"name": name}).json().get("id"))

    def create_job(self, project_id, agent, inputs):
        response = self.call("POST", "/local-runners/jobs", json={"agent_name": agent, "project_id": project_id,
                                                                   "inputs": inputs})
        assert response.status_code == 201, response.text
        return response.headers["Location"].rsplit("/", 1)[1]

    def job(self, job_id):
        return self.call("GET", f"/local-runners/jobs/{job_id}").json()

    def job_in(self, job_id, *statuses):
        return wait_until(lambda: (job := self.job(job_id))["status"] in statuses and job, timeout=30)


def test_the_simulated_runner_runs_each_script(tmp_path, simulators):
    server = Server(fresh_database_url(tmp_path), OPIK_PAIRING_AUTO_ACTIVATE="true", OPIK_API_KEYS="alice:key-a",
                    OPIK_RUNNER_JOB_TIMEOUT=str(JOB_TIMEOUT), OPIK_RUNNER_REAPER_INTERVAL="0.5").start()
    try:
        api = Api(server.url, "sim-ws", "key-a")
        simulator = simulators(server.url, "--project", "sims", "--workspace", "sim-ws", "--api-key", "key-a",
                               "--agents", "echo,fail,nap=sleep:0.5,logs:5,stuck=timeout")
        simulator.wait_for("waiting for jobs")
        # The server activated the pairing session itself and named the runner.
        assert "the server activated the pairing session itself" in simulator.output
        project_id = api.project_id("sims")
        (runner,) = api.call("GET", "/local-runners", params={"project_id": project_id}).json()["content"]
        assert runner["status"] == "connected" and runner["type"] == "endpoint"
        assert runner["name"].startswith("endpoint-") and runner["capabilities"] == ["jobs"]
        assert runner["checklist"]["runner_type"] == "endpoint"
        agents = {agent.pop("name"): agent for agent in runner["agents"]}
        assert sorted(agents) == ["echo", "fail", "logs", "nap", "stuck"]
        assert agents["nap"] == {"description": "Simulated (sleep:0.5): waits 0.5 s, then returns its inputs.",
                                 "language": "python", "timeout": 0,
                                 "params": [{"name": "message", "type": "string", "presence": "optional"}]}
        assert [param["type"] for param in agents["echo"]["params"]] == ["string", "integer", "float", "boolean"]

        # The `timeout` job first: it holds its thread while the others run beside it.
        stuck = api.create_job(project_id, "stuck", {"message": "hold"})
        assert api.job_in(stuck, "running", "failed")["status"] == "running"

        inputs = {"message": "hi", "count": 2, "nested": {"list": [1, 2]}}
        echoed = api.job_in(api.create_job(project_id, "echo", inputs), "completed", "failed")
        assert echoed["status"] == "completed" and echoed["result"] == inputs
        trace = wait_until(lambda: (r := api.call("GET", f"/traces/{echoed['trace_id']}")).status_code == 200 and r.json())
        assert trace["name"] == "echo" and trace["input"] == inputs and trace["output"] == inputs

        failed = api.job_in(api.create_job(project_id, "fail", {"message": "no luck"}), "completed", "failed")
        assert failed["status"] == "failed" and failed["error"] == "SimulatedError: no luck"
        failed = api.job_in(api.create_job(project_id, "fail", {}), "completed", "failed")
        assert failed["error"] == "SimulatedError: this agent always fails"

        napped = api.job_in(api.create_job(project_id, "nap", {"message": "zz"}), "completed", "failed")
        assert napped["status"] == "completed" and napped["result"] == {"message": "zz"}

        logged_id = api.create_job(project_id, "logs", {})
        assert api.job_in(logged_id, "completed", "failed")["status"] == "completed"
        logs = api.call("GET", f"/local-runners/jobs/{logged_id}/logs").json()
        assert logs == [
            {"stream": "stdout", "text": "log line 1 of 5 (stdout)"},
            {"stream": "stderr", "text": "log line 2 of 5 (stderr)"},
            {"stream": "stdout", "text": "log line 3 of 5 (stdout)"},
            {"stream": "stderr", "text": "log line 4 of 5 (stderr)"},
            {"stream": "stdout", "text": "log line 5 of 5 (stdout)"},
        ]

        # An agent the server knows but the simulator does not: the CLI's "Unknown agent".
        declared = {name: agent for name, agent in agents.items()}
        assert api.call("PUT", f"/local-runners/{runner['id']}/agents",
                        json={**declared, "ghost": declared["nap"]}).status_code == 204
        ghost = api.job_in(api.create_job(project_id, "ghost", {}), "completed", "failed")
        assert ghost["error"] == "Unknown agent: ghost" and "trace_id" not in ghost

        # A running job cancelled: the next heartbeat tells the simulator, which stops its script.
        cancelled = api.create_job(project_id, "stuck", {})
        assert api.job_in(cancelled, "running", "failed")["status"] == "running"
        assert api.call("POST", f"/local-runners/jobs/{cancelled}/cancel").status_code == 204
        simulator.wait_for(f"job {cancelled} cancelled while running")

        # The simulator never answers for `stuck`: the server's reaper fails it at its timeout.
        timed_out = api.job_in(stuck, "completed", "failed", "cancelled")
        assert timed_out["status"] == "failed" and timed_out["error"] == f"Job timed out after {JOB_TIMEOUT}s"
        assert f"job {stuck} timed out" in server.output()
        assert f"job {stuck} started" in simulator.output
        assert not re.search(f"job {stuck} (completed|failed)", simulator.output)

        # Ctrl-C: the runner is deleted on the way out, with exit code 0 and no traceback.
        assert simulator.send(signal.SIGINT) == 0, simulator.output
        assert "SIGINT: stopping" in simulator.output and f"runner {runner['id']} deleted" in simulator.output
        assert "Traceback" not in simulator.output
        assert api.call("GET", f"/local-runners/{runner['id']}").status_code == 404
        assert f"runner {runner['id']} detached (disconnected)" in server.output()
    finally:
        server.stop()


def test_pairing_by_link_headless_and_eviction(tmp_path, simulators):
    # No auto-activation and no control plane: the simulator prints the link, as `opik endpoint` does.
    server = Server(fresh_database_url(tmp_path), OPIK_RUNNERS_ADMIN="off").start()
    try:
        api = Api(server.url)
        linked = simulators(server.url, "--project", "links", "--name", "linked-sim", "--agents", "echo")
        link = read_link_fragment(linked.wait_for(LINK)["fragment"])
        assert link["runner_name"] == "linked-sim" and link["type"] == "endpoint"
        assert link["project_id"] == api.project_id("links")
        # What the pairing page does with the link.
        activated = api.call("POST", f"/pairing/sessions/{link['session_id']}/activate", json={
            "runner_name": link["runner_name"],
            "hmac": activation_hmac_text(link["session_id"], link["key"], link["runner_name"]),
        })
        assert activated.status_code == 201, activated.text
        linked.wait_for("paired: runner 'linked-sim'.*activated from the pairing link")
        linked.wait_for("waiting for jobs")
        job = api.job_in(api.create_job(link["project_id"], "echo", {"message": "linked"}), "completed", "failed")
        assert job["result"] == {"message": "linked"}

        # A headless runner of the same project and user evicts it: its next heartbeat answers 410
        # and it stops by itself (exit code 0, as the CLI's).
        headless = simulators(server.url, "--project", "links", "--name", "headless-sim", "--pairing", "headless")
        headless.wait_for("paired: runner 'headless-sim'.*activated it itself")
        assert linked.wait() == 0, linked.output
        assert "heartbeat answered 410" in linked.output and "Traceback" not in linked.output

        (runner,) = api.call("GET", "/local-runners", params={"project_id": link["project_id"]}).json()["content"]
        assert runner["name"] == "headless-sim"
        headless.wait_for("waiting for jobs")
        assert headless.send(signal.SIGTERM) == 0, headless.output
        assert "SIGTERM: stopping" in headless.output
        assert api.call("GET", f"/local-runners/{runner['id']}").status_code == 404

        # Ctrl-C while waiting for the link to be opened: a clean exit too.
        waiting = simulators(server.url, "--project", "links", "--pairing", "link")
        waiting.wait_for(LINK)
        assert waiting.send(signal.SIGINT) == 0, waiting.output
        assert "stopping before the runner was serving" in waiting.output and "Traceback" not in waiting.output
    finally:
        server.stop()


def test_pairing_through_the_control_plane(tmp_path, simulators):
    # No auto-activation, but the control plane is on (a server without API keys): the
    # simulator asks it for a connected endpoint runner instead of printing a link.
    server = Server(fresh_database_url(tmp_path)).start()
    try:
        api = Api(server.url)
        simulator = simulators(server.url, "--project", "cp", "--name", "cp-sim", "--agents", "echo")
        simulator.wait_for("waiting for jobs")
        assert "paired: runner 'cp-sim'" in simulator.output and "control plane" in simulator.output
        assert not LINK.search(simulator.output)
        project_id = api.project_id("cp")
        (runner,) = api.call("GET", "/local-runners", params={"project_id": project_id}).json()["content"]
        assert runner["name"] == "cp-sim" and [agent["name"] for agent in runner["agents"]] == ["echo"]
        job = api.job_in(api.create_job(project_id, "echo", {"message": "cp"}), "completed", "failed")
        assert job["result"] == {"message": "cp"}
        assert simulator.send(signal.SIGINT) == 0, simulator.output
        assert api.call("GET", f"/local-runners/{runner['id']}").status_code == 404
    finally:
        server.stop()


AGENT_FILE = agent_file('''
    @opik.track(entrypoint=True)
    def echo(message: str = "") -> dict:
        return {"message": message}
''')


def test_the_simulator_calls_what_the_real_cli_calls(tmp_path, simulators):
    """The journal of a real `opik endpoint --headless` beside the simulator's: the same
    operations, in the same order, with the same methods, body keys and body-less polls."""
    server = Server(fresh_database_url(tmp_path), OPIK_RUNNER_NEXT_JOB_POLL_TIMEOUT="0.5").start()
    admin = f"{server.url}/_admin/requests"

    def wait_for(*operations):
        """Until the journal holds an answered request of each of `operations`."""
        for operation in operations:
            waited = requests.post(f"{admin}/wait", json={"operation": operation, "timeout_s": 60, "since": 0},
                                   timeout=70)
            assert waited.status_code == 200, waited.text

    def take_journal():
        """The journal, oldest first; then it is cleared."""
        entries = requests.get(admin, params={"limit": 500}, timeout=10).json()["requests"][::-1]
        assert requests.delete(admin, timeout=10).status_code == 204
        return entries

    try:
        agent_dir = tmp_path / "agent"
        agent_dir.mkdir()
        (agent_dir / "agent.py").write_text(AGENT_FILE)
        cli = CLI(["endpoint", "--project", "real", "--headless", "--no-watch", "--name", "real-cli",
                   "--", sys.executable, "agent.py"], cwd=agent_dir, env=cli_env(server.url, tmp_path / "home"))
        try:
            wait_for("register_agents", "next_job")
            assert cli.interrupt() == 0, cli.output
        finally:
            cli.kill()
        wait_for("disconnect_runner")
        real = take_journal()
        simulator = simulators(server.url, "--project", "sim", "--name", "sim-cli", "--pairing", "headless",
                               "--agents", "echo")
        wait_for("register_agents", "next_job")
        assert simulator.send(signal.SIGINT) == 0, simulator.output
        wait_for("disconnect_runner")
        simulated = take_journal()
    finally:
        server.stop()

    def first_started(entries):
        """Each operation's first request, by when it started (an entry's time is its answer's)."""
        def start(entry):
            return datetime.fromisoformat(entry["time"].replace("Z", "+00:00")) - timedelta(
                milliseconds=entry["duration_ms"])
        first = {}
        for entry in sorted(entries, key=start):
            first.setdefault(entry["operation"], (start(entry), entry))
        return first

    # Pairing in order; heartbeats and the checklist (the supervisor) race the agents (the
    # agent process), whose poll follows them; the DELETE comes last.
    chains = [["retrieve_project", "create_project", "create_pairing_session", "activate_pairing_session",
               "register_agents", "next_job", "disconnect_runner"],
              ["activate_pairing_session", "heartbeat", "disconnect_runner"],
              ["activate_pairing_session", "patch_checklist", "disconnect_runner"]]
    real_ops, simulated_ops = first_started(real), first_started(simulated)
    for ops in (real_ops, simulated_ops):
        for chain in chains:
            assert [ops[op][0] for op in chain] == sorted(ops[op][0] for op in chain), chain
    assert set(simulated_ops) <= set(real_ops) | {"traces_batch", "spans_batch"}
    assert "ping" in simulated_ops

    real_ops = {op: entry for op, (_, entry) in real_ops.items()}
    simulated_ops = {op: entry for op, (_, entry) in simulated_ops.items()}
    for operation in chains[0] + ["heartbeat", "patch_checklist"]:
        want, got = real_ops[operation], simulated_ops[operation]
        assert got["method"] == want["method"], operation
        if want["request_body"] is None:
            assert got["request_body"] is None and "Content-Type" not in got["headers"], operation
        else:
            assert set(json.loads(got["request_body"])) >= set(json.loads(want["request_body"])) - {"command"}, operation
        assert got["headers"]["Comet-Workspace"] == want["headers"]["Comet-Workspace"] == "default"
    session = json.loads(simulated_ops["create_pairing_session"]["request_body"])
    assert session["ttl_seconds"] == 300 and session["type"] == "endpoint" and len(session["activation_key"]) == 44
    heartbeats = {entry["request_body"] for entry in simulated if entry["operation"] == "heartbeat"}
    assert heartbeats <= {entry["request_body"] for entry in real if entry["operation"] == "heartbeat"}


def test_the_provider_state_is_one_the_server_knows():
    from opik_runners.control import provider_states
    from opik_runners.client import pairing

    assert pairing.PROVIDER_STATE in provider_states.KNOWN


def test_command_line_errors(simulators):
    bad = simulators("http://127.0.0.1:1", "--project", "p", "--agents", "echo,sleep")
    assert bad.wait() == 2 and "sleep needs a number: sleep:SECONDS" in bad.output
    nowhere = simulators(f"http://127.0.0.1:{free_port()}", "--project", "p")
    assert nowhere.wait() == 1
    assert "cannot reach the Opik server" in nowhere.output and "Traceback" not in nowhere.output


@pytest.mark.parametrize("spec, agents", [
    ("echo", [("echo", "echo", None)]),
    (" echo , nap=sleep:1.5,logs:3, stuck=timeout,fail ", [
        ("echo", "echo", None), ("nap", "sleep", 1.5), ("logs", "logs", 3), ("stuck", "timeout", None),
        ("fail", "fail", None)]),
])
def test_agent_specs(spec, agents):
    assert [(a.name, a.script, a.value) for a in parse_agents(spec)] == agents


def test_the_command_default_is_the_modules():
    from opik_runners import cli
    from opik_runners.client import agents

    (option,) = [param for param in cli.simulate.params if param.name == "spec"]
    assert option.default == agents.DEFAULT_AGENTS


@pytest.mark.parametrize("spec, message", [
    ("", "no agents"),
    ("echo,echo", "two agents named 'echo'"),
    ("logs:x", "not a whole number"),
    ("sleep:-1", "must be a finite number, not negative"),
    ("sleep:inf", "must be a finite number, not negative"),
    ("echo:1", "takes no argument"),
    ("=echo", "name is empty"),
    ("shout", "unknown script 'shout'"),
    (",".join(f"a{i}=echo" for i in range(51)), "at most 50"),
])
def test_bad_agent_specs(spec, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_agents(spec)
