/**
 * Load test options: the typed form the library takes, and the parsing and
 * validation of `proxy loadtest` flags into it (one clear error line each).
 *
 * @module
 */
import { parseArgs } from "node:util";

/** What to run. Either `requests` or `duration` bounds the run (requests wins when both are absent: 1000). */
export interface LoadtestOptions {
  /** http:// or https:// URL of the target. */
  url: string;
  /** Total requests to send (count-based run). */
  requests?: number;
  /** Seconds to run (time-based run). */
  duration?: number;
  /** Open connections, each sending one request at a time (default 10). */
  concurrency?: number;
  /** HTTP method (default GET). */
  method?: string;
  /** Request headers, in order. */
  headers?: [string, string][];
  /** Request body. */
  body?: string | Uint8Array;
  /** Forward proxy URL (http://[user:pass@]host:port). */
  proxy?: string;
  /** Constant request rate in requests/s; latency then counts from the intended send time. */
  rate?: number;
  /** Seconds before a request counts as timed out (default 30). */
  timeout?: number;
  /** Extra CA certificates (PEM) to trust for https targets. */
  caCerts?: string[];
}

/** The options after validation, with defaults filled in. */
export interface ResolvedOptions {
  url: URL;
  mode: "requests" | "duration";
  requests: number;
  duration: number;
  concurrency: number;
  method: string;
  headers: [string, string][];
  body?: Uint8Array;
  proxy?: URL;
  rate?: number;
  timeout: number;
  caCerts?: string[];
}

export const DEFAULT_REQUESTS = 1000;
export const DEFAULT_DURATION = 10;
export const DEFAULT_CONCURRENCY = 10;
export const MAX_CONCURRENCY = 10_000;

/** A user mistake in the options; its message is one line naming the option and the fix. */
export class OptionsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "OptionsError";
  }
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE = /[\r\n\0]/;

/** Checks the options and fills in defaults; throws {@linkcode OptionsError}. */
export function resolveOptions(o: LoadtestOptions): ResolvedOptions {
  if (!o.url) throw new OptionsError("--url is required, e.g. --url http://127.0.0.1:8080/");
  let url: URL;
  try {
    url = new URL(o.url);
  } catch {
    throw new OptionsError(`--url ${JSON.stringify(o.url)} is not a valid URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new OptionsError(`--url must start with http:// or https://, got ${url.protocol}`);
  }
  if (o.requests !== undefined && o.duration !== undefined) {
    throw new OptionsError("use either --requests N or --time-based --duration S, not both");
  }
  if (o.requests !== undefined && !(Number.isInteger(o.requests) && o.requests > 0)) {
    throw new OptionsError(`--requests must be a positive whole number, got ${o.requests}`);
  }
  if (o.duration !== undefined && !(Number.isFinite(o.duration) && o.duration > 0)) {
    throw new OptionsError(`--duration must be a positive number of seconds, got ${o.duration}`);
  }
  const concurrency = o.concurrency ?? DEFAULT_CONCURRENCY;
  if (!(Number.isInteger(concurrency) && concurrency > 0 && concurrency <= MAX_CONCURRENCY)) {
    throw new OptionsError(
      `--concurrency must be a whole number from 1 to ${MAX_CONCURRENCY}, got ${concurrency}`,
    );
  }
  if (o.rate !== undefined && !(Number.isFinite(o.rate) && o.rate > 0)) {
    throw new OptionsError(`--rate must be a positive number of requests/s, got ${o.rate}`);
  }
  const timeout = o.timeout ?? 30;
  if (!(Number.isFinite(timeout) && timeout > 0)) {
    throw new OptionsError(`--timeout must be a positive number of seconds, got ${timeout}`);
  }
  const method = (o.method ?? "GET").toUpperCase();
  if (!TOKEN.test(method) || method === "CONNECT") {
    throw new OptionsError(`--method ${JSON.stringify(o.method)} is not a usable HTTP method`);
  }
  const headers: [string, string][] = [];
  for (const [k, v] of o.headers ?? []) {
    if (!TOKEN.test(k)) throw new OptionsError(`--header name ${JSON.stringify(k)} is not valid`);
    if (BAD_VALUE.test(v)) {
      throw new OptionsError(`--header ${k} has a line break or NUL in its value`);
    }
    headers.push([k, v.trim()]);
  }
  let proxy: URL | undefined;
  if (o.proxy) {
    try {
      proxy = new URL(o.proxy);
    } catch {
      throw new OptionsError(`--proxy ${JSON.stringify(o.proxy)} is not a valid URL`);
    }
    if (proxy.protocol !== "http:" || (proxy.pathname !== "/" && proxy.pathname !== "")) {
      throw new OptionsError(`--proxy must look like http://host:port, got ${o.proxy}`);
    }
  }
  const body = typeof o.body === "string" ? new TextEncoder().encode(o.body) : o.body;
  const mode = o.duration !== undefined ? "duration" : "requests";
  return {
    url,
    mode,
    requests: o.requests ?? (mode === "requests" ? DEFAULT_REQUESTS : 0),
    duration: o.duration ?? 0,
    concurrency,
    method,
    headers,
    body: body && body.length > 0 ? body : undefined,
    proxy,
    rate: o.rate,
    timeout,
    caCerts: o.caCerts,
  };
}

/** What `proxy loadtest` was asked to do. */
export type CliRequest =
  | { kind: "help" }
  | { kind: "run"; options: LoadtestOptions; json: boolean };

export const USAGE = `proxy loadtest — send HTTP load to a URL and report rate and latency

Usage:
  proxy loadtest --url URL [--requests N | --time-based --duration S] [options]

Options:
  --url URL            target (http:// or https://)
  --requests N         send N requests in total (default ${DEFAULT_REQUESTS})
  --time-based         run for a time instead of a count (with --duration)
  --duration S         seconds to run (default ${DEFAULT_DURATION} with --time-based)
  --concurrency C      open keep-alive connections (default ${DEFAULT_CONCURRENCY})
  --method M           HTTP method (default GET)
  --body STR           request body
  --body-file F        request body read from a file
  --header K:V         request header; repeat for more
  --proxy URL          send through a forward proxy (http://host:port);
                       https targets go through a CONNECT tunnel
  --rate R             hold R requests/s; latency counts from the intended send time
  --timeout S          seconds before a request counts as timed out (default 30)
  --ca-file F          extra CA certificate (PEM) to trust for https targets
  --json               print the report as JSON
  --help               show this help

Examples:
  proxy loadtest --url http://127.0.0.1:8080/json --requests 10000 --concurrency 50
  proxy loadtest --url http://example.test/ --proxy http://127.0.0.1:8080 --time-based --duration 30
  proxy loadtest --url http://127.0.0.1:8080/ --rate 2000 --duration 20 --time-based --json

A 429 or RateLimit-Remaining: 0 in the answers is reported: a rate limit shaped the result.

Exit status: 0 when responses came back, 1 when every request failed, 2 for bad options.
`;

function num(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n)) {
    throw new OptionsError(`--${flag} expects a number, got ${JSON.stringify(v)}`);
  }
  return n;
}

/** Parses `proxy loadtest` arguments; throws {@linkcode OptionsError} with one clear line. */
export function parseCliArgs(args: string[]): CliRequest {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        url: { type: "string" },
        requests: { type: "string", short: "n" },
        "time-based": { type: "boolean" },
        duration: { type: "string", short: "d" },
        concurrency: { type: "string", short: "c" },
        method: { type: "string", short: "m" },
        body: { type: "string" },
        "body-file": { type: "string" },
        header: { type: "string", short: "H", multiple: true },
        proxy: { type: "string" },
        rate: { type: "string" },
        timeout: { type: "string" },
        "ca-file": { type: "string" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (err) {
    throw new OptionsError(
      `${(err as Error).message.split("\n")[0]} (see proxy loadtest --help)`,
    );
  }
  const v = parsed.values;
  if (v.help) return { kind: "help" };
  if (v.body !== undefined && v["body-file"] !== undefined) {
    throw new OptionsError("use either --body or --body-file, not both");
  }
  if (v.requests !== undefined && (v["time-based"] || v.duration !== undefined)) {
    throw new OptionsError("use either --requests N or --time-based --duration S, not both");
  }
  const timeBased = v["time-based"] || v.duration !== undefined;
  let body: string | Uint8Array | undefined = v.body;
  if (v["body-file"] !== undefined) {
    try {
      body = Deno.readFileSync(v["body-file"]);
    } catch (err) {
      throw new OptionsError(`--body-file ${v["body-file"]}: ${(err as Error).message}`);
    }
  }
  let caCerts: string[] | undefined;
  if (v["ca-file"] !== undefined) {
    try {
      caCerts = [Deno.readTextFileSync(v["ca-file"])];
    } catch (err) {
      throw new OptionsError(`--ca-file ${v["ca-file"]}: ${(err as Error).message}`);
    }
  }
  const headers: [string, string][] = [];
  for (const h of v.header ?? []) {
    const i = h.indexOf(":");
    if (i <= 0) throw new OptionsError(`--header ${JSON.stringify(h)} must look like Name:value`);
    headers.push([h.slice(0, i).trim(), h.slice(i + 1)]);
  }
  if (v.url === undefined) {
    throw new OptionsError("--url is required, e.g. --url http://127.0.0.1:8080/");
  }
  const options: LoadtestOptions = {
    url: v.url,
    requests: timeBased ? undefined : num("requests", v.requests),
    duration: timeBased ? (num("duration", v.duration) ?? DEFAULT_DURATION) : undefined,
    concurrency: num("concurrency", v.concurrency),
    method: v.method,
    headers,
    body,
    proxy: v.proxy,
    rate: num("rate", v.rate),
    timeout: num("timeout", v.timeout),
    caCerts,
  };
  resolveOptions(options); // validate now, so the CLI fails before it starts
  return { kind: "run", options, json: v.json ?? false };
}
