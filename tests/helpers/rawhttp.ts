/**
 * Raw HTTP/1.1 over a plain TCP socket, for tests that send what no HTTP
 * client library would: smuggling attempts, malformed request lines, huge or
 * slow headers. Parses just enough of the answer to assert on it.
 */

export interface RawResponse {
  /** Status code of the first non-1xx response; 0 when none arrived. */
  readonly status: number;
  /** Header names lower-cased; repeated fields joined with ", ". */
  readonly headers: Record<string, string>;
  /** Decoded body (de-chunked) as text. */
  readonly body: string;
  /** Every byte received, as latin1 text. */
  readonly raw: string;
  /** True when the server closed the connection before we gave up. */
  readonly closed: boolean;
}

export interface RawOptions {
  /** Give up waiting after this long (default 5000 ms). */
  readonly timeoutMs?: number;
  readonly hostname?: string;
  /** Keep reading after a complete response until the server closes (default false). */
  readonly waitForClose?: boolean;
}

const enc = new TextEncoder();
/**
 * Bytes to a string of the same code units (ISO-8859-1), so binary bodies survive:
 * TextDecoder("latin1") is windows-1252 and rewrites 0x80–0x9f.
 */
const latin1 = {
  decode(bytes: Uint8Array): string {
    let s = "";
    for (let i = 0; i < bytes.length; i += 8192) {
      s += String.fromCharCode(...bytes.subarray(i, i + 8192));
    }
    return s;
  },
};
const toBytes = (b: string | Uint8Array) => (typeof b === "string" ? enc.encode(b) : b);

interface Parsed {
  status: number;
  headers: Record<string, string>;
  body: string;
  complete: boolean;
}

function parse(raw: string, closed: boolean): Parsed {
  let rest = raw;
  while (true) {
    const end = rest.indexOf("\r\n\r\n");
    if (end < 0) return { status: 0, headers: {}, body: "", complete: false };
    const lines = rest.slice(0, end).split("\r\n");
    const status = Number(/^HTTP\/\d\.\d (\d{3})/.exec(lines[0])?.[1] ?? 0);
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(":");
      if (colon < 0) continue;
      const k = line.slice(0, colon).trim().toLowerCase();
      const v = line.slice(colon + 1).trim();
      headers[k] = k in headers ? `${headers[k]}, ${v}` : v;
    }
    const bodyText = rest.slice(end + 4);
    if (status >= 100 && status < 200) {
      rest = bodyText;
      continue;
    }
    const noBody = status === 204 || status === 304;
    if (noBody) return { status, headers, body: "", complete: true };
    if (headers["content-length"] !== undefined) {
      const n = Number(headers["content-length"]);
      return { status, headers, body: bodyText.slice(0, n), complete: bodyText.length >= n };
    }
    if (/chunked/i.test(headers["transfer-encoding"] ?? "")) {
      let body = "", pos = 0;
      while (true) {
        const lineEnd = bodyText.indexOf("\r\n", pos);
        if (lineEnd < 0) return { status, headers, body, complete: closed };
        const size = parseInt(bodyText.slice(pos, lineEnd), 16);
        if (Number.isNaN(size)) return { status, headers, body, complete: true };
        if (size === 0) return { status, headers, body, complete: true };
        const start = lineEnd + 2;
        if (bodyText.length < start + size + 2) {
          return { status, headers, body: body + bodyText.slice(start), complete: closed };
        }
        body += bodyText.slice(start, start + size);
        pos = start + size + 2;
      }
    }
    return { status, headers, body: bodyText, complete: closed };
  }
}

/** A raw connection: write bytes when you like, then read the answer. */
export interface RawConnection {
  write(bytes: string | Uint8Array): Promise<void>;
  /** Reads until a complete response, close, or timeout. */
  response(options?: RawOptions): Promise<RawResponse>;
  close(): void;
}

export async function openRaw(port: number, hostname = "127.0.0.1"): Promise<RawConnection> {
  const conn = await Deno.connect({ hostname, port });
  let received = "";
  let closed = false;
  let open = true;
  const buf = new Uint8Array(64 * 1024);
  let pending: Promise<number | null> | undefined;
  return {
    async write(bytes) {
      const data = toBytes(bytes);
      let off = 0;
      while (off < data.length) off += await conn.write(data.subarray(off));
    },
    async response(options = {}) {
      const deadline = Date.now() + (options.timeoutMs ?? 5_000);
      while (!closed) {
        const parsed = parse(received, false);
        if (parsed.complete && !options.waitForClose) break;
        const left = deadline - Date.now();
        if (left <= 0) break;
        pending ??= conn.read(buf).catch(() => null);
        let timer: ReturnType<typeof setTimeout> | undefined;
        const n = await Promise.race([
          pending,
          new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), left))),
        ]);
        clearTimeout(timer);
        if (n === "timeout") break;
        pending = undefined;
        if (n === null) closed = true;
        else received += latin1.decode(buf.subarray(0, n));
      }
      const p = parse(received, closed);
      return { status: p.status, headers: p.headers, body: p.body, raw: received, closed };
    },
    close() {
      if (!open) return;
      open = false;
      try {
        conn.close();
      } catch { /* already closed */ }
    },
  };
}

/**
 * Sends `bytes` on a fresh connection and returns the parsed answer.
 *
 * @example
 * ```ts
 * const r = await rawRequest(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
 * r.status; // 200
 * ```
 */
export async function rawRequest(
  port: number,
  bytes: string | Uint8Array,
  options: RawOptions = {},
): Promise<RawResponse> {
  const c = await openRaw(port, options.hostname);
  try {
    await c.write(bytes).catch(() => {}); // the server may close mid-write on purpose
    return await c.response(options);
  } finally {
    c.close();
  }
}
