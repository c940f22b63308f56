"""The control plane for tests and local development, at /_admin/ (the domain root only):
reset, state export and seed, Pact provider states, the request journal, fault
injection and the movable clock. Its routes are thin, like api.py's; the rules live in
reset.py, state.py, provider_states.py, journal.py, faults.py and control.py.

`init_app` wires it up when the control plane is on (settings.admin_enabled): the
blueprint, the access check, the fault hook (before every other) and the journal's
capture of each Opik API request; in a served worker, `start_worker` starts the
process's control listener and journal flusher. When it is off none of it exists, so
every /_admin/ path is a plain 404 and requests cost nothing.
"""
import errno
import importlib.resources
import time

from flask import Blueprint, Response, g, request
from werkzeug.exceptions import RequestEntityTooLarge

from .. import clock, metrics
from . import console
from ..control import shared as control, faults, journal, provider_states, reset
from ..control.state.document import StateError
from ..control.state import export, seed
from ..domain import maintenance
from ..schemas import notes
from .messages import has_body, inflate, load_body, load_query, read_json, requested_workspace, respond, settings
from ..errors import failure
from ..store.models import database
from ..schemas.admin import (
    ClockRequest, FaultRequest, JournalEntrySchema, ProviderStateRequest, RequestsQuery, WaitRequest,
    WorkspaceQuery,
)
from ..clock import iso_utc
from ..settings import admin_enabled

admin = Blueprint("admin", __name__)

ENTRIES = JournalEntrySchema(many=True)
# What a long poll held by a fault answers when the hold ends: the empty answer of its kind.
EMPTY_POLL_ANSWERS = {"next_job": "null", "next_bridge_commands": '{"commands":[]}'}


def init_app(app, settings):
    """Serve the control plane if it is on. Call before identify_caller is registered: a fault
    answers before the caller is checked (db.open_connection runs first: drawing needs it)."""
    if not admin_enabled(settings):
        return
    app.register_blueprint(admin, url_prefix="/_admin")
    app.before_request(before_opik_request)
    if settings.journal_size > 0:
        app.after_request(record_request)
    app.after_request(answer_late)  # registered after record_request, so it runs before it
    app.wsgi_app = drop_middleware(app.wsgi_app)


def start_worker(app):
    """In each served worker (serving.post_worker_init): the listener that takes the other
    processes' control changes, and the journal's flusher. An app in one process (a test
    client) needs neither: its changes are its own, and it writes each entry at once."""
    configured = getattr(app, "extensions", {}).get("opik_runners")
    if configured is not None and admin_enabled(configured):
        # Seen from now on: a change made after this waits for this worker to take it, and
        # one made before (while it booted) is read here.
        with database.connection_context():
            control.refresh()
            control.mark_seen()
        control.start()
        if configured.journal_size > 0:
            journal.start_flusher(configured.journal_size)


# -- access


@admin.before_request
def check_access():
    """With API keys configured, only the users OPIK_RUNNERS_ADMIN_USERS names may use the
    control plane (lifecycle.identify_caller has already answered 401 for a missing or unknown key)."""
    configured = settings()
    if configured.api_keys and g.caller.user not in configured.admin_users and request.method != "OPTIONS":
        raise failure(403, f"User {g.caller.user!r} may not use the control plane (OPIK_RUNNERS_ADMIN_USERS)")


# -- the routes


@admin.get("/openapi.yaml")
def openapi():
    document = importlib.resources.files("opik_runners").joinpath("admin-openapi.yaml").read_bytes()
    return Response(document, mimetype="application/yaml")


@admin.post("/reset")
def reset_all():
    reset.reset(load_query(WorkspaceQuery)["workspace"])
    return Response(status=204)


@admin.get("/state")
def export_state():
    return respond(export.export_state(load_query(WorkspaceQuery)["workspace"]))


@admin.post("/state")
def load_state():
    document = read_json(required=False)
    if not isinstance(document, dict):
        raise failure(400, "The body must be a state document (a JSON object), as GET /_admin/state answers")
    try:
        loaded = seed.load_state(settings(), document)
    except StateError as exc:
        raise failure(400, str(exc))
    return respond({"loaded": loaded})


@admin.post("/provider-states")
def provider_state():
    body = load_body(ProviderStateRequest, required=False)
    act = provider_states.setup if body["action"] == "setup" else provider_states.teardown
    try:
        made = act(settings(), body["state"], body["params"] or {})
    except (provider_states.UnknownState, StateError) as exc:
        raise failure(400, str(exc))
    return respond(made)


@admin.get("/requests")
def list_requests():
    q = load_query(RequestsQuery)
    control.flush_journals()
    total, entries = journal.list_entries(settings().journal_size, q.pop("limit"), **pattern(q))
    return respond({"requests": ENTRIES.dump(entries), "meta": {"total": total}})


@admin.delete("/requests")
def clear_requests():
    control.flush_journals()  # what was answered before this call goes too
    journal.clear()
    return Response(status=204)


@admin.post("/requests/wait")
def wait_for_requests():
    called_at = clock.real_now_us()
    body = load_body(WaitRequest, required=False)
    count, timeout = body.pop("count"), body.pop("timeout_s")
    filters = pattern(body)
    control.flush_journals()
    if "after_id" not in filters and "since_us" not in filters:
        filters["since_us"] = called_at  # entries of requests answered from the moment of the call
    arrived, entries = journal.wait_for_entries(
        settings().journal_size, count, timeout, release=database.hand_back_connection, **filters
    )
    if arrived:
        return respond({"requests": ENTRIES.dump(entries)})
    return respond({
        "code": 408, "message": f"{len(entries)} of {count} matching requests arrived in {timeout:g} s",
        "requests": ENTRIES.dump(entries),
    }, 408)


def pattern(query):
    """Journal filters from a parsed query or body: `since` becomes after_id or since_us."""
    since = query.pop("since", None) or {}
    return {**{k: v for k, v in query.items() if v is not None}, **since}


@admin.post("/faults")
def add_fault():
    body = load_body(FaultRequest, required=False)
    odds = {key: body.pop(key) for key in ("probability", "seed", "times")}
    rule = {key: value for key, value in body.items() if value is not None and value is not False}
    return respond(faults.add_rule(rule, **odds), 201)


@admin.get("/faults")
def list_faults():
    return respond({"faults": faults.list_rules()})


@admin.delete("/faults")
def clear_faults():
    control.change(faults.clear)
    return Response(status=204)


@admin.delete("/faults/<int:rule_id>")
def delete_fault(rule_id):
    faults.delete_rule(rule_id)
    return Response(status=204)


@admin.get("/clock")
def get_clock():
    return respond(clock_answer())


@admin.post("/clock")
def advance_clock():
    control.advance_clock(load_body(ClockRequest, required=False)["advance_s"])
    # What is now due (heartbeats lapsed, jobs timed out, sessions expired) happens before the
    # answer: a cycle started after the change (one running elsewhere is waited out).
    maintenance.run_cycle_now(settings())
    return respond(clock_answer())


@admin.delete("/clock")
def reset_clock():
    control.reset_clock()
    return respond(clock_answer())


def clock_answer():
    return {"offset_s": clock.offset_us / 1e6, "now": iso_utc(clock.now_us())}


# -- faults, applied to every request but the control plane's own


def before_opik_request():
    """One hook (each costs a request ~1 us): collect the journal's notes, and inject a fault."""
    environ = request.environ
    if outside_opik_api(environ):
        return None
    # Notes come from loading a body (schemas.py): a request without one has none to collect.
    if has_body(environ) and settings().journal_size:
        notes.collect()
    if control.current.rules:
        return inject_fault()
    return None


def inject_fault():
    operation = operation_name()
    rule = faults.choose(request.method, request.path, operation, workspace_name())
    if rule is None:
        return None
    g.fault = rule["id"]
    spec = rule["rule"]
    if spec.get("delay_ms"):
        database.hand_back_connection()  # a delayed request must not hold one of the pool's connections
        time.sleep(spec["delay_ms"] / 1000)
    if spec.get("drop"):
        record(status=None, response_body=None, fault=rule["id"])
        raise DropConnection()
    if spec.get("hold_ms") is not None:
        database.hand_back_connection()
        time.sleep(spec["hold_ms"] / 1000)
        if operation in EMPTY_POLL_ANSWERS:
            return Response(EMPTY_POLL_ANSWERS[operation], mimetype="application/json")
    if spec.get("answer_delay_ms"):
        g.answer_delay = spec["answer_delay_ms"] / 1000  # answer_late(), once the view has answered
    if spec.get("status"):
        body = spec.get("body")
        if body is None:
            body = {"code": spec["status"], "message": f"Injected by fault rule {rule['id']}"}
        return respond(body, spec["status"])
    return None  # a delay or a hold: then the real answer


def answer_late(response):
    """A fault's answer_delay_ms: the request was served (a job claimed, a command taken), and its
    answer waits, as a slow network would make it. The journal's entry is written after it."""
    delay = g.get("answer_delay")
    if delay:
        database.hand_back_connection()
        time.sleep(delay)
    return response


class DropConnection(BaseException):
    """A fault that closes the connection without an answer. A BaseException, so that Flask's
    error handlers (which would answer 500) let it through to drop_middleware."""


def drop_middleware(wsgi_app):
    """Turns DropConnection into a connection closed without an answer: under gunicorn, a reset
    that its worker closes quietly; under a test client, a ConnectionResetError the caller sees
    as the client library would.

    A closure, not a class with __call__: calling an instance re-enters the interpreter in C,
    and each held poll keeps that C stack (this and lifecycle.timed_requests as classes: 1.7 KB more
    a held poll, measured at 4,000)."""

    def dropping_connections(environ, start_response):
        try:
            return wsgi_app(environ, start_response)
        except DropConnection:
            raise ConnectionResetError(errno.ECONNRESET, "connection dropped by a fault rule") from None

    return dropping_connections


# -- the journal


def record_request(response):
    if outside_opik_api(request.environ):
        return response
    if response.direct_passthrough or response.is_streamed:
        body = None  # a file (the pairing page): not read into memory
    elif len(response.response) == 1 and isinstance(response.response[0], bytes):
        body = response.response[0] or None  # what get_data would join, without the copy
    else:
        body = response.get_data() or None
    record(response.status_code, body, g.get("fault"))
    return response


# The console marks its own calls: the journal records what clients do, and a page left open
# polling the API would bury it (docs/reference/console.md).
CONSOLE_HEADER = "HTTP_X_OPIK_RUNNERS_CONSOLE"


def record(status, response_body, fault):
    """Journal this request (journal.record). Only captured here, from the WSGI environ rather
    than through `request`'s properties: the journal runs on every request, and the flusher
    makes the row (measured: 65 -> 35 us a request)."""
    size = settings().journal_size
    if not size or CONSOLE_HEADER in request.environ:
        return
    found = notes._collecting.get()
    if found is not None:
        notes.stop()
    environ = request.environ
    journal.record(journal.entry(
        clock.real_now_us(),
        environ["REQUEST_METHOD"],
        environ.get("PATH_INFO", ""),
        environ.get("QUERY_STRING", ""),
        environ,
        request_text(environ),
        status,
        response_body,
        (time.perf_counter() - environ.get(metrics.STARTED, time.perf_counter())) * 1000,  # lifecycle.timed_requests
        operation_name(),
        workspace_name(),
        found,
        fault,
    ), size)


def request_text(environ):
    if not has_body(environ):
        return None  # (reading an empty stream costs a GET ~20 us)
    try:
        raw = request.get_data()
    except RequestEntityTooLarge:
        return f"<a body of {request.content_length} bytes, over the limit: not read>"
    if not raw:
        return None
    if environ.get("HTTP_CONTENT_ENCODING", "").strip().lower() == "gzip":
        try:
            raw = inflate(raw)
        except Exception:
            return f"<{len(raw)} bytes of gzip that would not inflate>"
    return raw[: journal.BODY_LIMIT * 4].decode("utf-8", errors="replace")


def outside_opik_api(environ):
    """The control plane's own requests (a path it does not serve, too), the console's pages and
    Prometheus's scrapes are not the Opik API: never journaled or faulted."""
    path = environ.get("PATH_INFO", "")
    return path == "/_admin" or path.startswith("/_admin/") or path == "/metrics" or console.is_console_path(path)


def operation_name():
    """The API operation a request matched: the view's name in api.py (list_jobs, next_job, ...)."""
    return request.endpoint.rsplit(".", 1)[-1] if request.endpoint else None


def workspace_name():
    """The caller's workspace, or the one the request names if it was refused before identify_caller."""
    caller = g.get("caller")
    return caller.workspace if caller is not None else requested_workspace()
