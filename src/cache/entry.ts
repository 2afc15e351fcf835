/**
 * A stored response, and what is derived from it once so that serving a hit
 * does almost nothing: precomputed header tuples, freshness, validators.
 *
 * @module
 */
import {
  type Freshness,
  freshness,
  type Heuristic,
  NOT_MODIFIED_FIELDS,
  parseCacheControl,
  parseHttpDate,
} from "./policy.ts";
import { HeadTemplate } from "../server/http1/response.ts";

/** What a store keeps for one response variant. */
export interface StoredResponse {
  /** Primary key: the effective request URL. */
  readonly url: string;
  readonly status: number;
  /** Stored header fields, lower-case names, without hop-by-hop fields, Age or Content-Length. */
  readonly headers: readonly [string, string][];
  readonly body: Uint8Array<ArrayBuffer>;
  /** When the request that produced it was sent / its headers arrived (epoch ms). */
  readonly requestTime: number;
  readonly responseTime: number;
  /** Vary names of the response (sorted, lower case); empty when it has no Vary. */
  readonly varyNames: readonly string[];
  /** Secondary key computed from the request with `varyNames`. */
  readonly varyKey: string;
  /** corrected_initial_age (RFC 9111 §4.2.3) in seconds, computed when it was received. */
  readonly initialAge: number;
}

/** A stored response plus values derived from it (computed once per copy in memory). */
export interface CacheEntry extends StoredResponse {
  readonly freshness: Freshness;
  readonly etag: string | null;
  readonly lastModified: string | null;
  /**
   * What a client's If-Modified-Since is compared with: Last-Modified, else
   * Date (RFC 9111 §4.3.2), so a stored response without Last-Modified can
   * still answer a conditional request with 304.
   */
  readonly modified: string | null;
  /**
   * Headers to serve (everything stored plus Content-Length), built once:
   * `new Response(body, { headers })` copies an existing Headers list several
   * times faster than it validates tuples or a record. Never mutated.
   */
  readonly serveHeaders: Headers;
  /** Headers of a 304 answered from this entry (never mutated). */
  readonly notModifiedHeaders: Headers;
  /**
   * The head of a hit on the wire, serialised once from `serveHeaders`, with
   * Age and X-Request-Id left to fill per hit; undefined when the entry is
   * served only through a Response (204/304 have no body to frame, a stored
   * Age would have to be combined).
   */
  readonly hitHead: HeadTemplate | undefined;
  /** Approximate bytes held in memory. */
  readonly size: number;
}

/**
 * A stored response with its derived values. The header lists used to serve
 * it are built on first use: on a miss-heavy workload most entries are never
 * served, and building a Headers list costs microseconds.
 */
class Entry implements CacheEntry {
  readonly url: string;
  readonly status: number;
  readonly headers: readonly [string, string][];
  readonly body: Uint8Array<ArrayBuffer>;
  readonly requestTime: number;
  readonly responseTime: number;
  readonly varyNames: readonly string[];
  readonly varyKey: string;
  readonly initialAge: number;
  readonly freshness: Freshness;
  readonly etag: string | null;
  readonly lastModified: string | null;
  readonly modified: string | null;
  readonly size: number;
  #serve: Headers | undefined;
  #notModified: Headers | undefined;
  #hitHead: HeadTemplate | undefined | null;

  constructor(s: StoredResponse, heuristic: Heuristic) {
    this.url = s.url;
    this.status = s.status;
    this.headers = s.headers;
    this.body = s.body;
    this.requestTime = s.requestTime;
    this.responseTime = s.responseTime;
    this.varyNames = s.varyNames;
    this.varyKey = s.varyKey;
    this.initialAge = s.initialAge;
    let cc: string | null = null;
    let date: string | null = null;
    let etag: string | null = null;
    let lastModified: string | null = null;
    let expires: string | null = null;
    let headerBytes = 0;
    for (const [k, v] of s.headers) {
      headerBytes += k.length + v.length + 16;
      if (k === "cache-control") cc = cc === null ? v : cc + ", " + v;
      else if (k === "date") date = v;
      else if (k === "etag") etag = v;
      else if (k === "last-modified") lastModified = v;
      else if (k === "expires") expires = expires === null ? v : expires + ", " + v;
    }
    const fields = {
      get: (name: string) =>
        name === "expires" ? expires : name === "last-modified" ? lastModified : null,
    };
    const dateMs = parseHttpDate(date) ?? s.responseTime;
    this.freshness = freshness(s.status, parseCacheControl(cc), fields, dateMs, heuristic);
    this.etag = etag;
    this.lastModified = lastModified;
    this.modified = lastModified ?? date;
    this.size = s.body.byteLength + headerBytes + s.url.length + 256;
  }

  get serveHeaders(): Headers {
    if (this.#serve === undefined) {
      const h = new Headers(this.headers as [string, string][]);
      // 204 and 304 never carry Content-Length for a body (RFC 9110 §8.6).
      if (this.status !== 204 && this.status !== 304) {
        h.append("content-length", String(this.body.byteLength));
      }
      // Most responses served from an entry are hits: one header less to add per request.
      h.append("x-cache", "HIT");
      this.#serve = h;
    }
    return this.#serve;
  }

  get hitHead(): HeadTemplate | undefined {
    if (this.#hitHead === undefined) {
      this.#hitHead = this.status === 204 || this.status === 304
        ? null
        : HeadTemplate.of(this.status, this.serveHeaders) ?? null;
    }
    return this.#hitHead ?? undefined;
  }

  get notModifiedHeaders(): Headers {
    this.#notModified ??= new Headers(
      this.headers.filter(([k]) => NOT_MODIFIED_FIELDS.has(k)) as [string, string][],
    );
    return this.#notModified;
  }
}

/** Derives a {@linkcode CacheEntry} from a stored response. */
export function prepare(s: StoredResponse, heuristic: Heuristic): CacheEntry {
  return new Entry(s, heuristic);
}

/** Strips the derived fields (for serialisation). */
export function stored(e: StoredResponse): StoredResponse {
  return {
    url: e.url,
    status: e.status,
    headers: e.headers,
    body: e.body,
    requestTime: e.requestTime,
    responseTime: e.responseTime,
    varyNames: e.varyNames,
    varyKey: e.varyKey,
    initialAge: e.initialAge,
  };
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Packs a stored response as one binary value: a 4-byte big-endian length,
 * compact JSON metadata, then the raw body (no base64).
 */
export function pack(e: StoredResponse): Uint8Array {
  const meta = encoder.encode(JSON.stringify([
    1,
    e.url,
    e.status,
    e.headers,
    e.requestTime,
    e.responseTime,
    e.varyNames,
    e.varyKey,
    e.initialAge,
  ]));
  const out = new Uint8Array(4 + meta.byteLength + e.body.byteLength);
  new DataView(out.buffer).setUint32(0, meta.byteLength);
  out.set(meta, 4);
  out.set(e.body, 4 + meta.byteLength);
  return out;
}

/** Inverse of {@linkcode pack}; `undefined` for anything malformed. */
export function unpack(buf: Uint8Array<ArrayBufferLike>): StoredResponse | undefined {
  if (buf.byteLength < 4) return undefined;
  const len = new DataView(buf.buffer, buf.byteOffset, buf.byteLength).getUint32(0);
  if (4 + len > buf.byteLength) return undefined;
  try {
    const m = JSON.parse(decoder.decode(buf.subarray(4, 4 + len)));
    if (!Array.isArray(m) || m[0] !== 1) return undefined;
    return {
      url: m[1],
      status: m[2],
      headers: m[3],
      requestTime: m[4],
      responseTime: m[5],
      varyNames: m[6],
      varyKey: m[7],
      initialAge: m[8],
      body: buf.subarray(4 + len) as Uint8Array<ArrayBuffer>,
    };
  } catch {
    return undefined;
  }
}
