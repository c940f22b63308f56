"""Prometheus metrics, served at GET /metrics through prometheus_client.

Under gunicorn the workers are separate processes, so prometheus_client runs in its
multi-process mode: serving.py points PROMETHEUS_MULTIPROC_DIR at a fresh directory before
any worker starts (each process then keeps its values in files there), marks a worker's
files dead when it exits, and a scrape adds up every process's. Elsewhere (one process,
Flask's test client) the values live in the process, as usual.

What the database holds (runners and jobs by status, the pending depth, the journal's size)
is read when Prometheus scrapes, not counted as it changes: one short query each, and the
numbers are right whichever worker or instance changed them.

This module knows nothing of Flask: app.py times requests and calls `observe_request`.
"""
import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import REGISTRY, multiprocess
from prometheus_client.core import GaugeMetricFamily

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
STARTED = "opik_runners.started"  # WSGI environ key: when the request arrived (time.perf_counter)
CONTENT_TYPE = CONTENT_TYPE_LATEST

# Long polls answer after up to 30 s, so the buckets reach past it; the API's own calls
# answer in milliseconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60)
REQUESTS = Histogram(
    "opik_runners_request_duration_seconds",
    "Requests to the Opik API by operation (api.py's view) and status, and how long each took to answer",
    ["operation", "status"], buckets=LATENCY_BUCKETS,
)
HELD_POLLS = Gauge(
    "opik_runners_held_polls", "Long polls held now, by kind (jobs, bridge, command_result, journal)",
    ["kind"], multiprocess_mode="livesum",
)
WAKEUPS = Histogram(
    "opik_runners_wakeup_seconds",
    "From work being made (a job created, a bridge command submitted) to the held poll that waited for it "
    "answering with it",
    ["kind"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
REAPER_CYCLES = Counter("opik_runners_reaper_cycles_total", "Maintenance cycles run by this server's reaper")
REAPED = Counter("opik_runners_reaped_total", "What the reaper's cycles did, by kind", ["what"])
DATABASE_ERRORS = Counter(
    "opik_runners_database_errors_total", "Requests answered 503 because the database failed, by error", ["error"]
)
DATABASE_RETRIES = Counter(
    "opik_runners_database_retries_total", "Statements retried because the database was busy or locked"
)

_request_children = {}  # (operation, status) -> the histogram's child: labels() costs ~2 us a request


def observe_request(operation, status, seconds):
    child = _request_children.get((operation, status))
    if child is None:
        child = _request_children[(operation, status)] = REQUESTS.labels(operation or "none", str(status))
    child.observe(seconds)


class held:
    """`with metrics.held("jobs"):` around a long poll's wait."""

    __slots__ = ("gauge",)

    def __init__(self, kind):
        self.gauge = HELD_POLLS.labels(kind)

    def __enter__(self):
        self.gauge.inc()

    def __exit__(self, *exc):
        self.gauge.dec()


def observe_wakeup(kind, made_at_us, now_us):
    WAKEUPS.labels(kind).observe(max(now_us - made_at_us, 0) / 1e6)


class StateCollector:
    """The database's numbers, read at each scrape by `read_state()` -> {name: (help, {labels: value})}."""

    def __init__(self, read_state):
        self.read_state = read_state

    def collect(self):
        for name, (help_text, label_name, values) in self.read_state().items():
            family = GaugeMetricFamily(name, help_text, labels=[label_name] if label_name else [])
            for label, value in values.items():
                family.add_metric([label] if label_name else [], value)
            yield family


def exposition(read_state):
    """The text Prometheus scrapes: every process's metrics, then the database's."""
    if MULTIPROCESS:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        processes = generate_latest(registry)
    else:
        processes = generate_latest(REGISTRY)
    state = CollectorRegistry()
    state.register(StateCollector(read_state))
    return processes + generate_latest(state)
