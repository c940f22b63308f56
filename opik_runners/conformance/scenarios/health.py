"""Health (docs/opik-behaviour.md#health) and the two path prefixes (docs/opik-behaviour.md#paths)."""
from ..scenario import scenario


@scenario("health", "the ping answers healthy", departure="departure-health")
def ping(ctx):
    answer = ctx.api.call("GET", "is-alive/ping")
    ctx.expect_status(answer, 200)
    body = answer.json or {}
    ctx.expect_equal("healthy", body.get("healthy"), True, answer)
    ctx.expect_equal("a message beside healthy", "message" in body, ctx.pick(opik=True, opik_runners=False), answer)


@scenario("health", "the version is answered")
def version(ctx):
    answer = ctx.api.call("GET", "is-alive/ver")
    ctx.expect_status(answer, 200)
    ctx.expect(isinstance((answer.json or {}).get("version"), str), "version", "a string", answer.text, answer)


@scenario("health", "every path is served at the root and under /api alike")
def both_prefixes(ctx):
    runner = ctx.runner()
    path = f"v1/private/local-runners/{runner.id}"
    # Both from the root, whether --url names /api or not (without it, the base is the root).
    under_api = ctx.api.call("GET", f"api/{path}", at_root=True)
    at_root = ctx.api.call("GET", path, at_root=True)
    ctx.expect_status(under_api, 200)
    ctx.expect_status(at_root, 200)
    ctx.expect_equal("the runner at the root", at_root.json, under_api.json, at_root)
