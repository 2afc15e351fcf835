/**
 * Starts `proxy serve` as a real subprocess (`deno run main.ts serve`) on a
 * free port, waits until it listens, and keeps its output for assertions.
 */
import { freePort, waitForPort } from "./ports.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const MAIN = `${ROOT}main.ts`;

export interface TestProxy {
  readonly port: number;
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  readonly process: Deno.ChildProcess;
  /** Everything the process printed so far (stdout and stderr). */
  output(): string;
  /** GET /proxy-stats as JSON (loosely typed: tests read whichever fields they check). */
  // deno-lint-ignore no-explicit-any
  stats(): Promise<Record<string, any>>;
  /** Sends a signal and waits for exit; returns the exit code. */
  signal(sig: Deno.Signal): Promise<number>;
  /** Stops the proxy (SIGTERM, then SIGKILL after 10 s). */
  stop(): Promise<void>;
}

export interface StartProxyOptions {
  /** Environment variables for the proxy (settings). */
  env?: Record<string, string>;
  /** Extra command-line flags. */
  args?: string[];
  /** Expect start-up to fail: resolves once the process exits instead of waiting for the port. */
  expectExit?: boolean;
}

/** Settings that keep tests quiet and deterministic unless a test overrides them. */
export const TEST_DEFAULTS: Record<string, string> = {
  HOST: "127.0.0.1",
  LOG_LEVEL: "warn",
  LOG_FORMAT: "json",
  ACCESS_LOG: "false",
  CACHE_BACKEND: "off",
  REQUEST_FILTERS: "",
  RATE_LIMIT_REQUESTS: "0",
  SHUTDOWN_TIMEOUT: "10",
};

export async function startProxy(options: StartProxyOptions = {}): Promise<TestProxy> {
  const port = freePort();
  const env = { ...TEST_DEFAULTS, PORT: String(port), ...options.env };
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", MAIN, "serve", ...(options.args ?? [])],
    env,
    clearEnv: true,
    cwd: ROOT, // deno.json there enables the unstable "net" APIs (reusePort for TLS reloads)
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  let out = "";
  const decoder = new TextDecoder();
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) out += decoder.decode(chunk, { stream: true });
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const proxy: TestProxy = {
    port,
    url: `http://127.0.0.1:${port}`,
    process: child,
    output: () => out,
    async stats() {
      const res = await fetch(`http://127.0.0.1:${port}/proxy-stats`);
      return await res.json();
    },
    async signal(sig) {
      if (!exited) child.kill(sig);
      const s = await status;
      await pumps;
      return s.code;
    },
    async stop() {
      if (!exited) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => !exited && child.kill("SIGKILL"), 10_000);
        await status;
        clearTimeout(timer);
      }
      await pumps;
    },
  };
  if (options.expectExit) {
    await status;
    await pumps;
    return proxy;
  }
  try {
    await Promise.race([
      ready(port, () => out),
      status.then((s) => {
        throw new Error(`proxy exited with ${s.code} before listening:\n${out}`);
      }),
    ]);
  } catch (err) {
    await proxy.stop();
    throw err;
  }
  return proxy;
}

/**
 * The port answers as soon as the first serving thread listens, but the proxy installs its
 * signal handlers (SIGHUP reload, SIGTERM drain) only after every thread started and it printed
 * its "proxy listening on" line: a signal sent before that line would kill it instead.
 */
async function ready(port: number, output: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  await waitForPort(port, 30_000);
  while (!/^proxy listening on /m.test(output())) {
    if (Date.now() > deadline) {
      throw new Error(`the proxy never said it is listening:\n${output()}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * One module section of `/proxy-stats` (`auth`, `backends`, `cache`…) from every serving thread:
 * with SERVE_THREADS > 1 each thread reports its own under `threads[i]`, with one thread it is
 * at the top level. Tests that sum a counter stay right for any thread count.
 */
// deno-lint-ignore no-explicit-any
export function sections(stats: Record<string, any>, name: string): any[] {
  const perThread = Array.isArray(stats.threads) ? stats.threads : [stats];
  // deno-lint-ignore no-explicit-any
  return perThread.map((t: Record<string, any>) => t[name]).filter((s: unknown) => s !== undefined);
}
