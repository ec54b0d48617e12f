// The page: a table of runs (paged, sorted, searched with the query language; the search lives
// in the URL so it can be shared), a run page (run.js), and a login when the server asks for one.

import { ApiError, credential, get, setCredential } from "./api.js";
import { $, clear, el, formatTime, say, show, text } from "./dom.js";
import { showRun } from "./run.js";

const COLUMNS = [
  { key: "scan_id", label: "Scan", sort: "scan_id" },
  { key: "uid", label: "UID", sort: "uid" },
  { key: "plan_name", label: "Plan", sort: "plan_name" },
  { key: "sample", label: "Sample", sort: "sample" },
  { key: "time", label: "Time (UTC)", sort: "time" },
  { key: "events", label: "Events" },
  { key: "status", label: "Status", sort: "stop.exit_status" },
  { key: "tags", label: "Tags" },
];

let current = null; // the AbortController of the table request in flight

function params() {
  const p = new URLSearchParams(location.search);
  return {
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
  const search = p.toString();
  history.pushState(null, "", search ? `?${search}` : location.pathname);
  render();
}

function header(sort) {
  const row = clear(document.querySelector("#runs-table thead tr"));
  const key = sort.replace(/^[-+]/, "");
  for (const column of COLUMNS) {
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

async function showRuns() {
  show("runs");
  const { q, sort, skip, limit } = params();
  sessionStorage.setItem("intake-broker-list", location.search);
  $("q").value = q;
  $("page-size").value = String(limit);
  $("q-error").hidden = true;
  $("q").removeAttribute("aria-invalid");
  header(sort);
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
    page = await get("api/v1/web/runs", { q, sort, skip, limit }, { signal: current.signal });
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
    body.append(el("tr", {}, ...COLUMNS.map((c) => cell(c, row))));
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

function needLogin(err) {
  show("login");
  $("logout").hidden = !credential();
  $("login-error").textContent = credential() ? `Not accepted: ${err.message}` : "";
  $("apikey").focus();
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
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    setCredential($("apikey").value);
    $("apikey").value = "";
    render();
  });
  $("logout").addEventListener("click", () => {
    setCredential("");
    render();
  });
  window.addEventListener("popstate", render);
}

wire();
render();
