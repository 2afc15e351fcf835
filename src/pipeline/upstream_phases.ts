/**
 * The phases from the cache on: the cache lookup (whose fresh in-memory hit
 * ends the fast path) and the route, which ends the chain — an absolute-form
 * request goes to its destination, an origin-form one to the balancer, an
 * upgrade to a backend that may switch protocols (the raw connection is left
 * in `ctx.upgraded`, not in a side table).
 *
 * @module
 */
import type { Balancer, SendFn } from "../balancer/mod.ts";
import type { Cache } from "../cache/mod.ts";
import type { Config } from "../config/mod.ts";
import type { Handler, RequestContext, Wrapper } from "../context/mod.ts";
import type { Upstream } from "../forward/from_config.ts";
import type { ForwardRequestInfo } from "../forward/mod.ts";
import { plainText } from "../respond/mod.ts";
import { type Cidr, forwardedForValue } from "../security/mod.ts";
import type { PhaseImpl } from "./phases.ts";

/** The cache lookup; off when CACHE_BACKEND=off. */
export function cachePhase(cache: Cache): PhaseImpl | undefined {
  if (cache.backendName === "off") return undefined;
  return { wrap: cache.wrap, hit: cache.serveHit, fresh: cache.freshHit, answer: cache.answerHit };
}

/** The authority of a serialised http(s) URL ("host:port" as written), without `new URL`. */
export function authorityOf(url: string): string {
  const start = url.indexOf("//") + 2;
  const end = url.indexOf("/", start);
  return end < 0 ? url.slice(start) : url.slice(start, end);
}

export interface RoutePhase extends PhaseImpl {
  /** The balancer's `send`: one attempt to one backend. */
  readonly send: SendFn;
  /** The balancer is built with `send`, then handed back here. */
  useBalancer(balancer: Balancer): void;
}

export interface RouteOptions {
  config: Config;
  /**
   * TLS interception is on: an upgrade inside an intercepted tunnel (absolute-form, secure)
   * goes to the tunnel's origin rather than to BACKEND_SERVERS.
   */
  intercepting?: boolean;
  /** Refuses names pointing inside (FORWARD_ALLOW_PRIVATE), for intercepted upgrades. */
  checkHost?: (host: string) => Promise<string | undefined> | string | undefined;
  upstream: Upstream;
  trusted: readonly Cidr[];
}

const NO_BACKEND = "no backend configured: this port is a forward proxy (send absolute-form " +
  "requests, e.g. curl -x), or set BACKEND_SERVERS to reverse-proxy origin-form requests";

/** The end of the chain for `http` and `upgrade` requests. */
export function routePhase(o: RouteOptions): RoutePhase {
  const { upstream, trusted } = o;
  const hasBackends = o.config.backends.length > 0;
  let balancer: Balancer | undefined;

  /**
   * What the forwarder tells the upstream about the client. For the backends the
   * Host is the effective request URL's authority: the Host field for origin-form,
   * the request-target's authority for absolute-form (RFC 9112 §3.2.2) — the same
   * URL the cache keys on, so what is stored is what the backend was asked for.
   */
  const infoOf = (req: Request, ctx: RequestContext, gateway: boolean): ForwardRequestInfo => ({
    clientIp: ctx.clientIp,
    forwardedFor: forwardedForValue(
      ctx.conn.remoteAddr,
      req.headers.get("x-forwarded-for"),
      trusted,
    ),
    proto: ctx.conn.secure ? "https" : "http",
    host: gateway ? authorityOf(req.url) : req.headers.get("host") ?? "",
    preserveHost: gateway,
    // Written into the upstream head by the forwarder: setting it on the request's own
    // headers would cost Deno's lazily read header list (measured: a third of the rate).
    requestId: ctx.id,
  });

  const send: SendFn = async (req, target, ctx) => {
    if (ctx.kind !== "upgrade") {
      return await upstream.reverse.forward(req, target, infoOf(req, ctx, true));
    }
    const up = await upstream.reverse.upgrade(req, target, infoOf(req, ctx, true));
    // A refusal is an ordinary response (its upstream connection already closing).
    if (up instanceof Response) return up;
    ctx.upgraded = up;
    // The balancer only needs to know this attempt worked; the bytes go through the socket.
    return new Response(null, { status: 204 });
  };

  const http: Handler = (req, ctx) => {
    if (ctx.target) return upstream.forward.forward(req, ctx.target, infoOf(req, ctx, false));
    if (!hasBackends || balancer === undefined) return Promise.resolve(plainText(502, NO_BACKEND));
    return balancer.handler(req, ctx);
  };
  /** wss:// inside an intercepted tunnel: to the tunnel's origin, like any forwarded request. */
  const interceptedUpgrade: Handler = async (req, ctx) => {
    // The CONNECT was admitted (ACL, auth, rate limit) and the filter phase saw the URL;
    // the origin's address is still checked like any forwarded request's.
    const target = new URL(req.url);
    const refused = await o.checkHost?.(target.hostname);
    if (refused) return plainText(403, `403 Forbidden: ${refused}`);
    const up = await upstream.forward.upgrade(req, target, infoOf(req, ctx, false));
    if (up instanceof Response) return up;
    ctx.upgraded = up;
    return new Response(null, { status: 204 }); // never sent: the listener pipes `upgraded`
  };
  const upgrade: Handler = (req, ctx) => {
    if (o.intercepting && ctx.conn.form === "absolute" && ctx.conn.secure) {
      return interceptedUpgrade(req, ctx);
    }
    if (ctx.conn.form !== "origin" || !hasBackends || balancer === undefined) {
      return Promise.resolve(
        plainText(501, "upgrades pass through to BACKEND_SERVERS only (use CONNECT for tunnels)"),
      );
    }
    return balancer.handler(req, ctx);
  };
  const ends = (h: Handler): Wrapper => () => h;

  return {
    wrap: ends(http),
    byKind: { upgrade: ends(upgrade) },
    send,
    useBalancer(b) {
      balancer = b;
    },
  };
}
