/**
 * The request-filter phases of a proxied request as {@linkcode Wrapper}s
 * over the module APIs: header hygiene → admission → client ACL → proxy
 * auth → body limit → rate limit → filter. `compose` chains them around the
 * cache/compression/route handler, skipping phases that are off.
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
import type { RateLimiter } from "../ratelimit/mod.ts";
import { rateLimitHeaders } from "../ratelimit/mod.ts";
import type { ProxyAuth } from "../security/mod.ts";
import {
  BodyTooLargeError,
  checkFraming,
  checkHeaderCount,
  checkHeaderSize,
  limitStream,
} from "../security/mod.ts";

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

/** 431 beyond MAX_HEADER_COUNT / MAX_HEADER_SIZE, 400 for two Host fields or ambiguous framing. */
export function hygienePhase(options: { maxHeaderCount: number; maxHeaderSize: number }): Wrapper {
  const { maxHeaderCount, maxHeaderSize } = options;
  return (next) => (req, ctx) => {
    const h = req.headers;
    // One pass for both limits: this runs on every request.
    let count = 0, size = 0;
    for (const [k, v] of h) {
      count++;
      size += k.length + v.length + 4;
    }
    // RFC 9112 §3.2: more than one Host field is a 400 (Headers joins repeats with ", ").
    if (h.get("host")?.includes(",")) {
      return Promise.resolve(text(400, "400 Bad Request: more than one Host header"));
    }
    const refusal =
      (count > maxHeaderCount ? checkHeaderCount(count, maxHeaderCount) : undefined) ??
        (size > maxHeaderSize ? checkHeaderSize(h, maxHeaderSize) : undefined) ??
        (h.has("content-length") || h.has("transfer-encoding") ? checkFraming(h) : undefined);
    return refusal ? Promise.resolve(refusal) : next(req, ctx);
  };
}

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

/** Proxy authentication for forward requests: 407 without valid credentials, which never go upstream. */
export function authPhase(auth: ProxyAuth): Wrapper {
  return (next) => async (req, ctx) => {
    if (ctx.conn.form === "origin") return await next(req, ctx);
    const header = req.headers.get("proxy-authorization");
    const user = await auth.verify(header);
    if (user === undefined) {
      return auth.challenge(header ? "wrong user name or password" : "credentials required");
    }
    ctx.user = user;
    let forwarded = req;
    try {
      req.headers.delete("proxy-authorization");
    } catch {
      const headers = new Headers(req.headers);
      headers.delete("proxy-authorization");
      forwarded = new Request(req, { headers });
    }
    return await next(forwarded, ctx);
  };
}

/** MAX_BODY_SIZE: 413 for a declared length over it, and for a streamed body that crosses it. */
export function bodyLimitPhase(maxBytes: number): Wrapper {
  const tooLarge = () =>
    text(413, `413 Content Too Large: ${new BodyTooLargeError(maxBytes).message}`);
  return (next) => async (req, ctx) => {
    const cl = req.headers.get("content-length");
    if (cl !== null) {
      return Number(cl.split(",")[0]) > maxBytes ? tooLarge() : await next(req, ctx);
    }
    if (req.body === null) return await next(req, ctx);
    let exceeded = false;
    const body = limitStream(req.body, maxBytes, () => exceeded = true);
    const limited = new Request(req, { body, duplex: "half" } as RequestInit);
    let res: Response;
    try {
      res = await next(limited, ctx);
    } catch (err) {
      if (!exceeded) throw err;
      return tooLarge();
    }
    if (!exceeded) return res;
    // Whatever the upstream made of the aborted upload is not the client's answer.
    await res.body?.cancel().catch(() => {});
    return tooLarge();
  };
}

/** RATE_LIMIT_REQUESTS per RATE_LIMIT_WINDOW: 429 beyond, RateLimit-* headers on limited routes. */
export function rateLimitPhase(limiter: RateLimiter): Wrapper {
  return (next) => async (req, ctx) => {
    const d = await limiter.decide(ctx, req.headers);
    if (d.store === "exempt") return await next(req, ctx);
    if (!d.allowed) return limiter.refusal(d, ctx);
    let res = await next(req, ctx);
    const headers = rateLimitHeaders(d);
    try {
      for (const k in headers) res.headers.set(k, headers[k]);
    } catch {
      // Immutable headers: copy the response once, not once per header.
      res = new Response(res.body, res);
      for (const k in headers) res.headers.set(k, headers[k]);
    }
    return res;
  };
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
