"""The console (/ and /console/...), driven in Debian's headless Chromium against a real
gunicorn server, with the real `opik endpoint` and `opik connect` on the other side.

Each page is checked with axe-core (no serious or critical violation) and photographed at
desktop and phone width into screenshots/ (ignored by git) for a person to look at."""
import json
import re
import subprocess
import sys
import textwrap
import uuid

import pytest
import requests

from tests.support.browser import DESKTOP, assert_accessible, needs_chromium, screenshot
from tests.support.cli import CLI, LINK, cli_env
from tests.support.databases import fresh_database_url
from tests.support.servers import Server
from tests.support.waiting import wait_until

pytestmark = needs_chromium

AGENT_FILE = textwrap.dedent('''
    import time

    import opik


    @opik.track(entrypoint=True)
    def typed(text: str, count: int, ratio: float = 0.5, loud: bool = False) -> dict:
        """Repeat a text."""
        out = text * count
        print(f"repeating {text!r} {count} times")
        return {"out": out.upper() if loud else out, "ratio": ratio}


    @opik.track(entrypoint=True)
    def slow(seconds: float = 1.0) -> str:
        started, tick = time.monotonic(), 0
        while time.monotonic() - started < seconds:
            print(f"tick {tick}")
            tick += 1
            time.sleep(0.2)
        return "done"


    if __name__ == "__main__":
        while True:
            time.sleep(0.2)
''')


@pytest.fixture
def server(tmp_path):
    srv = Server(fresh_database_url(tmp_path), OPIK_RUNNER_NEXT_JOB_POLL_TIMEOUT="1").start()
    yield srv
    srv.stop()


@pytest.fixture
def api(server):
    return Api(server.url)


@pytest.fixture
def page(browser):
    """A page at desktop size; a script error on it fails the test."""
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(20000)
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, errors


@pytest.fixture
def start_endpoint(server, tmp_path):
    """Starts `opik endpoint` with the agents above, on project console-demo."""
    started = []

    def start():
        agent_dir = tmp_path / "agent"
        agent_dir.mkdir()
        (agent_dir / "agent.py").write_text(AGENT_FILE)
        started.append(CLI(["endpoint", "--project", "console-demo", "--headless", "--no-watch", "--name",
                            "console-runner", "--", sys.executable, "agent.py"],
                           cwd=agent_dir, env=cli_env(server.url, tmp_path / "home")))
        return started[-1]

    yield start
    for cli in started:
        cli.kill()


@pytest.fixture
def endpoint(start_endpoint):
    return start_endpoint()


class Api:
    def __init__(self, url):
        self.url = url
        self.base = f"{url}/api/v1/private"

    def get(self, path, **kwargs):
        response = requests.get(f"{self.base}{path}", timeout=10, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()

    def job(self, job_id):
        return self.get(f"/local-runners/jobs/{job_id}")

    def jobs(self, runner_id, **query):
        return self.get(f"/local-runners/{runner_id}/jobs", params=query)


def job_id_in(url):
    match = re.search(r"/console/jobs/([0-9a-f-]{36})", url)
    assert match, url
    return match[1]


def open_runner(page, server, runner_name):
    """From the home page: the project, then the runner, as a person clicks through."""
    page.goto(f"{server.url}/")
    page.get_by_role("link", name="console-demo").click()
    row = page.locator("#runners tbody tr", has_text=runner_name)
    row.get_by_text("connected").wait_for()
    screenshot(page, "project runners")
    assert_accessible(page, "project page")
    row.get_by_role("link", name=runner_name).click()
    page.locator("#runner-status", has_text="connected").wait_for()


# -- endpoint runners: run an agent, follow it, cancel, retry


def test_a_connected_runner_shows_live_and_its_agent_runs_from_a_validated_form(server, api, start_endpoint, page):
    # A new server: the home page says how to begin, and makes the project the CLI needs.
    page.goto(f"{server.url}/")
    page.get_by_text("No projects in this workspace yet").wait_for()
    assert f"OPIK_URL_OVERRIDE={server.url}/api" in page.inner_text("#connect-commands")
    screenshot(page, "home empty")
    assert_accessible(page, "home page, empty")
    page.fill("#new-project", "console-demo")
    page.get_by_role("button", name="Create").click()
    page.locator("h1", has_text="Runners of console-demo").wait_for()
    assert "opik endpoint --project console-demo" in page.inner_text("#connect-commands")
    # The project's page is open before the runner exists: it appears there without a reload.
    start_endpoint()
    page.locator("#runners tbody tr", has_text="console-runner").get_by_text("connected").wait_for(timeout=60000)
    page.get_by_role("link", name="Projects").first.click()
    page.get_by_role("link", name="console-demo").wait_for()
    screenshot(page, "home")
    open_runner(page, server, "console-runner")

    form = page.locator("form[data-agent='typed']")
    form.wait_for()
    screenshot(page, "runner endpoint")
    assert_accessible(page, "runner page")
    runner_id = page.url.rsplit("/", 1)[1].split("?")[0]
    # Bad values are refused in the page, each with its reason, and nothing is sent.
    form.get_by_label("count").fill("three")
    form.get_by_label("ratio").fill("half")
    form.get_by_role("button", name="Run").click()
    assert form.locator("#" + form.get_by_label("text").get_attribute("id") + "-problem").inner_text() == "Required."
    assert "whole number" in form.get_by_label("count").evaluate("e => document.getElementById(e.id + '-problem').textContent")
    assert "number" in form.get_by_label("ratio").evaluate("e => document.getElementById(e.id + '-problem').textContent")
    assert api.jobs(runner_id)["total"] == 0
    # Fixed, and run from the keyboard (Ctrl+Enter).
    form.get_by_label("text").fill("ab")
    form.get_by_label("count").fill("3")
    form.get_by_label("ratio").fill("0.25")
    form.get_by_role("switch", name="loud").check()
    form.get_by_label("count").press("Control+Enter")
    page.wait_for_url(re.compile(r"/console/jobs/"))
    job_id = job_id_in(page.url)
    page.locator("#job-status", has_text="completed").wait_for(timeout=30000)
    assert json.loads(page.inner_text("#result")) == {"out": "ABABAB", "ratio": 0.25}
    job = api.job(job_id)
    assert job["inputs"] == {"text": "ab", "count": 3, "ratio": 0.25, "loud": True}
    assert job["status"] == "completed" and job["result"] == {"out": "ABABAB", "ratio": 0.25}
    page.locator("#logs", has_text="repeating 'ab' 3 times").wait_for()
    # The SDK's trace of the run reaches the server's trace sink, and shows as a tree.
    page.locator("#spans", has_text="typed").wait_for(timeout=30000)
    screenshot(page, "job completed")
    assert_accessible(page, "job page")


def test_the_newcomers_path_from_the_cli_s_links(server, api, page, tmp_path):
    """What a person does with nothing read: `opik endpoint` as its help shows it (interactive
    pairing), the link it prints, the page it leads to, the console, a run."""
    requests.post(f"{api.base}/projects", json={"name": "my-project"}, timeout=5)
    agent_dir = tmp_path / "agent"
    agent_dir.mkdir()
    (agent_dir / "agent.py").write_text(AGENT_FILE)
    cli = CLI(["endpoint", "--project", "my-project", "--", sys.executable, "agent.py"], cwd=agent_dir,
              env=cli_env(server.url, tmp_path / "home"))
    try:
        page.goto(cli.wait_for(LINK.pattern).group(1))
        page.locator("#status.ok").wait_for()
        # The CLI then offers Opik's UI address for the project: here it opens the console.
        ui = cli.wait_for(r"(http://\S+/default/projects/[0-9a-f-]+/\S*)").group(1)
        page.goto(ui)
        page.locator("h1", has_text="Runners of my-project").wait_for()
        page.locator("#runners tbody tr a").first.click()
        form = page.locator("form[data-agent='slow']")
        form.get_by_label("seconds").fill("2")
        form.get_by_role("button", name="Run").click()
        page.wait_for_url(re.compile(r"/console/jobs/"))
        page.locator("#logs", has_text="tick 0").wait_for(timeout=30000)
        page.locator("#job-status", has_text="completed").wait_for(timeout=30000)
        assert api.job(job_id_in(page.url))["result"] == {"result": "done"}
    finally:
        cli.kill()


def test_logs_tail_while_a_job_runs_and_cancel_and_retry_work(server, api, endpoint, page):
    open_runner(page, server, "console-runner")
    form = page.locator("form[data-agent='slow']")
    form.get_by_label("seconds").fill("4")
    form.get_by_role("button", name="Run").click()
    page.wait_for_url(re.compile(r"/console/jobs/"))
    job_id = job_id_in(page.url)
    # A log line shows while the job is still running...
    page.locator("#logs", has_text="tick 1").wait_for(timeout=30000)
    assert page.inner_text("#job-status") == "running"
    assert api.job(job_id)["status"] == "running"
    screenshot(page, "job running")
    # ...and the result once it is done, the log having grown.
    page.locator("#job-status", has_text="completed").wait_for(timeout=30000)
    assert json.loads(page.inner_text("#result")) == {"result": "done"}
    assert page.locator("#logs div").count() >= 10

    # Cancel really cancels: the API says so, at once.
    page.get_by_role("link", name="console-runner").click()
    form = page.locator("form[data-agent='slow']")
    form.get_by_label("seconds").fill("60")
    form.get_by_role("button", name="Run").click()
    page.wait_for_url(re.compile(r"/console/jobs/"))
    long_id = job_id_in(page.url)
    page.locator("#job-status", has_text="running").wait_for(timeout=30000)
    page.get_by_role("button", name="Cancel").click()
    page.locator("#job-status", has_text="cancelled").wait_for()
    assert api.job(long_id)["status"] == "cancelled"
    assert page.get_by_role("button", name="Cancel").is_disabled()

    # Retry makes a new job with the same agent and inputs.
    page.get_by_role("button", name="Retry").click()
    page.wait_for_url(lambda url: "/console/jobs/" in url and long_id not in url)
    retried = api.job(job_id_in(page.url))
    assert retried["id"] != long_id
    assert (retried["agent_name"], retried["inputs"]) == ("slow", {"seconds": 60.0})
    requests.post(f"{api.base}/local-runners/jobs/{retried['id']}/cancel", timeout=10)


# -- the listing, against the API, on a seeded runner


RUNNER = "0190d2b4-0000-7000-8000-00000000c0de"
STATUS_CYCLE = ["completed", "failed", "completed", "pending", "cancelled", "running", "completed"]


def seeded(server, jobs=57):
    document = {
        "version": 1,
        "runners": [{"id": RUNNER, "project": "console-demo", "name": "seeded-runner", "agents": {
            "alpha": {"params": [{"name": "config", "type": "dict", "presence": "required"},
                                 {"name": "tags", "type": "list", "presence": "optional"}]},
            "beta": {"params": []},
        }}],
        "jobs": [{"runner_id": RUNNER, "agent_name": "alpha" if i % 3 else "beta", "inputs": {"i": i},
                  "status": STATUS_CYCLE[i % len(STATUS_CYCLE)]} for i in range(jobs)],
    }
    loaded = requests.post(f"{server.url}/_admin/state", json=document, timeout=10)
    assert loaded.status_code == 200, loaded.text
    return document


def shown_job_ids(page):
    return page.locator("#jobs tbody tr").evaluate_all("rows => rows.map(r => r.dataset.job)")


def test_the_listing_pages_and_filters_agree_with_the_api(server, api, page):
    document = seeded(server)
    every = api.jobs(RUNNER, size=100)["content"]  # newest first, unfiltered
    assert len(every) == 57

    page.goto(f"{server.url}/console/runners/{RUNNER}?size=10")
    page.locator("#jobs tbody tr").first.wait_for()
    # The tabs count each status as the seed made them.
    for status in ["pending", "running", "completed", "failed", "cancelled"]:
        expected = sum(1 for job in document["jobs"] if job["status"] == status)
        assert page.inner_text(f".tabs a[data-status='{status}']").endswith(f"({expected})")
    assert shown_job_ids(page) == [job["id"] for job in every[:10]]
    assert page.inner_text("#page-of").startswith("Page 1 of 6")
    screenshot(page, "runner listing")

    # A status tab, an agent, the second page: what the page shows is the API's answer...
    page.click(".tabs a[data-status='completed']")
    page.select_option("#agent-filter", "alpha")
    page.locator("#page-of", has_text="Page 1 of 2").wait_for()
    page.get_by_role("link", name="Older →").click()
    page.locator("#page-of", has_text="Page 2 of 2").wait_for()
    assert "status=completed" in page.url and "agent=alpha" in page.url and "page=1" in page.url
    answer = api.jobs(RUNNER, status="completed", agent_name="alpha", page=1, size=10, counts="true")
    assert shown_job_ids(page) == [job["id"] for job in answer["content"]]
    # ...and the API's answer is the unfiltered listing, filtered.
    wanted = [job["id"] for job in every if job["status"] == "completed" and job["agent_name"] == "alpha"]
    assert answer["total"] == len(wanted) and [job["id"] for job in answer["content"]] == wanted[10:20]
    assert page.inner_text(".tabs a[data-status='completed']").endswith(f"({len(wanted)})")
    # The URL is the view: a reload (or a shared link) shows the same rows.
    rows = shown_job_ids(page)
    page.reload()
    page.locator("#jobs tbody tr").first.wait_for()
    assert shown_job_ids(page) == rows
    assert_accessible(page, "runner page, filtered")


def test_json_params_are_checked_and_the_api_s_4xx_message_is_shown(server, api, page):
    seeded(server, jobs=0)
    page.goto(f"{server.url}/console/runners/{RUNNER}")
    form = page.locator("form[data-agent='alpha']")
    form.get_by_label("config").fill("{not json")
    form.get_by_label("tags").fill('{"a": 1}')
    form.get_by_role("button", name="Run").click()
    problem = form.get_by_label("config").evaluate("e => document.getElementById(e.id + '-problem').textContent")
    assert problem.startswith("Not JSON")
    assert "JSON list" in form.get_by_label("tags").evaluate("e => document.getElementById(e.id + '-problem').textContent")
    assert api.jobs(RUNNER)["total"] == 0

    # The API refusing (here a fault rule answering 409): its own message is shown.
    rule = requests.post(f"{server.url}/_admin/faults", json={
        "operation": "create_job", "status": 409, "body": {"code": 409, "message": "Injected: the queue is full"},
    }, timeout=10).json()
    form.get_by_label("config").fill('{"depth": 2, "name": "x"}')
    form.get_by_label("tags").fill('["a", "b"]')
    form.get_by_role("button", name="Run").click()
    page.locator("#alerts", has_text="Running alpha: Injected: the queue is full (HTTP 409)").wait_for()
    screenshot(page, "runner error")
    requests.delete(f"{server.url}/_admin/faults/{rule['id']}", timeout=10)
    form.get_by_role("button", name="Run").click()
    page.wait_for_url(re.compile(r"/console/jobs/"))
    job = api.job(job_id_in(page.url))
    assert job["inputs"] == {"config": {"depth": 2, "name": "x"}, "tags": ["a", "b"]}
    assert job["status"] == "pending"


def test_an_idle_page_makes_at_most_one_request_a_second(server, page):
    seeded(server, jobs=0)
    requests.post(f"{server.url}/_admin/state", json={"version": 1, "jobs": [
        {"runner_id": RUNNER, "agent_name": "beta", "status": "completed"}]}, timeout=10)
    page.goto(f"{server.url}/console/runners/{RUNNER}")
    page.locator("#jobs tbody tr").first.wait_for()
    made = []
    page.on("request", lambda request: made.append(request.url))
    page.wait_for_timeout(8000)
    assert len(made) <= 8, made


# -- connect runners: paired in this browser, then driven from the console


def test_a_connect_runner_paired_in_the_browser_gets_a_signed_listfiles(server, browser, page, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (repo / "hello.py").write_text("print('hello')\n")
    (repo / "README.md").write_text("# demo\n")
    requests.post(f"{server.url}/api/v1/private/projects", json={"name": "console-demo"}, timeout=5)
    cli = CLI(["connect", "--project", "console-demo", "--non-interactive", "--name", "bridge-runner"], cwd=repo,
              env=cli_env(server.url, tmp_path / "home"))
    try:
        link = cli.wait_for(LINK.pattern).group(1)
        page.goto(link)
        page.locator("#status.ok").wait_for()
        page.click("#console-link")  # the pairing page leads to the runner in the console
        page.locator("#runner-status", has_text="connected").wait_for()
        runner_id = page.url.rsplit("/", 1)[1].split("?")[0]
        wait_until(lambda: "bridge" in Api(server.url).get(f"/local-runners/{runner_id}")["capabilities"], timeout=60)
        page.select_option("#bridge-type", "ListFiles")
        page.get_by_role("button", name="Send").click()
        result = page.locator(".bridge-result").first
        result.locator(".bridge-output", has_text="hello.py").wait_for(timeout=30000)
        assert "README.md" in result.inner_text()
        assert "signed with this runner's key" in result.locator(".ok-note").inner_text()
        screenshot(page, "runner connect bridge")
        assert_accessible(page, "runner page, connect")
        # What the console sent was signed: the CLI ran it (an unsigned command fails with auth_failed).
        commands = requests.get(f"{server.url}/_admin/requests", params={"operation": "submit_bridge_command"},
                                timeout=10).json()["requests"]
        assert not commands  # the console's own calls are not journaled...
        report = requests.get(f"{server.url}/_admin/requests", params={"operation": "report_bridge_result"},
                              timeout=10).json()["requests"]
        assert report and json.loads(report[0]["request_body"])["status"] == "completed"  # ...the CLI's are

        # Another browser, which never paired this runner, says plainly that it cannot sign.
        other = browser.new_context(viewport=DESKTOP).new_page()
        other.goto(page.url)
        other.locator("#no-bridge-key").wait_for()
        assert "holds no key" in other.inner_text("#no-bridge-key")
        other.context.close()
    finally:
        cli.kill()


# -- the control plane panel


def test_the_control_plane_panels(server, page, tmp_path):
    seeded(server, jobs=3)
    api = f"{server.url}/api/v1/private"
    # A client call with a field Opik ignores: journaled, with a note.
    project_id = requests.post(f"{api}/projects/retrieve", json={"name": "console-demo"}, timeout=5).json()["id"]
    requests.post(f"{api}/local-runners/jobs", json={"agent_name": "beta", "project_id": project_id, "extra": 1},
                  timeout=5)
    page.goto(f"{server.url}/")
    page.get_by_role("link", name="Control plane").click()
    row = page.locator("#journal tbody tr", has_text="/local-runners/jobs").first
    row.wait_for()
    screenshot(page, "admin journal")
    assert_accessible(page, "journal panel")
    page.fill("#journal-filters input[name='operation']", "create_job")
    page.locator("#journal tbody tr").first.wait_for()
    page.wait_for_function("() => [...document.querySelectorAll('#journal tbody tr')].length === 1")
    page.locator("#journal tbody tr").first.click()
    page.locator("#journal-notes", has_text="extra").wait_for()
    assert '"agent_name": "beta"' in page.inner_text("#journal-detail")
    screenshot(page, "admin journal entry")

    page.get_by_role("link", name="Faults").click()
    page.fill("#fault-operation", "next_job")
    page.fill("#fault-status", "503")
    page.fill("#fault-times", "2")
    page.get_by_role("button", name="Add the rule").click()
    page.locator("#faults tbody tr", has_text="next_job").wait_for()
    rules = requests.get(f"{server.url}/_admin/faults", timeout=5).json()["faults"]
    assert len(rules) == 1 and rules[0]["status"] == 503 and rules[0]["times"] == 2
    screenshot(page, "admin faults")
    assert_accessible(page, "faults panel")
    page.get_by_role("button", name=f"Remove rule {rules[0]['id']}").click()
    page.get_by_text("No fault rules").wait_for()
    assert requests.get(f"{server.url}/_admin/faults", timeout=5).json()["faults"] == []

    page.get_by_role("link", name="Clock").click()
    page.fill("#advance", "15")
    page.get_by_role("button", name="Advance").click()
    page.locator("#clock-offset", has_text="15 s").wait_for()
    assert requests.get(f"{server.url}/_admin/clock", timeout=5).json()["offset_s"] == 15
    screenshot(page, "admin clock")
    assert_accessible(page, "clock panel")
    page.get_by_role("button", name="Back to real time").click()
    page.locator("#clock-offset", has_text="0 s").wait_for()

    page.get_by_role("link", name="State and reset").click()
    with page.expect_download() as download:
        page.get_by_role("button", name="Export as JSON").click()
    exported = json.loads(open(download.value.path()).read())
    assert [runner["id"] for runner in exported["runners"]] == [RUNNER] and len(exported["jobs"]) == 4  # 3 seeded, 1 made
    screenshot(page, "admin state")
    assert_accessible(page, "state panel")
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Reset").click()
    page.locator("#state-outcome", has_text="Reset done").wait_for()
    assert requests.get(f"{server.url}/_admin/state", timeout=5).json().get("runners", []) == []
    page.fill("#import-text", json.dumps(exported))
    page.get_by_role("button", name="Load").click()
    page.locator("#state-outcome", has_text="Loaded").wait_for()
    assert "4 jobs" in page.inner_text("#state-outcome")
    assert len(requests.get(f"{api}/local-runners/{RUNNER}/jobs", timeout=5).json()["content"]) == 4


def test_every_page_has_a_url_and_unknown_ones_say_so(server, page):
    seeded(server, jobs=1)
    job_id = requests.get(f"{server.url}/api/v1/private/local-runners/{RUNNER}/jobs", timeout=5).json()["content"][0]["id"]
    for path, heading in [(f"/console/runners/{RUNNER}", "Runner seeded-runner"), (f"/console/jobs/{job_id}", "Job of"),
                          ("/console/admin/clock", "Control plane"), ("/console/nowhere", "No such page")]:
        page.goto(f"{server.url}{path}")
        page.locator("h1", has_text=heading).wait_for()
    page.goto(f"{server.url}/console/jobs/{uuid.uuid4()}")
    page.locator("#alerts", has_text="Job not found").wait_for()
    # Another workspace is named in the URL, so its links can be shared too.
    page.goto(f"{server.url}/console/runners/{RUNNER}?workspace=elsewhere")
    page.locator("#alerts", has_text="Runner not found").wait_for()
    assert page.input_value("#workspace") == "elsewhere"
