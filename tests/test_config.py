"""Settings: the defaults are Opik's (behaviour notes §5), and values read from the environment
mean what their names say."""
import pytest

import config
from config import load_config, parse_duration

HOUR, DAY = 3600, 86400


# §5, one row each: (env name or constant, Opik's default)
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
    assert load_config({})[name] == expected


@pytest.mark.parametrize("name, expected", CONSTANTS)
def test_fixed_limits_are_opiks(name, expected):
    assert getattr(config, name) == expected


@pytest.mark.parametrize(
    "text, seconds",
    [("15", 15), ("0.5", 0.5), ("500ms", 0.5), ("2s", 2), ("30m", 1800), ("24h", 24 * HOUR), ("7d", 7 * DAY)],
)
def test_durations_take_seconds_or_opiks_duration_strings(text, seconds):
    assert parse_duration(text) == seconds
    assert load_config({"OPIK_RUNNER_HEARTBEAT_TTL": text})["OPIK_RUNNER_HEARTBEAT_TTL"] == seconds


@pytest.mark.parametrize("text, seconds", [("48", 48 * HOUR), ("1.5", 1.5 * HOUR), ("36h", 36 * HOUR), ("2s", 2)])
def test_the_purge_time_counts_hours_as_its_name_says(text, seconds):
    assert load_config({"OPIK_RUNNER_DEAD_PURGE_HOURS": text})["OPIK_RUNNER_DEAD_PURGE_HOURS"] == seconds


@pytest.mark.parametrize(
    "name, text",
    [
        ("OPIK_RUNNER_HEARTBEAT_TTL", "soon"),
        ("OPIK_RUNNER_HEARTBEAT_TTL", "-5"),
        ("OPIK_RUNNER_DEAD_PURGE_HOURS", "1 week"),
        ("OPIK_RUNNER_MAX_PENDING", "lots"),
        ("OPIK_PAIRING_AUTO_ACTIVATE", "maybe"),
        ("OPIK_API_KEYS", "no-colon"),
    ],
)
def test_a_malformed_value_stops_the_start_naming_it(name, text):
    with pytest.raises(ValueError, match=repr(text)[1:-1]):
        load_config({name: text})


def test_overrides_win_over_the_environment():
    settings = load_config({"OPIK_RUNNER_MAX_PENDING": "7"}, OPIK_RUNNER_MAX_PENDING="9")
    assert settings["OPIK_RUNNER_MAX_PENDING"] == 9
