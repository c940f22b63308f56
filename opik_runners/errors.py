"""The one way a request fails: raise ApiError, and app.py renders it.

Opik answers in two shapes (docs/opik-behaviour.md#error-shapes): business rules build
`{"errors": [...]}` themselves, while thrown exceptions become Dropwizard's
`{"code": N, "message": "..."}`. Each call site picks the shape upstream uses.
"""


class ApiError(Exception):
    def __init__(self, status, *messages, shape="errors", headers=None):
        super().__init__(status, messages)
        self.status = status
        self.messages = list(messages)
        self.shape = shape
        self.headers = headers or {}

    @property
    def body(self):
        if self.shape == "message":
            return {"code": self.status, "message": "; ".join(self.messages)}
        if self.shape == "empty":
            return None
        return {"errors": self.messages}


def error(status, *messages):
    """A business-rule failure: `{"errors": [...]}`."""
    return ApiError(status, *messages)


def failure(status, message):
    """A thrown-exception failure: `{"code": N, "message": "..."}`."""
    return ApiError(status, message, shape="message")


def not_found():
    """What JAX-RS answers for an unknown path or an id that will not parse."""
    return failure(404, "HTTP 404 Not Found")
