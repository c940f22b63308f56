"""Every setting the service reads, in one place.

Names follow the upstream Opik environment variables where one exists. Durations
accept plain seconds ("15", "0.5"; hours for OPIK_RUNNER_DEAD_PURGE_HOURS) or
Dropwizard-style strings ("30m", "24h", "7d"), so a value copied from an Opik
deployment works unchanged.
"""
import os
import re

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


def parse_duration(value, bare_unit="s"):
    """Seconds as a float from "15", "1.5", "500ms", "30m", "24h" or "7d"; a bare number
    is in `bare_unit`."""
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"not a duration: {value!r}")
    number, unit = match.groups()
    return float(number) * _UNITS[unit or bare_unit]


def parse_hours(value):
    """A duration whose setting is named in hours: "48" is 48 h ("30m", "2s" still work)."""
    return parse_duration(value, bare_unit="h")


def parse_api_keys(value):
    """`user:key,user:key` -> {key: user}."""
    keys = {}
    for pair in filter(None, (p.strip() for p in (value or "").split(","))):
        user, sep, key = pair.partition(":")
        if not sep or not user.strip() or not key.strip():
            raise ValueError(f"OPIK_API_KEYS entries look like user:key, got {pair!r}")
        keys[key.strip()] = user.strip()
    return keys


def parse_bool(value):
    text = str(value).strip().lower()
    if text not in ("1", "true", "yes", "on", "0", "false", "no", "off", ""):
        raise ValueError(f"not a boolean: {value!r}")
    return text in ("1", "true", "yes", "on")


# (env name, default, parser); the README's configuration table lists the same rows.
SETTINGS = [
    ("DATABASE_URL", "sqlite:///opik-runners.db", str),
    ("OPIK_DB_POOL_SIZE", "20", int),
    ("OPIK_API_KEYS", "", parse_api_keys),
    ("OPIK_RUNNER_HEARTBEAT_TTL", "15s", parse_duration),
    ("OPIK_RUNNER_NEXT_JOB_POLL_TIMEOUT", "10s", parse_duration),
    ("OPIK_RUNNER_JOB_TIMEOUT", "30m", parse_duration),
    ("OPIK_RUNNER_MAX_PENDING", "100", int),
    ("OPIK_RUNNER_DEAD_PURGE_HOURS", "24h", parse_hours),
    ("OPIK_RUNNER_COMPLETED_JOB_TTL", "7d", parse_duration),
    ("OPIK_RUNNER_REAPER_INTERVAL", "60s", parse_duration),
    ("OPIK_PAIRING_AUTO_ACTIVATE", "false", parse_bool),
    ("OPIK_BRIDGE_POLL_TIMEOUT", "30s", parse_duration),
    ("OPIK_BRIDGE_MAX_PENDING", "50", int),
    ("OPIK_BRIDGE_MAX_COMMANDS_PER_MINUTE", "600", int),
    ("OPIK_BRIDGE_MAX_WRITE_COMMANDS_PER_MINUTE", "120", int),
    # Serving (gunicorn.conf.py reads these).
    ("OPIK_RUNNERS_BIND", "127.0.0.1:5173", str),
    ("OPIK_RUNNERS_WORKERS", "2", int),
    ("OPIK_RUNNERS_WORKER_CONNECTIONS", "4000", int),
    ("OPIK_RUNNERS_ACCESS_LOG", "", str),
    ("OPIK_RUNNERS_LOG_LEVEL", "info", str),
]

# Fixed upstream limits (LocalRunnerConfig); not worth a knob each.
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


def setting(name):
    """A setting of the running app (Flask config holds what load_config read)."""
    from flask import current_app

    return current_app.config[name]


def load_config(environ=None, **overrides):
    """Flask config from the environment; `overrides` (tests) win over it."""
    environ = os.environ if environ is None else environ
    config = {}
    for name, default, parse in SETTINGS:
        raw = overrides.pop(name, environ.get(name, default))
        config[name] = parse(raw) if isinstance(raw, str) else raw
    config.update(overrides)
    return config
