/**
 * RFC 9111 policy for a shared cache: pure functions over header values.
 *
 * Nothing here does I/O or keeps state; the cache wrapper asks these
 * functions whether a response may be stored, how long it stays fresh, how
 * old a stored response is, and whether a request may be answered with it.
 *
 * @module
 */

/** Parsed Cache-Control: directive name (lower case) → value (`true` when it has none). */
export type Directives = Readonly<Record<string, string | true>>;

export const NO_DIRECTIVES: Directives = Object.freeze(Object.create(null));

/** Upper bound for delta-seconds (RFC 9111 §1.2.2: 2^31). */
const MAX_DELTA = 2147483648;

/** Upper bound for heuristic freshness from Last-Modified (one week, as browsers do). */
export const HEURISTIC_CAP_SEC = 7 * 24 * 3600;

/** Status codes that are heuristically cacheable (RFC 9110 §15.1). */
const HEURISTIC_STATUS = new Set([200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501]);

/** Status codes this cache understands (for `must-understand`, RFC 9111 §5.2.2.3). */
const UNDERSTOOD_STATUS = new Set([
  200,
  203,
  204,
  300,
  301,
  302,
  303,
  307,
  308,
  404,
  405,
  410,
  414,
  501,
]);

/**
 * Parses a Cache-Control field value. Names are lower-cased, quoted values
 * unquoted; when a directive repeats, the first occurrence wins
 * (RFC 9111 §4.2.1).
 */
export function parseCacheControl(value: string | null | undefined): Directives {
  if (!value) return NO_DIRECTIVES;
  const out: Record<string, string | true> = Object.create(null);
  let i = 0;
  const n = value.length;
  while (i < n) {
    while (i < n && (value[i] === " " || value[i] === "\t" || value[i] === ",")) i++;
    if (i >= n) break;
    let j = i;
    while (j < n && value[j] !== "=" && value[j] !== ",") j++;
    const name = value.slice(i, j).trim().toLowerCase();
    let val: string | true = true;
    if (j < n && value[j] === "=") {
      j++;
      while (j < n && (value[j] === " " || value[j] === "\t")) j++;
      if (value[j] === '"') {
        let k = j + 1;
        let s = "";
        while (k < n && value[k] !== '"') {
          if (value[k] === "\\" && k + 1 < n) k++;
          s += value[k];
          k++;
        }
        val = s;
        j = k + 1;
        while (j < n && value[j] !== ",") j++;
      } else {
        let k = j;
        while (k < n && value[k] !== ",") k++;
        val = value.slice(j, k).trim();
        j = k;
      }
    }
    if (name && !(name in out)) out[name] = val;
    i = j + 1;
  }
  return out;
}

/** One Cache-Control member: token [ "=" ( token / quoted-string ) ] (RFC 9111 §5.2), OWS allowed. */
const CC_MEMBER =
  /^[!#$%&'*+.^_`|~0-9A-Za-z-]+(?:[ \t]*=[ \t]*(?:[!#$%&'*+.^_`|~0-9A-Za-z-]+|"(?:[^"\\]|\\.)*"))?$/;
/** Members are split on commas outside quoted strings. */
const CC_SPLIT = /((?:[^",]|"(?:[^"\\]|\\.)*")*)(?:,|$)/g;

/**
 * True when a Cache-Control field value follows the grammar exactly
 * (`#( token [ "=" ( token / quoted-string ) ] )`). A value that does not —
 * `private;max-age=60`, `"no-store"`, an unterminated quote — is read
 * conservatively by {@linkcode storable}: other caches split it differently, so
 * whatever its author meant cannot be known, and a shared cache does not guess.
 */
export function wellFormedCacheControl(value: string): boolean {
  let rest = 0;
  for (const m of value.matchAll(CC_SPLIT)) {
    if (m.index !== rest) return false; // a stray quote: the members do not cover the value
    rest = m.index + m[0].length;
    const member = m[1].trim();
    if (member !== "" && !CC_MEMBER.test(member)) return false;
    if (rest >= value.length) break;
  }
  return rest >= value.length;
}

/**
 * True when the value mentions `private` or `no-store` anywhere other than as a
 * well-formed directive this cache acts on: inside a quoted value, glued to
 * another token, in any letter case. Such a response is not shared.
 */
function mentionsPrivacy(value: string, directives: Directives): boolean {
  const lower = value.toLowerCase();
  const mentions = (word: string) => lower.split(word).length - 1;
  const acted = (name: string) => directives[name] !== undefined ? 1 : 0;
  return mentions("no-store") > acted("no-store") || mentions("private") > acted("private");
}

/**
 * Reads a delta-seconds directive value. Returns `undefined` when absent,
 * `null` when present but invalid (callers treat that as stale, RFC 9111 §4.2.1).
 */
export function deltaSeconds(d: Directives, name: string): number | null | undefined {
  const v = d[name];
  if (v === undefined) return undefined;
  if (v === true || !/^\d+$/.test(v)) return null;
  const n = Number(v);
  return n > MAX_DELTA ? MAX_DELTA : n;
}

const MONTHS: Record<string, number> = {
  jan: 0,
  feb: 1,
  mar: 2,
  apr: 3,
  may: 4,
  jun: 5,
  jul: 6,
  aug: 7,
  sep: 8,
  oct: 9,
  nov: 10,
  dec: 11,
};

const IMF_FIXDATE = /^[A-Za-z]{3}, (\d{2}) ([A-Za-z]{3}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
const RFC850 = /^[A-Za-z]+, (\d{2})-([A-Za-z]{3})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
const ASCTIME = /^[A-Za-z]{3} ([A-Za-z]{3}) ([ \d]\d) (\d{2}):(\d{2}):(\d{2}) (\d{4})$/;

/**
 * Parses an HTTP-date (IMF-fixdate, RFC 850 or asctime; RFC 9110 §5.6.7) to
 * epoch milliseconds; `undefined` for anything else (e.g. `Expires: 0`).
 */
export function parseHttpDate(value: string | null | undefined): number | undefined {
  if (!value) return undefined;
  const s = value.trim();
  let day: string, mon: string, year: number, hh: string, mm: string, ss: string;
  let m = IMF_FIXDATE.exec(s);
  if (m) {
    [, day, mon, , hh, mm, ss] = m;
    year = Number(m[3]);
  } else if ((m = RFC850.exec(s))) {
    [, day, mon, , hh, mm, ss] = m;
    const yy = Number(m[3]);
    // RFC 9110: a two-digit year more than 50 years in the future is in the past century.
    const nowYear = new Date().getUTCFullYear();
    year = 2000 + yy;
    if (year > nowYear + 50) year -= 100;
  } else if ((m = ASCTIME.exec(s))) {
    [, mon, day, hh, mm, ss] = m;
    year = Number(m[6]);
  } else {
    return undefined;
  }
  const month = MONTHS[mon.toLowerCase()];
  if (month === undefined) return undefined;
  const t = Date.UTC(year, month, Number(day), Number(hh), Number(mm), Number(ss));
  return Number.isNaN(t) ? undefined : t;
}

/** Formats epoch milliseconds as an IMF-fixdate. */
export function formatHttpDate(ms: number): string {
  return new Date(ms).toUTCString();
}

/** The first comma-separated member of a field value (for fields that must not repeat). */
function firstMember(value: string | null): string | null {
  if (value === null) return null;
  const i = value.indexOf(",");
  return (i < 0 ? value : value.slice(0, i)).trim();
}

/** Parses the Age field: a non-negative integer, else 0 (RFC 9111 §5.1). */
export function parseAge(value: string | null): number {
  const v = firstMember(value);
  if (v === null || !/^\d+$/.test(v)) return 0;
  return Math.min(Number(v), MAX_DELTA);
}

/** Field names listed in a qualified directive value (`private="Set-Cookie, X-A"`). */
export function fieldNames(v: string | true | undefined): string[] {
  if (typeof v !== "string") return [];
  return v.split(",").map((s) => s.trim().toLowerCase()).filter((s) => s.length > 0);
}

/** Verdict on whether a response may be stored by a shared cache, and what to drop from it. */
export interface StorableVerdict {
  readonly storable: boolean;
  /** Why not (for logs and tests). */
  readonly reason?: string;
  /** Header fields (lower case) that must not be stored with the response. */
  readonly strip: readonly string[];
}

export interface StorableInput {
  /** Request method; only GET responses carry a body this cache can store. */
  readonly method: string;
  readonly requestDirectives: Directives;
  /** The request carried Authorization. */
  readonly authorization: boolean;
  readonly status: number;
  readonly responseDirectives: Directives;
  readonly responseHeaders: Headers;
}

/**
 * May a shared cache store this response (RFC 9111 §3, §3.5, §5.2)?
 *
 * - GET only, final status, not 206 or 304.
 * - `no-store` in request or response forbids it (unless `must-understand` with
 *   an understood status); unqualified `private` forbids it.
 * - A response to a request with Authorization only with `public`,
 *   `s-maxage` or `must-revalidate`.
 * - A response with Set-Cookie only when explicitly `public`; the cookie is
 *   then stripped from the stored copy so no user's cookie reaches another.
 * - `Vary: *` never matches, so it is not stored.
 * - The status must be heuristically cacheable, or freshness be explicit
 *   (`max-age`, `s-maxage`, `Expires`) or the response be `public`.
 * - Qualified `private="f"` and `no-cache="f"` store the response without f.
 */
export function storable(input: StorableInput): StorableVerdict {
  const { status, responseDirectives: rc, requestDirectives: qc, responseHeaders: h } = input;
  const strip: string[] = [];
  const no = (reason: string): StorableVerdict => ({ storable: false, reason, strip });
  if (input.method !== "GET") return no("method");
  if (status < 200 || status === 206 || status === 304 || status > 599) return no("status");
  const raw = h.get("cache-control");
  if (raw !== null) {
    if (!wellFormedCacheControl(raw)) return no("malformed cache-control");
    if (mentionsPrivacy(raw, rc)) return no("private or no-store mentioned");
  }
  const mustUnderstand = rc["must-understand"] !== undefined;
  if (mustUnderstand && !UNDERSTOOD_STATUS.has(status)) return no("must-understand");
  if (rc["no-store"] !== undefined && !mustUnderstand) return no("no-store");
  if (qc["no-store"] !== undefined) return no("request no-store");
  const priv = rc["private"];
  if (priv === true) return no("private");
  const isPublic = rc["public"] !== undefined;
  const sMaxage = rc["s-maxage"] !== undefined;
  if (input.authorization && !isPublic && !sMaxage && rc["must-revalidate"] === undefined) {
    return no("authorization");
  }
  if (h.has("set-cookie")) {
    if (!isPublic) return no("set-cookie");
    strip.push("set-cookie");
  }
  const vary = h.get("vary");
  if (vary !== null && vary.split(",").some((v) => v.trim() === "*")) return no("vary *");
  const explicit = rc["max-age"] !== undefined || sMaxage || h.has("expires");
  if (!explicit && !isPublic && !HEURISTIC_STATUS.has(status)) return no("status not cacheable");
  for (const f of fieldNames(priv)) strip.push(f);
  for (const f of fieldNames(rc["no-cache"])) strip.push(f);
  return { storable: true, strip };
}

/** What the cache needs to know about a stored response, computed once per stored copy. */
export interface Freshness {
  /** Freshness lifetime in seconds. */
  readonly lifetime: number;
  /** True when the lifetime came from s-maxage, max-age or Expires. */
  readonly explicit: boolean;
  /** True when it came from the configured default TTL. */
  readonly defaulted: boolean;
  /** `stale-while-revalidate` seconds (0 when absent). */
  readonly swr: number;
  /** `stale-if-error` seconds (0 when absent). */
  readonly sie: number;
  /** must-revalidate, proxy-revalidate or s-maxage: never served stale. */
  readonly mustRevalidate: boolean;
  /** Unqualified no-cache: validate before every use. */
  readonly noCache: boolean;
}

/**
 * CACHE_HEURISTIC: what freshness a response gets when it carries none of its own.
 * - `last-modified` (default): 10 % of the time since Last-Modified, capped by
 *   CACHE_EXPIRATION (RFC 9111 §4.2.2); without Last-Modified, none — so a page
 *   with nothing to go on (a visit counter) is never shared;
 * - `always`: CACHE_EXPIRATION for every heuristically cacheable response (the
 *   behaviour before, like Varnish's default_ttl);
 * - `off`: no heuristic freshness at all.
 */
export type CacheHeuristic = "last-modified" | "always" | "off";

export const CACHE_HEURISTICS: readonly CacheHeuristic[] = ["last-modified", "always", "off"];

/** The heuristic and its bound, as the cache applies them. */
export interface Heuristic {
  readonly mode: CacheHeuristic;
  /**
   * CACHE_EXPIRATION in seconds: the lifetime for `always`, the cap for
   * `last-modified`. 0 keeps its old meaning, strict RFC 9111: `always` gives
   * nothing by default and the Last-Modified heuristic is capped at a week.
   */
  readonly maxSec: number;
}

/** Strict RFC 9111: only the Last-Modified heuristic, capped at a week. */
export const STRICT_HEURISTIC: Heuristic = { mode: "last-modified", maxSec: 0 };

/**
 * Freshness lifetime of a response for a shared cache (RFC 9111 §4.2.1, §4.2.2):
 * s-maxage, then max-age, then Expires − Date; otherwise, where heuristic
 * freshness is allowed (heuristically cacheable status or `public`), what
 * the {@linkcode Heuristic} gives.
 *
 * @param dateMs the response's Date (or the time it was received when absent)
 */
export function freshness(
  status: number,
  rc: Directives,
  headers: { get(name: string): string | null },
  dateMs: number,
  heuristic: Heuristic,
): Freshness {
  const swr = deltaSeconds(rc, "stale-while-revalidate") ?? 0;
  const sie = deltaSeconds(rc, "stale-if-error") ?? 0;
  const sMax = deltaSeconds(rc, "s-maxage");
  const base = {
    swr: swr ?? 0,
    sie: sie ?? 0,
    mustRevalidate: rc["must-revalidate"] !== undefined ||
      rc["proxy-revalidate"] !== undefined || sMax !== undefined,
    noCache: rc["no-cache"] === true,
  };
  if (sMax !== undefined) return { ...base, lifetime: sMax ?? 0, explicit: true, defaulted: false };
  const maxAge = deltaSeconds(rc, "max-age");
  if (maxAge !== undefined) {
    return { ...base, lifetime: maxAge ?? 0, explicit: true, defaulted: false };
  }
  const expires = headers.get("expires");
  if (expires !== null) {
    // HTTP-dates contain a comma; repeated Expires lines (combined) do not parse: stale.
    const e = parseHttpDate(expires);
    const lifetime = e === undefined ? 0 : Math.max(0, Math.floor((e - dateMs) / 1000));
    return { ...base, lifetime, explicit: true, defaulted: false };
  }
  if (heuristic.mode !== "off" && (HEURISTIC_STATUS.has(status) || rc["public"] !== undefined)) {
    if (heuristic.mode === "always" && heuristic.maxSec > 0) {
      return { ...base, lifetime: heuristic.maxSec, explicit: false, defaulted: true };
    }
    const lm = parseHttpDate(headers.get("last-modified"));
    if (lm !== undefined && lm < dateMs) {
      const cap = heuristic.maxSec > 0
        ? Math.min(heuristic.maxSec, HEURISTIC_CAP_SEC)
        : HEURISTIC_CAP_SEC;
      const lifetime = Math.min(cap, Math.floor((dateMs - lm) / 10000));
      return { ...base, lifetime, explicit: false, defaulted: false };
    }
  }
  return { ...base, lifetime: 0, explicit: false, defaulted: false };
}

/**
 * `corrected_initial_age` of RFC 9111 §4.2.3, in seconds.
 *
 * @param ageHeader the response's Age field value
 * @param dateMs the response's Date
 * @param requestTimeMs when the request that produced it was sent
 * @param responseTimeMs when its headers were received
 */
export function correctedInitialAge(
  ageHeader: string | null,
  dateMs: number,
  requestTimeMs: number,
  responseTimeMs: number,
): number {
  const apparentAge = Math.max(0, (responseTimeMs - dateMs) / 1000);
  const responseDelay = Math.max(0, (responseTimeMs - requestTimeMs) / 1000);
  const correctedAgeValue = parseAge(ageHeader) + responseDelay;
  return Math.max(apparentAge, correctedAgeValue);
}

/** `current_age` of RFC 9111 §4.2.3, in seconds. */
export function currentAge(initialAge: number, responseTimeMs: number, nowMs: number): number {
  return initialAge + Math.max(0, (nowMs - responseTimeMs) / 1000);
}

/** Request directives that matter when choosing a stored response. */
export interface RequestRules {
  readonly directives: Directives;
  /** no-cache, or `Pragma: no-cache` without Cache-Control (RFC 9111 §5.4). */
  readonly noCache: boolean;
}

export function requestRules(cacheControl: string | null, pragma: string | null): RequestRules {
  const directives = parseCacheControl(cacheControl);
  const pragmaNoCache = cacheControl === null && pragma !== null &&
    pragma.toLowerCase().includes("no-cache");
  return { directives, noCache: pragmaNoCache || directives["no-cache"] !== undefined };
}

/**
 * How a stored response may be used for a request:
 * - "fresh": serve it;
 * - "stale": serve it stale (the client allows it with max-stale);
 * - "swr": serve it stale and refresh it in the background;
 * - "validate": it must be validated (or replaced) first.
 */
export type Usability = "fresh" | "stale" | "swr" | "validate";

/** Decides how a stored response may satisfy a request (RFC 9111 §4, §4.2.4, §5.2.1, RFC 5861). */
export function usability(f: Freshness, age: number, req: RequestRules): Usability {
  if (f.noCache || req.noCache) return "validate";
  const d = req.directives;
  if (d === NO_DIRECTIVES) {
    if (f.lifetime > age) return "fresh";
    if (f.mustRevalidate) return "validate";
    return f.swr > 0 && age - f.lifetime < f.swr ? "swr" : "validate";
  }
  const maxAge = deltaSeconds(d, "max-age");
  if (maxAge === null || (maxAge !== undefined && age > maxAge)) return "validate";
  const minFresh = deltaSeconds(d, "min-fresh");
  const remaining = f.lifetime - age;
  if (remaining > 0 && (minFresh === undefined || (minFresh !== null && remaining >= minFresh))) {
    return "fresh";
  }
  if (f.mustRevalidate) return "validate";
  const staleness = Math.max(0, age - f.lifetime);
  const maxStale = d["max-stale"];
  if (maxStale === true) return "stale";
  if (maxStale !== undefined) {
    const ms = deltaSeconds(d, "max-stale");
    if (ms !== null && ms !== undefined && staleness <= ms) return "stale";
  }
  if (remaining > 0) return "validate"; // failed min-fresh: not stale, but not fresh enough
  return f.swr > 0 && staleness < f.swr ? "swr" : "validate";
}

/**
 * May a stored response be served stale because the origin failed
 * (RFC 5861 stale-if-error in response or request, or RFC 9111 §4.2.4 when
 * the origin could not be reached at all)?
 *
 * @param unreachable the origin was not reached (connect error, timeout)
 */
export function staleIfError(
  f: Freshness,
  age: number,
  req: RequestRules,
  unreachable: boolean,
): boolean {
  if (f.mustRevalidate || f.noCache) return false;
  const staleness = Math.max(0, age - f.lifetime);
  if (f.sie > 0 && staleness <= f.sie) return true;
  const reqSie = deltaSeconds(req.directives, "stale-if-error");
  if (reqSie !== undefined && reqSie !== null && staleness <= reqSie) return true;
  return unreachable;
}

/** Is this response eligible for `only-if-cached` etc.: does the request forbid using the network? */
export function onlyIfCached(req: RequestRules): boolean {
  return req.directives["only-if-cached"] !== undefined;
}

/** Strips the weakness prefix for weak comparison (RFC 9110 §8.8.3.2). */
function opaque(tag: string): string {
  const t = tag.trim();
  return t.startsWith("W/") ? t.slice(2) : t;
}

/** If-None-Match evaluation with weak comparison: true when any listed tag matches. */
export function etagMatches(ifNoneMatch: string, etag: string | null): boolean {
  const v = ifNoneMatch.trim();
  if (v === "*") return etag !== null;
  if (etag === null) return false;
  const want = opaque(etag);
  // entity-tags may contain commas only inside quotes; split on quoted tags.
  const tags = v.match(/(?:W\/)?"[^"]*"/g) ?? [];
  return tags.some((t) => opaque(t) === want);
}

/**
 * Should a client's conditional GET/HEAD be answered 304 from this stored
 * response (RFC 9110 §13.2.2: If-None-Match wins over If-Modified-Since)?
 *
 * @param modified the stored response's Last-Modified, or its Date when it
 *   has none (RFC 9111 §4.3.2)
 */
export function notModified(
  ifNoneMatch: string | null,
  ifModifiedSince: string | null,
  etag: string | null,
  modified: string | null,
): boolean {
  if (ifNoneMatch !== null) return etagMatches(ifNoneMatch, etag);
  if (ifModifiedSince === null || modified === null) return false;
  const ims = parseHttpDate(ifModifiedSince);
  const lm = parseHttpDate(modified);
  return ims !== undefined && lm !== undefined && lm <= ims;
}

/** Hop-by-hop and per-hop fields never stored (RFC 9111 §3.1) or recomputed on serve. */
export const NOT_STORED = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "age",
  "x-cache",
  "content-length",
]);

/**
 * Fields a 304 must not overwrite in the stored response (RFC 9111 §3.2,
 * §4.3.4): besides those never stored, the ones that describe the stored
 * body itself (its coding, range and digest). Everything else, Content-Type
 * included, is replaced by the 304's value as §3.2 requires.
 */
export const NOT_UPDATED = new Set([
  ...NOT_STORED,
  "content-encoding",
  "content-range",
  "content-md5",
  "set-cookie",
]);

/** Fields sent with a 304 answered from cache (RFC 9110 §15.4.5). */
export const NOT_MODIFIED_FIELDS = new Set([
  "cache-control",
  "content-location",
  "date",
  "etag",
  "expires",
  "vary",
  "last-modified",
]);

/** Methods defined as safe (RFC 9110 §9.2.1); every other one is unsafe or of unknown safety. */
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS", "TRACE"]);

/**
 * Does a non-error response to `method` invalidate stored responses for the
 * target (RFC 9111 §4.4)? Yes for every unsafe method, including methods
 * this cache does not know (e.g. `M-SEARCH`), whose safety is unknown.
 */
export function invalidatesOnSuccess(method: string): boolean {
  return !SAFE_METHODS.has(method.toUpperCase());
}
