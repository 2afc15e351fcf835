/**
 * The request handler of the test origin: a plain string-switch router (no
 * framework) because benchmarks measure the proxy against this server and it
 * must not be the bottleneck.
 *
 * Every response carries `X-Backend: <name>`. Endpoints are listed in
 * `src/backend/README.md`.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";
import {
  CHUNK_SIZE,
  htmlPage,
  jsonDocument,
  largeText,
  MAX_BYTES,
  patternChunk,
} from "./content.ts";
import { BackendStats } from "./stats.ts";

/** Longest `/delay/:ms` (60 s). */
export const MAX_DELAY_MS = 60_000;
/** Most lines `/stream/:chunks` sends. */
export const MAX_STREAM_CHUNKS = 100_000;
/** Longest pause between `/stream` lines. */
export const MAX_STREAM_DELAY_MS = 10_000;
/** Default pause between `/stream` lines. */
export const DEFAULT_STREAM_DELAY_MS = 10;
/** Declared length of the `/die-mid-body` body; only half of it is sent. */
export const DIE_MID_BODY_LENGTH = 100_000;

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const NULL_BODY = new Set([204, 205, 304]);
const ETAG_TAG = /^[\x21\x23-\x7e]{1,200}$/;
const DIGITS = /^\d{1,12}$/;

export interface BackendHandler {
  fetch(req: Request): Response | Promise<Response>;
  readonly stats: BackendStats;
  /** Open WebSocket connections, so shutdown can close them. */
  readonly sockets: Set<WebSocket>;
}

/**
 * Builds the handler for backend `name`. `cut` aborts when the server stops
 * waiting for in-flight requests: delays and streams then end early.
 */
export function createBackendHandler(name: string, cut: AbortSignal): BackendHandler {
  const stats = new BackendStats(name);
  const sockets = new Set<WebSocket>();
  const html = htmlPage(name);
  const json = jsonDocument(name);
  const large = largeText();
  const gzipped = new Uint8Array(gzipSync(
    new TextEncoder().encode(
      JSON.stringify({ gzipped: true, backend: name, doc: JSON.parse(json) }),
    ),
  ));
  const chunks = new Map<number, Uint8Array<ArrayBuffer>>();
  const chunkFor = (seed: number) => {
    let c = chunks.get(seed);
    if (!c) chunks.set(seed, c = patternChunk(seed));
    return c;
  };
  let cacheCounter = 0;

  const text = (body: string | null, status = 200, type = "text/plain; charset=utf-8") =>
    new Response(body, { status, headers: [["content-type", type], ["x-backend", name]] });
  const asJson = (value: unknown, status = 200) =>
    text(JSON.stringify(value), status, "application/json");
  const methodNotAllowed = (allow: string) =>
    new Response(`method not allowed; use ${allow}\n`, {
      status: 405,
      headers: [["allow", allow], ["content-type", "text/plain; charset=utf-8"], [
        "x-backend",
        name,
      ]],
    });

  function fetch(req: Request): Response | Promise<Response> {
    const url = req.url;
    const start = url.indexOf("/", url.indexOf("//") + 2);
    const q = url.indexOf("?", start);
    const path = q === -1 ? url.slice(start) : url.slice(start, q);
    const query = q === -1 ? "" : url.slice(q + 1);

    switch (path) {
      case "/":
        stats.record(path, path);
        return text(html, 200, "text/html; charset=utf-8");
      case "/json":
        stats.record(path, path);
        return text(json, 200, "application/json");
      case "/large":
        stats.record(path, path);
        return text(large);
      case "/health":
        stats.record(path, path);
        return text("ok");
      case "/error":
        stats.record(path, path);
        return text(`internal error from backend ${name}\n`, 500);
      case "/headers":
        stats.record(path, path);
        return asJson(Object.fromEntries(req.headers));
      case "/echo":
        stats.record(path, path);
        return echo(req, url, path, query);
      case "/gzip":
        stats.record(path, path);
        return new Response(gzipped, {
          headers: [
            ["content-type", "application/json"],
            ["content-encoding", "gzip"],
            ["x-backend", name],
          ],
        });
      case "/upload":
        stats.record(path, path);
        return upload(req);
      case "/ws":
        stats.record(path, path);
        return websocket(req);
      case "/die-mid-body":
        stats.record(path, path);
        return dieMidBody();
      case "/__stats":
        return asJson(stats.snapshot());
      case "/__stats/reset":
        if (req.method !== "POST") return methodNotAllowed("POST");
        stats.reset();
        return asJson({ reset: true });
    }

    const slash = path.indexOf("/", 1);
    if (slash !== -1) {
      const prefix = path.slice(0, slash);
      const arg = path.slice(slash + 1);
      switch (prefix) {
        case "/bytes":
          stats.record(path, "/bytes/:n");
          return bytes(arg, query);
        case "/delay":
          stats.record(path, "/delay/:ms");
          return delay(arg, req.signal);
        case "/status":
          stats.record(path, "/status/:code");
          return status(arg);
        case "/cache":
          stats.record(path, "/cache/:seconds");
          return cache(arg, path);
        case "/etag":
          stats.record(path, "/etag/:tag");
          return etag(arg, req);
        case "/stream":
          stats.record(path, "/stream/:chunks");
          return stream(arg, query);
      }
    }
    stats.record(path, "(not found)");
    return text(`not found: ${path}\n`, 404);
  }

  function badRequest(msg: string): Response {
    return text(`${msg}\n`, 400);
  }

  function bytes(arg: string, query: string): Response {
    if (!DIGITS.test(arg)) return badRequest("/bytes/:n needs a whole number of bytes");
    const n = Math.min(Number(arg), MAX_BYTES);
    // Benchmarks hit /bytes/N without a query: skip URLSearchParams then.
    const params = query === "" ? undefined : new URLSearchParams(query);
    const seed = Number(params?.get("seed") ?? 0) & 0xff;
    const chunked = params?.get("chunked") === "1";
    const maxAge = params?.get("max_age");
    if (maxAge != null && !DIGITS.test(maxAge)) {
      return badRequest("max_age needs a whole number of seconds");
    }
    const chunk = chunkFor(seed);
    const headers: [string, string][] = [
      ["content-type", "application/octet-stream"],
      ["x-backend", name],
    ];
    if (maxAge != null) headers.push(["cache-control", `public, max-age=${maxAge}`]);
    if (!chunked && n <= CHUNK_SIZE) {
      // A view of the shared block, not a copy: Deno.serve does not detach
      // body buffers (the test suite checks repeated requests stay intact).
      return new Response(chunk.subarray(0, n), { headers });
    }
    let left = n;
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        const size = Math.min(left, CHUNK_SIZE);
        // The pattern period (256) divides CHUNK_SIZE, so every chunk is a
        // prefix of the same immutable block; nothing is copied per chunk.
        if (size > 0) c.enqueue(size === CHUNK_SIZE ? chunk : chunk.subarray(0, size));
        left -= size;
        if (left <= 0) c.close();
      },
    });
    if (!chunked) headers.push(["content-length", String(n)]);
    return new Response(body, { headers });
  }

  async function delay(arg: string, signal: AbortSignal): Promise<Response> {
    if (!DIGITS.test(arg)) return badRequest("/delay/:ms needs a whole number of milliseconds");
    const ms = Math.min(Number(arg), MAX_DELAY_MS);
    const started = performance.now();
    await sleep(ms, signal, cut);
    return asJson({ delay: ms, waited: Math.round(performance.now() - started), backend: name });
  }

  function status(arg: string): Response {
    const code = DIGITS.test(arg) ? Number(arg) : NaN;
    if (!(code >= 200 && code <= 599)) {
      return badRequest("/status/:code needs a final status 200-599 (1xx are not final responses)");
    }
    const headers: [string, string][] = [["x-backend", name]];
    if (REDIRECTS.has(code)) headers.push(["location", "/"]);
    if (NULL_BODY.has(code)) return new Response(null, { status: code, headers });
    headers.push(["content-type", "text/plain; charset=utf-8"]);
    return new Response(`status ${code}\n`, { status: code, headers });
  }

  function cache(arg: string, path: string): Response {
    if (!DIGITS.test(arg)) return badRequest("/cache/:seconds needs a whole number of seconds");
    const seconds = Number(arg);
    cacheCounter++;
    return new Response(
      JSON.stringify({ path, seconds, counter: cacheCounter, backend: name }),
      {
        headers: [
          ["content-type", "application/json"],
          ["cache-control", `public, max-age=${seconds}`],
          ["x-backend", name],
        ],
      },
    );
  }

  function etag(arg: string, req: Request): Response {
    let tag: string;
    try {
      tag = decodeURIComponent(arg);
    } catch {
      return badRequest("/etag/:tag: malformed percent-encoding");
    }
    if (!ETAG_TAG.test(tag)) {
      return badRequest("/etag/:tag: tag must be 1-200 visible characters without '\"'");
    }
    const value = `"${tag}"`;
    const headers: [string, string][] = [
      ["etag", value],
      ["cache-control", "max-age=0, must-revalidate"],
      ["x-backend", name],
    ];
    const inm = req.headers.get("if-none-match");
    if (inm !== null && ifNoneMatchMatches(inm, value)) {
      // RFC 9110 §13.1.2: 304 for GET/HEAD, 412 for other methods.
      const safe = req.method === "GET" || req.method === "HEAD";
      return new Response(null, { status: safe ? 304 : 412, headers });
    }
    headers.push(["content-type", "application/json"]);
    return new Response(JSON.stringify({ etag: tag, backend: name }), { headers });
  }

  function stream(arg: string, query: string): Response {
    if (!DIGITS.test(arg)) return badRequest("/stream/:chunks needs a whole number of chunks");
    const n = Math.min(Number(arg), MAX_STREAM_CHUNKS);
    const d = new URLSearchParams(query).get("delay");
    if (d !== null && !DIGITS.test(d)) return badRequest("delay needs a whole number of ms");
    const pause = d === null ? DEFAULT_STREAM_DELAY_MS : Math.min(Number(d), MAX_STREAM_DELAY_MS);
    const enc = new TextEncoder();
    const stop = new AbortController();
    let i = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(c) {
        if (i > 0 && pause > 0) await sleep(pause, stop.signal, cut);
        if (stop.signal.aborted) return;
        if (i >= n || cut.aborted) {
          c.close();
          return;
        }
        c.enqueue(enc.encode(JSON.stringify({ id: i, of: n, backend: name }) + "\n"));
        i++;
        if (i >= n) c.close();
      },
      cancel() {
        stop.abort();
      },
    }, { highWaterMark: 0 });
    return new Response(body, {
      headers: [["content-type", "application/x-ndjson"], ["x-backend", name]],
    });
  }

  async function echo(req: Request, url: string, path: string, query: string): Promise<Response> {
    const params = new URLSearchParams(query);
    if (params.get("stream") === "1") {
      return new Response(req.body, {
        headers: [
          ["content-type", req.headers.get("content-type") ?? "application/octet-stream"],
          ["x-backend", name],
        ],
      });
    }
    const raw = new Uint8Array(await req.arrayBuffer());
    let body: string;
    let bodyEncoding: "utf-8" | "base64" = "utf-8";
    try {
      body = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(raw);
    } catch {
      body = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString("base64");
      bodyEncoding = "base64";
    }
    const q: Record<string, string | string[]> = {};
    for (const [k, v] of params) {
      const prev = q[k];
      q[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
    }
    return asJson({
      method: req.method,
      url,
      path,
      query: q,
      headers: Object.fromEntries(req.headers),
      body,
      bodyEncoding,
      bodyLength: raw.byteLength,
      backend: name,
    });
  }

  async function upload(req: Request): Promise<Response> {
    if (req.method !== "POST" && req.method !== "PUT") return methodNotAllowed("POST, PUT");
    const hash = createHash("sha256");
    let total = 0;
    if (req.body) {
      for await (const chunk of req.body) {
        hash.update(chunk);
        total += chunk.byteLength;
      }
    }
    return asJson({ bytes: total, sha256: hash.digest("hex"), backend: name });
  }

  function websocket(req: Request): Response {
    if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response("this endpoint needs a WebSocket upgrade\n", {
        status: 426,
        headers: [["upgrade", "websocket"], ["content-type", "text/plain; charset=utf-8"], [
          "x-backend",
          name,
        ]],
      });
    }
    const { socket, response } = Deno.upgradeWebSocket(req);
    sockets.add(socket);
    socket.onmessage = (e) => socket.send(e.data);
    socket.onclose = () => sockets.delete(socket);
    socket.onerror = () => sockets.delete(socket);
    response.headers.set("x-backend", name);
    return response;
  }

  function dieMidBody(): Response {
    const half = DIE_MID_BODY_LENGTH / 2;
    const chunk = chunkFor(0);
    let sent = 0;
    // The stream ends after half the declared length; Deno.serve then aborts
    // the connection because the body is shorter than Content-Length. Closing
    // (rather than erroring) the stream gives the client the same abort
    // without Deno printing a stack trace per request.
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        const size = Math.min(half - sent, CHUNK_SIZE);
        c.enqueue(chunk.subarray(0, size));
        sent += size;
        if (sent >= half) c.close();
      },
    });
    return new Response(body, {
      headers: [
        ["content-type", "application/octet-stream"],
        ["content-length", String(DIE_MID_BODY_LENGTH)],
        ["x-backend", name],
      ],
    });
  }

  return { fetch, stats, sockets };
}

/** True when an If-None-Match value matches `etag` by weak comparison (RFC 9110 §13.1.2). */
export function ifNoneMatchMatches(header: string, etag: string): boolean {
  if (header.trim() === "*") return true;
  const opaque = etag.startsWith("W/") ? etag.slice(2) : etag;
  for (const m of header.matchAll(/(?:W\/)?("[^"]*")/g)) {
    if (m[1] === opaque) return true;
  }
  return false;
}

/** Waits `ms`, or less when either signal aborts. */
function sleep(ms: number, a: AbortSignal, b: AbortSignal): Promise<void> {
  if (a.aborted || b.aborted || ms <= 0) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      a.removeEventListener("abort", done);
      b.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    a.addEventListener("abort", done);
    b.addEventListener("abort", done);
  });
}
