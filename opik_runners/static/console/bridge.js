// Signing bridge commands in the browser, as the Opik UI does (docs/opik-behaviour.md#bridge-key,
// docs/opik-behaviour.md#bridge-signatures):
//   bridge key = HKDF-SHA256(ikm = activation key, salt = session uuid bytes, info = "opik-bridge-v1")
//   args._hmac = base64(HMAC-SHA256(bridge key, type || canonical JSON of args))
//   result._hmac = base64(HMAC-SHA256(bridge key, status || canonical JSON of result))
// where canonical JSON is Python's json.dumps(sort_keys=True, separators=(",", ":")), ensure_ascii on.
// The pairing page stored the activation key when this browser paired the runner.

const KEYS = "opik-runners.bridge-keys";

export function storedKey(runnerId) {
  try {
    return JSON.parse(localStorage.getItem(KEYS) || "{}")[runnerId] || null;
  } catch (_) {
    return null;
  }
}

const utf8 = text => new TextEncoder().encode(text);
const fromBase64 = text => Uint8Array.from(atob(text), c => c.charCodeAt(0));
const toBase64 = bytes => btoa(String.fromCharCode(...new Uint8Array(bytes)));
const uuidBytes = id => Uint8Array.from(id.replace(/-/g, "").match(/../g), pair => parseInt(pair, 16));

export async function bridgeKey(stored) {
  const ikm = await crypto.subtle.importKey("raw", fromBase64(stored.activation_key), "HKDF", false, ["deriveBits"]);
  const bits = await crypto.subtle.deriveBits(
    { name: "HKDF", hash: "SHA-256", salt: uuidBytes(stored.session_id), info: utf8("opik-bridge-v1") }, ikm, 256);
  return crypto.subtle.importKey("raw", bits, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
}

// Python's json.dumps(value, sort_keys=True, separators=(",", ":")): ASCII only, \uXXXX in lower case.
export function canonicalJson(value) {
  if (value === null || typeof value !== "object") {
    return JSON.stringify(value).replace(/[\u0080-\uffff]/g, c => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
  }
  if (Array.isArray(value)) return "[" + value.map(canonicalJson).join(",") + "]";
  const keys = Object.keys(value).sort();
  return "{" + keys.map(k => canonicalJson(k) + ":" + canonicalJson(value[k])).join(",") + "}";
}

export async function sign(key, label, payload) {
  return toBase64(await crypto.subtle.sign("HMAC", key, utf8(label + canonicalJson(payload))));
}

export async function signedArgs(key, type, args) {
  return { ...args, _hmac: await sign(key, type, args) };
}

// Whether a command's result carries the runner's signature (true / false; null: nothing to check).
export async function resultVerified(key, command) {
  if (!command.result || typeof command.result._hmac !== "string") return null;
  const { _hmac, ...rest } = command.result;
  return _hmac === await sign(key, command.status, rest);
}
