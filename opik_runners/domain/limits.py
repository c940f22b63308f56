"""Fixed upstream limits (Opik's LocalRunnerConfig): not worth a knob each."""
import json

MAX_AGENTS_PER_RUNNER = 50
MAX_LOG_ENTRIES_PER_BATCH = 1000
MAX_PAYLOAD_BYTES = 1024 * 1024
CHECKLIST_MAX_DEPTH = 10
BRIDGE_DEFAULT_TIMEOUT = 30
BRIDGE_MAX_TIMEOUT = 120
BRIDGE_COMPLETED_TTL = 3600
BRIDGE_DEFAULT_BATCH, BRIDGE_MAX_BATCH = 10, 20
# A plain upstream job/log hash lives in Redis; a row here is about as big, so the
# body limit Flask enforces before parsing is the JSON limit plus headroom.
MAX_REQUEST_BYTES = 8 * MAX_PAYLOAD_BYTES


def serialized_length(value):
    """The size upstream's payload limits measure: the length of the serialized JSON as a
    Java string, so UTF-16 code units (an emoji counts 2), not bytes."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-16-le")) // 2
