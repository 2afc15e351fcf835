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
  readonly #hosts: HostIndexBuilder;
  readonly #hostMeta: number[] = [];
  readonly #oddRules: [number, string][] = [];
  readonly #paths = new Map<string, PathRule[]>();
  readonly #allowHosts = new Set<string>();
  readonly #allowPaths = new Map<string, PathRule[]>();
  readonly #rulesPerCategory: Record<string, number> = {};
  #allowRules = 0;

  /** Sized for about `hosts` host rules of `bytes` bytes in all. */
  constructor(hosts?: number, bytes?: number) {
    this.#hosts = new HostIndexBuilder(hosts, bytes);
  }

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
      this.#hostMeta[entry] = this.#categoryIndex(category) | (adblock ? ADBLOCK_FLAG : 0);
      if (rule !== (adblock ? `||${host}^` : host)) this.#oddRules.push([entry, rule]);
    } else {
      const list = this.#paths.get(host) ?? [];
      list.push({ path: r.path, separator: !!r.separator, verdict: { category, rule } });
      this.#paths.set(host, list);
    }
    this.#rulesPerCategory[category] = (this.#rulesPerCategory[category] ?? 0) + 1;
  }

  /**
   * Adds the host rule in `bytes[from, to)`, `host` or (`adblock`) `||host^`, whose host
   * {@linkcode fastHostEnd} has vouched for: what {@linkcode addBlock} does, with no string.
   */
  addHostBytes(bytes: Uint8Array, from: number, to: number, adblock: boolean, category: string) {
    const { entry, added } = this.#hosts.addBytes(bytes, from, to);
    if (!added) return;
    this.#hostMeta[entry] = this.#categoryIndex(category) | (adblock ? ADBLOCK_FLAG : 0);
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

const DOT = 0x2e;
const DASH = 0x2d;
const NEWLINE = 0x0a;
const PIPE = 0x7c;
const CARET = 0x5e;

/** `a-z`, `0-9` or `_`: may start and end a label. */
function isLabelEdge(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x5f;
}

/**
 * True when `bytes[from, to)` is a host name that needs no further work: lower case, valid
 * labels (as isValidHost checks them), at least two, and a last label starting with a
 * letter (so neither an address nor a number WHATWG URL would read as one). Anything else,
 * valid or not, takes the full parser.
 */
function isPlainHost(bytes: Uint8Array, from: number, to: number): boolean {
  if (to - from > 253 || to <= from) return false;
  let labels = 0;
  let labelStart = from;
  for (let i = from; i <= to; i++) {
    if (i === to || bytes[i] === DOT) {
      const length = i - labelStart;
      if (length < 1 || length > 63) return false;
      if (!isLabelEdge(bytes[labelStart]) || !isLabelEdge(bytes[i - 1])) return false;
      labels++;
      if (i === to) {
        const first = bytes[labelStart];
        return labels >= 2 && first >= 0x61 && first <= 0x7a;
      }
      labelStart = i + 1;
    } else if (!isLabelEdge(bytes[i]) && bytes[i] !== DASH) return false;
  }
  return false;
}

/** How many lines `bytes` holds (an upper bound on its rules, to size the tables). */
function lineCount(bytes: Uint8Array): number {
  let n = 1;
  for (let i = bytes.indexOf(NEWLINE); i >= 0; i = bytes.indexOf(NEWLINE, i + 1)) n++;
  return n;
}

/** Lines between two yields to the event loop (a few milliseconds of work). */
const LINES_PER_SLICE = 5_000;

/**
 * Parses and compiles lists (UTF-8 bytes, in category priority order) with FILTER_ALLOW's
 * rules, straight from bytes to the packed tables, yielding to the event loop now and then.
 * Lines that are a bare host or `||host^` (nearly all of the built-in lists) go in as bytes;
 * every other line goes through {@linkcode parseRules}, which is the reference.
 */
export async function compileLists(
  lists: readonly ListBytes[],
  allow: readonly string[],
): Promise<CompiledLists> {
  let lines = 0;
  let bytes = 0;
  for (const l of lists) {
    lines += lineCount(l.bytes);
    bytes += l.bytes.byteLength;
  }
  const builder = new RuleBuilder(lines, bytes);
  for (const rule of allow) builder.addAllow(rule);
  const decoder = new TextDecoder();
  const reports: ListReport[] = [];
  for (const list of lists) {
    const onRule = (kind: "block" | "allow", rule: string) =>
      kind === "block" ? builder.addBlock(rule, list.category) : builder.addAllow(rule);
    const b = list.bytes;
    const errors: ParseError[] = [];
    let ignored = 0;
    let errorCount = 0;
    let lineNo = 0;
    for (let from = 0; from <= b.length;) {
      let to = b.indexOf(NEWLINE, from);
      if (to < 0) to = b.length;
      lineNo++;
      if (isPlainHost(b, from, to)) {
        builder.addHostBytes(b, from, to, false, list.category);
      } else if (
        to - from > 3 && b[from] === PIPE && b[from + 1] === PIPE && b[to - 1] === CARET &&
        isPlainHost(b, from + 2, to - 1)
      ) {
        builder.addHostBytes(b, from + 2, to - 1, true, list.category);
      } else {
        const part = parseRules(decoder.decode(b.subarray(from, to)), list.source, onRule, lineNo);
        ignored += part.ignored;
        errorCount += part.errorCount;
        for (const e of part.errors) if (errors.length < MAX_ERRORS_KEPT) errors.push(e);
      }
      from = to + 1;
      if (lineNo % LINES_PER_SLICE === 0) await yieldToLoop();
    }
    reports.push({ source: list.source, ignored, errors, errorCount });
  }
  return { rules: builder.build(), reports };
}
