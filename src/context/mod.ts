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

/**
 * The header fields of a request as the request filters and the cache read
 * them: a `Headers`, or the listener's own parsed list on its hit path. Names
 * are asked in lower case; repeated fields read as one value joined with ", "
 * (as `Headers` does), and `forEach` visits them combined, sorted by name.
 */
export interface HeaderView {
  get(name: string): string | null;
  has(name: string): boolean;
  forEach(callback: (value: string, name: string) => void): void;
}

/**
 * What the request filters, the cache's fresh-hit check and the bookkeeping
 * read of a request: a Web `Request` satisfies it, and so does the
 * listener's view of a parsed head, which answers a plain hit without
 * building one. `url` is the serialised effective request URL (`new URL(…).href`).
 */
export interface RequestView {
  readonly method: string;
  readonly url: string;
  readonly headers: HeaderView;
  readonly body: ReadableStream<Uint8Array> | null;
}

/** A fresh cache hit the listener writes itself: no Response is built for it. */
export interface HitAnswer {
  readonly status: number;
  /** The Content-Length the response carries (a HEAD's too). */
  readonly contentLength: number;
  /** The body written after the head; null for HEAD. */
  readonly body: Uint8Array | null;
  /** The response's Age value. */
  readonly age: string;
  /** The entry's head, serialised once (HeadTemplate in src/server/http1/response.ts). */
  readonly template: { render(age: string, requestId: string, keepAlive: boolean): string };
}

/** A response as the listener writes it: the head (with its blank line, latin1) and the body. */
export interface WireAnswer {
  readonly head: string;
  readonly body: Uint8Array | null;
}

/**
 * The listener's hit path: a plain GET/HEAD the app can answer from memory
 * without a Request or a Response, after every check it would run for the
 * Request. Undefined: serve it the usual way (nothing was counted).
 */
export type HitFetch = (
  req: RequestView,
  conn: ConnInfo,
  keepAlive: boolean,
) => WireAnswer | undefined;

/** One phase of the proxied request: everything after the request filters. */
export type Handler = (req: Request, ctx: RequestContext) => Promise<Response>;

/** A phase that wraps the next one (cache around compression around routing). */
export type Wrapper = (next: Handler) => Handler;
