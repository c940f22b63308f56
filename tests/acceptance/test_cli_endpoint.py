"""`opik endpoint --headless`, the real CLI, against a real gunicorn server."""
import os
import signal
import sys
import time

import pytest

from tests.support.cli import CLI, ENDPOINT_AGENT_FILE, cli_env
from tests.support.databases import fresh_database_url
from tests.support.servers import HttpApi, Server
from tests.support.waiting import wait_until


@pytest.fixture
def server(tmp_path):
    # A 1 s job poll lets a test pause the agent with no poll held (see the cancel test).
    srv = Server(fresh_database_url(tmp_path), OPIK_RUNNER_NEXT_JOB_POLL_TIMEOUT="1").start()
    yield srv
    srv.stop()


@pytest.fixture
def endpoint(server, tmp_path):
    agent_dir = tmp_path / "agent"
    agent_dir.mkdir()
    (agent_dir / "agent.py").write_text(ENDPOINT_AGENT_FILE)
    env = cli_env(server.url, tmp_path / "home")
    cli = CLI(["endpoint", "--project", "epdemo", "--headless", "--no-watch", "--name", "e2e-runner",
               "--", sys.executable, "agent.py"], cwd=agent_dir, env=env)
    yield cli
    cli.kill()


def test_endpoint_runs_jobs_end_to_end(server, endpoint):
    api = HttpApi(server.url)
    # The CLI created the project (retrieve 404, create, retrieve) and paired headlessly.
    project_id = wait_until(lambda: api.post("/projects/retrieve", json={"name": "epdemo"}).json().get("id"))

    def registered_runner():
        page = api.get("/local-runners", params={"project_id": project_id}).json()
        runner = page["content"][0] if page["content"] else None
        return runner if runner and runner["status"] == "connected" and runner["agents"] else None

    runner = wait_until(registered_runner, timeout=60)
    assert runner["name"] == "e2e-runner" and runner["type"] == "endpoint"
    assert {a["name"] for a in runner["agents"]} == {"answer", "boom"}
    answer = next(a for a in runner["agents"] if a["name"] == "answer")
    assert answer["description"] == "Answer a question n times."
    assert answer["params"] == [
        {"name": "question", "type": "string", "presence": "required"},
        {"name": "n", "type": "integer", "presence": "optional"},
    ]
    assert runner["checklist"]["runner_type"] == "endpoint"
    runner_id = runner["id"]

    # A job runs: result, logs and trace come back through the API.
    job_id = api.create_job(project_id, "answer", {"question": "2+2?", "n": "3"})
    job = api.finished_job(job_id)
    assert job["status"] == "completed", job
    assert job["result"] == {"result": "42 x3"}
    assert job["started_at"] <= job["completed_at"]
    logs = wait_until(lambda: api.get(f"/local-runners/jobs/{job_id}/logs").json())
    assert {"stream": "stdout", "text": "answering '2+2?' x3"} in logs
    trace = wait_until(lambda: (r := api.get(f"/traces/{job['trace_id']}")).status_code == 200 and r.json())
    assert trace["name"] == "answer"
    assert trace["input"] == {"question": "2+2?", "n": 3}
    assert trace["output"] == {"output": "42 x3"}
    assert trace["project_id"] == project_id
    spans = wait_until(lambda: api.get("/spans", params={"trace_id": job["trace_id"]}).json()["content"])
    assert [span["name"] for span in spans] == ["answer"]

    # A failing agent ends `failed` with the client's error text.
    failed = api.finished_job(api.create_job(project_id, "boom", {"x": "y"}))
    assert failed["status"] == "failed" and failed["error"] == "ValueError: kaboom"

    # An agent the server knows but the process does not: the client's "Unknown agent".
    agents = {a.pop("name"): a for a in api.get(f"/local-runners/{runner_id}").json()["agents"]}
    assert api.put(f"/local-runners/{runner_id}/agents", json={**agents, "nope": {"language": "python"}}).status_code == 204
    unknown = api.finished_job(api.create_job(project_id, "nope", {}))
    assert unknown["status"] == "failed" and unknown["error"] == "Unknown agent: nope"

    # A job cancelled while pending is never run. Pause the agent process once its held
    # poll has answered (the poll timeout is 1 s), so nothing can claim the job meanwhile.
    (agent_pid,) = wait_until(lambda: endpoint.children())
    os.kill(agent_pid, signal.SIGSTOP)
    try:
        time.sleep(1.5)
        cancelled_id = api.create_job(project_id, "answer", {"question": "never"})
        assert api.post(f"/local-runners/jobs/{cancelled_id}/cancel").status_code == 204
    finally:
        os.kill(agent_pid, signal.SIGCONT)
    # The agent keeps polling; a later job runs, the cancelled one never does.
    later = api.finished_job(api.create_job(project_id, "answer", {"question": "after"}))
    assert later["status"] == "completed"
    cancelled = api.get(f"/local-runners/jobs/{cancelled_id}").json()
    assert cancelled["status"] == "cancelled" and "started_at" not in cancelled
    assert api.get(f"/local-runners/jobs/{cancelled_id}/logs").json() == []

    # Ctrl-C: the CLI disconnects the runner (DELETE) on its way out.
    assert endpoint.interrupt() == 0, endpoint.output
    assert api.get(f"/local-runners/{runner_id}").status_code == 404
    assert api.get("/local-runners", params={"project_id": project_id}).json()["total"] == 0
