"""Settings: the defaults are Opik's (docs/opik-behaviour.md#limits), and values read from the environment
mean what their names say."""
import pytest

from opik_runners.domain import limits
from opik_runners.settings import SETTINGS, SettingsError, load_settings, parse_duration

ATTRIBUTE = {setting.env: setting.name for setting in SETTINGS}

HOUR, DAY = 3600, 86400


# docs/opik-behaviour.md#limits, one row each: (env name or constant, Opik's default)
DEFAULTS = [
    ("OPIK_RUNNER_HEARTBEAT_TTL", 15),
    ("OPIK_RUNNER_NEXT_JOB_POLL_TIMEOUT", 10),
    ("OPIK_RUNNER_JOB_TIMEOUT", 1800),
    ("OPIK_RUNNER_MAX_PENDING", 100),
    ("OPIK_RUNNER_DEAD_PURGE_HOURS", 24 * HOUR),
    ("OPIK_RUNNER_COMPLETED_JOB_TTL", 7 * DAY),
    ("OPIK_RUNNER_REAPER_INTERVAL", 60),
    ("OPIK_BRIDGE_POLL_TIMEOUT", 30),
    ("OPIK_BRIDGE_MAX_PENDING", 50),
    ("OPIK_BRIDGE_MAX_COMMANDS_PER_MINUTE", 600),
    ("OPIK_BRIDGE_MAX_WRITE_COMMANDS_PER_MINUTE", 120),
    ("OPIK_PAIRING_AUTO_ACTIVATE", False),
]
CONSTANTS = [
    ("MAX_AGENTS_PER_RUNNER", 50),
    ("MAX_LOG_ENTRIES_PER_BATCH", 1000),
    ("MAX_PAYLOAD_BYTES", 1_048_576),
    ("BRIDGE_DEFAULT_TIMEOUT", 30),
    ("BRIDGE_MAX_TIMEOUT", 120),
    ("BRIDGE_COMPLETED_TTL", HOUR),
    ("BRIDGE_DEFAULT_BATCH", 10),
    ("BRIDGE_MAX_BATCH", 20),
]


@pytest.mark.parametrize("name, expected", DEFAULTS)
def test_an_empty_environment_gives_opiks_defaults(name, expected):
    assert getattr(load_settings({}), ATTRIBUTE[name]) == expected


@pytest.mark.parametrize("name, expected", CONSTANTS)
def test_fixed_limits_are_opiks(name, expected):
    assert getattr(limits, name) == expected


@pytest.mark.parametrize(
    "text, seconds",
    [("15", 15), ("0.5", 0.5), ("500ms", 0.5), ("2s", 2), ("30m", 1800), ("24h", 24 * HOUR), ("7d", 7 * DAY)],
)
def test_durations_take_seconds_or_opiks_duration_strings(text, seconds):
    assert parse_duration(text) == seconds
    assert load_settings({"OPIK_RUNNER_HEARTBEAT_TTL": text}).heartbeat_ttl == seconds


@pytest.mark.parametrize("text, seconds", [("48", 48 * HOUR), ("1.5", 1.5 * HOUR), ("36h", 36 * HOUR), ("2s", 2)])
def test_the_purge_time_counts_hours_as_its_name_says(text, seconds):
    assert load_settings({"OPIK_RUNNER_DEAD_PURGE_HOURS": text}).dead_runner_purge == seconds


@pytest.mark.parametrize(
    "name, text",
    [
        ("OPIK_RUNNER_HEARTBEAT_TTL", "soon"),
        ("OPIK_RUNNER_HEARTBEAT_TTL", "-5"),
        ("OPIK_RUNNER_DEAD_PURGE_HOURS", "1 week"),
        ("OPIK_RUNNER_MAX_PENDING", "lots"),
        ("OPIK_PAIRING_AUTO_ACTIVATE", "maybe"),
        ("OPIK_API_KEYS", "no-colon"),
        ("OPIK_RUNNERS_WORKERS", "-2"),
    ],
)
def test_a_malformed_value_stops_the_start_naming_it(name, text):
    with pytest.raises(SettingsError) as refused:
        load_settings({name: text})
    assert str(refused.value).startswith(f"{name}={text!r}: ")


def test_overrides_win_over_the_environment():
    settings = load_settings({"OPIK_RUNNER_MAX_PENDING": "7"}, OPIK_RUNNER_MAX_PENDING="9")
    assert settings.max_pending_jobs == 9


def test_an_unknown_override_is_refused_by_name():
    with pytest.raises(SettingsError, match="OPIK_RUNNER_HEARTBEAT"):
        load_settings({}, OPIK_RUNNER_HEARTBEAT="1s")


def test_every_setting_has_an_attribute_and_a_distinct_variable():
    assert len({s.env for s in SETTINGS}) == len({s.name for s in SETTINGS}) == len(SETTINGS)
