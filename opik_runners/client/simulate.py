"""A simulated `opik endpoint` runner with scripted agents (`opik-runners simulate`).

It speaks only the public Opik API, with the calls the real CLI (SDK 2.2.122) makes and in
the same way (docs/opik-behaviour.md#cli): the project by name, a pairing session with a
random activation key, activation, `PUT agents`, the checklist, a heartbeat every 5 s, the
`jobs/next` long poll, one report per job state, log batches, the job's trace, and a DELETE of
the runner on the way out. So it serves against this server and against a real Opik alike:
people building a UI or a client on runners can work without writing an agent.

The standard library's urllib is its HTTP client, so the package gains no dependency.
Nothing here knows click or Flask: `cli.py` parses the command line and calls `Simulator.run`.
"""
import base64
import gzip
import hashlib
import hmac
import http.client
import json
import math
import os
import random
import secrets
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import OrderedDict, namedtuple
from datetime import datetime, timezone

from uuid6 import uuid7

from .. import __version__

DEFAULT_URL = "http://127.0.0.1:5173/api"  # `opik-runners serve`'s default bind, API under /api
DEFAULT_AGENTS = "echo,fail,sleep:5,logs:10"
USER_AGENT = f"opik-runners-simulate/{__version__}"

# The CLI's timings (docs/opik-behaviour.md#cli-startup, docs/opik-behaviour.md#cli-pairing-poll,
# docs/opik-behaviour.md#cli-supervisor, docs/opik-behaviour.md#cli-endpoint-loop,
# docs/opik-behaviour.md#cli-cancellation).
HEARTBEAT_INTERVAL = 5.0
POLL_IDLE_INTERVAL = 0.5
BACKOFF_FIRST, BACKOFF_CAP = 1.0, 30.0
PAIRING_POLL_INTERVAL, PAIRING_DEADLINE = 2.0, 300
SESSION_TTL = 300
PING_INTERVAL = 10.0
NEXT_JOB_READ_TIMEOUT = 100  # httpx's read timeout: longer than any server's held poll
REQUEST_TIMEOUT = 30
GZIP_FROM = 256  # the CLI gzips JSON bodies of this many bytes or more
CANCELLED_TTL, CANCELLED_MAX = 300, 10_000
MAX_AGENTS = 50  # the server's limit per runner
MAX_LOG_BATCH = 1000  # the server's limit per POST logs
PROVIDER_STATE = "a connected endpoint runner"  # provider_states.ENDPOINT (this server's only)

SCRIPTS = ("echo", "fail", "sleep", "logs", "timeout")  # cli.py's --help describes each
STRING_PARAM = {"name": "message", "type": "string", "presence": "optional"}
# echo declares one optional param of each type the CLI registers, so a form has every kind of field.
ECHO_PARAMS = [
    STRING_PARAM,
    {"name": "count", "type": "integer", "presence": "optional"},
    {"name": "temperature", "type": "float", "presence": "optional"},
    {"name": "verbose", "type": "boolean", "presence": "optional"},
]


class SimulationError(Exception):
    """Something that stops the simulator, worded for the person who started it."""


# -- agents


Agent = namedtuple("Agent", "name script value label")


def parse_agents(spec):
    """`[name=]script` items, comma separated (`echo,nap=sleep:2,logs:5`) -> [Agent]. The name
    defaults to the script's word. ValueError says what is wrong."""
    agents = []
    for item in (part.strip() for part in (spec or "").split(",")):
        if not item:
            continue
        name, sep, label = item.rpartition("=")
        name, label = (name.strip(), label.strip()) if sep else (None, item)
        word, colon, argument = label.partition(":")
        if word not in SCRIPTS:
            raise ValueError(f"unknown script {label!r} (known: echo, fail, sleep:SECONDS, logs:N, timeout)")
        value = None
        if word in ("sleep", "logs"):
            if not colon:
                raise ValueError(f"{word} needs a number: {'sleep:SECONDS' if word == 'sleep' else 'logs:N'}")
            try:
                value = float(argument) if word == "sleep" else int(argument)
            except ValueError:
                raise ValueError(f"{label!r}: {argument!r} is not a {'number' if word == 'sleep' else 'whole number'}") from None
            if value < 0 or not math.isfinite(value):
                raise ValueError(f"{label!r}: must be a finite number, not negative")
        elif colon:
            raise ValueError(f"{word} takes no argument, got {label!r}")
        if sep and not name:
            raise ValueError(f"{item!r}: the agent's name is empty")
        agent = Agent(name or word, word, value, label)
        if any(other.name == agent.name for other in agents):
            raise ValueError(f"two agents named {agent.name!r}: name one of them, e.g. nap={label}")
        agents.append(agent)
    if not agents:
        raise ValueError("no agents: give at least one, e.g. echo")
    if len(agents) > MAX_AGENTS:
        raise ValueError(f"{len(agents)} agents: a runner registers at most {MAX_AGENTS}")
    return agents


def declaration(agent):
    """The Agent object `PUT agents` registers (docs/opik-behaviour.md#cli-agents): no name inside, timeout 0."""
    return {
        "description": f"Simulated ({agent.label}): {describe(agent)}.",
        "language": "python",
        "params": ECHO_PARAMS if agent.script == "echo" else [STRING_PARAM],
        "timeout": 0,
    }


def describe(agent):
    """What the agent does, in its registered description."""
    if agent.script == "sleep":
        return f"waits {agent.value:g} s, then returns its inputs"
    if agent.script == "logs":
        return f"writes {agent.value} log lines, alternating stdout and stderr, then returns its inputs"
    return {
        "echo": "returns its inputs as the result",
        "fail": "fails with an error (the `message` input as its text, if given)",
        "timeout": "never answers: the job stays running until the server times it out",
    }[agent.script]


def check_name(name):
    """The CLI's rules for a runner name (it travels in the link with a one-byte length)."""
    if name is None:
        return
    if not name.strip():
        raise ValueError("the runner name must not be empty")
    if len(name) > 128 or len(name.encode("utf-8")) > 255:
        raise ValueError("the runner name must be at most 128 characters and 255 UTF-8 bytes")


# -- pairing


def activation_hmac(session_id, key, runner_name):
    """base64(HMAC-SHA256(key, session UUID bytes || SHA-256(runner name)))
    (docs/opik-behaviour.md#activation-hmac)."""
    message = uuid.UUID(session_id).bytes + hashlib.sha256(runner_name.encode("utf-8")).digest()
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def pairing_link(api_url, session_id, key, project_id, project_name, runner_name, workspace):
    """The link `opik endpoint` prints (docs/opik-behaviour.md#cli-pairing-link): the pairing page at the domain
    root, with the session, key, project, name and type in the fragment."""
    name = runner_name.encode("utf-8")
    payload = uuid.UUID(session_id).bytes + key + uuid.UUID(project_id).bytes + bytes([len(name)]) + name + b"\x01"
    fragment = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
    parsed = urllib.parse.urlparse(api_url)
    ui_url = api_url.rstrip("/")
    ui_url = (ui_url[: -len("/api")] if ui_url.endswith("/api") else ui_url) + "/"
    query = [f"url={urllib.parse.quote(ui_url, safe='')}", f"project={urllib.parse.quote(project_name, safe='')}"]
    if workspace:
        query.append(f"workspace={urllib.parse.quote(workspace, safe='')}")
    return f"{parsed.scheme}://{parsed.netloc}/opik/pair/v1?{'&'.join(query)}#{fragment}"


# -- HTTP


class HttpError(Exception):
    """A non-2xx answer (or a 2xx whose body is not the JSON the call needs)."""

    def __init__(self, method, path, status, body):
        self.status = status
        self.body = body
        text = " ".join(body.split())
        super().__init__(f"{method} {path} answered HTTP {status}" + (f": {text[:200]}" if text else ""))


class Unreachable(Exception):
    """No answer at all: refused, reset, timed out."""


class Client:
    """The Opik REST API as the CLI calls it: `{url}/{path}`, the `Comet-Workspace` header
    always, `Authorization: <raw key>` when there is one, JSON bodies of 256 bytes or more
    gzipped, an empty object sent as no body (docs/opik-behaviour.md#paths, docs/opik-behaviour.md#cli-headers,
    docs/opik-behaviour.md#cli-gzip, docs/opik-behaviour.md#empty-bodies)."""

    def __init__(self, url, workspace, api_key):
        self.base = url.rstrip("/")
        parsed = urllib.parse.urlparse(self.base)
        self.root = f"{parsed.scheme}://{parsed.netloc}"
        self.headers = {"Comet-Workspace": workspace, "User-Agent": USER_AGENT, "Accept": "application/json"}
        if api_key:
            self.headers["Authorization"] = api_key

    def call(self, method, path, body=None, timeout=REQUEST_TIMEOUT, at_root=False, need_json=False):
        """The answer's JSON (None for an empty body, unless `need_json`). `at_root`: a path at
        the domain root (the control plane, which no Opik client calls: its bodies go as they are)."""
        url = f"{self.root if at_root else self.base}/{path}"
        headers = dict(self.headers)
        data = None  # no body: http.client still sends Content-Length: 0 on POST/PUT/PATCH
        if body is not None and body != {}:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
            if len(data) >= GZIP_FROM and not at_root:
                data = gzip.compress(data)
                headers["Content-Encoding"] = "gzip"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                status, raw = answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            try:
                text = exc.read().decode("utf-8", "replace")
            except (OSError, http.client.HTTPException):
                text = ""
            raise HttpError(method, path, exc.code, text) from None
        except (OSError, http.client.HTTPException) as exc:  # URLError and timeouts are OSErrors
            raise Unreachable(f"{method} {url}: {getattr(exc, 'reason', None) or exc}") from None
        if not raw.strip():
            if need_json:
                raise HttpError(method, path, status, "(an empty body where JSON was due)")
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise HttpError(method, path, status, f"(not JSON) {raw[:200].decode('utf-8', 'replace')}") from None


# -- the runner


class _Interrupted(BaseException):
    """Ctrl-C or SIGTERM before the runner is serving: unwinds whatever call is under way."""


def short(value, limit=120):
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def iso_now():
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


class Simulator:
    """One simulated endpoint runner. `run()` pairs, serves jobs until Ctrl-C, SIGTERM or
    eviction, and disconnects; it raises SimulationError when it cannot go on. `say` gets
    one line per state change. `pairing`: "auto", "headless" or "link" (the command's
    --pairing). Signals are handled when `run()` is called from the main thread."""

    def __init__(self, project, agents=None, url=None, name=None, workspace=None, api_key=None, pairing="auto",
                 say=None):
        self.project = project
        self.agents = {agent.name: agent for agent in agents or parse_agents(DEFAULT_AGENTS)}
        self.url = (url or os.environ.get("OPIK_URL_OVERRIDE") or DEFAULT_URL).rstrip("/")
        self.name = name or f"simulated-{secrets.token_hex(3)}"
        self.workspace = workspace or "default"
        self.pairing = pairing
        self.client = Client(self.url, self.workspace, api_key)
        self._say = say or (lambda line: print(line, flush=True))
        self._say_lock = threading.Lock()
        self.stopping = threading.Event()
        self.runner_id = None
        self.paired = False
        self._signal = None  # the name of the signal that stopped it
        self._interruptible = False
        self._lock = threading.Lock()
        self._cancelled = OrderedDict()  # job id -> when a heartbeat named it
        self._running = {}  # job id -> Event that halts its script

    def say(self, line):
        with self._say_lock:
            self._say(f"{time.strftime('%H:%M:%S')} {line}")

    # lifecycle

    def run(self):
        previous = self._install_signal_handlers()
        try:
            self._interruptible = True
            try:
                self._start()
            except _Interrupted:
                self.say(f"{self._signal or 'interrupted'}: stopping before the runner was serving")
                return
            finally:
                self._interruptible = False
            self._serve()
            if self._signal:
                self.say(f"{self._signal}: stopping")
        except (HttpError, Unreachable) as exc:
            raise SimulationError(str(exc)) from None
        finally:
            self.stopping.set()
            self._halt_running_jobs()
            self._disconnect()
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _install_signal_handlers(self):
        # The handler prints nothing: it may run inside a print of the main thread, and
        # neither the say lock nor stdout's buffer may be entered twice.
        def on_signal(signum, frame):
            self._signal = self._signal or signal.Signals(signum).name
            self.stopping.set()
            if self._interruptible:
                self._interruptible = False
                raise _Interrupted()

        previous = {}
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, on_signal)
        return previous

    def _start(self):
        self.say(f"simulated endpoint runner for project {self.project!r}, workspace {self.workspace!r}, "
                 f"server {self.url}")
        project_id = self._ensure_project()
        key = os.urandom(32)
        try:
            session = self.client.call("POST", "v1/private/pairing/sessions", {
                "project_id": project_id,
                "activation_key": base64.b64encode(key).decode(),
                "ttl_seconds": SESSION_TTL,
                "type": "endpoint",
            }, need_json=True)
            session_id, runner_id = str(uuid.UUID(session["session_id"])), str(uuid.UUID(session["runner_id"]))
        except HttpError as exc:
            raise SimulationError(f"could not create a pairing session: {exc}") from None
        except (TypeError, KeyError, ValueError):
            raise SimulationError(f"the server's pairing session has no session_id/runner_id: {session!r}") from None
        self.runner_id = runner_id
        self._pair(session_id, key, project_id)

    def _ensure_project(self):
        """The project's id by name, created when missing (as `opik endpoint --headless` does)."""
        def retrieve():
            found = self.client.call("POST", "v1/private/projects/retrieve", {"name": self.project}, need_json=True)
            if not isinstance(found, dict) or not found.get("id"):
                raise SimulationError(f"the server's answer for project {self.project!r} has no id: {short(found)}")
            return found["id"]

        try:
            return retrieve()
        except Unreachable as exc:
            raise SimulationError(f"cannot reach the Opik server at {self.url} ({exc}); is it running? "
                                  "(start one with `opik-runners serve`, or give --url)") from None
        except HttpError as exc:
            if exc.status in (401, 403):
                raise SimulationError(f"the server refused the API key ({exc}); give --api-key or set OPIK_API_KEY") from None
            if exc.status != 404:
                raise SimulationError(f"could not retrieve project {self.project!r}: {exc}") from None
        try:
            self.client.call("POST", "v1/private/projects", {"name": self.project})
        except HttpError as exc:
            if exc.status != 409:  # 409: made meanwhile by someone else
                raise SimulationError(f"could not create project {self.project!r}: {exc}") from None
        project_id = retrieve()
        self.say(f"created project {self.project!r} ({project_id})")
        return project_id

    def _pair(self, session_id, key, project_id):
        if self.pairing == "headless":
            try:
                self.client.call("POST", f"v1/private/pairing/sessions/{session_id}/activate",
                                 {"runner_name": self.name, "hmac": activation_hmac(session_id, key, self.name)})
                return self._paired("activated it itself, as `opik endpoint --headless` does")
            except HttpError as exc:
                if exc.status != 409:  # 409: the server activated the session already
                    raise SimulationError(f"could not activate the pairing session: {exc}") from None
        if self._connected():
            return self._paired("the server activated the pairing session itself (OPIK_PAIRING_AUTO_ACTIVATE)")
        if self.pairing == "auto" and self._pair_with_provider_state(project_id):
            return
        link = pairing_link(self.url, session_id, key, project_id, self.project, self.name, self.workspace)
        self.say("waiting for activation: open this link in a browser logged in to Opik (it expires in 5 minutes):")
        self.say(f"  {link}")
        deadline = time.monotonic() + PAIRING_DEADLINE
        while time.monotonic() < deadline:
            if self.stopping.wait(PAIRING_POLL_INTERVAL):
                raise _Interrupted()
            if self._connected():
                return self._paired("activated from the pairing link")
        raise SimulationError(f"Pairing timed out after {PAIRING_DEADLINE} seconds.")

    def _connected(self):
        """Whether the runner is connected; the pairing poll's rules (docs/opik-behaviour.md#cli-pairing-poll):
        404 and no answer mean not yet, any other error is fatal."""
        try:
            runner = self.client.call("GET", f"v1/private/local-runners/{self.runner_id}", need_json=True)
        except Unreachable:
            return False
        except HttpError as exc:
            if exc.status == 404:
                return False
            raise SimulationError(f"while waiting for activation: {exc}") from None
        if isinstance(runner, dict) and runner.get("status") == "connected":
            self.name = runner.get("name") or self.name
            return True
        return False

    def _pair_with_provider_state(self, project_id):
        """This server's control plane, when it answers: a connected runner made at once. Any
        server without one (a real Opik) says no, and the link is printed instead."""
        # The runner's user is left to the state's default, the user of a server without API
        # keys; with keys, this key's user may differ, and the check below tells.
        state = {"state": PROVIDER_STATE, "params": {
            "workspace": self.workspace, "project": self.project, "runner": self.name,
            "agents": {name: declaration(agent) for name, agent in self.agents.items()},
        }}
        try:
            made = self.client.call("POST", "_admin/provider-states", state, at_root=True, need_json=True)
            runner_id = str(uuid.UUID(made["runner_id"]))
        except (HttpError, Unreachable, TypeError, KeyError, ValueError):
            return False
        session_runner, self.runner_id = self.runner_id, runner_id
        try:
            ours = self._connected()
        except SimulationError:
            ours = False
        if not ours:  # another user's runner: not ours to drive, so take it away again
            self.runner_id = session_runner
            try:
                self.client.call("POST", "_admin/provider-states", {**state, "action": "teardown"}, at_root=True)
            except (HttpError, Unreachable):
                pass
            return False
        self._paired(f"made by the server's control plane (POST /_admin/provider-states {PROVIDER_STATE!r})")
        return True

    def _paired(self, how):
        self.paired = True
        self.say(f"paired: runner {self.name!r} ({self.runner_id}); {how}")

    def _serve(self):
        """In the CLI's order: heartbeats and the checklist (its supervisor), then the agents
        and the job poll (its agent process)."""
        runner = f"v1/private/local-runners/{self.runner_id}"
        if self.stopping.is_set():
            return
        for loop in (self._heartbeat_loop, self._ping_loop):
            threading.Thread(target=loop, name=loop.__name__.strip("_"), daemon=True).start()
        try:  # what a UI shows about the runner's machine
            self.client.call("PATCH", f"{runner}/checklist", {
                "runner_type": "endpoint",
                "command": f"opik-runners simulate --project {self.project} --agents "
                           + ",".join(f"{name}={agent.label}" for name, agent in self.agents.items()),
                "platform": sys.platform,
                "project_root": os.getcwd(),
                "python_executable": sys.executable,
                "file_tree": "",
                "instrumentation": {"tracing": True, "entrypoint": True, "prompts": False},
                "instrumentation_matches": [],
            })
        except (HttpError, Unreachable):
            pass  # the CLI swallows these too
        try:
            self.client.call("PUT", f"{runner}/agents", {name: declaration(a) for name, a in self.agents.items()})
        except HttpError as exc:
            raise SimulationError(f"could not register the agents: {exc}") from None
        self.say("agents registered: " + ", ".join(
            name if name == agent.label else f"{name} ({agent.label})" for name, agent in self.agents.items()))
        threading.Thread(target=self._poll_loop, name="poll_loop", daemon=True).start()
        self.say("waiting for jobs; stop with Ctrl-C")
        while not self.stopping.wait(1):
            pass

    def _disconnect(self):
        """DELETE the runner, as the CLI does on every graceful exit. Sent before activation
        too (a no-op then): a browser may have activated it a moment ago."""
        if self.runner_id is None:
            return
        try:
            self.client.call("DELETE", f"v1/private/local-runners/{self.runner_id}", timeout=10)
            if self.paired:
                self.say(f"disconnected: runner {self.runner_id} deleted; the server fails any job it left unfinished")
        except (HttpError, Unreachable) as exc:
            if self.paired:
                self.say(f"could not delete runner {self.runner_id} ({exc}); it shows as disconnected once its "
                     "heartbeat lapses")

    # loops

    def _heartbeat_loop(self):
        """Every 5 s from the end of the last one; 410 means deleted or evicted: stop."""
        healthy = True
        while not self.stopping.is_set():
            try:
                answer = self.client.call("POST", f"v1/private/local-runners/{self.runner_id}/heartbeats",
                                          {"capabilities": ["jobs"]})
                ids = answer.get("cancelled_job_ids") or [] if isinstance(answer, dict) else []
                for job_id in ids:
                    self._cancel(str(job_id))
                if not healthy:
                    self.say("heartbeats answered again")
                healthy = True
            except HttpError as exc:
                if exc.status == 410:
                    self.say("the server no longer knows this runner (heartbeat answered 410: deleted, or evicted "
                             "by a newer runner of the same project and user); stopping")
                    self.stopping.set()
                    return
                if healthy:
                    self.say(f"heartbeat failed ({exc}); retrying every {HEARTBEAT_INTERVAL:g} s")
                healthy = False
            except Unreachable as exc:
                if healthy:
                    self.say(f"heartbeat failed ({exc}); retrying every {HEARTBEAT_INTERVAL:g} s")
                healthy = False
            self.stopping.wait(HEARTBEAT_INTERVAL)

    def _ping_loop(self):
        """The SDK client's connection probe, every 10 s; only its trace replay heeds it."""
        while not self.stopping.is_set():
            try:
                self.client.call("GET", "is-alive/ping", timeout=5)
            except (HttpError, Unreachable):
                pass
            self.stopping.wait(PING_INTERVAL)

    def _poll_loop(self):
        """jobs/next with no body; a job runs in its own thread and the next poll goes at once;
        `null` waits 0.5 s; any failure backs off 1 s doubling to 30 s, with jitter."""
        backoff, failures = BACKOFF_FIRST, 0
        while not self.stopping.is_set():
            try:
                job = self.client.call("POST", f"v1/private/local-runners/{self.runner_id}/jobs/next",
                                       timeout=NEXT_JOB_READ_TIMEOUT, need_json=True)
                if job is not None and not (isinstance(job, dict) and job.get("id")):
                    raise HttpError("POST", "jobs/next", 200, f"(not a job) {short(job)}")
            except (HttpError, Unreachable) as exc:
                failures += 1
                if failures == 1:
                    self.say(f"polling for jobs failed ({exc}); retrying with backoff")
                self.stopping.wait(backoff * random.uniform(0.5, 1.0))
                backoff = min(backoff * 2, BACKOFF_CAP)
                continue
            if failures:
                self.say(f"polling for jobs works again, after {failures} failed poll(s)")
            backoff, failures = BACKOFF_FIRST, 0
            if job is None:
                self.stopping.wait(POLL_IDLE_INTERVAL)
                continue
            if self.stopping.is_set():
                return  # claimed as we stop: the DELETE fails it
            threading.Thread(target=self._run_job, args=(job,), name=f"job-{job['id']}", daemon=True).start()

    def _cancel(self, job_id):
        """A heartbeat named the job cancelled. One not started yet is skipped when it comes
        (as the CLI does); a running one stops its script and reports nothing more, where the
        CLI would let it finish and report to no effect."""
        with self._lock:
            halt = self._running.get(job_id)
            if halt is None:
                now = time.monotonic()
                self._cancelled[job_id] = now
                while self._cancelled and (len(self._cancelled) > CANCELLED_MAX
                                           or next(iter(self._cancelled.values())) < now - CANCELLED_TTL):
                    self._cancelled.popitem(last=False)
                return
        halt.set()
        self.say(f"job {job_id} cancelled while running: its script stops, nothing more is reported")

    def _halt_running_jobs(self):
        with self._lock:
            for halt in self._running.values():
                halt.set()

    # jobs

    def _report(self, job_id, **body):
        try:
            self.client.call("POST", f"v1/private/local-runners/jobs/{job_id}/results", body)
        except (HttpError, Unreachable) as exc:
            self.say(f"job {job_id}: could not report {body['status']!r} ({exc})")  # not retried, as the CLI

    def _run_job(self, job):
        job_id, agent_name = str(job["id"]), job.get("agent_name")
        inputs = job.get("inputs") if isinstance(job.get("inputs"), dict) else {}
        with self._lock:
            skipped = self._cancelled.pop(job_id, None) is not None
            halt = self._running[job_id] = threading.Event()
        try:
            if skipped:
                self.say(f"job {job_id} skipped: it was cancelled before it started (nothing is reported)")
                return
            agent = self.agents.get(agent_name)
            if agent is None:
                self._report(job_id, status="failed", error=f"Unknown agent: {agent_name}")
                self.say(f"job {job_id} failed: no agent named {agent_name!r} here")
                return
            trace_id, started = str(uuid7()), iso_now()
            self._report(job_id, status="running", trace_id=trace_id)
            self.say(f"job {job_id} started: agent {agent.name!r} ({agent.label}), inputs {short(inputs)}")
            outcome = self._script(agent, job_id, inputs, job.get("timeout") or 0, halt)
            if outcome is None or halt.is_set():
                return  # cancelled, or stopping: the server has the last word
            status, value = outcome
            if status == "completed":
                self._report(job_id, status="completed", result=value, trace_id=trace_id)
                self.say(f"job {job_id} completed: result {short(value)}")
            else:
                self._report(job_id, status="failed", error=value, trace_id=trace_id)
                self.say(f"job {job_id} failed: {value}")
            self._send_trace(agent, trace_id, started, inputs, status, value)
        finally:
            with self._lock:
                self._running.pop(job_id, None)

    def _script(self, agent, job_id, inputs, timeout, halt):
        """("completed", result) or ("failed", error), or None when halted. Like the CLI, a job
        with a timeout fails with "Job timed out after Ns" once it passes (but `timeout`
        never answers, so that the server's reaper is what ends it)."""
        if agent.script == "timeout":
            halt.wait()
            return None
        if agent.script == "fail":
            return "failed", f"SimulatedError: {inputs.get('message') or 'this agent always fails'}"
        if agent.script == "sleep":
            if timeout and agent.value > timeout:
                return None if halt.wait(timeout) else ("failed", f"Job timed out after {timeout}s")
            if halt.wait(agent.value):
                return None
        if agent.script == "logs":
            lines = [{"stream": "stdout" if number % 2 else "stderr",
                      "text": f"log line {number} of {agent.value} ({'stdout' if number % 2 else 'stderr'})"}
                     for number in range(1, agent.value + 1)]
            for first in range(0, len(lines), MAX_LOG_BATCH):
                try:
                    self.client.call("POST", f"v1/private/local-runners/jobs/{job_id}/logs",
                                     lines[first:first + MAX_LOG_BATCH])
                except (HttpError, Unreachable) as exc:
                    self.say(f"job {job_id}: could not send logs ({exc})")  # the CLI drops them too
        return "completed", inputs

    def _send_trace(self, agent, trace_id, started, inputs, status, value):
        """The job's trace and its one span, as `@opik.track` sends them, so that the job's
        trace_id leads somewhere. Failures only cost the trace."""
        common = {"project_name": self.project, "name": agent.name, "start_time": started, "end_time": iso_now(),
                  "input": inputs}
        if status == "completed":
            common["output"] = value
        else:
            common["error_info"] = {"exception_type": value.split(":", 1)[0], "message": value, "traceback": ""}
        try:
            self.client.call("POST", "v1/private/spans/batch", {"spans": [
                {**common, "id": str(uuid7()), "trace_id": trace_id, "type": "general"}]})
            self.client.call("POST", "v1/private/traces/batch", {"traces": [{**common, "id": trace_id}]})
        except (HttpError, Unreachable):
            pass

