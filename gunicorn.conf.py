"""The shipped serving configuration: `gunicorn -c gunicorn.conf.py 'app:create_app()'`.

gevent workers: every runner keeps one or two long polls open all the time, so a
held request must cost a greenlet (a few KB), not a thread or a process. SQLite
calls are short and never yield mid-transaction, so greenlets in one worker never
contend for its lock. Two workers use both cores of a small machine; a job created
in one wakes a poll held in the other through wakeups.py.
A `-b HOST:PORT` on the command line overrides `bind`.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # config.py sits beside this file
from config import load_config  # noqa: E402

settings = load_config()
bind = settings["OPIK_RUNNERS_BIND"]
worker_class = "gevent"
workers = settings["OPIK_RUNNERS_WORKERS"]
worker_connections = settings["OPIK_RUNNERS_WORKER_CONNECTIONS"]
# Shutdown waits this long for held requests: a job poll (10 s) gets its answer.
# Idle keep-alive connections also hold it, so keep-alive stays short; the CLI
# polls again within a second, well inside it.
graceful_timeout = 12
keepalive = 5
accesslog = settings["OPIK_RUNNERS_ACCESS_LOG"] or None
errorlog = "-"
# gunicorn 27 opens a control socket at one path in $HOME; several servers on one
# machine (tests, scale-out) would fight over it, and nothing here uses it.
control_socket_disable = True
loglevel = settings["OPIK_RUNNERS_LOG_LEVEL"]


def post_fork(server, worker):
    # psycopg2 waits for PostgreSQL in C; make those waits yield to other greenlets.
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()
