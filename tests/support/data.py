"""What the tests declare or write straight to the store: a runner's `answer` agent, a stuck
running job, and heartbeats that lapsed."""
import uuid

from opik_runners.protocol import new_id
from opik_runners.store.models import SECOND, Job, Project, Runner, database, now_us


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


def lapse(*runner_ids, ago=1.0):
    """Let runners' heartbeats lapse `ago` seconds ago, as if their TTL had run out then (tests
    of what a lapsed runner does; test_runners also waits for a real TTL to run out)."""
    with database.connection_context():
        Runner.update(heartbeat_expires_at=now_us() - int(ago * SECOND)).where(
            Runner.id.in_([uuid.UUID(str(runner_id)) for runner_id in runner_ids])
        ).execute()
