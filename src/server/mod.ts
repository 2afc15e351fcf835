/**
 * Listeners (Deno.serve, node:http), CONNECT tunnels and `proxy serve`.
 *
 * @module
 */
export { runServe, SERVE_HELP, SERVE_THREAD_ENTRY } from "./serve.ts";
export { listenDeno } from "./deno_listener.ts";
export { listenNode } from "./node_listener.ts";
export { parseAuthority } from "./authority.ts";
export type { Refusal, TunnelRequest } from "./tunnel.ts";
export type { AppFetch, Listener } from "./types.ts";
