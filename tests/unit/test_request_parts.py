"""What every request is read for before its route runs: the workspace it names, and whether it
sends a body (read from the WSGI environ, not through werkzeug's lookups)."""
import pytest
from flask import Flask

from opik_runners.api import has_body, requested_workspace


@pytest.mark.parametrize("environ, expected", [
    ({}, False),
    ({"CONTENT_LENGTH": ""}, False),
    ({"CONTENT_LENGTH": "0"}, False),  # the CLI's polls: POST with Content-Length: 0
    ({"CONTENT_LENGTH": "2"}, True),
    ({"HTTP_TRANSFER_ENCODING": "chunked"}, True),
    ({"CONTENT_LENGTH": "0", "HTTP_TRANSFER_ENCODING": "gzip, chunked"}, True),
])
def test_has_body(environ, expected):
    assert has_body(environ) is expected


@pytest.mark.parametrize("headers, query, expected", [
    ({}, "", "default"),
    ({"Comet-Workspace": "team"}, "", "team"),
    ({}, "workspace_name=team", "team"),
    ({"Comet-Workspace": "header"}, "workspace_name=query", "header"),  # the header wins
    ({"Comet-Workspace": ""}, "workspace_name=query", "query"),  # an empty header names nothing
    ({}, "workspace_name=", "default"),
    ({}, "page=1&workspace_name=a%20b", "a b"),  # decoded as werkzeug decodes it
    ({}, "xworkspace_name=team", "default"),  # another parameter that merely contains the name
    ({}, "workspace%5Fname=team", "team"),  # the name percent-encoded, as werkzeug decodes it
    ({}, "page=%31", "default"),
])
def test_requested_workspace(headers, query, expected):
    with Flask(__name__).test_request_context("/", headers=headers, query_string=query):
        assert requested_workspace() == expected
