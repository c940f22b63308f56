"""The jobs listing: newest first, pages, totals, the project filter, bad parameters, and this
server's filters (docs/opik-behaviour.md#job-listing, docs/opik-behaviour.md#departure-listing-filters)."""
import uuid

from ...protocol import JobStatus
from ..scenario import scenario


def listed(ctx, runner, query=""):
    return ctx.api.call("GET", f"v1/private/local-runners/{runner.id}/jobs{query}")


@scenario("listing", "a runner's jobs are listed newest first, in pages, with their total")
def newest_first_in_pages(ctx):
    runner = ctx.runner()
    made = [ctx.create_job(runner, inputs={"question": f"q{i}"}) for i in range(5)]
    answer = listed(ctx, runner)
    if ctx.expect_status(answer, 200):
        page = answer.json
        ctx.expect_equal("the page's frame", {k: page.get(k) for k in ("page", "size", "total")},
                         {"page": 0, "size": 25, "total": 5}, answer)
        ctx.expect_equal("the jobs, newest first", [j.get("id") for j in page.get("content", [])], made[::-1], answer)
    pages = []
    for number in range(4):
        answer = listed(ctx, runner, f"?page={number}&size=2")
        pages.append([j.get("id") for j in (answer.json or {}).get("content", [])])
        ctx.expect_equal(f"page {number}'s total", (answer.json or {}).get("total"), 5, answer)
    ctx.expect_equal("pages of 2", pages, [made[4:2:-1], made[2:0:-1], made[0:1], []])


@scenario("listing", "the project filter keeps a runner's jobs or none")
def project_filter(ctx):
    runner = ctx.runner()
    ctx.create_job(runner)
    own = listed(ctx, runner, f"?project_id={runner.project_id}")
    ctx.expect_equal("jobs of the runner's project", (own.json or {}).get("total"), 1, own)
    other = listed(ctx, runner, f"?project_id={uuid.uuid4()}")
    ctx.expect_equal("jobs of another project", ((other.json or {}).get("total"), (other.json or {}).get("content")),
                     (0, []), other)


@scenario("listing", "bad paging parameters are 400, an unknown runner 404")
def bad_parameters(ctx):
    runner = ctx.runner()
    # docs/opik-behaviour.md#validation-errors: 400 in the errors shape; the wording is Dropwizard's, unchecked.
    ctx.expect_errors(listed(ctx, runner, "?page=-1"), 400)
    ctx.expect_errors(listed(ctx, runner, "?size=0"), 400)
    ctx.expect_status(listed(ctx, runner, "?project_id=not-a-uuid"), 404, "a project_id that is not a UUID")
    unknown = str(uuid.uuid4())
    ctx.expect_message(ctx.api.call("GET", f"v1/private/local-runners/{unknown}/jobs"), 404,
                       f"Runner not found: {unknown}")


@scenario("listing", "a status parameter filters the listing", departure="departure-listing-filters")
def status_filter(ctx):
    runner = ctx.runner()
    done, waiting = ctx.create_job(runner), ctx.create_job(runner)
    ctx.claim(runner)
    ctx.api.call("POST", f"v1/private/local-runners/jobs/{done}/results", {"status": "completed", "result": {}})
    answer = listed(ctx, runner, f"?status={JobStatus.COMPLETED}")
    # Opik ignores the parameter: every job is listed.
    ctx.expect_equal("the jobs listed", [j.get("id") for j in (answer.json or {}).get("content", [])],
                     ctx.pick(opik=[waiting, done], opik_runners=[done]), answer)
