/**
 * Request filtering by category blocklists: loading (files, URLs, the built-in lists),
 * compiling into packed tables (compile.ts), atomic reloads, verdicts and the 403 a
 * blocked request gets (the filter phase itself is in src/pipeline).
 *
 * @module
 */
import { plainText } from "../respond/mod.ts";
import type { MetricFamily, StatsSource } from "../stats/metric.ts";
import { compileLists } from "./compile.ts";
import { RuleTable, type Verdict } from "./matcher.ts";
import { isValidHost, type ListReport, type ParseError } from "./parse.ts";
import { type LoadIssues, type SharedLoad, shareRules, type TableShare } from "./share.ts";

/** Built-in categories and their data files (embed them with `deno compile --include`). */
export const BUILTIN_LISTS: Readonly<Record<string, URL>> = {
  ads: new URL("./lists/ads.txt", import.meta.url),
  trackers: new URL("./lists/trackers.txt", import.meta.url),
  malware: new URL("./lists/malware.txt", import.meta.url),
};

/** Category of the lists given in FILTER_LISTS. */
export const CUSTOM_CATEGORY = "custom";

/** Anything with `warn` and `info` taking a plain message (a LogTape logger fits). */
export interface FilterLogger {
  warn(message: string): void;
  info(message: string): void;
}

export interface FilterOptions {
  /** REQUEST_FILTERS: built-in categories, in priority order (`ads`, `trackers`, `malware`). */
  categories: readonly string[];
  /** FILTER_LISTS: extra lists (file paths or http(s) URLs), category `custom`. */
  lists?: readonly string[];
  /** FILTER_ALLOW: domains never blocked, subdomains included. */
  allow?: readonly string[];
  logger?: FilterLogger;
  /** Deadline for fetching a URL list. Default 15 s. */
  fetchTimeoutMs?: number;
  /** With several serving threads: thread 0 compiles the lists, the others take its tables. */
  share?: TableShare;
}

export interface FilterSnapshot {
  categories: string[];
  rules: Record<string, number>;
  allow_rules: number;
  blocked: Record<string, number>;
  ignored_lines: number;
  last_reload: string | null;
  reload_ms: number;
  reloads: number;
  /** Bad lines and failed fetches in the lists as last loaded; reloads that failed. */
  errors: { count: number; recent: string[]; failed_reloads: number; last_failure: string | null };
}

export interface Filter extends StatsSource {
  /** The verdict for a host (port and case ignored), counted as a block when there is one. */
  check(host: string, path?: string): Verdict | undefined;
  /** The verdict without counting it (for a look before the phase that will count it). */
  peek(host: string, path?: string): Verdict | undefined;
  /**
   * Re-reads every list, compiles it between requests, swaps the tables at once (with several
   * serving threads, the threads other than 0 take the tables thread 0 has just compiled).
   */
  reload(): Promise<void>;
  snapshot(): FilterSnapshot;
  metrics(): MetricFamily[];
  close(): void;
}

/** `blocked; category=ads; rule=||doubleclick.net^` (visible ASCII only). */
export function xFilterValue(v: Verdict): string {
  return `blocked; category=${v.category}; rule=${v.rule}`.replace(/[^\x20-\x7e]/g, "?");
}

/** The 403 a blocked request gets. */
export function blockedResponse(v: Verdict): Response {
  return plainText(403, `blocked by proxy filter: category=${v.category} rule=${v.rule}`, {
    "x-filter": xFilterValue(v),
    "cache-control": "no-store",
  });
}

interface Source {
  category: string;
  location: string;
  url?: URL;
}

const MAX_WARNINGS_PER_LIST = 20;
const MAX_RECENT_ERRORS = 50;

type Issues = LoadIssues;

function newIssues(): Issues {
  return { count: 0, recent: [], ignored: 0 };
}

function record(found: Issues, message: string): void {
  found.count++;
  if (found.recent.length < MAX_RECENT_ERRORS) found.recent.push(message);
}

export async function createFilter(options: FilterOptions): Promise<Filter> {
  const log = options.logger;

  for (const c of options.categories) {
    if (!(c in BUILTIN_LISTS)) {
      throw new Error(
        `REQUEST_FILTERS: unknown category "${c}" (known: ${
          Object.keys(BUILTIN_LISTS).join(", ")
        })`,
      );
    }
  }
  const allow: string[] = [];
  for (const raw of options.allow ?? []) {
    const d = raw.trim().toLowerCase().replace(/^\*\./, "").replace(/\.$/, "");
    if (d === "") continue;
    if (!isValidHost(d)) throw new Error(`FILTER_ALLOW: "${raw}" is not a domain name`);
    allow.push(d);
  }
  const sources: Source[] = [
    ...options.categories.map((c) => ({
      category: c,
      location: BUILTIN_LISTS[c].protocol === "file:"
        ? decodeURIComponent(BUILTIN_LISTS[c].pathname)
        : BUILTIN_LISTS[c].href,
      url: BUILTIN_LISTS[c],
    })),
    ...(options.lists ?? []).filter((l) => l.trim() !== "").map((l) => ({
      category: CUSTOM_CATEGORY,
      location: l.trim(),
      url: /^https?:\/\//i.test(l.trim()) ? new URL(l.trim()) : undefined,
    })),
  ];

  /** What the tables were built from: thread 0 offers them under it (src/filter/share.ts). */
  const key = JSON.stringify({ sources: sources.map((s) => [s.category, s.location]), allow });
  const share = options.share;
  /** The tables in force, as thread 0 offers them to the other threads. */
  let offered: SharedLoad | undefined;

  let table = new RuleTable();
  const blocked: Record<string, number> = {};
  /** Problems found by the load in force (replaced by each successful reload). */
  let issues = newIssues();
  let failedReloads = 0;
  let lastFailure: string | null = null;
  let lastReload: Date | null = null;
  let reloadMs = 0;
  let reloads = 0;
  /** Last good bytes of each URL list, used when a later fetch fails. */
  const urlCache = new Map<string, Uint8Array>();
  let chain: Promise<void> = Promise.resolve();
  let closed = false;

  async function read(source: Source, found: Issues): Promise<Uint8Array | undefined> {
    if (source.url && source.url.protocol !== "file:") {
      try {
        const res = await fetch(source.url, {
          signal: AbortSignal.timeout(options.fetchTimeoutMs ?? 15_000),
        });
        if (!res.ok) {
          await res.body?.cancel();
          throw new Error(`HTTP ${res.status}`);
        }
        const bytes = new Uint8Array(await res.arrayBuffer());
        urlCache.set(source.location, bytes);
        return bytes;
      } catch (err) {
        const cached = urlCache.get(source.location);
        const msg = `filter list ${source.location} could not be fetched (${
          err instanceof Error ? err.message : err
        }); ${cached ? "keeping the previous copy" : "skipped"}`;
        log?.warn(msg);
        record(found, msg);
        return cached;
      }
    }
    const path = source.url ?? source.location;
    try {
      return await Deno.readFile(path);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) {
        throw new Error(`filter list not found: ${source.location}`);
      }
      throw new Error(`filter list ${source.location} could not be read: ${err}`);
    }
  }

  function report(parsed: ListReport, found: Issues): void {
    found.ignored += parsed.ignored;
    parsed.errors.forEach((e: ParseError, i: number) => {
      const msg = `${e.source}:${e.line}: ${e.reason}: ${e.text}`;
      if (i < MAX_WARNINGS_PER_LIST) log?.warn(`skipping bad filter line ${msg}`);
      record(found, msg);
    });
    found.count += parsed.errorCount - parsed.errors.length;
    if (parsed.errorCount > MAX_WARNINGS_PER_LIST) {
      log?.warn(`${parsed.source}: ${parsed.errorCount} bad lines in all, skipped`);
    }
  }

  /** Reads and compiles every list (thread 0, or the only thread). */
  async function compile(): Promise<SharedLoad> {
    const found = newIssues();
    const loaded = await Promise.all(sources.map(async (s) => {
      const bytes = await read(s, found);
      return bytes ? { category: s.category, source: s.location, bytes } : undefined;
    }));
    const compiled = await compileLists(loaded.filter((l) => l !== undefined), allow);
    for (const r of compiled.reports) report(r, found);
    const rules = share?.role === "publisher" ? shareRules(compiled.rules) : compiled.rules;
    return { rules, issues: found };
  }

  /** Thread 0's tables for these settings (it has loaded them first), else undefined. */
  async function take(): Promise<SharedLoad | undefined> {
    if (share?.role !== "taker") return undefined;
    try {
      const taken = await share.take(key);
      if (taken === undefined) {
        log?.warn("thread 0 has no filter tables for these lists: this thread compiles its own");
      }
      return taken;
    } catch (err) {
      log?.warn(
        `filter tables not taken from thread 0 (${
          (err as Error).message
        }): this thread compiles its own`,
      );
      return undefined;
    }
  }

  async function load(): Promise<void> {
    const started = performance.now();
    const next = await take() ?? await compile();
    const nextTable = new RuleTable(next.rules);
    if (closed) return;
    table = nextTable; // the swap: checks see the old table or the new one, never half of one
    issues = next.issues;
    if (share?.role === "publisher") {
      share.publish(key, next);
      offered = next;
    }
    lastReload = new Date();
    reloadMs = performance.now() - started;
    reloads++;
    log?.info(
      `filter lists loaded in ${Math.round(reloadMs)} ms: ${
        Object.entries(table.rulesPerCategory).map(([c, n]) => `${c}=${n}`).join(" ") ||
        "no rules"
      }, allow=${table.allowRules}`,
    );
  }

  function check(host: string, path?: string): Verdict | undefined {
    const v = table.match(host, path);
    if (v) blocked[v.category] = (blocked[v.category] ?? 0) + 1;
    return v;
  }

  await load();

  return {
    name: "filter",
    check,
    peek: (host, path) => table.match(host, path),
    reload(): Promise<void> {
      // Serialised: a reload asked for during another runs after it, on fresh files.
      const run = chain.then(load).catch((err) => {
        failedReloads++;
        lastFailure = err instanceof Error ? err.message : String(err);
        log?.warn(`filter reload failed, keeping the lists in force: ${lastFailure}`);
        throw err;
      });
      chain = run.catch(() => {});
      return run;
    },
    snapshot(): FilterSnapshot {
      return {
        categories: [...new Set(sources.map((s) => s.category))],
        rules: { ...table.rulesPerCategory },
        allow_rules: table.allowRules,
        blocked: { ...blocked },
        ignored_lines: issues.ignored,
        last_reload: lastReload?.toISOString() ?? null,
        reload_ms: Math.round(reloadMs),
        reloads,
        errors: {
          count: issues.count,
          recent: [...issues.recent],
          failed_reloads: failedReloads,
          last_failure: lastFailure,
        },
      };
    },
    metrics(): MetricFamily[] {
      const cats = [...new Set([...sources.map((s) => s.category), ...Object.keys(blocked)])];
      return [
        {
          name: "proxy_filter_blocked_total",
          help: "Requests and tunnels refused by the filter, by category.",
          type: "counter",
          samples: cats.map((c) => ({ labels: { category: c }, value: blocked[c] ?? 0 })),
        },
        {
          name: "proxy_filter_rules",
          help: "Blocking rules loaded, by category.",
          type: "gauge",
          samples: cats.map((c) => ({
            labels: { category: c },
            value: table.rulesPerCategory[c] ?? 0,
          })),
        },
        {
          name: "proxy_filter_list_errors",
          help: "Bad lines skipped and fetch failures in the lists in force.",
          type: "gauge",
          samples: [{ value: issues.count }],
        },
      ];
    },
    close(): void {
      closed = true;
      if (share?.role === "publisher" && offered) share.withdraw(key, offered);
      offered = undefined;
    },
  };
}
