"""Validate responses against the shared contract with openapi-core, and the control plane's
(/_admin/) against its own document, the package's admin-openapi.yaml; ContractClient, the
test client that validates every response it gets."""
import copy
import functools
import json
import urllib.parse

import yaml
from flask.testing import FlaskClient
from openapi_core import OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from openapi_core.templating.paths.exceptions import PathNotFound, OperationNotFound
from openapi_core.templating.responses.exceptions import ResponseNotFound

from tests.support import REPOSITORY

# A copy of the team's shared contract, kept in the repository so a fresh clone tests
# on its own; test_contract_copy.py checks the copy against ../shared when it is there.
CONTRACT = REPOSITORY / "contract" / "opik-runners-openapi.yaml"
SHARED = REPOSITORY.parent / "shared" / "contract" / "opik-runners-openapi.yaml"
ADMIN_CONTRACT = REPOSITORY / "opik_runners" / "admin-openapi.yaml"
ADMIN_PREFIX = "/_admin/"


def _load():
    spec = yaml.safe_load(CONTRACT.read_text())
    spec = copy.deepcopy(spec)
    # Opik serves every path at the root and under /api.
    spec["servers"] = [{"url": "http://localhost/api"}, {"url": "http://localhost"}]
    return OpenAPI.from_dict(spec)


OPENAPI = _load()


@functools.cache
def _admin():
    """The control plane's document, loaded by the first /_admin/ response (most runs see none)."""
    spec = yaml.safe_load(ADMIN_CONTRACT.read_text())
    spec["servers"] = [{"url": "http://localhost"}]  # the domain root only, never under /api
    return OpenAPI.from_dict(spec)


class _Request(WerkzeugOpenAPIRequest):
    # Response validation needs the method and path only; the body stream is spent by then.
    @property
    def body(self):
        return None

    # The documents name one server; a test may name any Host (guard.py's tests do).
    @property
    def host_url(self):
        return "http://localhost/"


checked = {"validated": 0, "undocumented": 0, "admin": 0}


def is_error_body(body):
    """Either of Opik's two error shapes (docs/opik-behaviour.md#error-shapes)."""
    if not isinstance(body, dict):
        return False
    if "errors" in body:
        return isinstance(body["errors"], list) and all(isinstance(m, str) and m for m in body["errors"])
    return isinstance(body.get("code"), int) and isinstance(body.get("message"), str)


def validate(request, response):
    """Raise AssertionError if `response` breaks the contract.

    A status the contract does not list for the operation (docs/opik-behaviour.md#opik-vs-spec
    lists several, e.g. 422 and 410) must still carry a documented error shape.
    """
    if request.path.startswith(ADMIN_PREFIX):
        return validate_admin(request, response)
    try:
        errors = list(
            OPENAPI.iter_response_errors(_Request(request), WerkzeugOpenAPIResponse(response))
        )
    except (PathNotFound, OperationNotFound):
        return
    real = []
    for err in errors:
        if isinstance(err, (PathNotFound, OperationNotFound)):
            return  # not in the contract (e.g. GET /v1/private/projects/{id})
        if isinstance(err, ResponseNotFound):
            checked["undocumented"] += 1
            if response.status_code >= 400 and response.data:
                assert is_error_body(json.loads(response.data)), response.data
            return
        real.append(err)
    assert not real, f"{request.method} {request.path} -> {response.status_code}: {real!r} {response.data[:500]!r}"
    checked["validated"] += 1


def validate_admin(request, response):
    """Raise AssertionError if a control-plane response breaks admin-openapi.yaml. Stricter than
    the main contract: the document is ours, so it lists every status each operation answers.
    A path or method it does not have must be refused in its error shape {"code", "message"}."""
    try:
        errors = list(_admin().iter_response_errors(_Request(request), WerkzeugOpenAPIResponse(response)))
    except (PathNotFound, OperationNotFound):
        errors = [PathNotFound(request.path)]
    where = f"{request.method} {request.full_path.rstrip('?')} -> {response.status_code}"
    if any(isinstance(err, (PathNotFound, OperationNotFound)) for err in errors):
        assert response.status_code in (404, 405), f"{where}: not in admin-openapi.yaml"
        body = json.loads(response.data)
        assert set(body) == {"code", "message"} and body["code"] == response.status_code, f"{where}: {body}"
    else:
        # openapi-core's errors name the cause only in __cause__ (which field broke which rule).
        assert not errors, f"{where}: {[(err, err.__cause__) for err in errors]!r} {response.data[:500]!r}"
    checked["admin"] += 1


def validate_http(method, url, status, headers, body):
    """The same checks for an answer from a real server (e.g. RunnerServer's `check_response`
    hook): `headers` a mapping or (name, value) pairs, `body` bytes."""
    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Request, Response

    split = urllib.parse.urlsplit(url)
    request = Request(EnvironBuilder(method=method, path=split.path, query_string=split.query).get_environ())
    response = Response(body, status=status, headers=[(k, v) for k, v in dict(headers).items()
                                                      if k.lower() not in ("content-length", "transfer-encoding")])
    validate(request, response)


class ContractClient(FlaskClient):
    """A test client that checks every response against the contract."""

    def open(self, *args, **kwargs):
        response = super().open(*args, **kwargs)
        if response.request is not None and not kwargs.get("buffered") is False:
            validate(response.request, response)
        return response
