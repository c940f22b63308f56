"""Every setting the service reads, in one place.

Names follow the upstream Opik environment variables where one exists. Durations
accept plain seconds ("15", "0.5"; hours for OPIK_RUNNER_DEAD_PURGE_HOURS) or
Dropwizard-style strings ("30m", "24h", "7d"), so a value copied from an Opik
deployment works unchanged.

`load_settings()` reads them into a `Settings` tuple, which the app, the command and
the domain rules take as an argument: nothing below the app reads Flask's config.
"""
import os
import re
from collections import namedtuple

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
            raise ValueError(f"entries look like user:key, got {pair!r}")
        keys[key.strip()] = user.strip()
    return keys


def parse_bool(value):
    text = str(value).strip().lower()
    if text not in ("1", "true", "yes", "on", "0", "false", "no", "off", ""):
        raise ValueError(f"not a boolean: {value!r}")
    return text in ("1", "true", "yes", "on")


def parse_admin(value):
    text = str(value).strip().lower()
    if text not in ("auto", "on", "off"):
        raise ValueError(f"one of auto, on, off, got {value!r}")
    return text


def parse_names(value):
    """`alice,bob` -> frozenset({"alice", "bob"})."""
    return frozenset(filter(None, (name.strip() for name in (value or "").split(","))))


def parse_hosts(value):
    """`runners.example.com,.corp.example` -> frozenset of lower-case names (any port); `*`
    allows any host. A leading dot also allows the name's subdomains (as Django spells it)."""
    names = frozenset(name.strip().lower() for name in (value or "").split(",") if name.strip())
    for name in names - {"*"}:
        if not re.fullmatch(r"\.?[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?", name):
            raise ValueError(f"host names (any port) look like runners.example.com or .example.com, got {name!r}")
    return frozenset(name.rstrip(".") if name != "*" else name for name in names)


def parse_origins(value):
    """`http://localhost:3000,https://ui.example.com` -> a tuple of origins, as browsers send them
    in `Origin` (scheme://host[:port], no path, no default port)."""
    origins = []
    for origin in filter(None, (o.strip() for o in (value or "").split(","))):
        if origin == "*":
            raise ValueError("list each origin: * would let every web page call this server with your credentials")
        found = re.fullmatch(r"(https?)://([^/?#@\s]+?)(?::(\d+))?/?", origin, re.I)
        if not found:
            raise ValueError(f"origins look like http://localhost:3000, got {origin!r}")
        scheme, host, port = found[1].lower(), found[2].lower(), found[3]
        if port is not None and int(port) != {"http": 80, "https": 443}[scheme]:
            host = f"{host}:{int(port)}"
        origins.append(f"{scheme}://{host}")
    return tuple(dict.fromkeys(origins))


def parse_count(value):
    number = int(value)
    if number < 0:
        raise ValueError(f"must not be negative, got {value!r}")
    return number


Setting = namedtuple("Setting", "name env default parse")

# The README's configuration table lists the same rows (a test keeps them in step).
SETTINGS = [
    Setting("database_url", "DATABASE_URL", "sqlite:///opik-runners.db", str),
    Setting("pool_size", "OPIK_DB_POOL_SIZE", "20", parse_count),
    Setting("api_keys", "OPIK_API_KEYS", "", parse_api_keys),
    Setting("heartbeat_ttl", "OPIK_RUNNER_HEARTBEAT_TTL", "15s", parse_duration),
    Setting("job_poll_timeout", "OPIK_RUNNER_NEXT_JOB_POLL_TIMEOUT", "10s", parse_duration),
    Setting("job_timeout", "OPIK_RUNNER_JOB_TIMEOUT", "30m", parse_duration),
    Setting("max_pending_jobs", "OPIK_RUNNER_MAX_PENDING", "100", parse_count),
    Setting("dead_runner_purge", "OPIK_RUNNER_DEAD_PURGE_HOURS", "24h", parse_hours),
    Setting("completed_job_ttl", "OPIK_RUNNER_COMPLETED_JOB_TTL", "7d", parse_duration),
    Setting("reaper_interval", "OPIK_RUNNER_REAPER_INTERVAL", "60s", parse_duration),
    Setting("pairing_auto_activate", "OPIK_PAIRING_AUTO_ACTIVATE", "false", parse_bool),
    Setting("bridge_poll_timeout", "OPIK_BRIDGE_POLL_TIMEOUT", "30s", parse_duration),
    Setting("bridge_max_pending", "OPIK_BRIDGE_MAX_PENDING", "50", parse_count),
    Setting("bridge_max_commands_per_minute", "OPIK_BRIDGE_MAX_COMMANDS_PER_MINUTE", "600", parse_count),
    Setting("bridge_max_write_commands_per_minute", "OPIK_BRIDGE_MAX_WRITE_COMMANDS_PER_MINUTE", "120", parse_count),
    # The control plane for tests (admin.py): auto = on unless OPIK_API_KEYS is set.
    Setting("admin", "OPIK_RUNNERS_ADMIN", "auto", parse_admin),
    Setting("admin_users", "OPIK_RUNNERS_ADMIN_USERS", "", parse_names),
    Setting("journal_size", "OPIK_RUNNERS_JOURNAL_SIZE", "10000", parse_count),
    # What a web page may do (guard.py): host names besides loopback and IP addresses, and the
    # origins whose pages may call the API across origins (CORS).
    Setting("allowed_hosts", "OPIK_RUNNERS_ALLOWED_HOSTS", "", parse_hosts),
    Setting("cors_origins", "OPIK_RUNNERS_CORS_ORIGINS", "", parse_origins),
    # Serving (serving.py reads these).
    Setting("bind", "OPIK_RUNNERS_BIND", "127.0.0.1:5173", str),
    Setting("workers", "OPIK_RUNNERS_WORKERS", "2", parse_count),
    Setting("worker_connections", "OPIK_RUNNERS_WORKER_CONNECTIONS", "4000", parse_count),
    Setting("access_log", "OPIK_RUNNERS_ACCESS_LOG", "", str),
    Setting("log_level", "OPIK_RUNNERS_LOG_LEVEL", "info", str),
]

Settings = namedtuple("Settings", [setting.name for setting in SETTINGS])


def admin_enabled(settings):
    """Whether /_admin/ is served (and the journal kept): `auto` means on for a server
    without API keys (a dev or test server), off for one with them."""
    return settings.admin == "on" or (settings.admin == "auto" and not settings.api_keys)


class SettingsError(ValueError):
    """A setting that will not parse; the message names the variable."""


def load_settings(environ=None, **overrides):
    """Settings from the environment. `overrides` (tests, command-line flags) are keyed by
    the variable's name, like the environment, and win over it; a value that is not a
    string is taken as already parsed."""
    environ = os.environ if environ is None else environ
    unknown = set(overrides) - {setting.env for setting in SETTINGS}
    if unknown:
        raise SettingsError(f"unknown settings: {', '.join(sorted(unknown))}")
    values = {}
    for setting in SETTINGS:
        raw = overrides.get(setting.env, environ.get(setting.env, setting.default))
        try:
            values[setting.name] = setting.parse(raw) if isinstance(raw, str) else raw
        except ValueError as exc:
            raise SettingsError(f"{setting.env}={raw!r}: {exc}") from None
    return Settings(**values)
