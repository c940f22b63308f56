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


def parse_binds(value):
    """`127.0.0.1:5173` or several, `127.0.0.1:5173,devbox:5173` -> a tuple of gunicorn binds."""
    binds = tuple(bind.strip() for bind in (value or "").split(",") if bind.strip())
    if not binds:
        raise ValueError("an address to listen on, as 127.0.0.1:5173")
    return binds


def parse_count(value):
    number = int(value)
    if number < 0:
        raise ValueError(f"must not be negative, got {value!r}")
    return number


# `shown`: the default as the reference shows it, where it says more than the value (empty ones);
# `meaning`: what the setting does. docs/ generates the configuration reference from these.
Setting = namedtuple("Setting", "name env default parse meaning shown", defaults=(None,))

# docs/reference/configuration.md is generated from these rows (docs/hooks/reference.py), and a test
# (tests/docs/test_references.py) fails on a setting whose meaning is empty.
SETTINGS = [
    Setting("database_url", "DATABASE_URL", "sqlite:///opik-runners.db", str,
            "peewee database URL; a relative SQLite path is relative to the working directory"),
    Setting("pool_size", "OPIK_DB_POOL_SIZE", "20", parse_count,
            "database connections per worker process; on PostgreSQL keep workers x instances x this under "
            "`max_connections`"),
    Setting("api_keys", "OPIK_API_KEYS", "", parse_api_keys,
            "`user:key,user:key`; when set, `Authorization: <key>` (the raw key, no `Bearer`) names the user and "
            "a missing or unknown key gets 401",
            "(empty: no auth, every caller is `admin`)"),
    Setting("heartbeat_ttl", "OPIK_RUNNER_HEARTBEAT_TTL", "15s", parse_duration,
            "a runner is `connected` until this long after its last heartbeat"),
    Setting("job_poll_timeout", "OPIK_RUNNER_NEXT_JOB_POLL_TIMEOUT", "10s", parse_duration,
            "how long `jobs/next` holds the request when nothing is pending"),
    Setting("job_timeout", "OPIK_RUNNER_JOB_TIMEOUT", "30m", parse_duration,
            "timeout of a job whose agent registered none; a running job past its timeout is failed"),
    Setting("max_pending_jobs", "OPIK_RUNNER_MAX_PENDING", "100", parse_count,
            "pending jobs a runner may hold before `POST jobs` answers 429"),
    Setting("dead_runner_purge", "OPIK_RUNNER_DEAD_PURGE_HOURS", "24h", parse_hours,
            "a runner without heartbeat this long is purged and its open jobs failed (Opik refuses under 1 h; "
            "shorter values are allowed here, for tests)"),
    Setting("completed_job_ttl", "OPIK_RUNNER_COMPLETED_JOB_TTL", "7d", parse_duration,
            "finished jobs and their logs are deleted this long after they finished"),
    Setting("reaper_interval", "OPIK_RUNNER_REAPER_INTERVAL", "60s", parse_duration,
            "how often the background reaper runs a cycle, across all workers and instances sharing the database "
            "(see \"Maintenance\"); `0` turns it off"),
    Setting("pairing_auto_activate", "OPIK_PAIRING_AUTO_ACTIVATE", "false", parse_bool,
            "`true`: the server activates each new pairing session itself, so `opik connect` pairs with no "
            "browser (local dev only: anyone who can reach the server can then pair)"),
    Setting("bridge_poll_timeout", "OPIK_BRIDGE_POLL_TIMEOUT", "30s", parse_duration,
            "how long `bridge/commands/next` holds the request for the first command"),
    Setting("bridge_max_pending", "OPIK_BRIDGE_MAX_PENDING", "50", parse_count,
            "pending bridge commands a runner may hold before submit answers 429"),
    Setting("bridge_max_commands_per_minute", "OPIK_BRIDGE_MAX_COMMANDS_PER_MINUTE", "600", parse_count,
            "bridge commands per runner per clock minute (refused ones count too)"),
    Setting("bridge_max_write_commands_per_minute", "OPIK_BRIDGE_MAX_WRITE_COMMANDS_PER_MINUTE", "120", parse_count,
            "of which `WriteFile`, `EditFile` and `Exec`"),
    # The control plane for tests (admin.py): auto = on unless OPIK_API_KEYS is set.
    Setting("admin", "OPIK_RUNNERS_ADMIN", "auto", parse_admin,
            "the control plane for tests, `/_admin/` (and its request journal): `auto` serves it when "
            "`OPIK_API_KEYS` is empty, `on`, `off` (every `/_admin/` path 404)"),
    Setting("admin_users", "OPIK_RUNNERS_ADMIN_USERS", "", parse_names,
            "with API keys set, the users (comma separated) whose key may call `/_admin/`; anyone else gets "
            "401/403",
            "(empty)"),
    Setting("journal_size", "OPIK_RUNNERS_JOURNAL_SIZE", "10000", parse_count,
            "request journal entries kept (the newest); `0` records nothing"),
    # What a web page may do (guard.py): host names besides loopback and IP addresses, and the
    # origins whose pages may call the API across origins (CORS).
    Setting("allowed_hosts", "OPIK_RUNNERS_ALLOWED_HOSTS", "", parse_hosts,
            "host names (comma separated; `.example.com` takes its subdomains too; `*` any) that requests may "
            "name in `Host`, besides `localhost`, any IP address and the bound address; others get 403 (see "
            "\"Security of a local server\")",
            "(empty: localhost, IP addresses and the bound name only)"),
    Setting("cors_origins", "OPIK_RUNNERS_CORS_ORIGINS", "", parse_origins,
            "origins (comma separated, as `http://localhost:3000`) whose pages may call the API and `/_admin/` "
            "across origins, credentials included",
            "(empty: no CORS)"),
    # Serving (serving.py reads these).
    Setting("bind", "OPIK_RUNNERS_BIND", "127.0.0.1:5173", parse_binds,
            "where the server listens, `HOST:PORT` (several comma separated); `opik-runners serve --bind`, or "
            "gunicorn's `-b`, wins"),
    Setting("workers", "OPIK_RUNNERS_WORKERS", "2", parse_count,
            "gunicorn (gevent) worker processes (see \"Serving\"; `--workers` wins)"),
    Setting("worker_connections", "OPIK_RUNNERS_WORKER_CONNECTIONS", "4000", parse_count,
            "concurrent connections per worker, held long polls included"),
    Setting("access_log", "OPIK_RUNNERS_ACCESS_LOG", "", str,
            "a path, or `-` for stdout",
            "(off)"),
    Setting("log_level", "OPIK_RUNNERS_LOG_LEVEL", "info", str,
            "gunicorn and service log level; the service logs one line per state change"),
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
