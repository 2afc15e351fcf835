/**
 * The request pipeline: the one ordered list of phases (phases.ts) and the
 * drivers built from it for every kind of request, the phases over the
 * modules' plain APIs (request_filters.ts, upstream_phases.ts), CONNECT
 * through the same list (connect.ts) and what every request gets around its
 * phases (bookkeeping.ts).
 *
 * Why plain wrappers and not Hono middleware: measured on Deno 2.9, each
 * Hono middleware hop and Hono's per-request context cost about a
 * microsecond or more, and a proxied request passes up to eleven phases; a
 * function call costs nanoseconds. Hono serves the proxy's own endpoints,
 * where that cost does not matter.
 *
 * @module
 */
export {
  ADMITTED,
  buildPipeline,
  checkPhaseList,
  compose,
  KINDS,
  type PhaseDeclaration,
  type PhaseImpl,
  type PhaseName,
  PHASES,
  type PhaseSet,
  type Pipeline,
  type RequestKind,
} from "./phases.ts";
export * as requestFilters from "./request_filters.ts";
export { hostAndPath } from "./request_filters.ts";
export { authorityOf, cachePhase, routePhase } from "./upstream_phases.ts";
export { tunnelAdmission } from "./connect.ts";
export { type Bookkeeping, createBookkeeping, pathOf } from "./bookkeeping.ts";
