"""The control plane's (/_admin/) own API: its queries and bodies, whose errors are all
`{"code": 400, "message": ...}`, and the journal's entries."""
from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, post_load, pre_load, validate

from ..clock import parse_instant
from ..errors import failure
from .fields import INTEGER_TEXT, NOT_BLANK, Timestamp, flatten


class AdminSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    @pre_load
    def require_object(self, data, **kwargs):
        if not isinstance(data, dict):
            raise failure(400, "Expected a JSON object")
        return data

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
    answer_delay_ms = fields.Integer(load_default=None, validate=validate.Range(0, 600_000))
    probability = fields.Float(load_default=1.0, validate=validate.Range(0, 1))
    seed = fields.Integer(load_default=None, validate=validate.Range(0, 2**63 - 1))
    times = fields.Integer(load_default=None, validate=validate.Range(1, 2**31 - 1))

    @post_load
    def needs_an_effect(self, data, **kwargs):
        if (data["status"] is None and not data["delay_ms"] and not data["drop"] and data["hold_ms"] is None
                and not data["answer_delay_ms"]):
            raise failure(400, "A fault rule needs an effect: status, delay_ms, drop, hold_ms or answer_delay_ms")
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
