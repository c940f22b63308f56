"""Client threads for the concurrency tests: a thread's exception (with its traceback) is kept
and raised as the test's failure, so a worker's `assert` counts like the test's own."""
import threading
import time
import traceback


class Task(threading.Thread):
    def __init__(self, target, *args):
        super().__init__(daemon=True)
        self.target, self.args, self.error = target, args, None

    def run(self):
        try:
            self.target(*self.args)
        except BaseException:  # noqa: B036 - reported by join_all
            self.error = traceback.format_exc()


def run_all(tasks, timeout=120):
    for task in tasks:
        task.start()
    join_all(tasks, timeout)


def join_all(tasks, timeout=120, what="client threads"):
    deadline = time.monotonic() + timeout
    for task in tasks:
        task.join(max(0.0, deadline - time.monotonic()))
    alive = sum(task.is_alive() for task in tasks)
    assert not alive, f"{alive} of {len(tasks)} {what} did not finish within {timeout} s"
    errors = [task.error for task in tasks if task.error]
    assert not errors, errors[0]
