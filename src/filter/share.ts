/**
 * One copy of the filter tables for every serving thread (SERVE_THREADS > 1). Thread 0 reads
 * and compiles the lists, copies the tables into SharedArrayBuffers and publishes them under
 * the filter settings they were built for; every other thread asks thread 0 for the tables of
 * its settings and reads the same memory: no compile and no ~7 MiB copy per thread. The
 * tables are read-only once built. A reload builds new ones on thread 0 (which runs every
 * reload first, src/app.ts), and the old ones go once no thread holds them.
 *
 * A thread that gets no tables from thread 0 (its settings differ, thread 0 is busy past the
 * time limit) compiles its own, as every thread did before: slower, never wrong.
 *
 * @module
 */
import type { ThreadGroup } from "../threads/mod.ts";
import { shareIndex } from "./host_index.ts";
import type { CompiledRules } from "./matcher.ts";

/** The problems a load found in the lists (bad lines, failed fetches). */
export interface LoadIssues {
  count: number;
  recent: string[];
  ignored: number;
}

/** What one load of the lists produced: the tables and what was wrong with the lists. */
export interface SharedLoad {
  readonly rules: CompiledRules;
  readonly issues: LoadIssues;
}

/** How a filter gets its tables when there are several serving threads. */
export type TableShare =
  | {
    /** Thread 0: compiles, and offers what it compiled. */
    readonly role: "publisher";
    /** These are the tables for `key` now (tables already in shared memory). */
    publish(key: string, load: SharedLoad): void;
    /** The filter of `key` closed: its tables are no longer offered (if still these). */
    withdraw(key: string, load: SharedLoad): void;
  }
  | {
    /** Any other thread: takes thread 0's tables. */
    readonly role: "taker";
    /** Thread 0's tables for `key`; undefined when it has none (the caller compiles). */
    take(key: string): Promise<SharedLoad | undefined>;
  };

const TOPIC = "filter:tables";
/** How long a thread waits for thread 0's tables before compiling its own. */
const TAKE_TIMEOUT_MS = 30_000;

/** Thread 0's published tables, per group (old and new filters of a reload share one). */
const published = new WeakMap<ThreadGroup, Map<string, SharedLoad>>();

/** This thread's part in sharing the filter tables of `group`. */
export function tableShare(group: ThreadGroup): TableShare {
  if (group.thread !== 0) {
    return {
      role: "taker",
      take: (key) => group.ask<SharedLoad | undefined>(TOPIC, key, TAKE_TIMEOUT_MS),
    };
  }
  let offers = published.get(group);
  if (offers === undefined) {
    const map = new Map<string, SharedLoad>();
    published.set(group, map);
    group.handle(TOPIC, (key) => map.get(key as string));
    offers = map;
  }
  const map = offers;
  return {
    role: "publisher",
    publish: (key, load) => void map.set(key, load),
    withdraw(key, load) {
      if (map.get(key) === load) map.delete(key);
    },
  };
}

/** `rules` with its typed arrays copied into shared memory (the rest is small and cloned). */
export function shareRules(rules: CompiledRules): CompiledRules {
  const hostMeta = new Uint8Array(new SharedArrayBuffer(rules.hostMeta.length));
  hostMeta.set(rules.hostMeta);
  return {
    ...rules,
    hosts: shareIndex(rules.hosts),
    hostMeta,
    pathHosts: shareIndex(rules.pathHosts),
    allowHosts: shareIndex(rules.allowHosts),
    allowPathHosts: shareIndex(rules.allowPathHosts),
  };
}
