// A job: facts, logs tailing live, cancel, retry, its trace.
import { call, get, post } from "../api.js";
import { add, badge, duration, h, json, link, put, when, withWorkspace } from "../dom.js";
import { page, showError } from "../shell.js";

const FINISHED = new Set(["completed", "failed", "cancelled"]);

export async function jobView(view, jobId) {
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
      view.navigate(withWorkspace(`/console/jobs/${created.response.headers.get("Location").split("/").pop()}`));
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
  view.live(() => (FINISHED.has(job.status) ? 10000 : 1000), refresh);
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
