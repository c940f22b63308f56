"""GET /v1/private/local-runners/{runnerId}/jobs: the heart of the service."""
import uuid

import pytest

from opik_runners.domain import listing as listing_domain
from opik_runners.store.models import Job, Runner, database
from opik_runners.domain.ownership import Caller
from tests.support.in_app import API, ROOT, InApp, reap


def listing(client, runner_id, prefix=API, **query):
    return client.get(f"{prefix}/local-runners/{runner_id}/jobs", query_string=query)


def test_empty_runner(client, endpoint_runner):
    runner_id, _ = endpoint_runner
    response = listing(client, runner_id)
    assert response.status_code == 200
    assert response.json == {"page": 0, "size": 25, "total": 0, "content": []}


def test_newest_first_with_exact_total(client, in_app, endpoint_runner):
    runner_id, project_id = endpoint_runner
    ids = [in_app.create_job(project_id, inputs={"question": f"q{i}"}) for i in range(5)]
    page = listing(client, runner_id).json
    assert page["total"] == 5
    assert [job["id"] for job in page["content"]] == ids[::-1]
    assert [job["inputs"]["question"] for job in page["content"]] == ["q4", "q3", "q2", "q1", "q0"]


def test_size_one_pages_walk_every_job(client, in_app, endpoint_runner):
    runner_id, project_id = endpoint_runner
    ids = [in_app.create_job(project_id) for _ in range(3)]
    seen = []
    for page in range(3):
        body = listing(client, runner_id, page=page, size=1).json
        assert (body["page"], body["size"], body["total"]) == (page, 1, 3)
        assert len(body["content"]) == 1
        seen.append(body["content"][0]["id"])
    assert seen == ids[::-1]


def test_page_past_the_end_is_empty_with_total(client, in_app, endpoint_runner):
    runner_id, project_id = endpoint_runner
    in_app.create_job(project_id)
    body = listing(client, runner_id, page=7, size=10).json
    assert body == {"page": 7, "size": 10, "total": 1, "content": []}


def test_project_filter(client, in_app):
    runner_id, project_a = in_app.pair(project="alpha")
    in_app.register(runner_id)
    job_a = in_app.create_job(project_a)
    # The same runner can hold jobs of one project only via routing, so a second
    # project's runner shows the filter excludes other projects' jobs.
    other = listing(client, runner_id, project_id=str(uuid.uuid4())).json
    assert other["total"] == 0 and other["content"] == []
    mine = listing(client, runner_id, project_id=project_a).json
    assert mine["total"] == 1 and mine["content"][0]["id"] == job_a


def test_every_field_round_trips(client, in_app, endpoint_runner):
    runner_id, project_id = endpoint_runner
    masks = {str(uuid.uuid4()): str(uuid.uuid4()), str(uuid.uuid4()): str(uuid.uuid4())}
    metadata = {
        "dataset_id": str(uuid.uuid4()),
        "dataset_version_id": str(uuid.uuid4()),
        "dataset_item_version_id": str(uuid.uuid4()),
        "dataset_item_id": str(uuid.uuid4()),
    }
    mask_id = str(uuid.uuid4())
    job_id = in_app.create_job(
        project_id,
        inputs={"question": "2+2?", "n": 3, "nested": {"deep": [1, 2, {"x": None}]}},
        mask_id=mask_id,
        prompt_masks=masks,
        blueprint_name="  my blueprint  ",
        metadata=metadata,
    )
    (job,) = listing(client, runner_id).json["content"]
    assert job["id"] == job_id
    assert job["runner_id"] == runner_id
    assert job["project_id"] == project_id
    assert job["agent_name"] == "answer"
    assert job["status"] == "pending"
    assert job["inputs"] == {"question": "2+2?", "n": 3, "nested": {"deep": [1, 2, {"x": None}]}}
    assert job["mask_id"] == mask_id
    assert job["prompt_masks"] == masks
    assert job["blueprint_name"] == "my blueprint"
    assert job["metadata"] == metadata
    assert job["timeout"] == 1800
    assert job["created_at"].endswith("Z")


def test_partial_metadata_keeps_only_given_fields(client, in_app, endpoint_runner):
    runner_id, project_id = endpoint_runner
    dataset_id = str(uuid.uuid4())
    in_app.create_job(project_id, metadata={"dataset_id": dataset_id, "dataset_item_id": None})
    (job,) = listing(client, runner_id).json["content"]
    assert job["metadata"] == {"dataset_id": dataset_id}


@pytest.mark.parametrize("metadata", [{}, {"dataset_id": None, "dataset_item_id": None}])
def test_metadata_without_values_comes_back_as_an_empty_object(client, in_app, endpoint_runner, metadata):
    # Upstream stores any non-null metadata record and writes it back without its null fields.
    runner_id, project_id = endpoint_runner
    job_id = in_app.create_job(project_id, metadata=metadata)
    (job,) = listing(client, runner_id).json["content"]
    assert job["metadata"] == {}
    assert client.get(f"{API}/local-runners/jobs/{job_id}").json["metadata"] == {}


def test_null_fields_are_left_out(client, in_app, endpoint_runner):
    runner_id, project_id = endpoint_runner
    in_app.create_job(project_id)
    (job,) = listing(client, runner_id).json["content"]
    for absent in ("inputs", "result", "error", "trace_id", "mask_id", "prompt_masks", "blueprint_name",
                   "metadata", "started_at", "completed_at"):
        assert absent not in job
    assert all(value is not None for value in job.values())


def test_finished_job_shows_result_and_timestamps(client, in_app, endpoint_runner):
    runner_id, project_id = endpoint_runner
    job_id = in_app.create_job(project_id)
    assert client.post(f"{API}/local-runners/{runner_id}/jobs/next").json["id"] == job_id
    trace_id = str(uuid.uuid4())
    client.post(f"{API}/local-runners/jobs/{job_id}/results",
                json={"status": "completed", "result": {"answer": 42}, "trace_id": trace_id})
    (job,) = listing(client, runner_id).json["content"]
    assert job["status"] == "completed"
    assert job["result"] == {"answer": 42}
    assert job["trace_id"] == trace_id
    assert job["created_at"] <= job["started_at"] <= job["completed_at"]


@pytest.mark.parametrize("prefix", [API, ROOT])
def test_both_prefixes(client, in_app, endpoint_runner, prefix):
    runner_id, project_id = endpoint_runner
    job_id = in_app.create_job(project_id)
    body = listing(client, runner_id, prefix=prefix).json
    assert [job["id"] for job in body["content"]] == [job_id]


def test_unknown_runner_is_404(client, endpoint_runner):
    response = listing(client, str(uuid.uuid4()))
    assert response.status_code == 404
    assert response.json["code"] == 404 and "Runner not found" in response.json["message"]


def test_other_users_runner_is_404(make_app):
    app = make_app(OPIK_API_KEYS="alice:key-a,bob:key-b")
    client = app.test_client()
    in_app = InApp(client)
    alice = {"Authorization": "key-a"}
    runner_id, _ = in_app.pair(headers=alice)
    assert client.get(f"{API}/local-runners/{runner_id}/jobs").status_code == 401
    response = client.get(f"{API}/local-runners/{runner_id}/jobs", headers={"Authorization": "key-b"})
    assert response.status_code == 404
    assert client.get(f"{API}/local-runners/{runner_id}/jobs", headers=alice).status_code == 200


def test_other_workspace_runner_is_404(client, in_app):
    runner_id, _ = in_app.pair(headers={"Comet-Workspace": "team-a"})
    assert client.get(f"{API}/local-runners/{runner_id}/jobs", headers={"Comet-Workspace": "team-b"}).status_code == 404
    assert client.get(f"{API}/local-runners/{runner_id}/jobs", headers={"Comet-Workspace": "team-a"}).status_code == 200


@pytest.mark.parametrize(
    "query, message",
    [
        ({"page": -1}, "query param page must be greater than or equal to 0"),
        ({"size": 0}, "query param size must be greater than or equal to 1"),
        ({"page": "abc"}, "query param page must be an integer"),
        ({"size": "1.5"}, "query param size must be an integer"),
        # A Java int: past 32 bits the value does not convert (and never reaches SQL).
        ({"page": 2**31}, "query param page must be an integer"),
        ({"size": 10**20}, "query param size must be an integer"),
    ],
)
def test_bad_page_or_size_is_400(client, endpoint_runner, query, message):
    runner_id, _ = endpoint_runner
    response = listing(client, runner_id, **query)
    assert response.status_code == 400
    assert response.json == {"errors": [message]}


def test_largest_page_and_size_are_an_empty_page(client, endpoint_runner):
    runner_id, _ = endpoint_runner
    response = listing(client, runner_id, page=2**31 - 1, size=2**31 - 1)
    assert response.status_code == 200
    assert response.json["content"] == [] and response.json["page"] == 2**31 - 1


def test_malformed_uuid_in_path_or_query_is_404(client, endpoint_runner):
    runner_id, _ = endpoint_runner
    assert client.get(f"{API}/local-runners/not-a-uuid/jobs").status_code == 404
    response = listing(client, runner_id, project_id="not-a-uuid")
    assert response.status_code == 404
    assert response.json == {"code": 404, "message": "HTTP 404 Not Found"}


def _finish_long_ago(job_ids):
    with database.connection_context():
        Job.update(status="completed", completed_at=1).where(Job.id.in_(job_ids)).execute()


def test_pages_stay_exact_after_expired_jobs_are_reaped(app):
    client = app.test_client()
    in_app = InApp(client)
    runner_id, project_id = in_app.pair()
    in_app.register(runner_id)
    ids = [in_app.create_job(project_id, inputs={"i": i}) for i in range(30)]
    expired = ids[3:9] + ids[20:24]
    _finish_long_ago(expired)  # finished "7 days ago": the reaper deletes them
    reap(app)
    kept = [job_id for job_id in ids if job_id not in expired][::-1]
    seen = []
    for page in range(4):
        body = listing(client, runner_id, page=page, size=7).json
        assert body["total"] == 20
        seen += [job["id"] for job in body["content"]]
    assert seen == kept
    with database.connection_context():
        runner = Runner.get_by_id(runner_id)
        assert runner.job_count == runner.last_seq == 20  # the gaps were closed


def test_pages_stay_exact_while_gaps_remain(in_app):
    runner_id, project_id = in_app.pair()
    in_app.register(runner_id)
    ids = [in_app.create_job(project_id) for _ in range(12)]
    with database.connection_context():
        # Expire jobs the way the reaper does, but leave the numbering with gaps.
        Job.delete().where(Job.id.in_([ids[2], ids[5], ids[6]])).execute()
        Runner.update(job_count=Runner.job_count - 3).where(Runner.id == runner_id).execute()
        pages = [listing_domain.list_jobs(Caller("default", "admin"), runner_id, None, p, 4) for p in range(3)]
    kept = [job_id for job_id in ids if job_id not in (ids[2], ids[5], ids[6])][::-1]
    assert [total for total, _ in pages] == [9, 9, 9]
    import json

    assert [json.loads(doc)["id"] for _, docs in pages for doc in docs] == kept


# -- the extensions: status and agent_name filters, counts per status (the console's tabs)

FILTER_RUNNER = "0190d2b4-0000-7000-8000-00000000f117"
CYCLE = ["completed", "failed", "pending", "completed", "cancelled", "running"]


def seed_jobs(client, count=40, workspace=None, **runner):
    document = {
        "version": 1,
        "runners": [{"id": FILTER_RUNNER, "project": "filters", "name": "filtered",
                     "agents": {"alpha": {}, "beta": {}}, **runner}],
        "jobs": [{"runner_id": FILTER_RUNNER, "agent_name": "beta" if i % 4 == 0 else "alpha",
                  "status": CYCLE[i % len(CYCLE)], "inputs": {"i": i}} for i in range(count)],
    }
    if workspace:
        document["workspace"] = workspace
    response = client.post("/_admin/state", json=document)
    assert response.status_code == 200, response.data
    return document


def every_job(client):
    body = listing(client, FILTER_RUNNER, size=1000).json
    assert body["total"] == len(body["content"])
    return body["content"]


@pytest.mark.parametrize("statuses, agent", [
    (["failed"], None), (["pending", "running"], None), (["COMPLETED"], None), ([], "beta"),
    (["completed", "cancelled"], "alpha"), (["running"], "nobody"), (["failed", "failed"], "beta"),
])
def test_filters_answer_the_unfiltered_listing_filtered(client, statuses, agent):
    seed_jobs(client)
    everything = every_job(client)
    wanted_statuses = {s.lower() for s in statuses} or set(CYCLE)
    wanted = [job["id"] for job in everything
              if job["status"] in wanted_statuses and (agent is None or job["agent_name"] == agent)]
    query = {"status": statuses, **({"agent_name": agent} if agent else {})}
    pages = []
    for page in range(4):  # pages of 5, past the end too
        body = client.get(f"{API}/local-runners/{FILTER_RUNNER}/jobs", query_string={**query, "page": page, "size": 5}).json
        assert (body["page"], body["size"], body["total"]) == (page, 5, len(wanted))
        assert "counts" not in body
        pages.extend(job["id"] for job in body["content"])
    assert pages == wanted[:20]


def test_counts_per_status_for_tabs(client):
    document = seed_jobs(client)
    body = listing(client, FILTER_RUNNER, counts="true", size=1).json
    expected = {status: sum(job["status"] == status for job in document["jobs"])
                for status in ["pending", "running", "completed", "failed", "cancelled"]}
    assert body["counts"] == expected and body["total"] == 40
    assert list(body) == ["page", "size", "total", "content", "counts"]
    # With an agent, the counts are that agent's; a status filter leaves them whole (every tab's number).
    beta = client.get(f"{API}/local-runners/{FILTER_RUNNER}/jobs",
                      query_string={"agent_name": "beta", "status": "failed", "counts": "true"}).json
    assert beta["counts"] == {status: sum(job["status"] == status and job["agent_name"] == "beta"
                                          for job in document["jobs"]) for status in expected}
    assert beta["total"] == beta["counts"]["failed"]


def test_without_extensions_the_answer_is_opiks_shape(client):
    seed_jobs(client, count=3)
    body = listing(client, FILTER_RUNNER).json
    assert list(body) == ["page", "size", "total", "content"]


def test_an_unknown_status_is_a_400_naming_the_known_ones(client):
    seed_jobs(client, count=1)
    response = listing(client, FILTER_RUNNER, status="done")
    assert response.status_code == 400
    assert response.json == {"errors": [
        "query param status must be one of [pending, running, completed, failed, cancelled], not 'done'"]}


def test_filters_keep_the_runners_scoping(client):
    seed_jobs(client, count=4, workspace="elsewhere")
    response = listing(client, FILTER_RUNNER, status="pending", counts="true")
    assert response.status_code == 404 and FILTER_RUNNER in response.json["message"]
    theirs = client.get(f"{API}/local-runners/{FILTER_RUNNER}/jobs", query_string={"status": "pending"},
                        headers={"Comet-Workspace": "elsewhere"})
    assert theirs.status_code == 200 and theirs.json["total"] == 1


def test_a_project_filter_that_does_not_match_gives_nothing(client):
    seed_jobs(client, count=6)
    body = listing(client, FILTER_RUNNER, status="completed", project_id=str(uuid.uuid4())).json
    assert (body["total"], body["content"]) == (0, [])


def test_filters_page_past_expired_jobs(client):
    # Jobs finished long ago expire (the reaper deletes them), leaving gaps in the numbering.
    seed_jobs(client, count=12)
    before = every_job(client)
    with database.atomic():
        Job.update(completed_at=1).where(Job.status == "failed").execute()
    reap(client.application)
    remaining = [job for job in before if job["status"] != "failed"]
    assert [job["id"] for job in every_job(client)] == [job["id"] for job in remaining]
    body = client.get(f"{API}/local-runners/{FILTER_RUNNER}/jobs",
                      query_string={"status": ["completed", "pending"], "size": 3, "page": 1}).json
    wanted = [job["id"] for job in remaining if job["status"] in ("completed", "pending")]
    assert body["total"] == len(wanted) and [job["id"] for job in body["content"]] == wanted[3:6]


OTHER_RUNNER = "0190d2b4-0000-7000-8000-00000000f118"


def test_filtered_pages_hold_only_the_runners_own_jobs(client):
    # (The query-plan test, which would notice a lost runner condition, runs on SQLite only.)
    seed_jobs(client, count=12)
    other = {"version": 1, "runners": [{"id": OTHER_RUNNER, "project": "filters", "name": "other",
                                        "agents": {"alpha": {}}}],
             "jobs": [{"runner_id": OTHER_RUNNER, "agent_name": "alpha", "status": "completed", "inputs": {"other": i}}
                      for i in range(12)]}
    assert client.post("/_admin/state", json=other).status_code == 200
    mine = every_job(client)
    for query in ({"status": "completed"}, {"status": "completed", "agent_name": "alpha"}):
        wanted = [j["id"] for j in mine
                  if j["status"] == "completed" and j["agent_name"] == query.get("agent_name", j["agent_name"])]
        body = listing(client, FILTER_RUNNER, size=5, **query).json
        assert body["total"] == len(wanted) and [j["id"] for j in body["content"]] == wanted[:5]


def test_empty_or_padded_filter_values_are_ignored_or_trimmed(client):
    document = seed_jobs(client)
    assert listing(client, FILTER_RUNNER, status="").json["total"] == 40
    assert listing(client, FILTER_RUNNER, agent_name="").json["total"] == 40
    body = listing(client, FILTER_RUNNER, status=["", " Failed "], size=100).json
    assert body["total"] == sum(j["status"] == "failed" for j in document["jobs"])
    assert {j["status"] for j in body["content"]} == {"failed"}


def test_repeated_statuses_count_once_in_the_domain_rule(client):
    seed_jobs(client)
    with database.connection_context():
        total, documents, counts = listing_domain.list_filtered_jobs(
            Caller("default", "admin"), uuid.UUID(FILTER_RUNNER), None, 0, 100, ("failed", "failed"))
    assert total == counts["failed"] == len(documents)
