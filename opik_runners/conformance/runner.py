"""`opik-runners conformance runner`: grade a runner client. The grader serves it from a server
of its own (a free port, a temporary database, the control plane on), launches the client's
command with the environment an Opik runner expects, lets it pair, then drives it: jobs to run,
cancels, faults on its polls and heartbeats, a restart of the server, a DELETE, Ctrl-C. What the
client did is read from the server's request journal, which every check quotes as its evidence
(checks.py holds the checks)."""
import datetime
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

from ..client.testing import RunnerServer, RunnerServerError, free_port
from ..protocol import RunnerType
from .report import Outcome

PAIRINGS = ("auto", "self", "grader")
# Values of each param type the generated inputs give an agent (Opik's param types).
SAMPLE = {"string": "conformance", "str": "conformance", "integer": 7, "int": 7, "float": 0.5, "number": 0.5,
          "boolean": True, "bool": True}


@dataclass
class Setup:
    """What to grade and how (the command's options)."""

    command: list
    pairing: str = "auto"  # auto: the server activates the client's session; self: the client does (the
    # HMAC, as `opik endpoint --headless`); grader: the grader pairs and starts COMMAND as the runner's process
    project: str = "conformance"
    workspace: str = "default"
    agent: str = None  # the agent the job checks call (default: the first registered)
    inputs: dict = None  # its inputs (default: generated from its params)
    fail_agent: str = None  # an agent that fails (default: the first whose name says fail)
    heartbeat_ttl: float = 15.0  # the TTL a client must heartbeat within (Opik's default)
    start_timeout: float = 90.0
    job_timeout: float = 60.0
    cwd: str = None
    env: dict = field(default_factory=dict)  # more variables for COMMAND's environment


class GraderError(Exception):
    """The grading cannot go on (the client never paired, the command would not start)."""


class Failed(Exception):
    """A check's verdict: failed; the message says why."""


class Skipped(Exception):
    """A check that does not apply to this client; the message says why."""


def parse_time(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def began(entry):
    """When a journaled request began: its time (when it was answered) less its duration."""
    return parse_time(entry["time"]) - entry["duration_ms"] / 1000


class Grader:
    def __init__(self, setup, say=None):
        self.setup = setup
        self.say = say or (lambda line: None)
        self.scratch = tempfile.mkdtemp(prefix="opik-runners-conformance-")
        self.home = os.path.join(self.scratch, "home")
        os.makedirs(self.home)
        self.port = free_port()
        self.poll_timeout = 5.0  # how long the grader's server holds an empty poll (Opik: 10 s, 30 s the bridge's)
        self.server = None
        self.process = None
        self.runner = None  # the runner in the state document: {"id", "type", "agents", ...}
        self.session = None  # its pairing session (the activation key, for the bridge's)
        self.started_at = time.time()
        self.jobs = {}  # job id -> why the grader made it
        self.outcomes = []
        self.logs = []  # what each launch of COMMAND printed

    # -- the server

    def start_server(self):
        self.server = RunnerServer(
            port=self.port, database_url=f"sqlite:///{os.path.join(self.scratch, 'runners.db')}",
            # A client that never heartbeats must not stop the grading: the server keeps its runner
            # long; the heartbeat check holds the client to the TTL Opik gives (setup.heartbeat_ttl).
            OPIK_RUNNER_HEARTBEAT_TTL="600s",
            OPIK_PAIRING_AUTO_ACTIVATE="true" if self.setup.pairing == "auto" else "false",
            OPIK_RUNNER_NEXT_JOB_POLL_TIMEOUT=f"{self.poll_timeout:g}s", OPIK_BRIDGE_POLL_TIMEOUT=f"{self.poll_timeout:g}s",
            OPIK_RUNNERS_WORKERS="1",
            OPIK_RUNNERS_LOG_LEVEL="warning", OPIK_RUNNERS_JOURNAL_SIZE="100000",
        )
        self.server.start()

    def restart_server(self, down_seconds=3.0):
        """Stop the server at once (held polls cut off), wait, serve the same database again."""
        self.server.stop()
        time.sleep(down_seconds)
        self.server.start()

    # -- the client

    def environment(self, runner_id=None):
        env = {**os.environ, "OPIK_URL_OVERRIDE": self.server.api_url, "OPIK_WORKSPACE": self.setup.workspace,
               "OPIK_PROJECT_NAME": self.setup.project, "HOME": self.home, "OPIK_SENTRY_ENABLE": "false",
               "OPIK_ANALYTICS_ENABLE": "false", "PYTHONUNBUFFERED": "1"}
        env.pop("OPIK_API_KEY", None)  # the grader's server has no keys
        env.update(self.setup.env)
        if runner_id is not None:  # the runner's own process, as a supervisor starts it
            env.update(OPIK_RUNNER_MODE="true", OPIK_RUNNER_ID=runner_id)
        return env

    def launch(self):
        self.ensure_project()  # opik connect pairs only with a project that exists
        runner_id = self.pair_for_client() if self.setup.pairing == "grader" else None
        log = open(os.path.join(self.scratch, f"client-{len(self.logs)}.log"), "w+b")
        self.logs.append(log)
        try:
            self.process = subprocess.Popen(self.setup.command, env=self.environment(runner_id), cwd=self.setup.cwd,
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            raise GraderError(f"could not start {' '.join(self.setup.command)}: {exc}") from None
        self.say(f"started {' '.join(self.setup.command)} (pid {self.process.pid})")

    def output(self):
        if not self.logs:
            return ""
        log = self.logs[-1]
        log.seek(0)
        return log.read().decode(errors="replace")

    def stop_client(self):
        """End the client and everything it started: its whole process group, even when the
        command itself has exited (a supervisor's child can outlive it, after a 410)."""
        if self.process is None:
            return
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return  # nothing of the group is left
            if not group_alive(self.process, wait):
                return

    def ensure_project(self):
        try:
            self.server.api("POST", "/projects", {"name": self.setup.project}, self.setup.workspace)
        except RunnerServerError as exc:
            if exc.status != 409:
                raise

    def pair_for_client(self):
        """--pairing grader: pair as `opik endpoint --headless` does, for the runner's process."""
        from ..protocol import activation_hmac_text, encode_base64

        api = lambda method, path, body=None: self.server.api(method, path, body, self.setup.workspace)  # noqa: E731
        project_id = api("POST", "/projects/retrieve", {"name": self.setup.project})["id"]
        key = os.urandom(32)
        made = api("POST", "/pairing/sessions", {"project_id": project_id, "activation_key": encode_base64(key),
                                                 "ttl_seconds": 300, "type": RunnerType.ENDPOINT})
        name = f"graded-{made['runner_id'][:8]}"
        api("POST", f"/pairing/sessions/{made['session_id']}/activate",
            {"runner_name": name, "hmac": activation_hmac_text(made["session_id"], key, name)})
        return made["runner_id"]

    # -- what the server saw

    def state(self):
        return self.server.state(self.setup.workspace)

    def wait_for_runner(self, exclude=()):
        """The client's runner once it is paired (and, for an endpoint runner, its agents are
        registered): its item of the state document; GraderError if it does not come."""
        deadline = time.monotonic() + self.setup.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise GraderError(f"the command exited ({self.process.returncode}) before its runner paired:\n"
                                  + self.output()[-3000:])
            document = self.state()
            projects = {p["id"] for p in document["projects"] if p["name"] == self.setup.project}
            live = [r for r in document["runners"] if r.get("project_id") in projects and "detached_at" not in r
                    and r["id"] not in exclude]
            if live:
                runner = max(live, key=lambda r: r.get("connected_at", ""))
                if runner.get("type") == RunnerType.CONNECT or runner.get("agents"):
                    self.runner = runner
                    self.session = next((s for s in document["pairing_sessions"] if s.get("runner_id") == runner["id"]),
                                        None)
                    return runner
            time.sleep(0.5)
        raise GraderError(f"no runner paired in project {self.setup.project!r} (with its agents) within "
                          f"{self.setup.start_timeout:g} s; the client said:\n{self.output()[-3000:]}")

    def journal(self, since=None):
        """The journal's entries, oldest first (since an entry id, or all)."""
        query = {"limit": 100_000}
        if since is not None:
            query["since"] = since
        return list(reversed(self.server.requests(**query)))

    def newest_id(self):
        entries = self.server.requests(limit=1)
        return entries[0]["id"] if entries else 0

    def line(self, entry):
        """One journal entry as evidence: when (seconds since the grading began), what, answer."""
        at = parse_time(entry["time"]) - self.started_at
        body = entry.get("request_body") or ""
        body = f" {body[:160]}" if body else ""
        status = "dropped" if entry.get("status") is None else entry["status"]
        answer = (entry.get("response_body") or "")[:120]
        fault = f" (fault {entry['fault']})" if entry.get("fault") else ""
        return f"#{entry['id']} +{at:.1f}s {entry['method']} {entry['path']}{body} -> {status} {answer}{fault}".rstrip()

    def wait_for_entry(self, since, matches, seconds, runner_id=None):
        """The first of the runner's journal entries after `since` (an entry id) that `matches`,
        once one comes within `seconds`; None if none does."""
        deadline = time.monotonic() + seconds
        while True:
            found = next((e for e in self.mine(self.journal(since), runner_id) if matches(e)), None)
            if found is not None or time.monotonic() >= deadline:
                return found
            time.sleep(0.1)

    def mine(self, entries, runner_id=None):
        """The entries of the client's runner: its path names it, or a job the grader made for it."""
        runner_id = runner_id or self.runner["id"]
        return [e for e in entries if runner_id in e["path"] or any(job in e["path"] for job in self.jobs)]

    # -- jobs

    def agent(self):
        agents = self.runner.get("agents") or {}
        if self.setup.agent:
            if self.setup.agent not in agents:
                raise GraderError(f"--agent {self.setup.agent!r} is not registered (the runner has: "
                                  f"{', '.join(agents) or 'none'})")
            return self.setup.agent
        if not agents:
            raise Skipped("the runner registered no agents")
        return next(iter(agents))

    def inputs_for(self, agent):
        if self.setup.inputs is not None and agent == self.agent():
            return self.setup.inputs
        params = (self.runner.get("agents") or {}).get(agent, {}).get("params") or []
        return {p["name"]: SAMPLE.get(str(p.get("type", "string")).lower(), "conformance") for p in params}

    def create_job(self, agent, why, inputs=None):
        """A job for the runner's agent (inputs generated from its params unless given); its id."""
        try:
            job_id = self.server.create_job(self.setup.project, agent, self.inputs_for(agent) if inputs is None
                                            else inputs, workspace=self.setup.workspace)
        except RunnerServerError as exc:
            raise failed(f"the job could not be created ({exc}): is the runner connected?") from None
        self.jobs[job_id] = why
        return job_id

    def job(self, job_id):
        return self.server.api("GET", f"/local-runners/jobs/{job_id}", workspace=self.setup.workspace)

    def wait_for_job(self, job_id, until=("completed", "failed", "cancelled"), timeout=None):
        deadline = time.monotonic() + (timeout or self.setup.job_timeout)
        job = self.job(job_id)
        while job["status"] not in until and time.monotonic() < deadline:
            time.sleep(0.3)
            job = self.job(job_id)
        return job

    # -- the run

    def run(self, checks):
        """Start, grade with `checks` (functions of the grader, in order), stop; the Outcomes."""
        try:
            self.start_server()
            self.launch()
            self.wait_for_runner()
            self.say(f"paired: runner {self.runner['name']!r} ({self.runner['id']}, {self.runner['type']})")
            for check in checks:
                self.outcomes.append(self.grade(check))
        finally:
            self.stop_client()
            if self.server is not None:
                self.server.stop()
            for log in self.logs:
                log.close()
            shutil.rmtree(self.scratch, ignore_errors=True)
        return self.outcomes

    def grade(self, check):
        group, name, title = check.group, check.__name__, check.title
        self.say(f"checking: {title}")
        started = time.monotonic()
        try:
            evidence = check(self) or []
            outcome, details, reason = "passed", evidence, ""
        except Failed as failed:
            outcome, details, reason = "failed", [str(failed), *getattr(failed, "evidence", [])], ""
        except Skipped as skipped:
            outcome, details, reason = "skipped", [], str(skipped)
        except GraderError:
            raise  # the grading cannot go on (an --agent the runner lacks)
        except Exception as exc:  # the check itself broke on what the client did: the others still run
            outcome, details, reason = "failed", [f"the check could not finish: {type(exc).__name__}: {exc}"], ""
        return Outcome(group, name, title, outcome, details, reason, time.monotonic() - started)


def group_alive(process, wait):
    """Whether anything of `process`'s group is left after `wait` seconds (the command reaped)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            process.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            continue
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return False
        time.sleep(0.1)
    return True


def failed(message, evidence=()):
    exception = Failed(message)
    exception.evidence = list(evidence)
    return exception


def check(group, title):
    """Mark a function of the grader as a check of `group`, showing `title`."""

    def mark(function):
        function.group, function.title = group, title
        return function

    return mark
