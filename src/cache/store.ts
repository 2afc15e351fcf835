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

/**
 * Coalescing beyond this event loop (the other serving threads, src/threads): at most one of
 * them fetches a key from the origin at a time; the others wait for its copy.
 */
export interface FetchClaims {
  /** True: this thread fetches `key` now (release it after storing); false: another does. */
  claim(key: string): boolean;
  /** Ends a claim, after the response was stored (or not). */
  release(key: string): void;
  /** Resolves when the claim on `key` ends (its copy, if any, has arrived) or after `timeoutMs`. */
  wait(key: string, timeoutMs: number): Promise<void>;
}

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
