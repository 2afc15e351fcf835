/**
 * The request-filter phases, each a {@linkcode PhaseImpl} over a module's
 * plain API (src/security, src/ratelimit, src/filter): the wrapper that runs
 * in the chain and the synchronous `passes` that lets the fast path skip it.
 * Every refusal is a {@linkcode plainText} answer, the same for every kind of
 * request, so GET and CONNECT get the same refusal for the same client and host.
 *
 * @module
 */
import type { Handler, RequestContext, RequestView, Wrapper } from "../context/mod.ts";
import { blockedResponse, type Filter } from "../filter/mod.ts";
import type { RateLimiter } from "../ratelimit/mod.ts";
import { plainText } from "../respond/mod.ts";
import {
  bodyLimitPhase,
  hygieneCheck,
  type ProxyAuth,
  type RequestHygieneOptions,
} from "../security/mod.ts";
import type { PhaseImpl } from "./phases.ts";

/** Header count/size (431), two Host fields and ambiguous framing (400). */
export function hygiene(options: RequestHygieneOptions): PhaseImpl {
  const refusalOf = hygieneCheck(options);
  const wrap: Wrapper = (next) => (req, ctx) => {
    const refusal = refusalOf(req.headers);
    return refusal ? Promise.resolve(refusal) : next(req, ctx);
  };
  return { wrap, passes: (req) => refusalOf(req.headers) === undefined };
}

/**
 * ALLOWED_CLIENTS: forward proxying (absolute-form, CONNECT) always; the
 * gateway (origin-form) only when `forOriginForm` (ALLOWED_CLIENTS set explicitly).
 */
export function clientAcl(
  isAllowedClient: (ip: string) => boolean,
  forOriginForm: boolean,
): PhaseImpl {
  const allowed = (ctx: RequestContext) =>
    (!forOriginForm && ctx.conn.form === "origin") || isAllowedClient(ctx.clientIp);
  const wrap: Wrapper = (next) => (req, ctx) =>
    allowed(ctx) ? next(req, ctx) : Promise.resolve(
      plainText(403, `403 Forbidden: client ${ctx.clientIp} is not in ALLOWED_CLIENTS`),
    );
  return { wrap, passes: (_req, ctx) => allowed(ctx) };
}

/** Proxy-Authorization for forward proxying; origin-form requests (the gateway) pass. */
export function auth(proxyAuth: ProxyAuth): PhaseImpl {
  return { wrap: proxyAuth.phase, passes: (_req, ctx) => ctx.conn.form === "origin" };
}

/** MAX_BODY_SIZE (413); undefined when off. */
export function bodyLimit(maxBytes: number): PhaseImpl | undefined {
  if (maxBytes <= 0) return undefined;
  return {
    wrap: bodyLimitPhase(maxBytes),
    passes: (req) => {
      if (req.body === null) return true;
      const cl = req.headers.get("content-length");
      return cl !== null && Number(cl.split(",")[0]) <= maxBytes;
    },
  };
}

/** RATE_LIMIT_REQUESTS per client; undefined when off. Exempt clients pass without counting. */
export function rateLimit(limiter: RateLimiter, enabled: boolean): PhaseImpl | undefined {
  if (!enabled) return undefined;
  return { wrap: limiter.phase, passes: (_req, ctx) => limiter.passesExempt(ctx) };
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
export function filter(f: Filter): PhaseImpl {
  const verdict = (req: RequestView, ctx: RequestContext) => {
    const { host, path } = hostAndPath(ctx.target?.href ?? req.url);
    return f.peek(host, path);
  };
  const wrap: Wrapper = (next) => (req, ctx) => {
    const { host, path } = hostAndPath(ctx.target?.href ?? req.url);
    const v = f.check(host, path);
    return v ? Promise.resolve(blockedResponse(v)) : next(req, ctx);
  };
  // A verdict is a hash lookup; `passes` does not count it: a blocked request goes on to the
  // wrapper, which counts and answers it.
  return { wrap, passes: (req, ctx) => verdict(req, ctx) === undefined };
}

/** What the target check needs from the app. */
export interface TargetOptions {
  /** This proxy's Via token: a request that already passed here is a loop. */
  via: string;
  /** Refusal reason when a name resolves inside (undefined when FORWARD_ALLOW_PRIVATE=all). */
  checkHost?: (host: string) => Promise<string | undefined>;
  /** CONNECT_PORTS. */
  connectPorts: readonly number[];
}

/**
 * Absolute-form requests: a valid http(s) URL, no loop, no inside name; sets
 * `ctx.target`. CONNECT: a port in CONNECT_PORTS and no inside name.
 * Origin-form requests pass (the balancer chooses among the operator's backends).
 */
export function target(o: TargetOptions): PhaseImpl {
  const inside = async (host: string) => {
    const refused = await o.checkHost?.(host);
    return refused ? plainText(403, `403 Forbidden: ${refused}`) : undefined;
  };
  const absolute = async (next: Handler, req: Request, ctx: RequestContext) => {
    let url: URL;
    try {
      url = new URL(req.url);
    } catch {
      return plainText(400, "bad request-target");
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      return plainText(
        400,
        `unsupported scheme ${url.protocol} (only http and https; use CONNECT for TLS)`,
      );
    }
    if (req.headers.get("via")?.includes(o.via)) return plainText(508, "loop detected");
    const refused = await inside(url.hostname);
    if (refused) return refused;
    ctx.target = url;
    return await next(req, ctx);
  };
  const wrap: Wrapper = (next) => (req, ctx) =>
    ctx.conn.form === "absolute" ? absolute(next, req, ctx) : next(req, ctx);
  const connect: Wrapper = (next) => async (req, ctx) => {
    const { host, port } = ctx.authority!;
    if (!o.connectPorts.includes(port)) {
      return plainText(
        403,
        `CONNECT to port ${port} is not allowed; add it to CONNECT_PORTS (now ${
          o.connectPorts.join(",")
        }) to allow it`,
      );
    }
    return await inside(host) ?? await next(req, ctx);
  };
  return {
    wrap,
    byKind: { connect },
    passes: (_req, ctx) => ctx.conn.form === "origin",
  };
}
