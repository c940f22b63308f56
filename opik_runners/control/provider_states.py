"""Pact provider states: named states a consumer's pact asks the provider to be in before
an interaction is replayed (POST /_admin/provider-states, as Pact verifiers send it).

Each setup is a state document (state.py) built from the params and loaded in one
transaction; it answers the ids it made, which a verifier injects into the interaction
(`fromProviderState` generators: `${runner_id}`). Every param has a default, so a state's
name alone works. Setups add to what is stored (several states may be set up for one
interaction); "no runners" is the one that removes.

Teardown removes what setup made: the runners of that workspace, user, project, type and
name, with their jobs, logs and bridge commands (projects stay: other states and seeds
share them). For "no runners" it does nothing.
"""
import copy
import logging

from ..domain import jobs
from ..store.models import Project, Runner, database, new_id
from .state.document import StateError
from .state.seed import load_state
from .state.wipe import remove_runners

log = logging.getLogger(__name__)

ENDPOINT = "a connected endpoint runner"
CONNECT = "a connected connect runner with the bridge capability"
WITH_JOBS = "an endpoint runner with jobs"
NO_RUNNERS = "no runners"

KNOWN = {
    ENDPOINT: "a connected endpoint runner with agents (params: workspace, user, project, runner, agents); "
              "returns runner_id, project_id",
    CONNECT: "a connected `opik connect` runner declaring the jobs and bridge capabilities (params: workspace, "
             "user, project, runner); returns runner_id, project_id",
    WITH_JOBS: "a connected endpoint runner holding jobs in the given statuses, oldest first (params: those of "
               "the endpoint runner, and statuses: [status, ...] or counts: {status: n}, agent, inputs); returns "
               "runner_id, project_id, job_ids",
    NO_RUNNERS: "the workspace has no runners (they and their jobs are deleted) and has the project "
                "(params: workspace, user, project); returns project_id",
}

DEFAULT_AGENTS = {
    "answer": {
        "description": "Answers a question.",
        "language": "python",
        "params": [{"name": "question", "type": "string", "presence": "required"}],
        "timeout": 0,
    }
}
DEFAULTS = {
    "workspace": "default",
    "user": "admin",
    "project": "demo",
    "statuses": [jobs.PENDING, jobs.RUNNING, jobs.COMPLETED],
    "inputs": {"question": "2+2?"},
}
RUNNER_NAMES = {ENDPOINT: "pact-endpoint", CONNECT: "pact-connect", WITH_JOBS: "pact-endpoint"}
PARAMS = {
    ENDPOINT: {"workspace", "user", "project", "runner", "agents"},
    CONNECT: {"workspace", "user", "project", "runner"},
    WITH_JOBS: {"workspace", "user", "project", "runner", "agents", "statuses", "counts", "agent", "inputs"},
    NO_RUNNERS: {"workspace", "user", "project"},
}
# What a job of each status carries, so its document looks like one the API made.
OUTCOMES = {
    jobs.COMPLETED: {"result": {"answer": "4"}},
    jobs.FAILED: {"error": "The agent failed (a provider state's job)"},
}


class UnknownState(ValueError):
    """A state this server does not know; the message names the known ones."""

    def __init__(self, name):
        known = ", ".join(repr(known) for known in KNOWN)
        super().__init__(f"unknown provider state {name!r}; known states: {known}")


def resolve(name, params):
    """The state's params with the defaults filled in; UnknownState, or StateError for params
    it does not take."""
    if name not in KNOWN:
        raise UnknownState(name)
    params = {} if params is None else params
    if not isinstance(params, dict):
        raise StateError(f"params: a JSON object, got {type(params).__name__}")
    unknown = sorted(set(params) - PARAMS[name])
    if unknown:
        raise StateError(f"params.{unknown[0]}: not a param of {name!r} (it takes {', '.join(sorted(PARAMS[name]))})")
    resolved = {**copy.deepcopy(DEFAULTS), "runner": RUNNER_NAMES.get(name), "agents": DEFAULT_AGENTS, **params}
    for key in ("workspace", "user", "project", "runner"):
        if key in PARAMS[name] and (not isinstance(resolved[key], str) or not resolved[key]):
            raise StateError(f"params.{key}: a name, got {resolved[key]!r}")
    return resolved


def statuses_of(params):
    """`counts` ({"completed": 2}) or `statuses` (["pending", "completed"]) as a list."""
    if "counts" in params:
        counts = params["counts"]
        if not isinstance(counts, dict) or not all(isinstance(n, int) and n >= 0 for n in counts.values()):
            raise StateError("params.counts: an object of status -> count, e.g. {\"completed\": 2}")
        return [status for status, n in counts.items() for _ in range(n)]
    statuses = params["statuses"]
    if not isinstance(statuses, list):
        raise StateError("params.statuses: a list of job statuses, e.g. [\"pending\", \"completed\"]")
    return statuses


def runner_item(name, params, runner_id):
    item = {
        "id": str(runner_id), "workspace": params["workspace"], "user": params["user"], "project": params["project"],
        "name": params["runner"], "status": "connected",
    }
    if name == CONNECT:
        item.update(type="connect", capabilities=["jobs", "bridge"])
    else:
        item.update(type="endpoint", agents=params["agents"], capabilities=["jobs"])
    return item


def setup(settings, name, params):
    """Put the store in state `name`; the ids it made, as strings."""
    params = resolve(name, params)
    if name == NO_RUNNERS:
        with database.atomic():
            removed = remove_runners(Runner.select(Runner.id).where(Runner.workspace == params["workspace"]))
            project_id = project_for(settings, params)
        log.info("provider state %r: %d runners removed from workspace %r", name, removed, params["workspace"])
        return {"project_id": str(project_id)}
    runner_id = new_id()
    document = {"version": 1, "runners": [runner_item(name, params, runner_id)], "jobs": []}
    if name == WITH_JOBS:
        agent = params.get("agent") or next(iter(params["agents"]), None)
        if agent is None:
            raise StateError("params.agents: a runner with jobs needs an agent")
        for index, status in enumerate(statuses_of(params)):
            job = {"id": str(new_id()), "runner_id": str(runner_id), "agent_name": agent, "status": status,
                   "inputs": params["inputs"], **OUTCOMES.get(status, {})}
            document["jobs"].append(job)
    try:
        load_state(settings, document)
    except StateError as exc:
        # The document is this module's; a fault in it is one of the params.
        raise StateError(f"params: {exc}") from None
    project_id = Runner.get_by_id(runner_id).project_id
    made = {"runner_id": str(runner_id), "project_id": str(project_id)}
    if name == WITH_JOBS:
        made["job_ids"] = [job["id"] for job in document["jobs"]]
    log.info("provider state %r set up: runner %s", name, runner_id)
    return made


def project_for(settings, params):
    """The workspace's project of that name, made if missing."""
    found = Project.get_or_none((Project.workspace == params["workspace"]) & (Project.name == params["project"]))
    if found is not None:
        return found.id
    project_id = new_id()
    try:
        load_state(settings, {"projects": [{"id": str(project_id), "workspace": params["workspace"],
                                            "name": params["project"], "created_by": params["user"]}]})
    except StateError:
        # Made meanwhile by a setup sent at the same time: on PostgreSQL both looked before either
        # committed, and load_state's second try then finds the name taken. (Eight "no runners"
        # setups at once over two instances refused one or more; test_scale_out.py.)
        found = Project.get_or_none((Project.workspace == params["workspace"]) & (Project.name == params["project"]))
        if found is None:
            raise
        return found.id
    return project_id


def teardown(settings, name, params):
    """Remove what setup(name, params) made (see the module's docstring); {}."""
    params = resolve(name, params)
    if name == NO_RUNNERS:
        return {}
    project = Project.get_or_none((Project.workspace == params["workspace"]) & (Project.name == params["project"]))
    if project is not None:
        with database.atomic():
            removed = remove_runners(Runner.select(Runner.id).where(
                (Runner.workspace == params["workspace"]) & (Runner.user_name == params["user"])
                & (Runner.project_id == project.id) & (Runner.type == ("connect" if name == CONNECT else "endpoint"))
                & (Runner.name == params["runner"])
            ))
        log.info("provider state %r torn down: %d runners removed", name, removed)
    return {}
