/**
 * The compiled rule tables and the verdict lookup. A verdict is a few hash lookups on the
 * main thread: `a.b.example.com` checks `a.b.example.com`, `b.example.com`, `example.com`,
 * `com` in turn (exceptions first: an allowed host or parent is never blocked).
 *
 * @module
 */
import { canonicalHost, endsInNumber } from "../server/authority.ts";
import { type ParsedList, ruleTarget } from "./parse.ts";

/** Why a request is blocked. */
export interface Verdict {
  readonly category: string;
  /** The list entry that matched (`example.com`, `||example.com^`, `||host/path`). */
  readonly rule: string;
}

interface PathRule {
  readonly path: string;
  readonly separator: boolean;
  readonly verdict: Verdict;
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
function ruleHost(host: string): string {
  return host.includes(":") || endsInNumber(host) ? canonicalHost(host) ?? host : host;
}

const IP_RE = /^\d{1,3}(\.\d{1,3}){3}$|:/;

export class RuleTable {
  readonly #hosts = new Map<string, Verdict>();
  readonly #paths = new Map<string, PathRule[]>();
  readonly #allowHosts = new Set<string>();
  readonly #allowPaths = new Map<string, PathRule[]>();
  readonly rulesPerCategory: Record<string, number> = {};
  allowRules = 0;

  /** Adds a blocking rule; the first category to claim a host keeps it. */
  addBlock(rule: string, category: string): void {
    const r = ruleTarget(rule);
    const t = { ...r, host: ruleHost(r.host) };
    const verdict: Verdict = { category, rule };
    if (t.path === undefined) {
      if (this.#hosts.has(t.host)) return;
      this.#hosts.set(t.host, verdict);
    } else {
      const list = this.#paths.get(t.host) ?? [];
      list.push({ path: t.path, separator: !!t.separator, verdict });
      this.#paths.set(t.host, list);
    }
    this.rulesPerCategory[category] = (this.rulesPerCategory[category] ?? 0) + 1;
  }

  /** Adds an exception: the host (and its subdomains), or a URL prefix on a host. */
  addAllow(rule: string): void {
    const r = ruleTarget(rule);
    const t = { ...r, host: ruleHost(r.host) };
    if (t.path === undefined) {
      this.#allowHosts.add(t.host);
    } else {
      const list = this.#allowPaths.get(t.host) ?? [];
      list.push({ path: t.path, separator: !!t.separator, verdict: { category: "allow", rule } });
      this.#allowPaths.set(t.host, list);
    }
    this.allowRules++;
  }

  /** True when nothing can be blocked: the middleware then costs one property read. */
  get empty(): boolean {
    return this.#hosts.size === 0 && this.#paths.size === 0;
  }

  /** The verdict for a host (and optionally a path with query), or undefined to let it pass. */
  match(rawHost: string, rawPath?: string): Verdict | undefined {
    const host = normalizeHost(rawHost);
    if (host === "") return undefined;
    // Most tables have no path rules: then the path is not looked at (nor lower-cased).
    const path = this.#paths.size > 0 || this.#allowPaths.size > 0
      ? rawPath?.toLowerCase()
      : undefined;
    const ip = IP_RE.test(host);
    // Walk host, then each parent (`a.b.c` → `b.c` → `c`); an IP address only as a whole.
    let h = host;
    for (let i = 0; i >= 0;) {
      if (this.#allowHosts.has(h)) return undefined;
      if (path !== undefined && matchPath(this.#allowPaths.get(h), path)) return undefined;
      i = ip ? -1 : host.indexOf(".", i);
      if (i >= 0) h = host.slice(++i);
    }
    h = host;
    for (let i = 0; i >= 0;) {
      const v = this.#hosts.get(h);
      if (v) return v;
      if (path !== undefined) {
        const p = matchPath(this.#paths.get(h), path);
        if (p) return p;
      }
      i = ip ? -1 : host.indexOf(".", i);
      if (i >= 0) h = host.slice(++i);
    }
    return undefined;
  }
}

/** Yields to the event loop, so building big tables never stalls requests for long. */
const yieldToLoop = () => new Promise<void>((r) => setTimeout(r, 0));
const BATCH = 5_000;

/**
 * Builds a table from parsed lists (in category priority order) and allow rules, in
 * batches that yield to the event loop in between.
 */
export async function buildTable(
  lists: { category: string; parsed: ParsedList }[],
  allow: readonly string[],
): Promise<RuleTable> {
  const table = new RuleTable();
  let n = 0;
  for (const rule of allow) table.addAllow(rule);
  for (const { category, parsed } of lists) {
    for (const rule of parsed.allow) table.addAllow(rule);
    for (const rule of parsed.block) {
      table.addBlock(rule, category);
      if (++n % BATCH === 0) await yieldToLoop();
    }
  }
  return table;
}
