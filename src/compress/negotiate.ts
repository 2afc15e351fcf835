/**
 * Accept-Encoding negotiation (RFC 9110 §12.5.3) and the header rules around it.
 *
 * @module
 */
import type { Encoding } from "./codec.ts";

/** q-values by coding name (lower case); `*` and `identity` included when present. */
export function parseAcceptEncoding(header: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const part of header.split(",")) {
    const [rawName, ...params] = part.split(";");
    let name = rawName.trim().toLowerCase();
    if (!name) continue;
    if (name === "x-gzip") name = "gzip";
    let q = 1;
    for (const p of params) {
      const m = /^\s*q\s*=\s*([0-9.]+)\s*$/i.exec(p);
      if (m) {
        const v = Number(m[1]);
        q = Number.isFinite(v) ? Math.min(1, Math.max(0, v)) : 0;
      }
    }
    // The first occurrence wins when a client repeats a coding.
    if (!out.has(name)) out.set(name, q);
  }
  return out;
}

/**
 * The coding to use, or undefined for identity. `preference` is the server's order (first
 * wins among equal q-values). Identity competes too: `gzip;q=0.5, identity` means identity.
 * No header means the client did not ask for compression, so none is applied.
 */
export function negotiate(
  header: string | null,
  preference: readonly Encoding[],
): Encoding | undefined {
  if (header === null || header.trim() === "") return undefined;
  const accepted = parseAcceptEncoding(header);
  const star = accepted.get("*");
  let best: Encoding | undefined;
  let bestQ = 0;
  for (const enc of preference) {
    const q = accepted.get(enc) ?? star ?? 0;
    if (q > bestQ) {
      best = enc;
      bestQ = q;
    }
  }
  if (!best) return undefined;
  // Identity competes only when listed: unlisted it is merely "acceptable" (RFC 9110
  // §12.5.3), not preferred, so `br;q=0.5` still means br.
  const identityQ = accepted.get("identity") ?? 0;
  return identityQ > bestQ ? undefined : best;
}

const COMPRESSIBLE_APPLICATION = new Set([
  "json",
  "javascript",
  "x-javascript",
  "ecmascript",
  "xml",
  "xhtml+xml",
  "wasm",
  "x-ndjson",
  "ndjson",
  "graphql",
  "rtf",
  "x-sh",
  "x-csh",
  "x-tex",
  "x-yaml",
  "yaml",
  "toml",
  "x-www-form-urlencoded",
  "vnd.ms-fontobject",
  "x-font-ttf",
  "x-font-opentype",
  "wasm",
  "x-httpd-php",
  "postscript",
  "x-perl",
  "x-python",
]);
const COMPRESSIBLE_OTHER = new Set([
  "image/svg+xml",
  "image/x-icon",
  "image/vnd.microsoft.icon",
  "image/bmp",
  "font/ttf",
  "font/otf",
  "font/opentype",
  "font/collection",
]);

/**
 * True for media types worth compressing: text (except event streams, which must reach the
 * client event by event), JSON, JavaScript, XML, SVG, WASM, uncompressed fonts and the
 * `+json`/`+xml` structured suffixes. Images, video, audio, archives and WOFF fonts are
 * already compressed.
 */
export function isCompressible(contentType: string | null): boolean {
  if (!contentType) return false;
  const type = contentType.split(";", 1)[0].trim().toLowerCase();
  if (type.startsWith("text/")) return type !== "text/event-stream";
  if (type.endsWith("+json") || type.endsWith("+xml")) return true;
  if (COMPRESSIBLE_OTHER.has(type)) return true;
  return type.startsWith("application/") && COMPRESSIBLE_APPLICATION.has(type.slice(12));
}

/** True when Cache-Control carries `no-transform` (RFC 9111 §5.2.2.6). */
export function hasNoTransform(cacheControl: string | null): boolean {
  return !!cacheControl && /(^|,)\s*no-transform\s*(,|$)/i.test(cacheControl);
}

/** Adds `Accept-Encoding` to a Vary header value, keeping what is there (and `*`). */
export function mergeVary(vary: string | null): string {
  if (!vary || vary.trim() === "") return "Accept-Encoding";
  const names = vary.split(",").map((v) => v.trim().toLowerCase());
  if (names.includes("*") || names.includes("accept-encoding")) return vary;
  return `${vary}, Accept-Encoding`;
}

/**
 * Makes a strong ETag weak. Weak rather than per-encoding suffixes: a weak validator still
 * works for `If-None-Match` (weak comparison) on GET, needs no un-suffixing before the
 * request goes upstream, and a compressed body is not byte-identical to the origin's, so a
 * strong ETag would be a lie (RFC 9110 §8.8.3).
 */
export function weakenEtag(etag: string | null): string | null {
  if (!etag) return etag;
  const t = etag.trim();
  return t.startsWith("W/") ? t : `W/${t}`;
}
