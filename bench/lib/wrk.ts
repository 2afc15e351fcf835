/**
 * Runs wrk and reads its numbers from a tiny Lua `done()` hook that prints
 * one JSON line (requests, duration, errors, latency percentiles), instead of
 * scraping wrk's human-readable report.
 *
 * @module
 */

const LUA = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_JSON {\\"requests\\":%d,\\"duration_us\\":%d,\\"bytes\\":%d," ..
    "\\"connect\\":%d,\\"read\\":%d,\\"write\\":%d,\\"status\\":%d,\\"timeout\\":%d," ..
    "\\"mean_us\\":%.1f,\\"max_us\\":%d,\\"p50_us\\":%d,\\"p90_us\\":%d,\\"p99_us\\":%d,\\"p999_us\\":%d}\\n",
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
`;

export interface WrkOptions {
  url: string;
  durationSec: number;
  connections: number;
  threads: number;
  /** Extra request headers, e.g. {"Accept-Encoding": "gzip"}. */
  headers?: Record<string, string>;
  /** Directory for the Lua script (the scenario's tmpDir). */
  tmpDir: string;
  /**
   * Lua run before the report hook, e.g. `wrk.path = "http://origin/p"` to
   * send absolute-form requests to a forward proxy.
   */
  prelude?: string;
}

/**
 * Lua that makes wrk talk to a forward proxy: absolute-form request-target
 * and the origin's Host header (wrk would send the proxy's).
 */
export function forwardProxyPrelude(absoluteUrl: string): string {
  const u = new URL(absoluteUrl);
  return `wrk.path = ${JSON.stringify(absoluteUrl)}\nwrk.headers["Host"] = ${
    JSON.stringify(u.host)
  }\n`;
}

export interface WrkResult {
  requests: number;
  rps: number;
  bytes: number;
  /** Socket errors (connect, read, write, timeout). */
  socketErrors: number;
  /** Responses with a status outside 2xx/3xx. */
  non2xx: number;
  meanMs: number;
  maxMs: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
}

interface WrkJson {
  requests: number;
  duration_us: number;
  bytes: number;
  connect: number;
  read: number;
  write: number;
  status: number;
  timeout: number;
  mean_us: number;
  max_us: number;
  p50_us: number;
  p90_us: number;
  p99_us: number;
  p999_us: number;
}

/** Parses the WRK_JSON line of wrk's stdout. Exported for tests. */
export function parseWrkOutput(stdout: string): WrkResult {
  const line = stdout.split("\n").find((l) => l.startsWith("WRK_JSON "));
  if (!line) throw new Error(`wrk printed no summary:\n${stdout.trim().slice(-500)}`);
  const j = JSON.parse(line.slice("WRK_JSON ".length)) as WrkJson;
  const ms = (us: number) => us / 1000;
  return {
    requests: j.requests,
    rps: j.duration_us > 0 ? j.requests / (j.duration_us / 1e6) : 0,
    bytes: j.bytes,
    socketErrors: j.connect + j.read + j.write + j.timeout,
    non2xx: j.status,
    meanMs: ms(j.mean_us),
    maxMs: ms(j.max_us),
    p50Ms: ms(j.p50_us),
    p90Ms: ms(j.p90_us),
    p99Ms: ms(j.p99_us),
    p999Ms: ms(j.p999_us),
  };
}

export async function runWrk(opts: WrkOptions): Promise<WrkResult> {
  const script = `${opts.tmpDir}/wrk-report.lua`;
  await Deno.writeTextFile(script, (opts.prelude ?? "") + LUA);
  // wrk takes whole seconds; at least one.
  const sec = Math.max(1, Math.round(opts.durationSec));
  const args = [
    `-t${opts.threads}`,
    `-c${Math.max(opts.connections, opts.threads)}`,
    `-d${sec}s`,
    "-s",
    script,
  ];
  for (const [k, v] of Object.entries(opts.headers ?? {})) args.push("-H", `${k}: ${v}`);
  args.push(opts.url);
  const out = await new Deno.Command("wrk", { args, stdout: "piped", stderr: "piped" }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`wrk failed (${out.code}): ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  return parseWrkOutput(stdout);
}
