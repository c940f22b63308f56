"""Application factory: settings, database, caller identification, error rendering, the
background reaper, and the blueprint served twice, at the root and under /api, as Opik
serves it."""
import hmac
import logging
import re
import time
import uuid

from flask import Flask, Response, current_app, g, request
from flask.globals import request_ctx
from flask.sessions import NullSession, SessionInterface
from werkzeug.exceptions import HTTPException
from werkzeug.routing import UUIDConverter


from .web import admin, console, guard
from .store import db
from .domain import maintenance, stats
from . import metrics
from .web.api import api, has_body, requested_workspace, respond
from .errors import ApiError, failure
from .domain.limits import MAX_REQUEST_BYTES
from .domain.ownership import Caller
from .settings import load_settings

log = logging.getLogger(__name__)

# Health checks and the pairing page answer without credentials.
PUBLIC_ENDPOINTS = {"ping", "version", "pairing_page", "static"} | console.ENDPOINTS


def create_app(**overrides):
    """The WSGI app. Settings come from the environment; `overrides` (keyed by variable
    name, as OPIK_RUNNER_HEARTBEAT_TTL="1") win over it."""
    settings = load_settings(**overrides)
    configure_logging(settings)
    app = App(__name__)
    app.extensions["opik_runners"] = settings
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    app.json.sort_keys = False

    guard.init_app(app, settings, has_body)  # first: a request a web page must not make runs nothing
    app.before_request(read_body_first)  # before db.init_app's open_connection
    db.init_app(app, settings)
    maintenance.start(settings)

    app.register_blueprint(api)
    app.register_blueprint(api, url_prefix="/api", name="api_prefixed")
    # The CLI links to this page on the domain root, whatever prefix the API has.
    app.add_url_rule("/opik/pair/v1", "pairing_page", lambda: app.send_static_file("pair.html"))
    console.init_app(app)

    admin.init_app(app, settings)  # before identify_caller: a fault answers even a request that would be refused
    app.add_url_rule("/metrics", "metrics", serve_metrics)
    app.before_request(identify_caller)
    app.after_request(count_request)
    app.wsgi_app = timed_requests(app.wsgi_app)
    app.teardown_request(yield_to_other_requests)
    app.register_error_handler(ApiError, render_api_error)
    for failure_class in db.FAILURES:
        app.register_error_handler(failure_class, render_database_error)
    app.register_error_handler(HTTPException, render_http_error)
    app.register_error_handler(Exception, render_unexpected_error)
    app.match_polls_first()
    return app


class ReadOnlySession(NullSession):
    """Flask's NullSession, closed to `|=` as well: one instance is shared by every request."""

    __ior__ = NullSession.__setitem__  # raises, as NullSession's other writes do


class NoSessions(SessionInterface):
    """The API keeps no cookie sessions: every request shares one empty, read-only session.
    (Flask's default makes a NullSession per request, and a held poll kept its 0.5 KB.)"""

    shared = ReadOnlySession()

    def open_session(self, app, request):
        return self.shared

    def save_session(self, app, session, response):  # not called: Flask saves no null session
        pass


# The two long polls a fleet keeps open, matched before werkzeug's router: the router recurses
# once per path segment, and the ten segments of the CLI's poll path cost each held poll a 4 KB
# page of Python stack (BENCHMARKS.md, "Memory per held poll"). POST only: any other method,
# and any other spelling of the path (a trailing slash, doubled slashes), takes the router.
POLL_PATH = re.compile(rf"(/api)?/v1/private/local-runners/({UUIDConverter.regex})/(jobs/next|bridge/commands/next)")
POLL_VIEWS = {"jobs/next": "next_job", "bridge/commands/next": "next_bridge_commands"}


class App(Flask):
    """Flask, lighter for a held long poll: no session object, the two poll routes matched
    before the router, and their views called without a nested interpreter loop. Every hook,
    error handler and the view itself run as for any other request."""

    session_interface = NoSessions()
    poll_rules = {}  # (prefix, tail) -> the rule the router gives the path; match_polls_first fills it
    poll_endpoints = frozenset()  # those rules' endpoints

    def match_polls_first(self):
        """Look up the rules the router would match for the poll paths (api.py's routes, at the
        root and under /api), once every route is registered."""
        self.poll_rules = {}
        tails = {view: tail for tail, view in POLL_VIEWS.items()}
        for rule in self.url_map.iter_rules():
            tail = tails.get(rule.endpoint.rpartition(".")[2])
            if tail is None:
                continue
            prefix = "/api" if rule.rule.startswith("/api/") else None
            if rule.rule != f"{prefix or ''}/v1/private/local-runners/<uuid:runner_id>/{tail}":
                raise RuntimeError(f"POLL_PATH does not match the route {rule.rule!r} any more")
            self.poll_rules[(prefix, tail)] = rule
        self.poll_endpoints = frozenset(rule.endpoint for rule in self.poll_rules.values())

    def create_url_adapter(self, request):
        # (Flask checks TRUSTED_HOSTS in its adapter: with it set, every request takes the router.)
        if request is not None and request.method == "POST" and not self.config["TRUSTED_HOSTS"]:
            found = POLL_PATH.fullmatch(request.path)
            rule = found and self.poll_rules.get((found[1], found[3]))
            if rule is not None:
                request.url_rule = rule
                request.view_args = {"runner_id": uuid.UUID(found[2])}  # as the uuid converter gives it
                return None  # matched: without an adapter Flask does not route the request again
        return super().create_url_adapter(request)

    def url_for(self, *args, **kwargs):
        """A pre-matched poll has no adapter until it builds a URL (none does today)."""
        if request_ctx and request_ctx.url_adapter is None and request_ctx.request.endpoint in self.poll_endpoints:
            request_ctx.url_adapter = super().create_url_adapter(request_ctx.request)
        return super().url_for(*args, **kwargs)

    def dispatch_request(self):
        # Flask calls a view with **view_args, which CPython 3.11 runs in a nested interpreter
        # loop; a held poll keeps that C stack (0.8 KB a poll, measured at 4,000 held).
        req = request_ctx.request
        if req.method == "POST" and req.url_rule is not None and req.url_rule.endpoint in self.poll_endpoints:
            return self.view_functions[req.url_rule.endpoint](req.view_args["runner_id"])
        return super().dispatch_request()


def configure_logging(settings):
    """One log line per state change under the `opik_runners` logger, through gunicorn's
    handlers when served by it."""
    service_log = logging.getLogger("opik_runners")
    if service_log.handlers:
        return
    server_log = logging.getLogger("gunicorn.error")
    if server_log.handlers:
        for handler in server_log.handlers:
            service_log.addHandler(handler)
        service_log.setLevel(server_log.level)
    else:
        service_log.setLevel(settings.log_level.upper())


def identify_caller():
    """Workspace from `Comet-Workspace` (or `workspace_name`); user from the API key, if keys are set."""
    workspace = requested_workspace()
    if "\x00" in workspace:
        raise failure(400, "The workspace name must not contain NUL characters")
    keys = current_app.extensions["opik_runners"].api_keys
    user = "admin"
    # A CORS preflight carries no credentials (guard.py has checked its origin).
    if keys and request.endpoint and request.endpoint.rsplit(".", 1)[-1] not in PUBLIC_ENDPOINTS \
            and request.method != "OPTIONS":
        key = request.environ.get("HTTP_AUTHORIZATION")
        if not key:
            raise failure(401, "API key should be provided")
        user = user_of(keys, key)
        if user is None:
            raise failure(401, "User not allowed")
    g.caller = Caller(workspace, user)


def user_of(keys, key):
    """The user whose API key `key` is, or None: compared in constant time with every key (a
    dict lookup's string comparison stops at the first byte that differs, which timing shows)."""
    found = None
    presented = key.encode()
    for known, user in keys.items():
        if hmac.compare_digest(presented, known.encode()):
            found = user
    return found


def read_body_first():
    """Read a request's body before its database connection is taken: a body that trickles in
    (a slow or hostile client) must not hold one of the pool's connections while it does. (20
    clients sending a byte a second held a worker's 20 connections, and every other request of
    that worker waited for one: tests/acceptance/test_slow_clients.py.)"""
    if has_body(request.environ):
        request.get_data()  # kept for the views (413 past MAX_CONTENT_LENGTH, as before)


def timed_requests(wsgi_app):
    """Notes when each request arrived, for its latency (metrics) and the journal's duration.
    A closure, as admin.drop_middleware says why."""

    def timed(environ, start_response):
        environ[metrics.STARTED] = time.perf_counter()
        return wsgi_app(environ, start_response)

    return timed


def count_request(response):
    endpoint = request.endpoint
    operation = endpoint.rsplit(".", 1)[-1] if endpoint else None
    metrics.observe_request(operation, response.status_code, time.perf_counter() - request.environ[metrics.STARTED])
    return response


def serve_metrics():
    """Prometheus's scrape: open without API keys; with keys, any user's key (identify_caller)."""
    return Response(metrics.exposition(lambda: stats.database_state(current_app.extensions["opik_runners"])),
                    mimetype=metrics.CONTENT_TYPE)


def yield_to_other_requests(exc):
    # Under gevent a keep-alive connection whose next request has already arrived is
    # read without yielding, so one busy client could hold a worker while others wait
    # hundreds of ms (measured: p99 180 ms -> 14 ms on a bare Flask app). A zero sleep
    # (gevent's, once patched) lets every ready request take its turn.
    time.sleep(0)


def render_api_error(exc):
    if exc.shape == "empty":
        return respond(None, exc.status, exc.headers)
    return respond(exc.body, exc.status, exc.headers)


def render_database_error(exc):
    """The database failed (gone, full, refusing): 503, or 507 for a full disk, with what it
    said; nothing was acknowledged, and the client may retry."""
    message = str(exc).strip() or type(exc).__name__
    metrics.DATABASE_ERRORS.labels(type(exc).__name__).inc()
    log.warning("database error on %s %s: %s", request.method, request.path, message)
    if db.disk_full(exc):
        return respond({"code": 507, "message": f"The database's disk is full; nothing was written: {message}"}, 507)
    return respond({"code": 503, "message": f"The database is unavailable; try again: {message}"}, 503,
                   {"Retry-After": "1"})


def render_http_error(exc):
    # Keep werkzeug's headers (a 405's Allow) but not its HTML content type.
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    return respond({"code": exc.code, "message": f"HTTP {exc.code} {exc.name}"}, exc.code, headers)


def render_unexpected_error(exc):
    log.exception("unexpected error on %s %s", request.method, request.path)
    return respond({"code": 500, "message": "There was an error processing your request"}, 500)
