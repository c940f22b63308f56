"""A real server in a subprocess, for tests and benchmarks: `opik-runners serve` on a free
port of loopback (or another app object served with the shipped configuration)."""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`Server(database_url, **environment).start()` ... `.stop()`; `.url` is its base URL.

    `app` serves another app object ("module:factory()") with the shipped configuration
    instead of the command's own; `cwd` is where it runs (and imports `app` from)."""

    def __init__(self, database_url, app=None, cwd=None, **env):
        self.app = app
        self.cwd = cwd
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "DATABASE_URL": database_url, **env}
        self.process = None

    def command(self):
        bind = f"127.0.0.1:{self.port}"
        if self.app is None:
            return [sys.executable, "-m", "opik_runners", "serve", "--bind", bind]
        return [sys.executable, "-m", "gunicorn", "-c", "python:opik_runners.gunicorn_conf", "-b", bind, self.app]

    def start(self, timeout=20):
        # A file, not a pipe: nobody reads a pipe while the server runs, and a full one
        # would block the workers' logging.
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            self.command(), cwd=self.cwd, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {self.output()}")
            try:
                with urllib.request.urlopen(f"{self.url}/is-alive/ping", timeout=1) as answer:
                    if answer.status == 200:
                        return self
            except OSError:  # not listening yet, or a worker still booting
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the server did not answer /is-alive/ping in time: {self.output()}")

    def stop(self, graceful=False):
        """Stop the server: at once (SIGQUIT) unless `graceful` (SIGTERM, which waits for held
        polls). Returns what it logged."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM if graceful else signal.SIGQUIT)
            try:
                self.process.wait(timeout=25)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.output()

    def output(self):
        """What the server has logged so far."""
        if not self.process:
            return ""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")
