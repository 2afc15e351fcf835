/**
 * Parses a blocklist in any of the three common formats, line by line:
 *
 * - hosts files: `0.0.0.0 ads.example.com [more names]` (any IPv4/IPv6 address first);
 * - plain domain lists: `ads.example.com`;
 * - Adblock network rules: `||ads.example.com^`, `||host/path` (URL prefix),
 *   `@@||host^` (exception → allow), `||host^$third-party` and similar options.
 *
 * Options: party and resource-type options (`third-party`, `script`, `image`, `all`, …) are
 * ignored and the rule blocks the whole host, because a proxy sees neither the page context
 * nor the resource type reliably. Rules narrowed by options a proxy cannot honour (`domain=`,
 * `popup`, `redirect`, `badfilter`, negations, …), cosmetic rules (`##`) and URL patterns
 * without a host anchor are *ignored*: valid, but not enforceable by host. A line that is
 * none of these (a malformed host, stray words) is an *error*, reported with its line number.
 *
 * Output rules are canonical strings: `example.com` (host rule from a hosts/plain list),
 * `||example.com^` (host rule from Adblock syntax), `||example.com/path` or
 * `||example.com/path^` (URL prefix rule).
 *
 * @module
 */

export interface ParseError {
  /** File path or URL of the list. */
  readonly source: string;
  /** 1-based line number. */
  readonly line: number;
  readonly text: string;
  readonly reason: string;
}

export interface ParsedList {
  readonly source: string;
  /** Blocking rules, canonical form (see module doc). */
  readonly block: string[];
  /** Exceptions (`@@` rules), canonical form without the `@@`. */
  readonly allow: string[];
  /** Valid lines that cannot be enforced by host (cosmetic, context-narrowed, patterns). */
  readonly ignored: number;
  /** First errors (at most {@linkcode MAX_ERRORS_KEPT}); `errorCount` has them all. */
  readonly errors: ParseError[];
  readonly errorCount: number;
}

export const MAX_ERRORS_KEPT = 100;

const LABEL = "[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?";
const HOST_RE = new RegExp(`^${LABEL}(\\.${LABEL})+$`);
const IPV4_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
const HOSTS_ADDRESS_RE = /^(\d{1,3}(\.\d{1,3}){3}|[0-9a-f:]*:[0-9a-f:.]*(%\S+)?)$/i;
const HOSTS_IGNORED = new Set([
  "localhost",
  "localhost.localdomain",
  "local",
  "broadcasthost",
  "ip6-localhost",
  "ip6-loopback",
  "ip6-localnet",
  "ip6-mcastprefix",
  "ip6-allnodes",
  "ip6-allrouters",
  "ip6-allhosts",
  "0.0.0.0",
]);
/** Options under which a host rule still blocks the whole host at a proxy. */
const HOST_WIDE_OPTIONS = new Set([
  "third-party",
  "3p",
  "first-party",
  "1p",
  "all",
  "document",
  "doc",
  "important",
  "script",
  "image",
  "subdocument",
  "xmlhttprequest",
  "ping",
  "media",
  "object",
  "stylesheet",
  "font",
  "websocket",
  "other",
  "match-case",
]);
const COSMETIC_RE = /#[@$%?]?#|#@[$%?]#|\$\$|#\+js/;

/** True for a syntactically valid host name (at least two labels) or IPv4 address. */
export function isValidHost(host: string): boolean {
  if (host.length > 253) return false;
  const v4 = IPV4_RE.exec(host);
  if (v4) return v4.slice(1).every((n) => Number(n) <= 255);
  return HOST_RE.test(host);
}

type LineResult =
  | { kind: "block" | "allow"; rule: string }
  | { kind: "hosts"; rules: string[] }
  | { kind: "skip" | "ignored" }
  | { kind: "error"; reason: string };

/** Parses an Adblock network rule (without a leading `@@`). */
function parseNetworkRule(rule: string): LineResult {
  let pattern = rule;
  let options: string[] = [];
  const dollar = rule.lastIndexOf("$");
  if (dollar > 0) {
    pattern = rule.slice(0, dollar);
    options = rule.slice(dollar + 1).split(",").map((o) => o.trim().toLowerCase());
  }
  if (!pattern.startsWith("||")) {
    // `|https://host/`, `/banner/`, `-ad-`: URL patterns a host verdict cannot express.
    return { kind: "ignored" };
  }
  if (options.some((o) => !HOST_WIDE_OPTIONS.has(o))) return { kind: "ignored" };
  let body = pattern.slice(2);
  if (body.endsWith("|")) body = body.slice(0, -1);
  if (body.includes("*")) return { kind: "ignored" };
  const cut = body.search(/[\/^:?]/);
  const host = (cut < 0 ? body : body.slice(0, cut)).toLowerCase();
  const rest = cut < 0 ? "" : body.slice(cut);
  if (!isValidHost(host)) return { kind: "error", reason: `invalid host "${host}" in rule` };
  if (rest === "" || rest === "^") return { kind: "block", rule: `||${host}^` };
  if (rest.startsWith(":")) return { kind: "ignored" }; // port-specific
  if (rest.startsWith("^")) return { kind: "ignored" };
  const path = rest.toLowerCase();
  if (path.slice(0, -1).includes("^")) return { kind: "ignored" };
  return { kind: "block", rule: `||${host}${path}` };
}

function parseLine(raw: string): LineResult {
  const line = raw.trim();
  if (line === "" || line.startsWith("!") || line.startsWith("[")) return { kind: "skip" };
  if (line.startsWith("#")) {
    return COSMETIC_RE.test(line) ? { kind: "ignored" } : { kind: "skip" };
  }
  if (COSMETIC_RE.test(line)) return { kind: "ignored" };
  if (line.startsWith("@@")) {
    const r = parseNetworkRule(line.slice(2));
    return r.kind === "block" ? { kind: "allow", rule: r.rule } : r;
  }
  if (line.startsWith("||") || line.startsWith("|") || line.startsWith("/")) {
    return parseNetworkRule(line);
  }
  // Hosts format or a plain domain; `#` starts a trailing comment in both.
  const hash = line.indexOf("#");
  const content = (hash >= 0 ? line.slice(0, hash) : line).trim();
  if (content === "") return { kind: "skip" };
  const tokens = content.split(/\s+/);
  if (tokens.length === 1) {
    const host = tokens[0].toLowerCase().replace(/\.$/, "");
    if (isValidHost(host)) return { kind: "block", rule: host };
    if (/[$^*|\/&=?]/.test(host)) return { kind: "ignored" }; // an Adblock URL pattern
    return { kind: "error", reason: `not a domain name, hosts entry or filter rule` };
  }
  if (!HOSTS_ADDRESS_RE.test(tokens[0])) {
    return { kind: "error", reason: `hosts entry must start with an IP address` };
  }
  const rules: string[] = [];
  for (const name of tokens.slice(1)) {
    const host = name.toLowerCase().replace(/\.$/, "");
    if (HOSTS_IGNORED.has(host)) continue;
    if (!isValidHost(host)) return { kind: "error", reason: `invalid host name "${name}"` };
    rules.push(host);
  }
  return { kind: "hosts", rules };
}

/** What parsing a list found besides its rules. */
export type ListReport = Pick<ParsedList, "source" | "ignored" | "errors" | "errorCount">;

/**
 * Parses a whole list, handing each rule to `onRule` as it is read (nothing is collected:
 * compiling the built-in lists this way never holds their ~150,000 rules as strings at once).
 * Never throws on content.
 */
export function parseRules(
  text: string,
  source: string,
  onRule: (kind: "block" | "allow", rule: string) => void,
  /** Number of the text's first line (when it is a part of a list). */
  firstLine = 1,
): ListReport & { lines: number } {
  const errors: ParseError[] = [];
  let errorCount = 0;
  let ignored = 0;
  let lineNo = firstLine - 1;
  let start = 0;
  while (start <= text.length) {
    let end = text.indexOf("\n", start);
    if (end < 0) end = text.length;
    lineNo++;
    const raw = text.slice(start, end);
    start = end + 1;
    const r = parseLine(raw);
    switch (r.kind) {
      case "block":
      case "allow":
        onRule(r.kind, r.rule);
        break;
      case "hosts":
        for (const rule of r.rules) onRule("block", rule);
        break;
      case "ignored":
        ignored++;
        break;
      case "error":
        errorCount++;
        if (errors.length < MAX_ERRORS_KEPT) {
          errors.push({ source, line: lineNo, text: raw.trim().slice(0, 200), reason: r.reason });
        }
        break;
    }
  }
  return { source, ignored, errors, errorCount, lines: lineNo - firstLine + 1 };
}

/** Parses a whole list into arrays of rules; never throws on content. */
export function parseList(text: string, source: string): ParsedList {
  const block: string[] = [];
  const allow: string[] = [];
  const { ignored, errors, errorCount } = parseRules(
    text,
    source,
    (kind, rule) => (kind === "block" ? block : allow).push(rule),
  );
  return { source, block, allow, ignored, errors, errorCount };
}

/** A canonical rule split into what the matcher indexes. */
export interface RuleTarget {
  host: string;
  /** URL prefix (lower case), for path rules. */
  path?: string;
  /** The prefix must be followed by a separator or the end (`^` at the end of the rule). */
  separator?: boolean;
}

/** Splits a canonical rule (as {@linkcode parseList} emits) into host and optional path. */
export function ruleTarget(rule: string): RuleTarget {
  if (!rule.startsWith("||")) return { host: rule };
  const body = rule.slice(2);
  const slash = body.indexOf("/");
  const q = body.indexOf("?");
  const cut = slash < 0 ? q : q < 0 ? slash : Math.min(slash, q);
  if (cut < 0) return { host: body.endsWith("^") ? body.slice(0, -1) : body };
  let path = body.slice(cut);
  const separator = path.endsWith("^");
  if (separator) path = path.slice(0, -1);
  return { host: body.slice(0, cut), path, separator };
}
