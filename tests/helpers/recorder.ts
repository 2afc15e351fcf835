/**
 * A raw-TCP origin that records every request exactly as it arrived on the wire: the
 * request line (the request-target byte for byte, no URL parser in between), the headers,
 * the body, and the total bytes received. For asserts about what a backend actually saw:
 * a path the proxy must normalise or refuse, a body the proxy must never pass on.
 *
 * ```ts
 * const rec = startRecordingBackend();
 * // ... BACKEND_SERVERS: rec.url ...
 * assert.deepEqual(rec.requests.map((r) => r.line), ["GET /etc/passwd HTTP/1.1"]);
 * await rec.close();
 * ```
 */

export interface RecordedRequest {
  /** The request line as sent, e.g. `GET /a/b?c HTTP/1.1`. */
  readonly line: string;
  /** Header lines, names lower-cased. */
  readonly headers: ReadonlyMap<string, string>;
  /** Body bytes (Content-Length or de-chunked). */
  readonly bodyLength: number;
}

export interface RecordingBackend {
  readonly port: number;
  /** `http://HOST:PORT`, no trailing slash. */
  readonly url: string;
  /** Complete requests, in arrival order. */
  readonly requests: RecordedRequest[];
  /** Every byte received on every connection, complete requests or not. */
  bytesReceived(): number;
  /** Connections accepted. */
  connections(): number;
  close(): Promise<void>;
}

const OK = new TextEncoder().encode(
  "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok",
);

/** Listens on `hostname` (a loopback address; 127.0.0.2 for the forward-proxy allow-list). */
export function startRecordingBackend(hostname = "127.0.0.1"): RecordingBackend {
  const listener = Deno.listen({ hostname, port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const requests: RecordedRequest[] = [];
  const conns = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();
  let received = 0;
  let accepted = 0;
  const latin1 = new TextDecoder("latin1");

  const serve = async (conn: Deno.Conn) => {
    const buf = new Uint8Array(64 * 1024);
    let pending = "";
    const more = async (): Promise<boolean> => {
      const n = await conn.read(buf);
      if (n === null) return false;
      received += n;
      pending += latin1.decode(buf.subarray(0, n));
      return true;
    };
    /** Waits until `pending` holds `n` characters; false at end of stream. */
    const need = async (n: number) => {
      while (pending.length < n) if (!(await more())) return false;
      return true;
    };
    const line = async (): Promise<string | undefined> => {
      while (!pending.includes("\r\n")) if (!(await more())) return undefined;
      const at = pending.indexOf("\r\n");
      const l = pending.slice(0, at);
      pending = pending.slice(at + 2);
      return l;
    };
    while (true) {
      while (!pending.includes("\r\n\r\n")) if (!(await more())) return;
      const end = pending.indexOf("\r\n\r\n");
      const [requestLine, ...fields] = pending.slice(0, end).split("\r\n");
      pending = pending.slice(end + 4);
      const headers = new Map<string, string>();
      for (const f of fields) {
        const colon = f.indexOf(":");
        headers.set(f.slice(0, colon).trim().toLowerCase(), f.slice(colon + 1).trim());
      }
      let bodyLength = 0;
      if (/chunked/i.test(headers.get("transfer-encoding") ?? "")) {
        while (true) {
          const size = await line();
          if (size === undefined) return;
          const n = parseInt(size, 16);
          if (!(n > 0)) {
            if ((await line()) === undefined) return; // the empty line after the last chunk
            break;
          }
          if (!(await need(n + 2))) return;
          pending = pending.slice(n + 2);
          bodyLength += n;
        }
      } else {
        const n = Number(headers.get("content-length") ?? 0);
        if (!(await need(n))) return;
        pending = pending.slice(n);
        bodyLength = n;
      }
      requests.push({ line: requestLine, headers, bodyLength });
      await conn.write(OK);
    }
  };

  const loop = (async () => {
    try {
      for await (const conn of listener) {
        accepted++;
        conns.add(conn);
        const task = serve(conn).catch(() => {}).finally(() => {
          conns.delete(conn);
          try {
            conn.close();
          } catch { /* closed already */ }
        });
        tasks.add(task);
        task.finally(() => tasks.delete(task));
      }
    } catch { /* listener closed */ }
  })();

  return {
    port,
    url: `http://${hostname}:${port}`,
    requests,
    bytesReceived: () => received,
    connections: () => accepted,
    async close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed already */ }
      }
      await loop;
      await Promise.all(tasks);
    },
  };
}
