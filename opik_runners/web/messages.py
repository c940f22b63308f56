"""What the views read of a request and how they answer, shared by the API's blueprint, the
control plane's and the app's hooks: the settings, the workspace a request names, its JSON
body (gzipped or not) and query loaded through a schema built once, and the JSON answers."""
import functools
import json
import zlib

from flask import Response, current_app, request, url_for

from ..domain.limits import MAX_REQUEST_BYTES
from ..errors import error, failure


def settings():
    """The app's Settings (app.create_app), which the domain rules take as an argument."""
    return current_app.extensions["opik_runners"]


def requested_workspace():
    """The workspace a request names: `Comet-Workspace`, else `workspace_name`, else `default`."""
    # From the environ: werkzeug's headers.get and args.get raise and catch a KeyError for
    # each name a request lacks (nearly every request lacks both), and a held poll kept it.
    # The query is parsed only when it could name one: spelled out, or percent-encoded.
    environ = request.environ
    workspace = environ.get("HTTP_COMET_WORKSPACE")
    query = environ.get("QUERY_STRING", "")
    if not workspace and ("workspace_name" in query or "%" in query):
        workspace = request.args.get("workspace_name")
    return workspace or "default"


def has_body(environ):
    """Whether a request sends a body: `Content-Length: 0` (the CLI's polls) does not."""
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "")
    return environ.get("CONTENT_LENGTH", "") not in ("", "0") or chunked


def respond(body, status=200, headers=None):
    return Response(json.dumps(body, separators=(",", ":")), status, headers, mimetype="application/json")


def no_content():
    return Response(status=204)


def created(location_endpoint, body=None, **values):
    """201 with the new resource's URL in Location; a body only where Opik sends one."""
    headers = {"Location": url_for(location_endpoint, _external=True, **values)}
    return Response(status=201, headers=headers) if body is None else respond(body, 201, headers)


def inflate(raw):
    """Undo `Content-Encoding: gzip` (the CLI gzips bodies of 256 bytes or more).

    zlib rather than gzip.decompress because zlib can stop at a size: a small
    bomb must not inflate to gigabytes before it is refused.
    """
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        body = inflater.decompress(raw, MAX_REQUEST_BYTES)
    except zlib.error as exc:
        raise failure(400, f"Unable to process JSON. Corrupt gzip body: {exc}")
    if inflater.unconsumed_tail:
        raise failure(413, f"Request body inflates past {MAX_REQUEST_BYTES} bytes")
    if not inflater.eof:
        raise failure(400, "Unable to process JSON. Truncated gzip body")
    return body


def read_json(required=True):
    """The request body as JSON; an empty body is None (Opik's POSTs without a body)."""
    raw = request.get_data()
    if raw and request.environ.get("HTTP_CONTENT_ENCODING", "").strip().lower() == "gzip":
        raw = inflate(raw)
    if not raw.strip():
        if required:
            raise error(422, "The request body must not be null")
        return None
    if b"\\u0000" in raw:  # PostgreSQL text cannot hold NUL; refuse it on every store alike
        raise failure(400, "Unable to process JSON. NUL characters (\\u0000) are not supported")
    try:
        # Opik's mapper allows NaN and ±Infinity, and writes them back as strings
        # ("NaN"): taking them as those strings here gives the same documents.
        body = json.loads(raw, parse_constant=str)
        if b"\\ud" in raw.lower():
            # An escaped lone surrogate parses, but no UTF-8 store can hold it.
            json.dumps(body, ensure_ascii=False).encode("utf-8")
        return body
    except (ValueError, UnicodeError) as exc:
        raise failure(400, f"Unable to process JSON. {exc}")
    except RecursionError:
        raise failure(400, "Unable to process JSON. Document nested too deeply")


@functools.cache
def schema_of(schema_class):
    """One instance per schema class: building one deep-copies its fields, too slow per
    request. (Loading and dumping keep no state on the instance.)"""
    return schema_class()


def load_body(schema_class, required=True):
    body = read_json(required)
    return schema_of(schema_class).load({} if body is None else body)


def load_query(schema_class):
    # Clients repeat a handful of query strings (a page, a poll's wait flag), so their
    # parses are kept; a copy goes out, as callers may change it.
    return dict(_parse_query(schema_class, request.query_string))


@functools.lru_cache(maxsize=1024)
def _parse_query(schema_class, query_string):
    args = request.args.to_dict()
    for name in getattr(schema_class, "REPEATABLE", ()):  # ?status=a&status=b
        if name in args:
            args[name] = request.args.getlist(name)
    return schema_of(schema_class).load(args)


def paged(page_schema, page, size, found):
    total, rows = found
    return respond(page_schema.dump({"page": page, "size": size, "total": total, "content": rows}))
