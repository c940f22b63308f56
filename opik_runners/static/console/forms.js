// A Run form built from an agent's params (docs/opik-behaviour.md#cli-agents: string, integer, float,
// boolean, prompt, prompt_commit from the CLI; dict, list and json from other clients). Each
// value is checked as it is typed; Run (or Ctrl/Cmd+Enter) sends only what parses.

const JSON_TYPES = { dict: "object", object: "object", list: "array", array: "array", json: "any" };
let formCount = 0;

function kindOf(type) {
  const t = (type || "string").toLowerCase();
  if (t === "integer" || t === "int") return "integer";
  if (t === "float" || t === "number" || t === "double") return "float";
  if (t === "boolean" || t === "bool") return "boolean";
  if (t in JSON_TYPES) return "json";
  return "string";
}

// The value of one field, or {problem} when it does not parse. `undefined`: left out.
function readField(param, input) {
  const kind = kindOf(param.type);
  if (kind === "boolean") return { value: input.checked };
  const raw = input.value;
  if (raw.trim() === "") {
    return param.presence === "required" ? { problem: "Required." } : { value: undefined };
  }
  if (kind === "integer") {
    return /^[+-]?\d+$/.test(raw.trim()) && Number.isSafeInteger(Number(raw)) ? { value: Number(raw) } : { problem: "A whole number, such as 3." };
  }
  if (kind === "float") {
    const number = Number(raw);
    return raw.trim() !== "" && Number.isFinite(number) ? { value: number } : { problem: "A number, such as 0.5." };
  }
  if (kind === "json") {
    let value;
    try {
      value = JSON.parse(raw);
    } catch (err) {
      return { problem: `Not JSON: ${err.message}` };
    }
    const want = JSON_TYPES[(param.type || "").toLowerCase()];
    if (want === "object" && (value === null || typeof value !== "object" || Array.isArray(value))) return { problem: "A JSON object, such as {\"k\": 1}." };
    if (want === "array" && !Array.isArray(value)) return { problem: "A JSON list, such as [1, 2]." };
    return { value };
  }
  return { value: raw };
}

function readJsonObject(textarea, what) {
  if (!textarea.value.trim()) return { value: undefined };
  try {
    const value = JSON.parse(textarea.value);
    if (value === null || typeof value !== "object" || Array.isArray(value)) return { problem: `${what} must be a JSON object.` };
    return { value };
  } catch (err) {
    return { problem: `${what} is not JSON: ${err.message}` };
  }
}

export function agentForm(agent, { h, run, ran, showError }) {
  const id = `agent-${++formCount}`;
  const params = agent.params || [];
  const rows = params.map((param, i) => {
    const kind = kindOf(param.type);
    const inputId = `${id}-p${i}`;
    const required = param.presence === "required";
    const problem = h("span", { class: "problem", id: `${inputId}-problem`, "aria-live": "polite" });
    let input;
    if (kind === "boolean") {
      input = h("input", { type: "checkbox", role: "switch", id: inputId, name: param.name, "aria-describedby": `${inputId}-problem` });
      return { param, input, problem, node: h("div", { class: "field" },
        h("label", { class: "switch", for: inputId }, input, h("span", { class: "label" }, param.name), h("span", { class: "hint" }, "boolean")), problem) };
    }
    if (kind === "json") {
      input = h("textarea", { id: inputId, name: param.name, rows: 3, spellcheck: "false", "aria-describedby": `${inputId}-hint ${inputId}-problem`,
        "aria-required": required ? "true" : null, placeholder: JSON_TYPES[param.type.toLowerCase()] === "array" ? "[]" : "{}" });
    } else {
      input = h("input", { id: inputId, name: param.name, type: "text", inputmode: kind === "string" ? null : "decimal",
        "aria-describedby": `${inputId}-hint ${inputId}-problem`, "aria-required": required ? "true" : null, autocomplete: "off" });
    }
    return { param, input, problem, node: h("div", { class: "field" },
      h("label", { for: inputId }, h("span", { class: "label" }, param.name),
        required ? h("span", { class: "req", title: "required" }, " * ", h("span", { class: "sr-only" }, "(required)")) : null),
      input, h("span", { class: "hint", id: `${inputId}-hint` }, kind === "json" ? `${param.type} (JSON)` : param.type || "string"), problem) };
  });
  const masks = h("textarea", { id: `${id}-masks`, rows: 2, spellcheck: "false", placeholder: '{"<prompt id>": "<mask id>"}' });
  const metadata = h("textarea", { id: `${id}-metadata`, rows: 2, spellcheck: "false", placeholder: '{"dataset_id": "…"}' });
  const extrasProblem = h("span", { class: "problem", "aria-live": "polite" });
  const button = h("button", { class: "primary", type: "submit" }, "Run");
  const form = h("form", { class: "panel agent-form", "aria-labelledby": `${id}-title`, dataset: { agent: agent.name }, novalidate: true },
    h("h3", { id: `${id}-title` }, agent.name),
    agent.description ? h("p", { class: "muted" }, agent.description) : null,
    params.length ? null : h("p", { class: "muted" }, "No parameters."),
    rows.map(row => row.node),
    h("details", {}, h("summary", {}, "Prompt masks and metadata"),
      h("label", { class: "field", for: `${id}-masks` }, h("span", { class: "label" }, "Prompt masks (JSON object)")), masks,
      h("label", { class: "field", for: `${id}-metadata` }, h("span", { class: "label" }, "Metadata (JSON object)")), metadata),
    extrasProblem,
    h("div", { class: "row" }, button, h("span", { class: "hint" }, "Ctrl/⌘ + Enter")));

  const check = () => {
    let ok = true;
    const inputs = {};
    for (const row of rows) {
      const read = readField(row.param, row.input);
      row.problem.textContent = read.problem || "";
      row.input.setAttribute("aria-invalid", read.problem ? "true" : "false");
      if (read.problem) ok = false;
      else if (read.value !== undefined) inputs[row.param.name] = read.value;
    }
    const maskRead = readJsonObject(masks, "Prompt masks");
    const metaRead = readJsonObject(metadata, "Metadata");
    extrasProblem.textContent = [maskRead.problem, metaRead.problem].filter(Boolean).join(" ");
    if (maskRead.problem || metaRead.problem) ok = false;
    return ok ? { agent_name: agent.name, inputs, ...(maskRead.value ? { prompt_masks: maskRead.value } : {}), ...(metaRead.value ? { metadata: metaRead.value } : {}) } : null;
  };
  form.addEventListener("input", () => { if (form.dataset.tried) check(); });
  form.addEventListener("keydown", event => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("submit", async event => {
    event.preventDefault();
    form.dataset.tried = "1";
    const body = check();
    if (!body) {
      form.querySelector('[aria-invalid="true"]')?.focus();
      return;
    }
    button.disabled = true;
    try {
      ran(await run(body));
    } catch (err) {
      showError(`Running ${agent.name}`, err);
    } finally {
      button.disabled = false;
    }
  });
  return form;
}
