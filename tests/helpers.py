"""What the in-process and the real-server tests share: a runner's agent, a stuck job written
straight to the store, and the bridge rate's minute."""
import time

from opik_runners.store.models import SECOND, Job, Project, Runner, now_us
from opik_runners.protocol import new_id


AGENT = {
    "description": "Answer a question n times.",
    "language": "python",
    "params": [
        {"name": "question", "type": "string", "presence": "required"},
        {"name": "n", "type": "integer", "presence": "optional"},
    ],
    "timeout": 0,
}


def running_job(timeout, started_ago):
    """A running job of a live runner, started `started_ago` seconds ago with `timeout`, written
    straight to the open database (with a connection open); its id."""
    now = now_us()
    project = Project.create(workspace="w", name=f"p-{new_id()}", created_by="u", last_updated_by="u")
    runner = Runner.create(id=new_id(), workspace="w", user_name="u", project_id=project.id, type="endpoint",
                           name="r", connected_at=now, heartbeat_expires_at=now + 3600 * SECOND, job_count=1, last_seq=1)
    return Job.create(runner=runner.id, project_id=project.id, agent_name="a", status="running", timeout=timeout,
                      started_at=now - int(started_ago * SECOND), seq=1, document="{}").id


def start_of_fresh_minute_if_needed(needed=3.0):
    """The bridge's rate buckets are clock minutes (the server's clock, at offset 0, is this
    machine's): don't let a test straddle a minute change."""
    left = 60 - time.time() % 60
    if left < needed:
        time.sleep(left + 0.05)
