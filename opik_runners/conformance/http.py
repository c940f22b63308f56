"""The kit's HTTP: every call answered as it came (status, headers, body), never raised, and
remembered, so that a difference can be reported with the request that showed it."""
import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from .. import __version__

USER_AGENT = f"opik-runners-conformance/{__version__}"


@dataclass
class Answer:
    """One exchange: what was sent and what came back."""

    method: str
    url: str
    sent: object
    status: int
    headers: dict = field(default_factory=dict)
    text: str = ""

    @property
    def json(self):
        """The body as JSON; None for an empty body or one that is not JSON."""
        try:
            return json.loads(self.text) if self.text.strip() else None
        except ValueError:
            return None

    def describe(self, limit=300):
        sent = "" if self.sent is None else " " + short(self.sent, 200)
        return f"{self.method} {self.url}{sent} -> {self.status} {self.text[:limit]}".rstrip()


def short(value, limit=200):
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Api:
    """Opik's REST API at `base` (the URL OPIK_URL_OVERRIDE would name, e.g. http://host/api):
    `call("POST", "v1/private/projects", {...})`. Sends the workspace and the API key as the
    CLI does (Comet-Workspace; Authorization, the raw key). `root` is the server's own root:
    Opik serves every path both there and under /api."""

    def __init__(self, base, workspace="default", api_key=None, timeout=60):
        self.base = base.rstrip("/")
        self.root = self.base[: -len("/api")] if self.base.endswith("/api") else self.base
        self.workspace, self.api_key, self.timeout = workspace, api_key, timeout
        self.exchanges = []

    def headers(self, extra=None):
        headers = {"Comet-Workspace": self.workspace, "User-Agent": USER_AGENT, "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = self.api_key
        return {**headers, **(extra or {})}

    def call(self, method, path, body=None, *, raw=None, headers=None, at_root=False, timeout=None):
        """`path` under the base (or the root, `at_root`); `body` as JSON, or `raw` bytes sent as
        they are (with whatever Content-Type `headers` give)."""
        url = f"{self.root if at_root else self.base}/{path.lstrip('/')}"
        headers = self.headers(headers)
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as reply:
                status, reply_headers, payload = reply.status, dict(reply.headers), reply.read()
        except urllib.error.HTTPError as refused:
            status, reply_headers, payload = refused.code, dict(refused.headers), refused.read()
        answer = Answer(method, url, body if body is not None else (raw.decode(errors="replace") if raw else None),
                        status, reply_headers, payload.decode("utf-8", errors="replace"))
        self.exchanges.append(answer)
        return answer
