"""The pairing page at /opik/pair/v1, driven in a real headless Chromium."""
import base64
import json
import os
import uuid

import pytest
import requests

from tests.support.browser import another_origin, assert_accessible, needs_chromium, screenshot
from tests.support.databases import fresh_database_url
from tests.support.servers import Server

pytestmark = needs_chromium


@pytest.fixture
def server(tmp_path):
    srv = Server(fresh_database_url(tmp_path)).start()
    yield srv
    srv.stop()


def cli_link(server, runner_name="page-runner", runner_type="connect", workspace="default"):
    """Create a session exactly as the CLI does and build the link it prints
    (docs/opik-behaviour.md#cli-startup, docs/opik-behaviour.md#cli-pairing-link)."""
    api = f"{server.url}/api/v1/private"
    headers = {"Comet-Workspace": workspace}
    requests.post(f"{api}/projects", json={"name": "demo"}, headers=headers, timeout=5)
    project_id = requests.post(f"{api}/projects/retrieve", json={"name": "demo"}, headers=headers, timeout=5).json()["id"]
    key = os.urandom(32)
    session = requests.post(
        f"{api}/pairing/sessions",
        json={"project_id": project_id, "activation_key": base64.b64encode(key).decode(), "ttl_seconds": 300,
              "type": runner_type},
        headers=headers,
        timeout=5,
    ).json()
    name = runner_name.encode()
    payload = (uuid.UUID(session["session_id"]).bytes + key + uuid.UUID(project_id).bytes + bytes([len(name)])
               + name + bytes([0 if runner_type == "connect" else 1]))
    fragment = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    link = f"{server.url}/opik/pair/v1?url={server.url}%2F&project=demo&workspace={workspace}#{fragment}"
    return link, session, headers


def test_page_activates_a_cli_session(server, browser):
    link, session, headers = cli_link(server, runner_name="páge-runner ✓", workspace="team-a")
    api = f"{server.url}/api/v1/private/local-runners/{session['runner_id']}"
    assert requests.get(api, headers=headers, timeout=5).status_code == 404  # not paired yet
    page = browser.new_page()
    page.goto(link)
    page.wait_for_selector("#status.ok", timeout=15000)
    assert "páge-runner ✓" in page.inner_text("#status")
    runner = requests.get(api, headers=headers, timeout=5).json()
    # The browser keeps the activation key for the console's bridge commands (as Opik's UI does).
    kept = json.loads(page.evaluate("localStorage.getItem('opik-runners.bridge-keys')"))[session["runner_id"]]
    fragment = link.rsplit("#", 1)[1]
    assert base64.b64decode(kept["activation_key"]) == base64.urlsafe_b64decode(fragment + "=" * (-len(fragment) % 4))[16:48]
    assert kept["session_id"] == session["session_id"] and kept["workspace"] == "team-a"
    assert page.get_attribute("#console-link", "href") == f"/console/runners/{session['runner_id']}?workspace=team-a"
    screenshot(page, "pairing page paired")
    assert_accessible(page, "pairing page")
    assert runner["status"] == "connected"
    assert runner["name"] == "páge-runner ✓"
    assert runner["type"] == "connect"
    # Opening the link again tells the person it was used already.
    page.reload()
    page.wait_for_selector("#status.ok", timeout=15000)
    assert "already" in page.inner_text("#status")


def test_page_reports_a_broken_link(server, browser):
    page = browser.new_page()
    page.goto(f"{server.url}/opik/pair/v1#not-a-pairing-payload")
    page.wait_for_selector("#status.fail", timeout=15000)
    assert "cannot be read" in page.inner_text("#status")


def test_page_reports_an_unknown_session(server, browser):
    link, session, headers = cli_link(server)
    fragment = link.rsplit("#", 1)[1]
    raw = bytearray(base64.urlsafe_b64decode(fragment + "=" * (-len(fragment) % 4)))
    raw[:16] = uuid.uuid4().bytes  # a session the server never made
    forged = link.rsplit("#", 1)[0] + "#" + base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    page = browser.new_page()
    page.goto(forged)
    page.wait_for_selector("#status.fail", timeout=15000)
    assert "unknown or expired" in page.inner_text("#status")


def test_another_site_cannot_frame_the_page(server, browser):
    """A page of another origin frames a real pairing link, as a clickjacking page would: the
    browser refuses to show the pairing page in the frame, so nothing is paired."""
    link, session, headers = cli_link(server)
    api = f"{server.url}/api/v1/private/local-runners/{session['runner_id']}"
    with another_origin(f'<!doctype html><title>Another site</title><iframe id="framed" name="framed" src="{link}"></iframe>') as url:
        page = browser.new_page()
        logged = []
        page.on("console", lambda message: logged.append(message.text))
        page.goto(url)  # ("load" waits for the frame's)
        page.wait_for_timeout(1500)  # time enough for a framed pairing page to have paired
        frame = page.frame(name="framed")
        assert not frame.url.startswith(server.url), frame.url  # Chromium's error page, not the pairing page
        assert frame.query_selector("#status") is None
        assert requests.get(api, headers=headers, timeout=5).status_code == 404  # not paired
        assert any("frame-ancestors 'none'" in text for text in logged), logged
    # The watch saw the refusal too (it is what this test expects, not a failure).
    assert any("frame-ancestors 'none'" in report for report in browser.csp.take())
