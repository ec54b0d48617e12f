// Talking to the API: every request goes to this server (relative URLs), with the key the user
// logged in with in the Authorization header (never in a URL).

export const ROOT = new URL("../../", import.meta.url); // the page's root, under any path prefix
const KEY = "intake-broker-credential";

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `the server answered ${status}`);
    this.status = status;
    this.body = body || {};
    this.name = (body && body.error) || "HTTPError";
  }
}

export function credential() {
  return sessionStorage.getItem(KEY);
}

export function setCredential(text) {
  const value = text.trim();
  if (!value) {
    sessionStorage.removeItem(KEY);
    return;
  }
  const scheme = /^(apikey|bearer)\s/i.test(value) ? "" : "Apikey ";
  sessionStorage.setItem(KEY, scheme + value);
}

export function url(path, params = {}) {
  const target = new URL(path, ROOT);
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") {
      target.searchParams.set(name, String(value));
    }
  }
  return target;
}

export async function request(path, params = {}, { as = "json", signal, method = "GET", body, accept } = {}) {
  const headers = { Accept: accept || "application/json" };
  const auth = credential();
  if (auth) headers.Authorization = auth;
  const init = { method, headers, signal, credentials: "omit" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url(path, params), init);
  if (!response.ok) {
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    throw new ApiError(response.status, body);
  }
  if (as === "response") return response;
  return response.json();
}

export const get = (path, params, options) => request(path, params, options);
export const post = (path, body, options = {}) => request(path, {}, { ...options, method: "POST", body });

// Who the credential is and what it may do ({user, scopes, auth, annotations, export_formats}),
// asked once per credential.
let me = null;
export async function whoami() {
  const auth = credential() || "";
  if (me && me.auth === auth) return me.answer;
  const answer = await get("api/v1/web/me");
  me = { auth, answer };
  return answer;
}
export const mayWrite = (who) => Array.isArray(who.scopes) && who.scopes.includes("write");
