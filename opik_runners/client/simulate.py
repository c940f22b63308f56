"""A simulated `opik endpoint` runner with scripted agents (`opik-runners simulate`).

It speaks only the public Opik API, with the calls the real CLI (SDK 2.2.122) makes and in
the same way (docs/opik-behaviour.md#cli): the project by name, a pairing session with a
random activation key, activation, `PUT agents`, the checklist, a heartbeat every 5 s, the
`jobs/next` long poll, one report per job state, log batches, the job's trace, and a DELETE of
the runner on the way out (the pairing is pairing.py's). So it serves against this server and against a real Opik alike:
people building a UI or a client on runners can work without writing an agent.

The standard library's urllib is its HTTP client (http.py), so the package gains no dependency.
Nothing here knows click or Flask: `cli.py` parses the command line and calls `Simulator.run`.
"""
import os
import random
import secrets
import signal
import sys
import threading
import time
from collections import OrderedDict
from datetime import datetime, timezone

from uuid6 import uuid7

from ..protocol import JobStatus, RunnerType
from .agents import DEFAULT_AGENTS, declaration, parse_agents
from .http import Client, HttpError, Unreachable
from .pairing import Interrupted, Pairing, SimulationError, short

DEFAULT_URL = "http://127.0.0.1:5173/api"  # `opik-runners serve`'s default bind, API under /api

# The CLI's timings (docs/opik-behaviour.md#cli-supervisor, docs/opik-behaviour.md#cli-endpoint-loop,
# docs/opik-behaviour.md#cli-cancellation).
HEARTBEAT_INTERVAL = 5.0
POLL_IDLE_INTERVAL = 0.5
BACKOFF_FIRST, BACKOFF_CAP = 1.0, 30.0
PING_INTERVAL = 10.0
NEXT_JOB_READ_TIMEOUT = 100  # httpx's read timeout: longer than any server's held poll
CANCELLED_TTL, CANCELLED_MAX = 300, 10_000
MAX_LOG_BATCH = 1000  # the server's limit per POST logs


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
            except Interrupted:
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
                raise Interrupted()

        previous = {}
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, on_signal)
        return previous

    def _start(self):
        self.say(f"simulated endpoint runner for project {self.project!r}, workspace {self.workspace!r}, "
                 f"server {self.url}")
        pairing = Pairing(self.client, self.url, self.project, self.workspace, self.name,
                          {name: declaration(agent) for name, agent in self.agents.items()}, self.pairing, self.say,
                          self.stopping)
        try:
            pairing.run()
        finally:  # the runner to DELETE on the way out, even when the pairing was interrupted
            self.runner_id, self.name, self.paired = pairing.runner_id, pairing.name, pairing.paired

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
                "runner_type": RunnerType.ENDPOINT,
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
                self._report(job_id, status=JobStatus.FAILED, error=f"Unknown agent: {agent_name}")
                self.say(f"job {job_id} failed: no agent named {agent_name!r} here")
                return
            trace_id, started = str(uuid7()), iso_now()
            self._report(job_id, status=JobStatus.RUNNING, trace_id=trace_id)
            self.say(f"job {job_id} started: agent {agent.name!r} ({agent.label}), inputs {short(inputs)}")
            outcome = self._script(agent, job_id, inputs, job.get("timeout") or 0, halt)
            if outcome is None or halt.is_set():
                return  # cancelled, or stopping: the server has the last word
            status, value = outcome
            if status == JobStatus.COMPLETED:
                self._report(job_id, status=JobStatus.COMPLETED, result=value, trace_id=trace_id)
                self.say(f"job {job_id} completed: result {short(value)}")
            else:
                self._report(job_id, status=JobStatus.FAILED, error=value, trace_id=trace_id)
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
            return JobStatus.FAILED, f"SimulatedError: {inputs.get('message') or 'this agent always fails'}"
        if agent.script == "sleep":
            if timeout and agent.value > timeout:
                return None if halt.wait(timeout) else (JobStatus.FAILED, f"Job timed out after {timeout}s")
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
        return JobStatus.COMPLETED, inputs

    def _send_trace(self, agent, trace_id, started, inputs, status, value):
        """The job's trace and its one span, as `@opik.track` sends them, so that the job's
        trace_id leads somewhere. Failures only cost the trace."""
        common = {"project_name": self.project, "name": agent.name, "start_time": started, "end_time": iso_now(),
                  "input": inputs}
        if status == JobStatus.COMPLETED:
            common["output"] = value
        else:
            common["error_info"] = {"exception_type": value.split(":", 1)[0], "message": value, "traceback": ""}
        try:
            self.client.call("POST", "v1/private/spans/batch", {"spans": [
                {**common, "id": str(uuid7()), "trace_id": trace_id, "type": "general"}]})
            self.client.call("POST", "v1/private/traces/batch", {"traces": [{**common, "id": trace_id}]})
        except (HttpError, Unreachable):
            pass

