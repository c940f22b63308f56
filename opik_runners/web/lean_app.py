"""Flask, lighter for a held long poll: a runner keeps one or two polls open all the time, and
each held poll keeps whatever Python and C stack it waits under (BENCHMARKS.md, "Memory per
held poll"). No session object, the two poll routes matched before the router, and their views
called without a nested interpreter loop; every hook, error handler and the view itself run as
for any other request."""
import re
import uuid

from flask import Flask
from flask.globals import request_ctx
from flask.sessions import NullSession, SessionInterface
from werkzeug.routing import UUIDConverter


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


class LeanApp(Flask):
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
