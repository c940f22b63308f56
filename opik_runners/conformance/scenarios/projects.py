"""The project calls the CLI makes, and the search the UI's picker uses (docs/opik-behaviour.md#projects)."""
import uuid

from ..scenario import scenario


@scenario("projects", "a project is created, retrieved by name and read by id")
def create_and_retrieve(ctx):
    name = ctx.unique("project")
    made = ctx.api.call("POST", "v1/private/projects", {"name": name})
    ctx.expect_status(made, 201)
    found = ctx.api.call("POST", "v1/private/projects/retrieve", {"name": name})
    if not ctx.expect_status(found, 200):
        return
    project = found.json
    ctx.expect_equal("the project's name", project.get("name"), name, found)
    ctx.expect_time("the project's created_at", project.get("created_at"), found)
    location = made.headers.get("Location", "")
    ctx.expect(location.endswith(f"/v1/private/projects/{project.get('id')}"), "the Location header",
               f".../v1/private/projects/{project.get('id')}", location, made)
    read = ctx.api.call("GET", f"v1/private/projects/{project.get('id')}")
    ctx.expect_status(read, 200)
    ctx.expect_equal("the project read by id", (read.json or {}).get("name"), name, read)


@scenario("projects", "an unknown project is 404 and a second one of a name is 409")
def missing_and_duplicate(ctx):
    missing = ctx.api.call("POST", "v1/private/projects/retrieve", {"name": ctx.unique("nowhere")})
    ctx.expect_errors(missing, 404, "Project not found")
    name, _ = ctx.project()
    again = ctx.api.call("POST", "v1/private/projects", {"name": name})
    ctx.expect_errors(again, 409, "Project already exists")
    unknown = ctx.api.call("GET", f"v1/private/projects/{uuid.uuid4()}")
    ctx.expect_errors(unknown, 404, "Project not found")


@scenario("projects", "the search finds a project by part of its name", departure="departure-project-search")
def search(ctx):
    name, project_id = ctx.project("searched")
    answer = ctx.api.call("GET", f"v1/private/projects?name={name}&size=10")
    if not ctx.expect_status(answer, 200):
        return
    page = answer.json or {}
    ctx.expect_equal("total", page.get("total"), 1, answer)
    ctx.expect_equal("the project found", [p.get("id") for p in page.get("content", [])], [project_id], answer)
    # Opik's size is the number of projects on the page, and it lists what the page can sort by.
    ctx.expect_equal("size", page.get("size"), ctx.pick(opik=1, opik_runners=10), answer)
    ctx.expect_equal("sortable_by is listed", bool(page.get("sortable_by")), ctx.pick(opik=True, opik_runners=False),
                     answer)
