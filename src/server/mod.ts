/**
 * The listener (our own HTTP/1.1 server), CONNECT tunnels, upgrades and
 * `proxy serve`.
 *
 * @module
 */
export { runServe, SERVE_HELP, SERVE_THREAD_ENTRY } from "./serve.ts";
export { createHttp1Server, type Http1Server, listenHttp1 } from "./http1/mod.ts";
export { parseAuthority } from "./authority.ts";
export { relayUpgrade } from "./upgrade.ts";
export type { Refusal, TunnelOptions, TunnelRequest } from "./tunnel.ts";
export type {
  AppFetch,
  ByteConn,
  Listener,
  RawUpgrade,
  ServeConnection,
  ServeInfo,
} from "./types.ts";
