"""The whole store as one JSON document, and back: export, load (seed) and wipe.

The control plane serves these (GET/POST /_admin/state, POST /_admin/reset), `opik-runners
seed` loads documents from a file, and the Pact provider states (provider_states.py) are
documents built in code. The format, version 1 (the README shows an example):

    {"version": 1, "workspace": "...",            # optional: every item's workspace
     "projects": [...], "runners": [...], "jobs": [...], "pairing_sessions": [...],
     "bridge_commands": [...], "traces": [...], "spans": [...]}

Each item holds its table's columns under their API names; times are ISO-8601 UTC
(`2026-05-01T12:00:00.000000Z`, microseconds kept), absent values are left out. A job
carries its log lines (`"logs": [{"stream", "text"}]`); what the store derives is not in
the document and is made again on load: a job's seq (its runners' jobs are numbered in
the order the document lists them, oldest first), a runner's job counters, each job's
rendered document. Detached runners (DELETE, evicted, purged) are exported too, with
`detached_at`, since their jobs stay readable to the reaper until they expire; loaded,
they stay invisible to callers. Bridge rate counters are not exported (they only count
the current minute), and neither is the control plane's journal or fault rules.

Loading is all or nothing (one transaction): a document that will not load is a
StateError naming the item and field (`runners[2].project_id: no such project`), and
nothing is written. Ids and times are kept when given and made when absent. A runner's
`project` (a name) finds the workspace's project of that name, or creates it; a
`project_id` must name a project of the document or the store. A runner's `status`
says what it should be: `connected` (the default) keeps a `heartbeat_expires_at` still
ahead, or makes it now + OPIK_RUNNER_HEARTBEAT_TTL; `disconnected` keeps one already
past, or makes it now. Jobs may also name runners already stored: they are numbered
after that runner's jobs.
"""
import base64
import binascii
import json
import logging
import uuid

import peewee as pw
from marshmallow import Schema, ValidationError, fields, validate

from ..domain import jobs
from ..errors import ApiError
from ..domain.limits import BRIDGE_COMPLETED_TTL, BRIDGE_DEFAULT_TIMEOUT, BRIDGE_MAX_TIMEOUT, MAX_AGENTS_PER_RUNNER
from ..domain.limits import MAX_PAYLOAD_BYTES, serialized_length
from ..store.models import (
    SECOND, BridgeCommand, BridgeRate, Job, JobLog, PairingSession, Project, Runner, Span, Trace, database,
    new_id, now_us,
)
from ..domain.runners import CAPABILITY
from ..schemas.requests import BRIDGE_STATUSES, BRIDGE_TYPES, AgentSchema
from ..schemas.fields import flatten
from ..clock import iso_utc, parse_instant

log = logging.getLogger(__name__)

VERSION = 1
KINDS = ("projects", "runners", "jobs", "job_logs", "pairing_sessions", "bridge_commands", "traces", "spans")
DEFAULT_WORKSPACE, DEFAULT_USER = "default", "admin"  # the caller of a server without API keys
JOB_STATUSES = jobs.UNFINISHED + jobs.FINISHED
SESSION_TTL = 300 * SECOND  # a pairing session's default, as the API's
CHUNK = 500  # rows per INSERT and ids per IN (...): far below both stores' parameter limits
AGENT_SCHEMA = AgentSchema()


class StateError(ValueError):
    """A document that will not load; the message says what is wrong and where."""


# -- the document's schema: types and shapes (what refers to what is checked on load)


class Instant(fields.Field):
    """An ISO-8601 time <-> integer microseconds; a time without an offset is UTC."""

    default_error_messages = {"invalid": "must be an ISO-8601 time such as 2026-05-01T12:00:00Z"}

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise self.make_error("invalid")
        try:
            return parse_instant(value)
        except ValueError:
            raise self.make_error("invalid") from None


def text(max_length=255, **kwargs):
    """A string column: not blank, and within PostgreSQL's varchar(255) where it is one."""
    return fields.String(validate=[validate.Length(min=1, max=max_length)], **kwargs)


def integer(low, high, **kwargs):
    return fields.Integer(strict=True, validate=validate.Range(min=low, max=high), **kwargs)


def one_of(choices, **kwargs):
    return fields.String(validate=validate.OneOf(choices), **kwargs)


def optional(field):
    field.allow_none = True
    return field


JSON_OBJECT = {"allow_none": True}
BOOLEAN = {"truthy": {True}, "falsy": {False}}
INT32 = (0, 2**31 - 1)


class Item(Schema):
    """An item of the document: unknown keys are errors (a typo must not pass silently)."""

    id = optional(fields.UUID())


class Owned(Item):
    workspace = optional(text())
    user = optional(text())


class ProjectItem(Item):
    workspace = optional(text())
    name = text(required=True)
    description = optional(fields.String(validate=validate.Length(max=255)))
    visibility = optional(one_of(("private", "public")))
    created_at = optional(Instant())
    created_by = optional(text())
    last_updated_at = optional(Instant())
    last_updated_by = optional(text())


class RunnerItem(Owned):
    project_id = optional(fields.UUID())
    project = optional(text())
    type = optional(one_of(("endpoint", "connect")))
    name = optional(text())
    status = optional(one_of(("connected", "disconnected")))
    connected_at = optional(Instant())
    heartbeat_expires_at = optional(Instant())
    detached_at = optional(Instant())
    capabilities = optional(fields.List(fields.String(validate=validate.Regexp(CAPABILITY, error="must match [a-z_]+"))))
    agents = optional(fields.Dict(keys=text(), values=fields.Dict()))
    checklist = optional(fields.Dict())


class LogItem(Schema):
    stream = text(required=True)
    text = fields.String(required=True, validate=validate.Length(min=1))


class JobItem(Item):
    runner_id = fields.UUID(required=True)
    project_id = optional(fields.UUID())
    agent_name = text(required=True)
    status = optional(one_of(JOB_STATUSES))
    inputs = fields.Dict(**JSON_OBJECT)
    result = fields.Dict(**JSON_OBJECT)
    error = optional(fields.String())
    trace_id = optional(fields.UUID())
    mask_id = optional(fields.UUID())
    prompt_masks = optional(fields.Dict(keys=fields.UUID(), values=fields.UUID()))
    blueprint_name = optional(fields.String(validate=validate.Length(min=1)))
    metadata = optional(fields.Dict(keys=fields.String(), values=fields.String()))
    timeout = optional(integer(*INT32))
    created_at = optional(Instant())
    started_at = optional(Instant())
    completed_at = optional(Instant())
    cancel_unannounced = optional(fields.Boolean(**BOOLEAN))
    logs = optional(fields.List(fields.Nested(LogItem)))


class SessionItem(Owned):
    project_id = optional(fields.UUID())
    project = optional(text())
    runner_id = optional(fields.UUID())
    type = optional(one_of(("endpoint", "connect")))
    activation_key = text(required=True)
    created_at = optional(Instant())
    expires_at = optional(Instant())
    activated = optional(fields.Boolean(**BOOLEAN))


class BridgeCommandItem(Item):
    runner_id = fields.UUID(required=True)
    type = one_of(BRIDGE_TYPES, required=True)
    args = fields.Dict(required=True)
    timeout_seconds = optional(integer(1, BRIDGE_MAX_TIMEOUT))
    status = optional(one_of(BRIDGE_STATUSES))
    submitted_at = optional(Instant())
    picked_up_at = optional(Instant())
    completed_at = optional(Instant())
    result = fields.Dict(**JSON_OBJECT)
    error = fields.Dict(**JSON_OBJECT)
    duration_ms = optional(integer(0, 2**63 - 1))
    expires_at = optional(Instant())


class TraceItem(Item):
    workspace = optional(text())
    project_id = optional(fields.UUID())
    project = optional(text())
    data = fields.Dict(load_default=dict)


class SpanItem(TraceItem):
    trace_id = optional(fields.UUID())


def items(schema):
    return fields.List(fields.Nested(schema), load_default=list)


class Document(Schema):
    version = fields.Integer(strict=True, load_default=VERSION, validate=validate.Equal(
        VERSION, error=f"{{input}} is not a version this server reads ({VERSION})"))
    workspace = optional(text())
    projects = items(ProjectItem)
    runners = items(RunnerItem)
    jobs = items(JobItem)
    pairing_sessions = items(SessionItem)
    bridge_commands = items(BridgeCommandItem)
    traces = items(TraceItem)
    spans = items(SpanItem)


DOCUMENT = Document()


def parse(document):
    """The document, validated and typed; StateError if it will not load."""
    if not isinstance(document, dict):
        raise StateError(f"a state document is a JSON object, got {type(document).__name__}")
    try:
        # The stores hold JSON text: NaN has no JSON spelling, and PostgreSQL's text no NUL.
        if "\\u0000" in json.dumps(document, allow_nan=False):
            raise StateError("the document holds a NUL character (\\u0000), which the stores cannot keep")
    except ValueError as exc:
        if isinstance(exc, StateError):
            raise
        raise StateError(f"the document is not plain JSON: {exc}") from None
    except RecursionError:
        raise StateError("the document is nested too deeply") from None
    try:
        return DOCUMENT.load(document)
    except ValidationError as exc:
        lines = flatten(exc.messages, separator=": ")
        shown = "; ".join(lines[:10]) + (f"; and {len(lines) - 10} more" if len(lines) > 10 else "")
        raise StateError(shown) from None


# -- export


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


# -- load


def load_state(settings, document):
    """Load a state document (as export_state writes it, or a seed written by hand) in one
    transaction; the rows written, per kind. StateError, with nothing written, if it will
    not load. Call with a connection open."""
    for attempt in (1, 2):
        data = parse(document)
        try:
            with database.atomic():
                counts = Loader(settings, data).load()
            break
        except (pw.IntegrityError, pw.DataError) as exc:  # what the checks below cannot see coming
            # Once more, on what is committed now: a project a document names (and does not
            # give an id) is made by the first of two documents loaded at once and found by the
            # second. (PostgreSQL: both looked before either committed. SQLite loads one at a time.)
            if attempt == 1 and isinstance(exc, pw.IntegrityError):
                continue
            raise StateError(f"the document conflicts with the stored data: {str(exc).strip()}") from None
    log.info("state loaded: %s", ", ".join(f"{counts[kind]} {kind}" for kind in KINDS))
    return counts


def chunks(values, size=CHUNK):
    for start in range(0, len(values), size):
        yield values[start:start + size]


def insert(model, rows):
    """Insert rows (dicts by field name) CHUNK at a time. The statement is written here rather
    than by insert_many, whose SQL building costs more than the store takes to write 100,000
    jobs; the values take each field's own conversion, as peewee gives them."""
    fields = [field for field in model._meta.sorted_fields if not isinstance(field, pw.AutoField)]
    columns = ", ".join(f'"{field.column_name}"' for field in fields)
    one_row = "(" + ", ".join([database.obj.param] * len(fields)) + ")"
    for chunk in chunks(rows):
        sql = f'INSERT INTO "{model._meta.table_name}" ({columns}) VALUES {", ".join([one_row] * len(chunk))}'
        database.execute_sql(sql, [None if row[f.name] is None else f.db_value(row[f.name])
                                   for row in chunk for f in fields])


class Loader:
    """One load: the document's items checked against each other and the store, then
    written. Every check raises StateError naming the item."""

    def __init__(self, settings, data):
        self.settings = settings
        self.data = data
        self.now = now_us()
        self.workspace = data.get("workspace")
        self.projects = {}  # id -> Project (the document's, made ones, stored ones looked up)
        self.project_names = {}  # (workspace, name) -> id
        self.made_projects = []
        self.runners = {}  # id -> Runner (the document's and stored ones looked up)
        self.new_runners = set()  # the document's runners' ids

    def load(self):
        d = self.data
        for kind in ("projects", "runners", "jobs", "pairing_sessions", "bridge_commands", "traces", "spans"):
            self.refuse_duplicates(kind)
        # The stored runners that jobs and commands name, locked at once in key order, as a reset
        # takes them (PostgreSQL); find_runner, one at a time in the document's order, could take
        # them crosswise with it.
        named = {item["runner_id"] for kind in ("jobs", "bridge_commands") for item in d[kind]}
        for chunk in chunks(sorted(named - {item.get("id") for item in d["runners"]})):
            database.hold_rows(Runner.select(Runner.id).where(Runner.id.in_(chunk)))
        projects = [self.project(i, item) for i, item in enumerate(d["projects"])]
        runners = [self.runner(i, item) for i, item in enumerate(d["runners"])]
        jobs_, logs = self.jobs()
        sessions = [self.session(i, item) for i, item in enumerate(d["pairing_sessions"])]
        commands = [self.command(i, item) for i, item in enumerate(d["bridge_commands"])]
        traces = [self.telemetry("traces", i, item) for i, item in enumerate(d["traces"])]
        spans = [self.telemetry("spans", i, item) for i, item in enumerate(d["spans"])]

        insert(Project, [row_of(p) for p in projects + self.made_projects])
        insert(Runner, [row_of(r) for r in runners])
        insert(Job, [row_of(job) for job in jobs_])
        insert(JobLog, logs)
        insert(PairingSession, [row_of(s) for s in sessions])
        insert(BridgeCommand, [row_of(c) for c in commands])
        insert(Trace, [row_of(t) for t in traces])
        insert(Span, [row_of(s) for s in spans])
        # A poll held on one of these runners takes its work now, not at its next time-out.
        for runner_id in {job.runner_id for job in jobs_ if job.status == jobs.PENDING}:
            database.notify(("jobs", runner_id))
        for runner_id in {c.runner_id for c in commands if c.status == "pending"}:
            database.notify(("bridge", runner_id))
        return {
            "projects": len(projects) + len(self.made_projects), "runners": len(runners), "jobs": len(jobs_),
            "job_logs": len(logs), "pairing_sessions": len(sessions), "bridge_commands": len(commands),
            "traces": len(traces), "spans": len(spans),
        }

    # -- checks shared by the kinds

    def refuse_duplicates(self, kind):
        """An id given twice in the document, or already stored, will not load."""
        model = {"projects": Project, "runners": Runner, "jobs": Job, "pairing_sessions": PairingSession,
                 "bridge_commands": BridgeCommand, "traces": Trace, "spans": Span}[kind]
        seen = {}
        for i, item in enumerate(self.data[kind]):
            if item.get("id") is not None:
                if item["id"] in seen:
                    raise StateError(f"{kind}[{i}].id: {item['id']} is also {kind}[{seen[item['id']]}]")
                seen[item["id"]] = i
        for chunk in chunks(list(seen)):
            stored = model.select(model.id).where(model.id.in_(chunk)).first()
            if stored is not None:
                raise StateError(f"{kind}[{seen[stored.id]}].id: {stored.id} exists already")

    def workspace_of(self, where, item):
        given = item.get("workspace")
        if given is not None and self.workspace is not None and given != self.workspace:
            raise StateError(f"{where}.workspace: {given!r} is not the document's workspace {self.workspace!r}")
        return given or self.workspace or DEFAULT_WORKSPACE

    def find_project(self, project_id):
        if project_id not in self.projects:
            self.projects[project_id] = Project.get_or_none(Project.id == project_id)
        return self.projects[project_id]

    def project_id_of(self, where, item, workspace, user, required=True):
        """The project an item names by `project_id` or by `project` (a name: found in the
        workspace, or made)."""
        project_id, name = item.get("project_id"), item.get("project")
        if project_id is not None:
            project = self.find_project(project_id)
            if project is None:
                raise StateError(f"{where}.project_id: no such project")
            if project.workspace != workspace:
                raise StateError(f"{where}.project_id: the project is in workspace {project.workspace!r}, "
                                 f"not {workspace!r}")
            if name is not None and name != project.name:
                raise StateError(f"{where}.project: {name!r} is not the name of project_id's project "
                                 f"({project.name!r})")
            return project.id
        if name is None:
            if required:
                raise StateError(f"{where}: give project_id or project (a name)")
            return None
        key = (workspace, name)
        if key not in self.project_names:
            stored = Project.get_or_none((Project.workspace == workspace) & (Project.name == name))
            if stored is None:
                stored = Project(id=new_id(), workspace=workspace, name=name, visibility="private",
                                 created_at=self.now, created_by=user, last_updated_at=self.now,
                                 last_updated_by=user)
                self.made_projects.append(stored)
            self.projects[stored.id] = stored
            self.project_names[key] = stored.id
        return self.project_names[key]

    def find_runner(self, where, runner_id):
        if runner_id not in self.runners:
            # Locked: new jobs are numbered after its jobs, beside concurrent job creation.
            self.runners[runner_id] = database.lock_rows(Runner.select().where(Runner.id == runner_id)).first()
        runner = self.runners[runner_id]
        if runner is None:
            raise StateError(f"{where}.runner_id: no such runner")
        if self.workspace is not None and runner.workspace != self.workspace:
            raise StateError(f"{where}.runner_id: the runner is in workspace {runner.workspace!r}, "
                             f"not the document's {self.workspace!r}")
        return runner

    # -- each kind

    def project(self, i, item):
        where = f"projects[{i}]"
        workspace = self.workspace_of(where, item)
        key = (workspace, item["name"])
        stored = Project.get_or_none((Project.workspace == workspace) & (Project.name == item["name"]))
        if key in self.project_names or stored is not None:
            raise StateError(f"{where}.name: workspace {workspace!r} has a project named {item['name']!r} already")
        created_at = item.get("created_at") or self.now
        created_by = item.get("created_by") or DEFAULT_USER
        project = Project(
            id=item.get("id") or new_id(), workspace=workspace, name=item["name"],
            description=item.get("description"), visibility=item.get("visibility") or "private",
            created_at=created_at, created_by=created_by,
            last_updated_at=item.get("last_updated_at") or created_at,
            last_updated_by=item.get("last_updated_by") or created_by,
        )
        self.projects[project.id] = project
        self.project_names[key] = project.id
        return project

    def runner(self, i, item):
        where = f"runners[{i}]"
        workspace = self.workspace_of(where, item)
        user = item.get("user") or DEFAULT_USER
        runner_id = item.get("id") or new_id()
        runner_type = item.get("type") or "endpoint"
        detached_at = item.get("detached_at")
        status = item.get("status") or ("disconnected" if detached_at is not None else "connected")
        expires = item.get("heartbeat_expires_at")
        if status == "connected":
            if detached_at is not None:
                raise StateError(f"{where}.status: a detached runner is not connected")
            if expires is None or expires <= self.now:
                expires = self.now + int(self.settings.heartbeat_ttl * SECOND)
        elif expires is None or expires > self.now:
            expires = self.now
        runner = Runner(
            id=runner_id, workspace=workspace, user_name=user,
            project_id=self.project_id_of(where, item, workspace, user),
            type=runner_type, name=item.get("name") or f"{runner_type}-{str(runner_id)[:8]}",
            connected_at=item.get("connected_at") or self.now, heartbeat_expires_at=expires,
            capabilities=item.get("capabilities"), agents=self.agents(where, item.get("agents") or {}),
            checklist=item.get("checklist"), detached_at=detached_at, job_count=0, last_seq=0,
        )
        if runner.checklist is not None and serialized_length(runner.checklist) > MAX_PAYLOAD_BYTES:
            raise StateError(f"{where}.checklist: larger than {MAX_PAYLOAD_BYTES} bytes")
        self.runners[runner.id] = runner
        self.new_runners.add(runner.id)
        return runner

    def agents(self, where, agents):
        """Agents as PUT agents stores them (nulls left out, `timeout` an int)."""
        if len(agents) > MAX_AGENTS_PER_RUNNER:
            raise StateError(f"{where}.agents: {len(agents)} agents, more than {MAX_AGENTS_PER_RUNNER}")
        loaded = {}
        for name, agent in agents.items():
            try:
                loaded[name] = AGENT_SCHEMA.load(agent)
            except ApiError as exc:
                reasons = "; ".join(m.removeprefix("Unable to process JSON. ") for m in exc.messages)
                raise StateError(f"{where}.agents.{name}: {reasons}") from None
        return loaded

    def jobs(self):
        """The jobs, numbered after their runner's (1, 2, ... in document order for a runner
        of the document), and their log lines; the runners' counters follow."""
        made, logs, numbered = [], [], {}
        for i, item in enumerate(self.data["jobs"]):
            where = f"jobs[{i}]"
            runner = self.find_runner(where, item["runner_id"])
            job = self.job(where, item, runner)
            numbered[runner.id] = numbered.get(runner.id, 0) + 1
            job.seq = runner.last_seq + numbered[runner.id]
            job.document = jobs.render(job)
            made.append(job)
            logs.extend({"job": job.id, "stream": line["stream"], "text": line["text"]} for line in item.get("logs") or ())
        for runner_id, count in numbered.items():
            if runner_id in self.new_runners:
                self.runners[runner_id].job_count = self.runners[runner_id].last_seq = count  # inserted below
            else:
                Runner.update(job_count=Runner.job_count + count, last_seq=Runner.last_seq + count).where(
                    Runner.id == runner_id
                ).execute()
        return made, logs

    def job(self, where, item, runner):
        status = item.get("status") or jobs.PENDING
        created_at = item.get("created_at") or self.now
        started_at, completed_at = item.get("started_at"), item.get("completed_at")
        if status == jobs.PENDING and (started_at is not None or completed_at is not None):
            raise StateError(f"{where}.{'started_at' if started_at is not None else 'completed_at'}: "
                             "a pending job has not started")
        if status == jobs.RUNNING and completed_at is not None:
            raise StateError(f"{where}.completed_at: a running job has not finished")
        if item.get("cancel_unannounced") and status != jobs.CANCELLED:
            raise StateError(f"{where}.cancel_unannounced: only a cancelled job is announced as cancelled")
        # A finished job may never have started (a result for a job never claimed, a pending
        # job failed with its runner): only a running job must have.
        if status == jobs.RUNNING and started_at is None:
            started_at = created_at
        if status in jobs.FINISHED and completed_at is None:
            completed_at = max(self.now, started_at or created_at)
        timeout = item.get("timeout")
        if timeout is None:
            agent_timeout = (runner.agents or {}).get(item["agent_name"], {}).get("timeout") or 0
            timeout = agent_timeout if agent_timeout > 0 else int(self.settings.job_timeout)
        project_id = item.get("project_id")
        if project_id is None:
            project_id = runner.project_id
        elif self.find_project(project_id) is None:
            raise StateError(f"{where}.project_id: no such project")
        prompt_masks = item.get("prompt_masks")
        return Job(
            id=item.get("id") or new_id(), runner=runner.id, project_id=project_id, agent_name=item["agent_name"],
            status=status, inputs=item.get("inputs"), result=item.get("result"), error=item.get("error"),
            trace_id=item.get("trace_id"), mask_id=item.get("mask_id"),
            prompt_masks=None if prompt_masks is None else {str(k): str(v) for k, v in prompt_masks.items()},
            blueprint_name=item.get("blueprint_name"), metadata=item.get("metadata"), timeout=timeout,
            created_at=created_at, started_at=started_at, completed_at=completed_at,
            cancel_unannounced=bool(item.get("cancel_unannounced")),
        )

    def session(self, i, item):
        where = f"pairing_sessions[{i}]"
        workspace = self.workspace_of(where, item)
        user = item.get("user") or DEFAULT_USER
        try:
            key = base64.b64decode(item["activation_key"] + "=" * (-len(item["activation_key"]) % 4), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != 32:
            raise StateError(f"{where}.activation_key: must be the base64 of 32 bytes")
        created_at = item.get("created_at") or self.now
        return PairingSession(
            id=item.get("id") or new_id(), workspace=workspace, user_name=user,
            project_id=self.project_id_of(where, item, workspace, user), runner_id=item.get("runner_id") or new_id(),
            type=item.get("type") or "endpoint", activation_key=item["activation_key"], created_at=created_at,
            expires_at=item.get("expires_at") or created_at + SESSION_TTL, activated=bool(item.get("activated")),
        )

    def command(self, i, item):
        where = f"bridge_commands[{i}]"
        runner = self.find_runner(where, item["runner_id"])
        status = item.get("status") or "pending"
        picked_up_at, completed_at = item.get("picked_up_at"), item.get("completed_at")
        if status == "pending":
            for name in ("picked_up_at", "completed_at", "result", "error", "duration_ms"):
                if item.get(name) is not None:
                    raise StateError(f"{where}.{name}: a pending command has none")
        elif status == "picked_up":
            if completed_at is not None:
                raise StateError(f"{where}.completed_at: a picked-up command has not finished")
            picked_up_at = picked_up_at or self.now
        else:
            completed_at = completed_at or self.now
        timeout = item.get("timeout_seconds") or BRIDGE_DEFAULT_TIMEOUT
        submitted_at = item.get("submitted_at") or self.now
        expires_at = item.get("expires_at")
        if expires_at is None:
            expires_at = (submitted_at + (2 * timeout + 60) * SECOND if completed_at is None
                          else completed_at + BRIDGE_COMPLETED_TTL * SECOND)
        return BridgeCommand(
            id=item.get("id") or new_id(), runner=runner.id, type=item["type"], args=item["args"],
            timeout_seconds=timeout, status=status, submitted_at=submitted_at, picked_up_at=picked_up_at,
            completed_at=completed_at, result=item.get("result"), error=item.get("error"),
            duration_ms=item.get("duration_ms"), expires_at=expires_at,
        )

    def telemetry(self, kind, i, item):
        where = f"{kind}[{i}]"
        workspace = self.workspace_of(where, item)
        data = item["data"]
        given = item.get("id") or data.get("id")
        try:
            telemetry_id = new_id() if given is None else uuid.UUID(str(given))
        except ValueError:
            raise StateError(f"{where}.data.id: Not a valid UUID.") from None
        values = {
            "id": telemetry_id, "workspace": workspace, "data": {**data, "id": str(telemetry_id)},
            "project_id": self.project_id_of(where, item, workspace, DEFAULT_USER, required=False),
        }
        if kind == "traces":
            return Trace(**values)
        trace_id = item.get("trace_id") or data.get("trace_id")
        try:
            values["trace_id"] = None if trace_id is None else uuid.UUID(str(trace_id))
        except ValueError:
            raise StateError(f"{where}.data.trace_id: Not a valid UUID.") from None
        return Span(**values)


def row_of(instance):
    """A model instance's column values by field name, for insert (its foreign keys as ids)."""
    return {field.name: instance.__data__.get(field.name) for field in instance._meta.sorted_fields}


# -- wipe


def remove_runners(runner_ids):
    """Delete runners (a query of their ids) with their jobs, logs, bridge commands and rate
    counters, in bulk; the runners' number. Call inside a transaction.

    The runners' rows are locked before their children are deleted (PostgreSQL): every write
    that takes both takes a runner's row before its jobs', commands' or counters' (a job's
    numbering, a bridge submission, an activation's eviction). Deleting the children first
    deadlocked with those: of 15 resets, each sent among 166 writes, 2 failed, and 247 of the
    writes with them (503)."""
    database.hold_rows(Runner.select(Runner.id).where(Runner.id.in_(runner_ids)))
    job_ids = Job.select(Job.id).where(Job.runner.in_(runner_ids))
    JobLog.delete().where(JobLog.job.in_(job_ids)).execute()
    Job.delete().where(Job.runner.in_(runner_ids)).execute()
    BridgeRate.delete().where(BridgeRate.runner_id.in_(runner_ids)).execute()
    BridgeCommand.delete().where(BridgeCommand.runner.in_(runner_ids)).execute()
    return Runner.delete().where(Runner.id.in_(runner_ids)).execute()


def wipe(workspace=None):
    """Delete every row of the domain (projects, runners, jobs, logs, bridge commands and
    their rate counters, pairing sessions, traces, spans), or one workspace's, in one
    transaction of bulk deletes; the number of runners removed. The control plane's own tables
    are left alone. Call with a connection open. The caller logs it once its own transaction
    commits: a reset that deadlocks runs again, and a line logged here would stay for an
    attempt rolled back."""
    def scoped(query, model):
        return query if workspace is None else query.where(model.workspace == workspace)

    with database.atomic():
        # Rows are locked in the order an activation takes them, its session, then the project,
        # then the runners (whose children every other write takes after them: remove_runners),
        # so a reset waits for the writes in flight instead of deadlocking with them (PostgreSQL).
        for model in (PairingSession, Project):
            database.hold_rows(scoped(model.select(model.id), model))
        if workspace is None:
            database.hold_rows(Runner.select(Runner.id))  # remove_runners does, for a workspace's
            # Children first: SQLite checks each foreign key of a deleted parent row.
            for model in (JobLog, Job, BridgeRate, BridgeCommand):
                model.delete().execute()
            removed = Runner.delete().execute()
        else:
            removed = remove_runners(scoped(Runner.select(Runner.id), Runner))
        for model in (PairingSession, Span, Trace, Project):
            scoped(model.delete(), model).execute()
    return removed
