"""The shipped serving configuration: `gunicorn -c gunicorn.conf.py 'app:create_app()'`.

One worker process with a pool of threads. Long polls (`jobs/next` holds up to 10 s)
each park a thread, not a process, so other requests keep being served; and with
one process, a job created by any request wakes its waiting poll at once (wakeups.py).
SQLite takes one writer at a time anyway, so more processes would add no write capacity.
A `-b HOST:PORT` on the command line overrides `bind`.
"""
import os

bind = os.environ.get("OPIK_RUNNERS_BIND", "127.0.0.1:5173")
worker_class = "gthread"
workers = int(os.environ.get("OPIK_RUNNERS_WORKERS", "1"))
threads = int(os.environ.get("OPIK_RUNNERS_THREADS", "64"))
# A held long poll is a normal request; give shutdown time to answer it.
graceful_timeout = 20
keepalive = 75  # the CLI reuses connections between polls
accesslog = os.environ.get("OPIK_RUNNERS_ACCESS_LOG") or None
errorlog = "-"
# gunicorn 27 opens a control socket at one path in $HOME; several servers on one
# machine (tests, scale-out) would fight over it, and nothing here uses it.
control_socket_disable = True
loglevel = os.environ.get("OPIK_RUNNERS_LOG_LEVEL", "info")
