/**
 * Test fixtures for the forwarder tests: real origins on free ports (Deno.serve
 * and raw TCP servers that can misbehave on purpose). Imported only by tests.
 *
 * @module
 */

import type { ForwarderOptions, ForwardRequestInfo } from "./forwarder.ts";

export function testOptions(over: Partial<ForwarderOptions> = {}): ForwarderOptions {
  return {
    connectTimeoutMs: 10_000,
    responseTimeoutMs: 20_000,
    idleTimeoutMs: 30_000,
    maxIdlePerOrigin: 8,
    via: "1.1 proxy",
    ...over,
  };
}

export function testInfo(over: Partial<ForwardRequestInfo> = {}): ForwardRequestInfo {
  return {
    clientIp: "203.0.113.7",
    proto: "http",
    host: "client.example",
    preserveHost: false,
    ...over,
  };
}

/** A Deno.serve origin on a free port. */
export interface TestOrigin {
  url: URL;
  close(): Promise<void>;
}

export function serveOrigin(
  handler: (
    req: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  ) => Response | Promise<Response>,
  tls?: { cert: string; key: string },
): TestOrigin {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {}, ...tls }, handler);
  const url = new URL(`${tls ? "https" : "http"}://127.0.0.1:${server.addr.port}/`);
  return {
    url,
    async close() {
      await server.shutdown();
    },
  };
}

/** A raw TCP server: `onConn` scripts each connection byte by byte. */
export class RawServer {
  readonly listener: Deno.Listener;
  readonly url: URL;
  readonly port: number;
  accepted = 0;
  #conns = new Set<Deno.Conn>();
  #tasks = new Set<Promise<void>>();
  #loop: Promise<void>;

  constructor(onConn: (conn: Deno.Conn, index: number) => Promise<void>) {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.listener = listener;
    this.port = (listener.addr as Deno.NetAddr).port;
    this.url = new URL(`http://127.0.0.1:${this.port}/`);
    this.#loop = (async () => {
      for await (const conn of listener) {
        const index = this.accepted++;
        this.#conns.add(conn);
        const task = onConn(conn, index).catch(() => {}).finally(() => {
          this.#conns.delete(conn);
          try {
            conn.close();
          } catch {
            // closed by the script
          }
        });
        this.#tasks.add(task);
        task.finally(() => this.#tasks.delete(task));
      }
    })().catch(() => {});
  }

  async close(): Promise<void> {
    this.listener.close();
    for (const c of this.#conns) {
      try {
        c.close();
      } catch {
        // already closed
      }
    }
    await this.#loop;
    await Promise.all(this.#tasks);
  }
}

const enc = new TextEncoder();
const dec = new TextDecoder();

export async function write(conn: Deno.Conn, data: string | Uint8Array): Promise<void> {
  const bytes = typeof data === "string" ? enc.encode(data) : data;
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}

/** A buffered reader over a raw connection, for scripting servers. */
export class Reader {
  #conn: Deno.Conn;
  #buf = new Uint8Array(0);
  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  async #more(): Promise<boolean> {
    const chunk = new Uint8Array(65536);
    const n = await this.#conn.read(chunk);
    if (n === null) return false;
    const next = new Uint8Array(this.#buf.length + n);
    next.set(this.#buf);
    next.set(chunk.subarray(0, n), this.#buf.length);
    this.#buf = next;
    return true;
  }

  /** The request head as text (through the blank line), or null on EOF before one. */
  async head(): Promise<string | null> {
    for (;;) {
      const s = dec.decode(this.#buf);
      const i = s.indexOf("\r\n\r\n");
      if (i >= 0) {
        this.#buf = this.#buf.slice(enc.encode(s.slice(0, i + 4)).length);
        return s.slice(0, i + 4);
      }
      if (!await this.#more()) return null;
    }
  }

  async bytes(n: number): Promise<Uint8Array> {
    while (this.#buf.length < n) if (!await this.#more()) throw new Error("EOF");
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.slice(n);
    return out;
  }

  /** Reads a request (head + Content-Length body). */
  async request(): Promise<
    { head: string; headers: Map<string, string>; body: Uint8Array } | null
  > {
    const head = await this.head();
    if (head === null) return null;
    const headers = parseHeaders(head);
    const n = Number(headers.get("content-length") ?? "0");
    return { head, headers, body: await this.bytes(n) };
  }

  /** True once the peer closed (reading yields EOF); bytes read on the way stay in `buffered`. */
  async eof(): Promise<boolean> {
    try {
      while (await this.#more()) { /* keep reading */ }
    } catch {
      // reset counts as closed
    }
    return true;
  }

  get buffered(): number {
    return this.#buf.length;
  }
}

export function parseHeaders(head: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of head.split("\r\n").slice(1)) {
    const i = line.indexOf(":");
    if (i > 0) {
      const k = line.slice(0, i).trim().toLowerCase();
      const v = line.slice(i + 1).trim();
      m.set(k, m.has(k) ? m.get(k) + ", " + v : v);
    }
  }
  return m;
}

export async function collect(body: ReadableStream<Uint8Array> | null): Promise<Uint8Array> {
  if (body === null) return new Uint8Array(0);
  return new Uint8Array(await new Response(body).arrayBuffer());
}

export function text(b: Uint8Array): string {
  return dec.decode(b);
}
