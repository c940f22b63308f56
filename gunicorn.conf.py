"""The shipped serving configuration, for `gunicorn -c gunicorn.conf.py 'app:create_app()'`
from a checkout: the options `opik-runners serve` uses (opik_runners/serving.py says why
each), read from the same environment. A `-b HOST:PORT` on the command line wins."""
from opik_runners.gunicorn_conf import *  # noqa: F401,F403
