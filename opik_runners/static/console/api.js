// The console's calls: the Opik API under /api (as a client makes them) and /_admin/.
// Every call names the workspace (Comet-Workspace) and, when the server has keys, the key.
// The console's own calls carry X-Opik-Runners-Console, so the request journal (which
// records what clients do) leaves them out.

const KEY_STORE = "opik-runners.console";

export const session = {
  workspace: "default",
  apiKey: "",
  load() {
    const saved = JSON.parse(localStorage.getItem(KEY_STORE) || "{}");
    const fromUrl = new URLSearchParams(location.search).get("workspace");
    this.workspace = fromUrl || saved.workspace || "default";
    this.apiKey = saved.apiKey || "";
  },
  save() {
    localStorage.setItem(KEY_STORE, JSON.stringify({ workspace: this.workspace, apiKey: this.apiKey }));
  },
};

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

// The message an answer carries, in either of Opik's error shapes: {"errors": [...]} or {"code", "message"}.
function messageOf(status, body, text) {
  if (body && Array.isArray(body.errors) && body.errors.length) return body.errors.join("; ");
  if (body && typeof body.message === "string" && body.message) return body.message;
  if (text && text.length < 300) return text;
  return `HTTP ${status}`;
}

export async function call(method, path, { query, body, admin = false, raw = false } = {}) {
  const url = new URL((admin ? "/_admin" : "/api/v1/private") + path, location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value === undefined || value === null || value === "") continue;
    for (const one of Array.isArray(value) ? value : [value]) url.searchParams.append(name, one);
  }
  const headers = { "Comet-Workspace": session.workspace, "X-Opik-Runners-Console": "1" };
  if (session.apiKey) headers.Authorization = session.apiKey;
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    throw new ApiError(0, `The server did not answer (${err.message}). Is it running?`, null);
  }
  const text = await response.text();
  let parsed = null;
  if (text) {
    try { parsed = JSON.parse(text); } catch (_) { /* not JSON: the text is the message */ }
  }
  if (!response.ok) throw new ApiError(response.status, messageOf(response.status, parsed, text), parsed);
  if (raw) return { response, body: parsed, text };
  return parsed;
}

export const get = (path, options) => call("GET", path, options);
export const post = (path, body, options = {}) => call("POST", path, { ...options, body });
export const del = (path, options) => call("DELETE", path, options);
