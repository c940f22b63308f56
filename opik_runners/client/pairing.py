"""How the simulated runner pairs, as `opik endpoint` does (docs/opik-behaviour.md#cli-startup,
docs/opik-behaviour.md#cli-pairing-link, docs/opik-behaviour.md#cli-pairing-poll): the project by
name, made when missing; a pairing session with a random activation key; then activation, the
mode's way: with the HMAC itself (headless), by the server's own auto-activation, by this
server's control plane, or from a link a person opens in a browser."""
import json
import os
import time
import urllib.parse
import uuid

from ..protocol import RunnerStatus, RunnerType, activation_hmac_text, encode_base64, link_fragment
from .http import HttpError, Unreachable

PAIRING_POLL_INTERVAL, PAIRING_DEADLINE = 2.0, 300
SESSION_TTL = 300
PROVIDER_STATE = "a connected endpoint runner"  # provider_states.ENDPOINT (this server's only)


class SimulationError(Exception):
    """Something that stops the simulator, worded for the person who started it."""


class Interrupted(BaseException):
    """Ctrl-C or SIGTERM before the runner is serving: unwinds whatever call is under way."""


def short(value, limit=120):
    """A value's JSON, cut to `limit` characters for a line of output."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pairing_link(api_url, session_id, key, project_id, project_name, runner_name, workspace):
    """The link `opik endpoint` prints (docs/opik-behaviour.md#cli-pairing-link): the pairing page at the
    domain root, with the session, key, project, name and type in the fragment."""
    fragment = link_fragment(session_id, key, project_id, runner_name, RunnerType.ENDPOINT)
    parsed = urllib.parse.urlparse(api_url)
    ui_url = api_url.rstrip("/")
    ui_url = (ui_url[: -len("/api")] if ui_url.endswith("/api") else ui_url) + "/"
    query = [f"url={urllib.parse.quote(ui_url, safe='')}", f"project={urllib.parse.quote(project_name, safe='')}"]
    if workspace:
        query.append(f"workspace={urllib.parse.quote(workspace, safe='')}")
    return f"{parsed.scheme}://{parsed.netloc}/opik/pair/v1?{'&'.join(query)}#{fragment}"


class Pairing:
    """One runner's pairing. `runner_id` is known once the session is made (the runner to
    DELETE on the way out, even before it is activated); `name` may change: a server that
    activates the session itself names the runner. `agents`: the declarations the control
    plane's provider state registers."""

    def __init__(self, client, url, project, workspace, name, agents, mode, say, stopping):
        self.client, self.url, self.project, self.workspace = client, url, project, workspace
        self.name, self.agents, self.mode, self.say, self.stopping = name, agents, mode, say, stopping
        self.runner_id = None
        self.paired = False

    def run(self):
        """Pair; SimulationError when it cannot, Interrupted when stopped meanwhile."""
        project_id = self.ensure_project()
        key = os.urandom(32)
        try:
            session = self.client.call("POST", "v1/private/pairing/sessions", {
                "project_id": project_id,
                "activation_key": encode_base64(key),
                "ttl_seconds": SESSION_TTL,
                "type": RunnerType.ENDPOINT,
            }, need_json=True)
            session_id, runner_id = str(uuid.UUID(session["session_id"])), str(uuid.UUID(session["runner_id"]))
        except HttpError as exc:
            raise SimulationError(f"could not create a pairing session: {exc}") from None
        except (TypeError, KeyError, ValueError):
            raise SimulationError(f"the server's pairing session has no session_id/runner_id: {session!r}") from None
        self.runner_id = runner_id
        self.activate(session_id, key, project_id)

    def ensure_project(self):
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

    def activate(self, session_id, key, project_id):
        if self.mode == "headless":
            try:
                self.client.call("POST", f"v1/private/pairing/sessions/{session_id}/activate",
                                 {"runner_name": self.name, "hmac": activation_hmac_text(session_id, key, self.name)})
                return self.done("activated it itself, as `opik endpoint --headless` does")
            except HttpError as exc:
                if exc.status != 409:  # 409: the server activated the session already
                    raise SimulationError(f"could not activate the pairing session: {exc}") from None
        if self.connected():
            return self.done("the server activated the pairing session itself (OPIK_PAIRING_AUTO_ACTIVATE)")
        if self.mode == "auto" and self.with_provider_state(project_id):
            return
        link = pairing_link(self.url, session_id, key, project_id, self.project, self.name, self.workspace)
        self.say("waiting for activation: open this link in a browser logged in to Opik (it expires in 5 minutes):")
        self.say(f"  {link}")
        deadline = time.monotonic() + PAIRING_DEADLINE
        while time.monotonic() < deadline:
            if self.stopping.wait(PAIRING_POLL_INTERVAL):
                raise Interrupted()
            if self.connected():
                return self.done("activated from the pairing link")
        raise SimulationError(f"Pairing timed out after {PAIRING_DEADLINE} seconds.")

    def connected(self):
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
        if isinstance(runner, dict) and runner.get("status") == RunnerStatus.CONNECTED:
            self.name = runner.get("name") or self.name
            return True
        return False

    def with_provider_state(self, project_id):
        """This server's control plane, when it answers: a connected runner made at once. Any
        server without one (a real Opik) says no, and the link is printed instead."""
        # The runner's user is left to the state's default, the user of a server without API
        # keys; with keys, this key's user may differ, and the check below tells.
        state = {"state": PROVIDER_STATE, "params": {
            "workspace": self.workspace, "project": self.project, "runner": self.name,
            "agents": self.agents,
        }}
        try:
            made = self.client.call("POST", "_admin/provider-states", state, at_root=True, need_json=True)
            runner_id = str(uuid.UUID(made["runner_id"]))
        except (HttpError, Unreachable, TypeError, KeyError, ValueError):
            return False
        session_runner, self.runner_id = self.runner_id, runner_id
        try:
            ours = self.connected()
        except SimulationError:
            ours = False
        if not ours:  # another user's runner: not ours to drive, so take it away again
            self.runner_id = session_runner
            try:
                self.client.call("POST", "_admin/provider-states", {**state, "action": "teardown"}, at_root=True)
            except (HttpError, Unreachable):
                pass
            return False
        self.done(f"made by the server's control plane (POST /_admin/provider-states {PROVIDER_STATE!r})")
        return True

    def done(self, how):
        self.paired = True
        self.say(f"paired: runner {self.name!r} ({self.runner_id}); {how}")
