"""`opik-runners conformance server`: the shared scenarios against a server, through its public
API only (never /_admin/), as a runner and the Opik UI would call it."""
import fnmatch

from . import scenario as scenarios
from .scenarios import SCENARIOS
from .http import Api
from .report import from_scenario


class Unreachable(Exception):
    """The server did not answer at all; the message says where it was looked for."""


def select(only=None, slow=False):
    """The scenarios to run: all (or those whose area, name or "area.name" match a pattern of
    `only`, comma separated globs); a slow one is kept, and skipped unless `slow`."""
    chosen = list(SCENARIOS)
    if only:
        patterns = [p.strip() for p in only.split(",") if p.strip()]
        chosen = [s for s in chosen if any(fnmatch.fnmatch(name, p) for p in patterns
                                           for name in (s.area, s.name, f"{s.area}.{s.name}"))]
    return chosen


def check(url, profile="opik", workspace="default", api_key=None, only=None, slow=False, options=None,
          progress=None, prefix="conformance"):
    """Run the scenarios against the Opik API at `url` (what OPIK_URL_OVERRIDE would name); a
    list of report.Outcome, in the areas' order."""
    if profile not in scenarios.PROFILES:
        raise ValueError(f"profile must be one of {', '.join(scenarios.PROFILES)}, got {profile!r}")
    api = Api(url, workspace, api_key)
    try:
        api.call("GET", "is-alive/ping", timeout=10)
    except OSError as exc:
        raise Unreachable(f"no answer from {api.base}/is-alive/ping ({getattr(exc, 'reason', exc)}): is the server "
                          "running, and is --url the API's base (http://host:port/api)?") from None
    options = options or scenarios.Options()
    run_id = f"{prefix}-{scenarios.new_run_id()}"
    chosen = sorted(select(only, slow), key=lambda s: scenarios.AREAS.index(s.area))
    outcomes = []
    for index, scenario in enumerate(chosen):
        if progress:
            progress(index, len(chosen), f"{scenario.area}: {scenario.title}")
        if scenario.slow and not slow:
            result = scenarios.Result(scenario, "skipped", reason="it waits for real time: run with --slow")
        else:
            result = scenarios.run(scenario, api, profile, options, run_id)
        outcomes.append(from_scenario(result))
    return outcomes
