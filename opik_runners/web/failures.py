"""How a failure is answered, in one of the two shapes Opik answers with
(docs/opik-behaviour.md#error-shapes): an ApiError as it asks, a database that fails as 503 (507
for a full disk), werkzeug's own errors (404, 405, 413) as JSON, and anything unexpected as 500."""
import logging

from flask import request
from werkzeug.exceptions import HTTPException

from .. import metrics
from ..errors import ApiError
from ..store import db
from .messages import respond

log = logging.getLogger(__name__)


def init_app(app):
    app.register_error_handler(ApiError, render_api_error)
    for failure_class in db.FAILURES:
        app.register_error_handler(failure_class, render_database_error)
    app.register_error_handler(HTTPException, render_http_error)
    app.register_error_handler(Exception, render_unexpected_error)


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
