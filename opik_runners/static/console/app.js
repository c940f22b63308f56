// The console: one page, rendered from the URL (each runner, job and panel has its own),
// refreshed by polling the API while it is shown (paused while the tab is hidden).
//
// This module starts it: the server's config, the settings (workspace, key), the routes. The
// shell (shell.js) shows the view a route names; each view is a module of views/; dom.js has
// the DOM helpers, api.js the API client, forms.js the Run forms, bridge.js the signing.
import { session } from "./api.js";
import { createShell } from "./shell.js";
import { adminView } from "./views/admin.js";
import { jobView } from "./views/job.js";
import { projectView } from "./views/project.js";
import { projectsView } from "./views/projects.js";
import { runnerView } from "./views/runner.js";

const routes = [
  [/^\/(?:console\/?)?$/, projectsView],
  [/^\/console\/projects\/([0-9a-f-]{36})$/, projectView],
  [/^\/console\/runners\/([0-9a-f-]{36})$/, runnerView],
  [/^\/console\/jobs\/([0-9a-f-]{36})$/, jobView],
  [/^\/console\/admin(?:\/(journal|faults|clock|state))?$/, adminView],
];

// -- start: settings (workspace, key), then the page the URL names

async function start() {
  session.load();
  let config = { api_keys: false, admin: false, journal: false, version: "" };
  try {
    config = await (await fetch("/console/config.json")).json();
  } catch (_) { /* an older server: no admin link, no key field */ }
  document.getElementById("version").textContent = config.version ? `opik-runners ${config.version}` : "";
  document.getElementById("admin-link").hidden = !config.admin;
  document.getElementById("api-key-label").hidden = !config.api_keys;
  const shell = createShell(routes, config);
  const workspace = document.getElementById("workspace");
  const apiKey = document.getElementById("api-key");
  workspace.value = session.workspace;
  apiKey.value = session.apiKey;
  document.getElementById("settings").addEventListener("submit", event => {
    event.preventDefault();
    session.workspace = workspace.value.trim() || "default";
    session.apiKey = apiKey.value.trim();
    session.save();
    const url = new URL(location.href);
    if (session.workspace === "default") url.searchParams.delete("workspace");
    else url.searchParams.set("workspace", session.workspace);
    shell.navigate(url.pathname + url.search, true);
  });
  session.save();
  shell.render();
}

start();
