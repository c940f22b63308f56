"""Seed: load a state document (as export writes it, or one written by hand) in one transaction.
Every item is checked against the others and the store first; a document that will not load
is a StateError naming the item and field, and nothing is written."""
import base64
import binascii
import logging
import uuid

import peewee as pw

from ...domain import jobs
from ...domain.limits import BRIDGE_COMPLETED_TTL, BRIDGE_DEFAULT_TIMEOUT, MAX_AGENTS_PER_RUNNER, MAX_PAYLOAD_BYTES
from ...domain.limits import serialized_length
from ...errors import ApiError
from ...schemas.requests import AgentSchema
from ...store.models import (
    SECOND, BridgeCommand, Job, JobLog, PairingSession, Project, Runner, Span, Trace, database, new_id, now_us,
)
from .document import KINDS, StateError, parse

log = logging.getLogger(__name__)

DEFAULT_WORKSPACE, DEFAULT_USER = "default", "admin"  # the caller of a server without API keys
SESSION_TTL = 300 * SECOND  # a pairing session's default, as the API's
CHUNK = 500  # rows per INSERT and ids per IN (...): far below both stores' parameter limits
AGENT_SCHEMA = AgentSchema()


# -- the document's schema: types and shapes (what refers to what is checked on load)


# -- export


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


