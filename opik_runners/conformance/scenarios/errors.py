"""The two error shapes, and what answers a body Opik cannot read
(docs/opik-behaviour.md#error-shapes, docs/opik-behaviour.md#validation-errors,
docs/opik-behaviour.md#media-types)."""
from ..scenario import scenario


@scenario("errors", "a constraint broken in a body is 422 {\"errors\": [...]}")
def validation(ctx):
    answer = ctx.api.call("POST", "v1/private/local-runners/jobs", {"inputs": {}})
    ctx.expect_status(answer, 422)
    errors = (answer.json or {}).get("errors")
    ctx.expect(isinstance(errors, list) and any("agent_name" in e for e in errors), "the errors",
               'a list naming agent_name ("agent_name must not be null")', errors, answer)


@scenario("errors", "a body that is not JSON is 400 \"Unable to process JSON\"")
def malformed_json(ctx):
    answer = ctx.api.call("POST", "v1/private/projects", raw=b"{oops", headers={"Content-Type": "application/json"})
    ctx.expect_message(answer, 400, prefix="Unable to process JSON")


@scenario("errors", "a body that is not application/json is 415", departure="departure-local-guard")
def media_type(ctx):
    answer = ctx.api.call("POST", "v1/private/projects", raw=b'{"name": "typed"}', headers={"Content-Type": "text/plain"})
    ctx.expect_message(answer, 415, **ctx.pick(opik={"message": "HTTP 415 Unsupported Media Type"},
                                               opik_runners={"prefix": "HTTP 415 Unsupported Media Type: "}))


@scenario("errors", "an unknown path is 404 {\"code\", \"message\"}")
def unknown_path(ctx):
    # docs/opik-behaviour.md#validation-errors: Jersey's NotFoundException, in Dropwizard's shape.
    ctx.expect_message(ctx.api.call("GET", "v1/private/local-runners-nowhere"), 404, "HTTP 404 Not Found")
