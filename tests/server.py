"""A real gunicorn server, started with the shipped configuration, for tests."""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Set by .ci/run for the second pass: the whole suite against PostgreSQL.
POSTGRES_URL = os.environ.get("TEST_DATABASE_URL", "")


def fresh_database_url(tmp_path, name="test"):
    """An empty database: a new SQLite file, or the PostgreSQL test database wiped clean."""
    if not POSTGRES_URL:
        return f"sqlite:///{tmp_path / (name + '.db')}"
    import psycopg2

    conn = psycopg2.connect(POSTGRES_URL)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    conn.close()
    return POSTGRES_URL


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, database_url, app="app:create_app()", **env):
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "DATABASE_URL": database_url, **env}
        self.process = None

    def start(self, timeout=20):
        # A file, not a pipe: nobody reads a pipe while the server runs, and a full one
        # would block the workers' logging.
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "-b", f"127.0.0.1:{self.port}",
             self.app],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.output()}")
            try:
                if requests.get(f"{self.url}/is-alive/ping", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:  # not listening yet, or a worker still booting
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("gunicorn did not answer /is-alive/ping in time")

    def stop(self, graceful=False):
        """Stop the server: at once (SIGQUIT) unless `graceful` (SIGTERM, which waits for held polls)."""
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


def child_pids(parent_pid):
    """Processes whose parent is `parent_pid` (a gunicorn master's workers, a CLI's agent)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == parent_pid:
                        pids.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return sorted(pids)


def wait_until(check, timeout=30, interval=0.1):
    """Poll `check()` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")
