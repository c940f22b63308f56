"""Validate responses against the shared contract with openapi-core."""
import copy
import json
import pathlib

import yaml
from openapi_core import OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from openapi_core.templating.paths.exceptions import PathNotFound, OperationNotFound
from openapi_core.templating.responses.exceptions import ResponseNotFound

# A copy of the team's shared contract, kept in the repository so a fresh clone tests
# on its own; test_contract_copy.py checks the copy against ../shared when it is there.
CONTRACT = pathlib.Path(__file__).resolve().parents[1] / "contract" / "opik-runners-openapi.yaml"
SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "contract" / "opik-runners-openapi.yaml"


def _load():
    spec = yaml.safe_load(CONTRACT.read_text())
    spec = copy.deepcopy(spec)
    # Opik serves every path at the root and under /api.
    spec["servers"] = [{"url": "http://localhost/api"}, {"url": "http://localhost"}]
    return OpenAPI.from_dict(spec)


OPENAPI = _load()


class _Request(WerkzeugOpenAPIRequest):
    # Response validation needs the method and path only; the body stream is spent by then.
    @property
    def body(self):
        return None
checked = {"validated": 0, "undocumented": 0}


def is_error_body(body):
    """Either of Opik's two error shapes (behaviour notes §3.0)."""
    if not isinstance(body, dict):
        return False
    if "errors" in body:
        return isinstance(body["errors"], list) and all(isinstance(m, str) and m for m in body["errors"])
    return isinstance(body.get("code"), int) and isinstance(body.get("message"), str)


def validate(request, response):
    """Raise AssertionError if `response` breaks the contract.

    A status the contract does not list for the operation (the behaviour notes
    document several, e.g. 422 and 410) must still carry a documented error shape.
    """
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
