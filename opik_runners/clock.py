"""The server's clock: wall-clock time plus an offset the control plane can move forward
(POST /_admin/clock), so that a test sees a heartbeat lapse or a job time out without
waiting for it. Everything timed reads `now_us()`; only the reaper's schedule and the
control plane's own bookkeeping read `real_now_us()`.

This module imports nothing of the service: control.py sets the offset, models.py and
everything after it read it."""
import time

offset_us = 0  # this process's copy of the offset all workers share (control.py keeps it current)


def real_now_us():
    return time.time_ns() // 1000


def now_us():
    """The server's time in integer microseconds: exact to compare, cheap to index."""
    return time.time_ns() // 1000 + offset_us
