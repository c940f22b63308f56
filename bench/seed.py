"""Seed a benchmark database straight through the models (much faster than the API)."""
import uuid

from tqdm import tqdm

from opik_runners.store import db
from opik_runners.domain.jobs import render
from opik_runners.store.models import SECOND, Job, Project, Runner, database, new_id, now_us

WORKSPACE, USER = "default", "admin"
AGENT = {
    "description": "Answer a question.",
    "language": "python",
    "params": [{"name": "question", "type": "string", "presence": "required"}],
    "timeout": 0,
}


def project(name="bench"):
    return Project.create(workspace=WORKSPACE, name=name, created_by=USER, last_updated_by=USER)


def live_runners(project_id, count, runner_type="endpoint", alive_for=3600, workspace=WORKSPACE):
    """`count` live runners with the `answer` agent (and the bridge capability)."""
    now = now_us()
    rows = [
        dict(id=new_id(), workspace=workspace, user_name=USER, project_id=project_id, type=runner_type,
             name=f"bench-{i}", connected_at=now, heartbeat_expires_at=now + alive_for * SECOND,
             capabilities=["jobs", "bridge"], agents={"answer": AGENT})
        for i in range(count)
    ]
    with database.atomic():
        for start in range(0, len(rows), 500):
            Runner.insert_many(rows[start:start + 500]).execute()
    return [row["id"] for row in rows]


def full_job(runner_id, project_id, seq, status="completed"):
    """A job with every field of the contract filled, nested metadata included."""
    now = now_us()
    row = dict(
        id=new_id(), runner=runner_id, project_id=project_id, agent_name="answer", status=status, seq=seq,
        inputs={"question": "What is the answer to life, the universe and everything?", "n": 3},
        result={"result": "42", "tokens": 17}, error=None if status == "completed" else "boom",
        trace_id=uuid.uuid4(), mask_id=uuid.uuid4(),
        prompt_masks={str(uuid.uuid4()): str(uuid.uuid4()), str(uuid.uuid4()): str(uuid.uuid4())},
        blueprint_name="bench blueprint",
        metadata={"dataset_id": str(uuid.uuid4()), "dataset_version_id": str(uuid.uuid4()),
                  "dataset_item_version_id": str(uuid.uuid4()), "dataset_item_id": str(uuid.uuid4())},
        timeout=1800, created_at=now, started_at=now, completed_at=now,
    )
    row["document"] = render(Job(**row))
    return row


def jobs(plan, project_id, batch=2000, progress=True):
    """`plan`: [(runner_id, count), ...]; inserts finished, fully filled jobs with a progress bar."""
    total = sum(count for _, count in plan)
    bar = tqdm(total=total, unit="job", desc="seeding jobs", disable=not progress, mininterval=0.5)
    for runner_id, count in plan:
        done = 0
        while done < count:
            size = min(batch, count - done)
            with database.atomic():
                Job.insert_many([full_job(runner_id, project_id, done + i + 1) for i in range(size)]).execute()
            done += size
            bar.update(size)
        Runner.update(job_count=count, last_seq=count).where(Runner.id == runner_id).execute()
    bar.close()


def open_store(url):
    db.open_and_migrate(url)
    database.connect(reuse_if_open=True)
