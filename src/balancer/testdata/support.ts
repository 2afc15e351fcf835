/**
 * Test support for the balancer: small real origins on free ports, origins that fail
 * on purpose, and the real forwarder as `send`.
 *
 * @module
 */

import type { RequestContext } from "../../context/mod.ts";
import type { SendFn } from "../mod.ts";
import { freePort, startOnPort } from "../../../tests/helpers/ports.ts";
import { createForwarder, type Forwarder, type ForwarderOptions } from "../../forward/mod.ts";

/** An in-process origin answering its name; `/health` follows `healthy`. */
export interface Origin {
  readonly name: string;
  port: number;
  url: URL;
  /** Requests served per path (health checks excluded). */
  hits: number;
  /** Bodies of requests with a body, in arrival order. */
  readonly bodies: string[];
  healthy: boolean;
  /** Extra delay before every answer. */
  delayMs: number;
  /** Stops the origin; a later `start()` listens on the same port again. */
  close(): Promise<void>;
  start(): void;
}

export function startOrigin(name: string, port = 0): Origin {
  let server: Deno.HttpServer<Deno.NetAddr> | undefined;
  const origin: Origin = {
    name,
    port,
    url: new URL("http://127.0.0.1"),
    hits: 0,
    bodies: [],
    healthy: true,
    delayMs: 0,
    async close() {
      await server?.shutdown();
      server = undefined;
    },
    start() {
      server = Deno.serve({
        hostname: "127.0.0.1",
        port: origin.port,
        onListen() {},
      }, async (req) => {
        const url = new URL(req.url);
        if (url.pathname === "/health") {
          return new Response(origin.healthy ? "ok" : "sick", {
            status: origin.healthy ? 200 : 503,
          });
        }
        origin.hits++;
        if (req.body) origin.bodies.push(await req.text());
        const delay = Number(url.searchParams.get("delay") ?? origin.delayMs);
        if (delay > 0) await new Promise((r) => setTimeout(r, delay));
        return new Response(name, { headers: { "x-origin": name } });
      });
      origin.port = server.addr.port;
      origin.url = new URL(`http://127.0.0.1:${origin.port}`);
    },
  };
  origin.start();
  return origin;
}

/** The real forwarder as the balancer's `send`, wired like the app wires it (src/pipeline/upstream_phases.ts). */
export interface ForwarderSend {
  readonly send: SendFn;
  readonly forwarder: Forwarder;
  close(): void;
}

/**
 * A `send` over the same forwarder the proxy uses (`src/forward/`), so retry decisions in
 * these tests rest on the failure classes the real send path reports, not on a guess.
 */
export function forwarderSend(over: Partial<ForwarderOptions> = {}): ForwarderSend {
  const forwarder = createForwarder({
    connectTimeoutMs: 10_000,
    responseTimeoutMs: 20_000,
    idleTimeoutMs: 30_000,
    maxIdlePerOrigin: 8,
    via: "1.1 proxy",
    ...over,
  });
  return {
    forwarder,
    send: (req, target, ctx) =>
      forwarder.forward(req, target, {
        clientIp: ctx.clientIp,
        proto: ctx.conn.secure ? "https" : "http",
        host: req.headers.get("host") ?? target.host,
        preserveHost: true,
        requestId: ctx.id,
      }),
    close: () => forwarder.close(),
  };
}

export function testContext(clientIp = "192.0.2.1"): RequestContext {
  return {
    id: crypto.randomUUID(),
    kind: "http",
    conn: { remoteAddr: clientIp, remotePort: 40000, form: "origin", secure: false },
    startedAt: performance.now(),
    clientIp,
  };
}

/** Polls `predicate` every 20 ms until it holds; throws after `timeoutMs`. */
export async function waitFor(
  predicate: () => boolean,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * A TCP server that reads each request head (and whatever body arrived with
 * it) and then closes the connection without answering: the request was sent,
 * no response byte came back.
 */
export interface Resetter {
  readonly url: URL;
  /** Requests it swallowed. */
  readonly seen: string[];
  close(): Promise<void>;
}

export function startResetter(): Resetter {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const seen: string[] = [];
  const conns = new Set<Deno.Conn>();
  const serve = async (conn: Deno.Conn) => {
    conns.add(conn);
    const buf = new Uint8Array(64 * 1024);
    let text = "";
    try {
      while (!text.includes("\r\n\r\n")) {
        const n = await conn.read(buf);
        if (n === null) break;
        text += new TextDecoder().decode(buf.subarray(0, n));
      }
      if (text) seen.push(text.split("\r\n")[0]);
    } catch { /* the client went away first */ }
    conns.delete(conn);
    try {
      conn.close();
    } catch { /* already closed */ }
  };
  const loop = (async () => {
    try {
      for await (const conn of listener) serve(conn);
    } catch { /* listener closed */ }
  })();
  return {
    url: new URL(`http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`),
    seen,
    async close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* already closed */ }
      }
      await loop;
    },
  };
}

/** How a {@linkcode FailingOrigin} fails each exchange. */
export type FailureClass =
  /** Reads the whole request, then closes without a response byte. */
  | "reset-before-response"
  /** Reads the whole request, sends half a response head, then closes. */
  | "reset-after-partial-response"
  /** Reads the whole request and never answers (the forwarder's response timeout fires). */
  | "timeout";

/** A request as a failing origin received it: request line and body bytes. */
export interface ReceivedRequest {
  readonly line: string;
  readonly body: string;
}

/** A raw TCP origin that fails every exchange in one {@linkcode FailureClass}. */
export interface FailingOrigin {
  readonly url: URL;
  /** Every request it read in full, in arrival order. */
  readonly received: ReceivedRequest[];
  close(): Promise<void>;
}

/** The payload of a complete chunked body (no trailers, no extensions: what the forwarder sends). */
function dechunk(raw: string): string {
  let out = "";
  let at = 0;
  while (true) {
    const eol = raw.indexOf("\r\n", at);
    const size = parseInt(raw.slice(at, eol), 16);
    if (!(size > 0)) return out;
    out += raw.slice(eol + 2, eol + 2 + size);
    at = eol + 2 + size + 2;
  }
}

export function startFailingOrigin(how: FailureClass): FailingOrigin {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const received: ReceivedRequest[] = [];
  const conns = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();
  const latin1 = new TextDecoder("latin1");
  const serve = async (conn: Deno.Conn) => {
    conns.add(conn);
    const buf = new Uint8Array(64 * 1024);
    let text = "";
    try {
      // The head, then the body: as many bytes as Content-Length announces, or chunks up to
      // the last one.
      let end = -1;
      let chunked = false;
      let want = Infinity;
      // A chunked body ends with the last chunk (these tests send no trailers).
      const complete = () =>
        end >= 0 &&
        (chunked ? text.length > end + 4 && text.endsWith("0\r\n\r\n") : text.length >= want);
      while (!complete()) {
        const n = await conn.read(buf);
        if (n === null) break;
        text += latin1.decode(buf.subarray(0, n));
        if (end < 0 && (end = text.indexOf("\r\n\r\n")) >= 0) {
          const head = text.slice(0, end);
          chunked = /\r\ntransfer-encoding: *chunked/i.test(head);
          const length = /\r\ncontent-length: *(\d+)/i.exec(head);
          want = end + 4 + (length ? Number(length[1]) : 0);
        }
      }
      if (end >= 0) {
        const raw = text.slice(end + 4);
        received.push({ line: text.split("\r\n")[0], body: chunked ? dechunk(raw) : raw });
      }
      if (how === "reset-after-partial-response") {
        await conn.write(new TextEncoder().encode("HTTP/1.1 200 OK\r\nContent-Le"));
      } else if (how === "timeout") {
        await conn.read(buf); // until the forwarder gives up and closes, or close() below
      }
    } catch { /* the forwarder went away first */ }
    conns.delete(conn);
    try {
      conn.close();
    } catch { /* already closed */ }
  };
  const loop = (async () => {
    try {
      for await (const conn of listener) {
        const task = serve(conn);
        tasks.add(task);
        task.finally(() => tasks.delete(task));
      }
    } catch { /* listener closed */ }
  })();
  return {
    url: new URL(`http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`),
    received,
    async close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* already closed */ }
      }
      await loop;
      await Promise.all(tasks);
    },
  };
}

/** An origin in a child process, so a test can kill it like a crash (SIGKILL) and restart it. */
export interface ProcessOrigin {
  readonly name: string;
  readonly port: number;
  readonly url: URL;
  /** SIGKILL: no goodbye, connections die with the process. */
  kill(): Promise<void>;
  /** Starts it again on the same port and waits until it accepts connections. */
  restart(): Promise<void>;
}

export async function startProcessOrigin(name: string, port: number): Promise<ProcessOrigin> {
  const script = new URL("./origin.ts", import.meta.url).pathname;
  let child: Deno.ChildProcess | undefined;
  /** True once this child said it listens; false when it exited first (the port was taken). */
  const attempt = async (): Promise<boolean> => {
    const proc = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-net", script, String(port), name],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    child = proc;
    const timer = setTimeout(() => proc.kill("SIGKILL"), 30_000);
    const reader = proc.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let out = "";
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
    if (out.startsWith("listening on")) {
      proc.stderr.cancel();
      return true;
    }
    const err = await new Response(proc.stderr).text();
    await proc.status;
    child = undefined;
    if (/AddrInUse|address already in use/i.test(err)) return false;
    throw new Error(`origin ${name} did not start: ${err}`);
  };
  const spawn = () => startOnPort(port, attempt);
  await spawn();
  return {
    name,
    port,
    url: new URL(`http://127.0.0.1:${port}`),
    async kill() {
      if (!child) return;
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
      await child.status;
      child = undefined;
    },
    restart: spawn,
  };
}

export { freePort };
