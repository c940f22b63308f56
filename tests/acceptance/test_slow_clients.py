"""Slow clients cannot hold a worker's other requests hostage: under gevent each connection is a
greenlet, and reading a request that trickles in waits without blocking the worker. One worker
here, so that every slow connection and every other request share it."""
import socket
import threading
import time

import requests

from tests.support.databases import fresh_database_url
from tests.support.servers import Server, pair_over_http


class Trickle(threading.Thread):
    """A client that sends `head` at once, then `body` one byte every `every` seconds."""

    def __init__(self, port, head, body=b"", every=1.0):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.head, self.body, self.every = head, body, every
        self.stopped = threading.Event()

    def run(self):
        try:
            self.sock.sendall(self.head)
            for byte in self.body:
                if self.stopped.wait(self.every):
                    return
                self.sock.sendall(bytes([byte]))
        except OSError:
            pass

    def stop(self):
        self.stopped.set()
        self.sock.close()


def test_trickling_bodies_and_unfinished_headers_do_not_hold_up_other_requests(tmp_path):
    server = Server(fresh_database_url(tmp_path), OPIK_RUNNERS_WORKERS="1").start()
    slow = []
    try:
        runner = pair_over_http(server.url, "default", "patient")
        port = int(server.url.rsplit(":", 1)[1])
        body = b'{"agent_name": "answer", "project_id": "%s"}' % runner["project_id"].encode()
        for _ in range(20):  # bodies at a byte a second
            slow.append(Trickle(port, b"POST /api/v1/private/local-runners/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                      b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body),
                                body, every=1.0))
        for _ in range(20):  # headers that never end
            slow.append(Trickle(port, b"GET /api/v1/private/projects HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "))
        for client in slow:
            client.start()
        time.sleep(0.5)
        listing = f"{server.url}/api/v1/private/local-runners/{runner['runner_id']}/jobs"
        answered, slowest = 0, 0.0
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # five seconds of ordinary requests beside them
            started = time.monotonic()
            assert requests.get(listing, timeout=5).status_code == 200
            slowest = max(slowest, time.monotonic() - started)
            answered += 1
        # Every one answered well inside the second each slow client waits between bytes.
        assert answered > 50 and slowest < 0.5, (answered, slowest)
        # The trickled bodies were not lost either: once complete, each is a job (checked on two).
        short = Trickle(port, b"POST /api/v1/private/local-runners/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                              b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body),
                        body, every=0.01)
        short.run()
        short.sock.settimeout(10)
        assert short.sock.recv(4096).startswith(b"HTTP/1.1 201")
        short.stop()
    finally:
        for client in slow:
            client.stop()
        server.stop()
