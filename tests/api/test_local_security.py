"""A dev server on loopback that web pages cannot drive (web/guard.py;
docs/explanation/security.md). Each attack is sent as a browser would send it for an attacker's page, and each is
refused with a clear 4xx before it changes anything; the clients that are not browsers, the
server's own pages and a listed CORS origin keep working."""
import json

import pytest

from tests.support.in_app import API

EVIL = "http://evil.example"
REBOUND = "evil.example:5173"  # a host name an attacker made resolve to 127.0.0.1


@pytest.fixture
def world(in_app):
    """A server with something to lose: a paired runner (its pairing session's activation key in
    the state export), a job, a fault-free control plane, a journal with entries."""
    runner_id, project_id = in_app.pair()
    in_app.register(runner_id)
    in_app.create_job(project_id, inputs={"question": "keep me"})
    return {"runner_id": runner_id, "project_id": project_id}


def everything(client):
    """What an attack could change: the store, the fault rules, the clock and the journal's size."""
    return {
        "state": client.get("/_admin/state").json,
        "faults": client.get("/_admin/faults").json,
        "clock": client.get("/_admin/clock").json["offset_s"],
        "journal": client.get("/_admin/requests").json["meta"]["total"],
    }


def assert_refused(response, status, *words):
    assert response.status_code == status, response.data
    assert response.json["code"] == status and all(word in response.json["message"] for word in words), response.json
    assert "Access-Control-Allow-Origin" not in response.headers


# -- cross-site "simple" requests: what any page may send without asking (no preflight)

SIMPLE_REQUESTS = {
    "a text/plain body creating a project": ("POST", f"{API}/projects", '{"name": "pwned"}', "text/plain"),
    "a body with no Content-Type (a Blob) creating a project": ("POST", f"{API}/projects", '{"name": "pwned"}', None),
    "a form seeding a state document": ("POST", "/_admin/state", "projects=pwned", "application/x-www-form-urlencoded"),
    "a text/plain fault rule failing every request": ("POST", "/_admin/faults", '{"status": 500}', "text/plain"),
    "a multipart form moving the clock a day": ("POST", "/_admin/clock", "--b\r\n\r\n--b--", "multipart/form-data; boundary=b"),
    "a bodiless reset wiping everything": ("POST", "/_admin/reset", None, None),
    "a bodiless delete of the journal": ("DELETE", "/_admin/requests", None, None),
    "a bodiless delete of the fault rules": ("DELETE", "/_admin/faults", None, None),
    "a bodiless clock reset": ("DELETE", "/_admin/clock", None, None),
    "a text/plain job for the runner": ("POST", f"{API}/local-runners/jobs", '{"agent_name": "answer"}', "text/plain"),
}


@pytest.mark.parametrize("attack", SIMPLE_REQUESTS)
def test_a_simple_request_from_another_origin_is_refused_and_changes_nothing(client, world, attack):
    method, path, body, content_type = SIMPLE_REQUESTS[attack]
    before = everything(client)
    headers = {"Origin": EVIL, "Sec-Fetch-Site": "cross-site"}
    response = client.open(path, method=method, data=body, content_type=content_type, headers=headers)
    assert_refused(response, 403, EVIL, "OPIK_RUNNERS_CORS_ORIGINS")
    after = everything(client)
    assert after["state"] == before["state"] and after["faults"] == before["faults"]
    assert after["clock"] == before["clock"]
    # The refusal itself is journaled where the journal records (the Opik API, not /_admin/).
    assert after["journal"] == before["journal"] + (0 if path.startswith("/_admin/") else 1)


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
def test_a_write_a_browser_marks_as_another_sites_is_refused_even_without_an_origin(client, world, site):
    # same-site: a page of http://localhost:3000 is the same *site* as the server, not the same origin.
    before = everything(client)
    response = client.post("/_admin/reset", headers={"Sec-Fetch-Site": site})
    assert_refused(response, 403, f"Sec-Fetch-Site: {site}")
    assert everything(client)["state"] == before["state"]


def test_a_sandboxed_or_file_page_with_a_null_origin_is_refused(client, world):
    assert_refused(client.post("/_admin/reset", headers={"Origin": "null"}), 403, "null")


def test_another_port_of_the_same_host_is_another_origin(client, world):
    response = client.post(f"{API}/projects", json={"name": "x"}, headers={"Origin": "http://localhost:3000"})
    assert_refused(response, 403, "http://localhost:3000")


# -- bodies that are not JSON, from any client


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=b", "application/jsonx", "text/json",
                                          "application/merge-patch+json"])
def test_a_body_that_is_not_json_is_415_in_opiks_shape(client, world, content_type):
    before = everything(client)
    response = client.post(f"{API}/projects", data='{"name": "typed"}', content_type=content_type)
    assert_refused(response, 415, "application/json")
    assert everything(client)["state"] == before["state"]


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "Application/JSON"])
def test_json_media_types_with_parameters_are_taken(client, content_type):
    assert client.post(f"{API}/projects", data='{"name": "typed"}', content_type=content_type).status_code == 201


def test_a_request_without_a_body_needs_no_type(client, world):
    runner_id = world["runner_id"]
    assert client.post(f"{API}/local-runners/{runner_id}/jobs/next").status_code == 200
    assert client.post(f"{API}/local-runners/{runner_id}/heartbeats").status_code == 200
    assert client.post("/_admin/reset").status_code == 204


def test_a_path_no_route_serves_is_404_before_its_media_type(client):
    assert client.post(f"{API}/nowhere", data="x", content_type="text/plain").status_code == 404


# -- DNS rebinding: a page on evil.example (resolving to 127.0.0.1) reading and writing


@pytest.mark.parametrize("method, path", [
    ("GET", "/_admin/state"),  # the whole store, activation keys included
    ("GET", "/_admin/requests"),  # every request and answer body
    ("GET", f"{API}/projects"),
    ("GET", "/console/config.json"),
    ("POST", "/_admin/reset"),
])
def test_a_rebound_host_name_reads_and_writes_nothing(client, world, method, path):
    before = everything(client)
    response = client.open(path, method=method, headers={"Host": REBOUND})
    assert_refused(response, 403, REBOUND, "OPIK_RUNNERS_ALLOWED_HOSTS")
    assert b"activation_key" not in response.data and b"keep me" not in response.data
    assert everything(client)["state"] == before["state"]


@pytest.mark.parametrize("host", ["localhost", "localhost:5173", "LOCALHOST:5173", "127.0.0.1:5173", "[::1]:5173",
                                  "192.168.1.5:5173", "[fe80::1]", "app.localhost:5173", "localhost.:5173"])
def test_loopback_names_and_ip_addresses_are_always_served(client, host):
    assert client.get("/_admin/clock", headers={"Host": host}).status_code == 200


def test_a_name_listed_in_the_setting_is_served_and_a_leading_dot_takes_subdomains(make_app):
    client = make_app(OPIK_RUNNERS_ALLOWED_HOSTS="runners.example.com,.corp.example").test_client()
    for host in ("runners.example.com", "Runners.Example.com:8443", "corp.example", "a.b.corp.example:80"):
        assert client.get("/is-alive/ping", headers={"Host": host}).status_code == 200, host
    for host in ("example.com", "runners.example.com.evil.example", "notcorp.example"):
        assert client.get("/is-alive/ping", headers={"Host": host}).status_code == 403, host


def test_a_star_allows_any_host(make_app):
    client = make_app(OPIK_RUNNERS_ALLOWED_HOSTS="*").test_client()
    assert client.get("/is-alive/ping", headers={"Host": REBOUND}).status_code == 200


def test_the_name_the_server_is_bound_to_is_served(make_app):
    client = make_app(OPIK_RUNNERS_BIND="devbox:5173").test_client()
    assert client.get("/is-alive/ping", headers={"Host": "devbox:5173"}).status_code == 200
    assert client.get("/is-alive/ping", headers={"Host": "otherbox:5173"}).status_code == 403


def test_every_name_the_server_is_bound_to_is_served(make_app):
    client = make_app(OPIK_RUNNERS_BIND="127.0.0.1:5173, devbox:5173").test_client()
    assert client.get("/is-alive/ping", headers={"Host": "devbox:5173"}).status_code == 200
    assert client.get("/is-alive/ping", headers={"Host": "otherbox:5173"}).status_code == 403


def test_one_warning_names_every_bind_beyond_loopback():
    from opik_runners.settings import load_settings
    from opik_runners.web.guard import warn_if_exposed

    keyed = {"OPIK_API_KEYS": "ops:k1"}
    said = []
    warn_if_exposed(load_settings(keyed), ["127.0.0.1:5173", "0.0.0.0:5173", "devbox:5174"], said.append)
    assert len(said) == 1 and "0.0.0.0:5173, devbox:5174" in said[0] and "OPIK_RUNNERS_ALLOWED_HOSTS" in said[0]
    warn_if_exposed(load_settings(keyed), ["127.0.0.1:5173", "localhost:5174", "unix:/tmp/s"], said.append)
    warn_if_exposed(load_settings({**keyed, "OPIK_RUNNERS_ALLOWED_HOSTS": "devbox"}), ["devbox:5174"], said.append)
    assert len(said) == 1


def test_a_server_beyond_loopback_without_api_keys_is_warned_of_its_open_control_plane():
    from opik_runners.settings import load_settings
    from opik_runners.web.guard import warn_if_exposed

    hosts = {"OPIK_RUNNERS_ALLOWED_HOSTS": "devbox"}
    said = []
    warn_if_exposed(load_settings(hosts), ["127.0.0.1:5173", "0.0.0.0:5173"], said.append)
    assert len(said) == 1 and "OPIK_API_KEYS is unset while listening on 0.0.0.0:5173" in said[0]
    assert "/_admin/" in said[0], said
    warn_if_exposed(load_settings({**hosts, "OPIK_RUNNERS_ADMIN": "off"}), ["0.0.0.0:5173"], said.append)
    assert len(said) == 2 and "OPIK_API_KEYS is unset" in said[1] and "/_admin/" not in said[1]
    warn_if_exposed(load_settings(hosts), ["127.0.0.1:5173"], said.append)  # loopback only: nothing to say
    assert len(said) == 2


# -- CORS: off by default, on for listed origins


def test_a_preflight_from_any_origin_is_refused_by_default(client):
    response = client.options(f"{API}/projects", headers={
        "Origin": EVIL, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
    assert_refused(response, 403, EVIL)


UI = "http://localhost:3000"


@pytest.fixture
def cors_client(make_app):
    """A server with API keys whose UI is served from another origin, listed."""
    return make_app(OPIK_RUNNERS_CORS_ORIGINS=UI, OPIK_API_KEYS="ui:ui-key").test_client()


def test_a_listed_origin_is_answered_a_preflight_with_the_allow_headers(cors_client):
    response = cors_client.options(f"{API}/local-runners/jobs", headers={
        "Origin": UI, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, comet-workspace, content-type"})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == UI
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    allowed = {name.strip().lower() for name in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert allowed == {"authorization", "comet-workspace", "content-type"}
    assert "POST" in response.headers["Access-Control-Allow-Methods"]


def test_a_listed_origin_makes_a_credentialed_request_and_reads_the_location(cors_client):
    headers = {"Origin": UI, "Authorization": "ui-key", "Comet-Workspace": "front"}
    response = cors_client.post(f"{API}/projects", json={"name": "ui-made"}, headers=headers)
    assert response.status_code == 201
    assert response.headers["Access-Control-Allow-Origin"] == UI
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert "Location" in response.headers["Access-Control-Expose-Headers"]
    found = cors_client.post(f"{API}/projects/retrieve", json={"name": "ui-made"}, headers=headers)
    assert found.status_code == 200 and found.headers["Access-Control-Allow-Origin"] == UI


def test_an_unlisted_origin_is_still_refused_where_cors_is_on(cors_client):
    headers = {"Origin": EVIL, "Authorization": "ui-key"}
    assert_refused(cors_client.post(f"{API}/projects", json={"name": "x"}, headers=headers), 403, EVIL)
    answer = cors_client.get(f"{API}/projects", headers=headers)  # a read is served, but no page of EVIL may see it
    assert answer.status_code == 200 and "Access-Control-Allow-Origin" not in answer.headers


@pytest.mark.parametrize("listed, other", [("http://[::1]:3000", "http://1:3000"),
                                           ("http://ui.example:3000", "http://uiaexample:3000")])
def test_a_listed_origin_is_matched_as_written_not_as_a_pattern(make_app, listed, other):
    client = make_app(OPIK_RUNNERS_CORS_ORIGINS=listed).test_client()
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    answer = client.options(f"{API}/projects", headers={"Origin": listed, **preflight})
    assert answer.status_code == 200 and answer.headers["Access-Control-Allow-Origin"] == listed
    assert client.post(f"{API}/projects", json={"name": "ui"}, headers={"Origin": listed}).status_code == 201
    assert_refused(client.options(f"{API}/projects", headers={"Origin": other, **preflight}), 403, other)


def test_the_console_and_metrics_get_no_cors_headers(cors_client):
    for path in ("/console/config.json", "/metrics"):
        assert "Access-Control-Allow-Origin" not in cors_client.get(path, headers={"Origin": UI}).headers


# -- what keeps working


def test_the_servers_own_pages_write_as_before(client, world):
    # The console's fetches: same origin, marked so by the browser.
    headers = {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
    assert client.post(f"{API}/projects", json={"name": "from-console"}, headers=headers).status_code == 201
    assert client.post("/_admin/clock", json={"advance_s": 1}, headers=headers).status_code == 200
    assert client.post("/_admin/reset", headers=headers).status_code == 204


def test_an_address_typed_by_the_user_is_not_a_cross_site_request(client):
    assert client.post(f"{API}/projects", json={"name": "typed"}, headers={"Sec-Fetch-Site": "none"}).status_code == 201


def test_api_keys_name_their_users_and_a_prefix_of_a_key_is_not_the_key(make_app):
    client = make_app(OPIK_API_KEYS="alice:alice-key,bob:bob-key-longer").test_client()
    assert client.get(f"{API}/projects", headers={"Authorization": "alice-key"}).status_code == 200
    assert client.get(f"{API}/projects", headers={"Authorization": "bob-key-longer"}).status_code == 200
    for wrong in ("bob-key", "alice-key ", "alice-keyX", ""):
        assert client.get(f"{API}/projects", headers={"Authorization": wrong}).status_code == 401, wrong


def test_the_refusals_are_described_in_the_contracts(client):
    """The API's contract and the control plane's document both list the 415 (the ContractClient
    checks every answer above against them)."""
    contract_text = json.dumps(client.get("/_admin/openapi.yaml").data.decode())
    assert "UnsupportedMediaType" in contract_text
