"""The request journal's store and the control plane's shared state, on a real database:
rows as `prepare` makes them, long bodies stored once, the bound, the buffer a served worker
keeps, and a change that waits for the live processes."""
import pytest

from opik_runners import clock
from opik_runners.control import shared as control, journal
from opik_runners.store import db
from opik_runners.store.models import JournalBody, JournalEntry, ServerProcess, database
from tests.support.databases import fresh_database_url


@pytest.fixture
def store(tmp_path):
    backend = db.open_and_migrate(fresh_database_url(tmp_path))
    with database.connection_context():
        yield
    backend.shut()


def captured(path="/is-alive/ping", body=None, status=200, headers=None):
    return journal.entry(clock.real_now_us(), "GET", path, "", headers or {"Host": "h", "Authorization": "k"}, None,
                         status, body, 1.5, "ping", "default", None, None)


def test_prepare_gives_values_in_the_insert_statements_order(store):
    assert journal.INSERT_ENTRY.order == journal.ROW


def test_entries_are_written_with_headers_redacted(store):
    journal.write([captured()], size=10)
    (entry,) = journal.list_entries(10, 10)[1]
    assert entry.headers == {"Host": "h", "Authorization": "<redacted>"} and entry.status == 200


def test_a_wsgi_environ_gives_the_headers_by_their_names():
    environ = {"REQUEST_METHOD": "GET", "HTTP_COMET_WORKSPACE": "w", "HTTP_AUTHORIZATION": "k",
               "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": "", "PATH_INFO": "/x"}
    assert journal.headers_of(environ) == {"Comet-Workspace": "w", "Authorization": "<redacted>",
                                           "Content-Type": "application/json"}


def test_a_long_body_is_stored_once_however_many_entries_carry_it(store):
    body = b'{"content":"' + b"x" * 5000 + b'"}'
    journal.write([captured(body=body) for _ in range(3)], size=10)
    journal.write([captured(body=body)], size=10)
    assert JournalBody.select().count() == 1
    entries = journal.list_entries(10, 10)[1]
    assert [e.response_body for e in entries] == [body.decode()] * 4
    short = captured(body=b'{"healthy":true}')
    journal.write([short], size=10)
    assert journal.list_entries(10, 1)[1][0].response_body == '{"healthy":true}'
    assert JournalBody.select().count() == 1  # short bodies stay inline


def test_bodies_are_clipped_at_64_kib(store):
    journal.write([captured(body=b"y" * 100_000)], size=10)
    (entry,) = journal.list_entries(10, 1)[1]
    assert entry.response_body == "y" * 64 * 1024


def test_only_the_newest_entries_are_kept_and_unused_bodies_go(store):
    journal.write([captured(body=b"a" * 1000)], size=3)
    for _ in range(5):
        journal.write([captured(path="/is-alive/ver")], size=3)
    total, entries = journal.list_entries(3, 100)
    assert total == 3 and {e.path for e in entries} == {"/is-alive/ver"}
    assert JournalEntry.select().count() == 3  # deleted, not only hidden (a bound of 3 trims every write)
    assert JournalBody.select().count() == 1  # unreferenced, but used within the minute: kept a while
    journal.drop_unused_bodies(unused_for_us=0)
    assert JournalBody.select().count() == 0


def test_ids_are_never_given_twice_even_after_a_clear(store):
    journal.write([captured()], size=10)
    (first,) = journal.list_entries(10, 1)[1]
    journal.clear()
    journal.write([captured()], size=10)
    (second,) = journal.list_entries(10, 1)[1]
    assert second.id > first.id


def test_a_served_worker_buffers_entries_until_the_flusher_or_a_reader_writes_them(store):
    journal.start_flusher(100)
    try:
        journal.flush()  # nothing buffered yet
        journal.record(captured(), 100)
        journal.flush()  # what a reader's barrier does (control.flush_journals)
        assert journal.list_entries(100, 10)[0] == 1
    finally:
        journal.stop_flusher()


def test_a_change_waits_for_live_processes_only(store):
    now = clock.real_now_us()
    ServerProcess.create(holder="dead:1", generation=0, seen_at=now - 60_000_000)
    assert control.wait_until_taken(10**9, timeout=0.1)  # a process not seen lately is not waited for
    ServerProcess.create(holder="alive:2", generation=0, seen_at=now)
    assert not control.wait_until_taken(10**9, timeout=0.1)
    ServerProcess.update(generation=10**9).where(ServerProcess.holder == "alive:2").execute()  # it took it
    assert control.wait_until_taken(10**9, timeout=0.1)


def test_the_clock_offset_is_shared_through_the_database(store):
    assert control.advance_clock(90) == 90
    assert clock.offset_us == 90_000_000
    control.forget()
    assert clock.offset_us == 0
    control.refresh()  # another process taking the change
    assert clock.offset_us == 90_000_000
    control.reset_clock()
    assert clock.offset_us == 0


def test_a_rule_deleted_meanwhile_does_not_fire(store):
    """Another worker's copy of the rules can lag a deletion by a moment: no 500 then."""
    from opik_runners.control import faults

    assert faults.fires({"id": 10**6, "probability": 1.0, "seed": None, "times": None}) is False
