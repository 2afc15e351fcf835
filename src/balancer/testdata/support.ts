/**
 * Test support for the balancer: small real origins on free ports and a
 * `send` built on fetch that reports failures the way the forwarder does
 * (`kind`, `requestSent`, `status`), so balancer tests need no forwarder.
 *
 * @module
 */

import type { RequestContext } from "../../context/mod.ts";
import type { SendFn } from "../mod.ts";
import { UpstreamError } from "../../forward/errors.ts";

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

/** A fetch-based `send` with its own connection pool; close the client after the test. */
export function fetchSend(client: Deno.HttpClient): SendFn {
  return async (req, target) => {
    const headers = new Headers(req.headers);
    headers.set("accept-encoding", "identity");
    headers.delete("content-length");
    headers.delete("host");
    try {
      return await fetch(target, {
        method: req.method,
        headers,
        body: req.body,
        redirect: "manual",
        signal: req.signal,
        client,
      });
    } catch (err) {
      const refused = /refused|tcp connect error/i.test(`${err} ${(err as Error).cause}`);
      throw new UpstreamError(refused ? "connect" : "reset", String(err), !refused, { cause: err });
    }
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
  const spawn = async () => {
    child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-net", script, String(port), name],
      stdout: "null",
      stderr: "inherit",
    }).spawn();
    const deadline = Date.now() + 30_000;
    while (true) {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port })).close();
        return;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`origin ${name} did not start: ${err}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  };
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

/** A port that was free a moment ago. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = l.addr as Deno.NetAddr;
  l.close();
  return port;
}
