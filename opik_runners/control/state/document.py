"""A state document's schema: the types and shapes of its items, checked before anything is
written (what refers to what is checked by the load, seed.py). The format is described in
`control/state/__init__.py` and docs/reference/state-documents.md."""
import json

from marshmallow import Schema, ValidationError, fields, validate

from ...clock import parse_instant
from ...protocol import BRIDGE_STATUSES, BRIDGE_TYPES, JOB_STATUSES, RunnerStatus, RunnerType
from ...domain.limits import BRIDGE_MAX_TIMEOUT
from ...domain.runners import CAPABILITY
from ...schemas.fields import flatten


VERSION = 1


KINDS = ("projects", "runners", "jobs", "job_logs", "pairing_sessions", "bridge_commands", "traces", "spans")




class StateError(ValueError):
    """A document that will not load; the message says what is wrong and where."""


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
    type = optional(one_of(tuple(RunnerType)))
    name = optional(text())
    status = optional(one_of((RunnerStatus.CONNECTED, RunnerStatus.DISCONNECTED)))
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
    type = optional(one_of(tuple(RunnerType)))
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
