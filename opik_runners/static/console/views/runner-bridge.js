// A connect runner's bridge commands (part of the runner's page), signed in the browser with
// the key the pairing page kept (bridge.js).
import { get, post } from "../api.js";
import { bridgeKey, resultVerified, signedArgs, storedKey } from "../bridge.js";
import { add, badge, h, json, put, shortJson, when } from "../dom.js";
import { showError } from "../shell.js";

const COMMANDS = {
  ListFiles: [["path", "text", ""], ["pattern", "text", ""], ["depth", "number", "1"]],
  ReadFile: [["path", "text", "", true], ["offset", "number", ""], ["limit", "number", ""]],
  SearchFiles: [["pattern", "text", "", true], ["glob", "text", ""], ["path", "text", ""]],
  Exec: [["command", "text", "", true], ["timeout", "number", ""]],
};

export function bridgeSection(runner) {
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
