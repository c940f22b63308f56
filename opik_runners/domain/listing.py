"""The jobs listing (GET .../local-runners/{runnerId}/jobs), the hot path: a page of job documents
stored already rendered, newest first, with Opik's total; and this server's extensions, the
status and agent filters and the counts per status (docs/opik-behaviour.md#job-listing,
docs/opik-behaviour.md#departure-listing-filters). Reads only: jobs.py writes the documents."""
from peewee import JOIN, SQL, fn

from ..errors import failure
from ..store.models import Job, Runner, database
from ..store.statements import Statement
from .jobs import STATUSES
from .ownership import owned_runners, require_runner


def job_page(p):
    """The runner's (project_id, job_count, last_seq) beside each job document of the page
    (one row with no document when the page is empty or the seqs have gaps)."""
    newest, oldest = Runner.job_count - p.skip, Runner.job_count - p.page_end
    no_gaps = Runner.last_seq == Runner.job_count
    in_page = (Job.runner == Runner.id) & no_gaps & (Job.seq <= newest) & (Job.seq > oldest)
    return (
        owned_runners(p.workspace, p.user)
        .select(Runner.project_id, Runner.job_count, Runner.last_seq, Job.document)
        .join(Job, JOIN.LEFT_OUTER, on=in_page)
        .where(Runner.id == p.runner_id)
        .order_by(Job.seq.desc())
    )


LISTING_PAGE = Statement("listing page", job_page)


LISTING_PAGE_PAST_GAPS = Statement(
    "listing page past gaps",
    lambda p: Job.select(Job.document).where(Job.runner == p.runner_id).order_by(Job.seq.desc())
    .limit(p.size).offset(p.skip),
)


# The listing's filters (extensions the console uses; Opik ignores them). Statuses go in a fixed
# number of slots, the unused ones given NO_STATUS (which no job has), so each shape compiles
# once. Each status is one search of an index that holds it before seq ((runner, status, seq),
# or (runner, agent_name, status, seq) with an agent), newest first and no deeper than the
# page's end, reading index entries only; SQLite merges them in order; then only the page's
# documents are read. (A single `status IN (...)` let SQLite walk the runner's whole
# (runner, seq) range instead, filtering as it went.)
STATUS_SLOTS = 5


NO_STATUS = ""


def filtered_jobs(p, status, by_agent):
    where = (Job.runner == p.runner_id) & (Job.status == status)
    if by_agent:
        where &= Job.agent_name == p.agent_name
    return Job.select().where(where)


def filtered_page(p, by_agent):
    newest = None
    for i in range(STATUS_SLOTS):
        seqs = (filtered_jobs(p, getattr(p, f"status_{i}"), by_agent).select(Job.seq)
                .order_by(Job.seq.desc()).limit(p.page_end).alias(f"newest_{i}"))
        part = Job.select(seqs.c.seq).from_(seqs)
        newest = part if newest is None else newest + part  # UNION ALL
    page = newest.order_by(SQL("1 DESC")).limit(p.size).offset(p.skip)
    return Job.select(Job.document).where((Job.runner == p.runner_id) & Job.seq.in_(page)).order_by(Job.seq.desc())


FILTERED_PAGE = {
    by_agent: Statement(f"listing page by status{' and agent' if by_agent else ''}",
                        lambda p, by_agent=by_agent: filtered_page(p, by_agent))
    for by_agent in (False, True)
}


STATUS_COUNTS = {
    by_agent: Statement(
        f"job counts by status{' of an agent' if by_agent else ''}",
        lambda p, by_agent=by_agent: filtered_jobs(p, p.status, by_agent).select(fn.COUNT(SQL("*"))),
    )
    for by_agent in (False, True)
}


# Pages answered lately, by what they depend on and the database's data_version: any commit,
# anywhere, moves the version, so a kept page is exactly what the statement would read now.
# (The listing is read far more often than runners write: a console open on it, a test
# polling it. Measured on the seeded store: the page's statement 40 us, PRAGMA data_version 2.6 us.)
LISTING_CACHE_SIZE = 256


_pages = {}


def list_jobs(caller, runner_id, project_id, page, size):
    """(total, documents) of one page, newest first: read_jobs_page's answer, kept while the
    database's data_version stays where it was when it was read."""
    version = database.data_version()
    if version is None:
        return read_jobs_page(caller, runner_id, project_id, page, size)
    key = (caller, runner_id, project_id, page, size)
    kept = _pages.get(key)
    if kept is not None and kept[0] == version:
        return kept[1]
    # Read after the version: a commit in between makes the page newer than its version says,
    # and the next reader, seeing a later version, reads again.
    answer = read_jobs_page(caller, runner_id, project_id, page, size)
    if len(_pages) >= LISTING_CACHE_SIZE:
        _pages.clear()
    _pages[key] = (version, answer)
    return answer


def read_jobs_page(caller, runner_id, project_id, page, size):
    """(total, documents) of one page, newest first. A runner serves one project, so the
    project filter keeps all of its jobs or none.

    One statement checks ownership, reads the counters and the page: the runner's
    `job_count` gives `total`, and while no job has expired (`last_seq == job_count`)
    job seqs are 1..job_count, so any page is one index range, however deep.
    """
    skip = page * size
    rows = LISTING_PAGE.execute(
        workspace=caller.workspace, user=caller.user, runner_id=runner_id, skip=skip, page_end=skip + size
    ).fetchall()
    if not rows:
        raise failure(404, f"Runner not found: {runner_id}")
    runner_project, job_count, last_seq, _ = rows[0]
    if project_id is not None and Runner.project_id.python_value(runner_project) != project_id:
        return 0, []
    if last_seq == job_count:
        return job_count, [document for *_, document in rows if document is not None]
    # Expired jobs left gaps in the seqs: count past them.
    past_gaps = LISTING_PAGE_PAST_GAPS.execute(runner_id=runner_id, size=size, skip=skip)
    return job_count, [document for (document,) in past_gaps]


def list_filtered_jobs(caller, runner_id, project_id, page, size, statuses=(), agent_name=None):
    """(total, documents, counts) of one page of the jobs in `statuses` (all when empty) and of
    `agent_name` (any when None), newest first; `counts` maps each status to its number of jobs
    of the agent filter (for the console's tabs), whatever `statuses` says.

    Each status is one index search ((runner, status, seq), or (runner, agent_name, status,
    seq) with an agent), so a page costs its offset plus its size in index steps; the
    counts read the same index entries, no table rows."""
    runner_project, _, _ = require_runner(caller, runner_id)
    counts = dict.fromkeys(STATUSES, 0)
    if project_id is not None and Runner.project_id.python_value(runner_project) != project_id:
        return 0, [], counts
    by_agent = agent_name is not None
    values = {"runner_id": runner_id, **({"agent_name": agent_name} if by_agent else {})}
    for status in STATUSES:  # one count per status: an index range each, no table rows
        (counts[status],) = STATUS_COUNTS[by_agent].one(**values, status=status)
    wanted = tuple(dict.fromkeys(statuses)) or STATUSES
    total = sum(counts[status] for status in wanted)
    skip = page * size
    if skip >= total:
        return total, [], counts
    slots = {f"status_{i}": status for i, status in enumerate(wanted + (NO_STATUS,) * (STATUS_SLOTS - len(wanted)))}
    rows = FILTERED_PAGE[by_agent].execute(**values, **slots, size=size, skip=skip, page_end=skip + size)
    return total, [document for (document,) in rows], counts
