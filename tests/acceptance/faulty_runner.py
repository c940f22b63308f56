"""A runner with four faults, for the conformance kit's runner grading to find: it ignores cancels
(it never reads a heartbeat's answer: it never sends one), it hot-loops on a failed poll, it never
heartbeats, and it reports results for pending jobs it never claimed (seen in its listing).
Otherwise it does as the CLI's in-process loop does. Started by the grader as the runner's own
process (--pairing grader): OPIK_URL_OVERRIDE, OPIK_RUNNER_ID, OPIK_WORKSPACE. Standard library only."""
import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

BASE = os.environ["OPIK_URL_OVERRIDE"].rstrip("/")
RUNNER = os.environ["OPIK_RUNNER_ID"]
HEADERS = {"Comet-Workspace": os.environ.get("OPIK_WORKSPACE", "default"), "Content-Type": "application/json"}
AGENTS = {
    "answer": {"description": "Answers.", "language": "python", "timeout": 0,
               "params": [{"name": "question", "type": "string", "presence": "required"}]},
    "fail": {"description": "Fails.", "language": "python", "timeout": 0, "params": []},
}
stopping = threading.Event()


def call(method, path, body=None, timeout=30):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{BASE}/v1/private/{path}", data=data, method=method,
                                     headers=HEADERS if data else {"Comet-Workspace": HEADERS["Comet-Workspace"]})
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        raw = answer.read()
    return json.loads(raw) if raw.strip() else None


def run(job):
    trace = str(uuid.uuid4())
    call("POST", f"local-runners/jobs/{job['id']}/results", {"status": "running", "trace_id": trace})
    call("POST", f"local-runners/jobs/{job['id']}/logs", [{"stream": "stdout", "text": f"running {job['id']}"}])
    if job["agent_name"] == "fail":
        call("POST", f"local-runners/jobs/{job['id']}/results", {"status": "failed", "error": "Fault: on purpose",
                                                                 "trace_id": trace})
    else:
        call("POST", f"local-runners/jobs/{job['id']}/results", {"status": "completed", "trace_id": trace,
                                                                 "result": {"answer": 42}})


def poll():
    while not stopping.is_set():
        try:
            job = call("POST", f"local-runners/{RUNNER}/jobs/next", timeout=60)
        except (urllib.error.URLError, OSError):
            time.sleep(0.02)  # fault: no backoff at all
            continue
        if job:
            threading.Thread(target=run, args=(job,), daemon=True).start()


def report_unclaimed():
    """Fault: a job seen pending twice in a row (a second apart) is reported completed, unclaimed."""
    seen = set()
    while not stopping.wait(1):
        try:
            page = call("GET", f"local-runners/{RUNNER}/jobs?size=100")
        except (urllib.error.URLError, OSError):
            continue
        pending = {job["id"] for job in page["content"] if job["status"] == "pending"}
        for job_id in pending & seen:
            try:
                call("POST", f"local-runners/jobs/{job_id}/results", {"status": "completed", "result": {"guess": 1}})
            except (urllib.error.URLError, OSError):
                pass
        seen = pending


def leave(signum, frame):
    stopping.set()
    try:
        call("DELETE", f"local-runners/{RUNNER}", timeout=5)
    finally:
        sys.exit(0)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, leave)
    signal.signal(signal.SIGTERM, leave)
    call("PUT", f"local-runners/{RUNNER}/agents", AGENTS)
    threading.Thread(target=report_unclaimed, daemon=True).start()
    poll()
