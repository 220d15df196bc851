// Login through the issuer's authorization-code flow with PKCE (S256).
// The access token lives in sessionStorage: it is gone when the tab closes,
// and logout removes it.
import type { ShopConfig } from "./config.js";

const sessionKey = "shop.session";
const pendingKey = "shop.pendingLogin";
/** A token this close to expiry is treated as expired. */
const expirySlackMs = 10_000;

/** Session is the signed-in user as the storefront knows them. */
export interface Session {
  accessToken: string;
  /** Epoch milliseconds. */
  expiresAt: number;
  username: string;
  roles: string[];
}

interface PendingLogin {
  state: string;
  verifier: string;
  redirectUri: string;
}

interface Discovery {
  issuer: string;
  authorization_endpoint: string;
  token_endpoint: string;
}

/** currentSession returns the stored session unless it has expired. */
export function currentSession(): Session | undefined {
  const raw = sessionStorage.getItem(sessionKey);
  if (!raw) return undefined;
  try {
    const s = JSON.parse(raw) as Session;
    if (typeof s.accessToken === "string" && s.expiresAt - expirySlackMs > Date.now()) return s;
  } catch {
    // fall through: a damaged entry is dropped
  }
  sessionStorage.removeItem(sessionKey);
  return undefined;
}

/** logout forgets the token. (The dev issuer keeps no login session.) */
export function logout(): void {
  sessionStorage.removeItem(sessionKey);
}

/** redirectUri is this page without query or fragment; the issuer sends the code back here. */
export function redirectUri(): string {
  return location.origin + location.pathname;
}

async function discover(cfg: ShopConfig): Promise<Discovery> {
  const res = await fetch(`${cfg.issuerUrl}/.well-known/openid-configuration`);
  if (!res.ok) throw new Error(`issuer discovery: HTTP ${res.status}`);
  const doc = (await res.json()) as Discovery;
  if (doc.issuer.replace(/\/+$/, "") !== cfg.issuerUrl) {
    throw new Error(`issuer discovery: issuer is ${doc.issuer}, expected ${cfg.issuerUrl}`);
  }
  return doc;
}

function base64url(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomString(bytes: number): string {
  return base64url(crypto.getRandomValues(new Uint8Array(bytes)));
}

async function s256(verifier: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

/** beginLogin sends the browser to the issuer's login page. */
export async function beginLogin(cfg: ShopConfig): Promise<void> {
  const doc = await discover(cfg);
  const pending: PendingLogin = { state: randomString(16), verifier: randomString(32), redirectUri: redirectUri() };
  sessionStorage.setItem(pendingKey, JSON.stringify(pending));
  const url = new URL(doc.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: cfg.clientId,
    redirect_uri: pending.redirectUri,
    state: pending.state,
    code_challenge: await s256(pending.verifier),
    code_challenge_method: "S256",
    scope: "openid profile email",
  }).toString();
  location.assign(url.toString());
}

/**
 * completeLogin finishes a login when the page was opened by the issuer's
 * redirect (?code=…&state=… or ?error=…): it checks the state, exchanges
 * the code with the PKCE verifier, stores the session and cleans the URL.
 * It returns undefined when the page was not such a redirect.
 */
export async function completeLogin(cfg: ShopConfig): Promise<Session | undefined> {
  const params = new URLSearchParams(location.search);
  const code = params.get("code");
  const error = params.get("error");
  if (!code && !error) return undefined;
  const pendingRaw = sessionStorage.getItem(pendingKey);
  sessionStorage.removeItem(pendingKey);
  history.replaceState(null, "", redirectUri());

  const pending = pendingRaw ? (JSON.parse(pendingRaw) as PendingLogin) : undefined;
  if (!pending || params.get("state") !== pending.state) {
    throw new Error("login failed: the answer does not belong to a login started here (state mismatch); try again");
  }
  if (error) {
    throw new Error(error === "access_denied" ? "login cancelled" : `login failed: ${params.get("error_description") ?? error}`);
  }
  const doc = await discover(cfg);
  const iss = params.get("iss");
  if (iss !== null && iss.replace(/\/+$/, "") !== cfg.issuerUrl) {
    throw new Error("login failed: the answer came from another issuer");
  }
  const res = await fetch(doc.token_endpoint, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code: code ?? "",
      redirect_uri: pending.redirectUri,
      client_id: cfg.clientId,
      code_verifier: pending.verifier,
    }),
  });
  const body = (await res.json().catch(() => ({}))) as { access_token?: string; expires_in?: number; error?: string; error_description?: string };
  if (!res.ok || !body.access_token) {
    throw new Error(`login failed: ${body.error_description ?? body.error ?? `HTTP ${res.status}`}`);
  }
  const claims = decodeClaims(body.access_token);
  const session: Session = {
    accessToken: body.access_token,
    expiresAt: Date.now() + (body.expires_in ?? 300) * 1000,
    username: typeof claims["preferred_username"] === "string" ? claims["preferred_username"] : String(claims["sub"] ?? "you"),
    roles: Array.isArray(claims["roles"]) ? claims["roles"].filter((r): r is string => typeof r === "string") : [],
  };
  sessionStorage.setItem(sessionKey, JSON.stringify(session));
  return session;
}

/** decodeClaims reads a JWT's payload for display only; the services verify the token. */
function decodeClaims(jwt: string): Record<string, unknown> {
  try {
    const part = jwt.split(".")[1] ?? "";
    const json = atob(part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "="));
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(json, (c) => c.charCodeAt(0)))) as Record<string, unknown>;
  } catch {
    return {};
  }
}
