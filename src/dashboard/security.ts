/**
 * The dashboard's guards. It can start processes and aim load at any URL,
 * so it must never be driven by another web site or another user:
 *
 * - Host check: bound to loopback, it answers only to loopback host names,
 *   which defeats DNS rebinding (evil.example resolving to 127.0.0.1).
 * - Token: required when bound elsewhere; given once at /api/login, which
 *   sets an HttpOnly SameSite=Strict session cookie, or sent as a Bearer header.
 * - Cross-site requests: every state-changing request must carry the custom
 *   header `X-Dashboard: 1` (a cross-site form cannot, and a cross-site fetch
 *   with it needs a CORS preflight the dashboard never grants), and its
 *   Origin / Sec-Fetch-Site must say it comes from the dashboard itself.
 *
 * @module
 */
import type { Context, MiddlewareHandler } from "hono";
import { getCookie } from "hono/cookie";

export const CSRF_HEADER = "x-dashboard";
export const SESSION_COOKIE = "proxy_dashboard_session";

export interface GuardOptions {
  /** Required token; undefined when the dashboard is bound to loopback without one. */
  token?: string;
  /** Only loopback host names are accepted in the Host header. */
  loopbackOnly: boolean;
}

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]", "::1"]);

/** Host part of a Host header ("127.0.0.1:5000" → "127.0.0.1", "[::1]:5000" → "[::1]"). */
export function hostName(hostHeader: string): string {
  const h = hostHeader.trim().toLowerCase();
  if (h.startsWith("[")) return h.slice(0, h.indexOf("]") + 1);
  const i = h.lastIndexOf(":");
  return i >= 0 ? h.slice(0, i) : h;
}

/** Compares secrets in time that does not depend on where they differ. */
export function safeEqual(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

/** Sessions created by /api/login; they end when the dashboard stops. */
export class Sessions {
  #ids = new Set<string>();

  create(): string {
    const bytes = crypto.getRandomValues(new Uint8Array(32));
    const id = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    this.#ids.add(id);
    return id;
  }

  has(id: string | undefined): boolean {
    return id !== undefined && this.#ids.has(id);
  }

  delete(id: string | undefined): void {
    if (id) this.#ids.delete(id);
  }
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/** Paths anyone may load: the page shell and its assets (no data in them) and the login. */
function isPublic(path: string, method: string): boolean {
  if (path === "/api/login") return true;
  return SAFE_METHODS.has(method) && (path === "/" || path.startsWith("/assets/"));
}

function deny(c: Context, status: 401 | 403 | 421, error: string) {
  return c.json({ error }, status);
}

/** True when the request presents the token or a valid session. */
export function authenticated(c: Context, options: GuardOptions, sessions: Sessions): boolean {
  if (options.token === undefined) return true;
  const auth = c.req.header("authorization");
  if (auth?.startsWith("Bearer ") && safeEqual(auth.slice(7).trim(), options.token)) return true;
  return sessions.has(getCookie(c, SESSION_COOKIE));
}

/** Cross-site check for a state-changing request; returns the reason to refuse, if any. */
export function crossSiteProblem(c: Context): string | undefined {
  if (c.req.header(CSRF_HEADER) !== "1") {
    return `state-changing requests need the header "X-Dashboard: 1"`;
  }
  const site = c.req.header("sec-fetch-site");
  if (site !== undefined && site !== "same-origin" && site !== "none") {
    return `cross-site request refused (Sec-Fetch-Site: ${site})`;
  }
  const origin = c.req.header("origin");
  if (origin !== undefined) {
    const host = c.req.header("host") ?? "";
    let originHost: string;
    try {
      originHost = new URL(origin).host;
    } catch {
      return "cross-site request refused (bad Origin)";
    }
    if (originHost.toLowerCase() !== host.toLowerCase()) {
      return `cross-site request refused (Origin ${origin})`;
    }
  }
  return undefined;
}

/** The guard middleware, run before every route. */
export function guard(options: GuardOptions, sessions: Sessions): MiddlewareHandler {
  return async (c, next) => {
    if (options.loopbackOnly && !LOOPBACK_HOSTS.has(hostName(c.req.header("host") ?? ""))) {
      return deny(c, 421, "this dashboard answers only to 127.0.0.1, localhost or [::1]");
    }
    const method = c.req.method;
    if (!SAFE_METHODS.has(method)) {
      const problem = crossSiteProblem(c);
      if (problem) return deny(c, 403, problem);
    }
    if (!isPublic(c.req.path, method) && !authenticated(c, options, sessions)) {
      return deny(c, 401, "log in with the dashboard token");
    }
    await next();
    c.header("x-content-type-options", "nosniff");
    c.header("x-frame-options", "DENY");
    c.header("referrer-policy", "no-referrer");
    c.header(
      "content-security-policy",
      "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    );
  };
}
