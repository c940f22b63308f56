"""A real server in a subprocess, for tests and benchmarks: `opik-runners serve` on a free
port of loopback (or another app object served with the shipped configuration); and
RunnerServer, the same with the control plane on and helpers that call it, for people testing
their own code against this server (the pytest plugin serves one).

Standard library only: it runs wherever the package is installed, in pytest or outside it."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request


def child_pids(parent_pid):
    """Processes whose parent is `parent_pid` (a gunicorn master's workers, a CLI's agent)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == parent_pid:
                        pids.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return sorted(pids)


def free_port():
    """A free TCP port of loopback (free now: take it soon)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`Server(database_url, **environment).start()` ... `.stop()`; `.url` is its base URL.

    `app` serves another app object ("module:factory()") with the shipped configuration
    instead of the command's own; `cwd` is where it runs (and imports `app` from)."""

    def __init__(self, database_url, app=None, cwd=None, port=None, **env):
        self.app = app
        self.cwd = cwd
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "DATABASE_URL": database_url, **env}
        self.process = None

    def command(self):
        bind = f"127.0.0.1:{self.port}"
        if self.app is None:
            return [sys.executable, "-m", "opik_runners", "serve", "--bind", bind]
        return [sys.executable, "-m", "gunicorn", "-c", "python:opik_runners.gunicorn_conf", "-b", bind, self.app]

    def start(self, timeout=20):
        # A file, not a pipe: nobody reads a pipe while the server runs, and a full one
        # would block the workers' logging.
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            self.command(), cwd=self.cwd, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {self.output()}")
            try:
                with urllib.request.urlopen(f"{self.url}/is-alive/ping", timeout=1) as answer:
                    if answer.status == 200:
                        return self
            except OSError:  # not listening yet, or a worker still booting
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the server did not answer /is-alive/ping in time: {self.output()}")

    def stop(self, graceful=False):
        """Stop the server: at once (SIGQUIT) unless `graceful` (SIGTERM, which waits for held
        polls). Returns what it logged."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM if graceful else signal.SIGQUIT)
            try:
                self.process.wait(timeout=25)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.output()

    def output(self):
        """What the server has logged so far."""
        if not self.process:
            return ""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")


class RunnerServerError(Exception):
    """A call of a RunnerServer helper that the server refused: `.status`, and `.body` (the
    decoded answer)."""

    def __init__(self, method, url, status, body):
        super().__init__(f"{method} {url} -> {status}: {body!r}")
        self.status = status
        self.body = body


class Fault(dict):
    """A fault rule as the server answered it (`rule["id"]`, ...). As a context manager, it is
    deleted on the way out, if it has not retired already."""

    def __init__(self, server, rule):
        super().__init__(rule)
        self.server = server

    def delete(self):
        self.server.delete_fault(self["id"], missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.delete()


class RunnerServer(Server):
    """`opik-runners serve` on loopback with the control plane (/_admin/) on, and helpers that
    call it over HTTP:

        with RunnerServer() as server:              # or server = RunnerServer().start() ... server.stop()
            env = {"OPIK_URL_OVERRIDE": server.api_url, ...}   # for the opik CLI or SDK
            server.wait_for(operation="register_agents")

    `port` 0 picks a free one. Without `database_url`, it serves a new SQLite file in a temporary
    directory that `stop()` removes. `workers`: gunicorn worker processes (default: the server's,
    2). Other keyword arguments are settings for the server, by variable name
    (`OPIK_RUNNER_HEARTBEAT_TTL="2s"`). `url` (and its alias `api_url`) is the `/api` base that goes
    in OPIK_URL_OVERRIDE; `root_url` is the server's root, where /_admin/ is.

    With OPIK_API_KEYS given, the helpers send the key of the first user named in
    OPIK_RUNNERS_ADMIN_USERS (set `admin_key` to send another). `check_response`, when set, is
    called as check_response(method, url, status, headers, body) with every answer a helper gets
    (a test suite can validate them against the OpenAPI documents)."""

    def __init__(self, port=0, database_url=None, workers=None, **env):
        env.setdefault("OPIK_RUNNERS_ADMIN", "on")
        if workers is not None:
            env["OPIK_RUNNERS_WORKERS"] = str(workers)
        super().__init__(database_url, port=port or None, **env)
        self.database_url = database_url
        # As the issue and the plugin promise: `url` is the /api base (OPIK_URL_OVERRIDE).
        self.root_url = self.url
        self.url = self.api_url = f"{self.root_url}/api"
        self.admin_key = _admin_key(self.env)
        self.check_response = None
        self._scratch = None  # the temporary directory of our own database

    # -- the server

    def start(self, timeout=20):
        """Start the server (a new temporary database, unless one was named) and wait until it
        answers; returns the server. Starting a running server does nothing."""
        if self.running:
            return self
        if self.database_url is None:
            self._scratch = tempfile.mkdtemp(prefix="opik-runners-")
            self.env["DATABASE_URL"] = f"sqlite:///{os.path.join(self._scratch, 'runners.db')}"
        try:
            super().start(timeout)
        except BaseException:
            self._remove_scratch()
            raise
        if self._scratch:
            # A new database's journal starts empty: without the pings that waited for the start.
            try:
                self.clear_requests()
            except RunnerServerError:
                pass  # the control plane is off (OPIK_RUNNERS_ADMIN)
        return self

    @property
    def running(self):
        """Whether the server process is running."""
        return self.process is not None and self.process.poll() is None

    def stop(self, graceful=False):
        """Stop the server (see Server.stop) and remove the temporary database, if it made one.
        Returns what the server logged."""
        try:
            return super().stop(graceful)
        finally:
            self._remove_scratch()

    def _remove_scratch(self):
        if self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    # -- the control plane

    def reset(self, workspace=None):
        """Wipe everything (runners, jobs, projects, traces, the journal, fault rules; the clock
        returns to real time), or one workspace's data and journal entries."""
        self.call("POST", "/_admin/reset", query={"workspace": workspace})

    def state(self, workspace=None):
        """The state document: everything the server holds (or one workspace's part)."""
        return self.call("GET", "/_admin/state", query={"workspace": workspace})

    def seed(self, document):
        """Load a state document (a dict, JSON text, or the path of a JSON file); returns how
        many of each kind were loaded ({"projects": 1, "runners": 1, ...})."""
        if isinstance(document, os.PathLike):
            with open(document, encoding="utf-8") as file:
                document = json.load(file)
        elif isinstance(document, (str, bytes)):
            document = json.loads(document)
        return self.call("POST", "/_admin/state", document)["loaded"]

    def provider_state(self, state, action="setup", **params):
        """Set up (or tear down) a built-in provider state, as a Pact verifier does; returns the
        ids it made ({"runner_id": ..., "project_id": ..., "job_ids": [...]}, or {})."""
        return self.call("POST", "/_admin/provider-states", {"state": state, "params": params, "action": action})

    def requests(self, **filters):
        """Journal entries of requests to the Opik API, newest first; filters: method, path (a
        glob), operation, status, workspace, since (a journal entry id, or an ISO-8601 time),
        limit (default 100)."""
        return self.call("GET", "/_admin/requests", query=filters)["requests"]

    def clear_requests(self):
        """Empty the journal."""
        self.call("DELETE", "/_admin/requests")

    def wait_for(self, count=1, timeout_s=10, since=None, **pattern):
        """Wait until `count` requests matching `pattern` (method, path glob, operation, status,
        workspace) have arrived, counting from now, or after the journal entry id `since` (0: everything in
        the journal); returns them, oldest first. Raises AssertionError saying what did arrive
        if they do not within `timeout_s`."""
        body = {**pattern, "count": count, "timeout_s": timeout_s}
        if since is not None:
            body["since"] = since
        status, answer = self.call_status("POST", "/_admin/requests/wait", body, timeout=timeout_s + 30,
                                          expect=(200, 408))
        if status == 200:
            return answer["requests"]
        matching = answer.get("requests", [])
        lines = [f"waited {timeout_s} s for {count} request(s) matching {_describe(pattern)}; "
                 f"{len(matching)} arrived" + (":" if matching else ".")]
        lines += [f"  {_entry_line(entry)}" for entry in matching]
        newest = self.requests(limit=10)
        if newest:
            lines.append("the journal's newest entries, of any kind (newest first):")
            lines += [f"  {_entry_line(entry)}" for entry in newest]
        else:
            lines.append("the journal is empty: nothing reached the Opik API")
        raise AssertionError("\n".join(lines))

    def fault(self, **rule):
        """Add a fault rule (method, path glob, operation, workspace; status and body, delay_ms,
        drop, hold_ms, answer_delay_ms; probability, seed, times). Returns it; `with
        server.fault(...):` deletes it on the way out."""
        return Fault(self, self.call("POST", "/_admin/faults", rule))

    def faults(self):
        """The fault rules, each with its counts (`matched`, `fired`, `active`)."""
        return [Fault(self, rule) for rule in self.call("GET", "/_admin/faults")["faults"]]

    def delete_fault(self, rule_id, missing_ok=False):
        """Delete one fault rule; returns whether it was there (a missing one raises, unless
        `missing_ok`)."""
        status, _ = self.call_status("DELETE", f"/_admin/faults/{rule_id}",
                                     expect=(204, 404) if missing_ok else (204,))
        return status == 204

    def clear_faults(self):
        """Delete every fault rule."""
        self.call("DELETE", "/_admin/faults")

    def advance_clock(self, seconds):
        """Move the server's clock `seconds` forward (every worker; the reaper runs right after);
        returns {"offset_s": ..., "now": ...}."""
        return self.call("POST", "/_admin/clock", {"advance_s": seconds})

    def reset_clock(self):
        """Return the server's clock to real time; returns {"offset_s": 0, "now": ...}."""
        return self.call("DELETE", "/_admin/clock")

    def clock(self):
        """The server's clock: {"offset_s": ..., "now": ...}."""
        return self.call("GET", "/_admin/clock")

    # -- the Opik API, for what a test does itself (the code under test uses its own client)

    def api(self, method, path, body=None, workspace=None, expect=(200, 201, 204)):
        """Call the Opik API at `/api/v1/private` + `path`; returns the decoded answer."""
        headers = {"Comet-Workspace": workspace} if workspace else {}
        return self.call(method, f"/api/v1/private{path}", body, headers=headers, expect=expect)

    def project_id(self, name, workspace=None):
        """The id of the project named `name`; RunnerServerError (404) if there is none."""
        return self.api("POST", "/projects/retrieve", {"name": name}, workspace)["id"]

    def create_job(self, project, agent, inputs=None, workspace=None, **fields):
        """Create a job for the project's runner (`project`: its name) and return its id."""
        body = {"agent_name": agent, "project_id": self.project_id(project, workspace), **fields}
        if inputs is not None:
            body["inputs"] = inputs
        headers = {"Comet-Workspace": workspace} if workspace else {}
        _, _, location = self._send("POST", "/api/v1/private/local-runners/jobs", body, headers, (201,), 30)
        return location.rsplit("/", 1)[1]

    def job(self, job_id, workspace=None):
        """The job, as `GET .../local-runners/jobs/{id}` answers it."""
        return self.api("GET", f"/local-runners/jobs/{job_id}", workspace=workspace)

    def runners(self, project, workspace=None):
        """The project's runners (the first page of the listing)."""
        project_id = self.project_id(project, workspace)
        return self.api("GET", f"/local-runners?project_id={project_id}", workspace=workspace)["content"]

    # -- HTTP

    def call(self, method, path, body=None, query=None, headers=None, expect=(200, 201, 204), timeout=30):
        """`method path` on this server with a JSON `body`; returns the decoded answer (None for
        an empty one), or raises RunnerServerError for a status not in `expect`."""
        return self.call_status(method, path, body, query, headers, expect, timeout)[1]

    def call_status(self, method, path, body=None, query=None, headers=None, expect=(200, 201, 204), timeout=30):
        if query:
            query = {key: value for key, value in query.items() if value is not None}
            if query:
                path = f"{path}?{urllib.parse.urlencode(query)}"
        status, answer, _ = self._send(method, path, body, headers or {}, expect, timeout)
        return status, answer

    def _send(self, method, path, body, headers, expect, timeout):
        url = f"{self.root_url}{path}"
        headers = dict(headers)
        if self.admin_key:
            headers.setdefault("Authorization", self.admin_key)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                status, answer_headers, raw = answer.status, answer.headers, answer.read()
        except urllib.error.HTTPError as refused:
            status, answer_headers, raw = refused.code, refused.headers, refused.read()
        if self.check_response is not None:
            self.check_response(method, url, status, answer_headers, raw)
        decoded = raw.decode("utf-8", errors="replace") if raw else None
        if raw and "json" in (answer_headers.get("Content-Type") or ""):
            decoded = json.loads(raw)
        if status not in expect:
            raise RunnerServerError(method, url, status, decoded)
        return status, decoded, answer_headers.get("Location") or ""


def _admin_key(env):
    """The key of the first admin user that OPIK_API_KEYS names, if keys are configured."""
    keys = {}
    for pair in (env.get("OPIK_API_KEYS") or "").split(","):
        user, _, key = pair.strip().partition(":")
        if key.strip():
            keys.setdefault(user.strip(), key.strip())
    for user in (env.get("OPIK_RUNNERS_ADMIN_USERS") or "").split(","):
        if user.strip() in keys:
            return keys[user.strip()]
    return None


def _describe(pattern):
    return ", ".join(f"{key}={value!r}" for key, value in pattern.items()) or "anything"


def _entry_line(entry):
    status = "dropped" if entry.get("status") is None else entry["status"]
    query = f"?{entry['query']}" if entry.get("query") else ""
    return f"#{entry['id']} {entry['method']} {entry['path']}{query} -> {status} ({entry.get('operation')})"
