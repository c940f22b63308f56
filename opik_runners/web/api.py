"""The one blueprint: every route parses with a schema, calls one domain function,
and dumps with a schema. app.py registers it at the root and under /api."""
import functools
import json
import zlib

from flask import Blueprint, Response, current_app, g, request, url_for

from .. import __version__
from ..domain import bridge, jobs, listing, ownership, pairing, projects, runners, traces
from ..schemas.requests import (
    ActivateRequest, AgentsRequest, BridgeGetQuery, BridgeNextRequest, BridgeResultRequest,
    BridgeSubmitRequest, CreateJobRequest, CreateSessionRequest, HeartbeatRequest, JobResultRequest,
    ListJobsQuery, ListProjectsQuery, ListRunnersQuery, LogEntrySchema, LogsQuery, ProjectRetrieveRequest,
    ProjectWriteRequest, SpanBatchRequest, SpansQuery, TelemetryDocument, TraceBatchRequest,
)
from ..schemas.responses import (
    BridgeBatchSchema, BridgeCommandSchema, CreateSessionResponse, HeartbeatResponse, ProjectSchema, RunnerSchema, TelemetrySchema, runner_page, span_page,
)
from ..errors import error, failure
from ..domain.limits import MAX_REQUEST_BYTES

api = Blueprint("api", __name__)


# -- helpers


def settings():
    """The app's Settings (app.create_app), which the domain rules take as an argument."""
    return current_app.extensions["opik_runners"]


def requested_workspace():
    """The workspace a request names: `Comet-Workspace`, else `workspace_name`, else `default`."""
    # From the environ: werkzeug's headers.get and args.get raise and catch a KeyError for
    # each name a request lacks (nearly every request lacks both), and a held poll kept it.
    # The query is parsed only when it could name one: spelled out, or percent-encoded.
    environ = request.environ
    workspace = environ.get("HTTP_COMET_WORKSPACE")
    query = environ.get("QUERY_STRING", "")
    if not workspace and ("workspace_name" in query or "%" in query):
        workspace = request.args.get("workspace_name")
    return workspace or "default"


def has_body(environ):
    """Whether a request sends a body: `Content-Length: 0` (the CLI's polls) does not."""
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "")
    return environ.get("CONTENT_LENGTH", "") not in ("", "0") or chunked


def respond(body, status=200, headers=None):
    return Response(json.dumps(body, separators=(",", ":")), status, headers, mimetype="application/json")


def no_content():
    return Response(status=204)


def created(location_endpoint, body=None, **values):
    """201 with the new resource's URL in Location; a body only where Opik sends one."""
    headers = {"Location": url_for(location_endpoint, _external=True, **values)}
    return Response(status=201, headers=headers) if body is None else respond(body, 201, headers)


def inflate(raw):
    """Undo `Content-Encoding: gzip` (the CLI gzips bodies of 256 bytes or more).

    zlib rather than gzip.decompress because zlib can stop at a size: a small
    bomb must not inflate to gigabytes before it is refused.
    """
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        body = inflater.decompress(raw, MAX_REQUEST_BYTES)
    except zlib.error as exc:
        raise failure(400, f"Unable to process JSON. Corrupt gzip body: {exc}")
    if inflater.unconsumed_tail:
        raise failure(413, f"Request body inflates past {MAX_REQUEST_BYTES} bytes")
    if not inflater.eof:
        raise failure(400, "Unable to process JSON. Truncated gzip body")
    return body


def read_json(required=True):
    """The request body as JSON; an empty body is None (Opik's POSTs without a body)."""
    raw = request.get_data()
    if raw and request.environ.get("HTTP_CONTENT_ENCODING", "").strip().lower() == "gzip":
        raw = inflate(raw)
    if not raw.strip():
        if required:
            raise error(422, "The request body must not be null")
        return None
    if b"\\u0000" in raw:  # PostgreSQL text cannot hold NUL; refuse it on every store alike
        raise failure(400, "Unable to process JSON. NUL characters (\\u0000) are not supported")
    try:
        # Opik's mapper allows NaN and ±Infinity, and writes them back as strings
        # ("NaN"): taking them as those strings here gives the same documents.
        body = json.loads(raw, parse_constant=str)
        if b"\\ud" in raw.lower():
            # An escaped lone surrogate parses, but no UTF-8 store can hold it.
            json.dumps(body, ensure_ascii=False).encode("utf-8")
        return body
    except (ValueError, UnicodeError) as exc:
        raise failure(400, f"Unable to process JSON. {exc}")
    except RecursionError:
        raise failure(400, "Unable to process JSON. Document nested too deeply")


@functools.cache
def schema_of(schema_class):
    """One instance per schema class: building one deep-copies its fields, too slow per
    request. (Loading and dumping keep no state on the instance.)"""
    return schema_class()


def load_body(schema_class, required=True):
    body = read_json(required)
    return schema_of(schema_class).load({} if body is None else body)


def load_query(schema_class):
    # Clients repeat a handful of query strings (a page, a poll's wait flag), so their
    # parses are kept; a copy goes out, as callers may change it.
    return dict(_parse_query(schema_class, request.query_string))


@functools.lru_cache(maxsize=1024)
def _parse_query(schema_class, query_string):
    args = request.args.to_dict()
    for name in getattr(schema_class, "REPEATABLE", ()):  # ?status=a&status=b
        if name in args:
            args[name] = request.args.getlist(name)
    if any("\x00" in value for values in args.values() for value in (values if isinstance(values, list) else [values])):
        raise error(400, "query params must not contain NUL characters")
    return schema_of(schema_class).load(args)


def paged(page_schema, page, size, found):
    total, rows = found
    return respond(page_schema.dump({"page": page, "size": size, "total": total, "content": rows}))


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
