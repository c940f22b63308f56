"""Run the real `opik` CLI (pinned in requirements-dev.txt) against a test server, and the agent
file `opik endpoint` runs. What the tests do with the link it prints and the bridge's signatures
is opik_runners.protocol's."""
import os
import re
import shutil
import signal
import subprocess
import textwrap
import threading
import time

from tests.support.servers import child_pids

OPIK = shutil.which("opik") or os.path.join(os.path.dirname(os.sys.executable), "opik")
# The pairing link `opik endpoint` and `opik connect` print; its fragment is what
# opik_runners.protocol.read_link_fragment reads.
LINK = re.compile(r"(https?://\S+/opik/pair/v1\S*#(?P<fragment>[A-Za-z0-9_-]+))")

def agent_file(agents):
    """An agent file for `opik endpoint -- python agent.py`: the `agents` (decorated functions'
    source), the imports they use, a SIGTERM handler that lets the runner loops stop and then leaves
    at once (no 5 s SIGKILL wait), and the main loop that keeps the process serving."""
    return textwrap.dedent('''
        import signal
        import sys
        import time

        import opik

    ''') + "\n" + textwrap.dedent(agents).strip() + "\n" + textwrap.dedent('''

        _previous = signal.getsignal(signal.SIGTERM)


        def _stop(signum, frame):
            if callable(_previous):
                _previous(signum, frame)
            sys.exit(0)


        signal.signal(signal.SIGTERM, _stop)

        if __name__ == "__main__":
            while True:
                time.sleep(0.2)
    ''')


# The agent `opik endpoint` runs in the CLI's tests: `answer` and `boom`.
ENDPOINT_AGENT_FILE = agent_file('''
    @opik.track(entrypoint=True)
    def answer(question: str, n: int = 1) -> str:
        """Answer a question n times."""
        print(f"answering {question!r} x{n}")
        return f"42 x{n}"


    @opik.track(entrypoint=True)
    def boom(x: str) -> str:
        print("about to fail")
        raise ValueError("kaboom")
''')


def cli_env(server_url, home, **extra):
    """A scratch HOME, so nothing touches the machine's ~/.opik.config, and no telemetry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPIK_")}
    env.update(
        HOME=str(home),
        OPIK_URL_OVERRIDE=f"{server_url}/api",
        OPIK_WORKSPACE="default",
        OPIK_SENTRY_ENABLE="false",
        OPIK_ANALYTICS_ENABLE="false",
        OPIK_CONSOLE_LOGGING_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
        COLUMNS="400",  # keep the printed pairing link on one line
        **extra,
    )
    return env


class Collected:
    """A process (in a session of its own) whose output is collected in the background."""

    what = "process"  # for the failure message

    def __init__(self, argv, cwd=None, env=None):
        self.process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True, text=True,
        )
        self.lines = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self):
        return "".join(self.lines)

    def wait_for(self, pattern, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.output)
            if match:
                return match
            if self.process.poll() is not None:
                self._reader.join(timeout=5)  # what it printed as it exited
                match = re.search(pattern, self.output)
                if match:
                    return match
                break
            time.sleep(0.05)
        raise AssertionError(f"no {pattern!r} in the {self.what}'s output:\n{self.output}")

    def kill(self):
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()


class CLI(Collected):
    """An `opik ...` process whose output is collected in the background."""

    what = "CLI"

    def __init__(self, args, cwd, env):
        super().__init__([OPIK, *args], cwd, env)

    def children(self):
        """PIDs of the CLI's direct children (the endpoint's agent process)."""
        return child_pids(self.process.pid)

    def interrupt(self, timeout=30):
        """Ctrl-C, as a person stops the CLI; kill the whole group if it lingers."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._reader.join(timeout=5)
        return self.process.returncode

