"""The shipped serving configuration as a gunicorn config module, for serving another app
object with it: `gunicorn -c python:opik_runners.gunicorn_conf 'yourmodule:make_app()'`
(an app that wraps create_app, say). `opik-runners serve` uses the same options."""
from .serving import gunicorn_options
from .settings import load_settings

globals().update(gunicorn_options(load_settings()))
