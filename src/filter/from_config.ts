/**
 * The filter as the configuration asks for it: REQUEST_FILTERS categories,
 * FILTER_LISTS and FILTER_ALLOW.
 *
 * @module
 */
import type { Config } from "../config/mod.ts";
import { logger } from "../log/mod.ts";
import { createFilter, type Filter } from "./filter.ts";

export function filterFromConfig(config: Config): Promise<Filter> {
  return createFilter({
    categories: config.requestFilters,
    lists: config.filterLists,
    allow: config.filterAllow,
    logger: logger("filter"),
  });
}
