/**
 * Secondary cache keys from Vary (RFC 9111 §4.1).
 *
 * A stored response with `Vary: a, b` only matches requests whose a and b
 * fields normalise to the same values as the request that produced it. The
 * secondary key is that normalised tuple as one string, so a variant lookup is
 * one Map/hash lookup. Compression adds `Vary: Accept-Encoding` to nearly
 * everything, so Accept-Encoding is normalised semantically: the set of
 * acceptable codings, without order, spacing or q-values (except q=0, which
 * removes a coding). "gzip, deflate, br" and "br,gzip, deflate" share a variant.
 *
 * @module
 */
import type { HeaderView } from "../context/mod.ts";

/** Parsed Vary names, lower case, sorted, unique; `["*"]` for Vary: *. */
export function parseVary(value: string | null): string[] {
  if (value === null) return [];
  const names = new Set<string>();
  for (const part of value.split(",")) {
    const n = part.trim().toLowerCase();
    if (n === "*") return ["*"];
    if (n) names.add(n);
  }
  return [...names].sort();
}

/** Marks an absent field, so that "absent" and "present but empty" differ. */
const ABSENT = "\u0000";

const aeCache = new Map<string, string>();

/** Normalises Accept-Encoding to its sorted set of acceptable codings. */
export function normalizeAcceptEncoding(value: string): string {
  const cached = aeCache.get(value);
  if (cached !== undefined) return cached;
  const codings = new Set<string>();
  for (const part of value.split(",")) {
    const [coding, ...params] = part.split(";");
    const c = coding.trim().toLowerCase();
    if (!c) continue;
    let q = 1;
    for (const p of params) {
      const [k, v] = p.split("=");
      if (k.trim().toLowerCase() === "q") q = Number(v);
    }
    if (q > 0 || Number.isNaN(q)) codings.add(c);
  }
  const out = [...codings].sort().join(",");
  // Bounded memo: clients send few distinct Accept-Encoding values.
  if (aeCache.size >= 1024) aeCache.clear();
  aeCache.set(value, out);
  return out;
}

/** Normalises one request field value for comparison (whitespace-insensitive lists). */
export function normalizeField(name: string, value: string | null): string {
  if (value === null) return ABSENT;
  if (name === "accept-encoding") return normalizeAcceptEncoding(value);
  return value.split(",").map((s) => s.trim().replace(/\s+/g, " ")).join(",");
}

/**
 * The secondary key of a request for the given Vary names ("" when there are
 * none). Returns `null` for `Vary: *`, which never matches.
 */
export function secondaryKey(
  names: readonly string[],
  headers: Pick<HeaderView, "get">,
): string | null {
  if (names.length === 0) return "";
  if (names[0] === "*") return null;
  if (names.length === 1) {
    const n = names[0];
    return n + "=" + normalizeField(n, headers.get(n));
  }
  let key = "";
  for (const n of names) key += n + "=" + normalizeField(n, headers.get(n)) + "\n";
  return key;
}
