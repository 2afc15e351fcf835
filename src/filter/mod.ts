/**
 * Request filtering: category blocklists shipped as data files (`lists/`), extra lists
 * from files or URLs, an allowlist that wins, host verdicts on the main thread and list
 * compilation into packed tables (src/filter/host_index.ts) in chunks between requests.
 *
 * @example
 * ```ts
 * const filter = await createFilter({ categories: ["ads", "malware"], allow: ["example.com"] });
 * filter.check("pagead2.googlesyndication.com"); // { category: "ads", rule: "…" } or undefined
 * ```
 *
 * @module
 */
export {
  blockedResponse,
  BUILTIN_LISTS,
  createFilter,
  CUSTOM_CATEGORY,
  type Filter,
  type FilterLogger,
  type FilterOptions,
  type FilterSnapshot,
  xFilterValue,
} from "./filter.ts";
export { normalizeHost, RuleTable, type Verdict } from "./matcher.ts";
export { type CompiledLists, compileLists, type ListBytes, RuleBuilder } from "./compile.ts";
export {
  isValidHost,
  type ListReport,
  type ParsedList,
  type ParseError,
  parseList,
  parseRules,
} from "./parse.ts";
