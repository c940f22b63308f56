"""wakeups.wait_for without a database: when `attempt` runs."""
import threading
import time

from opik_runners import wakeups


def counting(result=None):
    calls = []

    def attempt():
        calls.append(time.monotonic())
        return result() if callable(result) else result

    return calls, attempt


def test_a_poll_for_work_does_not_look_again_at_its_deadline():
    calls, attempt = counting()
    assert wakeups.wait_for(("jobs", "r1"), attempt, 0.05, check_at_deadline=False) is None
    assert len(calls) == 1
    assert "jobs:r1" not in wakeups._waiters


def test_by_default_the_deadline_gets_a_last_look():
    calls, attempt = counting()
    assert wakeups.wait_for(("journal", "x"), attempt, 0.05) is None
    assert len(calls) == 2


def test_a_wake_up_gets_an_attempt_even_without_the_last_look():
    box = []
    calls, attempt = counting(lambda: box[0] if box else None)

    def deliver():
        time.sleep(0.02)
        box.append("job")
        wakeups.wake(wakeups.key_text(("jobs", "r2")))

    threading.Thread(target=deliver).start()
    assert wakeups.wait_for(("jobs", "r2"), attempt, 5, check_at_deadline=False) == "job"
    assert len(calls) == 2
