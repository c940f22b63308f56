// Small DOM helpers for the console's views: text always goes in as text, never as HTML.
import { session } from "./api.js";

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const present = children => children.flat(Infinity).filter(c => c !== null && c !== undefined && c !== false);
export const put = (node, ...children) => node.replaceChildren(...present(children));
export const add = (node, ...children) => node.append(...present(children));
export const link = (path, text, attrs = {}) => h("a", { href: withWorkspace(path), "data-nav": true, ...attrs }, text);
export const badge = status => h("span", { class: `badge s-${status}` }, status);
export const when = iso => (iso ? new Date(iso).toLocaleString() : "");
export const json = value => JSON.stringify(value, null, 2);
export const shortJson = value => (value === null || value === undefined ? "" : JSON.stringify(value));

export function duration(from, to) {
  if (!from || !to) return "";
  const ms = new Date(to) - new Date(from);
  return ms < 1000 ? `${ms} ms` : ms < 60000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

// A console path in the workspace shown (named in the URL unless it is "default").
export function withWorkspace(path) {
  if (session.workspace === "default") return path;
  const url = new URL(path, location.origin);
  url.searchParams.set("workspace", session.workspace);
  return url.pathname + url.search;
}
