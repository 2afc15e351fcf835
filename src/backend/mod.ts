/**
 * The test origin server (`proxy backend`): httpbin-like, deterministic
 * endpoints for demos, tests and benchmarks. Endpoints and counters are
 * described in `src/backend/README.md`.
 *
 * ```ts
 * import { startBackend } from "./src/backend/mod.ts";
 * const b = await startBackend({ host: "127.0.0.1", port: 0, name: "a" });
 * const res = await fetch(`${b.url}/bytes/1024`);
 * await res.arrayBuffer();
 * await b.close();
 * ```
 *
 * @module
 */
export { type BackendOptions, type RunningBackend, startBackend } from "./server.ts";
export { runBackend } from "./cli.ts";
export { type BackendStatsSnapshot } from "./stats.ts";
export { CHUNK_SIZE, MAX_BYTES, patternByte, patternBytes } from "./content.ts";
export { DIE_MID_BODY_LENGTH, ifNoneMatchMatches, MAX_DELAY_MS } from "./routes.ts";
