"""Test an `opik endpoint` agent against a real opik-runners server: the `opik_runners` fixture,
which `pip install opik-runners` adds to pytest."""
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

AGENT = textwrap.dedent('''
    import signal

    import opik


    @opik.track(entrypoint=True)
    def shout(text: str) -> str:
        """Say it louder."""
        return text.upper()


    if __name__ == "__main__":
        signal.pause()  # serve jobs until `opik endpoint` stops us
''')


@pytest.fixture
def endpoint(opik_runners, tmp_path):
    """The real `opik endpoint`, serving agent.py's agents to the test server."""
    (tmp_path / "agent.py").write_text(AGENT)
    env = {key: value for key, value in os.environ.items() if not key.startswith("OPIK_")}
    env.update(OPIK_URL_OVERRIDE=opik_runners.url, OPIK_SENTRY_ENABLE="false", OPIK_ANALYTICS_ENABLE="false",
               HOME=str(tmp_path))  # a scratch HOME: your ~/.opik.config stays out of it
    with open(tmp_path / "opik.log", "w") as log:
        cli = subprocess.Popen(
            [sys.executable, "-m", "opik.cli", "endpoint", "--project", "demo", "--headless", "--name", "test-runner",
             "--", sys.executable, "agent.py"],
            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        # Paired and ready once it has told the server its agents.
        opik_runners.wait_for(operation="register_agents", since=0, timeout_s=60)
        yield cli
    finally:
        os.killpg(cli.pid, signal.SIGINT)  # Ctrl-C: the CLI disconnects its runner and stops the agent
        try:
            cli.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(cli.pid, signal.SIGKILL)
            raise
        print((tmp_path / "opik.log").read_text())  # pytest shows it if the test failed


def test_the_agent_runs_jobs_and_rides_out_a_refused_poll(opik_runners, endpoint):
    # A fault: the runner's next poll for jobs is refused with a 503 (the poll it holds now is
    # not). It must back off and poll again.
    with opik_runners.fault(operation="next_job", status=503, times=1) as fault:
        job_id = opik_runners.create_job("demo", "shout", {"text": "hello"})
        # The runner reports the job running, then its result: POST .../jobs/{id}/results, twice.
        reports = opik_runners.wait_for(path=f"*/jobs/{job_id}/results", count=2, since=0)
        assert json.loads(reports[-1]["request_body"])["result"] == {"result": "HELLO"}
        refused = opik_runners.wait_for(operation="next_job", status=503, since=0)
        assert refused[0]["fault"] == fault["id"]

    # It still runs jobs.
    job_id = opik_runners.create_job("demo", "shout", {"text": "still here"})
    opik_runners.wait_for(path=f"*/jobs/{job_id}/results", count=2, since=0)
    assert opik_runners.job(job_id)["result"] == {"result": "STILL HERE"}
