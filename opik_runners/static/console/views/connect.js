// The commands a person runs to connect a runner here (the projects' and a project's pages).
import { session } from "../api.js";
import { h } from "../dom.js";

export function connectCommands(projectName) {
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
