"""The schema of release 1.0.0, the last before versioning, frozen: a new database starts
here. Column types, nullability, keys and indexes only (defaults live in models.py and
never reach the DDL); JSON columns are text."""
import peewee as pw


class Base(pw.Model):
    class Meta:
        legacy_table_names = False


class Project(Base):
    id = pw.UUIDField(primary_key=True)
    workspace = pw.CharField()
    name = pw.CharField()
    description = pw.TextField(null=True)
    visibility = pw.CharField()
    created_at = pw.BigIntegerField()
    created_by = pw.CharField()
    last_updated_at = pw.BigIntegerField()
    last_updated_by = pw.CharField()

    class Meta:
        indexes = ((("workspace", "name"), True),)


class Runner(Base):
    id = pw.UUIDField(primary_key=True)
    workspace = pw.CharField()
    user_name = pw.CharField()
    project_id = pw.UUIDField()
    type = pw.CharField()
    name = pw.CharField()
    connected_at = pw.BigIntegerField()
    heartbeat_expires_at = pw.BigIntegerField()
    capabilities = pw.TextField(null=True)
    agents = pw.TextField()
    checklist = pw.TextField(null=True)
    detached_at = pw.BigIntegerField(null=True)
    job_count = pw.BigIntegerField()
    last_seq = pw.BigIntegerField()

    class Meta:
        indexes = (
            (("workspace", "user_name", "project_id", "type", "detached_at"), False),
            (("detached_at", "heartbeat_expires_at"), False),
        )


class Job(Base):
    id = pw.UUIDField(primary_key=True)
    runner = pw.ForeignKeyField(Runner, on_delete="CASCADE", index=False)
    project_id = pw.UUIDField()
    agent_name = pw.CharField()
    status = pw.CharField()
    inputs = pw.TextField(null=True)
    result = pw.TextField(null=True)
    error = pw.TextField(null=True)
    trace_id = pw.UUIDField(null=True)
    mask_id = pw.UUIDField(null=True)
    prompt_masks = pw.TextField(null=True)
    blueprint_name = pw.TextField(null=True)
    metadata = pw.TextField(null=True)
    timeout = pw.IntegerField()
    created_at = pw.BigIntegerField()
    started_at = pw.BigIntegerField(null=True)
    completed_at = pw.BigIntegerField(null=True)
    cancel_unannounced = pw.BooleanField()
    seq = pw.BigIntegerField()
    document = pw.TextField()

    class Meta:
        indexes = (
            (("runner", "seq"), False),
            (("runner", "status", "seq"), False),
            (("status", "completed_at"), False),
        )


class JobLog(Base):
    id = pw.AutoField()
    job = pw.ForeignKeyField(Job, on_delete="CASCADE", index=False)
    stream = pw.TextField()
    text = pw.TextField()

    class Meta:
        indexes = ((("job", "id"), False),)


class PairingSession(Base):
    id = pw.UUIDField(primary_key=True)
    workspace = pw.CharField()
    user_name = pw.CharField()
    project_id = pw.UUIDField()
    runner_id = pw.UUIDField()
    type = pw.CharField()
    activation_key = pw.CharField()
    created_at = pw.BigIntegerField()
    expires_at = pw.BigIntegerField(index=True)
    activated = pw.BooleanField()


class BridgeCommand(Base):
    id = pw.UUIDField(primary_key=True)
    runner = pw.ForeignKeyField(Runner, on_delete="CASCADE", index=False)
    type = pw.CharField()
    args = pw.TextField()
    timeout_seconds = pw.IntegerField()
    status = pw.CharField()
    submitted_at = pw.BigIntegerField()
    picked_up_at = pw.BigIntegerField(null=True)
    completed_at = pw.BigIntegerField(null=True)
    result = pw.TextField(null=True)
    error = pw.TextField(null=True)
    duration_ms = pw.BigIntegerField(null=True)
    expires_at = pw.BigIntegerField()

    class Meta:
        indexes = (
            (("runner", "status", "id"), False),
            (("status", "picked_up_at"), False),
            (("expires_at",), False),
        )


class BridgeRate(Base):
    runner_id = pw.UUIDField()
    minute = pw.BigIntegerField()
    total = pw.IntegerField()
    writes = pw.IntegerField()

    class Meta:
        primary_key = pw.CompositeKey("runner_id", "minute")


class Trace(Base):
    id = pw.UUIDField(primary_key=True)
    workspace = pw.CharField()
    project_id = pw.UUIDField(null=True)
    data = pw.TextField()


class Span(Base):
    id = pw.UUIDField(primary_key=True)
    workspace = pw.CharField()
    trace_id = pw.UUIDField(null=True)
    project_id = pw.UUIDField(null=True)
    data = pw.TextField()

    class Meta:
        indexes = ((("workspace", "trace_id", "id"), False),)


class Wakeup(Base):
    id = pw.AutoField()
    key = pw.CharField()
    created_at = pw.FloatField()


TABLES = [Project, Runner, Job, JobLog, PairingSession, BridgeCommand, BridgeRate, Trace, Span, Wakeup]


def apply(database, migrator):
    with database.bind_ctx(TABLES):
        database.create_tables(TABLES)
