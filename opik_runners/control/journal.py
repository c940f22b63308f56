"""The request journal: every request to the Opik API, kept in the database so that every
worker and instance writes to one journal, and a test can list it or wait on it
(/_admin/requests). Only the newest `journal_size` entries are kept.

In a served worker, `record` only appends the entry to this process's buffer, and a
flusher thread writes the buffer every FLUSH_SECONDS in one transaction: writing each
request's entry in its own transaction before answering cut the listing's throughput
to 53% of what it is without the journal (one commit per ~3 requests, measured). A
reader of the journal first has every process flush its buffer (control.flush_journals),
so a client that has its answer still finds its entry. Elsewhere (one process, Flask's
test client) `record` writes at once.
"""
import collections
import fnmatch
import hashlib
import json
import logging
import threading
import time

from peewee import fn

from .. import clock, metrics
from ..store import db, wakeups
from ..store.models import JournalBody, JournalEntry, database
from ..store.statements import Statement, columns

log = logging.getLogger(__name__)

REDACTED = "<redacted>"  # what the journal shows of an Authorization header
KEY = ("journal",)  # woken whenever entries are written, for /_admin/requests/wait
BODY_LIMIT = 64 * 1024  # characters of a request or response body kept
# Bodies this long or longer are stored once each, by their hash (journal_body): a listing
# under load answers the same 25 KB thousands of times a second, and writing each copy
# cost more than the listing itself (measured: 2,380 -> 3,000 req/s with the bodies shared).
BODY_INLINE = 512
# How long a buffered entry may wait for the flusher: a reader forces a flush, so this only
# delays the wake-up of a /_admin/requests/wait. (10 and 50 ms measured alike on the listing;
# 50 ms makes fewer, larger transactions beside the API's own writes.)
FLUSH_SECONDS = 0.05

WRITTEN = [field for field in JournalEntry._meta.sorted_fields if field.name != "id"]  # the id is the store's
INSERT_ENTRY = Statement("insert journal entry", lambda p: JournalEntry.insert(columns(JournalEntry, *WRITTEN)))
# The order `prepare` gives a row's values in (a test holds it to INSERT_ENTRY.order).
ROW = ("at", "method", "path", "query", "headers", "request_body", "request_body_hash", "status", "response_body",
       "response_body_hash", "duration_ms", "operation", "workspace", "notes", "fault")
NEWEST_ID = Statement("newest journal entry", lambda p: JournalEntry.select(fn.MAX(JournalEntry.id)))
TRIM = Statement("trim journal", lambda p: JournalEntry.delete().where(JournalEntry.id <= p.last_dropped))
# A body stored already is marked used again, so that a concurrent trim (which deletes only bodies
# unused for a while) cannot drop one an entry still being written refers to.
INSERT_BODY = Statement(
    "insert journal body",
    lambda p: JournalBody.insert(columns(JournalBody)).on_conflict(
        conflict_target=[JournalBody.hash], preserve=[JournalBody.used_at]
    ),
)
KEEP_UNUSED_BODIES_US = 60_000_000
# A body this process stored or marked lately is not written again: its row stays at least
# KEEP_UNUSED_BODIES_US - MARK_EVERY_US longer. (Writing it back each flush rewrote its 25 KB:
# the listing lost 5 points of its ratio to the static floor.)
MARK_EVERY_US = 10_000_000
_marked = {}  # hash -> when this process last wrote or marked it


def clip(text):
    return text if text is None or len(text) <= BODY_LIMIT else text[:BODY_LIMIT]


class Buffer:
    """This process's entries not yet written, and the thread that writes them. A deque: its
    append and popleft need no lock (a gevent lock cost each request ~3 us), and past `size`
    entries (the database away) it drops the oldest itself."""

    def __init__(self):
        self.entries = collections.deque()
        self.writing = threading.Lock()  # one write of the buffer at a time, in order
        self.filled = threading.Event()
        self.size = None
        self.flusher = None


_buffer = Buffer()


def record(entry, size):
    """Journal one request: buffered in a served worker (start_flusher), else written now."""
    if _buffer.flusher is None:
        try:
            write([entry], size)
        except Exception:  # the journal is the test's view: it must not fail the request it records
            log.warning("a journal entry was not written", exc_info=True)
        return
    _buffer.entries.append(entry)
    if not _buffer.filled.is_set():
        _buffer.filled.set()


def flush():
    """Write what this process has buffered (the flusher's loop, and a reader's barrier)."""
    with _buffer.writing:
        pending = _buffer.entries
        entries = [pending.popleft() for _ in range(len(pending))]
        if entries:
            try:
                write(entries, _buffer.size)
            except Exception:
                # One at a time, so that one entry the store refuses does not take the batch with it.
                lost = 0
                for entry in entries:
                    try:
                        write([entry], _buffer.size)
                    except Exception:
                        lost += 1
                if lost:
                    log.warning("%d journal entries were not written", lost, exc_info=True)


class Flusher(threading.Thread):
    def __init__(self):
        super().__init__(name="journal-flusher", daemon=True)
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.is_set():
            if _buffer.filled.wait(1.0):
                _buffer.filled.clear()
                time.sleep(FLUSH_SECONDS)  # let the entries of requests finishing now join the batch
                flush()


def start_flusher(size):
    """Buffer this process's entries from now on (in each served worker, after the fork)."""
    stop_flusher()
    _buffer.size = size
    _buffer.entries = collections.deque(_buffer.entries, maxlen=size)
    _buffer.flusher = Flusher()
    _buffer.flusher.start()


def stop_flusher():
    flusher, _buffer.flusher = _buffer.flusher, None
    if flusher is not None:
        flusher.stopped.set()
        flusher.join(timeout=5)
        flush()


def write(entries, size):
    """Insert `entries` (as `entry` captures them) and their long bodies, drop all but the newest
    `size`, and wake whoever waits on the journal: one transaction."""
    bodies, rows = {}, []
    for captured in entries:
        row, entry_bodies = prepare(*captured)
        rows.append(row)
        bodies.update(entry_bodies)
    with database.connection_context(), database.atomic():
        now = clock.real_now_us()
        stale = [(digest, text) for digest, text in bodies.items() if _marked.get(digest, 0) < now - MARK_EVERY_US]
        if stale:
            INSERT_BODY.execute_many([{"hash": digest, "text": text, "used_at": now} for digest, text in stale])
        INSERT_ENTRY.execute_rows(rows)
        (newest,) = NEWEST_ID.one()
        # Ids only grow, so the newest `size` are at most those past newest - size. Older ones
        # are deleted every `size // 10` entries (at most 100), not on every write: a delete
        # per write cost the listing ~5% of its throughput; readers skip the few extra.
        if newest > size and crossed(newest, len(entries), max(1, min(100, size // 10))):
            TRIM.execute(last_dropped=newest - size)
            if crossed(newest, len(entries), max(1, min(1000, size))):
                drop_unused_bodies()  # a read of every entry: rarer still (~10% of a listing's time at 100)
        database.notify(KEY)
    if stale:  # committed
        if len(_marked) > 10_000:
            _marked.clear()
        _marked.update((digest, now) for digest, _ in stale)


def crossed(newest, written, every):
    """Whether the ids just written, up to `newest`, passed a multiple of `every`."""
    return newest // every != (newest - written) // every


def newest_id():
    return NEWEST_ID.one()[0] or 0


def drop_unused_bodies(unused_for_us=KEEP_UNUSED_BODIES_US):
    used = [JournalEntry.select(column).where(column.is_null(False))
            for column in (JournalEntry.request_body_hash, JournalEntry.response_body_hash)]
    JournalBody.delete().where(
        (JournalBody.used_at < clock.real_now_us() - unused_for_us)
        & JournalBody.hash.not_in(used[0]) & JournalBody.hash.not_in(used[1])
    ).execute()


def clear(workspace=None):
    with database.atomic():
        query = JournalEntry.delete()
        if workspace is not None:
            query = query.where(JournalEntry.workspace == workspace)
        query.execute()
        # Not the bodies used within the minute: a worker may skip writing one it marked lately.
        drop_unused_bodies()


_last_digests = {}  # length -> (body, digest, text): the bodies this process hashed last


def stored_body(body):
    """(inline text, hash, {hash: text}) of a body (text, or UTF-8 bytes): a short one inline, a
    long one by its SHA-1. A body equal to the last one of its length reuses its digest, and is
    not decoded again: comparing 25 KB takes ~1 us, hashing it ~20 us, and a listing or a poll
    under load answers the same body again and again."""
    if body is None or len(body) < BODY_INLINE:
        return storable(body.decode("utf-8", "replace") if isinstance(body, bytes) else body), None, {}
    last = _last_digests.get(len(body))
    if last is not None and last[0] == body:
        _, digest, text = last
    else:
        text = storable(clip(body.decode("utf-8", "replace") if isinstance(body, bytes) else body))
        digest = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()
        if len(_last_digests) > 1000:
            _last_digests.clear()
        _last_digests[len(body)] = (body, digest, text)
    # Given again each time (a batch inserts each body once, and ignores one stored already):
    # the entry that first carried it may have been trimmed, and its body with it.
    return None, digest, {digest: text}


def with_bodies(entries):
    """Put their long bodies back into entries read from the table."""
    wanted = {digest for entry in entries for digest in (entry.request_body_hash, entry.response_body_hash) if digest}
    if wanted:
        texts = dict(JournalBody.select(JournalBody.hash, JournalBody.text).where(JournalBody.hash.in_(wanted)).tuples())
        for entry in entries:
            if entry.request_body_hash:
                entry.request_body = texts.get(entry.request_body_hash)
            if entry.response_body_hash:
                entry.response_body = texts.get(entry.response_body_hash)
    return entries


# -- reading


def matching(keep, method=None, path=None, operation=None, status=None, workspace=None, after_id=None,
             since_us=None):
    """A query for the entries that match among the newest `keep`, and a test of the path glob
    (not expressible alike in both SQLs; the journal is small, so the glob is tested on the
    rows read)."""
    query = JournalEntry.select().where(JournalEntry.id > newest_id() - keep)
    if method:
        query = query.where(JournalEntry.method == method.upper())
    if operation:
        query = query.where(JournalEntry.operation == operation)
    if status is not None:
        query = query.where(JournalEntry.status == status)
    if workspace:
        query = query.where(JournalEntry.workspace == workspace)
    if after_id is not None:
        query = query.where(JournalEntry.id > after_id)
    if since_us is not None:
        query = query.where(JournalEntry.at >= since_us)

    def path_matches(entry):
        return not path or fnmatch.fnmatchcase(entry.path, path)

    return query, path_matches


def list_entries(keep, limit, **pattern):
    """(total matching, the newest `limit` of them, newest first)."""
    query, path_matches = matching(keep, **pattern)
    # By the time each was answered: ids follow the flushes, and workers flush in their own time.
    found = [entry for entry in query.order_by(JournalEntry.at.desc(), JournalEntry.id.desc()) if path_matches(entry)]
    return len(found), with_bodies(found[:limit])


def wait_for_entries(keep, count, timeout, release=None, **pattern):
    """(arrived, entries): the matching entries once `count` have arrived past `after_id` (or
    `since_us`), oldest first; or, when `timeout` passes first, those that did arrive."""
    arrived = []

    def attempt():
        query, path_matches = matching(keep, **pattern)
        arrived[:] = [entry for entry in query.order_by(JournalEntry.at, JournalEntry.id) if path_matches(entry)]
        return arrived if len(arrived) >= count else None

    # A reset elsewhere does not end it: a wait is the test's own, and sees only what arrives after.
    with metrics.held("journal"):
        found = wakeups.wait_for(KEY, attempt, timeout, release=release, interruptible=False)
    return found is not None, with_bodies(arrived)


def entry(at, method, path, query, headers, request_body, status, response_body, duration_ms, operation, workspace,
          notes, fault):
    """One request, as `record` takes it: captured as it is, and made into a row by the flusher
    (`prepare`), off the request's path. `headers` may be a WSGI environ (its HTTP_ keys are
    read then), `response_body` bytes."""
    return (at, method, path, query, headers, request_body, status, response_body, duration_ms, operation,
            workspace, notes, fault)


def prepare(at, method, path, query, headers, request_body, status, response_body, duration_ms, operation, workspace,
            notes, fault):
    """(the row's values in INSERT_ENTRY's order, {hash: body}) of a captured entry."""
    request_inline, request_hash, request_bodies = stored_body(request_body)
    response_inline, response_hash, response_bodies = stored_body(response_body)
    values = (at, short(method), storable(path), storable(query), headers_json(headers), request_inline,
              request_hash, status, response_inline, response_hash, round(duration_ms, 3), short(operation),
              short(workspace), json.dumps(notes) if notes else None, fault)
    return values, {**request_bodies, **response_bodies}


_headers_json = {}  # the raw headers of recent requests -> their JSON (clients repeat theirs)


def headers_json(headers):
    """headers_of(headers) as JSON text; a set of headers seen lately is not named and encoded again."""
    if "REQUEST_METHOD" not in headers:
        return json.dumps(headers_of(headers), ensure_ascii=False)
    raw = tuple(item for item in headers.items() if item[0].startswith("HTTP_") or item[0] in BODY_HEADERS)
    text = _headers_json.get(raw)
    if text is None:
        if len(_headers_json) > 256:
            _headers_json.clear()
        text = _headers_json[raw] = json.dumps(headers_of(headers), ensure_ascii=False)
    return text


BODY_HEADERS = ("CONTENT_TYPE", "CONTENT_LENGTH")


def storable(text):
    """Text every store holds: PostgreSQL's refuses NUL, which a URL (%00) or a body may carry."""
    return text.replace("\x00", "\\u0000") if text and "\x00" in text else text


def short(text):
    """A value for a 255-character column (a workspace name can be longer: Opik refuses it later)."""
    return storable(text)[:255] if text else text


def headers_of(headers):
    """A request's headers by their usual names, Authorization redacted: from a WSGI environ's
    HTTP_ keys (and CONTENT_TYPE/LENGTH), or from a dict as it is."""
    if "REQUEST_METHOD" not in headers:
        return {name: REDACTED if name.lower() == "authorization" else value for name, value in headers.items()}
    found = {}
    for key, value in headers.items():
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").title()
            found[name] = REDACTED if name == "Authorization" else value
        elif key in BODY_HEADERS and value:
            found[key.replace("_", "-").title()] = value
    return found


@db.on_switch
def stop_flushing():
    """The flusher writes to the open database: it stops while another replaces it (a served
    worker starts one afresh with the control plane's listener; a test's app writes at once)."""
    stop_flusher()
