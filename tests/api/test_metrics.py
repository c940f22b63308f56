"""GET /metrics: the Prometheus text, read with prometheus_client's own parser. (Across gunicorn
workers, in multi-process mode: tests/acceptance/test_metrics_served.py.)"""
import threading

from prometheus_client.parser import text_string_to_metric_families

from tests.support.in_app import API, InApp
from tests.support.waiting import wait_until


def scrape(client, headers=None):
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.data
    assert response.mimetype == "text/plain"
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.get_data(as_text=True)) for sample in family.samples}


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0)


def test_requests_are_counted_by_operation_and_status_with_their_latency(client, in_app):
    runner_id, project_id = in_app.pair()
    in_app.register(runner_id)
    in_app.create_job(project_id)
    before = scrape(client)
    for _ in range(3):
        client.get(f"{API}/local-runners/{runner_id}/jobs")
    client.get(f"{API}/local-runners/jobs/{runner_id}")  # a 404
    after = scrape(client)
    count = "opik_runners_request_duration_seconds_count"
    assert value(after, count, operation="list_jobs", status="200") - value(before, count, operation="list_jobs",
                                                                             status="200") == 3
    assert value(after, count, operation="get_job", status="404") - value(before, count, operation="get_job",
                                                                           status="404") == 1
    bucket = "opik_runners_request_duration_seconds_bucket"
    assert value(after, bucket, operation="list_jobs", status="200", le="+Inf") == value(
        after, count, operation="list_jobs", status="200")
    assert value(after, "opik_runners_request_duration_seconds_sum", operation="list_jobs", status="200") > 0


def test_the_database_s_numbers_are_read_at_each_scrape(client, in_app):
    runner_id, project_id = in_app.pair()
    in_app.register(runner_id)
    for _ in range(3):
        in_app.create_job(project_id)
    client.post(f"{API}/local-runners/{runner_id}/jobs/next")
    samples = scrape(client)
    assert value(samples, "opik_runners_runners", status="connected") == 1
    assert value(samples, "opik_runners_jobs", status="pending") == 2
    assert value(samples, "opik_runners_jobs", status="running") == 1
    client.post(f"{API}/local-runners/jobs/{client.post(f'{API}/local-runners/{runner_id}/jobs/next').json['id']}/results",
                json={"status": "failed", "error": "x"})
    samples = scrape(client)
    assert value(samples, "opik_runners_jobs", status="finished") == 1
    assert value(samples, "opik_runners_jobs", status="pending") == 1
    assert value(samples, "opik_runners_pending_jobs") == 1
    assert value(samples, "opik_runners_journal_entries") > 0


def test_held_polls_are_counted_while_they_wait_and_a_wakeup_is_timed(make_app):
    app = make_app(OPIK_RUNNER_NEXT_JOB_POLL_TIMEOUT="5")
    client = app.test_client()
    in_app = InApp(client)
    runner_id, project_id = in_app.pair()
    in_app.register(runner_id)
    before = scrape(client)
    answers = []
    polls = [threading.Thread(target=lambda: answers.append(
        app.test_client().post(f"{API}/local-runners/{runner_id}/jobs/next").json)) for _ in range(2)]
    for poll in polls:
        poll.start()
    held = "opik_runners_held_polls"
    wait_until(lambda: value(scrape(client), held, kind="jobs") - value(before, held, kind="jobs") == 2,
               timeout=4, interval=0.02)  # the two polls are counted as held
    in_app.create_job(project_id)
    in_app.create_job(project_id)
    for poll in polls:
        poll.join(10)
    after = scrape(client)
    assert [answer is not None for answer in answers] == [True, True]
    assert value(after, held, kind="jobs") == value(before, held, kind="jobs")
    woken = "opik_runners_wakeup_seconds_count"
    assert value(after, woken, kind="jobs") - value(before, woken, kind="jobs") == 2


def test_with_api_keys_a_scrape_needs_a_key(make_app):
    client = make_app(OPIK_API_KEYS="alice:key-a").test_client()
    response = client.get("/metrics")
    assert response.status_code == 401 and response.json == {"code": 401, "message": "API key should be provided"}
    assert "opik_runners_jobs" in client.get("/metrics", headers={"Authorization": "key-a"}).get_data(as_text=True)


def test_scrapes_are_not_journaled(client):
    client.delete("/_admin/requests")
    scrape(client)
    assert client.get("/_admin/requests").json["requests"] == []


def test_work_already_waiting_when_a_poll_comes_is_not_a_wakeup(client, in_app):
    """Only work made while a poll waited times a wake-up: a claim at the poll's first attempt is none."""
    runner_id, project_id = in_app.pair()
    in_app.register(runner_id)
    in_app.create_job(project_id)
    bridge_runner, _ = in_app.pair(project="bridged", runner_type="connect", name="runner-2")
    client.post(f"{API}/local-runners/{bridge_runner}/heartbeats", json={"capabilities": ["bridge"]})
    submitted = client.post(f"{API}/local-runners/{bridge_runner}/bridge/commands", json={"type": "ReadFile", "args": {}})
    assert submitted.status_code == 201, submitted.json
    before = scrape(client)
    assert client.post(f"{API}/local-runners/{runner_id}/jobs/next").json["id"]
    assert len(client.post(f"{API}/local-runners/{bridge_runner}/bridge/commands/next", json={}).json["commands"]) == 1
    after = scrape(client)
    woken = "opik_runners_wakeup_seconds_count"
    assert value(after, woken, kind="jobs") == value(before, woken, kind="jobs")
    assert value(after, woken, kind="bridge") == value(before, woken, kind="bridge")


def test_a_bridge_command_submitted_while_its_poll_waits_is_a_timed_wakeup(make_app):
    app = make_app(OPIK_BRIDGE_POLL_TIMEOUT="5")
    client = app.test_client()
    in_app = InApp(client)
    runner_id, _ = in_app.pair(runner_type="connect")
    client.post(f"{API}/local-runners/{runner_id}/heartbeats", json={"capabilities": ["bridge"]})
    before = scrape(client)
    answers = []
    poll = threading.Thread(target=lambda: answers.append(
        app.test_client().post(f"{API}/local-runners/{runner_id}/bridge/commands/next", json={}).json))
    poll.start()
    held = "opik_runners_held_polls"
    wait_until(lambda: value(scrape(client), held, kind="bridge") > value(before, held, kind="bridge"),
               timeout=4, interval=0.02)  # the poll is counted as held
    submitted = client.post(f"{API}/local-runners/{runner_id}/bridge/commands", json={"type": "ReadFile", "args": {}})
    assert submitted.status_code == 201, submitted.json
    poll.join(10)
    assert [len(answer["commands"]) for answer in answers] == [1]
    woken = "opik_runners_wakeup_seconds_count"
    assert value(scrape(client), woken, kind="bridge") - value(before, woken, kind="bridge") == 1
