/**
 * The filter as the configuration asks for it: REQUEST_FILTERS categories,
 * FILTER_LISTS and FILTER_ALLOW; with several serving threads, one copy of its tables for
 * all of them (src/filter/share.ts).
 *
 * @module
 */
import type { Config } from "../config/mod.ts";
import { logger } from "../log/mod.ts";
import type { ThreadGroup } from "../threads/mod.ts";
import { createFilter, type Filter } from "./filter.ts";
import { tableShare } from "./share.ts";

export function filterFromConfig(config: Config, group?: ThreadGroup): Promise<Filter> {
  return createFilter({
    categories: config.requestFilters,
    lists: config.filterLists,
    allow: config.filterAllow,
    logger: logger("filter"),
    share: group && tableShare(group),
  });
}
