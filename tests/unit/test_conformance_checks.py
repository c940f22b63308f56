"""The runner grader's verdicts that are pure functions of the journal, held with journal entries
made by hand (the acceptance tests grade real clients with them)."""
import datetime
import json

from opik_runners.conformance.checks import late_after_410

T0 = datetime.datetime(2026, 12, 6, 12, 0, 0, tzinfo=datetime.timezone.utc)


def entry(operation, at, status=200, capabilities=None, duration_ms=5):
    body = json.dumps({"capabilities": capabilities}) if capabilities is not None else "{}"
    return {"operation": operation, "time": (T0 + datetime.timedelta(seconds=at)).isoformat().replace("+00:00", "Z"),
            "status": status, "duration_ms": duration_ms, "request_body": body}


def test_a_runner_that_stops_at_its_410_is_not_late():
    told, late = late_after_410([entry("heartbeat", 1, 410), entry("next_job", 0.5, duration_ms=400)])
    assert len(told) == 1 and late == []


def test_a_heartbeat_after_the_runners_own_410_is_late():
    told, late = late_after_410([entry("heartbeat", 1, 410), entry("heartbeat", 6.5, 410), entry("heartbeat", 11.5, 410)])
    assert [e["time"] for e in late] == [entry("heartbeat", 11.5)["time"]]


def test_a_supervisors_heartbeat_is_held_to_its_own_410_not_its_childs():
    # opik endpoint: the child beats {} and is told first; the supervisor beats ["jobs"] 8.8 s later,
    # hears its own 410 then, and beats no more.
    entries = [entry("heartbeat", 82.2, 410), entry("heartbeat", 91.0, 410, capabilities=["jobs"])]
    told, late = late_after_410(entries)
    assert set(told) == {"null", '["jobs"]'} and late == []


def test_a_supervisor_that_goes_on_beating_after_its_410_is_late():
    entries = [entry("heartbeat", 1, 410), entry("heartbeat", 3, 410, capabilities=["jobs"]),
               entry("heartbeat", 9.5, 410, capabilities=["jobs"])]
    assert len(late_after_410(entries)[1]) == 1


def test_a_poll_started_after_every_process_was_told_is_late():
    entries = [entry("heartbeat", 1, 410), entry("heartbeat", 3, 410, capabilities=["jobs"]),
               entry("next_job", 8.5, duration_ms=100), entry("next_job", 10, duration_ms=100)]
    assert [e["time"] for e in late_after_410(entries)[1]] == [entry("next_job", 10)["time"]]


def test_no_410_tells_nothing():
    assert late_after_410([entry("next_job", 1)]) == ({}, [])
