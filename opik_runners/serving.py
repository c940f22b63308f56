"""The shipped serving configuration: gunicorn with gevent workers. `opik-runners serve`
runs it, and the checkout's `gunicorn.conf.py` hands the same options to the gunicorn
command (`gunicorn -c gunicorn.conf.py 'app:create_app()'`).

gevent workers: every runner keeps one or two long polls open all the time, so a
held request must cost a greenlet (a few KB), not a thread or a process. SQLite
calls are short and never yield mid-transaction, so greenlets in one worker never
contend for its lock. Two workers use both cores of a small machine; a job created
in one wakes a poll held in the other (store/sqlite.py, store/postgres.py).
"""
import os
import shutil
import signal
import tempfile

from gunicorn.app.base import BaseApplication

from .settings import load_settings


def gunicorn_options(settings, bind=None, workers=None):
    """gunicorn's settings for `settings`; `bind` and `workers` (command-line flags) win."""
    return {
        "bind": [bind] if bind else list(settings.bind),
        "worker_class": "gevent",
        "workers": workers or settings.workers,
        "worker_connections": settings.worker_connections,
        # Shutdown waits this long for held requests: a job poll (10 s) gets its answer.
        # Idle keep-alive connections also hold it, so keep-alive stays short; the CLI
        # polls again within a second, well inside it.
        "graceful_timeout": 12,
        "keepalive": 5,
        "accesslog": settings.access_log or None,
        "errorlog": "-",
        # gunicorn 27 opens a control socket at one path in $HOME; several servers on one
        # machine (tests, scale-out) would fight over it, and nothing here uses it.
        "control_socket_disable": True,
        "loglevel": settings.log_level,
        "on_starting": on_starting,
        "post_fork": post_fork,
        "post_worker_init": post_worker_init,
        "child_exit": child_exit,
        "on_exit": on_exit,
    }


METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"
_made_metrics_dir = []


def on_starting(server):
    """In the master, before any worker: the bound address for the workers' host check, the
    metrics' shared directory, then the database."""
    announce_bind(server)
    prepare_metrics()
    prepare_database(server)


def announce_bind(server):
    """The workers allow the host names they are bound to (web/guard.py): every address gunicorn
    binds (a --bind or -b wins over OPIK_RUNNERS_BIND), passed on in the environment they
    inherit; and one warning if any reaches beyond loopback with no host names listed."""
    from .web import guard

    settings = load_settings()
    binds = list(server.cfg.bind or settings.bind)
    os.environ["OPIK_RUNNERS_BIND"] = ",".join(binds)
    guard.warn_if_exposed(settings, binds, server.log.warning)


def prepare_metrics():
    """prometheus_client's multi-process mode: each worker keeps its values in files under
    PROMETHEUS_MULTIPROC_DIR and a scrape adds them up (metrics.py). A fresh directory per
    start (values of an earlier run would count again), unless one is given."""
    if not os.environ.get(METRICS_DIR):
        os.environ[METRICS_DIR] = tempfile.mkdtemp(prefix="opik-runners-metrics-")
        _made_metrics_dir.append(os.environ[METRICS_DIR])


def child_exit(server, worker):
    """A worker has gone (stopped, or killed): its held polls stop counting."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    for path in _made_metrics_dir:
        shutil.rmtree(path, ignore_errors=True)


def prepare_database(server):
    """Before any worker starts: bring the schema up to date once, or refuse to start on a
    database written by a newer release (gunicorn prints a RuntimeError's message and
    exits 1).

    In a forked child, so that the master never imports the database layer: peewee keeps
    each connection in a thread-local, which must be gevent's, and gevent patches
    threading in each worker only after the fork. A master that had imported peewee
    would hand every worker one connection state shared by all its greenlets."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: migrate, report, exit without running the master's cleanup
        os.close(read_end)
        code, message = 0, ""
        try:
            from .store import db

            settings = load_settings()
            db.open_and_migrate(settings.database_url, settings.pool_size).shut()
        except RuntimeError as exc:  # migrations.SchemaTooNew says what to do
            code, message = 1, str(exc)
        except BaseException as exc:
            url = load_settings().database_url
            try:
                from .store.db import explain_open_failure

                why = explain_open_failure(url)
            except BaseException:  # the store itself would not import: its error is the message
                why = ""
            code, message = 1, f"cannot open the database at {url}: {exc}{why}"
        os.write(write_end, message.encode())
        os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as report:
        message = report.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(message or "preparing the database failed")


def post_worker_init(worker):
    """The worker has patched threading and loaded the app: check that peewee's connection
    state is per greenlet (see prepare_database), or stop the worker loudly."""
    import gevent.local
    import peewee

    if not issubclass(peewee._ConnectionLocal, gevent.local.local):
        raise RuntimeError("peewee was imported before gevent patched threading: greenlets would share connections")
    # Ctrl-C reaches the workers twice: from the terminal, and as the master's SIGQUIT. The
    # second exit, raised while the first is shutting the worker down, printed a traceback
    # per worker; a worker leaving already ignores the second.
    leave, leaving = worker.handle_quit, []

    def leave_once(sig, frame):
        if not leaving:
            leaving.append(sig)
            leave(sig, frame)

    signal.signal(signal.SIGINT, leave_once)
    signal.signal(signal.SIGQUIT, leave_once)

    from .web import admin

    admin.start_worker(worker.wsgi)
    worker.wsgi = called_directly(worker.wsgi)


def called_directly(app):
    """The Flask app as a plain function: gunicorn calls its `wsgi` for each request, and calling
    a Flask object runs its __call__ in a nested interpreter loop, whose C stack each held poll
    keeps (0.6 KB a poll, measured at 4,000 held). Anything else (an app wrapped in middleware,
    gunicorn's own error app) is served as it is."""
    from flask import Flask

    if type(app).__call__ is not Flask.__call__:
        return app

    def wsgi(environ, start_response):
        return app.wsgi_app(environ, start_response)

    return wsgi


def post_fork(server, worker):
    from .store.urls import make_driver_cooperative

    make_driver_cooperative(load_settings().database_url)


class Gunicorn(BaseApplication):
    """gunicorn run from Python with these options, serving create_app() in each worker."""

    def __init__(self, options):
        self.options = options
        super().__init__()

    def load_config(self):
        for name, value in self.options.items():
            self.cfg.set(name, value)

    def load(self):
        from .app import create_app

        return create_app()
