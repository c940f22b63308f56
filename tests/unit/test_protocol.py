"""The wire protocol's crypto (opik_runners/protocol.py), held against Opik's test vectors and
against the real client's own code (the opik SDK the end-to-end tests run)."""
import base64
import uuid

from opik.cli.local_runner.pairing import hkdf_sha256
from opik.runner import bridge_auth

from opik_runners import protocol

SESSION = "00000000-0000-0000-0000-000000000001"
KEY = bytes(range(32))


def test_the_activation_hmac_matches_opiks_test_vectors():
    """docs/opik-behaviour.md#activation-hmac: PairingServiceImplTest's two vectors."""
    expected = "127a99c794575e17cfe04628f23eef16155fdb2c5534ac54c7c780d611d86645"
    assert protocol.activation_hmac(SESSION, KEY, "test-runner").hex() == expected
    assert protocol.activation_hmac(uuid.UUID(SESSION), KEY, "test-runner").hex() == expected
    assert base64.b64decode(protocol.activation_hmac_text(SESSION, KEY, "test-runner")).hex() == expected
    realistic = protocol.activation_hmac("550e8400-e29b-41d4-a716-446655440000", b"\xa1" * 32, "devbox-01")
    assert realistic.hex() == "081d9cb7963ef516ae705fe8658464901a445de154ae0f8ff7284253296585f0"


def test_the_bridge_key_is_the_clis_hkdf():
    assert protocol.bridge_key(KEY, SESSION) == hkdf_sha256(KEY, uuid.UUID(SESSION).bytes, b"opik-bridge-v1")


def test_signatures_are_the_clis_and_verify_as_it_verifies():
    key = protocol.bridge_key(KEY, SESSION)
    args = {"path": "notes/é.txt", "offset": 5.0, "nested": {"b": 1, "a": [True, None]}}
    assert protocol.sign(key, "ReadFile", args) == bridge_auth.sign(key, "ReadFile", args)
    signed = protocol.signed(key, "ReadFile", args)
    assert bridge_auth.verify(key, "ReadFile", args, signed[protocol.SIGNATURE_FIELD])
    assert protocol.signature_holds(key, "ReadFile", signed)
    assert not protocol.signature_holds(key, "WriteFile", signed)  # the type is signed too
    assert not protocol.signature_holds(key, "ReadFile", {**signed, "path": "other"})
    assert not protocol.signature_holds(key, "ReadFile", args)  # unsigned


def test_the_link_fragment_reads_back_what_it_wrote():
    project = str(uuid.uuid4())
    fragment = protocol.link_fragment(SESSION, KEY, project, "rünner ✓", protocol.RunnerType.CONNECT)
    assert "=" not in fragment
    assert protocol.read_link_fragment(fragment) == {
        "session_id": SESSION, "key": KEY, "project_id": project, "runner_name": "rünner ✓", "type": "connect"}


def test_base64_is_read_padded_or_not():
    text = base64.b64encode(KEY).decode()
    assert protocol.decode_base64(text) == protocol.decode_base64(text.rstrip("=")) == KEY


def test_the_vocabularies_are_their_strings():
    assert list(protocol.JobStatus) == ["pending", "running", "completed", "failed", "cancelled"]
    assert list(protocol.BridgeStatus) == ["pending", "picked_up", "completed", "failed", "timed_out"]
    assert protocol.JOB_UNFINISHED + protocol.JOB_FINISHED == protocol.JOB_STATUSES
    assert set(protocol.BRIDGE_OPEN) | set(protocol.BRIDGE_REPORTABLE) < set(protocol.BRIDGE_STATUSES)
