"""The application factory: `create_app` reads as the service's table of contents, each line
one part wiring itself in. The order is the order requests meet them: Flask runs before-request
hooks in the order they are registered (and after-request hooks in the reverse order)."""
import logging

from .domain import maintenance
from .domain.limits import MAX_REQUEST_BYTES
from .settings import load_settings
from .store import db
from .web import admin, console, failures, guard, lifecycle, scrape
from .web.api import api
from .web.lean_app import LeanApp


def create_app(**overrides):
    """The WSGI app. Settings come from the environment; `overrides` (keyed by variable
    name, as OPIK_RUNNER_HEARTBEAT_TTL="1") win over it."""
    settings = load_settings(**overrides)
    configure_logging(settings)
    app = LeanApp(__name__)
    app.extensions["opik_runners"] = settings
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    app.json.sort_keys = False

    guard.init_app(app, settings)  # first: a request a web page must not make runs nothing
    app.before_request(lifecycle.read_body_first)  # before db.init_app's open_connection
    db.init_app(app, settings)
    maintenance.start(settings)

    app.register_blueprint(api)
    app.register_blueprint(api, url_prefix="/api", name="api_prefixed")
    # The CLI links to this page on the domain root, whatever prefix the API has.
    app.add_url_rule("/opik/pair/v1", "pairing_page", lambda: app.send_static_file("pair.html"))
    console.init_app(app)

    admin.init_app(app, settings)  # before identify_caller: a fault answers even a request that would be refused
    app.add_url_rule("/metrics", "metrics", scrape.serve_metrics)
    app.before_request(lifecycle.identify_caller)
    app.after_request(lifecycle.count_request)
    app.wsgi_app = lifecycle.timed_requests(app.wsgi_app)
    app.teardown_request(lifecycle.yield_to_other_requests)
    failures.init_app(app)
    app.match_polls_first()
    return app


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
