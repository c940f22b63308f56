"""The store: peewee models over SQLite (default) or PostgreSQL.

Upstream keeps all of this in Redis hashes, lists and sorted sets; here each of
those becomes a table, and every index below serves one query: the listing,
the claim or an ownership lookup.
"""
import json
import sqlite3
import time

import peewee as pw
from playhouse.db_url import connect, parse
from playhouse.pool import PooledSqliteDatabase
from uuid6 import uuid7

import wakeups

database = pw.DatabaseProxy()
SECOND = 1_000_000  # timestamps are integer microseconds


def now_us():
    """Wall-clock time in integer microseconds: exact to compare, cheap to index."""
    return time.time_ns() // 1000


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
            (("runner", "status", "seq"), False),  # FIFO claim, pending count, running jobs
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


_compiled = {}


def compiled(name, build, params):
    """The SQL of `build()` (a peewee query), compiled once per database, for `params`.

    peewee takes ~0.3 ms to turn a query into SQL, far more than SQLite takes to run
    it, so the statements on the hot paths (the listing, the claim, job writes) are
    compiled once and run with `run` or `first`. The first compile checks that `params`
    are the query's own parameters in its order, so a mismatch fails loudly instead of
    binding wrongly.
    """
    key = (name, id(database.obj))
    sql = _compiled.get(key)
    if sql is None:
        sql, built = build().sql()
        if list(built) != list(params):
            raise AssertionError(f"compiled {name}: parameters {params!r} differ from the query's {built!r}")
        _compiled[key] = sql
    return sql


def run(name, build, params):
    """Run the compiled query (see `compiled`); returns the cursor."""
    return database.execute_sql(compiled(name, build, params), params)


_row_readers = {}


def first(model, name, build, params):
    """The first `model` row of the compiled query (see `compiled`), or None.

    Built from the row here rather than through `Model.raw`, whose per-query setup
    costs ~80 us against ~30 us for all of this (measured on a job row).
    """
    cursor = run(name, build, params)
    row = cursor.fetchone()
    if row is None:
        return None
    key = (name, id(database.obj))
    readers = _row_readers.get(key)
    if readers is None:
        fields = [model._meta.columns[column[0]] for column in cursor.description]
        readers = _row_readers[key] = [(field.name, field.python_value) for field in fields]
    values = {field: value if value is None else read(value) for (field, read), value in zip(readers, row)}
    return model(__no_default__=True, **values)


def is_postgres():
    return isinstance(database.obj, pw.PostgresqlDatabase)


MODELS = [Project, Runner, Job, JobLog, PairingSession, BridgeCommand, BridgeRate, Trace, Span]


BUSY_TIMEOUT_SECONDS = 30  # how long a statement waits for SQLite's write lock


def retry_while_locked(run, *args, **kwargs):
    """run(*args, **kwargs), again while SQLite refuses it as locked: sub-millisecond sleeps that
    yield to other greenlets, up to BUSY_TIMEOUT_SECONDS."""
    delay, deadline = 0.0002, time.monotonic() + BUSY_TIMEOUT_SECONDS
    while True:
        try:
            return run(*args, **kwargs)
        except (pw.OperationalError, sqlite3.OperationalError) as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.005)


class CooperativeSqliteDatabase(PooledSqliteDatabase):
    """SQLite whose locks are waited for cooperatively.

    SQLite's own busy handler sleeps 1 to 100 ms inside C while another process holds
    the write lock, which stalls every greenlet of a gevent worker meanwhile. So the
    connections run with busy_timeout 0, and a statement refused as busy is retried
    here. Only a statement outside a transaction can be refused (a BEGIN IMMEDIATE, or
    one in autocommit mode: reads never wait in WAL mode), and a refused statement
    changed nothing, so running it again is safe.

    The connection's pragmas are retried the same way. Workers booting together on a
    new file all switch it to WAL at once, and SQLite refuses all but one of them at
    once, without a busy handler (two readers upgrading would deadlock).
    """

    def __init__(self, database, **pool):
        # WAL lets readers run beside the one writer; IMMEDIATE takes the write lock
        # at BEGIN, so a transaction never fails half-way upgrading to it.
        pragmas = {"journal_mode": "wal", "foreign_keys": 1, "synchronous": "normal"}
        super().__init__(database, pragmas=pragmas, lock_type="IMMEDIATE", check_same_thread=False, **pool)

    def init(self, database, **kwargs):
        super().init(database, **kwargs)
        self._timeout = 0  # what sqlite3.connect sets as the busy_timeout (`timeout` here is the pool's)

    def begin(self, lock_type=None):
        self._execute_cursor(f"BEGIN {lock_type or self._lock_type or ''}", ())

    def _execute_cursor(self, sql, params, **cursor_options):
        if self.in_transaction():  # holds the write lock (IMMEDIATE): nothing to wait for
            return super()._execute_cursor(sql, params, **cursor_options)
        return retry_while_locked(super()._execute_cursor, sql, params, **cursor_options)

    def _set_pragmas(self, conn):
        for pragma, value in self._pragmas:
            retry_while_locked(conn.execute, f"PRAGMA {pragma} = {value}")


def open_database(url, pool_size=20):
    """Bind the models to the database at `url` (peewee's db_url syntax), through a
    connection pool: a request borrows a connection and a held long poll hands it back."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"DATABASE_URL must look like sqlite:///path or postgresql://..., got {url!r}")
    # Held polls hand their connection back, so a pool this size serves thousands of them;
    # a request finding it empty waits (up to 30 s) for a free one rather than failing.
    pool = {"max_connections": pool_size, "stale_timeout": 300, "timeout": 30}
    if scheme.startswith("sqlite"):
        db = CooperativeSqliteDatabase(parse(url)["database"], **pool)
    else:
        db = connect(f"{scheme.split('+')[0]}+pool://{rest}", autorollback=True, **pool)
    if database.obj is not None:
        database.obj.close_all()  # a previous app in this process (tests) gives its pool back
    database.initialize(db)
    wakeups.configure(db)
    return db


def create_tables():
    """Create the schema; safe to run on every start, by several workers at once."""
    models = [*MODELS, wakeups.Wakeup]
    with database.connection_context():
        if set(database.get_tables()) >= {m._meta.table_name for m in models}:
            # Read from the catalog, which locks nothing: on PostgreSQL even a no-op
            # CREATE INDEX IF NOT EXISTS locks its table, and would deadlock with the
            # requests a sibling worker is already serving.
            return
        with database.atomic():
            if is_postgres():
                # Workers booting together on an empty database take turns.
                database.execute_sql("SELECT pg_advisory_xact_lock(7146510731)")
            database.create_tables(models, safe=True)
