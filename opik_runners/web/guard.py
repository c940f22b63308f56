"""What keeps a web page from driving a server on a developer's loopback.

A dev server listens on 127.0.0.1 with no API keys, so any page a developer opens can send
it requests; three checks, one before_request hook, refuse what a browser sends for a page
that is not the server's own, before any view (or fault, or journal note) sees it:

- **Host** (DNS rebinding): a page whose host name resolves to 127.0.0.1 reads the answers as
  its own, but its requests name that host. Allowed: localhost and its subdomains, the
  loopback addresses, any IP literal (rebinding needs a name), the name the server is bound
  to, and OPIK_RUNNERS_ALLOWED_HOSTS; anything else is 403 (as Vite's `server.allowedHosts`,
  Jupyter and Ollama answer it).
- **Origin** (cross-site requests): a POST, PUT, PATCH or DELETE a browser marks as sent by
  another origin (`Origin`, else `Sec-Fetch-Site`) is 403 unless OPIK_RUNNERS_CORS_ORIGINS
  lists it; so is a CORS preflight from such an origin. Clients that are not browsers send
  neither header.
- **Media type**: a body must be `application/json` (parameters such as `charset` aside), as
  Opik's Jersey resources are `@Consumes(APPLICATION_JSON)` (docs/opik-behaviour.md#media-types): 415
  otherwise, so no "simple" cross-site request (text/plain, a form, a Blob with no type) is
  ever read as one.

The host and origin checks are this server's own (docs/opik-behaviour.md#departure-local-guard).

CORS itself (the allow headers for the listed origins) is flask-cors's.
"""
import functools
import ipaddress
import re

from flask import request

from ..errors import failure
from ..settings import admin_enabled
from .messages import has_body

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# What Sec-Fetch-Site says of a request the server's own pages (or the user, typing a URL) sent.
OWN_SITES = frozenset({"same-origin", "none"})
DEFAULT_PORTS = {"http": "80", "https": "443"}
# The paths a listed origin may call across origins (the console, /metrics and the pairing
# page are for people and Prometheus, not for another origin's scripts).
CORS_PATHS = r"/(v1|api|is-alive|_admin)/.*"
CORS_HEADERS = ["Authorization", "Comet-Workspace", "Content-Type", "Content-Encoding"]


def host_name(host):
    """The name part of a Host header, lower case: `Localhost:5173` -> `localhost`,
    `[::1]:5173` -> `[::1]`."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] or host
    return host.rpartition(":")[0] if ":" in host else host


def is_ip_literal(name):
    try:
        ipaddress.ip_address(name[1:-1] if name.startswith("[") else name)
    except ValueError:
        return False
    return True


def bound_name(bind):
    """The host name a bind of OPIK_RUNNERS_BIND (or --bind) names, if any: `myhost:5173` -> `myhost`."""
    if bind.startswith(("unix:", "fd://")):
        return None
    return host_name(bind) or None


def is_loopback(bind):
    name = bound_name(bind)
    if name is None or name == "localhost":
        return True
    return is_ip_literal(name) and ipaddress.ip_address(name.strip("[]")).is_loopback


class Guard:
    """The checks for one app's settings; `check` is the app's first before_request hook."""

    def __init__(self, settings):
        self.allowed_hosts = settings.allowed_hosts
        self.any_host = "*" in settings.allowed_hosts
        self.bound = {bound_name(bind) for bind in settings.bind} - {None}
        self.cors_origins = frozenset(settings.cors_origins)
        # Host headers seen, and whether each is allowed: a dict lookup a request.
        self.host_allowed = functools.lru_cache(maxsize=256)(self._host_allowed)

    def _host_allowed(self, host):
        name = host_name(host).rstrip(".")
        if self.any_host or name in LOOPBACK_NAMES or name.endswith(".localhost") or is_ip_literal(name):
            return True
        if name in self.bound or name in self.allowed_hosts:
            return True
        return any(allowed.startswith(".") and (name == allowed[1:] or name.endswith(allowed))
                   for allowed in self.allowed_hosts)

    def check(self, environ):
        """Raise the refusal for a request a web page must not make; None for any other."""
        host = environ.get("HTTP_HOST")
        if host is not None and not self.host_allowed(host):
            raise failure(403, f"Host {host!r} is not allowed (DNS rebinding protection): this server answers "
                               "localhost, IP addresses and the name it is bound to. To serve it under this name "
                               "(behind a proxy, say), add the name to OPIK_RUNNERS_ALLOWED_HOSTS")
        method = environ["REQUEST_METHOD"]
        origin = environ.get("HTTP_ORIGIN")
        if method in STATE_CHANGING or (method == "OPTIONS" and origin is not None):
            if origin is not None:
                if origin not in self.cors_origins and not same_origin(origin, host):
                    raise failure(403, f"Cross-origin request refused: a page of {origin} may not "
                                       f"{'ask to ' if method == 'OPTIONS' else ''}call this server. List the "
                                       "origin in OPIK_RUNNERS_CORS_ORIGINS to let its pages call the API")
            elif environ.get("HTTP_SEC_FETCH_SITE", "none") not in OWN_SITES:
                raise failure(403, "Cross-site request refused: the browser marks it as sent by another site "
                                   f"(Sec-Fetch-Site: {environ['HTTP_SEC_FETCH_SITE']})")


def same_origin(origin, host):
    """Whether `Origin` names the host and port the request was sent to (its Host header).
    The scheme is not compared: behind a proxy that ends TLS, the page is https and the server
    sees http."""
    if host is None:
        return False
    scheme, sep, authority = origin.lower().partition("://")
    if not sep:
        return False  # "null": a sandboxed frame, a file: or data: page
    default = DEFAULT_PORTS.get(scheme)
    host = host.strip().lower()
    if default is not None:
        authority = authority.removesuffix(f":{default}")
        host = host.removesuffix(f":{default}")
    return authority == host


def unsupported_media_type(environ):
    """The 415 for a body that is not JSON, or None. (A request without a body needs no type.)"""
    content_type = environ.get("CONTENT_TYPE", "")
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type == "application/json":  # Jersey's isCompatible: application/merge-patch+json is not
        return None
    got = f"'{media_type}'" if media_type else "none"
    return failure(415, f"HTTP 415 Unsupported Media Type: send the body as application/json (Content-Type: {got})")


def warn_if_exposed(settings, binds, say):
    """At start, for a server bound beyond loopback (any of its `binds`): one warning if no API keys
    are set (whoever reaches it is admin, and the control plane is theirs), and one if no host names
    are allowed (who reaches it by a name, a proxy or DNS, is refused until the name is listed)."""
    beyond = [bind for bind in binds if not is_loopback(bind)]
    if not beyond:
        return
    where = ", ".join(beyond)
    if not settings.api_keys:
        served = (", and /_admin/ (the whole state, pairing keys included; reset, faults) is served to them"
                  if admin_enabled(settings) else "")
        say(f"OPIK_API_KEYS is unset while listening on {where}: whoever reaches it is admin{served}. "
            "Set OPIK_API_KEYS (user:key) unless only you can reach this network")
    if not settings.allowed_hosts:
        say(f"listening on {where}, beyond loopback, with OPIK_RUNNERS_ALLOWED_HOSTS unset: requests that name "
            "this server by IP address, localhost or the bound address are answered; any other host name "
            "(a proxy's, a DNS name) gets 403 until it is listed in OPIK_RUNNERS_ALLOWED_HOSTS")


def init_app(app, settings):
    """The checks before every other hook; CORS for the listed origins, if any."""
    guard = Guard(settings)
    app.extensions["opik_runners.guard"] = guard

    def refuse_what_pages_must_not_do():
        environ = request.environ
        guard.check(environ)
        # A path no route serves answers its 404 or 405 first, as Jersey matches the route first.
        if request.routing_exception is None and has_body(environ):
            refusal = unsupported_media_type(environ)
            if refusal is not None:
                raise refusal

    app.before_request(refuse_what_pages_must_not_do)
    if settings.cors_origins:
        from flask_cors import CORS

        # Compiled, matched whole: flask-cors takes a string with "[" for a regular expression, so
        # http://[::1]:3000 would match nothing, and a dot would match any character.
        origins = [re.compile(re.escape(origin) + r"\Z", re.IGNORECASE) for origin in settings.cors_origins]
        CORS(app, resources={CORS_PATHS: {}}, origins=origins, supports_credentials=True,
             allow_headers=CORS_HEADERS, expose_headers=["Location", "Retry-After"], max_age=600)
    return guard
