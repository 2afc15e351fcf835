/**
 * Compiles lists into a {@linkcode CompiledRules}, the packed tables a serving thread keeps.
 * Each rule goes from the text to the tables as it is parsed: the ~150,000 rules of the
 * built-in lists never exist as strings all at once, so compiling them needs no more than a
 * few MiB of heap on top of the tables (~6 MiB) and can run on the serving thread, in
 * chunks between which requests are served.
 *
 * Why not in a worker: a terminated worker's isolate does not give its heap pages back to
 * the system (measured: a worker that built 150 MiB of strings left ~130 MiB of RSS after
 * `terminate()`), so parsing there the old way cost ~50 MiB of idle RSS for good.
 *
 * @module
 */
import { HostIndex, HostIndexBuilder } from "./host_index.ts";
import { ADBLOCK_FLAG, type CompiledRules, type PathRule, ruleHost } from "./matcher.ts";
import {
  type ListReport,
  MAX_ERRORS_KEPT,
  type ParsedList,
  type ParseError,
  parseRules,
  ruleTarget,
} from "./parse.ts";

/** One list's bytes and where they came from. */
export interface ListBytes {
  readonly category: string;
  /** File path or URL, for error messages. */
  readonly source: string;
  readonly bytes: Uint8Array;
}

export interface CompiledLists {
  readonly rules: CompiledRules;
  readonly reports: ListReport[];
}

/** Collects rules with the table's precedence, then packs them. */
export class RuleBuilder {
  readonly #categories: string[] = [];
  readonly #hosts = new HostIndexBuilder();
  readonly #hostMeta: number[] = [];
  readonly #oddRules: [number, string][] = [];
  readonly #paths = new Map<string, PathRule[]>();
  readonly #allowHosts = new Set<string>();
  readonly #allowPaths = new Map<string, PathRule[]>();
  readonly #rulesPerCategory: Record<string, number> = {};
  #allowRules = 0;

  #categoryIndex(category: string): number {
    let i = this.#categories.indexOf(category);
    if (i < 0) {
      i = this.#categories.push(category) - 1;
      if (i >= ADBLOCK_FLAG) throw new Error("more than 127 filter categories");
    }
    return i;
  }

  /** Adds a blocking rule; the first category to claim a host keeps it. */
  addBlock(rule: string, category: string): void {
    const r = ruleTarget(rule);
    const host = ruleHost(r.host);
    if (r.path === undefined) {
      const { entry, added } = this.#hosts.add(host);
      if (!added) return;
      const adblock = rule.startsWith("||");
      this.#hostMeta.push(this.#categoryIndex(category) | (adblock ? ADBLOCK_FLAG : 0));
      if (rule !== (adblock ? `||${host}^` : host)) this.#oddRules.push([entry, rule]);
    } else {
      const list = this.#paths.get(host) ?? [];
      list.push({ path: r.path, separator: !!r.separator, verdict: { category, rule } });
      this.#paths.set(host, list);
    }
    this.#rulesPerCategory[category] = (this.#rulesPerCategory[category] ?? 0) + 1;
  }

  /** Adds an exception: the host (and its subdomains), or a URL prefix on a host. */
  addAllow(rule: string): void {
    const r = ruleTarget(rule);
    const host = ruleHost(r.host);
    if (r.path === undefined) {
      this.#allowHosts.add(host);
    } else {
      const list = this.#allowPaths.get(host) ?? [];
      list.push({ path: r.path, separator: !!r.separator, verdict: { category: "allow", rule } });
      this.#allowPaths.set(host, list);
    }
    this.#allowRules++;
  }

  build(): CompiledRules {
    return {
      categories: [...this.#categories],
      hosts: this.#hosts.build(),
      hostMeta: Uint8Array.from(this.#hostMeta),
      oddRules: [...this.#oddRules],
      pathHosts: HostIndex.build(this.#paths.keys()),
      pathRules: [...this.#paths.values()],
      allowHosts: HostIndex.build(this.#allowHosts),
      allowPathHosts: HostIndex.build(this.#allowPaths.keys()),
      allowPathRules: [...this.#allowPaths.values()],
      rulesPerCategory: { ...this.#rulesPerCategory },
      allowRules: this.#allowRules,
    };
  }
}

/** Yields to the event loop, so compiling big lists never stalls requests for long. */
const yieldToLoop = () => new Promise<void>((r) => setTimeout(r, 0));
/** Characters of list text parsed between two yields (a few milliseconds of work). */
const CHUNK = 64 * 1024;

/** Adds parsed lists (in category priority order) and allow rules to a table. */
export function buildRules(
  lists: readonly { category: string; parsed: ParsedList }[],
  allow: readonly string[],
): CompiledRules {
  const builder = new RuleBuilder();
  for (const rule of allow) builder.addAllow(rule);
  for (const { category, parsed } of lists) {
    for (const rule of parsed.allow) builder.addAllow(rule);
    for (const rule of parsed.block) builder.addBlock(rule, category);
  }
  return builder.build();
}

/**
 * Parses and compiles lists (UTF-8 bytes, in category priority order) with FILTER_ALLOW's
 * rules, straight from text to the packed tables, yielding to the event loop between chunks.
 */
export async function compileLists(
  lists: readonly ListBytes[],
  allow: readonly string[],
): Promise<CompiledLists> {
  const builder = new RuleBuilder();
  for (const rule of allow) builder.addAllow(rule);
  const decoder = new TextDecoder();
  const reports: ListReport[] = [];
  for (const list of lists) {
    const onRule = (kind: "block" | "allow", rule: string) =>
      kind === "block" ? builder.addBlock(rule, list.category) : builder.addAllow(rule);
    const text = decoder.decode(list.bytes);
    const errors: ParseError[] = [];
    let ignored = 0;
    let errorCount = 0;
    let line = 1;
    for (let from = 0; from <= text.length;) {
      let to = text.indexOf("\n", from + CHUNK);
      if (to < 0) to = text.length;
      const part = parseRules(text.slice(from, to), list.source, onRule, line);
      ignored += part.ignored;
      errorCount += part.errorCount;
      for (const e of part.errors) if (errors.length < MAX_ERRORS_KEPT) errors.push(e);
      line += part.lines;
      from = to + 1;
      if (from <= text.length) await yieldToLoop();
    }
    reports.push({ source: list.source, ignored, errors, errorCount });
  }
  return { rules: builder.build(), reports };
}
