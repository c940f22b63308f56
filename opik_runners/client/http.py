"""The HTTP client the package's clients share: the Opik REST API as the CLI calls it
(docs/opik-behaviour.md#cli-config, docs/opik-behaviour.md#cli-headers, docs/opik-behaviour.md#cli-gzip).
The standard library's urllib is all it needs, so the package gains no dependency."""
import gzip
import http.client
import json
import urllib.error
import urllib.parse
import urllib.request

from .. import __version__

USER_AGENT = f"opik-runners-simulate/{__version__}"
REQUEST_TIMEOUT = 30
GZIP_FROM = 256  # the CLI gzips JSON bodies of this many bytes or more


class HttpError(Exception):
    """A non-2xx answer (or a 2xx whose body is not the JSON the call needs)."""

    def __init__(self, method, path, status, body):
        self.status = status
        self.body = body
        text = " ".join(body.split())
        super().__init__(f"{method} {path} answered HTTP {status}" + (f": {text[:200]}" if text else ""))


class Unreachable(Exception):
    """No answer at all: refused, reset, timed out."""


class Client:
    """The Opik REST API as the CLI calls it: `{url}/{path}`, the `Comet-Workspace` header
    always, `Authorization: <raw key>` when there is one, JSON bodies of 256 bytes or more
    gzipped, an empty object sent as no body (docs/opik-behaviour.md#paths, docs/opik-behaviour.md#cli-headers,
    docs/opik-behaviour.md#cli-gzip, docs/opik-behaviour.md#empty-bodies)."""

    def __init__(self, url, workspace, api_key):
        self.base = url.rstrip("/")
        parsed = urllib.parse.urlparse(self.base)
        self.root = f"{parsed.scheme}://{parsed.netloc}"
        self.headers = {"Comet-Workspace": workspace, "User-Agent": USER_AGENT, "Accept": "application/json"}
        if api_key:
            self.headers["Authorization"] = api_key

    def call(self, method, path, body=None, timeout=REQUEST_TIMEOUT, at_root=False, need_json=False):
        """The answer's JSON (None for an empty body, unless `need_json`). `at_root`: a path at
        the domain root (the control plane, which no Opik client calls: its bodies go as they are)."""
        url = f"{self.root if at_root else self.base}/{path}"
        headers = dict(self.headers)
        data = None  # no body: http.client still sends Content-Length: 0 on POST/PUT/PATCH
        if body is not None and body != {}:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
            if len(data) >= GZIP_FROM and not at_root:
                data = gzip.compress(data)
                headers["Content-Encoding"] = "gzip"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                status, raw = answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            try:
                text = exc.read().decode("utf-8", "replace")
            except (OSError, http.client.HTTPException):
                text = ""
            raise HttpError(method, path, exc.code, text) from None
        except (OSError, http.client.HTTPException) as exc:  # URLError and timeouts are OSErrors
            raise Unreachable(f"{method} {url}: {getattr(exc, 'reason', None) or exc}") from None
        if not raw.strip():
            if need_json:
                raise HttpError(method, path, status, "(an empty body where JSON was due)")
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise HttpError(method, path, status, f"(not JSON) {raw[:200].decode('utf-8', 'replace')}") from None
