// The home page: the workspace's projects, a filter, and a form to create one.
import { call, get, session } from "../api.js";
import { h, link, put, when, withWorkspace } from "../dom.js";
import { page, showError } from "../shell.js";
import { connectCommands } from "./connect.js";

export async function projectsView(view) {
  const list = h("div", { class: "table-wrap" });
  const search = h("input", { id: "project-search", type: "search", placeholder: "Filter by name" });
  const newName = h("input", { id: "new-project", name: "name", required: true, autocomplete: "off" });
  const create = h("form", { class: "row", id: "create-project" },
    h("label", { for: "new-project" }, "New project"), newName, h("button", { type: "submit" }, "Create"));
  create.addEventListener("submit", async event => {
    event.preventDefault();
    if (!newName.value.trim()) return newName.focus();
    try {
      const made = await call("POST", "/projects", { body: { name: newName.value.trim() }, raw: true });
      view.navigate(withWorkspace(`/console/projects/${made.response.headers.get("Location").split("/").pop()}`));
    } catch (err) {
      showError(`Creating project ${newName.value.trim()}`, err);
    }
  });
  page("Projects",
    h("h1", {}, "Projects"),
    h("p", { class: "muted" }, "Projects of workspace ", h("strong", {}, session.workspace),
      ". Pick one to see its runners; ", h("code", {}, "opik endpoint"), " and ", h("code", {}, "opik connect"),
      " need their project to exist."),
    h("div", { class: "panel" }, create),
    h("div", { class: "row" }, h("label", { for: "project-search" }, "Filter"), search),
    list);
  let size = 100;
  const refresh = async () => {
    const found = await get("/projects", { query: { size, name: search.value.trim() } });
    if (!found.content.length && !search.value.trim()) {
      put(list, h("p", {}, "No projects in this workspace yet: create one above, then connect a runner to it."),
        connectCommands("my-project"));
      return;
    }
    put(list, h("table", {},
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Project"), h("th", { scope: "col" }, "Created"))),
      h("tbody", {}, found.content.map(project => h("tr", {},
        h("td", {}, link(`/console/projects/${project.id}`, project.name)),
        h("td", {}, when(project.created_at)))))),
    found.total > found.content.length ? h("p", { class: "muted" }, `${found.content.length} of ${found.total} shown: filter by name for the others.`) : null);
  };
  search.addEventListener("input", () => refresh().catch(err => showError("Listing projects", err)));
  view.live(5000, refresh);
}
