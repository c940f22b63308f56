"""Runners: listing, liveness, agents, checklist, and detaching one (DELETE, eviction,
purge), which ends its open jobs and bridge commands (docs/opik-behaviour.md#runners,
docs/opik-behaviour.md#runner-delete).

Functions take the settings and the caller they need and raise ApiError, so they
run without HTTP; api.py only parses and dumps."""
import logging
import re

from . import bridge, jobs
from ..errors import error
from .limits import CHECKLIST_MAX_DEPTH, MAX_AGENTS_PER_RUNNER, MAX_PAYLOAD_BYTES, serialized_length
from ..store.models import SECOND, BridgeCommand, Runner, database, now_us
from .ownership import find_runner, get_runner, owned, owned_runners, require_runner
from ..store.statements import Param, Statement

log = logging.getLogger(__name__)

CAPABILITY = re.compile(r"[a-z_]+")  # the whole value, as Java's String.matches

# A heartbeat is one statement: the ownership check, the new expiry (and the capabilities, when
# the beat names them) in one UPDATE that returns the runner's type and whether a cancel waits to
# be announced to it. (It was a read of the whole row, agents and checklist parsed, then up to
# three writes; then the UPDATE and a read for announcements, a round trip more on PostgreSQL.)
def beat(p, with_capabilities):
    changes = {Runner.heartbeat_expires_at: Param("expires_at", Runner.heartbeat_expires_at)}
    if with_capabilities:
        changes[Runner.capabilities] = Param("capabilities", Runner.capabilities)
    return (Runner.update(changes).where((Runner.id == p.runner_id) & owned(p.workspace, p.user))
            .returning(Runner.type, jobs.any_cancel_announcement(p)))


HEARTBEAT = {
    with_capabilities: Statement(f"heartbeat{' with capabilities' if with_capabilities else ''}",
                                 lambda p, with_capabilities=with_capabilities: beat(p, with_capabilities))
    for with_capabilities in (False, True)
}
def list_runners(caller, project_id, status, page, size):
    query = owned_runners(caller.workspace, caller.user).where(Runner.project_id == project_id)
    now = now_us()
    if status == "connected":
        query = query.where(Runner.heartbeat_expires_at > now)
    elif status == "disconnected":
        query = query.where(Runner.heartbeat_expires_at <= now)
    elif status == "pairing":
        return 0, []  # only the retired /pairs flow ever produced it
    total = query.count()
    rows = list(query.order_by(Runner.connected_at.desc(), Runner.id.desc()).paginate(page + 1, size))
    return total, rows


def detach_runner(runner_id, reason, only_if=True):
    """DELETE, eviction and purge: fail the runner's open jobs, time out its open bridge
    commands, and hide the runner; whether it did. `only_if`: a condition on the runner's row,
    checked once it is locked."""
    now = now_us()
    with database.atomic():
        # The runner's row first, held to the commit (PostgreSQL): a job being created for it
        # holds that row until its commit, so the open jobs are read after it and failed with
        # the rest (read first, one could stay pending on a detached runner); and in the order
        # renumber_jobs takes them, row then jobs, so the two cannot deadlock.
        locked = database.lock_rows(
            Runner.select(Runner.id).where((Runner.id == runner_id) & Runner.detached_at.is_null() & only_if)
        ).first()
        if locked is None:
            return False  # detached already, gone, or no longer `only_if`
        failed = jobs.fail_open_jobs(runner_id, "Runner disconnected", now)
        timed_out = bridge.time_out_commands(BridgeCommand.runner == runner_id)
        Runner.update(detached_at=now, heartbeat_expires_at=now).where(
            (Runner.id == runner_id) & Runner.detached_at.is_null()
        ).execute()
    log.info(
        "runner %s detached (%s); %d open jobs failed, %d bridge commands timed out",
        runner_id, reason, failed, len(timed_out),
    )
    return True


def disconnect_runner(caller, runner_id):
    """Idempotent: an unknown or foreign runner is a no-op."""
    if find_runner(caller, runner_id) is not None:
        detach_runner(runner_id, "disconnected")


def register_agents(caller, runner_id, agents):
    require_runner(caller, runner_id)
    if len(agents) > MAX_AGENTS_PER_RUNNER:
        raise error(400, f"Too many agents. Maximum is {MAX_AGENTS_PER_RUNNER}")
    Runner.update(agents=agents).where(Runner.id == runner_id).execute()


def deep_merge(base, patch, depth=0):
    """Objects merge recursively up to CHECKLIST_MAX_DEPTH; any other value replaces."""
    merged = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and depth < CHECKLIST_MAX_DEPTH:
            merged[key] = deep_merge(merged[key], value, depth + 1)
        else:
            merged[key] = value
    return merged


def patch_checklist(caller, runner_id, patch):
    if not isinstance(patch, dict):
        raise error(400, "Checklist must be a JSON object")
    with database.atomic():
        # Locked (PostgreSQL): a patch merges into what the one before it wrote. (Read unlocked,
        # 20 patches of 20 keys sent at once lost some keys in each of 3 runs.)
        runner = get_runner(caller, runner_id, locked=True)
        merged = deep_merge(runner.checklist or {}, patch)
        size = serialized_length(merged)
        if size > MAX_PAYLOAD_BYTES:
            raise error(400, f"Checklist too large: {size} bytes (max {MAX_PAYLOAD_BYTES})")
        Runner.update(checklist=merged).where(Runner.id == runner_id).execute()


def heartbeat(settings, caller, runner_id, capabilities):
    """Refresh liveness; return the ids of running jobs cancelled since the last beat."""
    bad = [c for c in capabilities or () if not isinstance(c, str) or not CAPABILITY.fullmatch(c)]
    values = {"runner_id": runner_id, "workspace": caller.workspace, "user": caller.user,
              "expires_at": now_us() + int(settings.heartbeat_ttl * SECOND)}
    if capabilities and not bad:
        values["capabilities"] = capabilities
    found = HEARTBEAT["capabilities" in values].one(**values)
    if found is None:
        raise error(410, f"Runner not found: {runner_id}")
    if bad:  # as Opik: the liveness is refreshed by then, the capabilities are not
        raise error(400, f"Invalid capability value: {bad[0]}")
    runner_type, announcements_waiting = found
    if runner_type != "endpoint" or not announcements_waiting:
        return []
    return jobs.take_cancel_announcements(runner_id)


def purge_dead_runners(settings, now):
    """Detach runners without a heartbeat for the purge time; their number."""
    purge_before = now - int(settings.dead_runner_purge * SECOND)
    dead = Runner.heartbeat_expires_at <= purge_before
    # Read whole before writing (jobs.time_out_running_jobs says why); each is checked again once
    # its row is locked (PostgreSQL), so a heartbeat that commits meanwhile keeps its runner.
    runner_ids = [runner.id for runner in Runner.select(Runner.id).where(Runner.detached_at.is_null() & dead)]
    return sum(detach_runner(runner_id, "purged after staying dead", only_if=dead) for runner_id in runner_ids)


def drop_detached_runners(before):
    """A detached runner's jobs are invisible already; drop the row once they would have expired.
    The rows are locked in key order first, as a reset takes them (PostgreSQL)."""
    detached_long_ago = Runner.detached_at < before
    with database.atomic():
        database.hold_rows(Runner.select(Runner.id).where(detached_long_ago))
        return Runner.delete().where(detached_long_ago).execute()
