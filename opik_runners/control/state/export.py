"""Export: every row of the store, or of one workspace, as one state document (what
GET /_admin/state answers, and what the load takes back)."""
from ...clock import iso_utc
from ...store.models import BridgeCommand, Job, JobLog, PairingSession, Project, Runner, Span, Trace, now_us
from .document import VERSION


def compact(item):
    """Absent beats null, as in the API's documents."""
    return {key: value for key, value in item.items() if value is not None}


def instant(us):
    return None if us is None else iso_utc(us)


def uuid_text(value):
    return None if value is None else str(value)


def in_workspace(model, workspace):
    query = model.select()
    return query if workspace is None else query.where(model.workspace == workspace)


def export_state(workspace=None):
    """Every row of the store (or of one workspace) as one JSON-able document, which
    load_state takes back. Call with a connection open."""
    now = now_us()
    runners = in_workspace(Runner, workspace)
    runner_ids = runners.select(Runner.id)
    job_rows = Job.select().where(Job.runner.in_(runner_ids)) if workspace else Job.select()
    logs = {}
    log_rows = JobLog.select(JobLog.job, JobLog.stream, JobLog.text)
    if workspace is not None:
        log_rows = log_rows.where(JobLog.job.in_(job_rows.select(Job.id)))
    for job_id, stream, text in log_rows.order_by(JobLog.id).tuples():
        logs.setdefault(job_id, []).append({"stream": stream, "text": text})
    commands = BridgeCommand.select()
    if workspace is not None:
        commands = commands.where(BridgeCommand.runner.in_(runner_ids))
    document = {"version": VERSION}
    if workspace is not None:
        document["workspace"] = workspace
    document["projects"] = [
        compact({
            "id": str(p.id), "workspace": p.workspace, "name": p.name, "description": p.description,
            "visibility": p.visibility, "created_at": instant(p.created_at), "created_by": p.created_by,
            "last_updated_at": instant(p.last_updated_at), "last_updated_by": p.last_updated_by,
        })
        for p in in_workspace(Project, workspace).order_by(Project.id)
    ]
    document["runners"] = [
        compact({
            "id": str(r.id), "workspace": r.workspace, "user": r.user_name, "project_id": str(r.project_id),
            "type": r.type, "name": r.name,
            "status": "connected" if r.heartbeat_expires_at > now and r.detached_at is None else "disconnected",
            "connected_at": instant(r.connected_at), "heartbeat_expires_at": instant(r.heartbeat_expires_at),
            "detached_at": instant(r.detached_at), "capabilities": r.capabilities, "agents": r.agents,
            "checklist": r.checklist,
        })
        for r in runners.order_by(Runner.id)
    ]
    document["jobs"] = [
        compact({
            "id": str(j.id), "runner_id": str(j.runner_id), "project_id": str(j.project_id),
            "agent_name": j.agent_name, "status": j.status, "inputs": j.inputs, "result": j.result, "error": j.error,
            "trace_id": uuid_text(j.trace_id), "mask_id": uuid_text(j.mask_id), "prompt_masks": j.prompt_masks,
            "blueprint_name": j.blueprint_name, "metadata": j.metadata, "timeout": j.timeout,
            "created_at": instant(j.created_at), "started_at": instant(j.started_at),
            "completed_at": instant(j.completed_at), "cancel_unannounced": j.cancel_unannounced or None,
            "logs": logs.get(j.id),
        })
        for j in job_rows.order_by(Job.runner, Job.seq)
    ]
    document["pairing_sessions"] = [
        compact({
            "id": str(s.id), "workspace": s.workspace, "user": s.user_name, "project_id": str(s.project_id),
            "runner_id": str(s.runner_id), "type": s.type, "activation_key": s.activation_key,
            "created_at": instant(s.created_at), "expires_at": instant(s.expires_at), "activated": s.activated,
        })
        for s in in_workspace(PairingSession, workspace).order_by(PairingSession.id)
    ]
    document["bridge_commands"] = [
        compact({
            "id": str(c.id), "runner_id": str(c.runner_id), "type": c.type, "args": c.args,
            "timeout_seconds": c.timeout_seconds, "status": c.status, "submitted_at": instant(c.submitted_at),
            "picked_up_at": instant(c.picked_up_at), "completed_at": instant(c.completed_at), "result": c.result,
            "error": c.error, "duration_ms": c.duration_ms, "expires_at": instant(c.expires_at),
        })
        for c in commands.order_by(BridgeCommand.id)
    ]
    document["traces"] = [
        compact({"id": str(t.id), "workspace": t.workspace, "project_id": uuid_text(t.project_id), "data": t.data})
        for t in in_workspace(Trace, workspace).order_by(Trace.id)
    ]
    document["spans"] = [
        compact({
            "id": str(s.id), "workspace": s.workspace, "trace_id": uuid_text(s.trace_id),
            "project_id": uuid_text(s.project_id), "data": s.data,
        })
        for s in in_workspace(Span, workspace).order_by(Span.id)
    ]
    return document
