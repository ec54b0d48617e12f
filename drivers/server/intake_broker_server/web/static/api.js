// Talking to the API: every request goes to this server (relative URLs), with the key the user
// logged in with in the Authorization header (never in a URL).

const ROOT = new URL("../../", import.meta.url); // the page's root, under any path prefix
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

export async function request(path, params = {}, { as = "json", signal } = {}) {
  const headers = { Accept: "application/json" };
  const auth = credential();
  if (auth) headers.Authorization = auth;
  const response = await fetch(url(path, params), { headers, signal, credentials: "omit" });
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
