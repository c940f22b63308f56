// The console's shell: the router (one page, rendered from the URL), the live loop each view
// refreshes by (paused while the tab is hidden), and the errors shown above the page.
//
// A view is a function called with its View (below) and the parts of the URL it matched. What
// it keeps lives in its own closure; its loops stop, and its refresh is forgotten, as soon as
// another view is shown.
import { ApiError } from "./api.js";
import { h, link, put } from "./dom.js";

const main = document.getElementById("main");

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
  // (The key field shows when the server has keys.)
  if (err instanceof ApiError && err.status === 401 && !document.getElementById("api-key-label").hidden) {
    document.getElementById("api-key").focus();
  }
}

const clearErrors = () => put(document.getElementById("alerts"));

// -- live refresh: one loop per view, stopped when the view changes

class View {
  constructor(config, navigate) {
    this.config = config; // what /console/config.json said: { api_keys, admin, journal, version }
    this.navigate = navigate;
    this.shown = true;
    // What the view redraws at once when the tab is shown again (or when it asks itself).
    this.refreshNow = () => {};
  }

  live(ms, refresh) {
    let timer = null;
    const tick = async () => {
      if (!this.shown) return;
      if (!document.hidden) {
        try {
          const next = await refresh();
          if (next === false) return; // the view has nothing left to follow
        } catch (err) {
          if (this.shown) showError("Refreshing", err);
        }
      }
      if (this.shown) timer = setTimeout(tick, typeof ms === "function" ? ms() : ms);
    };
    tick();
    return () => clearTimeout(timer);
  }
}

export function page(title, ...children) {
  document.title = `${title} · Opik runners`;
  put(main, ...children);
}

// -- routing: `routes` pairs a pattern of the path with the view that shows it

export function createShell(routes, config) {
  let shown = null; // the View on the page now

  function navigate(path, replace = false) {
    history[replace ? "replaceState" : "pushState"](null, "", path);
    render();
  }

  async function render() {
    if (shown) shown.shown = false;
    const view = shown = new View(config, navigate);
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
          await show(view, ...match.slice(1));
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

  document.addEventListener("visibilitychange", () => { if (!document.hidden && shown) shown.refreshNow(); });
  document.addEventListener("click", event => {
    const anchor = event.target.closest("a[data-nav]");
    if (!anchor || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    navigate(anchor.getAttribute("href"));
  });
  window.addEventListener("popstate", () => render());
  return { navigate, render };
}
