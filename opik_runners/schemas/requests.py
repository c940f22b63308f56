"""What the Opik API takes: each endpoint's body and query parameters, loaded as Opik's
Jackson and Jersey load them (schemas/fields.py says how each failure maps to Opik's answer)."""
from marshmallow import INCLUDE, fields, post_load, validate

from ..errors import error
from ..store.models import new_id
from . import notes
from .fields import (
    NOT_BLANK, NOT_NULL, BodySchema, Bool, Enum, Int, JsonObject, List, QueryInt, QuerySchema, QueryUUID, Str,
    UUID,
)


# -- queries


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


# -- the control plane (/_admin/): its own API, whose errors are all {"code": 400, "message": ...}


