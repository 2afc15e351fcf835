/** Small clients for end-to-end tests: curl, a fetch that goes through a proxy, raw TCP. */

const dec = new TextDecoder();

export interface CurlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs curl with the arguments; never throws on curl's own exit codes. */
export async function curl(...args: string[]): Promise<CurlResult> {
  const out = await new Deno.Command("curl", { args: ["-sS", "--max-time", "30", ...args] })
    .output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** A fetch client whose requests go through the proxy at `proxyUrl` (HTTP_PROXY style). */
export function proxiedClient(proxyUrl: string, caCerts?: string[]): Deno.HttpClient {
  return Deno.createHttpClient({ proxy: { url: proxyUrl }, caCerts });
}

export interface RawResponse {
  /** Status code of the first response, or 0 when none arrived. */
  status: number;
  head: string;
  body: Uint8Array;
  /** Everything received. */
  raw: Uint8Array;
}

/**
 * Writes `request` on a fresh TCP connection and reads until the server
 * closes or `timeoutMs` passes; parses the first response head.
 */
export async function raw(
  port: number,
  request: string | Uint8Array,
  timeoutMs = 10_000,
): Promise<RawResponse> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const chunks: Uint8Array[] = [];
  const timer = setTimeout(() => {
    try {
      conn.close();
    } catch { /* closed */ }
  }, timeoutMs);
  try {
    await conn.write(typeof request === "string" ? new TextEncoder().encode(request) : request);
    const buf = new Uint8Array(65536);
    while (true) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
    }
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed */ }
  }
  const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let off = 0;
  for (const c of chunks) {
    all.set(c, off);
    off += c.length;
  }
  let end = -1;
  for (let i = 3; i < all.length; i++) {
    if (all[i] === 10 && all[i - 1] === 13 && all[i - 2] === 10 && all[i - 3] === 13) {
      end = i + 1;
      break;
    }
  }
  const head = end < 0 ? dec.decode(all) : dec.decode(all.subarray(0, end));
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0);
  return { status, head, body: end < 0 ? new Uint8Array() : all.subarray(end), raw: all };
}

/** Value of a header in a raw response head (case-insensitive), or undefined. */
export function headerOf(head: string, name: string): string | undefined {
  const m = new RegExp(`^${name}:\\s*(.*?)\\s*$`, "im").exec(head);
  return m?.[1];
}
