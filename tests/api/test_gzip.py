"""gzip request bodies, as the opik CLI sends every JSON body of 256 bytes or more."""
import gzip
import json
import zlib

import pytest

from opik_runners.domain.limits import MAX_REQUEST_BYTES
from tests.support.data import AGENT
from tests.support.in_app import API


# As the CLI sends them: a JSON media type, and the encoding on top.
GZIPPED_JSON = {"Content-Encoding": "gzip", "content-type": "application/json"}


def gz(client, method, path, body, **kwargs):
    data = gzip.compress(json.dumps(body).encode())
    return client.open(path, method=method, data=data,
                       headers=GZIPPED_JSON, **kwargs)


def test_gzip_bodies_are_accepted_everywhere(client, in_app):
    found = gz(client, "POST", f"{API}/projects", {"name": "zipped"})
    assert found.status_code == 201
    runner_id, project_id = in_app.pair(project="zipped")
    agents = {f"agent_{i}": AGENT for i in range(5)}  # well over 256 bytes, as the CLI gzips it
    assert gz(client, "PUT", f"{API}/local-runners/{runner_id}/agents", agents).status_code == 204
    assert gz(client, "PATCH", f"{API}/local-runners/{runner_id}/checklist", {"file_tree": "a\n" * 200}).status_code == 204
    runner = client.get(f"{API}/local-runners/{runner_id}").json
    assert sorted(a["name"] for a in runner["agents"]) == sorted(agents)
    assert runner["checklist"] == {"file_tree": "a\n" * 200}
    created = gz(client, "POST", f"{API}/local-runners/jobs",
                 {"agent_name": "agent_1", "project_id": project_id, "inputs": {"q": "x" * 300}})
    assert created.status_code == 201
    job_id = created.headers["Location"].rsplit("/", 1)[1]
    logs = [{"stream": "stdout", "text": f"line {i}"} for i in range(50)]
    assert gz(client, "POST", f"{API}/local-runners/jobs/{job_id}/logs", logs).status_code == 204
    assert client.get(f"{API}/local-runners/jobs/{job_id}/logs").json == logs


def test_corrupt_gzip_is_400(client):
    response = client.post(f"{API}/projects", data=b"\x1f\x8bnot really gzip",
                           headers=GZIPPED_JSON)
    assert response.status_code == 400
    assert response.json["code"] == 400 and "gzip" in response.json["message"]


def test_truncated_gzip_is_400(client):
    data = gzip.compress(json.dumps({"name": "x" * 1000}).encode())[:-12]
    response = client.post(f"{API}/projects", data=data, headers=GZIPPED_JSON)
    assert response.status_code == 400


def test_gzip_bomb_is_413_without_inflating_it(client):
    # 64 MiB of zeros squeezes into ~64 KiB; the server stops at its limit.
    bomb = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    data = bomb.compress(b"0" * (64 * 1024 * 1024)) + bomb.flush()
    assert len(data) < MAX_REQUEST_BYTES
    response = client.post(f"{API}/projects", data=data, headers=GZIPPED_JSON)
    assert response.status_code == 413
    assert response.json["code"] == 413


@pytest.mark.parametrize("encoding", ["GZIP", " gzip "])
def test_encoding_name_is_case_insensitive(client, encoding):
    data = gzip.compress(b'{"name": "cased"}')
    assert client.post(f"{API}/projects", data=data, headers={**GZIPPED_JSON, "Content-Encoding": encoding}).status_code == 201
