"""What the Opik API answers: runners, jobs, projects, bridge commands, traces and pages of
them. Absent beats null, as Opik's mapper writes NON_NULL (docs/opik-behaviour.md#json)."""
from marshmallow import Schema, fields, post_dump

from .fields import Timestamp


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
