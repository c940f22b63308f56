"""The entry a checkout serves from: `gunicorn -c gunicorn.conf.py 'app:create_app()'`.
The service itself is the `opik_runners` package (`opik-runners serve` runs the same)."""
from opik_runners.app import create_app

__all__ = ["create_app"]
