"""The Opik API's blueprint: every route parses with a schema, calls one domain function,
and dumps with a schema. app.py registers it at the root and under /api."""
import json

from flask import Blueprint, Response, g

from .. import __version__
from ..domain import bridge, jobs, listing, ownership, pairing, projects, runners, traces
from ..schemas.requests import (
    ActivateRequest, AgentsRequest, BridgeGetQuery, BridgeNextRequest, BridgeResultRequest, BridgeSubmitRequest,
    CreateJobRequest, CreateSessionRequest, HeartbeatRequest, JobResultRequest, ListJobsQuery, ListProjectsQuery,
    ListRunnersQuery, LogEntrySchema, LogsQuery, ProjectRetrieveRequest, ProjectWriteRequest, SpanBatchRequest,
    SpansQuery, TelemetryDocument, TraceBatchRequest,
)
from ..schemas.responses import (
    BridgeBatchSchema, BridgeCommandSchema, CreateSessionResponse, HeartbeatResponse, ProjectSchema, RunnerSchema,
    TelemetrySchema, runner_page, span_page,
)
from ..errors import failure
from .messages import created, load_body, load_query, no_content, paged, read_json, respond, schema_of, settings

api = Blueprint("api", __name__)


# -- health


@api.get("/is-alive/ping")
def ping():
    return respond({"healthy": True})


@api.get("/is-alive/ver")
def version():
    return respond({"version": __version__})


# -- projects


@api.post("/v1/private/projects/retrieve")
def retrieve_project():
    query = load_body(ProjectRetrieveRequest)
    return respond(schema_of(ProjectSchema).dump(projects.retrieve_project(g.caller, query["name"])))


@api.get("/v1/private/projects")
def list_projects():
    q = load_query(ListProjectsQuery)
    total, found = projects.list_projects(g.caller, q["page"], q["size"], q["name"])
    return respond({"page": q["page"], "size": q["size"], "total": total,
                    "content": schema_of(ProjectSchema).dump(found, many=True), "sortable_by": []})


@api.post("/v1/private/projects")
def create_project():
    project = projects.create_project(g.caller, load_body(ProjectWriteRequest))
    return created(".get_project", project_id=project.id)


@api.get("/v1/private/projects/<uuid:project_id>")
def get_project(project_id):
    return respond(schema_of(ProjectSchema).dump(projects.get_project(g.caller, project_id)))


# -- pairing


@api.post("/v1/private/pairing/sessions")
def create_pairing_session():
    session = pairing.create_session(settings(), g.caller, load_body(CreateSessionRequest))
    body = {"session_id": session.id, "runner_id": session.runner_id}
    return respond(schema_of(CreateSessionResponse).dump(body), 201)


@api.post("/v1/private/pairing/sessions/<uuid:session_id>/activate")
def activate_pairing_session(session_id):
    body = load_body(ActivateRequest)
    runner_id = pairing.activate_session(settings(), g.caller, session_id, body["runner_name"], body["hmac"])
    return created(".get_runner", runner_id=runner_id)


# -- runners


@api.get("/v1/private/local-runners")
def list_runners():
    q = load_query(ListRunnersQuery)
    found = runners.list_runners(g.caller, q["project_id"], q["status"], q["page"], q["size"])
    return paged(runner_page, q["page"], q["size"], found)


@api.get("/v1/private/local-runners/<uuid:runner_id>")
def get_runner(runner_id):
    return respond(schema_of(RunnerSchema).dump(ownership.get_runner(g.caller, runner_id)))


@api.delete("/v1/private/local-runners/<uuid:runner_id>")
def disconnect_runner(runner_id):
    runners.disconnect_runner(g.caller, runner_id)
    return no_content()


@api.put("/v1/private/local-runners/<uuid:runner_id>/agents")
def register_agents(runner_id):
    agents = schema_of(AgentsRequest).load({"agents": read_json()})["agents"]
    runners.register_agents(g.caller, runner_id, agents)
    return no_content()


@api.patch("/v1/private/local-runners/<uuid:runner_id>/checklist")
def patch_checklist(runner_id):
    runners.patch_checklist(g.caller, runner_id, read_json())
    return no_content()


@api.post("/v1/private/local-runners/<uuid:runner_id>/heartbeats")
def heartbeat(runner_id):
    body = load_body(HeartbeatRequest, required=False)
    cancelled = runners.heartbeat(settings(), g.caller, runner_id, body.get("capabilities"))
    return respond(schema_of(HeartbeatResponse).dump({"cancelled_job_ids": cancelled}))


# -- jobs


@api.get("/v1/private/local-runners/<uuid:runner_id>/jobs")
def list_jobs(runner_id):
    q = load_query(ListJobsQuery)
    counts = ""
    if q["filtered"]:  # the extensions: status and agent_name filters, counts per status
        total, documents, found = listing.list_filtered_jobs(
            g.caller, runner_id, q["project_id"], q["page"], q["size"], q["status"], q["agent_name"]
        )
        counts = f',"counts":{json.dumps(found, separators=(",", ":"))}' if q["counts"] else ""
    else:
        total, documents = listing.list_jobs(g.caller, runner_id, q["project_id"], q["page"], q["size"])
    # The jobs are stored already rendered by JobSchema (jobs.apply); the page is
    # joined around them rather than parsed and dumped again: this is the hot path.
    body = f'{{"page":{q["page"]},"size":{q["size"]},"total":{total},"content":[{",".join(documents)}]{counts}}}'
    return Response(body, mimetype="application/json")


@api.post("/v1/private/local-runners/<uuid:runner_id>/jobs/next")
def next_job(runner_id):
    job = jobs.next_job(settings(), g.caller, runner_id)
    # 200 with the literal body `null` when nothing came, never 204 (the CLI needs JSON).
    return Response("null" if job is None else job.document, mimetype="application/json")


@api.post("/v1/private/local-runners/jobs")
def create_job():
    job = jobs.create_job(settings(), g.caller, load_body(CreateJobRequest))
    return created(".get_job", job_id=job.id)


@api.get("/v1/private/local-runners/jobs/<uuid:job_id>")
def get_job(job_id):
    return Response(ownership.get_job(g.caller, job_id).document, mimetype="application/json")


@api.post("/v1/private/local-runners/jobs/<uuid:job_id>/results")
def report_job_result(job_id):
    jobs.report_job_result(g.caller, job_id, load_body(JobResultRequest))
    return no_content()


@api.post("/v1/private/local-runners/jobs/<uuid:job_id>/cancel")
def cancel_job(job_id):
    jobs.cancel_job(g.caller, job_id)
    return no_content()


@api.get("/v1/private/local-runners/jobs/<uuid:job_id>/logs")
def get_job_logs(job_id):
    q = load_query(LogsQuery)
    return respond(jobs.get_job_logs(g.caller, job_id, q["offset"]))


@api.post("/v1/private/local-runners/jobs/<uuid:job_id>/logs")
def append_job_logs(job_id):
    body = read_json()
    if not isinstance(body, list):
        raise failure(400, "Unable to process JSON. Expected a JSON array of log entries")
    entries = LogEntrySchema(many=True).load(body)
    jobs.append_job_logs(g.caller, job_id, entries)
    return no_content()


# -- bridge commands


@api.post("/v1/private/local-runners/<uuid:runner_id>/bridge/commands")
def submit_bridge_command(runner_id):
    command = bridge.submit_command(settings(), g.caller, runner_id, load_body(BridgeSubmitRequest))
    return created(".get_bridge_command", {"command_id": str(command.id)}, runner_id=runner_id, command_id=command.id)


@api.post("/v1/private/local-runners/<uuid:runner_id>/bridge/commands/next")
def next_bridge_commands(runner_id):
    body = load_body(BridgeNextRequest, required=False)
    commands = bridge.next_commands(settings(), g.caller, runner_id, body.get("max_commands"))
    return respond(schema_of(BridgeBatchSchema).dump({"commands": commands}))


@api.post("/v1/private/local-runners/<uuid:runner_id>/bridge/commands/<uuid:command_id>/results")
def report_bridge_result(runner_id, command_id):
    bridge.report_result(g.caller, runner_id, command_id, load_body(BridgeResultRequest))
    return no_content()


@api.get("/v1/private/local-runners/<uuid:runner_id>/bridge/commands/<uuid:command_id>")
def get_bridge_command(runner_id, command_id):
    q = load_query(BridgeGetQuery)
    command = bridge.get_command(g.caller, runner_id, command_id, q["wait"], q["timeout"])
    return respond(schema_of(BridgeCommandSchema).dump(command))


# -- trace sink


@api.post("/v1/private/traces/batch")
def create_traces():
    traces.store_traces(g.caller, load_body(TraceBatchRequest)["traces"])
    return no_content()


@api.post("/v1/private/spans/batch")
def create_spans():
    traces.store_spans(g.caller, load_body(SpanBatchRequest)["spans"])
    return no_content()


@api.patch("/v1/private/traces/<uuid:trace_id>")
def update_trace(trace_id):
    traces.store_traces(g.caller, [{**load_body(TelemetryDocument), "id": str(trace_id)}])
    return no_content()


@api.patch("/v1/private/spans/<uuid:span_id>")
def update_span(span_id):
    traces.store_spans(g.caller, [{**load_body(TelemetryDocument), "id": str(span_id)}])
    return no_content()


@api.get("/v1/private/traces/<uuid:trace_id>")
def get_trace(trace_id):
    return respond(schema_of(TelemetrySchema).dump(traces.get_trace(g.caller, trace_id)))


@api.get("/v1/private/spans")
def list_spans():
    q = load_query(SpansQuery)
    return paged(span_page, q["page"], q["size"], traces.list_spans(g.caller, q["trace_id"], q["page"], q["size"]))
