"""The scenarios' frame: what Opik's runner API does, area by area (scenarios/), written once and run both by
`opik-runners conformance server` (against any server) and by this project's own test suite
(against this server, on every CI run, so the kit cannot rot).

A scenario is a function of a Context: it makes the calls a runner and the Opik UI make, in a
project of its own with unique names (nothing assumes it may reset the server), and states
what it expects with `ctx.expect...`. Where this server departs from Opik on purpose, the
scenario names the departure (an anchor of docs/opik-behaviour.md) and says what each profile
expects with `ctx.pick(opik=..., opik_runners=...)`:

- profile `opik`: what Opik does (the repository's reference of Opik's behaviour);
- profile `opik-runners`: this server's documented departures instead.

So against this server, profile `opik-runners` passes everything, and profile `opik` differs in
exactly the scenarios that name a departure."""
import os
import re
import time
import uuid
from dataclasses import dataclass, field

from ..protocol import RunnerType, activation_hmac_text, encode_base64

PROFILES = ("opik", "opik-runners")
SCENARIOS = []
AREAS = ["health", "projects", "pairing", "runners", "heartbeats", "jobs", "listing", "bridge", "errors"]
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z")
AGENT = {"description": "Answers a question.", "language": "python", "timeout": 0,
         "params": [{"name": "question", "type": "string", "presence": "required"}]}


@dataclass
class Scenario:
    area: str
    name: str  # the function's name: what --only matches
    title: str  # what it shows, as a sentence
    run: object
    departure: str = None  # the docs/opik-behaviour.md anchor it shows, under profile opik
    slow: bool = False  # it waits for real time (a heartbeat to expire): run with --slow


def scenario(area, title, departure=None, slow=False):
    """Register a scenario of `area` (one of AREAS)."""
    assert area in AREAS, area

    def register(function):
        SCENARIOS.append(Scenario(area, function.__name__, title, function, departure, slow))
        return function

    return register


class Skip(Exception):
    """The scenario cannot run here; the message says why."""


@dataclass
class Difference:
    what: str
    expected: object
    got: object
    answer: object = None  # the exchange (http.Answer) that showed it


@dataclass
class Options:
    """What the scenarios must know of the server's settings, given or defaulted to Opik's."""

    heartbeat_ttl: float = 15.0  # OPIK_RUNNER_HEARTBEAT_TTL
    max_pending: int = 100  # OPIK_RUNNER_MAX_PENDING
    poll_hold: float = None  # how long jobs/next holds an empty poll: measured when None


@dataclass
class Runner:
    """A runner a scenario paired: its ids, and the pairing's key (for the bridge's)."""

    id: str
    project_id: str
    project: str
    session_id: str
    key: bytes
    name: str
    type: str


class Context:
    """What a scenario works with: the API, the profile, the options, and helpers that make a
    world the way the CLI does (a project, a paired runner) under names no other run shares."""

    def __init__(self, api, profile, options, run_id):
        self.api, self.profile, self.options = api, profile, options
        self.run_id = run_id  # the first words of every name it makes ("conformance-1f2e3d4c")
        self.differences = []
        self._cleanups = []

    # -- expectations

    def pick(self, opik, opik_runners):
        """What the profile expects where this server departs from Opik on purpose."""
        return opik if self.profile == "opik" else opik_runners

    def expect(self, condition, what, expected, got, answer=None):
        if not condition:
            self.differences.append(Difference(what, expected, got, answer))
        return bool(condition)

    def expect_equal(self, what, got, expected, answer=None):
        return self.expect(got == expected, what, expected, got, answer)

    def expect_status(self, answer, status, what=None):
        return self.expect(answer.status == status, what or f"the status of {answer.method} {_path(answer.url)}",
                           status, answer.status, answer)

    def expect_errors(self, answer, status, message=None):
        """Opik's business-rule shape: `status`, `{"errors": [...]}`, with `message` among them."""
        if not self.expect_status(answer, status):
            return
        body = answer.json
        shaped = isinstance(body, dict) and isinstance(body.get("errors"), list)
        if self.expect(shaped, "the error's shape", '{"errors": [...]}', answer.text[:200], answer) and message:
            self.expect(message in body["errors"], "the error's message", message, body["errors"], answer)

    def expect_message(self, answer, status, message=None, prefix=None):
        """Opik's thrown-exception shape: `status`, `{"code": status, "message": ...}`."""
        if not self.expect_status(answer, status):
            return
        body = answer.json
        shaped = isinstance(body, dict) and body.get("code") == status and isinstance(body.get("message"), str)
        if not self.expect(shaped, "the error's shape", f'{{"code": {status}, "message": "..."}}', answer.text[:200],
                           answer):
            return
        if message is not None:
            self.expect_equal("the error's message", body["message"], message, answer)
        if prefix is not None:
            self.expect(body["message"].startswith(prefix), "the error's message", f"{prefix}...", body["message"],
                        answer)

    def expect_time(self, what, value, answer=None):
        return self.expect(isinstance(value, str) and ISO_UTC.fullmatch(value), what,
                           "an ISO-8601 UTC time ending in Z", value, answer)

    def skip(self, reason):
        raise Skip(reason)

    # -- a world of its own

    def unique(self, word):
        """A name no other scenario or run uses: the run's id, the word, and a random part."""
        return f"{self.run_id}-{word}-{uuid.uuid4().hex[:8]}"

    def on_exit(self, undo):
        """Call `undo()` when the scenario ends, whatever its outcome (runners are deleted)."""
        self._cleanups.append(undo)

    def cleanup(self):
        for undo in reversed(self._cleanups):
            try:
                undo()
            except Exception:  # a server that is gone takes its runners with it
                pass

    def project(self, word="project"):
        """A new project: (name, id)."""
        name = self.unique(word)
        made = self.api.call("POST", "v1/private/projects", {"name": name})
        if made.status != 201:
            raise Skip(f"could not create a project: {made.describe()}")
        found = self.api.call("POST", "v1/private/projects/retrieve", {"name": name})
        if found.status != 200 or not isinstance(found.json, dict):
            raise Skip(f"could not retrieve the project just made: {found.describe()}")
        return name, found.json["id"]

    def session(self, project_id, runner_type=RunnerType.ENDPOINT):
        """A pairing session as the CLI creates it: (answer, session id, runner id, key)."""
        key = os.urandom(32)
        answer = self.api.call("POST", "v1/private/pairing/sessions", {
            "project_id": project_id, "activation_key": encode_base64(key), "ttl_seconds": 300,
            "type": runner_type})
        body = answer.json if answer.status == 201 and isinstance(answer.json, dict) else {}
        return answer, body.get("session_id"), body.get("runner_id"), key

    def runner(self, runner_type=RunnerType.ENDPOINT, agents=None, project=None):
        """A runner paired the way `opik endpoint --headless` pairs (its agents registered, for an
        endpoint runner), deleted when the scenario ends."""
        name, project_id = project or self.project()
        answer, session_id, runner_id, key = self.session(project_id, runner_type)
        if answer.status != 201 or not runner_id:
            raise Skip(f"could not create a pairing session: {answer.describe()}")
        runner_name = self.unique("runner")
        activated = self.api.call("POST", f"v1/private/pairing/sessions/{session_id}/activate",
                                  {"runner_name": runner_name,
                                   "hmac": activation_hmac_text(session_id, key, runner_name)})
        if activated.status == 409:
            raise Skip("the server activates pairing sessions itself (OPIK_PAIRING_AUTO_ACTIVATE): "
                       "these scenarios pair as `opik endpoint --headless` does")
        if activated.status != 201:
            raise Skip(f"could not activate the pairing session: {activated.describe()}")
        runner = Runner(runner_id, project_id, name, session_id, key, runner_name, runner_type)
        self.on_exit(lambda: self.api.call("DELETE", f"v1/private/local-runners/{runner_id}", timeout=10))
        if runner_type == RunnerType.ENDPOINT:
            registered = self.api.call("PUT", f"v1/private/local-runners/{runner_id}/agents",
                                       agents if agents is not None else {"answer": AGENT})
            if registered.status != 204:
                raise Skip(f"could not register agents: {registered.describe()}")
        return runner

    def beat(self, runner, capabilities=None):
        body = {"capabilities": capabilities} if capabilities is not None else None
        return self.api.call("POST", f"v1/private/local-runners/{runner.id}/heartbeats", body)

    def create_job(self, runner, agent="answer", inputs=None, expect=201):
        """A job for the runner's project; its id (the Location header's last part)."""
        answer = self.api.call("POST", "v1/private/local-runners/jobs", {
            "agent_name": agent, "project_id": runner.project_id, "inputs": inputs or {"question": "2+2?"}})
        if answer.status != expect:
            raise Skip(f"could not create a job: {answer.describe()}")
        return answer.headers.get("Location", "").rsplit("/", 1)[-1] or None

    def claim(self, runner):
        """jobs/next, as the CLI polls it (no body): the job handed out, or None."""
        answer = self.api.call("POST", f"v1/private/local-runners/{runner.id}/jobs/next")
        return answer, (answer.json if answer.status == 200 else None)

    def job(self, job_id):
        answer = self.api.call("GET", f"v1/private/local-runners/jobs/{job_id}")
        return answer, (answer.json if answer.status == 200 else None)


@dataclass
class Result:
    scenario: Scenario
    outcome: str  # "passed", "differs" or "skipped"
    differences: list = field(default_factory=list)
    reason: str = ""
    seconds: float = 0.0


def run(scenario, api, profile, options, run_id):
    """Run one scenario; its Result. An exception is a difference: the server did not answer
    the way a client could go on from."""
    ctx = Context(api, profile, options, run_id)
    first = len(api.exchanges)  # the exchanges before are earlier scenarios'
    started = time.monotonic()
    try:
        scenario.run(ctx)
    except Skip as skipped:
        return Result(scenario, "skipped", reason=str(skipped), seconds=time.monotonic() - started)
    except Exception as exc:  # no answer, or one a client could not read
        ctx.differences.append(Difference("an answer a client can read", "an answer",
                                          f"{type(exc).__name__}: {exc}",
                                          api.exchanges[-1] if len(api.exchanges) > first else None))
    finally:
        ctx.cleanup()
    outcome = "differs" if ctx.differences else "passed"
    return Result(scenario, outcome, ctx.differences, seconds=time.monotonic() - started)


def new_run_id():
    return uuid.uuid4().hex[:8]


def _path(url):
    return "/" + url.split("://", 1)[-1].split("/", 1)[-1]
