"""wakeups.wait_for without a database: when `attempt` runs."""
import threading
import time

from opik_runners.store import wakeups


def counting(result=None):
    calls = []

    def attempt():
        calls.append(time.monotonic())
        return result() if callable(result) else result

    return calls, attempt


def test_a_poll_for_work_does_not_look_again_at_its_deadline():
    # Judged by when the attempts ran, not how many: another test's watcher may wake every waiter.
    calls, attempt = counting()
    deadline = time.monotonic() + 0.05
    assert wakeups.wait_for(("jobs", "r1"), attempt, 0.05, claims=True) is None
    assert calls and max(calls) < deadline
    assert "jobs:r1" not in wakeups._waiters


def test_by_default_the_deadline_gets_a_last_look():
    calls, attempt = counting()
    deadline = time.monotonic() + 0.05
    assert wakeups.wait_for(("journal", "x"), attempt, 0.05) is None
    assert max(calls) >= deadline


def test_a_wake_up_gets_an_attempt_even_without_the_last_look():
    box = []
    _, attempt = counting(lambda: box[0] if box else None)

    def deliver():
        time.sleep(0.02)
        box.append("job")
        wakeups.wake(wakeups.key_text(("jobs", "r2")))

    threading.Thread(target=deliver).start()
    assert wakeups.wait_for(("jobs", "r2"), attempt, 5, claims=True) == "job"


def test_a_wake_up_wakes_one_claimer_and_every_other_waiter():
    text = wakeups.key_text(("jobs", "r3"))
    claimers = [threading.Event() for _ in range(3)]
    watchers = [threading.Event() for _ in range(2)]
    with wakeups._lock:
        for event in claimers:
            wakeups._waiters[text][event] = True
        for event in watchers:
            wakeups._waiters[text][event] = False
    try:
        wakeups.wake(text)
        assert sum(event.is_set() for event in claimers) == 1
        assert all(event.is_set() for event in watchers)
        wakeups.wake(text)  # the next wake-up goes to a claimer not woken yet
        assert sum(event.is_set() for event in claimers) == 2
    finally:
        with wakeups._lock:
            del wakeups._waiters[text]


def test_each_piece_of_work_reaches_a_claimer_however_the_wake_ups_fall():
    """Five claimers, five pieces of work announced one wake-up each, some while claimers are
    mid-attempt: every piece is claimed, none twice, with no poll running out its time."""
    key = ("jobs", "r4")
    text = wakeups.key_text(key)
    work, claimed, lock = [], [], threading.Lock()

    def attempt():
        time.sleep(0.005)  # a claim takes a while: wake-ups land during attempts
        with lock:
            return work.pop() if work else None

    def claimer():
        got = wakeups.wait_for(key, attempt, 5, claims=True)
        if got is not None:
            claimed.append(got)

    threads = [threading.Thread(target=claimer) for _ in range(5)]
    for thread in threads:
        thread.start()
    for piece in range(5):
        with lock:
            work.append(piece)
        wakeups.wake(text)
        time.sleep(0.002)
    for thread in threads:
        thread.join(6)
    # A lost wake-up leaves its claimer waiting out the deadline, which ends a claimer with no
    # last attempt (claims=True): its piece stays unclaimed. So the count says it, with no clock.
    assert sorted(claimed) == [0, 1, 2, 3, 4]
