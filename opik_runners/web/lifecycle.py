"""What runs around every request, in the order app.create_app registers it: the body read
before a database connection is taken, the caller identified (and their API key checked), the
request timed and counted for the metrics, and a zero sleep at its end."""
import hmac
import time

from flask import g, request

from .. import metrics
from ..domain.ownership import Caller
from ..errors import failure
from .console import ENDPOINTS as CONSOLE_ENDPOINTS
from .messages import has_body, requested_workspace, settings

# Health checks and the pairing page answer without credentials.
PUBLIC_ENDPOINTS = {"ping", "version", "pairing_page", "static"} | CONSOLE_ENDPOINTS


def read_body_first():
    """Read a request's body before its database connection is taken: a body that trickles in
    (a slow or hostile client) must not hold one of the pool's connections while it does. (20
    clients sending a byte a second held a worker's 20 connections, and every other request of
    that worker waited for one: tests/acceptance/test_slow_clients.py.)"""
    if has_body(request.environ):
        request.get_data()  # kept for the views (413 past MAX_CONTENT_LENGTH, as before)


def identify_caller():
    """Workspace from `Comet-Workspace` (or `workspace_name`); user from the API key, if keys are set."""
    workspace = requested_workspace()
    if "\x00" in workspace:
        raise failure(400, "The workspace name must not contain NUL characters")
    keys = settings().api_keys
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


def yield_to_other_requests(exc):
    # Under gevent a keep-alive connection whose next request has already arrived is
    # read without yielding, so one busy client could hold a worker while others wait
    # hundreds of ms (measured: p99 180 ms -> 14 ms on a bare Flask app). A zero sleep
    # (gevent's, once patched) lets every ready request take its turn.
    time.sleep(0)
