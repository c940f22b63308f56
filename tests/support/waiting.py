"""Waiting in tests: for a condition another thread or process brings about, and for a clock
minute with room enough left."""
import time


def wait_until(check, timeout=30, interval=0.1):
    """Poll `check()` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def start_of_fresh_minute_if_needed(needed=3.0):
    """The bridge's rate buckets are clock minutes (the server's clock, at offset 0, is this
    machine's): don't let a test straddle a minute change."""
    left = 60 - time.time() % 60
    if left < needed:
        time.sleep(left + 0.05)
