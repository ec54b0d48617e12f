// The page: a table of runs (paged, sorted, searched with the query language; the search lives
// in the URL so it can be shared; columns chosen from the start document's keys, kept in the URL
// and in localStorage; searches saved under a name in localStorage), a run page (run.js), and a
// login when the server asks for one (an API key, a pasted bearer token, or, where the server
// offers it, "Log in with <issuer>": oidc.js).

import { ApiError, credential, get, setCredential } from "./api.js";
import { $, clear, el, formatTime, say, show, text } from "./dom.js";
import { cancelLogin, finishLogin, loginOptions, startLogin } from "./oidc.js";
import { showRun } from "./run.js";

const BUILTIN = [
  { key: "scan_id", label: "Scan", sort: "scan_id" },
  { key: "uid", label: "UID", sort: "uid" },
  { key: "plan_name", label: "Plan", sort: "plan_name" },
  { key: "sample", label: "Sample", sort: "sample" },
  { key: "time", label: "Time (UTC)", sort: "time" },
  { key: "events", label: "Events" },
  { key: "status", label: "Status", sort: "stop.exit_status" },
  { key: "tags", label: "Tags" },
];
const BUILTIN_IDS = BUILTIN.map((c) => c.key);
// Keys offered in the column chooser besides the built-in columns (any other can be typed).
const SUGGESTED = ["sample.name", "num_points", "proposal_id", "detectors", "motors", "stop.exit_status", "stop.reason"];
const COLUMNS_KEY = "intake-broker-columns";
const SAVED_KEY = "intake-broker-saved-queries";
const MAX_EXTRA = 16; // the server's limit of extra columns
const MAX_SAVED = 100;
const KEY_PATTERN = /^[A-Za-z_][A-Za-z0-9_:-]*(\.[A-Za-z0-9_:-]+)*$/;

let current = null; // the AbortController of the table request in flight

// The columns shown: the URL's (a shared link), else the ones last chosen here, else the
// built-in ones. A column is a built-in one or a key of the start document (stop.<key>: stop).
function chosenColumns(p) {
  const stored = localStorage.getItem(COLUMNS_KEY);
  const text = p.get("cols") ?? stored ?? BUILTIN_IDS.join(",");
  const ids = [...new Set(text.split(",").map((k) => k.trim()).filter((k) => k && k.length <= 200 && (BUILTIN_IDS.includes(k) || KEY_PATTERN.test(k))))];
  const extra = ids.filter((k) => !BUILTIN_IDS.includes(k)).slice(0, MAX_EXTRA);
  return ids.filter((k) => BUILTIN_IDS.includes(k) || extra.includes(k));
}

function columnsOf(ids) {
  return ids.map((id) => BUILTIN.find((c) => c.key === id) || { key: id, label: id, sort: id, extra: true });
}

function params() {
  const p = new URLSearchParams(location.search);
  return {
    cols: chosenColumns(p),
    q: p.get("q") || "",
    sort: p.get("sort") || "-time",
    skip: Math.max(0, parseInt(p.get("skip") || "0", 10) || 0),
    limit: Math.min(200, Math.max(1, parseInt(p.get("limit") || "50", 10) || 50)),
    run: p.get("run"),
  };
}

function navigate(changes) {
  const p = new URLSearchParams(location.search);
  for (const [name, value] of Object.entries(changes)) {
    if (value === null || value === "" || value === undefined) p.delete(name);
    else p.set(name, String(value));
  }
  if (p.get("skip") === "0") p.delete("skip");
  if (p.get("sort") === "-time") p.delete("sort");
  if (p.get("limit") === "50") p.delete("limit");
  if (p.get("cols") === BUILTIN_IDS.join(",")) p.delete("cols");
  const search = p.toString();
  history.pushState(null, "", search ? `?${search}` : location.pathname);
  render();
}

function header(sort, columns) {
  const row = clear(document.querySelector("#runs-table thead tr"));
  const key = sort.replace(/^[-+]/, "");
  for (const column of columns) {
    const th = el("th", { scope: "col" });
    if (column.sort) {
      const active = column.sort === key;
      th.setAttribute("aria-sort", active ? (sort.startsWith("-") ? "descending" : "ascending") : "none");
      const button = el("button", { type: "button", text: column.label });
      button.addEventListener("click", () => {
        const next = active && !sort.startsWith("-") ? `-${column.sort}` : column.sort;
        navigate({ sort: next, skip: 0 });
      });
      th.append(button);
    } else {
      th.textContent = column.label;
    }
    row.append(th);
  }
}

function cell(column, row) {
  if (column.extra) return el("td", { text: text((row.columns || {})[column.key]) });
  const value = row[column.key];
  if (column.key === "uid") {
    const link = el("a", { href: `?run=${encodeURIComponent(row.uid)}`, text: String(row.uid).slice(0, 8) });
    link.title = row.uid;
    return el("td", { class: "uid" }, link);
  }
  if (column.key === "scan_id") {
    return el("td", {}, el("a", { href: `?run=${encodeURIComponent(row.uid)}`, text: text(value) || "(none)" }));
  }
  if (column.key === "time") return el("td", { text: formatTime(value) });
  if (column.key === "status") return el("td", { text: value === null ? "running" : text(value) });
  if (column.key === "tags") {
    return el("td", {}, ...(Array.isArray(value) ? value : []).map((t) => el("span", { class: "tag", text: text(t) })));
  }
  return el("td", { text: text(value) });
}

function showQueryError(err, q) {
  const box = $("q-error");
  const input = $("q");
  box.hidden = false;
  box.textContent = err.message;
  input.setAttribute("aria-invalid", "true");
  const column = err.body && err.body.column;
  if (Number.isInteger(column) && column >= 1 && column <= q.length + 1) {
    input.focus();
    input.setSelectionRange(column - 1, Math.min(q.length, column));
  }
}

const MAX_QUERY = 4000; // the server's limit (longer is refused before it is sent)

function setColumns(ids) {
  localStorage.setItem(COLUMNS_KEY, ids.join(","));
  navigate({ cols: ids.join(",") });
}

// The column chooser: a checkbox per built-in column, suggested key and chosen key, and a box
// to add any key of the start document.
function columnChooser(ids) {
  const box = clear($("column-choices"));
  const offered = [...BUILTIN_IDS, ...SUGGESTED, ...ids.filter((k) => !BUILTIN_IDS.includes(k) && !SUGGESTED.includes(k))];
  offered.forEach((id, i) => {
    const label = (BUILTIN.find((c) => c.key === id) || {}).label || id;
    const input = el("input", { type: "checkbox", id: `col-${i}`, value: id, checked: ids.includes(id) });
    input.addEventListener("change", () => {
      const next = input.checked ? [...ids, id] : ids.filter((k) => k !== id);
      const order = offered.filter((k) => next.includes(k));
      setColumns(order);
    });
    box.append(el("span", {}, input, el("label", { for: `col-${i}`, text: label })));
  });
}

function addColumn(ids) {
  const key = $("column-key").value.trim();
  const error = $("column-error");
  error.textContent = "";
  if (!key) return;
  if (key.length > 200 || !KEY_PATTERN.test(key)) {
    error.textContent = `"${key.slice(0, 60)}" is not a key: write a start-document key such as sample.name, or stop.exit_status`;
    return;
  }
  const extra = ids.filter((k) => !BUILTIN_IDS.includes(k));
  if (!ids.includes(key) && extra.length >= MAX_EXTRA) {
    error.textContent = `at most ${MAX_EXTRA} extra columns; remove one first`;
    return;
  }
  $("column-key").value = "";
  if (!ids.includes(key)) setColumns([...ids, key]);
}

function savedQueries() {
  try {
    const found = JSON.parse(localStorage.getItem(SAVED_KEY) || "{}");
    return found && typeof found === "object" && !Array.isArray(found) ? found : {};
  } catch (_) {
    return {};
  }
}

function renderSaved() {
  const list = clear($("saved-list"));
  const saved = savedQueries();
  const names = Object.keys(saved).sort();
  $("saved-none").hidden = names.length > 0;
  for (const name of names) {
    const q = String(saved[name]);
    const link = el("a", { href: `?q=${encodeURIComponent(q)}`, text: name, title: q });
    link.addEventListener("click", (event) => {
      event.preventDefault();
      navigate({ q, skip: 0, run: null });
    });
    const remove = el("button", { type: "button", class: "small", text: "Delete", "aria-label": `Delete the saved search ${name}` });
    remove.addEventListener("click", () => {
      const now = savedQueries();
      delete now[name];
      localStorage.setItem(SAVED_KEY, JSON.stringify(now));
      renderSaved();
    });
    list.append(el("li", {}, link, " ", el("code", { text: q }), " ", remove));
  }
}

function saveQuery() {
  const name = $("save-name").value.trim();
  const q = $("q").value.trim();
  const tell = (t) => { $("save-message").textContent = t; };
  if (!name) return tell("Give the search a name.");
  if (!q) return tell("Write a search to save first.");
  if (name.length > 100) return tell("A name has at most 100 characters.");
  if (name === "__proto__") return tell("Choose another name.");
  if (q.length > MAX_QUERY) return tell(`A search has at most ${MAX_QUERY} characters.`);
  const saved = savedQueries();
  if (!(name in saved) && Object.keys(saved).length >= MAX_SAVED) return tell(`At most ${MAX_SAVED} saved searches; delete one first.`);
  saved[name] = q;
  localStorage.setItem(SAVED_KEY, JSON.stringify(saved));
  $("save-name").value = "";
  tell(`Saved as "${name}" (in this browser).`);
  renderSaved();
}

async function showRuns() {
  show("runs");
  const { q, sort, skip, limit, cols } = params();
  const columns = columnsOf(cols);
  const extra = cols.filter((k) => !BUILTIN_IDS.includes(k));
  sessionStorage.setItem("intake-broker-list", location.search);
  $("q").value = q;
  $("page-size").value = String(limit);
  $("q-error").hidden = true;
  $("q").removeAttribute("aria-invalid");
  header(sort, columns);
  columnChooser(cols);
  renderSaved();
  if (current) current.abort();
  current = new AbortController();
  say("Loading runs...");
  let page;
  try {
    if (q.length > MAX_QUERY) {
      throw new ApiError(400, {
        error: "InvalidRequest",
        message: `the query has ${q.length} characters; at most ${MAX_QUERY} characters are accepted`,
      });
    }
    page = await get("api/v1/web/runs", { q, sort, skip, limit, columns: extra.join(",") }, { signal: current.signal });
  } catch (err) {
    if (err.name === "AbortError") return;
    if (err instanceof ApiError && err.status === 401) return needLogin(err);
    clear(document.querySelector("#runs-table tbody"));
    $("count").textContent = "";
    say("");
    if (err instanceof ApiError && err.status === 400) return showQueryError(err, q);
    say(`Could not list runs: ${err.message}`);
    return;
  }
  const body = clear(document.querySelector("#runs-table tbody"));
  for (const row of page.data) {
    body.append(el("tr", {}, ...columns.map((c) => cell(c, row))));
  }
  const last = Math.min(page.count, skip + page.data.length);
  $("count").textContent = page.count === 0 ? "No runs match." :
    `Runs ${skip + 1}\u2013${last} of ${page.count}${q ? " matching the search" : ""}.`;
  $("page").textContent = `Page ${Math.floor(skip / limit) + 1} of ${Math.max(1, Math.ceil(page.count / limit))}`;
  $("prev").disabled = skip === 0;
  $("next").disabled = skip + limit >= page.count;
  say("");
  document.body.dataset.ready = "runs";
}

let loginMessage = "";

async function offerOidc() {
  let oidc = null;
  try {
    oidc = (await loginOptions()).oidc;
  } catch (_) {
    oidc = null; // an older server: API keys only
  }
  $("oidc-login").hidden = !oidc;
  if (oidc) $("oidc-button").textContent = `Log in with ${oidc.label}`;
  return oidc;
}

async function needLogin(err) {
  show("login");
  $("logout").hidden = !credential();
  const oidc = await offerOidc();
  $("login-error").textContent = loginMessage || (credential() ? `Not accepted: ${err.message}` : "");
  loginMessage = "";
  (oidc ? $("oidc-button") : $("apikey")).focus();
  say("");
  document.body.dataset.ready = "login";
}

async function render() {
  document.body.dataset.ready = "";
  $("logout").hidden = !credential();
  const { run } = params();
  if (run) {
    const back = sessionStorage.getItem("intake-broker-list") || "";
    $("back").setAttribute("href", back || "./");
    try {
      await showRun(run);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return needLogin(err);
      throw err;
    }
  } else {
    await showRuns();
  }
}

function wire() {
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    navigate({ q: $("q").value.trim(), skip: 0, run: null });
  });
  $("q").addEventListener("input", () => {
    $("q").removeAttribute("aria-invalid");
  });
  $("prev").addEventListener("click", () => {
    const { skip, limit } = params();
    navigate({ skip: Math.max(0, skip - limit) });
  });
  $("next").addEventListener("click", () => {
    const { skip, limit } = params();
    navigate({ skip: skip + limit });
  });
  $("page-size").addEventListener("change", () => navigate({ limit: $("page-size").value, skip: 0 }));
  $("column-form").addEventListener("submit", (event) => {
    event.preventDefault();
    addColumn(params().cols);
  });
  $("columns-reset").addEventListener("click", () => {
    localStorage.removeItem(COLUMNS_KEY);
    navigate({ cols: null });
  });
  $("save-query").addEventListener("click", saveQuery);
  $("save-name").addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      saveQuery();
    }
  });
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    setCredential($("apikey").value);
    $("apikey").value = "";
    render();
  });
  $("logout").addEventListener("click", () => {
    setCredential("");
    cancelLogin();
    render();
  });
  $("oidc-button").addEventListener("click", async () => {
    const oidc = await offerOidc();
    if (!oidc) return;
    $("oidc-button").disabled = true;
    try {
      await startLogin(oidc);
    } catch (err) {
      $("oidc-button").disabled = false;
      $("login-error").textContent = `The login could not start: ${err.message}`;
    }
  });
  window.addEventListener("popstate", render);
}

async function start() {
  wire();
  const message = await finishLogin();
  if (message) {
    setCredential(""); // a failed login leaves no credential behind
    loginMessage = message;
  }
  await render();
  if (loginMessage) { // not shown by a login form (a server serving anonymous requests)
    say(loginMessage);
    loginMessage = "";
  }
}

start();
