"""What a held request costs this stack with no service in it: the floor under the service's
"RSS growth per held poll" (BENCHMARKS.md, "Memory per held poll").

Each variant is served by `gunicorn -k gevent -w 2` and holds N requests (aiohttp clients) on an
event that never fires; the figure is the RSS of the process tree, held minus idle, per request.

    .venv/bin/python bench/held_floor.py [--held 4000] [variant ...]
    .venv/bin/python bench/held_floor.py --smoke      # 50 held, two variants (the suite runs it)

It exits 1 if a variant did not hold its requests (one that answered at once measures nothing).

Variants (the WSGI app is this module's `app`, chosen by HELD_VARIANT):
  wsgi                a bare WSGI callable that waits, then answers
  flask               a Flask view that waits, then returns its answer
  flask-after         a Flask view that returns at once; the answer is waited for while the server
                      iterates the body (start_response called then, as PEP 3333 allows)
  flask-after+N       the same, after a call N Python frames deep in the view (the deepest stack
                      the request reached, which the connection's greenlet keeps)
  flask-after/opik    flask-after on the path the CLI polls, /api/v1/private/local-runners/<uuid>/jobs/next
                      (werkzeug's router recurses once per path segment)
"""
import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PORT = 18791
VARIANTS = ["wsgi", "flask", "flask-after", "flask-after+20", "flask-after+40", "flask-after+80",
            "flask/opik", "flask-after/opik"]
OPIK_PATH = "/api/v1/private/local-runners/<uuid:x>/jobs/next"


# -- the app (imported by gunicorn's workers)


def build_app(variant):
    import gevent.event
    from flask import Flask, Response

    never = gevent.event.Event()
    variant, _, path = variant.partition("/")
    kind, _, depth = variant.partition("+")
    depth = int(depth or 0)

    if kind == "wsgi":
        def bare(environ, start_response):
            if environ["PATH_INFO"] != "/warm":
                never.wait(60)
            start_response("200 OK", [("Content-Type", "application/json")])
            return [b"null"]
        return bare

    flask_app = Flask(__name__)

    def deep(n):  # one small frame per level
        return 0 if n == 0 else deep(n - 1) + 1

    class AnsweredLater(Response):
        def __init__(self, wait):
            super().__init__()
            self.wait = wait

        def __call__(self, environ, start_response):
            wait = self.wait

            def body():
                payload = wait()
                start_response("200 OK", [("Content-Type", "application/json"),
                                          ("Content-Length", str(len(payload)))])
                yield payload
            return body()

    @flask_app.get("/warm")
    def warm():
        return "ok"

    @flask_app.post(OPIK_PATH if path == "opik" else "/hold/<x>")
    def hold(**_):
        deep(depth)
        if kind == "flask":
            never.wait(60)
            return Response("null", mimetype="application/json")

        def wait():
            never.wait(60)
            return b"null"
        return AnsweredLater(wait)

    return flask_app


if os.environ.get("HELD_VARIANT"):
    app = build_app(os.environ["HELD_VARIANT"])


# -- the measurement


def measure(variant, held, settle):
    import aiohttp

    from run import rss_tree_mib  # beside this script; not imported by the workers, which import this module

    env = dict(os.environ, HELD_VARIANT=variant, PYTHONPATH=str(ROOT / "bench"))
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", "2", "--worker-connections", str(held + 100),
         "-b", f"127.0.0.1:{PORT}", "--log-level", "warning", "held_floor:app"], env=env)
    base = f"http://127.0.0.1:{PORT}"

    async def run():
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                         timeout=aiohttp.ClientTimeout(total=120)) as session:
            for _ in range(50):
                try:
                    async with session.get(f"{base}/warm") as response:
                        await response.read()
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.2)
            await asyncio.sleep(1)
            idle = rss_tree_mib(server.pid)

            async def hold(i):
                path = OPIK_PATH.replace("<uuid:x>", str(uuid.UUID(int=i))) if variant.endswith("/opik") else f"/hold/{i}"
                try:
                    async with session.post(base + path) as response:
                        await response.read()
                except (aiohttp.ClientError, asyncio.CancelledError):
                    pass

            tasks = [asyncio.ensure_future(hold(i)) for i in range(held)]
            await asyncio.sleep(settle)
            busy = rss_tree_mib(server.pid)
            holding = sum(not task.done() for task in tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            return idle, busy, holding

    try:
        time.sleep(2)
        idle, busy, holding = asyncio.run(run())
    finally:
        server.send_signal(signal.SIGINT)  # gunicorn's quick shutdown: held requests are not waited for
        server.wait()
    return idle, busy, holding


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--held", type=int, default=4000)
    parser.add_argument("--settle", type=float, default=8, help="seconds between opening the requests and measuring")
    parser.add_argument("--smoke", action="store_true", help="50 held, 2 s to settle, two variants")
    parser.add_argument("variants", nargs="*", default=VARIANTS)
    options = parser.parse_args()
    if options.smoke:
        options.held, options.settle = 50, 2
        options.variants = options.variants if options.variants != VARIANTS else ["flask", "flask-after/opik"]
    print("| variant | held | idle -> held RSS | per held request |")
    print("|---|---|---|---|")
    failed = False
    for variant in options.variants:
        idle, busy, holding = measure(variant, options.held, options.settle)
        per = (busy - idle) * 1024 / options.held
        print(f"| {variant} | {holding:,} of {options.held:,} | {idle:.0f} -> {busy:.0f} MiB | {per:.1f} KB |", flush=True)
        failed |= holding < options.held * 0.95
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
