/**
 * The storage interface every cache backend implements.
 *
 * Keys are primary cache keys (effective request URLs). Each key holds the
 * variants of one resource; a store picks the variant matching the request's
 * Vary-selected fields. Stores never throw for backend trouble on the request
 * path: a failing backend behaves as a miss / a skipped write.
 *
 * @module
 */
import type { HeaderView } from "../context/mod.ts";
import type { CacheEntry } from "./entry.ts";

export interface CacheStore {
  /**
   * The same as `get`, synchronously, for a store that answers without I/O (the
   * in-process LRU). The nearest store's `lookup` is the fresh-hit fast path.
   */
  lookup?(key: string, requestHeaders: HeaderView, now?: number): CacheEntry | undefined;
  /** The variant stored under `key` that matches these request headers, if any. */
  get(key: string, requestHeaders: Headers): Promise<CacheEntry | undefined>;
  /** Stores a variant for `ttlSec` seconds (replacing variants with other Vary names). */
  set(key: string, entry: CacheEntry, ttlSec: number): Promise<void>;
  /** Removes every variant under `key`; true when something was removed. */
  delete(key: string): Promise<boolean>;
  /** Removes every key starting with `prefix`; returns how many. */
  purgePrefix(prefix: string): Promise<number>;
  /** Removes everything this store owns; returns how many keys. */
  clear(): Promise<number>;
  close(): Promise<void>;
}
