"""The collector that runs the examples of README.md and docs/ as a reader would copy-paste them.

Every fenced ```sh, ```bash, ```console and ```python block runs, in the order of its page, in
one bash session per page (so a variable set in one block is there in the next, as in a
terminal), in a directory of the page's own that looks like the checkout (its top-level files
and folders are links to the checkout's; `.venv` is the venv running the tests), with a scratch
HOME. Other fences (json, yaml, ini, text, mermaid, ...) are shown, not run, unless a marker says
to write them to a file.

An HTML comment right above a block says how to take it, when not as a plain command:

    <!-- example: skip REASON -->        not run; the reason is required (where it runs instead)
    <!-- example: server -->             the page's server: started in the background, waited for
                                         (GET /is-alive/ping), and stopped at the end of the page;
                                         a second one replaces the first (as Ctrl-C, then the new
                                         command). `last-step`: only the last `&&` step runs (the
                                         steps before it make the venv the suite runs in).
    <!-- example: background -->         a command that runs until stopped (opik endpoint, a
                                         simulated runner), stopped with Ctrl-C at the end of the
                                         page. `wait=OPERATION`: go on once the server's request
                                         journal has such a request; `output="TEXT"`: once the
                                         command printed TEXT.
    <!-- example: file NAME -->          the block is written to NAME (a JSON or Python file the
                                         next commands use)
    <!-- example: same-as PATH -->       the block is the checkout's file PATH, verbatim (a file
                                         another test of the suite runs)
    <!-- example: run exit=N timeout=S -->  a command expected to exit with N; a longer time limit;
                                         `stop-server`: the page's server is stopped first (as
                                         Ctrl-C), for a step the page says to take with it stopped

A ```console block is commands (`$ ` lines, `\\` continues one) each followed by the output it
must print; `...` in the output stands for any text.

Examples use the address a reader types, 127.0.0.1:5173 (or localhost:5173, and 5174 for a
second instance); the collector gives each page free ports instead: it rewrites the addresses
in what it runs (0.0.0.0:PORT becomes 127.0.0.1:PORT: nothing listens beyond loopback) and back
in what it compares, and sets OPIK_RUNNERS_BIND, so that a plain `opik-runners serve` listens
there.

Standard library only: tests/docs/test_examples.py runs it, and a fresh venv can run a page with it
(examples.run_page(path)) without the test tools.
"""
import dataclasses
import os
import pathlib
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
RUN = {"sh", "bash", "console", "python", "py"}
DOC_PORTS = (5173, 5174)
KINDS = {"skip", "server", "background", "file", "same-as", "run"}
DEFAULT_TIMEOUT = 90

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+.-]*)(?P<rest>[^\n]*)$")
MARKER = re.compile(r"^\s*<!--\s*example:\s*(?P<spec>.*?)\s*-->\s*$")


class ExampleError(AssertionError):
    """An example that does not work as its page says (or a marker that does not parse)."""


@dataclasses.dataclass
class Marker:
    kind: str
    argument: str = ""
    options: dict = dataclasses.field(default_factory=dict)
    flags: tuple = ()


@dataclasses.dataclass
class Block:
    page: pathlib.Path
    line: int
    lang: str
    body: str
    marker: Marker

    @property
    def where(self):
        try:
            return f"{self.page.relative_to(ROOT)}:{self.line}"
        except ValueError:
            return f"{self.page}:{self.line}"

    @property
    def runs(self):
        return self.marker.kind in ("server", "background", "run") and self.lang in RUN


def parse_marker(spec, where):
    kind = (spec.split() or [""])[0]
    if kind not in KINDS:
        raise ExampleError(f"{where}: the marker's first word must be one of {sorted(KINDS)}, got {spec!r}")
    if kind == "skip":  # the reason is prose
        reason = spec[len("skip"):].strip()
        if not reason:
            raise ExampleError(f"{where}: a skipped example must say why (and where it runs instead)")
        return Marker("skip", reason)
    try:
        words = shlex.split(spec)
    except ValueError as exc:
        raise ExampleError(f"{where}: the marker does not parse: {exc}") from None
    if kind in ("file", "same-as"):
        if len(words) != 2:
            raise ExampleError(f"{where}: `{kind}` takes one path, got {spec!r}")
        return Marker(kind, words[1])
    options, flags = {}, []
    for word in words[1:]:
        key, equals, value = word.partition("=")
        if equals:
            options[key] = value
        else:
            flags.append(word)
    allowed_options = {"server": {"timeout"}, "background": {"wait", "output", "timeout"},
                       "run": {"exit", "timeout"}}[kind]
    allowed_flags = {"server": {"last-step"}, "run": {"stop-server"}}.get(kind, set())
    unknown = (set(options) - allowed_options) | (set(flags) - allowed_flags)
    if unknown:
        raise ExampleError(f"{where}: `{kind}` does not take {sorted(unknown)}")
    return Marker(kind, options=options, flags=tuple(flags))


def blocks(page):
    """The fenced blocks of a Markdown file, each with the marker above it (a plain block gets
    `run`). A marker that is not right above a block is an error."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found, pending, index = [], None, 0
    while index < len(lines):
        line = lines[index]
        marker = MARKER.match(line)
        if marker:
            if pending is not None:
                raise ExampleError(f"{pending[0]}: a marker with no block under it")
            pending = (f"{page.relative_to(ROOT) if page.is_relative_to(ROOT) else page}:{index + 1}",
                       marker["spec"])
            index += 1
            continue
        opening = FENCE.match(line)
        if opening:
            indent, fence, lang = opening["indent"], opening["fence"], opening["lang"].lower()
            closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
            body, index = [], index + 1
            start = index
            while index < len(lines) and not closing.match(lines[index]):
                text = lines[index]
                body.append(text[len(indent):] if text.startswith(indent) else text.lstrip())
                index += 1
            if index >= len(lines):
                raise ExampleError(f"{page}:{start}: a fence that is never closed")
            index += 1  # the closing fence
            where = pending[0] if pending else f"{page}:{start}"
            marker = parse_marker(pending[1], where) if pending else Marker("run")
            pending = None
            found.append(Block(page, start, lang, "\n".join(body) + "\n", marker))
            continue
        if pending is not None and line.strip():
            raise ExampleError(f"{pending[0]}: a marker with no block under it")
        index += 1
    if pending is not None:
        raise ExampleError(f"{pending[0]}: a marker with no block under it")
    return found


def pages():
    """README.md and every page of the documentation."""
    docs = sorted(path for path in (ROOT / "docs").rglob("*.md") if "hooks" not in path.parts)
    return [ROOT / "README.md", *docs]


# -- ports


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def localize(text, ports):
    """The documented addresses -> this page's ports."""
    for documented, port in zip(DOC_PORTS, ports):
        text = re.sub(rf"\b0\.0\.0\.0:{documented}\b", f"127.0.0.1:{port}", text)
        text = re.sub(rf"\b(127\.0\.0\.1|localhost):{documented}\b", rf"\g<1>:{port}", text)
    return text


def documented(text, ports):
    """This page's ports -> the documented addresses (for comparing what a command printed)."""
    for shown, port in zip(DOC_PORTS, ports):
        text = re.sub(rf"\b(127\.0\.0\.1|localhost):{port}\b", rf"\g<1>:{shown}", text)
    return text


def matches(expected, actual):
    """Whether `actual` is `expected`, where `...` stands for any text (lines compared without
    trailing spaces)."""
    def clean(text):
        return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())

    pattern = ".*?".join(re.escape(part) for part in clean(expected).split("..."))
    return re.fullmatch(pattern, clean(actual), re.S) is not None


def console_commands(body):
    """[(command, expected output)] of a ```console block."""
    commands, lines = [], body.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line.startswith("$ "):
            if line.strip():
                raise ExampleError(f"output before the first command: {line!r}")
            index += 1
            continue
        command = [line[2:]]
        while command[-1].endswith("\\") and index + 1 < len(lines):
            index += 1
            command.append(lines[index])
        index += 1
        output = []
        while index < len(lines) and not lines[index].startswith("$ "):
            output.append(lines[index])
            index += 1
        commands.append(("\n".join(command), "\n".join(output)))
    return commands


# -- processes


def processes():
    """(pid, the fields of /proc/PID/stat after the command's name) of every process: [0] its
    state, [2] its process group, [3] its session."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # it ended meanwhile
            yield int(entry), fields


def session_pids(sid):
    """Processes of the session `sid`."""
    return [pid for pid, fields in processes() if int(fields[3]) == sid]


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A group of zombies only (waited for by nobody yet) counts as gone.
    return any(int(fields[2]) == pgid and fields[0] != "Z" for _, fields in processes())


def stop_group(pgid, first=signal.SIGINT, timeout=20):
    """Ctrl-C to a process group, as a reader stops a command; SIGKILL if it lingers."""
    for sig, wait in ((first, timeout), (signal.SIGKILL, 5)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not group_alive(pgid):
                return
            time.sleep(0.05)


@dataclasses.dataclass
class Background:
    block: Block
    pgid: int
    log: pathlib.Path
    server: bool

    def output(self):
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


def checkout_like(directory):
    """Links in `directory` to the checkout's top-level entries (git's, and .venv as the venv
    running the tests): commands see a checkout, and what they write stays here."""
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in sorted({path.split("/", 1)[0] for path in names.splitlines() if path}):
        (directory / name).symlink_to(ROOT / name)
    (directory / ".venv").symlink_to(pathlib.Path(sys.prefix))


def page_environment(home, ports):
    drop = ("DATABASE_URL", "TEST_DATABASE_URL", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
    env = {key: value for key, value in os.environ.items()
           if key not in drop and not key.startswith(("OPIK_", "PYTEST_", "PROMETHEUS_"))}
    env.update(
        PATH=f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        HOME=str(home),
        OPIK_RUNNERS_BIND=f"127.0.0.1:{ports[0]}",
        PYTHONUNBUFFERED="1",
        COLUMNS="200",
    )
    return env


@dataclasses.dataclass
class Tally:
    ran: int = 0
    files: int = 0
    same: int = 0
    shown: int = 0
    skipped: list = dataclasses.field(default_factory=list)


class PageRun:
    """One page's examples, in one bash session; `run(blocks)` raises ExampleError for the first
    that does not work."""

    def __init__(self, directory):
        self.directory = pathlib.Path(directory)
        self.ports = (free_port(), free_port())
        self.home = self.directory / "home"
        self.home.mkdir()
        self.scratch = self.directory / ".examples"
        self.scratch.mkdir()
        self.control = self.scratch / "control"
        self.env = page_environment(self.home, self.ports)
        self.backgrounds = []
        self.count = 0
        self.tally = Tally()
        self.shell = subprocess.Popen(
            ["bash", "--noprofile", "--norc"], cwd=self.directory, env=self.env, stdin=subprocess.PIPE,
            stdout=open(self.control, "w"), stderr=subprocess.STDOUT, start_new_session=True, text=True,
        )
        # -e: a command that fails fails the example; -m: each background command in a process
        # group of its own, stopped as Ctrl-C stops it.
        self.send("set -euo pipefail; set -m")

    # -- the shell

    def send(self, text):
        try:
            self.shell.stdin.write(text + "\n")
            self.shell.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the shell has exited: the wait below says so

    def script(self, text, suffix="sh"):
        self.count += 1
        path = self.scratch / f"{self.count:03d}.{suffix}"
        path.write_text(text)
        return path, self.count

    def wait_done(self, number, timeout):
        mark = f"@@done {number} "
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.control.read_text(errors="replace").splitlines():
                if line.startswith(mark):
                    return int(line[len(mark):])
            if self.shell.poll() is not None:
                return None
            time.sleep(0.02)
        raise TimeoutError

    def foreground(self, block, text, timeout, expect_exit=0):
        """Run `text` in the session; returns its output. Raises ExampleError if it fails."""
        path, number = self.script(text)
        out = self.scratch / f"{number:03d}.out"
        if expect_exit:
            self.send(f"set +e; source {path} < /dev/null > {out} 2>&1; __status=$?; set -e; "
                      f"echo '@@done {number} '$__status")
        else:
            self.send(f"source {path} < /dev/null > {out} 2>&1; echo '@@done {number} 0'")
        try:
            status = self.wait_done(number, timeout)
        except TimeoutError:
            raise self.failure(block, text, out, f"still running after {timeout} s") from None
        if status is None:
            raise self.failure(block, text, out, f"failed (the shell exited with {self.shell.poll()})")
        if status != expect_exit:
            raise self.failure(block, text, out, f"exited with {status}, not {expect_exit}")
        return documented(out.read_text(errors="replace"), self.ports)

    def failure(self, block, text, out, what):
        output = out.read_text(errors="replace") if out.exists() else ""
        parts = [f"{block.where}: the {block.lang} example {what}", "--- as run:", text.rstrip(),
                 "--- its output:", output.rstrip() or "(none)"]
        for background in (b for b in self.backgrounds if b.block is not block):
            parts += [f"--- the background command of {background.block.where}, so far:",
                      background.output()[-4000:].rstrip() or "(none)"]
        return ExampleError("\n".join(parts))

    # -- background commands

    def stop_servers(self):
        """Ctrl-C to the page's server, as a reader stops it before starting another."""
        for running in [b for b in self.backgrounds if b.server]:
            stop_group(running.pgid)
            self.backgrounds.remove(running)

    def background(self, block, text, server):
        if server:
            self.stop_servers()
        path, number = self.script(text)
        log = self.scratch / f"{number:03d}.log"
        self.send(f"( source {path} ) < /dev/null > {log} 2>&1 & echo '@@done {number} '$!")
        try:
            pid = self.wait_done(number, 10)
        except TimeoutError:
            pid = None
        if pid is None:
            raise self.failure(block, text, log, "did not start")
        started = Background(block, pid, log, server)
        self.backgrounds.append(started)
        timeout = float(block.marker.options.get("timeout", 60))
        deadline = time.monotonic() + timeout

        def gone():
            return not group_alive(pid)

        if server:
            while not self.answers(f"http://127.0.0.1:{self.ports[0]}/is-alive/ping"):
                if gone() or time.monotonic() > deadline:
                    raise self.failure(block, text, log, "did not serve /is-alive/ping"
                                       + (" (it exited)" if gone() else f" within {timeout} s"))
                time.sleep(0.1)
        operation = block.marker.options.get("wait")
        printed = block.marker.options.get("output")
        while operation and not self.journal_has(operation):
            if gone() or time.monotonic() > deadline:
                raise self.failure(block, text, log, f"made no {operation} request"
                                   + (" (it exited)" if gone() else f" within {timeout} s"))
            time.sleep(0.1)
        while printed and printed not in started.output():
            if gone() or time.monotonic() > deadline:
                raise self.failure(block, text, log, f"did not print {printed!r}"
                                   + (" (it exited)" if gone() else f" within {timeout} s"))
            time.sleep(0.1)

    @staticmethod
    def answers(url):
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                return answer.status == 200
        except OSError:
            return False

    def journal_has(self, operation):
        url = f"http://127.0.0.1:{self.ports[0]}/_admin/requests?operation={operation}&limit=1"
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                return b'"id"' in answer.read()
        except OSError:
            return False

    # -- blocks

    def take(self, block):
        marker = block.marker
        if marker.kind == "skip":
            self.tally.skipped.append((block.where, marker.argument))
            return
        if marker.kind == "same-as":
            source = ROOT / marker.argument
            if not source.is_file():
                raise ExampleError(f"{block.where}: same-as {marker.argument}: no such file in the checkout")
            if block.body != source.read_text(encoding="utf-8"):
                raise ExampleError(f"{block.where}: the block is no longer {marker.argument}, verbatim")
            self.tally.same += 1
            return
        if marker.kind == "file":
            target = self.directory / marker.argument
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink():
                raise ExampleError(f"{block.where}: file {marker.argument} would write into the checkout")
            target.write_text(localize(block.body, self.ports))
            self.tally.files += 1
            return
        if block.lang not in RUN:
            if marker.kind != "run" or marker.options:
                raise ExampleError(f"{block.where}: a {block.lang or 'plain'} block cannot be run")
            self.tally.shown += 1
            return
        if "stop-server" in marker.flags:
            self.stop_servers()
        text = localize(block.body, self.ports)
        timeout = float(marker.options.get("timeout", DEFAULT_TIMEOUT))
        if block.lang in ("python", "py"):
            path, _ = self.script(text, "py")
            text = f"python {shlex.quote(str(path))}\n"
        if marker.kind in ("server", "background"):
            if block.lang == "console":
                raise ExampleError(f"{block.where}: a console block cannot run in the background")
            if "last-step" in marker.flags:
                text = text.strip().rsplit("&&", 1)[-1].strip() + "\n"
            self.background(block, text, server=marker.kind == "server")
        elif block.lang == "console":
            for command, expected in console_commands(text):
                printed = self.foreground(block, command + "\n", timeout)
                if not matches(documented(expected, self.ports), printed):
                    raise ExampleError(f"{block.where}: `{documented(command, self.ports)}` printed\n{printed}\n"
                                       f"--- where the page shows\n{expected}")
        else:
            self.foreground(block, text, timeout, int(marker.options.get("exit", 0)))
        self.tally.ran += 1

    def run(self, page_blocks):
        try:
            for block in page_blocks:
                self.take(block)
        finally:
            self.close()
        return self.tally

    def close(self):
        # Clients first (opik endpoint deletes its runner on Ctrl-C), then the servers.
        for background in sorted(reversed(self.backgrounds), key=lambda b: b.server):
            stop_group(background.pgid)
        self.backgrounds.clear()
        try:
            self.shell.stdin.close()
        except OSError:
            pass
        try:
            self.shell.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for pid in session_pids(self.shell.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.shell.poll() is None:
            self.shell.kill()
            self.shell.wait()


def run_page(page, directory=None):
    """Run every example of `page` (a Markdown file) in a fresh checkout-like directory; returns
    the Tally. Raises ExampleError for the first example that does not work."""
    page_blocks = blocks(page)
    with tempfile.TemporaryDirectory(prefix="opik-runners-docs-") as scratch:
        where = pathlib.Path(directory or scratch)
        checkout_like(where)
        return PageRun(where).run(page_blocks)
