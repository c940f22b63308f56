"""Bridge commands: the server queues file and shell commands for an `opik connect`
daemon, which polls them, runs them and reports back (docs/opik-behaviour.md#bridge-states,
docs/opik-behaviour.md#bridge)."""
import functools
import logging

from peewee import Select, Value, fn

from .. import metrics
from . import polls
from ..store import wakeups
from ..errors import error, failure
from .limits import (
    BRIDGE_COMPLETED_TTL, BRIDGE_DEFAULT_BATCH, BRIDGE_DEFAULT_TIMEOUT, BRIDGE_MAX_BATCH, BRIDGE_MAX_TIMEOUT,
    MAX_PAYLOAD_BYTES, serialized_length,
)
from ..store.models import SECOND, BridgeCommand, BridgeRate, Runner, database, now_us
from .ownership import get_runner, require_runner

log = logging.getLogger(__name__)

PENDING, PICKED_UP, COMPLETED, FAILED, TIMED_OUT = "pending", "picked_up", "completed", "failed", "timed_out"
OPEN = (PENDING, PICKED_UP)
REPORTABLE = (COMPLETED, FAILED)
WRITE_TYPES = ("WriteFile", "EditFile", "Exec")
# A picked-up command gets this long past its own timeout before the reaper gives up on it.
PICKUP_GRACE = 10 * SECOND
REAP_RUNNERS_PER_STATEMENT = 500  # well under SQLite's bound parameters per statement (32,766)


def clamp_timeout(value):
    return BRIDGE_DEFAULT_TIMEOUT if not value or value <= 0 else min(value, BRIDGE_MAX_TIMEOUT)


def clamp_wait(seconds):
    """How long GET ?wait=true holds: the asked `timeout`, within [1, 120]."""
    return min(max(seconds, 1), BRIDGE_MAX_TIMEOUT)


def count_command(runner_id, write):
    """Bump this minute's counters; they count refused commands too, as upstream's do."""
    minute = now_us() // (60 * SECOND)
    upsert = BridgeRate.insert(runner_id=runner_id, minute=minute, total=1, writes=int(write)).on_conflict(
        conflict_target=[BridgeRate.runner_id, BridgeRate.minute],
        update={BridgeRate.total: BridgeRate.total + 1, BridgeRate.writes: BridgeRate.writes + int(write)},
    )
    return next(iter(upsert.returning(BridgeRate.total, BridgeRate.writes).objects().execute()))


def pending_commands(runner_id):
    return BridgeCommand.select(fn.COUNT(BridgeCommand.id)).where(
        (BridgeCommand.runner == runner_id) & (BridgeCommand.status == PENDING)
    )


def insert_while_under(command, limit):
    """Insert `command` only while fewer than `limit` commands wait for its runner (one
    INSERT ... SELECT); whether it was."""
    fields = BridgeCommand._meta.sorted_fields
    values = Select(columns=[Value(command.__data__.get(f.name), converter=f.db_value, unpack=False) for f in fields])
    query = BridgeCommand.insert_from(values.where(pending_commands(command.runner_id) < limit), fields)
    return database.execute(query).rowcount > 0


def submit_command(settings, caller, runner_id, request):
    size = serialized_length(request["args"])
    write = request["type"] in WRITE_TYPES
    rejection = None
    with database.atomic():
        # The wake-up is sent at commit (PostgreSQL), wherever it is asked for: asked for first, the
        # runner's lock below is held one round trip shorter. A refused command is either not
        # written (the pending cap's refusal rolls everything back) or deleted again (the rate
        # count's); either way its wake-up finds nothing.
        if size <= MAX_PAYLOAD_BYTES:
            database.notify(("bridge", runner_id))
        # The runner's row is held to the commit, so the pending cap is counted after every
        # earlier submission to the runner committed: on PostgreSQL a count in a transaction
        # that did not hold it read before the others' inserts (a cap of 5 let 7-14 through
        # with 200 submitted at once: test_scale_out.py, the pending cap).
        runner = get_runner(caller, runner_id, locked=True)
        if runner.status != "connected":
            raise error(404, "Runner is not connected")
        if "bridge" not in runner.declared_capabilities:
            raise error(409, "Runner does not support bridge commands")
        timeout = clamp_timeout(request.get("timeout_seconds"))
        now = now_us()
        command = None
        if size <= MAX_PAYLOAD_BYTES:  # one too large for any answer but 400 is not written
            command = BridgeCommand(
                runner=runner_id,
                type=request["type"],
                args=request["args"],
                timeout_seconds=timeout,
                submitted_at=now,
                expires_at=now + (2 * timeout + 60) * SECOND,
            )
            if not insert_while_under(command, settings.bridge_max_pending):
                raise error(429, "Too many pending commands")
        elif pending_commands(runner_id).scalar() >= settings.bridge_max_pending:
            raise error(429, "Too many pending commands")
        # Counted after the insert: the count's row (per runner and minute) is locked until the
        # commit too. Refusals below are raised after the commit, so the counters keep them.
        counts = count_command(runner_id, write)
        if counts.total > settings.bridge_max_commands_per_minute:
            rejection = error(429, "Rate limit exceeded")
        elif write and counts.writes > settings.bridge_max_write_commands_per_minute:
            rejection = error(429, "Write rate limit exceeded")
        elif size > MAX_PAYLOAD_BYTES:
            rejection = error(400, f"args payload too large: {size} bytes (max {MAX_PAYLOAD_BYTES})")
        if rejection and command is not None:
            BridgeCommand.delete().where(BridgeCommand.id == command.id).execute()
    if rejection:
        raise rejection
    log.info("bridge command %s (%s) submitted to runner %s", command.id, command.type, runner_id)
    return command


def claim_commands(runner_id, limit):
    """Mark up to `limit` of the oldest live pending commands picked up; None if there are none."""
    now = now_us()
    query = (
        BridgeCommand.select()
        .where(
            (BridgeCommand.runner == runner_id)
            & (BridgeCommand.status == PENDING)
            & (BridgeCommand.expires_at > now)
        )
        .order_by(BridgeCommand.id)
        .limit(limit)
    )
    if not query.exists():  # a plain read first: an idle poll never takes the write lock
        return None
    with database.atomic():
        commands = list(database.claim_rows(query))
        if not commands:
            return None
        BridgeCommand.update(status=PICKED_UP, picked_up_at=now).where(
            BridgeCommand.id.in_([c.id for c in commands])
        ).execute()
    for command in commands:
        command.status, command.picked_up_at = PICKED_UP, now
    log.info("runner %s picked up %d bridge commands", runner_id, len(commands))
    return commands


def next_commands(settings, caller, runner_id, max_commands):
    """Long-poll for the first command, then take what else is waiting, up to the batch size."""
    require_runner(caller, runner_id)
    limit = BRIDGE_DEFAULT_BATCH if not max_commands or max_commands <= 0 else min(max_commands, BRIDGE_MAX_BATCH)
    found = polls.wait_for_claim("bridge", runner_id, functools.partial(claim_commands, runner_id, limit),
                                 settings.bridge_poll_timeout, database.hand_back_connection,
                                 made_at=first_submitted_at)
    return found or []


def first_submitted_at(commands):
    return commands[0].submitted_at


def find_command(caller, runner_id, command_id):
    require_runner(caller, runner_id)
    command = BridgeCommand.get_or_none(
        (BridgeCommand.id == command_id)
        & (BridgeCommand.runner == runner_id)
        & (BridgeCommand.expires_at > now_us())
    )
    if command is None:
        raise failure(404, f"Command not found: {command_id}")
    return command


def report_result(caller, runner_id, command_id, report):
    if report["status"] not in REPORTABLE:
        raise error(400, f"Invalid result status. Must be one of: [{', '.join(REPORTABLE)}]")
    if report.get("result") is None and report.get("error") is None:
        raise error(400, "Either result or error must be provided")
    for field in ("result", "error"):
        size = serialized_length(report[field]) if report.get(field) is not None else 0
        if size > MAX_PAYLOAD_BYTES:
            raise error(400, f"{field} payload too large: {size} bytes (max {MAX_PAYLOAD_BYTES})")
    command = find_command(caller, runner_id, command_id)
    now = now_us()
    with database.atomic():
        # Compare-and-set on the open states: of two concurrent reports exactly one wins.
        won = (
            BridgeCommand.update(
                status=report["status"],
                result=report.get("result"),
                error=report.get("error"),
                duration_ms=report.get("duration_ms"),
                completed_at=now,
                expires_at=now + BRIDGE_COMPLETED_TTL * SECOND,
            )
            .where((BridgeCommand.id == command.id) & BridgeCommand.status.in_(OPEN))
            .execute()
        )
        if won:
            database.notify(("command", command.id))
    if not won:
        raise error(409, "Command already completed")
    log.info("bridge command %s %s", command.id, report["status"])


def get_command(caller, runner_id, command_id, wait, timeout):
    """The command; with `wait`, block until it finishes or `timeout` passes, then answer
    its current state (which may still be open: 200, not 408)."""
    command = find_command(caller, runner_id, command_id)
    if not wait or command.status not in OPEN:
        return command
    timeout = clamp_wait(timeout)

    def finished():
        current = BridgeCommand.get_or_none(BridgeCommand.id == command.id)
        return current if current is not None and current.status not in OPEN else None

    with metrics.held("command_result"):
        waited = wakeups.wait_for(("command", command.id), finished, timeout, release=database.hand_back_connection)
    return waited or find_command(caller, runner_id, command_id)


def time_out_commands(where):
    """Time out the open commands matching `where` and wake whoever waits on them."""
    now = now_us()
    with database.atomic():
        timed_out = (
            BridgeCommand.update(status=TIMED_OUT, completed_at=now, expires_at=now + BRIDGE_COMPLETED_TTL * SECOND)
            .where(where & BridgeCommand.status.in_(OPEN))
            .returning(BridgeCommand.id)
            .execute()
        )
        ids = [row.id for row in timed_out]
        for command_id in ids:
            database.notify(("command", command_id))
    return ids


def reap_commands(now):
    """Time out picked-up commands past their timeout and grace, drop expired commands and
    old rate counters; the number timed out."""
    stuck = (BridgeCommand.status == PICKED_UP) & (
        BridgeCommand.picked_up_at + BridgeCommand.timeout_seconds * SECOND + PICKUP_GRACE < now)
    expired = BridgeCommand.expires_at < now
    old = BridgeRate.minute < now // (60 * SECOND) - 2
    with database.atomic():
        # Their runners' rows first, in key order, as a reset takes them before their commands
        # and counters (state.remove_runners; PostgreSQL): two writes taking the same commands in
        # the order each scan finds them could each hold one the other waits for. Rows that match
        # only after this lock wait for the next cycle.
        runner_ids = [runner.id for runner in database.lock_rows(
            Runner.select(Runner.id).where(
                Runner.id.in_(BridgeCommand.select(BridgeCommand.runner).where(stuck | expired))
                | Runner.id.in_(BridgeRate.select(BridgeRate.runner_id).where(old))
            ).order_by(Runner.id)
        )]
        stale = []
        for start in range(0, len(runner_ids), REAP_RUNNERS_PER_STATEMENT):
            chunk = runner_ids[start:start + REAP_RUNNERS_PER_STATEMENT]
            stale += time_out_commands(stuck & BridgeCommand.runner.in_(chunk))
            BridgeCommand.delete().where(expired & BridgeCommand.runner.in_(chunk)).execute()
            BridgeRate.delete().where(old & BridgeRate.runner_id.in_(chunk)).execute()
    if stale:
        log.info("timed out %d picked-up bridge commands", len(stale))
    return len(stale)
