/**
 * Intercepts an admitted CONNECT: terminates the client's TLS with a leaf
 * minted for the requested name, then hands the decrypted stream to the
 * listener's HTTP/1.1 server with the tunnel's authority, so every request
 * inside goes through the proxy's pipeline as `https://authority/path`
 * (cache, compression, filter, rate limit, stats, access log). The origin
 * leg is the forwarder's own verified TLS connection (system roots plus
 * UPSTREAM_CA_FILE, SNI from the URL): an origin whose certificate does not
 * verify answers 502 with the reason and is never re-signed.
 *
 * @module
 */
import { counter, gauge, type MetricFamily, type StatsSource } from "../stats/mod.ts";
import type { ByteConn } from "./byte_conn.ts";
import { bypassMatcher } from "./bypass.ts";
import type { LocalCa } from "./ca.ts";
import { LeafMinter } from "./mint.ts";
import { acceptTls, HandshakeError } from "./tls_server.ts";

/** What the HTTP/1.1 server needs to know about an intercepted connection. */
export interface InterceptedConnInfo {
  remoteAddr: string;
  remotePort: number;
  secure: boolean;
  /** `host:port` of the CONNECT: every request on the connection is for `https://authority`. */
  authority: string;
}

/** The listener's `serveConnection`. */
export type ServeConnection = (conn: ByteConn, info: InterceptedConnInfo) => Promise<void>;

/** The peer of the CONNECT. */
export interface Peer {
  remoteAddr: string;
  remotePort: number;
}

export interface InterceptorOptions {
  ca: LocalCa;
  /** TLS_INTERCEPT_BYPASS. */
  bypass: readonly string[];
  /** Longest wait for the client's TLS handshake. */
  handshakeTimeoutMs: number;
  /** Where failures a client causes are told (pinned clients, refused certificates). */
  log?: (message: string) => void;
}

export class Interceptor implements StatsSource {
  readonly name = "intercept";
  readonly minter: LeafMinter;
  readonly #isBypassed: (host: string) => boolean;
  readonly #options: InterceptorOptions;
  /** Hosts whose failed handshake was already logged. */
  readonly #reported = new Set<string>();
  intercepted = 0;
  tunnelled = 0;
  open = 0;
  handshakeFailures = 0;
  mintFailures = 0;
  upstreamVerifyFailures = 0;

  constructor(options: InterceptorOptions) {
    this.#options = options;
    this.minter = new LeafMinter({ ca: options.ca });
    this.#isBypassed = bypassMatcher(options.bypass);
  }

  /** Whether a CONNECT to `host` is intercepted; false (a plain tunnel) for bypassed hosts. */
  wants(host: string): boolean {
    if (this.#isBypassed(host)) {
      this.tunnelled++;
      return false;
    }
    return true;
  }

  /**
   * The tunnel's hook, called after admission (ACL, CONNECT_PORTS, filter, SSRF, auth, rate
   * limit): false leaves a bypassed host to the plain tunnel; otherwise answers the CONNECT
   * and intercepts, resolving true once the client is done.
   */
  async takeTunnel(
    client: ByteConn,
    req: { authority: { host: string; port: number }; clientIp: string },
    serve: ServeConnection,
  ): Promise<boolean> {
    if (!this.wants(req.authority.host)) return false;
    // Minting overlaps with the client's ClientHello.
    this.minter.leaf(req.authority.host).catch(() => {/* reported by intercept() */});
    try {
      await writeAll(client, ESTABLISHED);
    } catch {
      closeQuietly(client);
      return true;
    }
    await this.intercept(client, req.authority, { remoteAddr: req.clientIp, remotePort: 0 }, serve);
    return true;
  }

  /**
   * Takes an admitted tunnel's client connection: TLS with a minted leaf, then
   * HTTP/1.1 through `serve` until the client is done. Never rejects; closes `client`.
   */
  async intercept(
    client: ByteConn,
    authority: { host: string; port: number },
    peer: Peer,
    serve: ServeConnection,
  ): Promise<void> {
    const host = authority.host;
    let context;
    try {
      context = (await this.minter.leaf(host)).context;
    } catch (err) {
      this.mintFailures++;
      this.#options.log?.(`cannot mint a certificate for ${host}: ${(err as Error).message}`);
      closeQuietly(client);
      return;
    }
    let session;
    try {
      session = await acceptTls(client, context, this.#options.handshakeTimeoutMs);
    } catch (err) {
      this.handshakeFailures++;
      // Told once per host: a pinned app retries endlessly and must not flood the log.
      if (this.#reported.has(host)) {
        closeQuietly(client);
        return;
      }
      if (this.#reported.size >= 1000) this.#reported.clear();
      this.#reported.add(host);
      const why = err instanceof HandshakeError ? err.message : String(err);
      this.#options.log?.(
        `TLS handshake with ${peer.remoteAddr} for ${host} failed (${why}); a client that does ` +
          `not trust the proxy CA or pins certificates needs ${host} in TLS_INTERCEPT_BYPASS`,
      );
      closeQuietly(client);
      return;
    }
    this.intercepted++;
    this.open++;
    const hostPart = host.includes(":") ? `[${host}]` : host;
    try {
      await serve(session.conn, {
        remoteAddr: peer.remoteAddr,
        remotePort: peer.remotePort,
        secure: true,
        authority: `${hostPart}:${authority.port}`,
      });
    } finally {
      this.open--;
      closeQuietly(session.conn);
    }
  }

  /** Called when an intercepted request's origin failed certificate verification. */
  upstreamVerificationFailed(): void {
    this.upstreamVerifyFailures++;
  }

  snapshot() {
    const m = this.minter;
    return {
      connections_intercepted: this.intercepted,
      connections_tunnelled: this.tunnelled,
      open_intercepted: this.open,
      handshake_failures: this.handshakeFailures,
      upstream_verify_failures: this.upstreamVerifyFailures,
      certificates_minted: m.minted,
      certificates_reused: m.reused,
      certificates_cached: m.cached,
      mint_failures: this.mintFailures,
      mint_ms_avg: m.minted === 0 ? 0 : Math.round((m.mintMs / m.minted) * 100) / 100,
      ca: this.#options.ca.certPath,
    };
  }

  metrics(): MetricFamily[] {
    return [
      counter(
        "proxy_intercept_connections_total",
        "CONNECT tunnels with interception on: intercepted (TLS terminated) or tunnelled (bypassed)",
        [
          { labels: { kind: "intercepted" }, value: this.intercepted },
          { labels: { kind: "tunnelled" }, value: this.tunnelled },
        ],
      ),
      gauge("proxy_intercept_open_connections", "Intercepted connections open", this.open),
      counter(
        "proxy_intercept_certificates_minted_total",
        "Leaf certificates signed by the local CA",
        this.minter.minted,
      ),
      gauge(
        "proxy_intercept_certificates_cached",
        "Leaf certificates held in memory",
        this.minter.cached,
      ),
      counter(
        "proxy_intercept_handshake_failures_total",
        "Client TLS handshakes that failed (untrusted CA, pinned client, timeout)",
        this.handshakeFailures,
      ),
      counter(
        "proxy_intercept_upstream_verify_failures_total",
        "Intercepted requests refused because the origin's certificate did not verify",
        this.upstreamVerifyFailures,
      ),
    ];
  }
}

const ESTABLISHED = new TextEncoder().encode("HTTP/1.1 200 Connection Established\r\n\r\n");

async function writeAll(conn: ByteConn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(off === 0 ? data : data.subarray(off));
}

function closeQuietly(conn: ByteConn): void {
  try {
    conn.close();
  } catch {
    // already closed
  }
}
