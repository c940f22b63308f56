"""Pact provider states (provider_states.py) with a database and settings only: what each
setup makes and answers, and what its teardown removes."""
import uuid

import pytest

from opik_runners.control import provider_states
from opik_runners.control.state.document import StateError
from opik_runners.store.models import Job, Project, Runner

ENDPOINT, CONNECT, WITH_JOBS, NO_RUNNERS = (provider_states.ENDPOINT, provider_states.CONNECT,
                                            provider_states.WITH_JOBS, provider_states.NO_RUNNERS)


def runner_names():
    return sorted((r.workspace, r.type, r.name) for r in Runner.select())


@pytest.mark.parametrize("name, keys", [
    (ENDPOINT, {"runner_id", "project_id"}),
    (CONNECT, {"runner_id", "project_id"}),
    (WITH_JOBS, {"runner_id", "project_id", "job_ids"}),
    (NO_RUNNERS, {"project_id"}),
])
def test_each_state_works_from_its_name_alone_and_answers_ids_as_strings(settings, name, keys):
    made = provider_states.setup(settings, name, {})
    assert set(made) == keys
    for value in made.values():
        for text in value if isinstance(value, list) else [value]:
            assert isinstance(text, str) and uuid.UUID(text)
    project = Project.get_by_id(made["project_id"])
    assert (project.workspace, project.name) == ("default", "demo")
    if "runner_id" in made:
        runner = Runner.get_by_id(made["runner_id"])
        assert runner.status == "connected" and runner.project_id == project.id and runner.user_name == "admin"
    if "job_ids" in made:
        assert [str(j.id) for j in Job.select().order_by(Job.seq)] == made["job_ids"]
        assert [j.status for j in Job.select().order_by(Job.seq)] == ["pending", "running", "completed"]


def test_states_add_up_and_teardown_removes_only_its_own(settings):
    endpoint = provider_states.setup(settings, ENDPOINT, {})
    connect = provider_states.setup(settings, CONNECT, {})
    with_jobs = provider_states.setup(settings, WITH_JOBS, {"runner": "busy", "counts": {"failed": 2}})
    other = provider_states.setup(settings, ENDPOINT, {"workspace": "team-b"})
    assert len({endpoint["runner_id"], connect["runner_id"], with_jobs["runner_id"], other["runner_id"]}) == 4
    assert endpoint["project_id"] == connect["project_id"] == with_jobs["project_id"] != other["project_id"]
    assert provider_states.teardown(settings, WITH_JOBS, {"runner": "busy", "counts": {"failed": 2}}) == {}
    assert Job.select().count() == 0
    assert runner_names() == [("default", "connect", "pact-connect"), ("default", "endpoint", "pact-endpoint"),
                              ("team-b", "endpoint", "pact-endpoint")]
    assert provider_states.teardown(settings, ENDPOINT, {}) == {}
    assert runner_names() == [("default", "connect", "pact-connect"), ("team-b", "endpoint", "pact-endpoint")]
    assert Project.select().count() == 2  # projects stay
    assert provider_states.teardown(settings, ENDPOINT, {}) == {}  # nothing left to remove: a no-op


def test_no_runners_empties_its_workspace_only(settings):
    kept = provider_states.setup(settings, WITH_JOBS, {"workspace": "team-b"})
    provider_states.setup(settings, WITH_JOBS, {})
    provider_states.setup(settings, CONNECT, {})
    made = provider_states.setup(settings, NO_RUNNERS, {"project": "fresh"})
    assert runner_names() == [("team-b", "endpoint", "pact-endpoint")]
    assert {str(j.runner_id) for j in Job.select()} == {kept["runner_id"]}
    assert Project.get_by_id(made["project_id"]).name == "fresh"
    assert provider_states.teardown(settings, NO_RUNNERS, {}) == {}


def test_an_unknown_state_names_the_known_ones(settings):
    with pytest.raises(provider_states.UnknownState) as refused:
        provider_states.setup(settings, "a runner on the moon", {})
    assert isinstance(refused.value, ValueError)
    assert str(refused.value) == "unknown provider state 'a runner on the moon'; known states: " + ", ".join(
        repr(name) for name in provider_states.KNOWN)
    with pytest.raises(provider_states.UnknownState):
        provider_states.teardown(settings, "", {})


def test_bad_params_are_state_errors_and_write_nothing(settings):
    for params, message in [
        ({"agents": {"a": {"timeout": "x"}}}, "params: runners[0].agents.a: timeout: 'x' is not a valid integer"),
        ({"statuses": "pending"}, 'params.statuses: a list of job statuses, e.g. ["pending", "completed"]'),
        ({"agents": {}}, "params.agents: a runner with jobs needs an agent"),
        ([], "params: a JSON object, got list"),
    ]:
        with pytest.raises(StateError) as refused:
            provider_states.setup(settings, WITH_JOBS, params)
        assert str(refused.value) == message
    assert Runner.select().count() == Project.select().count() == 0
