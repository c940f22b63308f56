"""The fields and base schemas every request schema is built of, and how each failure maps to
the answer Opik gives it (docs/opik-behaviour.md#error-shapes, docs/opik-behaviour.md#validation-errors):

- a value of the wrong JSON type, a malformed UUID or an unknown enum value in a body is a
  Jackson parse error: 400 `{"code": 400, "message": "Unable to process JSON. ..."}`; the
  scalars Jackson coerces are coerced (see Str and Int);
- a constraint (missing, blank, too long, out of range) on a body: 422 `{"errors": [...]}`;
- a constraint on a query parameter: 400 `{"errors": ["query param page ..."]}`;
- a query UUID that will not parse: 404, as JAX-RS answers it.
"""
import json
import math
import re

from marshmallow import EXCLUDE, Schema, ValidationError, fields, pre_load, validate

from ..clock import iso_utc
from ..errors import error, failure, not_found
from . import notes


NOT_NULL = {"required": "must not be null", "null": "must not be null"}


NOT_BLANK = validate.Regexp(r"\s*\S", error="must not be blank")


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
