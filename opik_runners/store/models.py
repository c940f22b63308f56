"""The store's tables: peewee models over SQLite (default) or PostgreSQL.

Upstream keeps all of this in Redis hashes, lists and sorted sets; here each of
those becomes a table, and every index below serves one query: the listing,
the claim or an ownership lookup. A change here needs a migration (migrations/),
which a test holds to these definitions.
"""
import json
import time

import peewee as pw
from uuid6 import uuid7

from ..clock import now_us

# The open backend (sqlite.py or postgres.py), bound by db.open_database.
database = pw.DatabaseProxy()
SECOND = 1_000_000  # timestamps are integer microseconds


def new_id():
    """Server-made, time-ordered UUID v7, as upstream's IdGenerator."""
    return uuid7()


class JSONField(pw.TextField):
    # peewee's JSON fields are per-backend (sqlite_ext, postgres_ext); the service
    # only stores and returns documents, so portable text is simpler.
    def db_value(self, value):
        if value is None:
            return None
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

    def python_value(self, value):
        return None if value is None else json.loads(value)


class SequenceField(pw.BigAutoField):
    """An id never given twice, even once every row is deleted (a journal entry's, a fault rule's:
    a test holding one must not meet it again after a reset). SQLite reuses max(id) + 1 unless
    the key is AUTOINCREMENT; PostgreSQL's sequences never go back."""

    def ddl(self, ctx):
        node = super().ddl(ctx)
        database = self.model._meta.database
        if isinstance(getattr(database, "obj", database), pw.SqliteDatabase):
            return pw.NodeList((node, pw.SQL("AUTOINCREMENT")))
        return node


class BaseModel(pw.Model):
    class Meta:
        database = database
        legacy_table_names = False


class Project(BaseModel):
    id = pw.UUIDField(primary_key=True, default=new_id)
    workspace = pw.CharField()
    name = pw.CharField()
    description = pw.TextField(null=True)
    visibility = pw.CharField(default="private")
    created_at = pw.BigIntegerField(default=now_us)
    created_by = pw.CharField()
    last_updated_at = pw.BigIntegerField(default=now_us)
    last_updated_by = pw.CharField()

    class Meta:
        indexes = ((("workspace", "name"), True),)


class Runner(BaseModel):
    id = pw.UUIDField(primary_key=True)
    workspace = pw.CharField()
    user_name = pw.CharField()
    project_id = pw.UUIDField()
    type = pw.CharField()  # endpoint | connect
    name = pw.CharField()
    connected_at = pw.BigIntegerField()
    heartbeat_expires_at = pw.BigIntegerField()
    capabilities = JSONField(null=True)  # null: never reported, reads as ["jobs"]
    agents = JSONField(default=dict)  # name -> Agent, replaced as a whole
    checklist = JSONField(null=True)
    # Set by DELETE, eviction or purge: the row stays for its jobs, but no caller sees it.
    detached_at = pw.BigIntegerField(null=True)
    # Job counters kept with the runner so the listing never counts rows: `job_count`
    # is its `total`; `last_seq` numbers jobs 1, 2, 3... (equal to job_count until
    # expired jobs leave gaps, which the reaper closes again).
    job_count = pw.BigIntegerField(default=0)
    last_seq = pw.BigIntegerField(default=0)

    @property
    def declared_capabilities(self):
        """What the last heartbeat declared; ["jobs"] for a runner that never said."""
        return self.capabilities or ["jobs"]

    @property
    def status(self):
        """Derived, never stored: alive while the last heartbeat's TTL runs."""
        return "connected" if self.heartbeat_expires_at > now_us() else "disconnected"

    class Meta:
        indexes = (
            # Ownership, the runners listing (newest activation first) and the
            # per (workspace, project, user, type) "active runner" lookup.
            (("workspace", "user_name", "project_id", "type", "detached_at"), False),
            (("detached_at", "heartbeat_expires_at"), False),  # the reaper
        )


class Job(BaseModel):
    id = pw.UUIDField(primary_key=True, default=new_id)
    # Visibility follows the runner: a job is seen by whoever owns its runner.
    runner = pw.ForeignKeyField(Runner, backref="jobs", on_delete="CASCADE", index=False)
    project_id = pw.UUIDField()
    agent_name = pw.CharField()
    status = pw.CharField(default="pending")
    inputs = JSONField(null=True)
    result = JSONField(null=True)
    error = pw.TextField(null=True)
    trace_id = pw.UUIDField(null=True)
    mask_id = pw.UUIDField(null=True)
    prompt_masks = JSONField(null=True)
    blueprint_name = pw.TextField(null=True)
    metadata = JSONField(null=True)
    timeout = pw.IntegerField(default=0)
    created_at = pw.BigIntegerField(default=now_us)
    started_at = pw.BigIntegerField(null=True)
    completed_at = pw.BigIntegerField(null=True)
    # The upstream cancellation set: a running job cancelled since the runner's
    # last heartbeat, still to be announced in `cancelled_job_ids`.
    cancel_unannounced = pw.BooleanField(default=False)
    seq = pw.BigIntegerField()  # position in its runner's jobs, 1 = oldest
    # The job as the API shows it (JobSchema's JSON), rewritten with every change, so a
    # listing page is 25 stored strings joined rather than 25 rows serialized.
    document = pw.TextField()

    class Meta:
        indexes = (
            (("runner", "seq"), False),  # the listing: newest first, any page in one index seek
            (("runner", "status", "seq"), False),  # FIFO claim, pending count, running jobs; the status filter
            # The listing filtered by agent (and status): one search per status, newest first.
            (("runner", "agent_name", "status", "seq"), False),
            (("status", "completed_at"), False),  # the reaper's expiry of finished jobs
        )


class JobLog(BaseModel):
    id = pw.AutoField()
    job = pw.ForeignKeyField(Job, on_delete="CASCADE", index=False)
    stream = pw.TextField()
    text = pw.TextField()

    class Meta:
        indexes = ((("job", "id"), False),)


class PairingSession(BaseModel):
    id = pw.UUIDField(primary_key=True, default=new_id)
    workspace = pw.CharField()
    user_name = pw.CharField()
    project_id = pw.UUIDField()
    runner_id = pw.UUIDField(default=new_id)
    type = pw.CharField()
    activation_key = pw.CharField()  # the base64 text exactly as sent
    created_at = pw.BigIntegerField(default=now_us)
    expires_at = pw.BigIntegerField(index=True)
    activated = pw.BooleanField(default=False)


class BridgeCommand(BaseModel):
    id = pw.UUIDField(primary_key=True, default=new_id)
    runner = pw.ForeignKeyField(Runner, on_delete="CASCADE", index=False)
    type = pw.CharField()
    args = JSONField()
    timeout_seconds = pw.IntegerField()
    status = pw.CharField(default="pending")
    submitted_at = pw.BigIntegerField(default=now_us)
    picked_up_at = pw.BigIntegerField(null=True)
    completed_at = pw.BigIntegerField(null=True)
    result = JSONField(null=True)
    error = JSONField(null=True)
    duration_ms = pw.BigIntegerField(null=True)
    # Upstream's hash TTL: 2 x timeout + 60 s while open, 1 h once finished; then 404.
    expires_at = pw.BigIntegerField()

    class Meta:
        indexes = (
            (("runner", "status", "id"), False),  # FIFO poll and the pending cap
            (("status", "picked_up_at"), False),  # the reaper's time-outs
            (("expires_at",), False),
        )


class BridgeRate(BaseModel):
    """Per-runner, per-clock-minute command counters (upstream's rate keys)."""

    runner_id = pw.UUIDField()
    minute = pw.BigIntegerField()
    total = pw.IntegerField(default=0)
    writes = pw.IntegerField(default=0)

    class Meta:
        primary_key = pw.CompositeKey("runner_id", "minute")


class Trace(BaseModel):
    """What the endpoint child's tracing sends, kept so a job's trace_id leads to it."""

    id = pw.UUIDField(primary_key=True)
    workspace = pw.CharField()
    project_id = pw.UUIDField(null=True)
    data = JSONField()  # the document as sent, merged over earlier writes of the same id


class Span(BaseModel):
    id = pw.UUIDField(primary_key=True)
    workspace = pw.CharField()
    trace_id = pw.UUIDField(null=True)
    project_id = pw.UUIDField(null=True)
    data = JSONField()

    class Meta:
        indexes = ((("workspace", "trace_id", "id"), False),)


class Wakeup(BaseModel):
    """A key some process woke, for every other process's watcher to read (SQLite only;
    the SQLite backend writes and reads it with its own two statements)."""

    id = pw.AutoField()
    key = pw.CharField()
    created_at = pw.FloatField(default=time.time)


class MaintenanceTask(BaseModel):
    """When each maintenance task (the reaper) last started, and where: the next cycle is due
    an interval later, whichever worker or instance runs it (maintenance.py)."""

    name = pw.CharField(primary_key=True)
    last_started_at = pw.BigIntegerField(default=0)
    last_holder = pw.CharField(null=True)  # host:pid, for people reading the table


class JournalEntry(BaseModel):
    """One request to the Opik API, as the control plane's journal shows it (journal.py).
    Only the newest OPIK_RUNNERS_JOURNAL_SIZE are kept."""

    id = SequenceField()  # the journal's order: listings go newest first, waits count past an id
    at = pw.BigIntegerField()  # real time (not the movable clock), µs
    method = pw.CharField()
    path = pw.TextField()
    query = pw.TextField()
    headers = JSONField()
    request_body = pw.TextField(null=True)  # short bodies here; longer ones in journal_body
    request_body_hash = pw.CharField(null=True)
    status = pw.IntegerField(null=True)  # null: a fault dropped the connection
    response_body = pw.TextField(null=True)
    response_body_hash = pw.CharField(null=True)
    duration_ms = pw.FloatField()
    operation = pw.CharField(null=True)  # the api.py view: list_jobs, next_job, ...
    workspace = pw.CharField()
    notes = JSONField(null=True)
    fault = pw.IntegerField(null=True)  # the fault rule that answered, if one did

    class Meta:
        indexes = ((("workspace", "id"), False),)  # a workspace's reset


class JournalBody(BaseModel):
    """A journal body of BODY_INLINE characters or more, stored once however many entries
    carry it (polls and listings repeat theirs): keyed by its SHA-1."""

    hash = pw.CharField(primary_key=True)
    text = pw.TextField()
    used_at = pw.BigIntegerField()  # last written with an entry; only bodies unused for a minute are dropped


class FaultRule(BaseModel):
    """A fault the control plane injects into matching requests (faults.py)."""

    id = SequenceField()
    rule = JSONField()  # what it matches and what it does, as posted
    probability = pw.FloatField(default=1.0)
    seed = pw.BigIntegerField(null=True)
    times = pw.IntegerField(null=True)  # null: until deleted
    matched = pw.IntegerField(default=0)  # matching requests so far (numbers the draws)
    fired = pw.IntegerField(default=0)
    created_at = pw.BigIntegerField()


class ControlValue(BaseModel):
    """The control plane's shared values (control.py): the clock offset, the reset count
    and the generation every change bumps."""

    key = pw.CharField(primary_key=True)
    value = pw.BigIntegerField()


class ServerProcess(BaseModel):
    """Each live worker, and the control generation it has taken: an admin change answers
    once every process seen in the last few seconds has taken it (control.py)."""

    holder = pw.CharField(primary_key=True)  # host:pid
    generation = pw.BigIntegerField()
    seen_at = pw.BigIntegerField()  # real time, µs


MODELS = [Project, Runner, Job, JobLog, PairingSession, BridgeCommand, BridgeRate, Trace, Span, Wakeup,
          MaintenanceTask, JournalEntry, JournalBody, FaultRule, ControlValue, ServerProcess]
