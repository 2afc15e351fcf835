/**
 * Every setting of `proxy serve`, in one table: environment name, flag,
 * default, meaning and parser. The typed {@linkcode Config} is derived from
 * this table, so a setting cannot be read without being declared here.
 *
 * @module
 */
import {
  backend,
  boolean,
  bytes,
  cidr,
  duration,
  integer,
  list,
  oneOf,
  type Parser,
  privateAllowance,
  rateLimitKey,
  redisUrl,
  text,
  threadCount,
} from "./parsers.ts";
import { hostPortList } from "../redis/settings.ts";
import { STRATEGY_NAMES } from "../balancer/strategy.ts";

/** SERVE_THREADS: `auto` is every CPU where SO_REUSEPORT spreads connections (Linux), else 1. */
function serveThreadCount(): Parser<number> {
  const count = threadCount();
  return {
    kind: count.kind,
    parse: (raw) =>
      raw.trim().toLowerCase() === "auto" && Deno.build.os !== "linux" ? 1 : count.parse(raw),
  };
}

export interface Setting<T> {
  /** Environment variable and `.env` key. */
  readonly env: string;
  /** Long flag name without dashes, where the setting has one. */
  readonly flag?: string;
  /** Default as the user would write it. */
  readonly default: string;
  readonly group: Group;
  readonly description: string;
  readonly parser: Parser<T>;
}

export type Group =
  | "server"
  | "backends"
  | "cache"
  | "redis"
  | "compression"
  | "filtering"
  | "rate limiting"
  | "security"
  | "tls interception"
  | "logging"
  | "dashboard";

/**
 * "Our own networks": loopback, private (RFC 1918, fc00::/7), carrier-grade NAT
 * (100.64.0.0/10, where Tailscale and many ISPs' LANs live) and link-local. The
 * default of both ALLOWED_CLIENTS (who may use the proxy) and RATE_LIMIT_EXEMPT (who
 * is never limited), so a client the proxy lets in is never limited by surprise.
 */
export const OWN_NETWORKS =
  "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,fc00::/7,fe80::/10";

function setting<T>(s: Setting<T>): Setting<T> {
  return s;
}

export const SCHEMA = {
  // ── server ──────────────────────────────────────────────────────────
  host: setting({
    env: "HOST",
    flag: "host",
    default: "0.0.0.0",
    group: "server",
    description: "Address the proxy listens on.",
    parser: text(),
  }),
  port: setting({
    env: "PORT",
    flag: "port",
    default: "8080",
    group: "server",
    description: "Port the proxy listens on (0 picks a free port and logs it).",
    parser: integer(0, 65535),
  }),
  mode: setting({
    env: "PROXY_MODE",
    flag: "mode",
    default: "auto",
    group: "server",
    description: "What the port serves. forward: absolute-form requests and CONNECT tunnels. " +
      "reverse: a gateway in front of BACKEND_SERVERS (CONNECT gets 405). " +
      "both: forward and reverse on one port. auto: reverse when BACKEND_SERVERS is set, " +
      "forward otherwise.",
    parser: oneOf(["auto", "forward", "reverse", "both"] as const),
  }),
  connectionTimeout: setting({
    env: "CONNECTION_TIMEOUT",
    flag: "connection-timeout",
    default: "30",
    group: "server",
    description:
      "Longest wait to connect to an upstream and to receive its response headers (504 after).",
    parser: duration("s", 1),
  }),
  maxConcurrency: setting({
    env: "MAX_CONCURRENCY",
    flag: "max-concurrency",
    default: "1024",
    group: "server",
    description:
      "Requests processed at once; more wait in the queue (the threaded design's worker threads).",
    parser: integer(1, 1_000_000),
  }),
  requestQueueSize: setting({
    env: "REQUEST_QUEUE_SIZE",
    flag: "queue-size",
    default: "100",
    group: "server",
    description: "Requests that may wait for a free slot beyond MAX_CONCURRENCY; more get 503.",
    parser: integer(0, 1_000_000),
  }),
  queueTimeout: setting({
    env: "QUEUE_TIMEOUT",
    flag: "queue-timeout",
    default: "10",
    group: "server",
    description: "Longest wait in the request queue before 503 with Retry-After.",
    parser: duration("s", 1),
  }),
  threadPoolSize: setting({
    env: "THREAD_POOL_SIZE",
    flag: "threads",
    default: "auto",
    group: "server",
    description:
      "Web Workers for CPU-heavy work (compression, list compilation), shared out over the " +
      "serving threads (at least one each); auto = the number of CPUs.",
    parser: threadCount(),
  }),
  serveThreads: setting({
    env: "SERVE_THREADS",
    flag: "serve-threads",
    default: "auto",
    group: "server",
    description: "Event-loop threads serving the port in every mode, like nginx's " +
      "worker_processes auto; auto = the number of CPUs on Linux (SO_REUSEPORT), 1 elsewhere. " +
      "They act as one proxy: the memory cache is replicated to every thread (each holds it " +
      "within CACHE_MEMORY_SIZE / threads) and purges reach all; rate limits, admission, " +
      "MAX_CLIENT_CONNECTIONS and statistics count over all threads.",
    parser: serveThreadCount(),
  }),
  shutdownTimeout: setting({
    env: "SHUTDOWN_TIMEOUT",
    flag: "shutdown-timeout",
    default: "10",
    group: "server",
    description: "On SIGINT/SIGTERM, how long in-flight requests may take to finish.",
    parser: duration("s", 0),
  }),
  tlsCert: setting({
    env: "TLS_CERT",
    flag: "tls-cert",
    default: "",
    group: "server",
    description: "PEM certificate file; with TLS_KEY the port speaks HTTPS (reloaded on SIGHUP).",
    parser: text(),
  }),
  tlsKey: setting({
    env: "TLS_KEY",
    flag: "tls-key",
    default: "",
    group: "server",
    description: "PEM private key file for TLS_CERT.",
    parser: text(),
  }),
  http2: setting({
    env: "HTTP2",
    flag: "http2",
    default: "off",
    group: "server",
    description:
      "on: offer HTTP/2 by ALPN on the TLS port (TLS_CERT), next to HTTP/1.1 (opt-in, like nginx's http2; README, HTTP/2). off: HTTP/1.1 only. Plain-text ports speak HTTP/1.1.",
    parser: boolean(),
  }),
  // ── backends ────────────────────────────────────────────────────────
  backends: setting({
    env: "BACKEND_SERVERS",
    flag: "backend",
    default: "",
    group: "backends",
    description:
      'Reverse-proxy backends, comma-separated: "http://10.0.0.1:8000 weight=3, http://10.0.0.2:8000".',
    parser: list(backend(), "comma-separated URLs, each optionally followed by weight=N"),
  }),
  lbStrategy: setting({
    env: "LB_STRATEGY",
    flag: "lb-strategy",
    default: "round-robin",
    group: "backends",
    description: "How a backend is chosen for each request.",
    parser: oneOf(STRATEGY_NAMES),
  }),
  healthCheckPath: setting({
    env: "HEALTH_CHECK_PATH",
    flag: "health-check-path",
    default: "",
    group: "backends",
    description:
      "Path probed on each backend by active health checks (empty: passive checks only).",
    parser: text(),
  }),
  healthCheckInterval: setting({
    env: "HEALTH_CHECK_INTERVAL",
    default: "5",
    group: "backends",
    description: "Time between active health checks of a backend.",
    parser: duration("s", 100),
  }),
  healthCheckTimeout: setting({
    env: "HEALTH_CHECK_TIMEOUT",
    default: "2",
    group: "backends",
    description: "A health check slower than this fails.",
    parser: duration("s", 10),
  }),
  healthCheckRise: setting({
    env: "HEALTH_CHECK_RISE",
    default: "2",
    group: "backends",
    description: "Consecutive passing checks before a down backend is up again.",
    parser: integer(1, 100),
  }),
  healthCheckFall: setting({
    env: "HEALTH_CHECK_FALL",
    default: "3",
    group: "backends",
    description: "Consecutive failing checks before a backend is marked down.",
    parser: integer(1, 100),
  }),
  maxFails: setting({
    env: "MAX_FAILS",
    default: "3",
    group: "backends",
    description:
      "Consecutive failed requests (connect errors, resets, timeouts) that eject a backend.",
    parser: integer(1, 1000),
  }),
  failTimeout: setting({
    env: "FAIL_TIMEOUT",
    default: "10",
    group: "backends",
    description:
      "First ejection period; it doubles on repeated ejections (up to 5 min) and resets after a success.",
    parser: duration("s", 100),
  }),
  retryAttempts: setting({
    env: "RETRY_ATTEMPTS",
    flag: "retries",
    default: "2",
    group: "backends",
    description:
      "Other backends tried when a request fails before any response byte (idempotent methods, or nothing sent).",
    parser: integer(0, 10),
  }),
  retryBodyLimit: setting({
    env: "RETRY_BODY_LIMIT",
    default: "64KiB",
    group: "backends",
    description: "Request bodies up to this size are kept so a retry can resend them.",
    parser: bytes(64 * 1024 * 1024),
  }),
  upstreamCaFile: setting({
    env: "UPSTREAM_CA_FILE",
    default: "",
    group: "backends",
    description:
      "PEM file of extra CA certificates trusted for https upstreams (backends with a private CA).",
    parser: text(),
  }),
  upstreamKeepalive: setting({
    env: "UPSTREAM_KEEPALIVE",
    default: "64",
    group: "backends",
    description: "Idle keep-alive connections kept per upstream origin.",
    parser: integer(0, 10_000),
  }),
  upstreamIdleTimeout: setting({
    env: "UPSTREAM_IDLE_TIMEOUT",
    default: "30",
    group: "backends",
    description: "Idle upstream connections are closed after this.",
    parser: duration("s", 100),
  }),
  // ── cache ───────────────────────────────────────────────────────────
  cacheBackend: setting({
    env: "CACHE_BACKEND",
    flag: "cache",
    default: "auto",
    group: "cache",
    description:
      "auto: Redis when it answers at start-up, memory otherwise; memory: in-process LRU only; " +
      "redis: LRU in front of Redis; off: no caching.",
    parser: oneOf(["auto", "memory", "redis", "off"] as const),
  }),
  cacheExpiration: setting({
    env: "CACHE_EXPIRATION",
    flag: "cache-expiry",
    default: "300",
    group: "cache",
    description:
      "Seconds: the most freshness CACHE_HEURISTIC gives a response without explicit freshness " +
      "(last-modified: the cap; always: the lifetime, like Varnish default_ttl); explicit " +
      "max-age/Expires always win; 0 = strict RFC 9111.",
    parser: integer(0, 31_536_000),
  }),
  cacheHeuristic: setting({
    env: "CACHE_HEURISTIC",
    default: "last-modified",
    group: "cache",
    description:
      "Freshness for responses without max-age/Expires. last-modified: 10 % of the time since " +
      "Last-Modified, capped by CACHE_EXPIRATION, and never shared without Last-Modified; " +
      "always: CACHE_EXPIRATION for every cacheable response (the old default); off: none.",
    parser: oneOf(["last-modified", "always", "off"] as const),
  }),
  cacheMemorySize: setting({
    env: "CACHE_MEMORY_SIZE",
    default: "64MiB",
    group: "cache",
    description:
      "Byte budget of the in-process LRU cache, counted as what entries cost the process " +
      "(URL, headers and objects included), not just their bodies.",
    parser: bytes(),
  }),
  cacheMaxObjectSize: setting({
    env: "CACHE_MAX_OBJECT_SIZE",
    default: "8MiB",
    group: "cache",
    description: "Larger responses stream through uncached.",
    parser: bytes(),
  }),
  cachePrefix: setting({
    env: "CACHE_PREFIX",
    default: "proxy:",
    group: "cache",
    description: "Prefix of every Redis key this proxy writes; nothing outside it is touched.",
    parser: text(),
  }),
  // ── redis ───────────────────────────────────────────────────────────
  redisUrl: setting({
    env: "REDIS_URL",
    flag: "redis-url",
    default: "",
    group: "redis",
    description:
      "redis://[user:pass@]host:port/db, or rediss://… for TLS; overrides REDIS_HOST/PORT/DB.",
    parser: redisUrl(),
  }),
  redisHost: setting({
    env: "REDIS_HOST",
    flag: "redis-host",
    default: "localhost",
    group: "redis",
    description: "Redis host (shared cache and rate-limit store).",
    parser: text(),
  }),
  redisPort: setting({
    env: "REDIS_PORT",
    flag: "redis-port",
    default: "6379",
    group: "redis",
    description: "Redis port.",
    parser: integer(1, 65535),
  }),
  redisDb: setting({
    env: "REDIS_DB",
    flag: "redis-db",
    default: "0",
    group: "redis",
    description: "Redis database number.",
    parser: integer(0, 1024),
  }),
  redisSentinels: setting({
    env: "REDIS_SENTINELS",
    flag: "redis-sentinels",
    default: "",
    group: "redis",
    description:
      "Redis Sentinel addresses (host:port,…): the master of REDIS_SENTINEL_NAME is found and " +
      "followed through failovers. Wins over REDIS_URL/HOST/PORT.",
    parser: hostPortList(),
  }),
  redisSentinelName: setting({
    env: "REDIS_SENTINEL_NAME",
    flag: "redis-sentinel-name",
    default: "mymaster",
    group: "redis",
    description: "The master group the sentinels watch (sentinel monitor NAME …).",
    parser: text(),
  }),
  redisClusterNodes: setting({
    env: "REDIS_CLUSTER_NODES",
    flag: "redis-cluster-nodes",
    default: "",
    group: "redis",
    description:
      "Redis Cluster seed nodes (host:port,…); the rest of the cluster is discovered. Wins over " +
      "REDIS_URL/HOST/PORT.",
    parser: hostPortList(),
  }),
  redisUsername: setting({
    env: "REDIS_USERNAME",
    default: "",
    group: "redis",
    description: "ACL user for every Redis node (a user in REDIS_URL wins for a single server).",
    parser: text(),
  }),
  redisPassword: setting({
    env: "REDIS_PASSWORD",
    default: "",
    group: "redis",
    description:
      "Password for every Redis node (requirepass, or the ACL user's); not sent to sentinels.",
    parser: text(),
  }),
  redisTls: setting({
    env: "REDIS_TLS",
    default: "false",
    group: "redis",
    description:
      "TLS to Redis (Sentinel and Cluster too); implied by rediss:// and by REDIS_TLS_CA_FILE.",
    parser: boolean(),
  }),
  redisTlsCaFile: setting({
    env: "REDIS_TLS_CA_FILE",
    default: "",
    group: "redis",
    description: "PEM file of the CA that signed the Redis servers' certificates (a private CA).",
    parser: text(),
  }),
  redisTimeout: setting({
    env: "REDIS_TIMEOUT",
    default: "250ms",
    group: "redis",
    description:
      "Redis command timeout; a slower Redis is treated as unavailable for that request.",
    parser: duration("ms", 10, 60_000),
  }),
  // ── compression ─────────────────────────────────────────────────────
  enableCompression: setting({
    env: "ENABLE_COMPRESSION",
    flag: "compression",
    default: "true",
    group: "compression",
    description: "Compress compressible responses for clients that accept it.",
    parser: boolean(),
  }),
  compressionEncodings: setting({
    env: "COMPRESSION_ENCODINGS",
    default: "br,zstd,gzip,deflate",
    group: "compression",
    description:
      "Encodings offered, in server preference order when the client ranks them equally.",
    parser: list(oneOf(["br", "zstd", "gzip", "deflate"] as const)),
  }),
  compressionMinSize: setting({
    env: "COMPRESSION_MIN_SIZE",
    default: "1KiB",
    group: "compression",
    description: "Smaller responses are sent uncompressed.",
    parser: bytes(),
  }),
  // ── filtering ───────────────────────────────────────────────────────
  requestFilters: setting({
    env: "REQUEST_FILTERS",
    flag: "filters",
    default: "ads,trackers,malware",
    group: "filtering",
    description: "Built-in blocklist categories (empty: none).",
    parser: list(oneOf(["ads", "trackers", "malware"] as const)),
  }),
  filterLists: setting({
    env: "FILTER_LISTS",
    default: "",
    group: "filtering",
    description:
      "Extra blocklists (files or http(s) URLs): hosts format, plain domains or Adblock ||domain^ rules.",
    parser: list(text()),
  }),
  filterAllow: setting({
    env: "FILTER_ALLOW",
    default: "",
    group: "filtering",
    description: "Domains never blocked (their subdomains included); wins over every list.",
    parser: list(text()),
  }),
  // ── rate limiting ───────────────────────────────────────────────────
  rateLimitRequests: setting({
    env: "RATE_LIMIT_REQUESTS",
    flag: "rate-limit",
    default: "100",
    group: "rate limiting",
    description: "Requests allowed per client per RATE_LIMIT_WINDOW (0: no limit).",
    parser: integer(0, 100_000_000),
  }),
  rateLimitWindow: setting({
    env: "RATE_LIMIT_WINDOW",
    flag: "rate-limit-window",
    default: "60",
    group: "rate limiting",
    description:
      "Rate-limit window in seconds (sliding window: at most the limit in any such span).",
    parser: integer(1, 86_400),
  }),
  rateLimitBy: setting({
    env: "RATE_LIMIT_BY",
    default: "ip",
    group: "rate limiting",
    description: "What identifies a client: ip, user (proxy auth) or header:NAME.",
    parser: rateLimitKey(),
  }),
  rateLimitExempt: setting({
    env: "RATE_LIMIT_EXEMPT",
    default: OWN_NETWORKS,
    group: "rate limiting",
    description:
      "Clients never rate-limited. By default the same networks as ALLOWED_CLIENTS (loopback, " +
      "private, CGNAT, link-local), so local tools, load tests and browsers on the LAN are not " +
      "refused by surprise; public clients are limited.",
    parser: list(cidr()),
  }),
  // ── security ────────────────────────────────────────────────────────
  allowedClients: setting({
    env: "ALLOWED_CLIENTS",
    default: OWN_NETWORKS,
    group: "security",
    description: "Clients allowed to use the proxy at all (CIDRs); others get 403.",
    parser: list(cidr()),
  }),
  connectPorts: setting({
    env: "CONNECT_PORTS",
    default: "80,443,8443",
    group: "security",
    description:
      "Ports CONNECT tunnels may reach. 80 is in by default because Node's undici ProxyAgent " +
      "and other clients tunnel plain http:// URLs with CONNECT host:80.",
    parser: list(integer(1, 65535)),
  }),
  forwardAllowPrivate: setting({
    env: "FORWARD_ALLOW_PRIVATE",
    default: "false",
    group: "security",
    description:
      "Forward requests and tunnels to loopback, private, link-local or other internal addresses: " +
      "false (refused), true (allowed) or the CIDRs allowed.",
    parser: privateAllowance(),
  }),
  proxyAuthFile: setting({
    env: "PROXY_AUTH_FILE",
    default: "",
    group: "security",
    description:
      "htpasswd file (bcrypt) of proxy users; when set, clients must authenticate (407).",
    parser: text(),
  }),
  adminToken: setting({
    env: "ADMIN_TOKEN",
    default: "",
    group: "security",
    description:
      "Bearer token for /proxy-stats, /metrics, purge and reload from anything but loopback.",
    parser: text(),
  }),
  trustedProxies: setting({
    env: "TRUSTED_PROXIES",
    default: "",
    group: "security",
    description:
      "Peers whose X-Forwarded-For is believed and appended to (others' is replaced) and whose X-Request-Id is kept (others get a new one).",
    parser: list(cidr()),
  }),
  maxHeaderSize: setting({
    env: "MAX_HEADER_SIZE",
    default: "16KiB",
    group: "security",
    description: "Largest request head (request line and headers); larger gets 431.",
    parser: bytes(1024 * 1024),
  }),
  maxHeaderCount: setting({
    env: "MAX_HEADER_COUNT",
    default: "100",
    group: "security",
    description: "Most request headers; more gets 431.",
    parser: integer(1, 10_000),
  }),
  maxBodySize: setting({
    env: "MAX_BODY_SIZE",
    default: "0",
    group: "security",
    description: "Largest request body (413 beyond); 0 = unlimited.",
    parser: bytes(),
  }),
  headerTimeout: setting({
    env: "HEADER_TIMEOUT",
    default: "10",
    group: "security",
    description:
      "A client must send its request head within this time, from connecting or from the " +
      "request's first byte (slow clients get 408 and are cut off).",
    parser: duration("s", 100),
  }),
  keepAliveTimeout: setting({
    env: "KEEPALIVE_TIMEOUT",
    default: "75",
    group: "security",
    description: "Longest idle time between requests on a kept-alive client connection.",
    parser: duration("s", 100),
  }),
  bodyTimeout: setting({
    env: "BODY_TIMEOUT",
    default: "60",
    group: "security",
    description:
      "Longest pause between request-body bytes (408 and close), and the longest a client may " +
      "stall reading a response.",
    parser: duration("s", 100),
  }),
  bodyMinRate: setting({
    env: "BODY_MIN_RATE",
    default: "1KiB",
    group: "security",
    description:
      "Slowest average request-body rate in bytes per second, enforced after the first 10 s " +
      "(408 and close); 0 = off.",
    parser: bytes(),
  }),
  requestBufferSize: setting({
    env: "REQUEST_BUFFER_SIZE",
    default: "1MiB",
    group: "security",
    description:
      "Request bodies up to this size are received whole before the request takes an admission " +
      "slot or an upstream connection (slow uploaders hold neither); larger ones stream.",
    parser: bytes(1024 * 1024 * 1024),
  }),
  maxClientConnections: setting({
    env: "MAX_CLIENT_CONNECTIONS",
    default: "10000",
    group: "security",
    description:
      "Most open client connections, over every serving thread; beyond it new connections are " +
      "closed at once and counted (client_connections_rejected).",
    parser: integer(1, 10_000_000),
  }),
  // ── tls interception ────────────────────────────────────────────────
  tlsIntercept: setting({
    env: "TLS_INTERCEPT",
    default: "off",
    group: "tls interception",
    description:
      "on: CONNECT tunnels are decrypted with certificates minted by the local CA (proxy ca), so " +
      "HTTPS is cached, compressed and filtered by path. Only for clients that trust that CA.",
    parser: oneOf(["off", "on"] as const),
  }),
  tlsInterceptCaDir: setting({
    env: "TLS_INTERCEPT_CA_DIR",
    default: "",
    group: "tls interception",
    description:
      "Directory of the interception CA (ca.pem, ca-key.pem); empty: $XDG_DATA_HOME/proxy or " +
      "~/.local/share/proxy (%LOCALAPPDATA%\\proxy on Windows).",
    parser: text(),
  }),
  tlsInterceptBypass: setting({
    env: "TLS_INTERCEPT_BYPASS",
    default: "",
    group: "tls interception",
    description:
      "Domains (subdomains included) tunnelled without interception: pinned clients, banking.",
    parser: list(text()),
  }),
  // ── logging ─────────────────────────────────────────────────────────
  logLevel: setting({
    env: "LOG_LEVEL",
    flag: "log-level",
    default: "info",
    group: "logging",
    description: "Least severe level logged.",
    parser: oneOf(["debug", "info", "warn", "error"] as const),
  }),
  logFormat: setting({
    env: "LOG_FORMAT",
    flag: "log-format",
    default: "auto",
    group: "logging",
    description: "pretty (human), json (one JSON object per line) or auto (pretty on a terminal).",
    parser: oneOf(["auto", "pretty", "json"] as const),
  }),
  accessLog: setting({
    env: "ACCESS_LOG",
    flag: "access-log",
    default: "true",
    group: "logging",
    description: "One log line per request.",
    parser: boolean(),
  }),
  logFile: setting({
    env: "LOG_FILE",
    flag: "log-file",
    default: "",
    group: "logging",
    description:
      "Also write the application and access logs to this file (JSON lines unless LOG_FORMAT=pretty; " +
      "appended, created 0640). SIGUSR1 reopens it at its path, for logrotate.",
    parser: text(),
  }),
  logStdout: setting({
    env: "LOG_STDOUT",
    default: "true",
    group: "logging",
    description:
      "Write the logs to standard output too; false with LOG_FILE logs to the file only.",
    parser: boolean(),
  }),
  // ── dashboard ───────────────────────────────────────────────────────
  dashboardHost: setting({
    env: "DASHBOARD_HOST",
    default: "127.0.0.1",
    group: "dashboard",
    description: "Address `proxy dashboard` listens on.",
    parser: text(),
  }),
  dashboardPort: setting({
    env: "DASHBOARD_PORT",
    default: "5000",
    group: "dashboard",
    description: "Port of `proxy dashboard`.",
    parser: integer(0, 65535),
  }),
  dashboardToken: setting({
    env: "DASHBOARD_TOKEN",
    default: "",
    group: "dashboard",
    description: "Token required by the dashboard when bound to anything but loopback.",
    parser: text(),
  }),
} as const;

export type Schema = typeof SCHEMA;
export type SettingKey = keyof Schema;

/** The typed configuration, one field per setting. */
export type Config = {
  -readonly [K in SettingKey]: Schema[K] extends Setting<infer T> ? T : never;
};
