"""The pairing page at /opik/pair/v1, driven in a real headless Chromium."""
import base64
import os
import shutil
import uuid

import pytest
import requests

from server import Server, fresh_database_url

from playwright import sync_api as playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# On a laptop without Debian's chromium this skips; CI (which installs it) must run it.
pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM) and not os.environ.get("CI"), reason="Debian's chromium is not installed"
)


@pytest.fixture
def server(tmp_path):
    srv = Server(fresh_database_url(tmp_path)).start()
    yield srv
    srv.stop()


@pytest.fixture
def browser():
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        yield browser
        browser.close()


def cli_link(server, runner_name="page-runner", runner_type="connect", workspace="default"):
    """Create a session exactly as the CLI does and build the link it prints (client-protocol §3.3-3.4)."""
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
