/**
 * Upstream HTTP/1.1 client (forwarder) with per-origin keep-alive pools.
 *
 * ```ts
 * const fwd = createForwarder({
 *   connectTimeoutMs: 5_000, responseTimeoutMs: 30_000, idleTimeoutMs: 30_000,
 *   maxIdlePerOrigin: 64, via: "1.1 proxy",
 * });
 * const res = await fwd.forward(req, new URL("http://127.0.0.1:8080/path?q"), {
 *   clientIp: "203.0.113.7", proto: "http", host: "example.com", preserveHost: true,
 * });
 * ```
 *
 * @module
 */

export {
  createForwarder,
  type Forwarder,
  type ForwarderOptions,
  type ForwarderSnapshot,
  type ForwardRequestInfo,
  type OriginSnapshot,
  type UpgradeResult,
} from "./forwarder.ts";
export { UpstreamError, type UpstreamErrorKind } from "./errors.ts";
export { buildRequestHead, headerTokens, HOP_BY_HOP } from "./headers.ts";
