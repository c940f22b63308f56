"""Health checks, the two project calls the CLI makes, auth and workspace scoping
(docs/opik-behaviour.md#auth; docs/opik-behaviour.md#cli-config, docs/opik-behaviour.md#paths,
docs/opik-behaviour.md#cli-headers, docs/opik-behaviour.md#cli-startup, docs/opik-behaviour.md#cli-side-traffic)."""
import uuid
from urllib.parse import urlsplit

import pytest

from tests.support.in_app import API, ROOT

KEYS = "alice:key-a,bob:key-b"
ALICE = {"Authorization": "key-a"}
BOB = {"Authorization": "key-b"}


@pytest.fixture
def auth_client(make_app):
    return make_app(OPIK_API_KEYS=KEYS).test_client()


def retrieve(client, name, headers=None, prefix=API, **query):
    return client.post(f"{prefix}/projects/retrieve", json={"name": name}, headers=headers, query_string=query)


def create(client, name, headers=None, prefix=API, **query):
    return client.post(f"{prefix}/projects", json={"name": name}, headers=headers, query_string=query)


# -- health


@pytest.mark.parametrize("path", ["/is-alive/ping", "/api/is-alive/ping"])
def test_ping(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.is_json
    assert response.json == {"healthy": True}


@pytest.mark.parametrize("path", ["/is-alive/ver", "/api/is-alive/ver"])
def test_version(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.is_json
    assert isinstance(response.json["version"], str) and response.json["version"]


def test_ping_url_as_the_cli_builds_it(client):
    # urljoin(f"{url_override}/", "is-alive/ping") with url_override ".../api/" -> "/api/is-alive/ping"
    assert client.get("/api/is-alive/ping", headers={"Comet-Workspace": "default"}).json == {"healthy": True}


@pytest.mark.parametrize("path", ["/is-alive/ping", "/api/is-alive/ping", "/is-alive/ver", "/api/is-alive/ver"])
def test_health_needs_no_key(auth_client, path):
    response = auth_client.get(path)
    assert response.status_code == 200, response.data
    # A wrong key does not break the health check either.
    assert auth_client.get(path, headers={"Authorization": "nope"}).status_code == 200


# -- projects


@pytest.mark.parametrize("prefix", [API, ROOT])
def test_create_then_retrieve(client, prefix):
    response = create(client, "demo", prefix=prefix)
    assert response.status_code == 201, response.data
    assert response.data == b""
    location = urlsplit(response.headers["Location"]).path
    assert location.startswith(f"{prefix}/projects/")
    project_id = location.rsplit("/", 1)[1]
    assert uuid.UUID(project_id).version == 7

    found = retrieve(client, "demo", prefix=prefix)
    assert found.status_code == 200, found.data
    assert found.json["id"] == project_id
    assert found.json["name"] == "demo"
    # The Location is a real resource.
    assert client.get(location).json["id"] == project_id


def test_retrieve_missing_is_404_with_errors(client):
    response = retrieve(client, "missing")
    assert response.status_code == 404
    assert set(response.json) == {"errors"}
    assert response.json["errors"] and all(isinstance(m, str) and m for m in response.json["errors"])


def test_retrieve_is_exact_name_match(client):
    create(client, "Demo")
    assert retrieve(client, "Demo").status_code == 200
    assert retrieve(client, "demo").status_code == 404
    assert retrieve(client, "Dem").status_code == 404
    assert retrieve(client, "Demo%").status_code == 404


def test_duplicate_is_409(client):
    assert create(client, "demo").status_code == 201
    again = create(client, "demo")
    assert again.status_code == 409, again.data
    assert again.json["errors"] and isinstance(again.json["errors"][0], str)
    # The original is untouched.
    assert retrieve(client, "demo").status_code == 200


@pytest.mark.parametrize("name", ["", "   ", "\t"])
def test_blank_name_is_422(client, name):
    response = create(client, name)
    assert response.status_code == 422, response.data
    assert response.json == {"errors": ["name must not be blank"]}


def test_missing_name_is_422(client):
    response = client.post(f"{API}/projects", json={"description": "x"})
    assert response.status_code == 422
    assert response.json == {"errors": ["name must not be null"]}
    response = client.post(f"{API}/projects/retrieve", json={})
    assert response.status_code == 422
    assert response.json == {"errors": ["name must not be null"]}


def test_extra_fields_are_ignored(client):
    assert client.post(f"{API}/projects", json={"name": "x", "unknown": 1}).status_code == 201
    found = client.post(f"{API}/projects/retrieve", json={"name": "x", "includeStats": True, "other": [1]})
    assert found.status_code == 200


def test_projects_are_per_workspace(client):
    team_a, team_b = {"Comet-Workspace": "team-a"}, {"Comet-Workspace": "team-b"}
    assert create(client, "shared", headers=team_a).status_code == 201
    assert retrieve(client, "shared", headers=team_b).status_code == 404
    assert retrieve(client, "shared").status_code == 404  # the default workspace
    assert create(client, "shared", headers=team_b).status_code == 201  # not a duplicate there
    id_a = retrieve(client, "shared", headers=team_a).json["id"]
    id_b = retrieve(client, "shared", headers=team_b).json["id"]
    assert id_a != id_b
    # A project id from another workspace is not reachable either.
    assert client.get(f"{API}/projects/{id_a}", headers=team_b).status_code == 404


def test_ensure_project_flow_of_the_headless_cli(client):
    # retrieve 404, create 201, retrieve 200 (docs/opik-behaviour.md#cli-startup)
    assert retrieve(client, "new").status_code == 404
    assert create(client, "new").status_code == 201
    assert retrieve(client, "new").status_code == 200


# -- auth


def test_missing_key_is_401(auth_client):
    for call in (lambda: retrieve(auth_client, "demo"), lambda: create(auth_client, "demo"),
                 lambda: auth_client.get(f"{API}/local-runners", query_string={"project_id": str(uuid.uuid4())})):
        response = call()
        assert response.status_code == 401, response.data
        assert response.json == {"code": 401, "message": "API key should be provided"}


def test_empty_key_is_401(auth_client):
    response = create(auth_client, "demo", headers={"Authorization": ""})
    assert response.status_code == 401
    assert response.json == {"code": 401, "message": "API key should be provided"}


@pytest.mark.parametrize("value", ["key-c", "Bearer key-a", "bearer key-a", "Basic key-a", "KEY-A", "alice",
                                   "alice:key-a"])
def test_unknown_or_prefixed_key_is_401(auth_client, value):
    response = create(auth_client, "demo", headers={"Authorization": value})
    assert response.status_code == 401, response.data
    assert response.json["code"] == 401 and isinstance(response.json["message"], str)
    # Nothing was created.
    assert retrieve(auth_client, "demo", headers=ALICE).status_code == 404


@pytest.mark.parametrize("prefix", [API, ROOT])
def test_raw_key_is_accepted_and_names_the_user(auth_client, prefix):
    assert create(auth_client, "demo", headers=ALICE, prefix=prefix).status_code == 201
    found = retrieve(auth_client, "demo", headers=BOB, prefix=prefix)
    assert found.status_code == 200
    assert found.json["created_by"] == "alice"
    assert found.json["last_updated_by"] == "alice"


def test_auth_is_checked_before_the_body(auth_client):
    response = auth_client.post(f"{API}/projects", data=b"{not json", content_type="application/json")
    assert response.status_code == 401


def test_without_keys_the_user_is_admin(client):
    assert create(client, "demo").status_code == 201
    found = retrieve(client, "demo")
    assert found.json["created_by"] == "admin"
    # Any Authorization header is simply ignored.
    assert retrieve(client, "demo", headers={"Authorization": "whatever"}).status_code == 200


# -- workspace


def test_default_workspace_is_named_default(client):
    assert create(client, "demo").status_code == 201
    assert retrieve(client, "demo", headers={"Comet-Workspace": "default"}).status_code == 200
    assert retrieve(client, "demo", workspace_name="default").status_code == 200
    assert retrieve(client, "demo", headers={"Comet-Workspace": "other"}).status_code == 404


def test_workspace_from_header(client):
    assert create(client, "demo", headers={"Comet-Workspace": "team"}).status_code == 201
    assert retrieve(client, "demo", headers={"Comet-Workspace": "team"}).status_code == 200
    assert retrieve(client, "demo").status_code == 404


def test_workspace_from_query_parameter(client):
    assert create(client, "demo", workspace_name="team").status_code == 201
    assert retrieve(client, "demo", headers={"Comet-Workspace": "team"}).status_code == 200
    assert retrieve(client, "demo", workspace_name="team").status_code == 200
    assert retrieve(client, "demo").status_code == 404


def test_workspace_scopes_runners_too(client, in_app):
    team = {"Comet-Workspace": "team"}
    project_id = in_app.ensure_project(headers=team)
    listed = client.get(f"{API}/local-runners", query_string={"project_id": project_id, "workspace_name": "team"})
    assert listed.status_code == 200 and listed.json["total"] == 0


def test_users_share_a_workspace_for_projects(auth_client):
    # Projects are per workspace, not per user: Bob sees Alice's project and cannot duplicate it.
    assert create(auth_client, "demo", headers=ALICE).status_code == 201
    assert retrieve(auth_client, "demo", headers=BOB).status_code == 200
    assert create(auth_client, "demo", headers=BOB).status_code == 409
    other_ws = {**BOB, "Comet-Workspace": "bob-space"}
    assert retrieve(auth_client, "demo", headers=other_ws).status_code == 404


# -- the project search (Opik's GET /v1/private/projects; the console's project picker)


def search(client, headers=None, **query):
    response = client.get(f"{API}/projects", query_string=query, headers=headers)
    assert response.status_code == 200, response.data
    return response.json


def test_project_search_pages_from_1_newest_first(client):
    for name in ["Alpha", "beta", "gamma"]:
        create(client, name)
    create(client, "theirs", headers={"Comet-Workspace": "elsewhere"})
    every = search(client)
    assert (every["page"], every["size"], every["total"]) == (1, 10, 3)
    assert [p["name"] for p in every["content"]] == ["gamma", "beta", "Alpha"]
    assert every["content"][0] == retrieve(client, "gamma").json  # the same document as the other project calls
    assert [p["name"] for p in search(client, size=2, page=2)["content"]] == ["Alpha"]
    assert search(client, size=2, page=3)["content"] == []
    assert [p["name"] for p in search(client, name="AL")["content"]] == ["Alpha"]  # part of a name, any case
    assert [p["name"] for p in search(client, headers={"Comet-Workspace": "elsewhere"})["content"]] == ["theirs"]


@pytest.mark.parametrize("query, message", [({"page": 0}, "query param page must be greater than or equal to 1"),
                                            ({"size": 0}, "query param size must be greater than or equal to 1"),
                                            ({"page": "x"}, "query param page must be an integer")])
def test_project_search_refuses_bad_paging(client, query, message):
    response = client.get(f"{API}/projects", query_string=query)
    assert response.status_code == 400 and response.json == {"errors": [message]}


def test_project_search_needs_a_key_when_keys_are_set(auth_client):
    assert auth_client.get(f"{API}/projects").status_code == 401
    assert auth_client.get(f"{API}/projects", headers=ALICE).status_code == 200


def test_project_search_matches_inside_a_name_and_totals_every_match(client):
    for name in ["Alpha", "beta", "gamma"]:
        create(client, name)
    assert [p["name"] for p in search(client, name="PH")["content"]] == ["Alpha"]  # not only a prefix
    assert [p["name"] for p in search(client, name="mM")["content"]] == ["gamma"]
    page = search(client, name="a", size=1, page=2)
    assert page["total"] == 3 and [p["name"] for p in page["content"]] == ["beta"]


def test_project_search_breaks_created_at_ties_by_id_newest_first(client):
    from opik_runners.store.models import Project, database

    for name in ["one", "two", "three", "four"]:
        create(client, name)
    with database.atomic():
        Project.update(created_at=1).execute()
    ids = [p["id"] for p in search(client)["content"]]
    assert len(ids) == 4 and ids == sorted(ids, key=lambda i: uuid.UUID(i).int, reverse=True)
