/**
 * The per-request context every phase of a proxied request shares.
 *
 * A listener (Deno.serve or node:http) builds the {@linkcode ConnInfo} from
 * what it alone can see (the socket, the request-target form); the app turns
 * it into a {@linkcode RequestContext} that the phases read and annotate.
 *
 * @module
 */

import type { RawUpgrade } from "../server/types.ts";

/** How the client wrote the request-target (RFC 9112 §3.2). */
export type TargetForm =
  /** `GET /path` — addressed to this server: reverse proxy or the proxy's own endpoints. */
  | "origin"
  /** `GET http://host/path` — forward-proxy request for another origin. */
  | "absolute"
  /** `CONNECT host:port` — a tunnel; handled by the listener, never by the app. */
  | "authority";

/** What the listener knows about the connection a request came in on. */
export interface ConnInfo {
  /** Peer IP address of the TCP connection (IPv4 dotted or IPv6 without brackets). */
  readonly remoteAddr: string;
  readonly remotePort: number;
  /** Request-target form; Deno.serve cannot tell, so it reports "origin". */
  readonly form: TargetForm;
  /** True when the client reached the proxy over TLS. */
  readonly secure: boolean;
  /**
   * Settles once the response has been fully sent or the client went away.
   * Per-request accounting that must cover the body (in-flight slots,
   * least-connections counts) waits on this instead of wrapping the body,
   * which would cost Deno.serve its fast path for byte bodies.
   */
  readonly completed?: Promise<void>;
}

/** Value of the X-Cache header the cache phase reports. */
export type CacheStatus = "HIT" | "MISS" | "STALE" | "REVALIDATED" | "BYPASS";

/**
 * How a request passes the phases (src/pipeline/phases.ts): proxied HTTP, a
 * fresh cache hit, an upgrade relayed to a backend, or a CONNECT tunnel.
 */
export type RequestKind = "http" | "hit" | "upgrade" | "connect";

/**
 * Mutable per-request state (Pingora's CTX), created once per request before
 * the first phase; phases read and annotate it instead of keeping side tables.
 */
export interface RequestContext {
  /** Request id: X-Request-Id from a trusted peer, else generated; sent upstream and back. */
  readonly id: string;
  readonly conn: ConnInfo;
  /**
   * Which driver runs the request (src/pipeline/phases.ts): `http`, `upgrade` or
   * `connect`. A `hit` is an `http` request the cache answered (`cacheStatus`).
   */
  readonly kind: RequestKind;
  /** `performance.now()` when the request entered the app. */
  readonly startedAt: number;
  /** Client address after TRUSTED_PROXIES processing (X-Forwarded-For from trusted peers). */
  clientIp: string;
  /** Authenticated proxy user (Proxy-Authorization), when proxy auth is on. */
  user?: string;
  /** CONNECT's request-target (host without brackets, port). */
  authority?: { readonly host: string; readonly port: number };
  /** Upstream URL for absolute-form requests; undefined for origin-form (the balancer decides). */
  target?: URL;
  /** Set by the cache phase. */
  cacheStatus?: CacheStatus;
  /** Backend origin (scheme://host:port) that served the request, set by the balancer. */
  backend?: string;
  /** An upgrade's upstream connection once the backend switched protocols (set by the route). */
  upgraded?: RawUpgrade;
}

/** One phase of the proxied request: everything after the request filters. */
export type Handler = (req: Request, ctx: RequestContext) => Promise<Response>;

/** A phase that wraps the next one (cache around compression around routing). */
export type Wrapper = (next: Handler) => Handler;
