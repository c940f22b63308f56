"""A server that departs from Opik where nothing documents it: this server, wrapped in a WSGI
middleware that changes a status code, drops a field and reorders a page. The conformance
kit must report each, scenario by scenario (test_conformance_server.py). Served with the
shipped configuration: `gunicorn -c python:opik_runners.gunicorn_conf 'divergent_app:create()'` from tests/acceptance."""
import json
import re

from opik_runners.app import create_app

RUNNER = re.compile(r"(/api)?/v1/private/local-runners/[0-9a-f-]{36}")
LISTING = re.compile(r"(/api)?/v1/private/local-runners/[0-9a-f-]{36}/jobs")


def create():
    return diverging(create_app())


def diverging(app):
    """DELETE of a runner answers 200 (not 204); a runner read lacks `connected_at`; a jobs
    listing comes oldest first."""

    def serve(environ, start_response):
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        captured = {}

        def capture(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        body = b"".join(app(environ, capture))
        status, headers = captured["status"], captured["headers"]
        if method == "DELETE" and RUNNER.fullmatch(path) and status.startswith("204"):
            status = "200 OK"
        elif method == "GET" and status.startswith("200") and RUNNER.fullmatch(path):
            document = json.loads(body)
            document.pop("connected_at", None)
            body = json.dumps(document).encode()
        elif method == "GET" and status.startswith("200") and LISTING.fullmatch(path):
            page = json.loads(body)
            page["content"].reverse()
            body = json.dumps(page).encode()
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"] + [("Content-Length", str(len(body)))]
        start_response(status, headers)
        return [body]

    return serve
