"""What every request is read for before its route runs: the workspace it names, whether it
sends a body (read from the WSGI environ, not through werkzeug's lookups), the long polls'
routes (matched before the router) and the session no request has."""
import uuid

import flask
import pytest
from flask import Flask
from flask.sessions import NullSession

from opik_runners.web.messages import has_body, requested_workspace


@pytest.mark.parametrize("environ, expected", [
    ({}, False),
    ({"CONTENT_LENGTH": ""}, False),
    ({"CONTENT_LENGTH": "0"}, False),  # the CLI's polls: POST with Content-Length: 0
    ({"CONTENT_LENGTH": "2"}, True),
    ({"HTTP_TRANSFER_ENCODING": "chunked"}, True),
    ({"CONTENT_LENGTH": "0", "HTTP_TRANSFER_ENCODING": "gzip, chunked"}, True),
])
def test_has_body(environ, expected):
    assert has_body(environ) is expected


@pytest.mark.parametrize("headers, query, expected", [
    ({}, "", "default"),
    ({"Comet-Workspace": "team"}, "", "team"),
    ({}, "workspace_name=team", "team"),
    ({"Comet-Workspace": "header"}, "workspace_name=query", "header"),  # the header wins
    ({"Comet-Workspace": ""}, "workspace_name=query", "query"),  # an empty header names nothing
    ({}, "workspace_name=", "default"),
    ({}, "page=1&workspace_name=a%20b", "a b"),  # decoded as werkzeug decodes it
    ({}, "xworkspace_name=team", "default"),  # another parameter that merely contains the name
    ({}, "workspace%5Fname=team", "team"),  # the name percent-encoded, as werkzeug decodes it
    ({}, "page=%31", "default"),
])
def test_requested_workspace(headers, query, expected):
    with Flask(__name__).test_request_context("/", headers=headers, query_string=query):
        assert requested_workspace() == expected


# -- the long polls, matched before the router (web/lean_app.py): the same rule and arguments as the
# router gives, for exactly the requests the router would send to a poll's view

RUNNER = "0193a0b0-0000-7000-8000-00000000000a"


@pytest.mark.parametrize("method, path", [
    ("POST", f"/v1/private/local-runners/{RUNNER}/jobs/next"),
    ("POST", f"/api/v1/private/local-runners/{RUNNER}/jobs/next"),
    ("POST", f"/v1/private/local-runners/{RUNNER}/bridge/commands/next"),
    ("POST", f"/api/v1/private/local-runners/{RUNNER}/bridge/commands/next"),
    ("POST", f"/api/v1/private/local-runners/{RUNNER.upper()}/jobs/next"),  # the converter takes either case
    ("POST", f"//api/v1/private/local-runners/{RUNNER}/jobs/next"),  # leading slashes: both strip them
    ("POST", f"/api/v1/private/local-runners/{RUNNER}/jobs/next/"),  # the router's 404
    ("POST", f"/api//v1/private/local-runners/{RUNNER}/jobs/next"),  # the router's redirect (merged slashes)
    ("POST", f"/api/v1/private/local-runners/{RUNNER[:-1]}/jobs/next"),  # not a UUID
    ("POST", f"/api/v1/private/local-runners/{RUNNER}/jobs/next/x"),
    ("POST", f"/api/api/v1/private/local-runners/{RUNNER}/jobs/next"),
    ("POST", f"/api/v1/private/local-runners/{RUNNER}/bridge/commands"),  # another route
    ("POST", f"/api/v1/private/local-runners/{RUNNER}/jobs"),
    ("GET", f"/api/v1/private/local-runners/{RUNNER}/jobs/next"),  # the router's 405
    ("OPTIONS", f"/api/v1/private/local-runners/{RUNNER}/jobs/next"),  # Flask's automatic OPTIONS
])
def test_polls_are_matched_as_the_router_matches_them(app, method, path):
    # PATH_INFO set as given: a test client would read "//api/..." as a host name.
    with app.test_request_context("/", method=method, environ_overrides={"PATH_INFO": path}) as ctx:
        prematched = ctx.url_adapter is None
        got = (ctx.request.url_rule, ctx.request.view_args, ctx.request.routing_exception)
    router = app.url_map.bind("localhost")
    try:
        expected = router.match(path, method, return_rule=True)
    except Exception as exc:  # a 404, a 405, a redirect: the router's answer, never a poll's view
        assert not prematched, f"pre-matched a path the router answers {type(exc).__name__}"
        assert type(got[2]) is type(exc)
        return
    assert got == (*expected, None)
    assert prematched == (method == "POST" and expected[0].endpoint.endswith(("next_job", "next_bridge_commands")))
    if prematched:
        assert isinstance(got[1]["runner_id"], uuid.UUID)


def test_every_poll_route_is_pre_matched(app):
    """A poll route added (or moved) in api.py must be pre-matched too, or the start fails."""
    polls = {rule.endpoint for rule in app.url_map.iter_rules()
             if rule.endpoint.rpartition(".")[2] in ("next_job", "next_bridge_commands")}
    assert polls == app.poll_endpoints == {rule.endpoint for rule in app.poll_rules.values()}
    assert len(polls) == 4


def test_a_pre_matched_poll_can_still_build_urls(app):
    with app.test_request_context(f"/api/v1/private/local-runners/{RUNNER}/jobs/next", method="POST") as ctx:
        assert ctx.url_adapter is None  # pre-matched
        assert flask.url_for("api.get_runner", runner_id=uuid.UUID(RUNNER), _external=True) == (
            f"http://localhost/v1/private/local-runners/{RUNNER}")


def test_with_trusted_hosts_every_request_takes_the_router(app, monkeypatch):
    """Flask checks TRUSTED_HOSTS while making the adapter the pre-match skips."""
    monkeypatch.setitem(app.config, "TRUSTED_HOSTS", ["runners.example"])  # (apps are shared between tests)
    with app.test_request_context(f"/api/v1/private/local-runners/{RUNNER}/jobs/next", method="POST",
                                  base_url="http://elsewhere.example") as ctx:
        assert ctx.url_adapter is None and ctx.request.routing_exception is not None  # the untrusted host's 400
    with app.test_request_context(f"/api/v1/private/local-runners/{RUNNER}/jobs/next", method="POST",
                                  base_url="http://runners.example") as ctx:
        assert ctx.url_adapter is not None and ctx.request.url_rule.endpoint == "api_prefixed.next_job"


def test_requests_share_one_read_only_session(app):
    """The API keeps no cookie sessions (lean_app.NoSessions): no request makes a session object of its own."""
    sessions = []
    for path in ("/is-alive/ping", f"/api/v1/private/local-runners/{RUNNER}/jobs/next"):
        with app.test_request_context(path, method="POST"):
            sessions.append(flask.session._get_current_object())
    assert sessions[0] is sessions[1] and isinstance(sessions[0], NullSession)
    with pytest.raises(RuntimeError):
        sessions[0]["user"] = "someone"
    with pytest.raises(RuntimeError):
        sessions[0] |= {"user": "someone"}
    assert dict(sessions[0]) == {}


def test_gunicorn_calls_the_flask_app_as_a_function_and_a_wrapped_app_as_it_is(app):
    """serving.called_directly: a Flask object's __call__ costs each held poll a nested interpreter
    loop; middleware around the app (docs/explanation/architecture.md#serving) is left alone."""
    from werkzeug.middleware.proxy_fix import ProxyFix
    from werkzeug.test import create_environ, run_wsgi_app

    from opik_runners.serving import called_directly

    wsgi = called_directly(app)
    assert type(wsgi).__name__ == "function"
    body, status, _ = run_wsgi_app(wsgi, create_environ("/is-alive/ping"), buffered=True)
    assert status == "200 OK" and b"".join(body) == b'{"healthy":true}'
    wrapped = ProxyFix(app)
    assert called_directly(wrapped) is wrapped
