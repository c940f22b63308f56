"""The state document (state.py) with a database and settings only: export, wipe and load.

What was exported, wiped and loaded again must answer every read of the API byte for byte
(the pages, runners, jobs, logs, commands, traces) and export the same document; a document
that will not load is a StateError naming the item, and writes nothing."""
import base64
import json
import os
import uuid

import pytest

from opik_runners.domain import bridge, jobs, listing, ownership, pairing, projects, runners, traces
from opik_runners.clock import iso_utc
from opik_runners.schemas import responses
from opik_runners.control.state.document import StateError
from opik_runners.control.state.export import export_state
from opik_runners.control.state.seed import load_state
from opik_runners.control.state.wipe import wipe
from opik_runners.protocol import activation_hmac_text
from opik_runners.store import wakeups
from opik_runners.store.models import (
    SECOND, BridgeCommand, BridgeRate, Job, JobLog, MaintenanceTask, PairingSession, Project, Runner, Span, Trace,
    database, now_us,
)
from tests.support.threads import Task, join_all
from tests.support.waiting import wait_until

ME = ownership.Caller("default", "admin")
BOB = ownership.Caller("default", "bob")
TEAM = ownership.Caller("team-b", "admin")
TABLES = [Project, Runner, Job, JobLog, PairingSession, BridgeCommand, BridgeRate, Trace, Span]


def project(caller, name="demo"):
    found = Project.get_or_none((Project.workspace == caller.workspace) & (Project.name == name))
    return found.id if found else projects.create_project(caller, {"name": name}).id


def activate(settings, caller, project_id, runner_type="endpoint", name="runner-1"):
    key = os.urandom(32)
    session = pairing.create_session(settings, caller, {
        "project_id": project_id, "activation_key": base64.b64encode(key).decode(), "ttl_seconds": 300,
        "type": runner_type,
    })
    return pairing.activate_session(settings, caller, session.id, name, activation_hmac_text(session.id, key, name))


def new_job(settings, caller, project_id, **extra):
    return jobs.create_job(settings, caller, {"agent_name": "answer", "project_id": project_id, **extra}).id


def build_everything(settings):
    """A store as the API leaves it: each kind of row in each state, two workspaces, two users,
    a detached runner, a gap in a runner's numbering."""
    made = {"runners": []}
    for caller in (ME, BOB, TEAM):
        project_id = project(caller)
        runner_id = activate(settings, caller, project_id)
        runners.register_agents(caller, runner_id, {"answer": {"description": "d", "params": [
            {"name": "question", "type": "string", "presence": "required"}], "timeout": 0}})
        runners.patch_checklist(caller, runner_id, {"files": {"a.py": {"size": 3}}, "ok": True})
        ids = [new_job(settings, caller, project_id, inputs={"question": f"q{i}", "n": 1.5}) for i in range(7)]
        jobs.claim_next_job(runner_id)
        jobs.report_job_result(caller, ids[0], {"status": "completed", "result": {"answer": "4"},
                                                "trace_id": uuid.uuid4()})
        jobs.append_job_logs(caller, ids[0], [{"stream": "stdout", "text": "hi"}, {"stream": "stderr", "text": "é"}])
        jobs.claim_next_job(runner_id)
        jobs.report_job_result(caller, ids[1], {"status": "failed", "error": "boom"})
        jobs.claim_next_job(runner_id)
        jobs.cancel_job(caller, ids[2])  # running, then cancelled: announced at the next heartbeat
        jobs.cancel_job(caller, ids[3])  # pending, then cancelled
        jobs.claim_next_job(runner_id)  # ids[4] stays running
        made["runners"].append((caller, runner_id, project_id))
    # Every field a job can hold.
    mask, prompt = uuid.uuid4(), uuid.uuid4()
    new_job(settings, ME, made["runners"][0][2], mask_id=mask, prompt_masks={str(prompt): str(mask)},
            blueprint_name="bp", metadata={"dataset_id": str(uuid.uuid4())}, inputs={"question": "all", "x": [1, None]})
    # A finished job expired: the runner's numbering has a gap.
    gapped = made["runners"][1][1]
    oldest = Job.select().where((Job.runner == gapped) & (Job.status == "completed")).get()
    Job.update(completed_at=1).where(Job.id == oldest.id).execute()
    assert jobs.expire_finished_jobs(2) == 1
    assert Runner.get_by_id(gapped).last_seq != Runner.get_by_id(gapped).job_count
    # A detached runner, its open jobs failed, and a new runner of the same user and project.
    old = activate(settings, ME, project(ME, "other"), name="old")
    runners.register_agents(ME, old, {"answer": {"timeout": 0}})
    new_job(settings, ME, project(ME, "other"))
    runners.disconnect_runner(ME, old)
    made["runners"].append((ME, activate(settings, ME, project(ME, "other"), name="new"), project(ME, "other")))
    # A connect runner with bridge commands pending, picked up and finished.
    connect = activate(settings, ME, made["runners"][0][2], runner_type="connect", name="daemon")
    runners.heartbeat(settings, ME, connect, ["jobs", "bridge"])
    commands = [bridge.submit_command(settings, ME, connect, {"type": kind, "args": {"path": f"f{i}"}})
                for i, kind in enumerate(["ReadFile", "Exec", "WriteFile"])]
    bridge.claim_commands(connect, 2)
    bridge.report_result(ME, connect, commands[0].id, {"status": "completed", "result": {"content": "x"},
                                                       "duration_ms": 12})
    made["connect"] = connect
    made["commands"] = [c.id for c in commands]
    # A pairing session never activated, traces and spans (one files its project by name).
    pairing.create_session(settings, TEAM, {"project_id": project(TEAM), "ttl_seconds": 120, "type": "connect",
                                            "activation_key": base64.b64encode(os.urandom(32)).decode()})
    trace_id = uuid.uuid4()
    traces.store_traces(ME, [{"id": str(trace_id), "name": "t", "project_name": "traced", "input": {"a": 1}}])
    traces.store_spans(ME, [{"id": str(uuid.uuid4()), "trace_id": str(trace_id), "name": f"s{i}"} for i in range(2)])
    traces.store_traces(TEAM, [{"id": str(uuid.uuid4()), "name": "t2"}])
    made["trace"] = trace_id
    return made


def listing_page(caller, runner_id, project_id, page, size):
    """GET .../{runnerId}/jobs as api.py joins it."""
    total, documents = listing.list_jobs(caller, runner_id, project_id, page, size)
    return f'{{"page":{page},"size":{size},"total":{total},"content":[{",".join(documents)}]}}'


def dump(schema, value):
    return json.dumps(schema.dump(value), separators=(",", ":"))


def reads(made):
    """What the API answers about everything made, as the bytes it sends."""
    seen = {}
    for caller, runner_id, project_id in made["runners"]:
        for page, size in ((0, 25), (0, 3), (1, 3), (2, 3), (5, 3)):
            seen[f"jobs {runner_id} {page} {size}"] = listing_page(caller, runner_id, None, page, size)
        seen[f"jobs {runner_id} project"] = listing_page(caller, runner_id, project_id, 0, 25)
        seen[f"runner {runner_id}"] = dump(responses.RunnerSchema(), ownership.get_runner(caller, runner_id))
        seen[f"runners {caller} {project_id}"] = dump(
            responses.runner_page, dict(zip(("total", "content"), runners.list_runners(caller, project_id, None, 0, 25)))
        )
        seen[f"project {project_id}"] = dump(responses.ProjectSchema(), projects.get_project(caller, project_id))
        for job in Job.select(Job.id).where(Job.runner == runner_id):
            seen[f"job {job.id}"] = ownership.get_job(caller, job.id).document
            seen[f"logs {job.id}"] = json.dumps(jobs.get_job_logs(caller, job.id, 0))
    for command_id in made["commands"]:
        seen[f"command {command_id}"] = dump(responses.BridgeCommandSchema(),
                                             bridge.get_command(ME, made["connect"], command_id, False, 0))
    seen["trace"] = dump(responses.TelemetrySchema(), traces.get_trace(ME, made["trace"]))
    seen["spans"] = dump(responses.span_page, dict(zip(("total", "content"), traces.list_spans(ME, made["trace"], 0, 25))))
    return seen


def text(document):
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def row_counts():
    return {model.__name__: model.select().count() for model in TABLES}


def test_export_wipe_load_answers_every_read_byte_for_byte(settings):
    made = build_everything(settings)
    before, exported = reads(made), text(export_state())
    wipe()
    assert set(row_counts().values()) == {0}
    loaded = load_state(settings, json.loads(exported))
    assert loaded == {"projects": 4, "runners": 6, "jobs": 22, "job_logs": 4, "pairing_sessions": 7,
                      "bridge_commands": 3, "traces": 2, "spans": 2}
    assert reads(made) == before
    assert text(export_state()) == exported
    # The gap is closed: every runner's jobs are numbered 1..n again.
    for runner in Runner.select():
        seqs = [job.seq for job in Job.select(Job.seq).where(Job.runner == runner.id).order_by(Job.seq)]
        assert seqs == list(range(1, len(seqs) + 1)) and runner.job_count == runner.last_seq == len(seqs)


def test_the_loaded_store_goes_on_working(settings):
    made = build_everything(settings)
    exported = export_state()
    wipe()
    load_state(settings, exported)
    caller, runner_id, project_id = made["runners"][0]
    # The running job cancelled before the export is still to be announced; then no more.
    assert len(runners.heartbeat(settings, caller, runner_id, None)) == 1
    assert runners.heartbeat(settings, caller, runner_id, None) == []
    # The oldest pending job is claimed first; a new job is numbered after the loaded ones.
    pending = [j["id"] for j in exported["jobs"] if j["runner_id"] == str(runner_id) and j["status"] == "pending"]
    assert str(jobs.claim_next_job(runner_id).id) == pending[0]
    job_id = new_job(settings, caller, project_id)
    assert Job.get_by_id(job_id).seq == Runner.get_by_id(runner_id).job_count
    assert json.loads(listing_page(caller, runner_id, None, 0, 1))["content"][0]["id"] == str(job_id)
    # The pending bridge command is polled, and the picked-up one takes its result.
    assert [c.id for c in bridge.claim_commands(made["connect"], 10)] == [made["commands"][2]]
    bridge.report_result(ME, made["connect"], made["commands"][1], {"status": "failed", "error": {"e": 1}})


def test_a_workspace_exports_wipes_and_loads_alone(settings):
    build_everything(settings)
    team, others = text(export_state("team-b")), text(export_state("default"))
    assert json.loads(team)["workspace"] == "team-b"
    assert {r["workspace"] for r in json.loads(team)["runners"]} == {"team-b"}
    wipe("team-b")
    assert text(export_state("team-b")) == text({"version": 1, "workspace": "team-b", "projects": [],
                                                       "runners": [], "jobs": [], "pairing_sessions": [],
                                                       "bridge_commands": [], "traces": [], "spans": []})
    assert text(export_state("default")) == others
    load_state(settings, json.loads(team))
    assert text(export_state("team-b")) == team
    assert text(export_state("default")) == others


def test_wipe_deletes_every_domain_row_and_nothing_else(settings):
    made = build_everything(settings)
    bridge.count_command(made["connect"], False)
    assert BridgeRate.select().count() == 1
    maintenance_rows = MaintenanceTask.select().count()
    wipe("default")
    left = row_counts()
    assert left["BridgeRate"] == left["BridgeCommand"] == 0
    assert {r.workspace for r in Runner.select()} == {p.workspace for p in Project.select()} == {"team-b"}
    assert left["Job"] == 7 and left["PairingSession"] == 2 and left["Trace"] == 1 and left["Span"] == 0
    wipe()
    assert set(row_counts().values()) == {0}
    assert MaintenanceTask.select().count() == maintenance_rows  # not a domain row


def test_a_hand_written_seed_gets_what_it_leaves_out(settings):
    agents = {"answer": {"params": [{"name": "question", "type": "string", "presence": None}], "timeout": 7}}
    loaded = load_state(settings, {"runners": [{"project": "demo", "agents": agents}]})
    assert loaded["projects"] == loaded["runners"] == 1
    runner = Runner.get()
    assert (runner.workspace, runner.user_name, runner.type, runner.name) == \
        ("default", "admin", "endpoint", f"endpoint-{str(runner.id)[:8]}")
    assert runner.status == "connected"
    assert runner.heartbeat_expires_at - runner.connected_at == settings.heartbeat_ttl * SECOND
    assert runner.agents == {"answer": {"params": [{"name": "question", "type": "string"}], "timeout": 7}}
    statuses = ["pending", "running", "completed", "failed", "cancelled", "pending"]
    load_state(settings, {"jobs": [{"runner_id": str(runner.id), "agent_name": "answer", "status": s}
                                         for s in statuses]})
    loaded_jobs = list(Job.select().order_by(Job.seq))
    assert [(j.seq, j.status, j.timeout) for j in loaded_jobs] == [(i + 1, s, 7) for i, s in enumerate(statuses)]
    for job in loaded_jobs:
        assert (job.started_at is not None) == (job.status == "running")
        assert (job.completed_at is not None) == (job.status in ("completed", "failed", "cancelled"))
        assert job.document == jobs.render(job) and job.project_id == runner.project_id
    assert (Runner.get().job_count, Runner.get().last_seq) == (6, 6)
    # Routing and the claim see the seed as they see paired runners and created jobs.
    assert Job.get_by_id(new_job(settings, ME, runner.project_id)).seq == 7
    assert jobs.claim_next_job(runner.id).id == loaded_jobs[0].id


def test_jobs_for_a_stored_runner_are_numbered_after_its_own(settings):
    project_id = project(ME)
    runner_id = activate(settings, ME, project_id)
    runners.register_agents(ME, runner_id, {"answer": {"timeout": 0}})
    first = new_job(settings, ME, project_id)
    load_state(settings, {"jobs": [{"runner_id": str(runner_id), "agent_name": "answer"}] * 1
                                + [{"runner_id": str(runner_id), "agent_name": "answer", "status": "completed"}]})
    page = json.loads(listing_page(ME, runner_id, None, 0, 25))
    assert page["total"] == 3 and page["content"][-1]["id"] == str(first)
    assert [job.seq for job in Job.select().order_by(Job.seq)] == [1, 2, 3]
    assert (Runner.get_by_id(runner_id).job_count, Runner.get_by_id(runner_id).last_seq) == (3, 3)


def test_a_runners_status_says_what_it_should_be(settings):
    now = now_us()
    ahead, past = iso_utc(now + 600 * SECOND), iso_utc(now - 600 * SECOND)
    rows = [
        {"status": "connected", "heartbeat_expires_at": ahead},  # kept
        {"status": "connected", "heartbeat_expires_at": past},  # refreshed
        {"status": "disconnected", "heartbeat_expires_at": past},  # kept
        {"status": "disconnected", "heartbeat_expires_at": ahead},  # made now
        {"heartbeat_expires_at": past},  # connected by default
        {"detached_at": past},  # disconnected by default
    ]
    load_state(settings, {"runners": [{"project": "demo", "name": f"r{i}", **row} for i, row in enumerate(rows)]})
    found = {r.name: r for r in Runner.select()}
    assert [found[f"r{i}"].status for i in range(6)] == ["connected", "connected", "disconnected", "disconnected",
                                                         "connected", "disconnected"]
    assert iso_utc(found["r0"].heartbeat_expires_at) == ahead
    assert iso_utc(found["r2"].heartbeat_expires_at) == past
    assert found["r3"].heartbeat_expires_at <= now_us()
    assert ownership.find_runner(ME, found["r5"].id) is None  # detached: no caller sees it


RUNNER_ID = "0190d2b4-0000-7000-8000-000000000001"
GOOD_RUNNER = {"id": RUNNER_ID, "project": "demo", "agents": {"answer": {}}}


def job(**fields):
    return {"runner_id": RUNNER_ID, "agent_name": "answer", **fields}


@pytest.mark.parametrize("document, message", [
    ([], "a state document is a JSON object, got list"),
    ({"version": 2}, "version: 2 is not a version this server reads (1)"),
    ({"runners": [GOOD_RUNNER, {**GOOD_RUNNER, "id": None, "stauts": "connected"}]},
     "runners[1].stauts: Unknown field."),
    ({"runners": [{"project": "demo", "id": "nope"}]}, "runners[0].id: Not a valid UUID."),
    ({"runners": [{"project_id": RUNNER_ID}]}, "runners[0].project_id: no such project"),
    ({"runners": [{"name": "x"}]}, "runners[0]: give project_id or project (a name)"),
    ({"runners": [{**GOOD_RUNNER, "status": "connected", "detached_at": "2026-01-01T00:00:00Z"}]},
     "runners[0].status: a detached runner is not connected"),
    ({"runners": [{**GOOD_RUNNER, "connected_at": "yesterday"}]},
     "runners[0].connected_at: must be an ISO-8601 time such as 2026-05-01T12:00:00Z"),
    ({"runners": [{**GOOD_RUNNER, "agents": {"answer": {"timeout": "soon"}}}]},
     "runners[0].agents.answer: timeout: 'soon' is not a valid integer"),
    ({"runners": [{**GOOD_RUNNER, "capabilities": ["Bridge"]}]}, "runners[0].capabilities[0]: must match [a-z_]+"),
    ({"runners": [GOOD_RUNNER, GOOD_RUNNER]}, f"runners[1].id: {RUNNER_ID} is also runners[0]"),
    ({"runners": [GOOD_RUNNER], "jobs": [job(runner_id="0190d2b4-0000-7000-8000-000000000002")]},
     "jobs[0].runner_id: no such runner"),
    ({"runners": [GOOD_RUNNER], "jobs": [job(), job(status="pending", started_at="2026-01-01T00:00:00Z")]},
     "jobs[1].started_at: a pending job has not started"),
    ({"runners": [GOOD_RUNNER], "jobs": [job(status="running", completed_at="2026-01-01T00:00:00Z")]},
     "jobs[0].completed_at: a running job has not finished"),
    ({"runners": [GOOD_RUNNER], "jobs": [job(status="completed", cancel_unannounced=True)]},
     "jobs[0].cancel_unannounced: only a cancelled job is announced as cancelled"),
    ({"runners": [GOOD_RUNNER], "jobs": [job(status="done")]},
     "jobs[0].status: Must be one of: pending, running, completed, failed, cancelled."),
    ({"runners": [GOOD_RUNNER], "jobs": [job(agent_name="a" * 256)]},
     "jobs[0].agent_name: Length must be between 1 and 255."),
    ({"runners": [GOOD_RUNNER], "jobs": [job(inputs={"text": "nul \x00"})]},
     "the document holds a NUL character (\\u0000), which the stores cannot keep"),
    ({"runners": [GOOD_RUNNER], "jobs": [job(inputs={"x": float("nan")})]},
     "the document is not plain JSON: Out of range float values are not JSON compliant"),
    ({"projects": [{"name": "demo"}, {"name": "demo"}]},
     "projects[1].name: workspace 'default' has a project named 'demo' already"),
    ({"workspace": "a", "runners": [{**GOOD_RUNNER, "workspace": "b"}]},
     "runners[0].workspace: 'b' is not the document's workspace 'a'"),
    ({"runners": [GOOD_RUNNER], "pairing_sessions": [{"project": "demo", "activation_key": "c2hvcnQ="}]},
     "pairing_sessions[0].activation_key: must be the base64 of 32 bytes"),
    ({"runners": [GOOD_RUNNER], "bridge_commands": [{"runner_id": RUNNER_ID, "type": "Exec", "args": {},
                                                     "result": {"x": 1}}]},
     "bridge_commands[0].result: a pending command has none"),
    ({"runners": [GOOD_RUNNER], "bridge_commands": [{"runner_id": RUNNER_ID, "type": "Exec", "args": {},
                                                     "timeout_seconds": 500}]},
     "bridge_commands[0].timeout_seconds: Must be greater than or equal to 1 and less than or equal to 120."),
])
def test_a_document_that_will_not_load_names_what_and_where_and_writes_nothing(settings, document, message):
    project(ME, "stored")
    before = text(export_state())
    with pytest.raises(StateError) as refused:
        load_state(settings, document)
    assert str(refused.value) == message
    assert text(export_state()) == before


def test_a_conflict_found_only_by_the_store_rolls_back_what_was_written(settings):
    trace_id = str(uuid.uuid4())
    traces.store_traces(ME, [{"id": trace_id, "name": "stored"}])
    before = text(export_state())
    document = {"runners": [GOOD_RUNNER], "jobs": [job()], "traces": [{"data": {"id": trace_id}}]}
    with pytest.raises(StateError) as refused:
        load_state(settings, document)
    assert str(refused.value).startswith("the document conflicts with the stored data: ")
    assert text(export_state()) == before


def test_stored_ids_and_names_are_refused(settings):
    runner_id = activate(settings, ME, project(ME))
    with pytest.raises(StateError, match=rf"^runners\[0\]\.id: {runner_id} exists already$"):
        load_state(settings, {"runners": [{"id": str(runner_id), "project": "demo"}]})
    with pytest.raises(StateError, match=r"^projects\[0\]\.name: workspace 'default' has a project named"):
        load_state(settings, {"projects": [{"name": "demo"}]})
    with pytest.raises(StateError, match=r"^runners\[0\]\.project_id: the project is in workspace 'default', "
                                               r"not 'team-b'$"):
        load_state(settings, {"runners": [{"workspace": "team-b", "project_id": str(project(ME))}]})


def test_a_loaded_pending_job_wakes_a_held_poll(settings):
    load_state(settings, {"runners": [GOOD_RUNNER]})
    held = settings._replace(job_poll_timeout=120)  # far past the join below: only a wake-up ends it early
    database.obj.start_watcher()  # as a server's: it passes on the wake-up once the load commits
    got = []

    def poll():
        with database.connection_context():
            got.append(jobs.next_job(held, ME, uuid.UUID(RUNNER_ID)))

    poller = Task(poll)
    poller.start()
    wait_until(lambda: wakeups._waiters)  # the poll is waiting
    load_state(settings, {"jobs": [job(id="0190d2b4-0000-7000-8000-0000000000aa")]})
    join_all([poller], timeout=30, what="held polls")
    assert str(got[0].id) == "0190d2b4-0000-7000-8000-0000000000aa"
