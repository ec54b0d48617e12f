// "Log in with <issuer>": OpenID Connect's Authorization Code flow with PKCE (RFC 7636), the
// page being a public client (no secret). The server tells where the issuer's endpoints are
// (api/v1/web/login-options, from its own configuration); the page keeps the PKCE verifier and
// the state in this tab's sessionStorage, comes back to its own address with a code, checks the
// state, exchanges the code for a token and keeps the token as it keeps an API key. The code
// is removed from the address bar before anything else; no token is ever put in a URL.

import { get, ROOT, setCredential } from "./api.js";

const PENDING = "intake-broker-oidc-pending";
const RETURN_PARAMS = ["code", "state", "error", "error_description", "error_uri", "iss", "session_state"];
const MAX_MESSAGE = 200;

let options = null;
export async function loginOptions() {
  if (options === null) options = await get("api/v1/web/login-options");
  return options;
}

function base64url(bytes) {
  let text = "";
  for (const byte of new Uint8Array(bytes)) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function random(length) {
  return base64url(crypto.getRandomValues(new Uint8Array(length)));
}

// Where the issuer sends the user back: the page's own root (the address registered at the
// issuer as this client's redirect URI).
export function redirectUri() {
  return new URL("./", ROOT).href;
}

export async function startLogin(oidc) {
  const verifier = random(32); // 43 characters of [A-Za-z0-9_-]
  const challenge = base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  const state = random(16);
  const back = new URL(window.location.href);
  for (const name of RETURN_PARAMS) back.searchParams.delete(name);
  sessionStorage.setItem(PENDING, JSON.stringify({
    state,
    verifier,
    issuer: oidc.issuer,
    redirect_uri: redirectUri(),
    back: back.search,
  }));
  const target = new URL(oidc.authorization_endpoint);
  const query = {
    response_type: "code",
    client_id: oidc.client_id,
    redirect_uri: redirectUri(),
    scope: oidc.scope,
    state,
    code_challenge: challenge,
    code_challenge_method: "S256",
  };
  if (oidc.response_mode === "fragment") query.response_mode = "fragment";
  for (const [name, value] of Object.entries(query)) target.searchParams.set(name, value);
  window.location.assign(target.href);
}

export function cancelLogin() {
  sessionStorage.removeItem(PENDING);
}

const short = (text) => String(text || "").slice(0, MAX_MESSAGE);

// On load: if the address holds an issuer's answer (code/error and state), finish the login.
// Returns null when there was nothing to finish, "" when logged in, else the message to show.
export async function finishLogin() {
  const here = new URL(window.location.href);
  // the answer is in the query string, or (response_mode=fragment) after the '#'
  const fragment = new URLSearchParams(here.hash.slice(1));
  const source = fragment.has("code") || fragment.has("error") ? fragment : here.searchParams;
  const answer = Object.fromEntries(RETURN_PARAMS.map((n) => [n, source.get(n)]));
  if (answer.code === null && answer.error === null) return null;
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
  sessionStorage.removeItem(PENDING);
  // the code leaves the address bar (and the history) before anything else happens
  for (const name of RETURN_PARAMS) here.searchParams.delete(name);
  let search = here.search;
  if (pending && pending.state === answer.state && typeof pending.back === "string") search = pending.back;
  window.history.replaceState(null, "", here.pathname + search); // (and no fragment)
  if (!pending || !answer.state || pending.state !== answer.state) {
    return "The login answer does not match a login started in this tab (wrong state): it was refused. Log in again.";
  }
  if (answer.error !== null) {
    return `The identity provider refused the login: ${short(answer.error)}${answer.error_description ? ` (${short(answer.error_description)})` : ""}.`;
  }
  let oidc;
  try {
    oidc = (await loginOptions()).oidc;
  } catch (err) {
    return `The server's login options could not be read: ${short(err.message)}`;
  }
  if (!oidc || oidc.issuer !== pending.issuer) return "This server no longer offers that login; log in again.";
  if (answer.iss !== null && answer.iss !== oidc.issuer) {
    return "The login answer names another issuer than the one asked (RFC 9207): it was refused.";
  }
  const form = new URLSearchParams({
    grant_type: "authorization_code",
    code: answer.code,
    redirect_uri: pending.redirect_uri,
    client_id: oidc.client_id,
    code_verifier: pending.verifier,
  });
  let response;
  try {
    response = await fetch(oidc.token_endpoint, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
      body: form,
      credentials: "omit",
      cache: "no-store",
      referrerPolicy: "no-referrer",
    });
  } catch (err) {
    return `The identity provider's token endpoint could not be reached: ${short(err.message)}`;
  }
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null;
  }
  if (!response.ok || !body) {
    const why = body && body.error ? `${short(body.error)}${body.error_description ? `: ${short(body.error_description)}` : ""}` : `HTTP ${response.status}`;
    return `The identity provider gave no token (${why}). Log in again.`;
  }
  const token = body[oidc.token];
  if (typeof token !== "string" || !/^[A-Za-z0-9_\-.]+$/.test(token)) {
    return `The identity provider's answer holds no ${oidc.token}.`;
  }
  setCredential(`Bearer ${token}`);
  return "";
}
