"""Pairing: the CLI registers a session with its activation key; a browser (or the
headless CLI) proves it holds the key with an HMAC, which activates the runner
(docs/opik-behaviour.md#activation-hmac, docs/opik-behaviour.md#pairing-activation)."""
import base64
import binascii
import hashlib
import hmac
import logging

from ..errors import error, failure
from ..store.models import SECOND, PairingSession, Project, Runner, database, now_us
from .ownership import owned_runners
from .runners import detach_runner

log = logging.getLogger(__name__)


def decode_base64(text):
    """Standard base64, padded or not (the CLI pads; upstream accepts 43 characters)."""
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def activation_hmac(session_id, activation_key, runner_name):
    """HMAC-SHA256(key, session UUID bytes || SHA-256(runner name))."""
    message = session_id.bytes + hashlib.sha256(runner_name.encode("utf-8")).digest()
    return hmac.new(activation_key, message, hashlib.sha256).digest()


def create_session(settings, caller, request):
    try:
        key = decode_base64(request["activation_key"])
    except (binascii.Error, ValueError):
        raise failure(400, "activation_key must be valid base64")
    if len(key) != 32:
        raise failure(400, "activation_key must decode to exactly 32 bytes")
    project = Project.get_or_none(
        (Project.id == request["project_id"]) & (Project.workspace == caller.workspace)
    )
    if project is None:
        raise failure(404, f"Project not found: {request['project_id']}")
    session = PairingSession.create(
        workspace=caller.workspace,
        user_name=caller.user,
        project_id=project.id,
        type=request["type"],
        activation_key=request["activation_key"],
        expires_at=now_us() + request["ttl_seconds"] * SECOND,
    )
    log.info("pairing session %s created for runner %s (%s)", session.id, session.runner_id, session.type)
    if settings.pairing_auto_activate:
        # Local dev loop: no browser. The runner's chosen name travels only in the
        # link, so the server names it after its id.
        name = f"{session.type}-{str(session.runner_id)[:8]}"
        key = decode_base64(session.activation_key)
        activate_session(settings, caller, session.id, name, base64.b64encode(activation_hmac(session.id, key, name)).decode())
    return session


def activate_session(settings, caller, session_id, runner_name, hmac_text):
    """Check the HMAC, then activate the runner, evicting the caller's previous runner of
    the same type for the project. Returns the runner id."""
    session = PairingSession.get_or_none(
        (PairingSession.id == session_id)
        & (PairingSession.workspace == caller.workspace)
        & (PairingSession.expires_at > now_us())
    )
    if session is None:  # missing, expired or another workspace's: 404, not 403
        raise failure(404, f"Pairing session not found: {session_id}")
    expected = activation_hmac(session.id, decode_base64(session.activation_key), runner_name)
    try:
        given = decode_base64(hmac_text)
    except (binascii.Error, ValueError):
        given = b""
    if not hmac.compare_digest(expected, given):
        raise failure(403, "Invalid activation hmac")  # the session stays usable

    now = now_us()
    with database.atomic():
        # The one-time flag is taken first, in the same transaction as the activation,
        # so a lost race changes nothing.
        taken = PairingSession.update(activated=True).where(
            (PairingSession.id == session.id) & (PairingSession.activated == False)  # noqa: E712
        ).execute()
        if not taken:
            raise error(409, "Session already activated")
        # Activations for one project take turns: its row is held to the commit (PostgreSQL), so
        # the runners to evict are read after every earlier activation committed its own. (Read
        # without it, eight activations at once left up to five runners connected.)
        database.hold_rows(Project.select(Project.id).where(Project.id == session.project_id))
        previous = owned_runners(caller.workspace, caller.user).where(
            (Runner.project_id == session.project_id) & (Runner.type == session.type)
        )
        for runner in previous:
            detach_runner(runner.id, f"evicted by runner {session.runner_id}")
        Runner.create(
            id=session.runner_id,
            workspace=caller.workspace,
            user_name=caller.user,  # owned by whoever activates, not the session's creator
            project_id=session.project_id,
            type=session.type,
            name=runner_name,
            connected_at=now,
            heartbeat_expires_at=now + int(settings.heartbeat_ttl * SECOND),
        )
    log.info("runner %s activated as %r (%s)", session.runner_id, runner_name, session.type)
    return session.runner_id


def drop_expired_sessions(now):
    """Pairing sessions past their TTL (the reaper); their number. The rows are locked in key
    order first, as a reset takes them (PostgreSQL)."""
    expired = PairingSession.expires_at < now
    with database.atomic():
        database.hold_rows(PairingSession.select(PairingSession.id).where(expired))
        return PairingSession.delete().where(expired).execute()
