/**
 * Guard for the admin surface (/proxy-stats, /metrics, purge, reload).
 *
 * From loopback it is always open (the operator on the box, the dashboard);
 * from anywhere else it needs ADMIN_TOKEN as `Authorization: Bearer <token>` or
 * `X-Admin-Token: <token>`, compared in constant time.
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import { createHash, timingSafeEqual } from "node:crypto";
import type { RequestContext } from "../context/mod.ts";
import { isLoopback } from "./cidr.ts";

export interface AdminGuardOptions {
  /** ADMIN_TOKEN; undefined or empty means the admin surface is loopback-only. */
  readonly token?: string;
}

const digest = (s: string) => createHash("sha256").update(s).digest();

/**
 * Constant-time string equality: both sides are hashed to equal-length digests
 * first, so neither the content nor the length of the secret leaks through timing.
 */
export function constantTimeEqual(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}

/** Extracts the presented admin token from the request headers. */
export function presentedToken(headers: Headers): string | undefined {
  const auth = headers.get("authorization");
  if (auth) {
    const m = /^\s*Bearer\s+(\S+)\s*$/i.exec(auth);
    if (m) return m[1];
  }
  return headers.get("x-admin-token")?.trim() || undefined;
}

/**
 * True when the request comes from this machine: the TCP peer is loopback and so
 * is the client address after TRUSTED_PROXIES processing, and the request
 * carries no X-Forwarded-For or Forwarded header. A request that came through a
 * proxy — even one on this machine, even one saying `for=127.0.0.1` — is not
 * local: admin access never derives from a forwarded address.
 */
export function isLocalRequest(ctx: RequestContext, headers?: Headers): boolean {
  if (headers && (headers.has("x-forwarded-for") || headers.has("forwarded"))) return false;
  return isLoopback(ctx.conn.remoteAddr) && isLoopback(ctx.clientIp);
}

/** Middleware for the admin routes: 401 for a missing/wrong token, 403 when no token is configured. */
export function adminGuard(options: AdminGuardOptions): MiddlewareHandler {
  const token = options.token && options.token.length > 0 ? options.token : undefined;
  const expected = token ? digest(token) : undefined;
  return async (c, next) => {
    const ctx = c.get("ctx") as RequestContext;
    if (isLocalRequest(ctx, c.req.raw.headers)) return await next();
    if (!expected) {
      return c.text(
        "403 Forbidden: the admin endpoints are reachable from loopback only; set ADMIN_TOKEN to allow remote access\n",
        403,
      );
    }
    const given = presentedToken(c.req.raw.headers);
    if (given === undefined || !timingSafeEqual(digest(given), expected)) {
      return c.text(
        `401 Unauthorized: ${given === undefined ? "missing" : "wrong"} admin token ` +
          "(send Authorization: Bearer <ADMIN_TOKEN>)\n",
        401,
        { "WWW-Authenticate": 'Bearer realm="proxy-admin"' },
      );
    }
    await next();
  };
}
