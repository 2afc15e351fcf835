/**
 * This project's proxy and its test origin as benchmark processes.
 *
 * @module
 */
import { freePort, type Proc, startProcess } from "./process.ts";

/**
 * Settings for a reverse-proxy run in front of `backendUrl`: no cache, no
 * access log, no rate limit, warnings only, one serving thread (the peers run
 * one worker; rows labelled "2 threads" set SERVE_THREADS). Scenarios override
 * what they measure (e.g. CACHE_BACKEND=memory).
 */
export function proxyEnv(port: number, backendUrl: string): Record<string, string> {
  return {
    PORT: String(port),
    HOST: "127.0.0.1",
    BACKEND_SERVERS: backendUrl,
    CACHE_BACKEND: "off",
    ACCESS_LOG: "false",
    RATE_LIMIT_REQUESTS: "0",
    LOG_LEVEL: "warn",
    SERVE_THREADS: "1",
  };
}

/**
 * Settings for a forward-proxy run: absolute-form requests to any origin
 * (loopback allowed, since benchmark origins live there), no cache, no
 * access log, no rate limit, warnings only.
 */
export function forwardProxyEnv(port: number): Record<string, string> {
  return {
    PORT: String(port),
    HOST: "127.0.0.1",
    PROXY_MODE: "forward",
    FORWARD_ALLOW_PRIVATE: "true",
    CACHE_BACKEND: "off",
    ACCESS_LOG: "false",
    RATE_LIMIT_REQUESTS: "0",
    LOG_LEVEL: "warn",
    SERVE_THREADS: "1",
  };
}

/** `deno run -A main.ts serve` from the repository root with `env` on top of ours. */
export async function startProxy(
  root: string,
  label: string,
  port: number,
  env: Record<string, string>,
): Promise<Proc> {
  return await startProcess({
    name: label,
    cmd: Deno.execPath(),
    args: ["run", "-A", `${root}/main.ts`, "serve"],
    env,
    cwd: root,
    readyPort: port,
    // Printed once every serving thread listens (SERVE_THREADS), so none is left without load.
    readyText: /proxy listening on /,
  });
}

export interface Origin {
  port: number;
  url: string;
  proc: Proc;
  /** Requests the origin counted for a concrete path (from its /__stats). */
  count(path: string): Promise<number>;
}

/** The test origin (src/backend) in its own process on a free port. */
export async function startOrigin(root: string, name = "origin"): Promise<Origin> {
  const port = freePort();
  const proc = await startProcess({
    name: "backend",
    cmd: Deno.execPath(),
    args: ["run", "-A", `${root}/src/backend/cli.ts`, "--port", String(port), "--name", name],
    readyPort: port,
    readyPath: "/health",
  });
  const url = `http://127.0.0.1:${port}`;
  return {
    port,
    url,
    proc,
    async count(path: string) {
      const stats = await (await fetch(`${url}/__stats`)).json();
      return stats.paths?.[path] ?? 0;
    },
  };
}
