"""Opik's runner protocol, as both sides of it speak it: the status and type vocabularies, the
ids, and the crypto of pairing and of the bridge. The server (domain, schemas, state
documents) and the clients (client/: the simulated runner, the conformance kit) import it
from here, so each word and each HMAC is spelled once.

Standard library only (and uuid6 for the ids): the clients may import nothing else of the
package."""
import base64
import hashlib
import hmac
import json
import uuid
from enum import StrEnum

from uuid6 import uuid7


def new_id():
    """A time-ordered UUID v7: every id the server makes, as Opik's IdGenerator makes them
    (docs/opik-behaviour.md#ids)."""
    return uuid7()


# -- vocabularies (StrEnum: each member is its own string, in JSON and in the store)


class JobStatus(StrEnum):
    """A job's life (docs/opik-behaviour.md#job-states)."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


JOB_STATUSES = tuple(JobStatus)
JOB_UNFINISHED = (JobStatus.PENDING, JobStatus.RUNNING)
JOB_FINISHED = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
# What a runner may report of its job (docs/opik-behaviour.md#job-results).
JOB_REPORTABLE = (JobStatus.RUNNING, JobStatus.COMPLETED, JobStatus.FAILED)


class BridgeStatus(StrEnum):
    """A bridge command's life (docs/opik-behaviour.md#bridge-states)."""

    PENDING = "pending"
    PICKED_UP = "picked_up"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"


BRIDGE_STATUSES = tuple(BridgeStatus)
BRIDGE_OPEN = (BridgeStatus.PENDING, BridgeStatus.PICKED_UP)
BRIDGE_REPORTABLE = (BridgeStatus.COMPLETED, BridgeStatus.FAILED)


class BridgeType(StrEnum):
    """What a bridge command asks the `opik connect` daemon to do (docs/opik-behaviour.md#bridge-fields)."""

    READ_FILE = "ReadFile"
    WRITE_FILE = "WriteFile"
    EDIT_FILE = "EditFile"
    LIST_FILES = "ListFiles"
    SEARCH_FILES = "SearchFiles"
    EXEC = "Exec"


BRIDGE_TYPES = tuple(BridgeType)
# The commands the write rate limit counts (docs/opik-behaviour.md#bridge-rate-limits).
BRIDGE_WRITE_TYPES = (BridgeType.WRITE_FILE, BridgeType.EDIT_FILE, BridgeType.EXEC)


class RunnerStatus(StrEnum):
    """A runner's status, derived from its heartbeat (docs/opik-behaviour.md#runner-status).
    `pairing` is a value of the listing's filter only: no runner is in it any more."""

    PAIRING = "pairing"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"


class RunnerType(StrEnum):
    """What `opik endpoint` (jobs) and `opik connect` (bridge commands) pair as."""

    ENDPOINT = "endpoint"
    CONNECT = "connect"


# -- base64, as the CLI and the pairing page write it


def decode_base64(text):
    """Standard base64, padded or not (the CLI pads; Opik accepts 43 characters). binascii.Error
    or ValueError for anything else."""
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def encode_base64(raw):
    return base64.b64encode(raw).decode("ascii")


def decode_urlsafe(text):
    """URL-safe base64 without its padding, as the pairing link's fragment carries it."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_urlsafe(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


# -- pairing (docs/opik-behaviour.md#activation-hmac, docs/opik-behaviour.md#cli-pairing-link)


def activation_hmac(session_id, activation_key, runner_name):
    """HMAC-SHA256(activation key, session UUID bytes || SHA-256(runner name)), raw bytes."""
    message = uuid.UUID(str(session_id)).bytes + hashlib.sha256(runner_name.encode("utf-8")).digest()
    return hmac.new(activation_key, message, hashlib.sha256).digest()


def activation_hmac_text(session_id, activation_key, runner_name):
    """The activation HMAC as `POST .../activate` sends it: standard base64."""
    return encode_base64(activation_hmac(session_id, activation_key, runner_name))


def link_fragment(session_id, activation_key, project_id, runner_name, runner_type):
    """The pairing link's fragment: session id, key, project id, the name with a one-byte
    length, and the type (0 connect, 1 endpoint), URL-safe base64 without padding."""
    name = runner_name.encode("utf-8")
    payload = (uuid.UUID(str(session_id)).bytes + activation_key + uuid.UUID(str(project_id)).bytes
               + bytes([len(name)]) + name + bytes([0 if runner_type == RunnerType.CONNECT else 1]))
    return encode_urlsafe(payload)


def read_link_fragment(fragment):
    """What link_fragment wrote: {"session_id", "key", "project_id", "runner_name", "type"}."""
    raw = decode_urlsafe(fragment)
    length = raw[64]
    return {
        "session_id": str(uuid.UUID(bytes=raw[:16])),
        "key": raw[16:48],
        "project_id": str(uuid.UUID(bytes=raw[48:64])),
        "runner_name": raw[65:65 + length].decode("utf-8"),
        "type": RunnerType.CONNECT if raw[65 + length] == 0 else RunnerType.ENDPOINT,
    }


# -- the bridge (docs/opik-behaviour.md#bridge-key, docs/opik-behaviour.md#bridge-signatures)

BRIDGE_KEY_INFO = b"opik-bridge-v1"
SIGNATURE_FIELD = "_hmac"  # where a signed command's args and a signed result carry the signature


def bridge_key(activation_key, session_id):
    """HKDF-SHA256 (RFC 5869) of the activation key, salted with the session's UUID bytes, info
    "opik-bridge-v1": one 32-byte block."""
    prk = hmac.new(uuid.UUID(str(session_id)).bytes, activation_key, hashlib.sha256).digest()
    return hmac.new(prk, BRIDGE_KEY_INFO + b"\x01", hashlib.sha256).digest()


def sign(key, label, payload):
    """base64(HMAC-SHA256(key, label || the payload's JSON, keys sorted, no spaces)). The
    label is the command's type for its args, the result's status for a result. The JSON is
    Python's (ASCII-escaped, `5.0` stays `5.0`), as the CLI computes it."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return encode_base64(hmac.new(key, label.encode("utf-8") + canonical.encode("utf-8"), hashlib.sha256).digest())


def signed(key, label, payload):
    """`payload` with its signature under SIGNATURE_FIELD."""
    return {**payload, SIGNATURE_FIELD: sign(key, label, payload)}


def signature_holds(key, label, payload):
    """Whether `payload` (a command's args, or a result) carries a valid signature of itself."""
    unsigned = dict(payload)
    given = unsigned.pop(SIGNATURE_FIELD, None)
    # Bytes: compare_digest refuses a str that is not ASCII (a client's garbled signature is just wrong).
    return isinstance(given, str) and hmac.compare_digest(given.encode(), sign(key, label, unsigned).encode())
