"""GET /metrics: Prometheus's scrape. Open without API keys; with keys, any user's key
(lifecycle.identify_caller). Figures of every worker are added up (metrics.py)."""
from flask import Response

from .. import metrics
from ..domain import stats
from .messages import settings


def serve_metrics():
    """Prometheus's scrape: open without API keys; with keys, any user's key (identify_caller)."""
    return Response(metrics.exposition(lambda: stats.database_state(settings())),
                    mimetype=metrics.CONTENT_TYPE)
