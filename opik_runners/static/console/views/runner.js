// A runner: its facts, its agents (run them), its bridge (runner-bridge.js) and its jobs (the
// listing: status tabs, agent filter, paging, all in the URL).
import { call, get, session } from "../api.js";
import { add, badge, duration, h, link, put, shortJson, when, withWorkspace } from "../dom.js";
import { agentForm } from "../forms.js";
import { page, showError } from "../shell.js";
import { bridgeSection } from "./runner-bridge.js";

const STATUSES = ["pending", "running", "completed", "failed", "cancelled"];

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

export async function runnerView(view, runnerId) {
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
        ran: jobId => view.navigate(withWorkspace(`/console/jobs/${jobId}`)),
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
  agentSelect.addEventListener("change", () => view.navigate(listingUrl(runnerId, { agent: agentSelect.value, page: 0 }), true));
  sizeSelect.addEventListener("change", () => view.navigate(listingUrl(runnerId, { size: +sizeSelect.value, page: 0 }), true));

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
        if (!event.target.closest("a")) view.navigate(withWorkspace(`/console/jobs/${row.dataset.job}`));
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
  view.refreshNow = () => drawJobs().catch(err => showError("Listing jobs", err));
  view.live(() => (active ? 2000 : 4000), async () => {
    runner = await get(`/local-runners/${runnerId}`);
    drawHeader(); drawAgents(); drawBridge();
    await drawJobs();
  });
}
