// The console: one page, rendered from the URL (each runner, job and panel has its own),
// refreshed by polling the API while it is shown (paused while the tab is hidden).
import { ApiError, call, del, get, post, session } from "./api.js";
import { bridgeKey, resultVerified, signedArgs, storedKey } from "./bridge.js";
import { agentForm } from "./forms.js";

const STATUSES = ["pending", "running", "completed", "failed", "cancelled"];
const FINISHED = new Set(["completed", "failed", "cancelled"]);
const main = document.getElementById("main");
let config = { api_keys: false, admin: false, journal: false, version: "" };

// -- small DOM helpers (text always goes in as text, never as HTML)

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const present = children => children.flat(Infinity).filter(c => c !== null && c !== undefined && c !== false);
export const put = (node, ...children) => node.replaceChildren(...present(children));
const add = (node, ...children) => node.append(...present(children));
const link = (path, text, attrs = {}) => h("a", { href: withWorkspace(path), "data-nav": true, ...attrs }, text);
const badge = status => h("span", { class: `badge s-${status}` }, status);
const when = iso => (iso ? new Date(iso).toLocaleString() : "");
const json = value => JSON.stringify(value, null, 2);
const shortJson = value => (value === null || value === undefined ? "" : JSON.stringify(value));

function duration(from, to) {
  if (!from || !to) return "";
  const ms = new Date(to) - new Date(from);
  return ms < 1000 ? `${ms} ms` : ms < 60000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

function withWorkspace(path) {
  if (session.workspace === "default") return path;
  const url = new URL(path, location.origin);
  url.searchParams.set("workspace", session.workspace);
  return url.pathname + url.search;
}

// -- errors: the API's own message, never a bare "error"

export function showError(context, err) {
  const alerts = document.getElementById("alerts");
  const message = err instanceof ApiError
    ? `${context}: ${err.message}${err.status ? ` (HTTP ${err.status})` : ""}`
    : `${context}: ${err.message || err}`;
  if ([...alerts.children].some(node => node.dataset.message === message)) return;
  const close = h("button", { type: "button", "aria-label": "Dismiss" }, "×");
  const alert = h("div", { class: "alert", dataset: { message } }, h("span", {}, message), close);
  close.addEventListener("click", () => alert.remove());
  alerts.append(alert);
  if (err instanceof ApiError && err.status === 401 && config.api_keys) document.getElementById("api-key").focus();
}

const clearErrors = () => put(document.getElementById("alerts"));

// -- live refresh: one loop per view, stopped when the view changes

let view = 0;

function live(ms, refresh) {
  const mine = view;
  let timer = null;
  const tick = async () => {
    if (mine !== view) return;
    if (!document.hidden) {
      try {
        const next = await refresh();
        if (next === false) return; // the view has nothing left to follow
      } catch (err) {
        if (mine === view) showError("Refreshing", err);
      }
    }
    if (mine === view) timer = setTimeout(tick, typeof ms === "function" ? ms() : ms);
  };
  tick();
  return () => clearTimeout(timer);
}

document.addEventListener("visibilitychange", () => { if (!document.hidden) refreshNow(); });
let refreshNow = () => {};

// -- routing

const routes = [
  [/^\/(?:console\/?)?$/, projectsView],
  [/^\/console\/projects\/([0-9a-f-]{36})$/, projectView],
  [/^\/console\/runners\/([0-9a-f-]{36})$/, runnerView],
  [/^\/console\/jobs\/([0-9a-f-]{36})$/, jobView],
  [/^\/console\/admin(?:\/(journal|faults|clock|state))?$/, adminView],
];

export function navigate(path, replace = false) {
  history[replace ? "replaceState" : "pushState"](null, "", path);
  render();
}

document.addEventListener("click", event => {
  const anchor = event.target.closest("a[data-nav]");
  if (!anchor || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
  event.preventDefault();
  navigate(anchor.getAttribute("href"));
});
window.addEventListener("popstate", () => render());

async function render() {
  view += 1;
  refreshNow = () => {};
  clearErrors();
  const path = location.pathname;
  for (const anchor of document.querySelectorAll(".top nav a")) {
    const section = path.startsWith("/console/admin") ? "admin" : "projects";
    if (anchor.dataset.section === section) anchor.setAttribute("aria-current", "page");
    else anchor.removeAttribute("aria-current");
  }
  for (const [pattern, show] of routes) {
    const match = path.match(pattern);
    if (match) {
      put(main, h("p", { class: "muted" }, "Loading…"));
      try {
        await show(...match.slice(1));
      } catch (err) {
        put(main, h("h1", {}, "Something went wrong"), h("p", {}, err.message));
        showError("Loading the page", err);
      }
      return;
    }
  }
  document.title = "Not found · Opik runners";
  put(main, h("h1", {}, "No such page"), h("p", {}, link("/", "Back to the projects")));
}

function page(title, ...children) {
  document.title = `${title} · Opik runners`;
  put(main, ...children);
}

// -- the commands a person runs to connect a runner here

function connectCommands(projectName) {
  const api = `${location.origin}/api`;
  const env = [`export OPIK_URL_OVERRIDE=${api}`];
  if (session.workspace !== "default") env.push(`export OPIK_WORKSPACE=${session.workspace}`);
  const quoted = /^[\w.-]+$/.test(projectName) ? projectName : `'${projectName.replace(/'/g, "'\\''")}'`;
  const block = (label, text) => {
    const pre = h("pre", {}, text);
    const button = h("button", { type: "button", "aria-label": `Copy: ${label}` }, "Copy");
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(text);
        button.textContent = "Copied";
      } catch (_) {
        getSelection().selectAllChildren(pre); // no clipboard here (http, not localhost): selected to copy by hand
        button.textContent = "Selected";
      }
      setTimeout(() => { button.textContent = "Copy"; }, 1500);
    });
    return h("div", {}, h("h3", {}, label), h("div", { class: "copy" }, pre, button));
  };
  return h("div", { class: "panel", id: "connect-commands" },
    h("h2", {}, "Connect a runner"),
    h("p", {}, "Run one of these in the folder of your agent (", h("code", {}, "pip install opik"), "); the runner shows up here as soon as it connects."),
    block("An endpoint runner (runs your agents' jobs)", [...env, `opik endpoint --project ${quoted} -- python agent.py`].join("\n")),
    block("A connect runner (file and command bridge to this folder)", [...env, `opik connect --project ${quoted}`].join("\n")));
}

// -- projects

async function projectsView() {
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
      navigate(withWorkspace(`/console/projects/${made.response.headers.get("Location").split("/").pop()}`));
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
  live(5000, refresh);
}

async function projectView(projectId) {
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
  live(3000, refresh);
}

// -- a runner: its agents (run them), its jobs (the listing), its bridge

function listingState() {
  const q = new URLSearchParams(location.search);
  return {
    status: STATUSES.includes(q.get("status")) ? q.get("status") : "",
    agent: q.get("agent") || "",
    page: Math.max(0, parseInt(q.get("page") || "0", 10) || 0),
    size: [10, 25, 50, 100].includes(+q.get("size")) ? +q.get("size") : 25,
  };
}

function listingUrl(runnerId, change) {
  const state = { ...listingState(), ...change };
  const url = new URL(`/console/runners/${runnerId}`, location.origin);
  if (session.workspace !== "default") url.searchParams.set("workspace", session.workspace);
  if (state.status) url.searchParams.set("status", state.status);
  if (state.agent) url.searchParams.set("agent", state.agent);
  if (state.page) url.searchParams.set("page", state.page);
  if (state.size !== 25) url.searchParams.set("size", state.size);
  return url.pathname + url.search;
}

async function runnerView(runnerId) {
  let runner = await get(`/local-runners/${runnerId}`);
  const project = await get(`/projects/${runner.project_id}`).catch(() => ({ name: "project" }));
  const header = h("div", { class: "panel", id: "runner-facts" });
  const agents = h("div");
  const jobs = h("div");
  const bridgePanel = h("div");
  page(runner.name || "Runner",
    h("p", {}, link("/", "Projects"), " / ", link(`/console/projects/${runner.project_id}`, project.name), " / ", runner.name),
    h("h1", {}, `Runner ${runner.name}`), header, agents, bridgePanel, jobs);

  const drawHeader = () => put(header, h("dl", { class: "facts" },
    h("dt", {}, "Status"), h("dd", { id: "runner-status" }, h("span", { class: `dot ${runner.status}`, "aria-hidden": "true" }), runner.status),
    h("dt", {}, "Type"), h("dd", {}, runner.type),
    h("dt", {}, "Connected"), h("dd", {}, when(runner.connected_at) || "never"),
    h("dt", {}, "Agents"), h("dd", {}, (runner.agents || []).map(a => a.name).join(", ") || "none"),
    h("dt", {}, "Capabilities"), h("dd", {}, (runner.capabilities || []).join(", ") || "none"),
    h("dt", {}, "Id"), h("dd", {}, h("code", {}, runner.id))));

  let agentNames = "";
  const drawAgents = () => {
    const names = JSON.stringify(runner.agents || []);
    if (names === agentNames) return; // keep what the person typed in the forms
    agentNames = names;
    if (runner.type !== "endpoint") { put(agents); return; }
    if (!(runner.agents || []).length) {
      put(agents, h("h2", { id: "agents-title" }, "Agents"),
        h("p", { class: "muted" }, runner.status === "connected" ? "This runner has registered no agents." : "The runner is not connected: its agents show when it is."));
      return;
    }
    put(agents, h("h2", { id: "agents-title" }, "Run an agent"),
      h("div", { class: "grid" }, runner.agents.map(agent => agentForm(agent, {
        h,
        run: async body => {
          const created = await call("POST", "/local-runners/jobs", { body: { ...body, project_id: runner.project_id }, raw: true });
          return created.response.headers.get("Location").split("/").pop();
        },
        ran: jobId => navigate(withWorkspace(`/console/jobs/${jobId}`)),
        showError,
      }))));
  };

  const drawBridge = () => {
    if (runner.type !== "connect" || bridgePanel.childElementCount) return;
    add(bridgePanel, bridgeSection(runner));
  };

  const table = h("div", { class: "table-wrap" });
  const tabs = h("nav", { class: "tabs", "aria-label": "Job status" });
  const agentSelect = h("select", { id: "agent-filter" });
  const sizeSelect = h("select", { id: "page-size" }, [10, 25, 50, 100].map(n => h("option", { value: n }, n)));
  const pager = h("div", { class: "pager" });
  add(jobs, h("h2", { id: "jobs-title" }, "Jobs"), tabs,
    h("div", { class: "row" }, h("label", { for: "agent-filter" }, "Agent"), agentSelect,
      h("label", { for: "page-size" }, "Page size"), sizeSelect), table, pager);
  agentSelect.addEventListener("change", () => navigate(listingUrl(runnerId, { agent: agentSelect.value, page: 0 }), true));
  sizeSelect.addEventListener("change", () => navigate(listingUrl(runnerId, { size: +sizeSelect.value, page: 0 }), true));

  let active = false;
  const drawJobs = async () => {
    const state = listingState();
    const listing = await get(`/local-runners/${runnerId}/jobs`, {
      query: { page: state.page, size: state.size, status: state.status, agent_name: state.agent, counts: "true" },
    });
    const all = STATUSES.reduce((sum, s) => sum + listing.counts[s], 0);
    active = listing.counts.pending + listing.counts.running > 0;
    put(tabs, ...[["", `All (${all})`], ...STATUSES.map(s => [s, `${s[0].toUpperCase()}${s.slice(1)} (${listing.counts[s]})`])]
      .map(([status, text]) => link(listingUrl(runnerId, { status, page: 0 }), text,
        { "aria-current": state.status === status ? "page" : null, dataset: { status: status || "all" } })));
    const known = new Set([...(runner.agents || []).map(a => a.name), ...(state.agent ? [state.agent] : [])]);
    listing.content.forEach(job => known.add(job.agent_name));
    const options = ["", ...[...known].sort()];
    if (agentSelect.dataset.options !== options.join("\n")) {
      agentSelect.dataset.options = options.join("\n");
      put(agentSelect, ...options.map(name => h("option", { value: name }, name || "All agents")));
    }
    agentSelect.value = state.agent;
    sizeSelect.value = String(state.size);
    if (!listing.content.length) {
      put(table, h("p", { class: "muted", id: "no-jobs" }, listing.total ? "No jobs on this page." : "No jobs yet."));
    } else {
      put(table, h("table", { id: "jobs" },
        h("thead", {}, h("tr", {}, ["Status", "Agent", "Inputs", "Result or error", "Created", "Started", "Completed", "Duration"]
          .map((c, i) => h("th", { scope: "col", class: i >= 5 && i <= 6 ? "hide-narrow" : null }, c)))),
        h("tbody", {}, listing.content.map(job => h("tr", { class: "clickable", dataset: { job: job.id } },
          h("td", {}, link(`/console/jobs/${job.id}`, badge(job.status), { "aria-label": `Job ${job.id}: ${job.status}` })),
          h("td", {}, job.agent_name),
          h("td", { class: "short", title: shortJson(job.inputs) }, shortJson(job.inputs)),
          h("td", { class: "short", title: job.error || shortJson(job.result) }, job.error || shortJson(job.result)),
          h("td", {}, when(job.created_at)),
          h("td", { class: "hide-narrow" }, when(job.started_at)),
          h("td", { class: "hide-narrow" }, when(job.completed_at)),
          h("td", {}, duration(job.started_at, job.completed_at)))))));
      table.querySelectorAll("tr.clickable").forEach(row => row.addEventListener("click", event => {
        if (!event.target.closest("a")) navigate(withWorkspace(`/console/jobs/${row.dataset.job}`));
      }));
    }
    const pages = Math.max(1, Math.ceil(listing.total / state.size));
    put(pager, 
      state.page > 0 ? link(listingUrl(runnerId, { page: state.page - 1 }), "← Newer", { class: "button", id: "newer" }) : null,
      h("span", { id: "page-of" }, `Page ${state.page + 1} of ${pages} · ${listing.total} job${listing.total === 1 ? "" : "s"}`),
      state.page + 1 < pages ? link(listingUrl(runnerId, { page: state.page + 1 }), "Older →", { class: "button", id: "older" }) : null);
  };

  drawHeader(); drawAgents(); drawBridge();
  // Two requests a refresh: every 4 s while idle, every 2 s while jobs are pending or running
  // (at most one request a second).
  refreshNow = () => drawJobs().catch(err => showError("Listing jobs", err));
  live(() => (active ? 2000 : 4000), async () => {
    runner = await get(`/local-runners/${runnerId}`);
    drawHeader(); drawAgents(); drawBridge();
    await drawJobs();
  });
}

// -- bridge commands, signed in the browser

const COMMANDS = {
  ListFiles: [["path", "text", ""], ["pattern", "text", ""], ["depth", "number", "1"]],
  ReadFile: [["path", "text", "", true], ["offset", "number", ""], ["limit", "number", ""]],
  SearchFiles: [["pattern", "text", "", true], ["glob", "text", ""], ["path", "text", ""]],
  Exec: [["command", "text", "", true], ["timeout", "number", ""]],
};

function bridgeSection(runner) {
  const section = h("div", { class: "panel" }, h("h2", { id: "bridge-title" }, "Bridge commands"));
  const stored = storedKey(runner.id);
  if (!stored) {
    add(section, h("p", { class: "note", id: "no-bridge-key" },
      "This browser holds no key for this runner, so it cannot sign commands. Commands must be signed with the key ",
      "made when the runner was paired: open the pairing link that `opik connect` printed in this browser, and the ",
      "key is kept here."));
    return section;
  }
  if (!window.crypto || !crypto.subtle) {
    add(section, h("p", { class: "note" }, "This browser offers no WebCrypto on this address: open the console on localhost or over https to sign commands."));
    return section;
  }
  const type = h("select", { id: "bridge-type", name: "type" }, Object.keys(COMMANDS).map(t => h("option", { value: t }, t)));
  const fields = h("div");
  const results = h("div", { id: "bridge-results" });
  const drawFields = () => put(fields, ...COMMANDS[type.value].map(([name, kind, value, required]) =>
    h("label", { class: "field" }, h("span", { class: "label" }, name, required ? h("span", { class: "req", "aria-hidden": "true" }, " *") : null),
      h("input", { name, type: kind, value, required: required || null, "aria-required": required ? "true" : null, id: `bridge-${name}` }))));
  type.addEventListener("change", drawFields);
  drawFields();
  const form = h("form", { id: "bridge-form" },
    h("label", { class: "field" }, h("span", { class: "label" }, "Command"), type), fields,
    h("button", { class: "primary", type: "submit" }, "Send"));
  form.addEventListener("submit", async event => {
    event.preventDefault();
    const args = {};
    for (const [name, kind] of COMMANDS[type.value]) {
      const raw = form.elements[name].value.trim();
      if (raw === "") continue;
      args[name] = kind === "number" ? Number(raw) : raw;
    }
    const item = h("div", { class: "panel bridge-result" }, h("h3", {}, `${type.value} `, h("code", {}, shortJson(args))), h("p", { class: "muted" }, "Sending…"));
    results.prepend(item);
    try {
      const key = await bridgeKey(stored);
      const submitted = await post(`/local-runners/${runner.id}/bridge/commands`,
        { type: type.value, args: await signedArgs(key, type.value, args), timeout_seconds: 30 });
      item.lastChild.textContent = `Sent as ${submitted.command_id}; waiting for the runner…`;
      let command;
      for (;;) { // held up to 30 s a call; the runner answers whenever it does
        command = await get(`/local-runners/${runner.id}/bridge/commands/${submitted.command_id}`, { query: { wait: "true", timeout: 30 } });
        if (!["pending", "picked_up"].includes(command.status) || !item.isConnected) break;
      }
      const verified = await resultVerified(key, command);
      put(item, h("h3", {}, `${command.type} `, badge(command.status), " ", h("code", {}, shortJson(args))),
        verified === null ? null : h("p", { class: verified ? "ok-note" : "note" },
          verified ? "The result is signed with this runner's key." : "The result's signature does not match this runner's key."),
        command.error ? h("p", { class: "note" }, `${command.error.code}: ${command.error.message}`) : null,
        commandResult(command));
    } catch (err) {
      item.lastChild.textContent = "Not sent.";
      showError(`Sending ${type.value}`, err);
    }
  });
  add(section, h("p", { class: "muted" }, `Signed with the key this browser kept when it paired the runner (${when(stored.paired_at)}).`), form, results);
  return section;
}

function commandResult(command) {
  const result = { ...(command.result || {}) };
  delete result._hmac;
  if (typeof result.content === "string") return h("pre", { class: "bridge-output" }, result.content);
  if (Array.isArray(result.files)) return h("pre", { class: "bridge-output" }, result.files.join("\n"));
  if (typeof result.stdout === "string") {
    return h("div", {}, h("pre", { class: "bridge-output" }, result.stdout), result.stderr ? h("pre", {}, result.stderr) : null,
      h("p", { class: "muted" }, `exit code ${result.exit_code}`));
  }
  return h("pre", { class: "bridge-output" }, json(result));
}

// -- a job: facts, logs tailing live, cancel, retry, its trace

async function jobView(jobId) {
  let job = await get(`/local-runners/jobs/${jobId}`);
  const runner = await get(`/local-runners/${job.runner_id}`).catch(() => null);
  const project = await get(`/projects/${job.project_id}`).catch(() => ({ name: "project" }));
  const facts = h("div", { class: "panel", id: "job-facts" });
  const actions = h("div", { class: "row actions" });
  const output = h("div");
  const logBox = h("div", { class: "logs", id: "logs", tabindex: "0", role: "log", "aria-label": "Job logs" });
  const logNote = h("p", { class: "muted" });
  const trace = h("div");
  page(`Job ${job.agent_name}`,
    h("p", {}, link("/", "Projects"), " / ", link(`/console/projects/${job.project_id}`, project.name), " / ",
      runner ? link(`/console/runners/${job.runner_id}`, runner.name) : "runner", " / job"),
    h("h1", {}, `Job of ${job.agent_name} `, h("span", { id: "job-status" }, badge(job.status))),
    actions, facts, output,
    h("h2", {}, "Logs"), logBox, logNote, trace);

  const cancel = h("button", { type: "button", class: "danger", id: "cancel" }, "Cancel");
  const retry = h("button", { type: "button", id: "retry" }, "Retry");
  add(actions, cancel, retry);
  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try {
      await post(`/local-runners/jobs/${jobId}/cancel`);
      job = await get(`/local-runners/jobs/${jobId}`);
      draw();
    } catch (err) {
      showError("Cancelling the job", err);
      cancel.disabled = false;
    }
  });
  retry.addEventListener("click", async () => {
    retry.disabled = true;
    try {
      const body = { agent_name: job.agent_name, project_id: job.project_id, inputs: job.inputs };
      for (const name of ["prompt_masks", "blueprint_name", "metadata"]) if (job[name] != null) body[name] = job[name];
      const created = await call("POST", "/local-runners/jobs", { body, raw: true });
      navigate(withWorkspace(`/console/jobs/${created.response.headers.get("Location").split("/").pop()}`));
    } catch (err) {
      showError("Retrying the job", err);
      retry.disabled = false;
    }
  });

  const draw = () => {
    put(document.getElementById("job-status"), badge(job.status));
    cancel.disabled = FINISHED.has(job.status);
    cancel.title = FINISHED.has(job.status) ? "The job has finished" : "Cancel the job (it is marked cancelled at once)";
    put(facts, h("dl", { class: "facts" },
      h("dt", {}, "Agent"), h("dd", {}, job.agent_name),
      h("dt", {}, "Created"), h("dd", {}, when(job.created_at)),
      h("dt", {}, "Started"), h("dd", {}, when(job.started_at) || "not yet"),
      h("dt", {}, "Completed"), h("dd", {}, when(job.completed_at) || "not yet"),
      h("dt", {}, "Duration"), h("dd", {}, duration(job.started_at, job.completed_at) || "—"),
      h("dt", {}, "Timeout"), h("dd", {}, job.timeout ? `${job.timeout} s` : "none"),
      h("dt", {}, "Trace"), h("dd", {}, job.trace_id ? h("code", {}, job.trace_id) : "none"),
      h("dt", {}, "Id"), h("dd", {}, h("code", {}, job.id))));
    put(output, 
      h("h2", {}, "Inputs"), h("pre", { id: "inputs" }, json(job.inputs ?? {})),
      job.error ? [h("h2", {}, "Error"), h("pre", { id: "error", class: "note" }, job.error)] : null,
      job.result != null ? [h("h2", {}, "Result"), h("pre", { id: "result" }, json(job.result))] : null,
      job.prompt_masks ? [h("h2", {}, "Prompt masks"), h("pre", {}, json(job.prompt_masks))] : null,
      job.metadata ? [h("h2", {}, "Metadata"), h("pre", {}, json(job.metadata))] : null);
  };

  // Logs: read from the offset reached (entries already shown are not asked again); the box
  // follows the bottom unless the person has scrolled up.
  let offset = 0;
  const tail = async () => {
    const entries = await get(`/local-runners/jobs/${jobId}/logs`, { query: { offset } });
    if (!entries.length) return;
    const atBottom = logBox.scrollHeight - logBox.scrollTop - logBox.clientHeight < 24;
    offset += entries.length;
    logBox.append(...entries.map(entry => h("div", { class: entry.stream },
      h("span", { class: "stream" }, entry.stream === "stderr" ? "err" : "out"), entry.text)));
    if (atBottom) logBox.scrollTop = logBox.scrollHeight;
  };

  let traceShown = false;
  const drawTrace = async () => {
    if (!job.trace_id || traceShown) return;
    let found;
    try {
      found = await get(`/traces/${job.trace_id}`);
    } catch (err) {
      if (err.status === 404) return; // not (yet) in the trace sink
      throw err;
    }
    const spans = await get("/spans", { query: { trace_id: job.trace_id, size: 1000 } });
    traceShown = true;
    put(trace, h("h2", { id: "trace-title" }, "Trace"), h("div", { class: "spans panel", id: "spans" }, spanTree(found, spans.content)));
  };

  draw();
  const refresh = async () => {
    job = await get(`/local-runners/jobs/${jobId}`);
    draw();
    await tail();
    logNote.textContent = offset ? "" : FINISHED.has(job.status) ? "This job wrote no logs." : "No logs yet.";
    await drawTrace();
    // Once finished: one last read of the logs and the trace a moment later, then idle checks.
    return true;
  };
  // Two or three requests a refresh: every second while the job runs (its logs tail), every
  // 10 s once it has finished (a late trace still shows).
  live(() => (FINISHED.has(job.status) ? 10000 : 1000), refresh);
}

function spanTree(traceDoc, spans) {
  const children = new Map();
  for (const span of spans) {
    const parent = span.parent_span_id || "";
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(span);
  }
  for (const list of children.values()) list.sort((a, b) => (a.start_time || "").localeCompare(b.start_time || ""));
  const node = item => h("li", {},
    h("details", {}, h("summary", {}, h("strong", {}, item.name || item.id), " ", h("span", { class: "muted" }, duration(item.start_time, item.end_time))),
      item.input !== undefined ? [h("div", { class: "muted" }, "Input"), h("pre", {}, json(item.input))] : null,
      item.output !== undefined ? [h("div", { class: "muted" }, "Output"), h("pre", {}, json(item.output))] : null),
    (children.get(item.id) || []).length ? h("ul", {}, children.get(item.id).map(node)) : null);
  return h("ul", {}, h("li", {},
    h("details", { open: true }, h("summary", {}, h("strong", {}, traceDoc.name || "trace"), " ", h("span", { class: "muted" }, duration(traceDoc.start_time, traceDoc.end_time))),
      traceDoc.input !== undefined ? [h("div", { class: "muted" }, "Input"), h("pre", {}, json(traceDoc.input))] : null,
      traceDoc.output !== undefined ? [h("div", { class: "muted" }, "Output"), h("pre", {}, json(traceDoc.output))] : null),
    h("ul", {}, (children.get("") || []).map(node))));
}

// -- the control plane

async function adminView(tab = "journal") {
  if (!config.admin) {
    page("Control plane", h("h1", {}, "Control plane"), h("p", { class: "note" },
      "The control plane (/_admin/) is off on this server. It is on by default when no API keys are configured; ",
      "set OPIK_RUNNERS_ADMIN=on to serve it beside keys."));
    return;
  }
  const tabs = h("nav", { class: "tabs", "aria-label": "Control plane" }, [["journal", "Request journal"], ["faults", "Faults"], ["clock", "Clock"], ["state", "State and reset"]]
    .map(([name, text]) => link(`/console/admin/${name}`, text, { "aria-current": name === tab ? "page" : null })));
  const body = h("div");
  page("Control plane", h("h1", {}, "Control plane"), tabs, body);
  await { journal: journalPanel, faults: faultsPanel, clock: clockPanel, state: statePanel }[tab](body);
}

function journalPanel(body) {
  const q = new URLSearchParams(location.search);
  const filters = h("form", { class: "row", id: "journal-filters" },
    ...[["method", "Method", 6], ["path", "Path (glob)", 18], ["operation", "Operation", 12], ["status", "Status", 5]].map(([name, text, size]) =>
      h("label", {}, `${text} `, h("input", { name, size, value: q.get(name) || "" }))),
    h("label", { class: "switch" }, h("input", { type: "checkbox", role: "switch", id: "journal-live", checked: true }), "Live"),
    h("button", { type: "button", class: "danger", id: "journal-clear" }, "Clear the journal"));
  const table = h("div", { class: "table-wrap" });
  const detail = h("div", { id: "journal-detail" });
  add(body, config.journal ? null : h("p", { class: "note" }, "The journal is off (OPIK_RUNNERS_JOURNAL_SIZE=0)."),
    h("p", { class: "muted" }, "Every request to the Opik API, newest first (the console's own calls are left out)."),
    filters, detail, table);
  const pattern = () => Object.fromEntries(["method", "path", "operation", "status"].map(n => [n, filters.elements[n].value.trim()]));
  filters.addEventListener("input", () => refreshNow());
  filters.addEventListener("submit", event => event.preventDefault());
  document.getElementById("journal-clear").addEventListener("click", async () => {
    if (!confirm("Delete every journal entry?")) return;
    try { await del("/requests", { admin: true }); refreshNow(); } catch (err) { showError("Clearing the journal", err); }
  });
  let entries = [];
  const showEntry = entry => put(detail, h("div", { class: "panel" },
    h("div", { class: "row" }, h("h2", {}, `#${entry.id} ${entry.method} ${entry.path}`),
      h("button", { type: "button", onclick: () => put(detail) }, "Close")),
    h("dl", { class: "facts" },
      h("dt", {}, "Time"), h("dd", {}, when(entry.time)), h("dt", {}, "Status"), h("dd", {}, entry.status ?? "dropped"),
      h("dt", {}, "Operation"), h("dd", {}, entry.operation || ""), h("dt", {}, "Workspace"), h("dd", {}, entry.workspace),
      h("dt", {}, "Duration"), h("dd", {}, `${entry.duration_ms} ms`), h("dt", {}, "Query"), h("dd", {}, entry.query || ""),
      entry.fault ? [h("dt", {}, "Fault rule"), h("dd", {}, entry.fault)] : null),
    entry.notes.length ? [h("h3", {}, "Notes"), h("ul", { id: "journal-notes" }, entry.notes.map(n => h("li", {}, n)))] : null,
    h("h3", {}, "Headers"), h("pre", {}, json(entry.headers)),
    h("h3", {}, "Request body"), h("pre", {}, pretty(entry.request_body)),
    h("h3", {}, "Response body"), h("pre", {}, pretty(entry.response_body))));
  const refresh = async () => {
    if (!document.getElementById("journal-live")?.checked && entries.length) return;
    const found = await get("/requests", { admin: true, query: { ...pattern(), limit: 100 } });
    entries = found.requests;
    if (!entries.length) {
      put(table, h("p", { class: "muted", id: "journal-empty" }, found.meta.total ? "Nothing matches these filters." : "No requests yet: the journal fills as clients call the API."));
      return;
    }
    put(table, h("p", { class: "muted" }, `${found.meta.total} entries match; the newest ${entries.length} shown.`),
      h("table", { id: "journal" },
        h("thead", {}, h("tr", {}, ["#", "Time", "Method", "Path", "Status", "Operation", "ms", "Notes"].map(c => h("th", { scope: "col" }, c)))),
        h("tbody", {}, entries.map(entry => h("tr", { class: "clickable", dataset: { entry: entry.id } },
          h("td", {}, h("button", { type: "button", class: "linkish", "aria-label": `Show request ${entry.id}` }, entry.id)),
          h("td", {}, new Date(entry.time).toLocaleTimeString()),
          h("td", {}, entry.method), h("td", { class: "short", title: entry.path }, entry.path),
          h("td", {}, entry.status ?? "dropped"), h("td", {}, entry.operation || ""),
          h("td", {}, Math.round(entry.duration_ms * 10) / 10), h("td", {}, entry.notes.length || ""))))));
    table.querySelectorAll("tr.clickable").forEach(row => row.addEventListener("click", () => {
      showEntry(entries.find(e => String(e.id) === row.dataset.entry));
    }));
  };
  refreshNow = () => refresh().catch(err => showError("Reading the journal", err));
  live(2000, refresh);
}

function pretty(text) {
  if (text == null) return "(none)";
  try { return json(JSON.parse(text)); } catch (_) { return text; }
}

function faultsPanel(body) {
  const list = h("div", { id: "fault-list" });
  const input = (name, text, attrs = {}) => h("label", { class: "field" }, h("span", { class: "label" }, text), h("input", { name, id: `fault-${name}`, ...attrs }));
  const form = h("form", { class: "panel", id: "fault-form" }, h("h2", {}, "Add a fault rule"),
    h("p", { class: "muted" }, "Matches requests to the Opik API by method, path (glob) and operation; answers with a status, delays, holds a poll or drops the connection."),
    h("div", { class: "grid" },
      input("method", "Method", { placeholder: "any" }), input("path", "Path (glob)", { placeholder: "*/heartbeats" }),
      input("operation", "Operation", { placeholder: "e.g. next_job" }), input("status", "Answer with status", { type: "number", min: 100, max: 599 }),
      input("delay_ms", "Delay (ms)", { type: "number", min: 0 }), input("hold_ms", "Hold a poll (ms)", { type: "number", min: 0 }),
      input("probability", "Probability (0-1)", { type: "number", min: 0, max: 1, step: "any", value: "1" }),
      input("seed", "Seed", { type: "number", min: 0 }), input("times", "Times", { type: "number", min: 1 })),
    h("label", { class: "switch" }, h("input", { type: "checkbox", role: "switch", name: "drop", id: "fault-drop" }), "Drop the connection"),
    h("label", { class: "field" }, h("span", { class: "label" }, "Body (JSON, optional)"), h("textarea", { name: "body", id: "fault-body", rows: 3 })),
    h("button", { class: "primary", type: "submit" }, "Add the rule"));
  form.addEventListener("submit", async event => {
    event.preventDefault();
    const rule = {};
    for (const name of ["method", "path", "operation"]) if (form.elements[name].value.trim()) rule[name] = form.elements[name].value.trim();
    for (const name of ["status", "delay_ms", "hold_ms", "seed", "times"]) if (form.elements[name].value !== "") rule[name] = Number(form.elements[name].value);
    if (form.elements.probability.value !== "") rule.probability = Number(form.elements.probability.value);
    if (form.elements.drop.checked) rule.drop = true;
    if (form.elements.body.value.trim()) {
      try { rule.body = JSON.parse(form.elements.body.value); } catch (err) { return showError("The body is not JSON", err); }
    }
    try { await post("/faults", rule, { admin: true }); form.reset(); await refresh(); } catch (err) { showError("Adding the rule", err); }
  });
  const clear = h("button", { type: "button", class: "danger", id: "faults-clear" }, "Remove every rule");
  clear.addEventListener("click", async () => {
    try { await del("/faults", { admin: true }); await refresh(); } catch (err) { showError("Removing the rules", err); }
  });
  add(body, list, clear, form);
  const refresh = async () => {
    const { faults } = await get("/faults", { admin: true });
    put(list, !faults.length ? h("p", { class: "muted" }, "No fault rules: every request is answered normally.") :
      h("div", { class: "table-wrap" }, h("table", { id: "faults" },
        h("thead", {}, h("tr", {}, ["#", "Rule", "Matched", "Fired", ""].map(c => h("th", { scope: "col" }, c)))),
        h("tbody", {}, faults.map(fault => h("tr", {},
          h("td", {}, fault.id), h("td", {}, describeRule(fault)),
          h("td", {}, fault.matched ?? ""), h("td", {}, fault.fired ?? ""),
          h("td", {}, h("button", { type: "button", "aria-label": `Remove rule ${fault.id}`, onclick: async () => {
            try { await del(`/faults/${fault.id}`, { admin: true }); await refresh(); } catch (err) { showError("Removing the rule", err); }
          } }, "Remove"))))))));
  };
  live(3000, refresh);
}

// "POST */heartbeats (next_job) → 503, 2 times, p=0.5": what a rule matches and does.
function describeRule(rule) {
  const match = [rule.method, rule.path, rule.operation && `(${rule.operation})`, rule.workspace && `in ${rule.workspace}`]
    .filter(Boolean).join(" ") || "every request";
  const effects = [rule.status && `answers ${rule.status}`, rule.delay_ms && `delays ${rule.delay_ms} ms`,
    rule.hold_ms != null && `holds ${rule.hold_ms} ms`, rule.drop && "drops the connection"].filter(Boolean);
  const odds = [rule.times && `${rule.times} time${rule.times === 1 ? "" : "s"}`, rule.probability < 1 && `p=${rule.probability}`,
    rule.seed != null && `seed ${rule.seed}`, !rule.active && "retired"].filter(Boolean);
  return `${match} → ${effects.join(", ") || "nothing"}${odds.length ? ` (${odds.join(", ")})` : ""}`;
}

function clockPanel(body) {
  const now = h("dl", { class: "facts", id: "clock" });
  const form = h("form", { class: "row", id: "clock-form" },
    h("label", { for: "advance" }, "Advance by (seconds)"), h("input", { id: "advance", name: "advance", type: "number", min: 0, step: "any", value: "15" }),
    h("button", { class: "primary", type: "submit" }, "Advance"),
    h("button", { type: "button", id: "clock-reset" }, "Back to real time"));
  add(body, h("div", { class: "panel" }, h("p", { class: "muted" },
    "The server's clock: heartbeats lapse, jobs time out and sessions expire by it. Advancing it runs what has come due at once."), now, form));
  const show = clock => put(now, h("dt", {}, "Server time"), h("dd", {}, when(clock.now)),
    h("dt", {}, "Ahead of real time"), h("dd", { id: "clock-offset" }, `${clock.offset_s} s`));
  form.addEventListener("submit", async event => {
    event.preventDefault();
    try { show(await post("/clock", { advance_s: Number(form.elements.advance.value) }, { admin: true })); } catch (err) { showError("Advancing the clock", err); }
  });
  document.getElementById("clock-reset").addEventListener("click", async () => {
    try { show(await del("/clock", { admin: true })); } catch (err) { showError("Resetting the clock", err); }
  });
  live(5000, async () => show(await get("/clock", { admin: true })));
}

function statePanel(body) {
  const scope = h("select", { id: "state-scope" }, h("option", { value: "" }, "Everything"), h("option", { value: "workspace" }, `Workspace ${session.workspace} only`));
  const reset = h("button", { type: "button", class: "danger", id: "reset" }, "Reset");
  const exportButton = h("button", { type: "button", id: "export" }, "Export as JSON");
  const file = h("input", { type: "file", id: "import-file", accept: "application/json,.json" });
  const text = h("textarea", { id: "import-text", rows: 6, placeholder: '{"version": 1, "runners": [...], "jobs": [...]}' });
  const load = h("button", { type: "button", class: "primary", id: "import" }, "Load");
  const outcome = h("p", { role: "status", id: "state-outcome" });
  const workspaceQuery = () => (scope.value ? { workspace: session.workspace } : {});
  add(body, h("div", { class: "panel" }, h("h2", {}, "Reset, export, import"),
    h("div", { class: "row" }, h("label", { for: "state-scope" }, "Applies to"), scope),
    h("p", { class: "muted" }, "Reset deletes every runner, job, log, bridge command, pairing session, project and trace (and, for everything, the journal, the fault rules and the clock)."),
    h("div", { class: "row" }, reset, exportButton), outcome,
    h("h3", {}, "Load a state document"), h("label", { for: "import-file" }, "From a file "), file,
    h("label", { class: "field" }, h("span", { class: "label" }, "Or paste it"), text), load));
  reset.addEventListener("click", async () => {
    if (!confirm(scope.value ? `Delete everything in workspace ${session.workspace}?` : "Delete everything this server holds?")) return;
    try { await post("/reset", undefined, { admin: true, query: workspaceQuery() }); outcome.textContent = "Reset done."; } catch (err) { showError("Resetting", err); }
  });
  exportButton.addEventListener("click", async () => {
    try {
      const document_ = await get("/state", { admin: true, query: workspaceQuery() });
      const url = URL.createObjectURL(new Blob([json(document_)], { type: "application/json" }));
      const a = h("a", { href: url, download: `opik-runners-state-${new Date().toISOString().slice(0, 19)}.json` });
      add(document.body, a); a.click(); a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      outcome.textContent = "Exported.";
    } catch (err) { showError("Exporting", err); }
  });
  file.addEventListener("change", async () => { if (file.files[0]) text.value = await file.files[0].text(); });
  load.addEventListener("click", async () => {
    try {
      const answer = await post("/state", text.value, { admin: true });
      outcome.textContent = `Loaded: ${Object.entries(answer.loaded).map(([k, v]) => `${v} ${k.replace(/_/g, " ")}`).join(", ")}.`;
    } catch (err) { showError("Loading the document", err); }
  });
}

// -- start: settings (workspace, key), then the page the URL names

async function start() {
  session.load();
  try {
    config = await (await fetch("/console/config.json")).json();
  } catch (_) { /* an older server: no admin link, no key field */ }
  document.getElementById("version").textContent = config.version ? `opik-runners ${config.version}` : "";
  document.getElementById("admin-link").hidden = !config.admin;
  document.getElementById("api-key-label").hidden = !config.api_keys;
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
    navigate(url.pathname + url.search, true);
  });
  session.save();
  render();
}

start();
