// Small DOM helpers. Values from the server (metadata, notes, tags) only ever become text:
// textContent and attributes set one by one, never innerHTML.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = String(value);
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function $(id) {
  return document.getElementById(id);
}

export function clear(node) {
  node.replaceChildren();
  return node;
}

export function show(section) {
  for (const id of ["login", "runs", "run"]) $(id).hidden = id !== section;
}

export function say(text) {
  $("status").textContent = text || "";
}

export function formatTime(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "";
  const d = new Date(seconds * 1000);
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

export function text(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

// A JSON value as a tree of nested lists (<details> for objects and arrays).
export function tree(value, depth = 0) {
  if (value === null || typeof value !== "object") {
    return el("span", { class: "value", text: JSON.stringify(value) });
  }
  const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v]) : Object.entries(value);
  if (entries.length === 0) return el("span", { class: "value", text: Array.isArray(value) ? "[]" : "{}" });
  const list = el("ul");
  for (const [key, child] of entries.slice(0, 2000)) {
    const nested = child !== null && typeof child === "object" && Object.keys(child).length > 0;
    if (nested) {
      const open = depth < 1 ? { open: true } : {};
      const summary = el("summary", {}, el("span", { class: "key", text: key }),
        ` (${Array.isArray(child) ? child.length + " items" : Object.keys(child).length + " keys"})`);
      list.append(el("li", {}, el("details", open, summary, tree(child, depth + 1))));
    } else {
      list.append(el("li", {}, el("span", { class: "key", text: key }), ": ", tree(child, depth + 1)));
    }
  }
  if (entries.length > 2000) list.append(el("li", { text: `... ${entries.length - 2000} more` }));
  return list;
}
