/**
 * The compiled rule tables and the verdict lookup. A verdict is a few hash lookups on the
 * main thread: `a.b.example.com` checks `a.b.example.com`, `b.example.com`, `example.com`,
 * `com` in turn (exceptions first: an allowed host or parent is never blocked). The tables
 * are {@linkcode HostIndex}es: flat typed arrays, looked up without slicing the host.
 *
 * @module
 */
import { canonicalHost, endsInNumber } from "../server/authority.ts";
import { HostIndex, type HostIndexData } from "./host_index.ts";

/** Why a request is blocked. */
export interface Verdict {
  readonly category: string;
  /** The list entry that matched (`example.com`, `||example.com^`, `||host/path`). */
  readonly rule: string;
}

/** A URL-prefix rule on one host. */
export interface PathRule {
  readonly path: string;
  readonly separator: boolean;
  readonly verdict: Verdict;
}

/** Set in a host rule's meta byte: the rule was written `||host^` (else `host`). */
export const ADBLOCK_FLAG = 0x80;

/**
 * A compiled table as plain data (structured-cloneable; the index arrays transferable), as
 * {@linkcode compileRules} makes it in a worker or inline.
 */
export interface CompiledRules {
  /** Category names; a host rule's meta byte holds an index into it. */
  readonly categories: string[];
  readonly hosts: HostIndexData;
  /** Per host rule: category index | ADBLOCK_FLAG. */
  readonly hostMeta: Uint8Array;
  /** Host rules whose text is not `host` or `||host^` (an address spelt another way). */
  readonly oddRules: [entry: number, rule: string][];
  readonly pathHosts: HostIndexData;
  /** Per path host, its rules in list order. */
  readonly pathRules: PathRule[][];
  readonly allowHosts: HostIndexData;
  readonly allowPathHosts: HostIndexData;
  readonly allowPathRules: PathRule[][];
  readonly rulesPerCategory: Record<string, number>;
  readonly allowRules: number;
}

/** Characters that end a path prefix for a `^` separator (RFC 3986 delimiters, end). */
function isSeparator(ch: string | undefined): boolean {
  return ch === undefined || !/[a-z0-9_\-.%]/i.test(ch);
}

function matchPath(rules: PathRule[] | undefined, path: string): Verdict | undefined {
  if (!rules) return undefined;
  for (const r of rules) {
    if (path.startsWith(r.path) && (!r.separator || isSeparator(path[r.path.length]))) {
      return r.verdict;
    }
  }
  return undefined;
}

/**
 * Lower-cases and strips a port, a trailing dot and IPv6 brackets; an IP
 * address in any notation (`28697412`, `0x7f.1`, `::ffff:127.0.0.1`) becomes
 * its canonical form, so a rule `||1.2.3.4^` holds however a client spells
 * the address (the same parser as CONNECT's authority, src/server/authority.ts).
 */
export function normalizeHost(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith("[")) {
    const end = h.indexOf("]");
    if (end > 0) h = h.slice(1, end);
  } else {
    const colon = h.indexOf(":");
    if (colon >= 0 && h.indexOf(":", colon + 1) < 0) h = h.slice(0, colon);
  }
  // Names (the common case) skip the URL parser: only IPv6 and number-ending hosts need it.
  if (h.includes(":") || endsInNumber(h)) return canonicalHost(h) ?? h;
  if (h.endsWith(".")) h = h.slice(0, -1);
  return h;
}

/** A rule's host in the same canonical form as the hosts it is compared with. */
export function ruleHost(host: string): string {
  return host.includes(":") || endsInNumber(host) ? canonicalHost(host) ?? host : host;
}

const IP_RE = /^\d{1,3}(\.\d{1,3}){3}$|:/;

const EMPTY_INDEX = HostIndex.build([]);

/** An empty table (before the first load). */
export const EMPTY_RULES: CompiledRules = {
  categories: [],
  hosts: EMPTY_INDEX,
  hostMeta: new Uint8Array(0),
  oddRules: [],
  pathHosts: EMPTY_INDEX,
  pathRules: [],
  allowHosts: EMPTY_INDEX,
  allowPathHosts: EMPTY_INDEX,
  allowPathRules: [],
  rulesPerCategory: {},
  allowRules: 0,
};

/** The verdicts of one load: read-only; a reload builds a new one. */
export class RuleTable {
  readonly #categories: string[];
  readonly #hosts: HostIndex;
  readonly #hostMeta: Uint8Array;
  readonly #oddRules: Map<number, string>;
  readonly #pathHosts: HostIndex;
  readonly #pathRules: PathRule[][];
  readonly #allowHosts: HostIndex;
  readonly #allowPathHosts: HostIndex;
  readonly #allowPathRules: PathRule[][];
  readonly #anyAllow: boolean;
  readonly rulesPerCategory: Readonly<Record<string, number>>;
  readonly allowRules: number;

  constructor(rules: CompiledRules = EMPTY_RULES) {
    this.#categories = rules.categories;
    this.#hosts = new HostIndex(rules.hosts);
    this.#hostMeta = rules.hostMeta;
    this.#oddRules = new Map(rules.oddRules);
    this.#pathHosts = new HostIndex(rules.pathHosts);
    this.#pathRules = rules.pathRules;
    this.#allowHosts = new HostIndex(rules.allowHosts);
    this.#allowPathHosts = new HostIndex(rules.allowPathHosts);
    this.#allowPathRules = rules.allowPathRules;
    this.#anyAllow = this.#allowHosts.size > 0 || this.#allowPathHosts.size > 0;
    this.rulesPerCategory = rules.rulesPerCategory;
    this.allowRules = rules.allowRules;
  }

  /** True when nothing can be blocked: the middleware then costs one property read. */
  get empty(): boolean {
    return this.#hosts.size === 0 && this.#pathHosts.size === 0;
  }

  #hostVerdict(entry: number): Verdict {
    const meta = this.#hostMeta[entry];
    const category = this.#categories[meta & ~ADBLOCK_FLAG];
    const odd = this.#oddRules.get(entry);
    if (odd !== undefined) return { category, rule: odd };
    const host = this.#hosts.host(entry);
    return { category, rule: meta & ADBLOCK_FLAG ? `||${host}^` : host };
  }

  /** The verdict for a host (and optionally a path with query), or undefined to let it pass. */
  match(rawHost: string, rawPath?: string): Verdict | undefined {
    const host = normalizeHost(rawHost);
    if (host === "") return undefined;
    // Most tables have no path rules: then the path is not looked at (nor lower-cased).
    const path = this.#pathHosts.size > 0 || this.#allowPathHosts.size > 0
      ? rawPath?.toLowerCase()
      : undefined;
    const ip = IP_RE.test(host);
    // Walk host, then each parent (`a.b.c` → `b.c` → `c`); an IP address only as a whole.
    if (this.#anyAllow) {
      for (let i = 0; i >= 0;) {
        if (this.#allowHosts.find(host, i) >= 0) return undefined;
        if (path !== undefined) {
          const e = this.#allowPathHosts.find(host, i);
          if (e >= 0 && matchPath(this.#allowPathRules[e], path)) return undefined;
        }
        i = ip ? -1 : host.indexOf(".", i);
        if (i >= 0) i++;
      }
    }
    for (let i = 0; i >= 0;) {
      const entry = this.#hosts.find(host, i);
      if (entry >= 0) return this.#hostVerdict(entry);
      if (path !== undefined) {
        const e = this.#pathHosts.find(host, i);
        if (e >= 0) {
          const p = matchPath(this.#pathRules[e], path);
          if (p) return p;
        }
      }
      i = ip ? -1 : host.indexOf(".", i);
      if (i >= 0) i++;
    }
    return undefined;
  }
}
