"""A runner's long polls for work (jobs/next, bridge/commands/next): the wait, the held-polls
gauge, and the wake-up latency. jobs.py and bridge.py say what a claim is; wakeups.py how a
poll sleeps and is woken."""
from .. import metrics
from ..store import wakeups
from ..clock import now_us


class CountedAttempts:
    """`attempt` (for wakeups.wait_for), counting its calls: work a poll claims after its first
    attempt was made while the poll waited (the wake-up latency metric). Not a closure over a
    list: a held poll keeps what its wait refers to, and this is the smaller (19.6 KB a held
    poll with it)."""

    __slots__ = ("attempt", "count")

    def __init__(self, attempt):
        self.attempt, self.count = attempt, 0

    def __call__(self):
        self.count += 1
        return self.attempt()


def wait_for_claim(kind, runner_id, claim, timeout, release, made_at):
    """`claim()` until it takes something (a claimer's attempt: see wakeups.wait_for) or
    `timeout` passes; what it took, or None. `kind` is the wake-up key's first part and the
    metrics' label ("jobs", "bridge"). Work taken after the first attempt was made while the
    poll waited: the time from `made_at(found)` (clock.now_us) to now is its wake-up latency."""
    attempts = CountedAttempts(claim)
    with metrics.held(kind):
        found = wakeups.wait_for((kind, runner_id), attempts, timeout, release=release, claims=True)
    if found and attempts.count > 1:
        metrics.observe_wakeup(kind, made_at(found), now_us())
    return found
