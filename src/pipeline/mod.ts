/**
 * Composing the request-filter phases of a proxied request: header hygiene →
 * admission → client ACL → proxy auth → body limit → rate limit → filter.
 * Each module owns its phase as a {@linkcode Wrapper} (`requestHygienePhase`,
 * `bodyLimitPhase`, `auth.phase`, `rateLimiter.phase` …); this module holds
 * `compose` and the phases that are a line or two over a module's plain API.
 *
 * Why plain wrappers and not Hono middleware: measured on Deno 2.9, each
 * Hono middleware hop and Hono's per-request context cost about a
 * microsecond or more, and a proxied request passes seven phases; a
 * function call costs nanoseconds. Hono serves the proxy's own endpoints,
 * where that cost does not matter. The modules keep their Hono middlewares
 * for anyone who embeds them in a Hono app.
 *
 * @module
 */
export { tunnelAdmission, type TunnelAdmissionOptions } from "./tunnel.ts";
import type { Handler, RequestContext, Wrapper } from "../context/mod.ts";
import type { Admission } from "../admission/mod.ts";
import { AdmissionRejected } from "../admission/mod.ts";
import type { Filter } from "../filter/mod.ts";
import { blockedResponse } from "../filter/mod.ts";

/** `wrappers[0]` runs first; `undefined` entries are phases that are off. */
export function compose(handler: Handler, ...wrappers: (Wrapper | undefined)[]): Handler {
  let h = handler;
  for (let i = wrappers.length - 1; i >= 0; i--) {
    const w = wrappers[i];
    if (w) h = w(h);
  }
  return h;
}

const text = (status: number, body: string, extra: Record<string, string> = {}) =>
  new Response(`${body}\n`, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", ...extra },
  });

/**
 * At most MAX_CONCURRENCY requests in flight; the rest wait FIFO or get 503
 * with Retry-After. A slot is held until the response has been sent
 * (`ctx.conn.completed`), not just until its headers.
 */
export function admissionPhase(admission: Admission): Wrapper {
  return (next) => async (req, ctx) => {
    let release: () => void;
    try {
      release = await admission.acquire();
    } catch (err) {
      if (!(err instanceof AdmissionRejected)) throw err;
      return text(503, err.message, { "retry-after": String(err.retryAfter) });
    }
    let res: Response;
    try {
      res = await next(req, ctx);
    } catch (err) {
      release();
      throw err;
    }
    const completed = ctx.conn.completed;
    if (completed) completed.then(release, release);
    else release();
    return res;
  };
}

/** Refuses clients outside ALLOWED_CLIENTS for the requests `applies` selects. */
export function aclPhase(
  isAllowedClient: (ip: string) => boolean,
  applies: (ctx: RequestContext) => boolean,
): Wrapper {
  return (next) => (req, ctx) =>
    !applies(ctx) || isAllowedClient(ctx.clientIp) ? next(req, ctx) : Promise.resolve(
      text(403, `403 Forbidden: client ${ctx.clientIp} is not in ALLOWED_CLIENTS`),
    );
}

/** Host and path of the effective request URL, without the cost of `new URL`. */
export function hostAndPath(url: string): { host: string; path: string } {
  const start = url.indexOf("//") + 2;
  let slash = url.indexOf("/", start);
  if (slash < 0) slash = url.length;
  let authority = url.slice(start, slash);
  const at = authority.lastIndexOf("@");
  if (at >= 0) authority = authority.slice(at + 1);
  const host = authority.startsWith("[")
    ? authority.slice(1, authority.indexOf("]"))
    : authority.replace(/:\d*$/, "");
  return { host, path: slash < url.length ? url.slice(slash) : "/" };
}

/** Blocklists: 403 naming the category and rule, before anything reaches the network. */
export function filterPhase(filter: Filter): Wrapper {
  return (next) => (req, ctx) => {
    const { host, path } = hostAndPath(ctx.target?.href ?? req.url);
    const verdict = filter.check(host, path);
    return verdict ? Promise.resolve(blockedResponse(verdict)) : next(req, ctx);
  };
}
