// The pairing page's script (pair.html), served at /opik/pair/pair.js: a file of its own, as the page's
// Content-Security-Policy runs no inline script.
"use strict";
// The CLI's link carries, after '#', base64url without padding of:
// session uuid (16) | activation key (32) | project uuid (16) | name length (1) | name (UTF-8) | type (1: 0 connect, 1 endpoint)
const statusEl = document.getElementById("status");
const show = (text, kind) => { statusEl.textContent = text; statusEl.className = kind || ""; };

function fromBase64Url(text) {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
  return Uint8Array.from(atob(b64), c => c.charCodeAt(0));
}
const toBase64 = bytes => btoa(String.fromCharCode(...new Uint8Array(bytes)));
const hex = bytes => Array.from(bytes, b => b.toString(16).padStart(2, "0")).join("");
const uuid = bytes => hex(bytes).replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, "$1-$2-$3-$4-$5");

function parseFragment(fragment) {
  const bytes = fromBase64Url(fragment);
  if (bytes.length < 66) throw new Error("the link is too short");
  const nameLength = bytes[64];
  if (bytes.length !== 66 + nameLength) throw new Error("the link has the wrong length");
  const typeByte = bytes[65 + nameLength];
  if (typeByte > 1) throw new Error("the link names an unknown runner type");
  return {
    sessionBytes: bytes.slice(0, 16),
    sessionId: uuid(bytes.slice(0, 16)),
    key: bytes.slice(16, 48),
    projectId: uuid(bytes.slice(48, 64)),
    nameBytes: bytes.slice(65, 65 + nameLength),
    name: new TextDecoder("utf-8", { fatal: true }).decode(bytes.slice(65, 65 + nameLength)),
    type: typeByte === 0 ? "connect" : "endpoint",
  };
}

// HMAC-SHA256(activation key, session uuid bytes | SHA-256(runner name)), standard base64.
async function activationHmac(link) {
  const nameDigest = new Uint8Array(await crypto.subtle.digest("SHA-256", link.nameBytes));
  const message = new Uint8Array(48);
  message.set(link.sessionBytes, 0);
  message.set(nameDigest, 16);
  const key = await crypto.subtle.importKey("raw", link.key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return toBase64(await crypto.subtle.sign("HMAC", key, message));
}

async function activate(link, workspace, apiKey) {
  const headers = { "content-type": "application/json", "Comet-Workspace": workspace };
  if (apiKey) headers["Authorization"] = apiKey;
  const response = await fetch(`${location.origin}/api/v1/private/pairing/sessions/${link.sessionId}/activate`, {
    method: "POST", headers, body: JSON.stringify({ runner_name: link.name, hmac: await activationHmac(link) }),
  });
  if (response.status === 201) rememberKey(link, workspace, response.headers.get("Location"));
  let reason = "";
  try {
    const body = await response.json();
    reason = (body.errors || []).join("; ") || body.message || "";
  } catch (_) { /* 201 has no body */ }
  return { status: response.status, reason };
}

// As Opik's UI does, the browser that pairs a runner keeps its activation key, so that the
// console (/console/) can sign bridge commands for it (HKDF bridge key, docs/opik-behaviour.md#bridge-key).
// Kept in this browser's localStorage only; it never goes back to the server.
const KEYS = "opik-runners.bridge-keys";
function rememberKey(link, workspace, location_) {
  const runnerId = (location_ || "").split("/").pop();
  if (!runnerId) return;
  let keys = {};
  try { keys = JSON.parse(localStorage.getItem(KEYS) || "{}"); } catch (_) { /* a broken entry is replaced */ }
  keys[runnerId] = { activation_key: toBase64(link.key), session_id: link.sessionId, name: link.name,
                     project_id: link.projectId, workspace, type: link.type, paired_at: new Date().toISOString() };
  localStorage.setItem(KEYS, JSON.stringify(keys));
  pairedRunner = runnerId;
}
let pairedRunner = null;

async function main() {
  const params = new URLSearchParams(location.search);
  const workspace = params.get("workspace") || "default";
  let link;
  try {
    if (!location.hash.slice(1)) throw new Error("the link has no pairing data after '#'");
    link = parseFragment(location.hash.slice(1));
  } catch (err) {
    return show(`This pairing link cannot be read: ${err.message}. Copy the whole link the CLI printed.`, "fail");
  }
  document.getElementById("runner-name").textContent = link.name;
  document.getElementById("runner-type").textContent = link.type;
  document.getElementById("project").textContent = params.get("project") ? `${params.get("project")} (${link.projectId})` : link.projectId;
  document.getElementById("workspace").textContent = workspace;
  document.getElementById("details").hidden = false;
  if (!window.crypto || !crypto.subtle) {
    return show("This browser offers no WebCrypto here: open the link over https or on localhost.", "fail");
  }
  const attempt = async apiKey => {
    show("Pairing…");
    const { status, reason } = await activate(link, workspace, apiKey);
    if (status === 201) {
      show(`Paired: runner "${link.name}" is connected. You can close this page.`, "ok");
      if (pairedRunner) {
        const a = document.createElement("a");
        a.href = `/console/runners/${pairedRunner}?workspace=${encodeURIComponent(workspace)}`;
        a.textContent = "Open it in the console";
        a.id = "console-link";
        statusEl.append(" ", a);
      }
    } else if (status === 401) {
      show("This server needs an API key to pair runners.", "fail");
      document.getElementById("key-form").style.display = "flex";
    } else if (status === 409) {
      show("This link was already used: the runner is paired.", "ok");
    } else if (status === 404) {
      show("This pairing session is unknown or expired: start the CLI again for a new link.", "fail");
    } else {
      show(`Pairing failed (${status})${reason ? ": " + reason : ""}.`, "fail");
    }
  };
  document.getElementById("key-form").addEventListener("submit", event => {
    event.preventDefault();
    attempt(document.getElementById("api-key").value.trim());
  });
  await attempt("");
}
main().catch(err => show(`Pairing failed: ${err.message}`, "fail"));
