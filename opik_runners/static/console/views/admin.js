// The control plane (/_admin/): the request journal, fault rules, the clock, and the state
// (reset, export, import), one tab each.
import { del, get, post, session } from "../api.js";
import { add, h, json, link, put, when } from "../dom.js";
import { page, showError } from "../shell.js";

export async function adminView(view, tab = "journal") {
  if (!view.config.admin) {
    page("Control plane", h("h1", {}, "Control plane"), h("p", { class: "note" },
      "The control plane (/_admin/) is off on this server. It is on by default when no API keys are configured; ",
      "set OPIK_RUNNERS_ADMIN=on to serve it beside keys."));
    return;
  }
  const tabs = h("nav", { class: "tabs", "aria-label": "Control plane" }, [["journal", "Request journal"], ["faults", "Faults"], ["clock", "Clock"], ["state", "State and reset"]]
    .map(([name, text]) => link(`/console/admin/${name}`, text, { "aria-current": name === tab ? "page" : null })));
  const body = h("div");
  page("Control plane", h("h1", {}, "Control plane"), tabs, body);
  await { journal: journalPanel, faults: faultsPanel, clock: clockPanel, state: statePanel }[tab](view, body);
}

function journalPanel(view, body) {
  const q = new URLSearchParams(location.search);
  const filters = h("form", { class: "row", id: "journal-filters" },
    ...[["method", "Method", 6], ["path", "Path (glob)", 18], ["operation", "Operation", 12], ["status", "Status", 5]].map(([name, text, size]) =>
      h("label", {}, `${text} `, h("input", { name, size, value: q.get(name) || "" }))),
    h("label", { class: "switch" }, h("input", { type: "checkbox", role: "switch", id: "journal-live", checked: true }), "Live"),
    h("button", { type: "button", class: "danger", id: "journal-clear" }, "Clear the journal"));
  const table = h("div", { class: "table-wrap" });
  const detail = h("div", { id: "journal-detail" });
  add(body, view.config.journal ? null : h("p", { class: "note" }, "The journal is off (OPIK_RUNNERS_JOURNAL_SIZE=0)."),
    h("p", { class: "muted" }, "Every request to the Opik API, newest first (the console's own calls are left out)."),
    filters, detail, table);
  const pattern = () => Object.fromEntries(["method", "path", "operation", "status"].map(n => [n, filters.elements[n].value.trim()]));
  filters.addEventListener("input", () => view.refreshNow());
  filters.addEventListener("submit", event => event.preventDefault());
  document.getElementById("journal-clear").addEventListener("click", async () => {
    if (!confirm("Delete every journal entry?")) return;
    try { await del("/requests", { admin: true }); view.refreshNow(); } catch (err) { showError("Clearing the journal", err); }
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
  view.refreshNow = () => refresh().catch(err => showError("Reading the journal", err));
  view.live(2000, refresh);
}

function pretty(text) {
  if (text == null) return "(none)";
  try { return json(JSON.parse(text)); } catch (_) { return text; }
}

function faultsPanel(view, body) {
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
  view.live(3000, refresh);
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

function clockPanel(view, body) {
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
  view.live(5000, async () => show(await get("/clock", { admin: true })));
}

function statePanel(view, body) {
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
