/**
 * Test origins for end-to-end tests: in-process (fast, the default) or as a
 * separate `proxy backend` process (for tests that must kill -9 an origin).
 *
 * ```ts
 * const backend = await startTestBackend("a");
 * try {
 *   // ... point the proxy at backend.url ...
 *   const { paths } = await backend.stats();
 * } finally {
 *   await backend.close();
 * }
 * ```
 */
import { startBackend } from "../../src/backend/mod.ts";
import { freePort, startOnPort } from "./ports.ts";

/** What `/__stats` reports (see src/backend/stats.ts). */
export interface TestBackendStats {
  name: string;
  requests_total: number;
  /** Requests per concrete path without query, e.g. `"/bytes/1024"`. */
  paths: Record<string, number>;
  /** Requests per route pattern, e.g. `"/bytes/:n"`. */
  routes: Record<string, number>;
}

export interface TestBackend {
  readonly port: number;
  /** `http://127.0.0.1:<port>`, no trailing slash. */
  readonly url: string;
  /** The X-Backend header value of every response. */
  readonly name: string;
  /** Current counters (requests to /__stats itself are not counted). */
  stats(): Promise<TestBackendStats>;
  /** Zeroes the counters. */
  resetStats(): Promise<void>;
  close(): Promise<void>;
}

async function readStats(url: string): Promise<TestBackendStats> {
  const res = await fetch(`${url}/__stats`);
  if (!res.ok) throw new Error(`GET ${url}/__stats: ${res.status}`);
  return await res.json();
}

async function resetStats(url: string): Promise<void> {
  const res = await fetch(`${url}/__stats/reset`, { method: "POST" });
  await res.body?.cancel();
  if (!res.ok) throw new Error(`POST ${url}/__stats/reset: ${res.status}`);
}

/** Starts an in-process test origin on a free port of 127.0.0.1. */
export async function startTestBackend(name?: string): Promise<TestBackend> {
  // A short grace period: a test that leaves a /delay request behind should
  // not hold up its own cleanup for long.
  const b = await startBackend({ host: "127.0.0.1", port: 0, name: name ?? "", graceMs: 500 });
  return {
    port: b.port,
    url: b.url,
    name: b.name,
    stats: () => readStats(b.url),
    resetStats: () => resetStats(b.url),
    close: () => b.close(),
  };
}

export interface BackendProcess extends TestBackend {
  readonly pid: number;
  /** Sends a signal (SIGKILL by default, as a crash would) and waits for the exit. */
  kill(signal?: Deno.Signal): Promise<Deno.CommandStatus>;
  /** Starts the process again on the same port (after kill). */
  restart(): Promise<void>;
  /** Everything the process wrote to stderr so far. */
  stderr(): string;
}

const ROOT = new URL("../../", import.meta.url);

/**
 * Spawns `deno run -A main.ts backend --port P --name NAME` and resolves once
 * it printed its "listening on" line. Before main.ts exists (early in the
 * project) it runs src/backend/cli.ts, which takes the same flags.
 */
export async function startBackendProcess(
  name?: string,
  port = freePort(),
): Promise<BackendProcess> {
  let child: Deno.ChildProcess | undefined;
  let errText = "";
  let errDone: Promise<void> = Promise.resolve();
  let actualName = name ?? `backend-${port}`;

  const entry = (() => {
    try {
      Deno.statSync(new URL("main.ts", ROOT));
      return ["main.ts", "backend"];
    } catch {
      return ["src/backend/cli.ts"];
    }
  })();

  /** True once it listens; false when the port was taken. */
  const attempt = async (): Promise<boolean> => {
    errText = "";
    const args = ["run", "-A", ...entry, "--port", String(port), "--host", "127.0.0.1"];
    if (name) args.push("--name", name);
    const proc = new Deno.Command(Deno.execPath(), {
      args,
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    child = proc;
    errDone = (async () => {
      for await (const chunk of proc.stderr.pipeThrough(new TextDecoderStream())) {
        errText = (errText + chunk).slice(-8192);
      }
    })();
    const reader = proc.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let out = "";
    const timer = setTimeout(() => proc.kill("SIGKILL"), 30_000);
    try {
      while (!out.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) break;
        out += value;
      }
    } finally {
      clearTimeout(timer);
      await reader.cancel();
    }
    const m = out.match(/^backend (\S+) listening on http:\/\/\S+:(\d+)/);
    if (!m) {
      try {
        proc.kill("SIGKILL");
      } catch { /* exited already (the port was taken) */ }
      await proc.status;
      await errDone;
      child = undefined;
      // Someone else holds the port for the moment (a restart raced another process): retry.
      if (/AddrInUse|address already in use/i.test(errText)) return false;
      throw new Error(`backend process did not start: ${out.trim()} ${errText.trim()}`);
    }
    actualName = m[1];
    return true;
  };
  const spawn = () => startOnPort(port, attempt);

  const kill = async (signal: Deno.Signal = "SIGKILL") => {
    const proc = child;
    if (!proc) throw new Error("backend process is not running");
    try {
      proc.kill(signal);
    } catch { /* already exited */ }
    const status = await proc.status;
    await errDone;
    child = undefined;
    return status;
  };

  await spawn();
  const url = `http://127.0.0.1:${port}`;
  return {
    port,
    url,
    get name() {
      return actualName;
    },
    get pid() {
      if (!child) throw new Error("backend process is not running");
      return child.pid;
    },
    stats: () => readStats(url),
    resetStats: () => resetStats(url),
    kill,
    restart: spawn,
    stderr: () => errText,
    close: async () => {
      if (child) await kill("SIGTERM");
    },
  };
}
