/**
 * The miss floor: what the runtime allows for a proxied request on the same
 * listener the proxy uses (`src/server/http1`). A minimal app forwards each
 * request to one origin with a minimal keep-alive HTTP/1.1 client over
 * `Deno.connect` — request line, Host and the client's other headers out;
 * status, headers and a Content-Length body back — and nothing else: no
 * filters, no hop-by-hop hygiene, no Via/X-Forwarded-*, no timeouts, no
 * statistics. The distance from the proxy's miss row to this row is ours.
 *
 *   deno run -A bench/floors/miss.ts --port 8081 --origin http://127.0.0.1:8000
 *
 * @module
 */
import { parseArgs } from "node:util";
import { listenHttp1 } from "../../src/server/http1/mod.ts";
import { ProxyStats } from "../../src/stats/mod.ts";

/** One kept-alive connection to the origin with its read buffer. */
class OriginConn {
  buf = new Uint8Array(16 * 1024);
  start = 0;
  end = 0;
  constructor(readonly conn: Deno.Conn) {}

  async fill(): Promise<boolean> {
    if (this.start === this.end) this.start = this.end = 0;
    else if (this.end === this.buf.length) {
      const grown = new Uint8Array(this.buf.length * 2);
      grown.set(this.buf.subarray(this.start, this.end));
      this.end -= this.start;
      this.start = 0;
      this.buf = grown;
    }
    const n = await this.conn.read(this.buf.subarray(this.end));
    if (n === null) return false;
    this.end += n;
    return true;
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Index just past the first CRLFCRLF in b[start, end), or -1. */
function headEnd(b: Uint8Array, start: number, end: number): number {
  for (let i = b.indexOf(13, start); i >= 0 && i + 3 < end; i = b.indexOf(13, i + 1)) {
    if (b[i + 1] === 10 && b[i + 2] === 13 && b[i + 3] === 10) return i + 4;
  }
  return -1;
}

/** A minimal keep-alive client for one origin (Content-Length responses only). */
function minimalClient(hostname: string, port: number) {
  const idle: OriginConn[] = [];

  async function exchange(c: OriginConn, head: Uint8Array): Promise<Response> {
    await c.conn.write(head);
    let end: number;
    while ((end = headEnd(c.buf, c.start, c.end)) < 0) {
      if (!await c.fill()) throw new Error("origin closed the connection");
    }
    const text = decoder.decode(c.buf.subarray(c.start, end));
    c.start = end;
    const lines = text.split("\r\n");
    const status = Number(lines[0].slice(9, 12));
    const headers = new Headers();
    let length = 0;
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i];
      const colon = line.indexOf(":");
      if (colon <= 0) continue;
      const name = line.slice(0, colon).toLowerCase();
      const value = line.slice(colon + 1).trim();
      if (name === "content-length") length = Number(value);
      if (name === "connection" || name === "keep-alive") continue;
      headers.append(name, value);
    }
    while (c.end - c.start < length) {
      if (!await c.fill()) throw new Error("origin closed the connection mid-body");
    }
    const body = c.buf.slice(c.start, c.start + length);
    c.start += length;
    idle.push(c);
    return new Response(body, { status, headers });
  }

  return async (req: Request, path: string): Promise<Response> => {
    let head = `${req.method} ${path} HTTP/1.1\r\n`;
    for (const [name, value] of req.headers) head += `${name}: ${value}\r\n`;
    const bytes = encoder.encode(head + "\r\n");
    const pooled = idle.pop();
    if (pooled !== undefined) {
      try {
        return await exchange(pooled, bytes);
      } catch {
        pooled.conn.close();
      }
    }
    return await exchange(new OriginConn(await Deno.connect({ hostname, port })), bytes);
  };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { port: { type: "string" }, origin: { type: "string" } },
  });
  if (!values.port || !values.origin) {
    console.error("usage: miss.ts --port PORT --origin http://HOST:PORT");
    Deno.exit(2);
  }
  const origin = new URL(values.origin);
  const send = minimalClient(origin.hostname, Number(origin.port || 80));
  listenHttp1({
    app: (req) => {
      const url = req.url;
      return send(req, url.slice(url.indexOf("/", url.indexOf("//") + 2)));
    },
    stats: new ProxyStats({ mode: "floor", listener: "http1" }),
    maxHeaderSize: 16 * 1024,
    maxHeaderCount: 100,
    headerTimeoutMs: 30_000,
    keepAliveTimeoutMs: 60_000,
    bodyTimeoutMs: 30_000,
    bodyMinRate: 0,
    requestBufferSize: 64 * 1024,
  }, { hostname: "127.0.0.1", port: Number(values.port), maxConnections: 10_000 });
  // Exit through Deno.exit so --cpu-prof writes its profile.
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => Deno.exit(0));
  }
  console.log(`miss floor listening on http://127.0.0.1:${values.port}`);
}
