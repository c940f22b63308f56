// A project: its runners, live, and how to connect another.
import { get } from "../api.js";
import { h, link, put, when } from "../dom.js";
import { page } from "../shell.js";
import { connectCommands } from "./connect.js";

export async function projectView(view, projectId) {
  const project = await get(`/projects/${projectId}`);
  const body = h("div");
  page(project.name,
    h("p", {}, link("/", "Projects"), " / ", project.name),
    h("h1", {}, `Runners of ${project.name}`),
    body);
  const refresh = async () => {
    const runners = await get("/local-runners", { query: { project_id: projectId, size: 100 } });
    if (!runners.content.length) {
      put(body, h("p", {}, "No runner has connected to this project yet."), connectCommands(project.name));
      return;
    }
    put(body, h("div", { class: "table-wrap" }, h("table", { id: "runners" },
      h("thead", {}, h("tr", {}, ["Status", "Name", "Type", "Connected", "Agents", "Capabilities"].map(c => h("th", { scope: "col" }, c)))),
      h("tbody", {}, runners.content.map(runner => h("tr", { dataset: { runner: runner.id } },
        h("td", {}, h("span", { class: `dot ${runner.status}`, "aria-hidden": "true" }), runner.status),
        h("td", {}, link(`/console/runners/${runner.id}`, runner.name || runner.id)),
        h("td", {}, runner.type),
        h("td", {}, when(runner.connected_at)),
        h("td", {}, (runner.agents || []).map(a => a.name).join(", ")),
        h("td", {}, (runner.capabilities || []).join(", "))))))),
    h("details", {}, h("summary", {}, "Connect another runner"), connectCommands(project.name)));
  };
  view.live(3000, refresh);
}
