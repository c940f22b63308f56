"""The service plus a static-JSON endpoint, for the throughput comparison: both are served
by the same app, the same gunicorn configuration and the same request hooks."""
import os

from flask import Response

from opik_runners.app import create_app as create_service


def create_app():
    application = create_service()
    size = int(os.environ.get("BENCH_STATIC_BYTES", "1000"))
    body = ('{"content":"' + "x" * max(size - 14, 0) + '"}').encode()

    @application.get("/bench/static")
    def static_json():
        return Response(body, mimetype="application/json")

    return application
