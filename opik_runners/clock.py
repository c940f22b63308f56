"""The server's clock: wall-clock time plus an offset the control plane can move forward
(POST /_admin/clock), so that a test sees a heartbeat lapse or a job time out without
waiting for it. Everything timed reads `now_us()`; only the reaper's schedule and the
control plane's own bookkeeping read `real_now_us()`.

Also the one time format the API speaks: ISO-8601 UTC with a `Z`, to the microsecond.

This module imports nothing of the service: control/shared.py sets the offset, the store and
everything above it read it."""
import datetime
import time

offset_us = 0  # this process's copy of the offset all workers share (control.py keeps it current)


def real_now_us():
    return time.time_ns() // 1000


def now_us():
    """The server's time in integer microseconds: exact to compare, cheap to index."""
    return time.time_ns() // 1000 + offset_us


def iso_utc(us):
    """Integer microseconds -> ISO-8601 UTC with a `Z`, as Java's Instant.toString().
    (time.gmtime: twice as fast as datetime arithmetic, and every job render calls it.)"""
    seconds, micros = divmod(us, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}Z"


EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def parse_instant(text):
    """An ISO-8601 time -> integer microseconds since the epoch, exactly (a float timestamp can
    land 1 us off); a time without an offset is UTC. ValueError if it is not one."""
    moment = datetime.datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return (moment - EPOCH) // datetime.timedelta(microseconds=1)
