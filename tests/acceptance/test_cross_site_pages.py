"""An attacker's pages in a real headless Chromium against a real server (docs/explanation/security.md,
"What it refuses"): a page of another local origin (another port) sends what a browser lets any page
send, and a page on a rebound host name (Chromium resolves evil.example to 127.0.0.1, as DNS
rebinding makes it) reads and writes as if it were the server's own. All of it is refused, and
the store is as it was."""
import pytest
import requests

from playwright import sync_api as playwright
from tests.support.browser import another_origin, launch, needs_chromium
from tests.support.databases import fresh_database_url
from tests.support.servers import Server, pair_over_http

pytestmark = needs_chromium

REBOUND = "evil.example"

ATTACK = """<!doctype html>
<title>Win a prize</title>
<iframe name="sink" title="sink"></iframe>
<form id="faults" method="POST" action="TARGET/_admin/faults" enctype="text/plain" target="sink">
  <input name='{"status": 500, "x": "' value='"}'>
</form>
<form id="seed" method="POST" action="TARGET/_admin/state" target="sink"><input name="projects" value="pwned"></form>
<iframe id="pairing" title="pairing" src="TARGET/opik/pair/v1"></iframe>
<script>
const target = "TARGET";
const blind = (path, init) => fetch(target + path, {mode: "no-cors", method: "POST", ...init})
  .then(() => "sent", (error) => "failed: " + error);
window.attack = (async () => {
  const done = {};
  done.textPlain = await blind("/api/v1/private/projects",
    {headers: {"Content-Type": "text/plain"}, body: JSON.stringify({name: "pwned-text"})});
  done.blob = await blind("/api/v1/private/projects", {body: new Blob([JSON.stringify({name: "pwned-blob"})])});
  done.reset = await blind("/_admin/reset");
  done.clock = await blind("/_admin/clock", {headers: {"Content-Type": "text/plain"}, body: '{"advance_s": 86400}'});
  done.journal = await blind("/_admin/requests", {method: "DELETE"});
  done.beacon = navigator.sendBeacon(target + "/_admin/reset");
  try {
    const answer = await fetch(target + "/_admin/state");
    done.read = await answer.text();
  } catch (error) {
    done.read = "blocked: " + error;
  }
  document.getElementById("faults").submit();
  await new Promise((resolve) => setTimeout(resolve, 500));
  document.getElementById("seed").submit();
  await new Promise((resolve) => setTimeout(resolve, 500));
  return done;
})();
</script>
"""

# The rebinding page: loaded from evil.example at the server's own port, so its fetches are
# same-origin for the browser, and reach the server (evil.example resolves to 127.0.0.1).
REBINDING = """<!doctype html>
<title>Rebound</title>
<script>
window.attack = (async () => {
  const done = {};
  for (const path of ["/_admin/state", "/_admin/requests", "/api/v1/private/projects"]) {
    const answer = await fetch(path, {headers: {"Comet-Workspace": "default"}});
    done[path] = answer.status + " " + (await answer.text());
  }
  const reset = await fetch("/_admin/reset", {method: "POST"});
  done.reset = reset.status + " " + (await reset.text());
  return done;
})();
</script>
"""


@pytest.fixture
def server(tmp_path):
    srv = Server(fresh_database_url(tmp_path)).start()
    yield srv
    srv.stop()


def world(server):
    """A runner, its pairing session, a project: what the attacks would change or read."""
    return pair_over_http(server.url, "default", "victim")


def everything(server):
    return {
        "state": requests.get(f"{server.url}/_admin/state", timeout=5).json(),
        "faults": requests.get(f"{server.url}/_admin/faults", timeout=5).json(),
        "clock": requests.get(f"{server.url}/_admin/clock", timeout=5).json()["offset_s"],
    }


def journal(server):
    return requests.get(f"{server.url}/_admin/requests", timeout=5).json()["requests"]


def test_a_page_of_another_origin_changes_nothing_reads_nothing_and_cannot_frame_the_pairing_page(server):
    world(server)
    before = everything(server)
    requests.delete(f"{server.url}/_admin/requests", timeout=5)  # the journal then holds the attack alone
    with another_origin(ATTACK.replace("TARGET", server.url)) as origin, playwright.sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page()
        messages = []
        page.on("console", lambda message: messages.append(message.text))
        page.goto(origin)
        done = page.evaluate("window.attack")
        # The pairing page is not shown inside another site's frame (frame-ancestors 'none').
        shown = page.query_selector("#pairing").content_frame().query_selector("#status") is not None
        browser.close()
    assert done["read"].startswith("blocked: TypeError"), done["read"]  # no CORS: the page reads nothing
    assert "sent" in done["textPlain"]  # the browser sent them: the server refused them
    assert not shown, "the pairing page rendered inside another origin's frame"
    assert any("frame-ancestors" in message for message in messages), messages
    assert everything(server) == before
    refused = [(entry["method"], entry["path"], entry["status"]) for entry in journal(server)
               if entry["path"] == "/api/v1/private/projects"]
    assert refused == [("POST", "/api/v1/private/projects", 403)] * 2, refused


def test_a_rebound_host_name_reads_nothing_and_resets_nothing(server):
    world(server)
    before = everything(server)
    port = server.url.rsplit(":", 1)[1]
    with playwright.sync_playwright() as p:
        # DNS rebinding, made real: Chromium resolves evil.example to 127.0.0.1, and the page itself
        # comes from evil.example at the server's port (the attacker's, before the name rebinds).
        # Chromium's own Local Network Access checks would stop the page's fetches before they left
        # the browser; Firefox and Safari have none, so they are off here, to see what the server does.
        browser = launch(p, f"--host-resolver-rules=MAP {REBOUND} 127.0.0.1",
                         "--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests,"
                         "PrivateNetworkAccessSendPreflights,PrivateNetworkAccessRespectPreflightResults")
        page = browser.new_page()
        page.route(f"http://{REBOUND}:{port}/rebound.html",
                   lambda route: route.fulfill(status=200, content_type="text/html", body=REBINDING))
        page.goto(f"http://{REBOUND}:{port}/rebound.html")
        done = page.evaluate("window.attack")
        browser.close()
    for what, answer in done.items():
        assert answer.startswith("403 "), (what, answer)
        assert "OPIK_RUNNERS_ALLOWED_HOSTS" in answer and "activation_key" not in answer, (what, answer)
    assert everything(server) == before


LISTED = """<!doctype html>
<title>A UI on its own dev port</title>
<script>
const TARGET = new URLSearchParams(location.search).get("target");
window.calls = (async () => {
  const headers = {"Content-Type": "application/json", "Authorization": "ui-key", "Comet-Workspace": "front"};
  const made = await fetch(`${TARGET}/api/v1/private/projects`,
    {method: "POST", credentials: "include", headers, body: JSON.stringify({name: "from-the-ui"})});
  const found = await fetch(`${TARGET}/api/v1/private/projects/retrieve`,
    {method: "POST", credentials: "include", headers, body: JSON.stringify({name: "from-the-ui"})});
  return {status: made.status, location: made.headers.get("Location"), project: await found.json()};
})();
</script>
"""


def test_a_listed_origin_calls_the_api_with_credentials_from_chromium(tmp_path):
    with another_origin(LISTED) as origin:
        srv = Server(fresh_database_url(tmp_path), OPIK_RUNNERS_CORS_ORIGINS=origin.rstrip("/"),
                     OPIK_API_KEYS="ui:ui-key", OPIK_RUNNERS_ADMIN="off").start()
        try:
            with playwright.sync_playwright() as p:
                browser = launch(p)
                page = browser.new_page()
                page.goto(f"{origin}?target={srv.url}")  # the page calls the server the query names
                calls = page.evaluate("window.calls")
                browser.close()
        finally:
            srv.stop()
    assert calls["status"] == 201
    assert calls["location"].endswith(f"/projects/{calls['project']['id']}")  # exposed to the page
    assert calls["project"]["name"] == "from-the-ui"
