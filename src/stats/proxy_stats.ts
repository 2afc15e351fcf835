/**
 * The proxy's own counters (requests, methods, statuses, bytes, latency,
 * tunnels) and the aggregation of every module's {@linkcode StatsSource}
 * into `/proxy-stats` JSON and `/metrics` text.
 *
 * Counters are plain numbers mutated on one thread, so they stay exact
 * under any concurrency.
 *
 * @module
 */
import { Histogram, type HistogramState } from "./histogram.ts";
import { counter, gauge, type MetricFamily, type StatsSource } from "./metric.ts";

/** One serving thread's statistics, as plain data that can cross threads. */
export interface ThreadReport {
  thread: number;
  /** Its `/proxy-stats` document. */
  doc: Record<string, unknown>;
  latency: HistogramState;
  recent: HistogramState;
  metrics: MetricFamily[];
}

/** Length of one window of the recent-latency histogram. */
const RECENT_WINDOW_MS = 10_000;

const METHODS = ["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "CONNECT"] as const;
type MethodKey = typeof METHODS[number] | "OTHER";

export interface ProxyStatsOptions {
  /** What the listener serves, reported by /healthz and /proxy-stats. */
  mode: string;
  listener: string;
}

export class ProxyStats {
  readonly startTime = new Date();
  readonly mode: string;
  readonly listener: string;
  requestsTotal = 0;
  requestsSuccess = 0;
  requestsError = 0;
  inFlight = 0;
  bytesTransferred = 0;
  clientConnections = 0;
  /** Connections closed at accept because MAX_CLIENT_CONNECTIONS were open. */
  connectionsRejected = 0;
  /** Connections cut for sending no complete request head within HEADER_TIMEOUT. */
  headerTimeouts = 0;
  /** Requests answered 408 for a body slower than BODY_TIMEOUT or BODY_MIN_RATE. */
  bodyTimeouts = 0;
  openTunnels = 0;
  tunnelsTotal = 0;
  tunnelBytesUp = 0;
  tunnelBytesDown = 0;
  tunnelsRefused = 0;
  /** Upgraded connections (WebSocket and other Upgrade protocols) being relayed now. */
  openWebSockets = 0;
  webSocketsTotal = 0;
  /** Bytes relayed after 101, client → backend and backend → client. */
  webSocketBytesUp = 0;
  webSocketBytesDown = 0;
  readonly methods: Record<MethodKey, number> = {
    GET: 0,
    POST: 0,
    PUT: 0,
    DELETE: 0,
    HEAD: 0,
    PATCH: 0,
    OPTIONS: 0,
    CONNECT: 0,
    OTHER: 0,
  };
  readonly statusClasses = { "1xx": 0, "2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0 };
  readonly latency = new Histogram();
  /** Latency of the last 10–20 s: two windows, rotated every RECENT_WINDOW_MS. */
  #recent = new Histogram();
  #previous = new Histogram();
  #windowStart = Date.now();
  readonly #sources: StatsSource[] = [];

  constructor(options: ProxyStatsOptions) {
    this.mode = options.mode;
    this.listener = options.listener;
  }

  /** Registers a module's statistics (cache, balancer, rate limiter…). */
  add(source: StatsSource): void {
    this.#sources.push(source);
  }

  /** Counts a request entering the proxy. */
  begin(method: string): void {
    this.requestsTotal++;
    this.inFlight++;
    const key = (METHODS as readonly string[]).includes(method) ? method as MethodKey : "OTHER";
    this.methods[key]++;
  }

  /** Counts a request's response (headers sent); `latencyMs` is time to response headers. */
  end(status: number, latencyMs: number): void {
    this.inFlight--;
    if (status < 400) this.requestsSuccess++;
    else this.requestsError++;
    const cls = `${
      Math.min(5, Math.max(1, Math.floor(status / 100)))
    }xx` as keyof ProxyStats["statusClasses"];
    this.statusClasses[cls]++;
    this.latency.record(latencyMs);
    this.#rotate();
    this.#recent.record(latencyMs);
  }

  #rotate(): void {
    const now = Date.now();
    if (now - this.#windowStart < RECENT_WINDOW_MS) return;
    // A whole window without requests leaves nothing recent.
    const idle = now - this.#windowStart >= 2 * RECENT_WINDOW_MS;
    const old = this.#previous;
    this.#previous = this.#recent;
    if (idle) this.#previous.reset();
    old.reset();
    this.#recent = old;
    this.#windowStart = now;
  }

  /** Percentiles over the last 10–20 seconds (what a live chart wants). */
  recentLatency(): ReturnType<Histogram["summary"]> {
    this.#rotate();
    const both = new Histogram();
    both.merge(this.#previous);
    both.merge(this.#recent);
    return both.summary();
  }

  tunnelOpened(): void {
    this.methods.CONNECT++;
    this.requestsTotal++;
    this.openTunnels++;
    this.tunnelsTotal++;
  }

  tunnelClosed(bytesUp: number, bytesDown: number, ok: boolean): void {
    this.openTunnels--;
    this.tunnelBytesUp += bytesUp;
    this.tunnelBytesDown += bytesDown;
    this.bytesTransferred += bytesUp + bytesDown;
    if (ok) this.requestsSuccess++;
    else this.requestsError++;
  }

  /** An upgraded connection starts relaying (after the backend's 101 reached the client). */
  webSocketOpened(): void {
    this.openWebSockets++;
    this.webSocketsTotal++;
  }

  /** Bytes relayed on an upgraded connection, counted as they pass (long-lived sockets show). */
  webSocketBytes(up: number, down: number): void {
    this.webSocketBytesUp += up;
    this.webSocketBytesDown += down;
    this.bytesTransferred += up + down;
  }

  webSocketClosed(): void {
    this.openWebSockets--;
  }

  /** A CONNECT refused before a tunnel opened (ACL, port, filter, address). */
  tunnelRefused(status: number): void {
    this.methods.CONNECT++;
    this.requestsTotal++;
    this.requestsError++;
    this.tunnelsRefused++;
    this.statusClasses[status >= 500 ? "5xx" : "4xx"]++;
  }

  #section(name: string): Record<string, unknown> | undefined {
    const s = this.#sources.find((x) => x.name === name);
    return s ? s.snapshot() as Record<string, unknown> : undefined;
  }

  /** The `/proxy-stats` document. */
  snapshot(): Record<string, unknown> {
    const cache = this.#section("cache");
    const ratelimit = this.#section("rate_limit");
    const hits = Number(cache?.cache_hits ?? 0);
    const misses = Number(cache?.cache_misses ?? 0);
    const doc: Record<string, unknown> = {
      requests_total: this.requestsTotal,
      requests_success: this.requestsSuccess,
      requests_error: this.requestsError,
      bytes_transferred: this.bytesTransferred,
      cache_hits: hits,
      cache_misses: misses,
      cache_hit_ratio: hits + misses === 0
        ? 0
        : Math.round((hits / (hits + misses)) * 10000) / 10000,
      active_connections: this.inFlight + this.openTunnels + this.openWebSockets,
      in_flight_requests: this.inFlight,
      client_connections: this.clientConnections,
      client_connections_rejected: this.connectionsRejected,
      header_timeouts: this.headerTimeouts,
      body_timeouts: this.bodyTimeouts,
      rate_limited_requests: Number(ratelimit?.rate_limited_requests ?? 0),
      request_methods: { ...this.methods },
      status_codes: { ...this.statusClasses },
      start_time: this.startTime.toISOString(),
      uptime_seconds: Math.floor((Date.now() - this.startTime.getTime()) / 1000),
      latency_ms: this.latency.summary(),
      latency_recent_ms: this.recentLatency(),
      open_tunnels: this.openTunnels,
      tunnels: {
        open: this.openTunnels,
        total: this.tunnelsTotal,
        refused: this.tunnelsRefused,
        bytes_up: this.tunnelBytesUp,
        bytes_down: this.tunnelBytesDown,
      },
      open_websockets: this.openWebSockets,
      websockets: {
        open: this.openWebSockets,
        total: this.webSocketsTotal,
        bytes_up: this.webSocketBytesUp,
        bytes_down: this.webSocketBytesDown,
      },
      mode: this.mode,
      listener: this.listener,
    };
    for (const s of this.#sources) doc[s.name] = s.snapshot();
    return doc;
  }

  /** This isolate's share, for a proxy that serves from several threads (see cluster.ts). */
  report(thread: number): ThreadReport {
    const recent = new Histogram();
    this.#rotate();
    recent.merge(this.#previous);
    recent.merge(this.#recent);
    return {
      thread,
      doc: this.snapshot(),
      latency: this.latency.toState(),
      recent: recent.toState(),
      metrics: this.metrics(),
    };
  }

  /** Every metric family: the proxy's own and each module's. */
  metrics(): MetricFamily[] {
    const l = this.latency;
    const families: MetricFamily[] = [
      counter(
        "proxy_requests_total",
        "Requests received, by method.",
        Object.entries(this.methods)
          .map(([method, value]) => ({ labels: { method }, value })),
      ),
      counter(
        "proxy_responses_total",
        "Responses sent, by status class.",
        Object.entries(this.statusClasses)
          .map(([code, value]) => ({ labels: { code }, value })),
      ),
      gauge("proxy_in_flight_requests", "Requests being processed.", this.inFlight),
      gauge(
        "proxy_client_connections",
        "Open client connections.",
        this.clientConnections,
      ),
      counter(
        "proxy_client_connections_rejected_total",
        "Client connections closed at accept because MAX_CLIENT_CONNECTIONS were open.",
        [{ value: this.connectionsRejected }],
      ),
      counter(
        "proxy_client_timeouts_total",
        "Client connections cut by a timeout, by kind (header: HEADER_TIMEOUT; body: " +
          "BODY_TIMEOUT or BODY_MIN_RATE, answered 408).",
        [
          { labels: { kind: "header" }, value: this.headerTimeouts },
          { labels: { kind: "body" }, value: this.bodyTimeouts },
        ],
      ),
      counter(
        "proxy_bytes_transferred_total",
        "Body bytes sent to clients plus tunnel and WebSocket bytes.",
        [{ value: this.bytesTransferred }],
      ),
      gauge("proxy_open_tunnels", "CONNECT tunnels open.", this.openTunnels),
      counter("proxy_tunnels_total", "CONNECT tunnels opened.", [{ value: this.tunnelsTotal }]),
      counter("proxy_tunnel_bytes_total", "Bytes through CONNECT tunnels.", [
        { labels: { direction: "up" }, value: this.tunnelBytesUp },
        { labels: { direction: "down" }, value: this.tunnelBytesDown },
      ]),
      gauge(
        "proxy_open_websockets",
        "Upgraded connections (WebSocket) being relayed.",
        this.openWebSockets,
      ),
      counter("proxy_websockets_total", "Upgraded connections (WebSocket) relayed.", [
        { value: this.webSocketsTotal },
      ]),
      counter("proxy_websocket_bytes_total", "Bytes relayed on upgraded connections.", [
        { labels: { direction: "up" }, value: this.webSocketBytesUp },
        { labels: { direction: "down" }, value: this.webSocketBytesDown },
      ]),
      {
        name: "proxy_request_duration_seconds",
        help: "Time to response headers.",
        type: "summary",
        samples: [
          ...[0.5, 0.9, 0.99].map((q) => ({
            labels: { quantile: String(q) },
            value: l.percentile(q * 100) / 1000,
          })),
          { suffix: "_sum", value: l.sum / 1000 },
          { suffix: "_count", value: l.count },
        ],
      },
      gauge(
        "proxy_uptime_seconds",
        "Seconds since start.",
        Math.floor((Date.now() - this.startTime.getTime()) / 1000),
      ),
    ];
    for (const s of this.#sources) if (s.metrics) families.push(...s.metrics());
    return families;
  }
}
