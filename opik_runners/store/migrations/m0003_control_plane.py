"""The control plane for tests (/_admin/): the request journal, fault rules, the shared
values (clock offset, reset count, generation) and the live workers that take changes."""
import peewee as pw

JSONField = pw.TextField  # JSON is stored as text


class SequenceField(pw.BigAutoField):
    """AUTOINCREMENT on SQLite (ids never reused); a bigserial on PostgreSQL."""

    def ddl(self, ctx):
        node = super().ddl(ctx)
        database = self.model._meta.database
        if isinstance(getattr(database, "obj", database), pw.SqliteDatabase):
            return pw.NodeList((node, pw.SQL("AUTOINCREMENT")))
        return node


class Base(pw.Model):
    class Meta:
        legacy_table_names = False


class JournalEntry(Base):
    id = SequenceField()
    at = pw.BigIntegerField()
    method = pw.CharField()
    path = pw.TextField()
    query = pw.TextField()
    headers = JSONField()
    request_body = pw.TextField(null=True)
    request_body_hash = pw.CharField(null=True)
    status = pw.IntegerField(null=True)
    response_body = pw.TextField(null=True)
    response_body_hash = pw.CharField(null=True)
    duration_ms = pw.FloatField()
    operation = pw.CharField(null=True)
    workspace = pw.CharField()
    notes = JSONField(null=True)
    fault = pw.IntegerField(null=True)

    class Meta:
        indexes = ((("workspace", "id"), False),)


class JournalBody(Base):
    hash = pw.CharField(primary_key=True)
    text = pw.TextField()
    used_at = pw.BigIntegerField()


class FaultRule(Base):
    id = SequenceField()
    rule = JSONField()
    probability = pw.FloatField(default=1.0)
    seed = pw.BigIntegerField(null=True)
    times = pw.IntegerField(null=True)
    matched = pw.IntegerField(default=0)
    fired = pw.IntegerField(default=0)
    created_at = pw.BigIntegerField()


class ControlValue(Base):
    key = pw.CharField(primary_key=True)
    value = pw.BigIntegerField()


class ServerProcess(Base):
    holder = pw.CharField(primary_key=True)
    generation = pw.BigIntegerField()
    seen_at = pw.BigIntegerField()


def apply(database, migrator):
    tables = [JournalEntry, JournalBody, FaultRule, ControlValue, ServerProcess]
    with database.bind_ctx(tables):
        database.create_tables(tables)
        ControlValue.insert_many(
            [{"key": key, "value": 0} for key in ("generation", "clock_offset_us", "resets", "journal_flushes")]
        ).execute()
