"""Marshmallow schemas: every request is loaded through one, every response dumped.

Failure mapping follows Opik (docs/opik-behaviour.md#error-shapes, docs/opik-behaviour.md#validation-errors):
- a value of the wrong JSON type, a malformed UUID or an unknown enum value in a
  body is a Jackson parse error: 400 `{"code": 400, "message": "Unable to process JSON. ..."}`;
  the scalars Jackson coerces are coerced (see Str and Int);
- a constraint (missing, blank, too long, out of range) on a body: 422 `{"errors": [...]}`;
- a constraint on a query parameter: 400 `{"errors": ["query param page ..."]}`;
- a query UUID that will not parse: 404, as JAX-RS answers it.
"""
import datetime
import json
import math
import re
import time

from marshmallow import EXCLUDE, INCLUDE, RAISE, Schema, ValidationError, fields, post_dump, post_load, pre_load, validate

from . import notes
from .errors import error, failure, not_found
from .models import new_id

NOT_NULL = {"required": "must not be null", "null": "must not be null"}
NOT_BLANK = validate.Regexp(r"\s*\S", error="must not be blank")


def iso_utc(us):
    """Integer microseconds -> ISO-8601 UTC with a `Z`, as Java's Instant.toString().
    (time.gmtime: twice as fast as datetime arithmetic, and every job render calls it.)"""
    seconds, micros = divmod(us, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}Z"


def flatten(messages, prefix="", separator=" "):
    """{"params": {0: {"name": ["must not be blank"]}}} -> ["params[0].name must not be blank"]
    (state.py separates with ": ", as "runners[2].project_id: Not a valid UUID.")."""
    if isinstance(messages, (list, tuple)):
        out = []
        for m in messages:
            if isinstance(m, dict):  # a list field's items' own errors
                out.extend(flatten(m, prefix, separator))
            else:
                out.append(f"{prefix}{separator}{m}" if prefix else str(m))
        return out
    out = []
    for key, value in messages.items():
        if key == "_schema":
            name = prefix
        elif isinstance(key, int):
            name = f"{prefix}[{key}]"
        elif key in ("key", "value") and prefix:
            name = prefix  # marshmallow's Dict nests key/value errors one level deeper
        else:
            name = f"{prefix}.{key}" if prefix else str(key)
        out.extend(flatten(value, name, separator))
    return out


EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def parse_instant(text):
    """An ISO-8601 time -> integer microseconds since the epoch, exactly (a float timestamp can
    land 1 us off); a time without an offset is UTC. ValueError if it is not one."""
    moment = datetime.datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return (moment - EPOCH) // datetime.timedelta(microseconds=1)


# -- fields whose type errors are Jackson parse errors (400), not constraint violations


class _TypedField:
    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return super()._deserialize(value, attr, data, **kwargs)
        except ValidationError as exc:
            reason = "; ".join(flatten(exc.messages))
            raise failure(400, f"Unable to process JSON. {self.data_key or self.name}: {reason}")


class Str(_TypedField, fields.String):
    """A Java String in a body. Jackson takes a number or a boolean as its text (5 -> "5",
    true -> "true"); an array or object is a parse error."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, (bool, int, float)):
            # Jackson keeps a number's source text ("1.50"); the parsed JSON has only the value.
            kind = "boolean" if isinstance(value, bool) else "number"
            value = json.dumps(value)
            notes.add(f"{self.data_key or self.name}: the {kind} {value} was taken as the string "
                      f"{json.dumps(value)}, as Jackson coerces it")
        return super()._deserialize(value, attr, data, **kwargs)


INTEGER_TEXT = re.compile(r"[+-]?[0-9]+")  # ASCII only: \d would take other scripts' digits


def fits_java(number, bits=32):
    """Whether `number` fits a Java int (bits=32) or long (bits=64)."""
    return -(2 ** (bits - 1)) <= number < 2 ** (bits - 1)


class Int(_TypedField, fields.Integer):
    """A Java `int` (or `long`, bits=64) in a body, coerced as Jackson does: a fraction is
    cut toward zero (1.9 -> 1), a string of digits is read (" 300 " -> 300, "" -> null);
    a boolean, other text, or a value past the type's range is a parse error."""

    def __init__(self, bits=32, **kwargs):
        super().__init__(strict=True, **kwargs)
        self.bits = bits

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):  # JSON true is not a number
            raise failure(400, f"Unable to process JSON. {self.name}: not a valid integer")
        if isinstance(value, float) and math.isfinite(value):
            if value != int(value):
                notes.add(f"{self.name}: {value} was cut to {int(value)}, as Jackson coerces a fraction")
            value = int(value)
        elif isinstance(value, str):
            text = value.strip()
            if not text:
                notes.add(f"{self.name}: the empty string was taken as null, as Jackson coerces it")
                return None
            if not INTEGER_TEXT.fullmatch(text):
                raise failure(400, f"Unable to process JSON. {self.name}: {value!r} is not a valid integer")
            if len(text.lstrip("+-")) > 19:  # fits no int or long (and Python refuses 4,300 digits)
                raise self.out_of_range(text)
            notes.add(f"{self.name}: the string {value!r} was read as the number {int(text)}, as Jackson coerces it")
            value = int(text)
        number = super()._deserialize(value, attr, data, **kwargs)
        if not fits_java(number, self.bits):
            raise self.out_of_range(number)
        return number

    def out_of_range(self, number):
        kind, shown = "int" if self.bits == 32 else "long", str(number)
        if len(shown) > 1000:  # as Jackson describes a long number
            shown = f"[Integer with {len(shown.lstrip('+-'))} digits]"
        return failure(400, f"Unable to process JSON. {self.name}: Numeric value ({shown}) out of range of {kind}")


class Bool(_TypedField, fields.Boolean):
    pass


class UUID(_TypedField, fields.UUID):
    pass


class Enum(Str):
    """A string from a fixed set; anything else fails to parse (400), as a Java enum."""

    def __init__(self, choices, **kwargs):
        self.choices = tuple(choices)
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        if value not in self.choices:
            raise failure(
                400,
                f"Unable to process JSON. {self.name}: {value!r} is not one of {list(self.choices)}",
            )
        return value


class JsonObject(_TypedField, fields.Dict):
    """A free-form JSON object (the contract's JsonNode)."""


class List(_TypedField, fields.List):
    pass


class Timestamp(fields.Field):
    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else iso_utc(value)


# -- bases


class BodySchema(Schema):
    class Meta:
        unknown = EXCLUDE  # Opik ignores unknown properties

    @pre_load
    def require_object(self, data, **kwargs):
        # Runs for a nested object and each item of a list body too: a JSON type
        # mismatch is a parse error (400), as in Jackson, not a constraint (422).
        if not isinstance(data, dict):
            raise failure(400, f"Unable to process JSON. Expected a JSON object, got {type(data).__name__}")
        if notes.collecting() and self.unknown == EXCLUDE:
            known = {field.data_key or name for name, field in self.load_fields.items()}
            ignored = sorted(str(key) for key in data if key not in known)
            if ignored:
                notes.add(f"{type(self).__name__}: ignored field(s) {', '.join(ignored)} (Opik ignores unknown "
                          "properties; check their spelling)")
        return data

    def handle_error(self, exc, data, **kwargs):
        raise error(422, *flatten(exc.messages))


class QuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    def handle_error(self, exc, data, **kwargs):
        raise error(400, *(f"query param {m}" for m in flatten(exc.messages)))


class QueryUUID(fields.UUID):
    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return super()._deserialize(value, attr, data, **kwargs)
        except ValidationError:
            raise not_found()


class QueryInt(fields.Integer):
    """A Java `int` query parameter: past 32 bits it fails to convert, as "abc" does."""

    default_error_messages = {"invalid": "must be an integer"}

    def _validated(self, value):
        number = super()._validated(value)
        if not fits_java(number):
            raise self.make_error("invalid")
        return number


class PageQuery(QuerySchema):
    page = QueryInt(load_default=0, validate=validate.Range(min=0, error="must be greater than or equal to {min}"))
    size = QueryInt(load_default=25, validate=validate.Range(min=1, error="must be greater than or equal to {min}"))


class ListRunnersQuery(PageQuery):
    project_id = QueryUUID(required=True, error_messages=NOT_NULL)
    status = fields.String(load_default=None)

    @post_load
    def check_status(self, data, **kwargs):
        # Dropwizard matches enum query values case-insensitively.
        if data["status"] is not None:
            data["status"] = data["status"].lower()
            if data["status"] not in ("pairing", "connected", "disconnected"):
                raise error(400, "query param status must be one of [pairing, connected, disconnected]")
        return data


class ListProjectsQuery(QuerySchema):
    """Opik's project search: pages count from 1 there, 10 projects each by default."""

    page = QueryInt(load_default=1, validate=validate.Range(min=1, error="must be greater than or equal to {min}"))
    size = QueryInt(load_default=10, validate=validate.Range(min=1, error="must be greater than or equal to {min}"))
    name = fields.String(load_default=None)


JOB_STATUSES = ("pending", "running", "completed", "failed", "cancelled")


class ListJobsQuery(PageQuery):
    project_id = QueryUUID(load_default=None)
    # Extensions (Opik ignores them; the console uses them): filters, and counts per status.
    REPEATABLE = ("status",)
    status = fields.List(fields.String(), load_default=())
    agent_name = fields.String(load_default=None)
    counts = fields.Boolean(load_default=False)

    @post_load
    def check_status(self, data, **kwargs):
        statuses = tuple(dict.fromkeys(value.strip().lower() for value in data["status"] if value.strip()))
        unknown = [value for value in statuses if value not in JOB_STATUSES]
        if unknown:
            raise error(400, f"query param status must be one of [{', '.join(JOB_STATUSES)}], not {unknown[0]!r}")
        data["status"] = statuses
        data["agent_name"] = data["agent_name"] or None  # `agent_name=` filters nothing, as `status=` does
        data["filtered"] = bool(statuses or data["agent_name"] is not None or data["counts"])
        return data


class LogsQuery(QuerySchema):
    offset = QueryInt(load_default=0, validate=validate.Range(min=0, error="must be greater than or equal to {min}"))


# -- request bodies


class JobMetadataSchema(BodySchema):
    dataset_id = UUID(allow_none=True)
    dataset_version_id = UUID(allow_none=True)
    dataset_item_version_id = UUID(allow_none=True)
    dataset_item_id = UUID(allow_none=True)


class CreateJobRequest(BodySchema):
    agent_name = Str(required=True, error_messages=NOT_NULL, validate=NOT_BLANK)
    project_id = UUID(required=True, error_messages=NOT_NULL)
    inputs = JsonObject(allow_none=True)
    mask_id = UUID(allow_none=True)
    prompt_masks = JsonObject(keys=UUID(), values=UUID(), allow_none=True)
    blueprint_name = Str(allow_none=True, validate=NOT_BLANK)
    metadata = fields.Nested(JobMetadataSchema, allow_none=True)

    @post_load
    def normalise(self, data, **kwargs):
        if data.get("mask_id") is not None:
            notes.add("mask_id is deprecated: Opik stores and echoes it, but prompt_masks is what to send")
        # Stored as JSON text, so ids inside documents become strings here.
        if data.get("blueprint_name") is not None:
            data["blueprint_name"] = data["blueprint_name"].strip()
        if data.get("prompt_masks") is not None:
            data["prompt_masks"] = {str(k): str(v) for k, v in data["prompt_masks"].items()}
        if data.get("metadata") is not None:
            data["metadata"] = {k: str(v) for k, v in data["metadata"].items() if v is not None}
        return data


class JobResultRequest(BodySchema):
    status = Enum(("pending", "running", "completed", "failed", "cancelled"), required=True, error_messages=NOT_NULL)
    result = JsonObject(allow_none=True)
    error = Str(allow_none=True)
    trace_id = UUID(allow_none=True)


class LogEntrySchema(BodySchema):
    stream = Str(required=True, error_messages=NOT_NULL, validate=NOT_BLANK)
    text = Str(required=True, error_messages=NOT_NULL, validate=NOT_BLANK)


class HeartbeatRequest(BodySchema):
    capabilities = List(Str(), allow_none=True)


class ParamSchema(BodySchema):
    name = Str(required=True, error_messages=NOT_NULL, validate=NOT_BLANK)
    type = Str(required=True, error_messages=NOT_NULL, validate=NOT_BLANK)
    presence = Enum(("required", "optional"), allow_none=True)


class AgentSchema(BodySchema):
    name = Str(allow_none=True)
    description = Str(allow_none=True)
    language = Str(allow_none=True)
    executable = Str(allow_none=True)
    source_file = Str(allow_none=True)
    params = List(fields.Nested(ParamSchema), allow_none=True)
    timeout = Int(allow_none=True)

    @post_load
    def normalise(self, data, **kwargs):
        # Stored as it will be returned: nulls left out, `timeout` an int (0 when unset).
        data = {k: v for k, v in data.items() if v is not None}
        data["timeout"] = data.get("timeout") or 0
        if "params" in data:
            data["params"] = [{k: v for k, v in p.items() if v is not None} for p in data["params"]]
        return data


class AgentsRequest(BodySchema):
    """The PUT agents body is a bare map; it is loaded as {"agents": body}."""

    agents = JsonObject(keys=Str(), values=fields.Nested(AgentSchema), required=True, error_messages=NOT_NULL)


class CreateSessionRequest(BodySchema):
    project_id = UUID(required=True, error_messages=NOT_NULL)
    activation_key = Str(
        required=True,
        error_messages=NOT_NULL,
        validate=validate.Length(min=43, max=44, error="size must be between {min} and {max}"),
    )
    ttl_seconds = Int(
        load_default=300,
        allow_none=True,
        validate=validate.Range(min=60, max=600, error="must be between {min} and {max}"),
    )
    type = Enum(("connect", "endpoint"), required=True, error_messages=NOT_NULL)
    headless = Bool(allow_none=True)  # upstream uses it for analytics only

    @post_load
    def default_ttl(self, data, **kwargs):
        if data.get("ttl_seconds") is None:
            data["ttl_seconds"] = 300
        return data


class ActivateRequest(BodySchema):
    runner_name = Str(
        required=True,
        error_messages=NOT_NULL,
        validate=[NOT_BLANK, validate.Length(max=128, error="size must be between 0 and {max}")],
    )
    hmac = Str(
        required=True,
        error_messages=NOT_NULL,
        validate=validate.Length(min=43, max=44, error="size must be between {min} and {max}"),
    )


class ProjectWriteRequest(BodySchema):
    name = Str(required=True, error_messages=NOT_NULL, validate=NOT_BLANK)
    description = Str(allow_none=True, validate=validate.Length(max=255, error="size must be between 0 and {max}"))
    visibility = Enum(("private", "public"), allow_none=True)


class ProjectRetrieveRequest(BodySchema):
    name = Str(required=True, error_messages=NOT_NULL, validate=NOT_BLANK)
    includeStats = Bool(allow_none=True)


BRIDGE_TYPES = ("ReadFile", "WriteFile", "EditFile", "ListFiles", "SearchFiles", "Exec")
BRIDGE_STATUSES = ("pending", "picked_up", "completed", "failed", "timed_out")


class BridgeSubmitRequest(BodySchema):
    type = Enum(BRIDGE_TYPES, required=True, error_messages=NOT_NULL)
    args = JsonObject(required=True, error_messages=NOT_NULL)
    timeout_seconds = Int(allow_none=True)


class BridgeNextRequest(BodySchema):
    max_commands = Int(allow_none=True)


class BridgeResultRequest(BodySchema):
    status = Enum(BRIDGE_STATUSES, required=True, error_messages=NOT_NULL)
    result = JsonObject(allow_none=True)
    error = JsonObject(allow_none=True)
    duration_ms = Int(bits=64, allow_none=True)


class BridgeGetQuery(QuerySchema):
    wait = fields.Boolean(load_default=False)
    timeout = QueryInt(load_default=30)


class TelemetryDocument(BodySchema):
    """A trace or span as the SDK writes it: a few fields checked, the rest kept as sent."""

    class Meta:
        unknown = INCLUDE

    id = UUID(load_default=None)
    project_name = Str(allow_none=True)
    trace_id = UUID(allow_none=True)
    parent_span_id = UUID(allow_none=True)

    @post_load
    def ids_as_text(self, data, **kwargs):
        data["id"] = data["id"] or new_id()  # Opik makes the id when the client sends none
        for key in ("id", "trace_id", "parent_span_id"):
            if data.get(key) is not None:
                data[key] = str(data[key])
        return data


class TraceBatchRequest(BodySchema):
    traces = List(fields.Nested(TelemetryDocument), required=True, error_messages=NOT_NULL)


class SpanBatchRequest(BodySchema):
    spans = List(fields.Nested(TelemetryDocument), required=True, error_messages=NOT_NULL)


class SpansQuery(PageQuery):
    trace_id = QueryUUID(load_default=None)


# -- responses


class ResponseSchema(Schema):
    @post_dump
    def drop_nulls(self, data, **kwargs):
        # Opik's mapper writes NON_NULL: absent beats null.
        return {k: v for k, v in data.items() if v is not None}


class RunnerSchema(ResponseSchema):
    id = fields.UUID()
    name = fields.String()
    project_id = fields.UUID()
    status = fields.String()
    connected_at = Timestamp()
    agents = fields.Method("dump_agents")
    capabilities = fields.Method("dump_capabilities")
    checklist = fields.Raw()
    type = fields.String()

    def dump_agents(self, runner):
        if runner.status != "connected":
            return []  # upstream hides a lapsed runner's agents
        return [{**agent, "name": name} for name, agent in runner.agents.items()]

    def dump_capabilities(self, runner):
        return runner.declared_capabilities


class JobSchema(ResponseSchema):
    id = fields.UUID()
    runner_id = fields.UUID(attribute="runner_id")
    agent_name = fields.String()
    status = fields.String()
    inputs = fields.Raw()
    result = fields.Raw()
    error = fields.String()
    project_id = fields.UUID()
    trace_id = fields.UUID()
    mask_id = fields.UUID()
    prompt_masks = fields.Raw()
    blueprint_name = fields.String()
    metadata = fields.Raw()
    timeout = fields.Integer()
    created_at = Timestamp()
    started_at = Timestamp()
    completed_at = Timestamp()


def page_schema(item_schema):
    class PageSchema(Schema):
        page = fields.Integer()
        size = fields.Integer()
        total = fields.Integer()
        content = fields.List(fields.Nested(item_schema))

    return PageSchema()


class HeartbeatResponse(Schema):
    cancelled_job_ids = fields.List(fields.UUID())


class CreateSessionResponse(Schema):
    session_id = fields.UUID()
    runner_id = fields.UUID()


class ProjectSchema(ResponseSchema):
    id = fields.UUID()
    name = fields.String()
    visibility = fields.String()
    description = fields.String()
    created_at = Timestamp()
    created_by = fields.String()
    last_updated_at = Timestamp()
    last_updated_by = fields.String()


class BridgeCommandItem(ResponseSchema):
    command_id = fields.UUID(attribute="id")
    type = fields.String()
    args = fields.Raw()
    timeout_seconds = fields.Integer()
    submitted_at = Timestamp()


class BridgeCommandSchema(BridgeCommandItem):
    runner_id = fields.UUID(attribute="runner_id")
    status = fields.String()
    result = fields.Raw()
    error = fields.Raw()
    picked_up_at = Timestamp()
    completed_at = Timestamp()
    duration_ms = fields.Integer()


class BridgeBatchSchema(Schema):
    commands = fields.List(fields.Nested(BridgeCommandItem))


class TelemetrySchema(Schema):
    """A stored trace or span: the document as sent, with its id and project id."""

    def dump(self, obj, **kwargs):
        document = {**obj.data, "id": str(obj.id)}
        if obj.project_id is not None:
            document["project_id"] = str(obj.project_id)
        return {k: v for k, v in document.items() if v is not None}


runner_page = page_schema(RunnerSchema)
span_page = page_schema(TelemetrySchema)


# -- the control plane (/_admin/): its own API, whose errors are all {"code": 400, "message": ...}


class AdminSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    def handle_error(self, exc, data, **kwargs):
        raise failure(400, "; ".join(flatten(exc.messages)))


class AdminQuery(AdminSchema):
    def handle_error(self, exc, data, **kwargs):
        raise failure(400, "; ".join(f"query param {m}" for m in flatten(exc.messages)))


NO_NUL = validate.Regexp(r"^[^\x00]*$", error="must not contain NUL characters")


class WorkspaceQuery(AdminQuery):
    workspace = fields.String(load_default=None, validate=[validate.Length(min=1, max=255), NO_NUL])


class JournalSince(fields.Field):
    """`since`: a journal entry's id (entries after it), or an ISO-8601 time (entries at or after it)."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = str(value).strip()
        if INTEGER_TEXT.fullmatch(text) and len(text) <= 18:
            return {"after_id": int(text)}
        try:
            return {"since_us": parse_instant(text)}
        except ValueError:
            raise ValidationError("must be a journal entry id or an ISO-8601 time") from None


class JournalPattern(Schema):
    """Which journal entries: every field optional."""

    method = fields.String(load_default=None)
    path = fields.String(load_default=None)
    operation = fields.String(load_default=None)
    status = fields.Integer(load_default=None, validate=validate.Range(100, 599))
    workspace = fields.String(load_default=None)
    since = JournalSince(load_default=None)


class RequestsQuery(JournalPattern, AdminQuery):
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 100_000))


class StrictAdminSchema(AdminSchema):
    """A body whose unknown fields are errors: a misspelt `times` would make a rule that never
    retires, a misspelt `operation` a wait that matches everything."""

    class Meta:
        unknown = RAISE


class WaitRequest(JournalPattern, StrictAdminSchema):
    count = fields.Integer(load_default=1, validate=validate.Range(1, 10_000))
    timeout_s = fields.Float(load_default=10.0, validate=validate.Range(0, 300))


class FaultRequest(StrictAdminSchema):
    method = fields.String(load_default=None)
    path = fields.String(load_default=None)
    operation = fields.String(load_default=None)
    workspace = fields.String(load_default=None)
    status = fields.Integer(load_default=None, validate=validate.Range(100, 599))
    body = fields.Raw(load_default=None)
    delay_ms = fields.Integer(load_default=None, validate=validate.Range(0, 600_000))
    drop = fields.Boolean(load_default=False)
    hold_ms = fields.Integer(load_default=None, validate=validate.Range(0, 600_000))
    probability = fields.Float(load_default=1.0, validate=validate.Range(0, 1))
    seed = fields.Integer(load_default=None, validate=validate.Range(0, 2**63 - 1))
    times = fields.Integer(load_default=None, validate=validate.Range(1, 2**31 - 1))

    @post_load
    def needs_an_effect(self, data, **kwargs):
        if data["status"] is None and not data["delay_ms"] and not data["drop"] and data["hold_ms"] is None:
            raise failure(400, "A fault rule needs an effect: status, delay_ms, drop or hold_ms")
        if data["body"] is not None and data["status"] is None:
            raise failure(400, "A fault rule's body goes with a status")
        return data


class ClockRequest(StrictAdminSchema):
    advance_s = fields.Float(required=True, validate=validate.Range(min=0, max=10 * 365 * 86400))


class ProviderStateRequest(AdminSchema):
    state = fields.String(required=True, validate=NOT_BLANK)
    params = fields.Dict(load_default=dict, allow_none=True)
    action = fields.String(load_default="setup", validate=validate.OneOf(("setup", "teardown")))


class JournalEntrySchema(Schema):
    id = fields.Integer()
    time = Timestamp(attribute="at")
    method = fields.String()
    path = fields.String()
    query = fields.String()
    headers = fields.Raw()
    request_body = fields.String()
    status = fields.Integer()
    response_body = fields.String()
    duration_ms = fields.Float()
    operation = fields.String()
    workspace = fields.String()
    notes = fields.Function(lambda entry: entry.notes or [])
    fault = fields.Integer()
