"""Application factory: config, database, auth, error rendering, and the blueprint
served twice, at the root and under /api, as Opik serves it."""
import logging
import time

import click
from flask import Flask, current_app, g, request
from werkzeug.exceptions import HTTPException

import models
import runners
import wakeups
from api import api, respond
from config import MAX_REQUEST_BYTES, load_config
from errors import ApiError, failure

log = logging.getLogger("opik_runners")

# Health checks and the pairing page answer without credentials.
PUBLIC_ENDPOINTS = {"ping", "version", "pairing_page", "static"}


def create_app(**overrides):
    configure_logging()
    app = Flask(__name__, static_folder="static")
    app.config.update(load_config(**overrides))
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    app.json.sort_keys = False

    models.open_database(app.config["DATABASE_URL"], app.config["OPIK_DB_POOL_SIZE"])
    models.create_tables()
    wakeups.start_watcher()

    app.register_blueprint(api)
    app.register_blueprint(api, url_prefix="/api", name="api_prefixed")
    # The CLI links to this page on the domain root, whatever prefix the API has.
    app.add_url_rule("/opik/pair/v1", "pairing_page", lambda: app.send_static_file("pair.html"))

    app.before_request(identify_caller)
    app.before_request(open_connection)
    app.teardown_request(close_connection)
    app.teardown_request(yield_to_other_requests)
    app.register_error_handler(ApiError, render_api_error)
    app.register_error_handler(HTTPException, render_http_error)
    app.register_error_handler(Exception, render_unexpected_error)

    @app.cli.command("init-db")
    def init_db():
        """Create the schema (also done at every start)."""
        models.create_tables()
        click.echo(f"schema ready at {app.config['DATABASE_URL']}")

    @app.cli.command("reap")
    def reap():
        """Run one reaper cycle now."""
        with models.database.connection_context():
            runners.reap()

    return app


def configure_logging():
    """One log line per state change, through gunicorn's handlers when served by it."""
    if log.handlers:
        return
    server_log = logging.getLogger("gunicorn.error")
    if server_log.handlers:
        for handler in server_log.handlers:
            log.addHandler(handler)
        log.setLevel(server_log.level)
    else:
        log.setLevel(logging.INFO)


def identify_caller():
    """Workspace from `Comet-Workspace` (or `workspace_name`); user from the API key, if keys are set."""
    workspace = request.headers.get("Comet-Workspace") or request.args.get("workspace_name") or "default"
    if "\x00" in workspace:
        raise failure(400, "The workspace name must not contain NUL characters")
    keys = current_app.config["OPIK_API_KEYS"]
    user = "admin"
    if keys and request.endpoint and request.endpoint.rsplit(".", 1)[-1] not in PUBLIC_ENDPOINTS:
        key = request.headers.get("Authorization")
        if not key:
            raise failure(401, "API key should be provided")
        if key not in keys:
            raise failure(401, "User not allowed")
        user = keys[key]
    g.caller = runners.Caller(workspace, user)


def open_connection():
    models.database.connect(reuse_if_open=True)
    runners.reap_if_due()


def close_connection(exc):
    if not models.database.is_closed():
        models.database.close()


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


def render_http_error(exc):
    # Keep werkzeug's headers (a 405's Allow) but not its HTML content type.
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    return respond({"code": exc.code, "message": f"HTTP {exc.code} {exc.name}"}, exc.code, headers)


def render_unexpected_error(exc):
    log.exception("unexpected error on %s %s", request.method, request.path)
    return respond({"code": 500, "message": "There was an error processing your request"}, 500)
