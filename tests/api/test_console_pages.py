"""The console's pages and assets as the server serves them (the pages themselves are driven
in Chromium by tests/acceptance/test_console.py)."""
import pathlib
import posixpath
import re

import pytest

from opik_runners.web import console
from tests.support.in_app import API

PAGES = ["/", "/console", "/console/", "/console/runners/0190d2b4-0000-7000-8000-000000000001",
         "/console/jobs/anything", "/console/admin/journal"]


@pytest.mark.parametrize("path", PAGES)
def test_every_console_url_answers_the_page(client, path):
    response = client.get(path, follow_redirects=True)  # (/console -> /console/)
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert b'<script type="module" src="/console/assets/app.js">' in response.data
    assert response.headers["Cache-Control"] == "no-cache"


ASSET_DIR = pathlib.Path(console.ASSETS)
MODULES = sorted(path.relative_to(ASSET_DIR).as_posix() for path in ASSET_DIR.rglob("*.js"))


@pytest.mark.parametrize("name, mimetype", [("app.js", "text/javascript"), ("api.js", "text/javascript"),
                                            ("forms.js", "text/javascript"), ("bridge.js", "text/javascript"),
                                            ("views/runner.js", "text/javascript"), ("console.css", "text/css")])
def test_assets_come_from_the_package(client, name, mimetype):
    response = client.get(f"/console/assets/{name}")
    assert response.status_code == 200 and response.mimetype == mimetype
    assert b"http://" not in response.data and b"https://cdn" not in response.data  # nothing from elsewhere


@pytest.mark.parametrize("name", MODULES)
def test_every_module_and_what_it_imports_is_served(client, name):
    """The console's modules import each other by relative paths under /console/assets/ (no
    build step): each is served, and so is each module it names."""
    response = client.get(f"/console/assets/{name}")
    assert response.status_code == 200 and response.mimetype == "text/javascript"
    imports = re.findall(r'^import .* from "(\.{1,2}/[^"]+)";$', response.get_data(as_text=True), re.M)
    for target in imports:
        resolved = posixpath.normpath(posixpath.join("/console/assets", posixpath.dirname(name), target))
        assert resolved.startswith("/console/assets/"), (name, target)
        assert client.get(resolved).status_code == 200, (name, target)
    assert len((ASSET_DIR / name).read_text().splitlines()) <= 400, "a module past ~400 lines: split it"


def test_an_asset_outside_the_folder_is_not_served(client):
    assert client.get("/console/assets/../console.py").status_code == 404
    assert client.get("/console/assets/%2e%2e/app.py").status_code == 404


def test_config_says_what_the_page_cannot_ask_the_api(client, make_app):
    assert client.get("/console/config.json").json == {
        "version": client.get("/is-alive/ver").json["version"], "api_keys": False, "admin": True, "journal": True}
    keyed = make_app(OPIK_API_KEYS="alice:key-a").test_client()
    config = keyed.get("/console/config.json")
    assert config.status_code == 200  # the page and its config load without a key...
    assert (config.json["api_keys"], config.json["admin"]) == (True, False)
    assert keyed.get("/").status_code == 200 and keyed.get("/console/assets/app.js").status_code == 200
    assert keyed.get(f"{API}/projects").status_code == 401  # ...the API it calls does not


def test_the_console_is_not_the_opik_api_journal_and_faults_leave_it_alone(client, in_app):
    rule = client.post("/_admin/faults", json={"status": 503}).json  # every request of the Opik API
    assert client.get("/console/runners/x").status_code == 200
    assert client.get("/console/assets/app.js").status_code == 200
    assert client.get(f"{API}/projects").status_code == 503
    client.delete(f"/_admin/faults/{rule['id']}")
    client.delete("/_admin/requests")
    in_app.ensure_project("mine")
    # The console marks its own API calls; the journal leaves them out.
    assert client.get(f"{API}/projects", headers={"X-Opik-Runners-Console": "1"}).status_code == 200
    entries = client.get("/_admin/requests").json["requests"]
    assert [e["operation"] for e in entries] == ["retrieve_project", "create_project", "retrieve_project"]
    assert not any(e["path"].startswith("/console") or e["path"] == "/" for e in entries)


@pytest.mark.parametrize("workspace, query", [("default", ""), ("team a", "?workspace=team+a")])
def test_opiks_ui_address_for_a_project_leads_to_the_console(client, workspace, query):
    # What the CLI prints once paired: "Continue developing in Opik: {url}/default/projects/{id}/agent-playground".
    project = "01a22ce0-3553-758f-ac42-7f8857899d06"
    response = client.get(f"/{workspace}/projects/{project}/agent-playground")
    assert response.status_code == 302 and response.headers["Location"] == f"/console/projects/{project}{query}"
    client.get(f"/{workspace}/projects/{project}/agent-runner")
    assert client.get("/_admin/requests").json["requests"] == []  # not the Opik API: not journaled


# -- the pages' own headers: what a browser lets the console and the pairing page load and run,
# and that no other site may frame them (a framed pairing page could be made to pair a runner)

PAGE_KINDS = {
    "console page": "/console/runners/0190d2b4-0000-7000-8000-000000000001",
    "console home": "/",
    "console asset": "/console/assets/app.js",
    "console view module": "/console/assets/views/job.js",
    "console styles": "/console/assets/console.css",
    "pairing page": "/opik/pair/v1",
    "pairing script": "/opik/pair/pair.js",
    "pairing styles": "/opik/pair/pair.css",
    "pairing page, Flask's /static/ copy": "/static/pair.html",
}
STRICT = {
    "default-src": ["'self'"], "script-src": ["'self'"], "style-src": ["'self'"], "img-src": ["'self'", "data:"],
    "connect-src": ["'self'"], "frame-ancestors": ["'none'"], "base-uri": ["'none'"], "form-action": ["'self'"],
    "object-src": ["'none'"],
}


def policy(response):
    header = response.headers.get("Content-Security-Policy")
    assert header, "no Content-Security-Policy"
    directives = [part.split() for part in header.split(";") if part.strip()]
    return {directive[0]: directive[1:] for directive in directives}


@pytest.mark.parametrize("path", PAGE_KINDS.values(), ids=PAGE_KINDS.keys())
def test_content_security_policy_runs_nothing_inline_and_nothing_from_elsewhere(client, path):
    response = client.get(path)
    assert response.status_code == 200
    directives = policy(response)
    assert directives == STRICT
    assert "'unsafe-inline'" not in response.headers["Content-Security-Policy"]
    assert "'unsafe-eval'" not in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize("path", PAGE_KINDS.values(), ids=PAGE_KINDS.keys())
def test_no_other_site_may_frame_it(client, path):
    response = client.get(path)
    assert policy(response)["frame-ancestors"] == ["'none'"]
    assert response.headers["X-Frame-Options"] == "DENY"  # browsers older than frame-ancestors


@pytest.mark.parametrize("path", PAGE_KINDS.values(), ids=PAGE_KINDS.keys())
def test_content_types_are_not_sniffed(client, path):
    assert client.get(path).headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", PAGE_KINDS.values(), ids=PAGE_KINDS.keys())
def test_no_referrer_leaves_the_pages(client, path):
    assert client.get(path).headers["Referrer-Policy"] == "no-referrer"


def test_the_headers_come_with_a_refusal_too(client, make_app):
    assert client.get("/console/assets/missing.js").headers["X-Frame-Options"] == "DENY"
    keyed = make_app(OPIK_API_KEYS="alice:key-a").test_client()
    for path in ("/opik/pair/v1", "/opik/pair/pair.js", "/console/assets/app.js"):
        response = keyed.get(path)
        assert response.status_code == 200, path  # public, as the page is
        assert response.headers["X-Frame-Options"] == "DENY", path


def test_the_pages_have_nothing_inline(client):
    """What the policy would refuse, found before a browser does: no inline script or style,
    no event-handler attribute; the scripts and styles are files the pages name."""
    for path, script, styles in [("/", "/console/assets/app.js", "/console/assets/console.css"),
                                 ("/opik/pair/v1", "/opik/pair/pair.js", "/opik/pair/pair.css")]:
        html = client.get(path).get_data(as_text=True)
        assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", html), path
        assert "<style" not in html and not re.search(r"\sstyle=", html), path
        assert not re.search(r"\son[a-z]+=", html), path
        assert f'src="{script}"' in html and f'href="{styles}"' in html, path
        assert client.get(script).mimetype == "text/javascript" and client.get(styles).mimetype == "text/css"


def test_the_pairing_assets_are_not_the_opik_api(client):
    client.delete("/_admin/requests")
    rule = client.post("/_admin/faults", json={"status": 503}).json
    assert client.get("/opik/pair/pair.js").status_code == 200
    assert client.get("/opik/pair/pair.css").status_code == 200
    client.delete(f"/_admin/faults/{rule['id']}")
    assert not any(e["path"].startswith("/opik/pair/pair.") for e in client.get("/_admin/requests").json["requests"])
    assert client.get("/opik/pair/other.js").status_code == 404
