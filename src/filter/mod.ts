/**
 * Request filtering: category blocklists shipped as data files (`lists/`), extra lists
 * from files or URLs, an allowlist that wins, host verdicts on the main thread and list
 * parsing in the worker pool.
 *
 * @example
 * ```ts
 * const filter = await createFilter({ categories: ["ads", "malware"], allow: ["example.com"], pool });
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
export { normalizeHost, type Verdict } from "./matcher.ts";
export { isValidHost, type ParsedList, type ParseError, parseList } from "./parse.ts";
