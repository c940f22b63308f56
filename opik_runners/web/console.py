"""The console: a web page at / (and /console/...) to see runners, run agents, follow jobs
and drive the control plane. One HTML page and its ES modules, served from the package with
no build step and nothing from a CDN; the page calls the Opik API (and /_admin/) as any
client does. Every path under /console/ that is not an asset answers the same page, which
reads the path itself, so each runner, job and panel has a URL to bookmark.

Here too: the pairing page's script and styles, and the headers of every page and asset the
browser is given (page_headers)."""
import os
import re

from urllib.parse import urlencode

from flask import Blueprint, current_app, jsonify, redirect, request, send_from_directory

from .. import __version__
from ..settings import admin_enabled

STATIC = os.path.join(os.path.dirname(os.path.dirname(__file__)), "static")
ASSETS = os.path.join(STATIC, "console")
# Paths the console serves: not the Opik API, so neither journaled nor faulted nor keyed.
PREFIX = "/console"
# The pairing page (/opik/pair/v1, app.py) loads these from beside it: files, not the Opik API either.
PAIRING_ASSETS = {"/opik/pair/pair.js", "/opik/pair/pair.css"}
ENDPOINTS = {"console_home", "console_page", "console_asset", "console_config", "opik_ui_project", "pairing_asset"}

console = Blueprint("console", __name__)


def is_console_path(path):
    return (path == "/" or path == PREFIX or path.startswith(PREFIX + "/") or path in PAIRING_ASSETS
            or OPIK_UI_PROJECT.fullmatch(path) is not None)


OPIK_UI_PROJECT = re.compile(r"/[^/]+/projects/[0-9a-fA-F-]{32,36}/.+")


@console.get("/", endpoint="console_home")
@console.get(f"{PREFIX}/", endpoint="console_page")
@console.get(f"{PREFIX}/<path:page>", endpoint="console_page")
def page(page=None):
    response = send_from_directory(ASSETS, "index.html", max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    return response


@console.get(f"{PREFIX}/assets/<path:name>", endpoint="console_asset")
def asset(name):
    response = send_from_directory(ASSETS, name, max_age=0)
    response.headers["Cache-Control"] = "no-cache"  # revalidated (ETag): an upgrade shows at once
    return response


@console.get(f"{PREFIX}/config.json", endpoint="console_config")
def config():
    """What the page cannot ask the API: whether it needs a key, whether /_admin/ is on."""
    settings = current_app.extensions["opik_runners"]
    return jsonify({
        "version": __version__,
        "api_keys": bool(settings.api_keys),
        "admin": admin_enabled(settings),
        "journal": admin_enabled(settings) and settings.journal_size > 0,
    })


@console.get("/<workspace>/projects/<uuid:project_id>/<path:page>", endpoint="opik_ui_project")
def opik_ui_project(workspace, project_id, page):
    """Opik's UI address for a project's pages, which the CLI prints once it has paired
    ("Continue developing in Opik: .../default/projects/{id}/agent-playground"): here, the
    project's page in the console."""
    query = "" if workspace == "default" else "?" + urlencode({"workspace": workspace})
    return redirect(f"{PREFIX}/projects/{project_id}{query}")


@console.get("/opik/pair/<any('pair.js', 'pair.css'):name>", endpoint="pairing_asset")
def pairing_asset(name):
    response = send_from_directory(STATIC, name, max_age=0)
    response.headers["Cache-Control"] = "no-cache"  # revalidated, as the console's assets are
    return response


# The pages' own headers. What the console and the pairing page may load and run: their own
# files and calls to this server, nothing inline (their scripts and styles are files; a script
# that sets element.style is not refused), nothing from elsewhere. And no other site may frame
# them: a framed pairing page could be made to activate a runner by a person clicking on a
# page of someone else's.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",  # the console's icon is `data:,` (no request for /favicon.ico)
    "connect-src 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "object-src 'none'",
])
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",  # for browsers older than frame-ancestors
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# The console's endpoints, the pairing page (app.py) and Flask's /static/, which serves the same
# files (pair.html among them) and so must not be framed either.
PAGE_ENDPOINTS = ENDPOINTS | {"pairing_page", "static"}


def page_headers(response):
    """Every answer of a page endpoint (its errors too) carries PAGE_HEADERS; the Opik API's
    JSON answers do not need them."""
    endpoint = request.endpoint
    if endpoint is not None and endpoint.rsplit(".", 1)[-1] in PAGE_ENDPOINTS:
        for name, value in PAGE_HEADERS.items():
            response.headers[name] = value
    return response


def init_app(app):
    app.register_blueprint(console)
    app.after_request(page_headers)
