/**
 * In-process LRU store with a byte budget.
 *
 * Recency is kept by Map insertion order. Moving an entry to the back on every
 * hit costs two Map operations on the hottest path, so a hit only moves an
 * entry that has drifted into the older half of the map: hot entries stay near
 * the back without being touched on each request (an approximate LRU, like
 * the "second chance" of CLOCK).
 *
 * @module
 */
import type { HeaderView } from "../context/mod.ts";
import type { CacheEntry } from "./entry.ts";
import type { CacheStore } from "./store.ts";
import { secondaryKey } from "./vary.ts";

interface Slot {
  readonly entry: CacheEntry;
  readonly expiresAt: number;
  /** What holding the entry costs the process ({@linkcode memoryCost}), charged to the budget. */
  readonly cost: number;
}

/** JS objects of one entry besides its strings: Entry, freshness, slot, map entry, body view. */
const ENTRY_OBJECTS = 1024;
/** Per header field: the stored tuple and its copy in the serve/304 Headers lists. */
const PER_HEADER = 100;
/** The serve and 304 Headers lists, built on an entry's first hit. */
const SERVE_HEADERS = 1440;
/**
 * RSS per byte of live V8 heap for entries that stay while requests churn around them. V8's
 * old generation keeps the pages that held promoted request garbage committed, so long-lived
 * small objects cost well over their size: measured on Deno 2.9 (proxy subprocess, 3 KB
 * URLs, 28-byte bodies, tests/hardening_memory_test.ts), each entry with about 4.5 KB of live
 * heap (5.9 KB once served) raised RSS by 18 KB.
 */
const HEAP_FACTOR = 4;

/**
 * What an entry really costs the process, for the byte budget: its body (off the V8
 * heap, in an ArrayBuffer), plus its key, URL, Vary key, header strings and objects,
 * which live on the V8 heap and are weighted by {@linkcode HEAP_FACTOR}. Counting the body
 * and headers alone let a 64 MiB cache of small entries under long URLs grow the process
 * by 520 MB.
 */
export function memoryCost(key: string, entry: CacheEntry): number {
  let heap = ENTRY_OBJECTS + SERVE_HEADERS + entry.varyKey.length;
  heap += key.length + (entry.url === key ? 0 : entry.url.length);
  for (const [k, v] of entry.headers) heap += 2 * (k.length + v.length) + PER_HEADER;
  return entry.body.byteLength + 64 + HEAP_FACTOR * heap;
}

interface Resource {
  /** Vary names shared by the variants held. */
  names: readonly string[];
  /** The variant when there is no Vary (the common, fastest case). */
  single: Slot | undefined;
  /** Variants by secondary key when there is a Vary. */
  variants: Map<string, Slot> | undefined;
  bytes: number;
  /** Value of the access clock when last moved to the back. */
  touched: number;
}

export interface MemoryStoreOptions {
  /** Byte budget: what entries really cost the process (see {@linkcode memoryCost}). */
  maxBytes: number;
  /** Variants kept per URL before the oldest are dropped (default 16). */
  maxVariants?: number;
}

export class MemoryStore implements CacheStore {
  readonly #map = new Map<string, Resource>();
  readonly #maxBytes: number;
  readonly #maxVariants: number;
  #bytes = 0;
  #variants = 0;
  #evictions = 0;
  #clock = 0;

  constructor(options: MemoryStoreOptions) {
    this.#maxBytes = options.maxBytes;
    this.#maxVariants = options.maxVariants ?? 16;
  }

  /** Bytes held. */
  get bytes(): number {
    return this.#bytes;
  }
  /** Variants held. */
  get entries(): number {
    return this.#variants;
  }
  /** Resources evicted to stay within the byte budget. */
  get evictions(): number {
    return this.#evictions;
  }

  /** Synchronous lookup for the hit path. */
  lookup(key: string, headers: HeaderView, now = Date.now()): CacheEntry | undefined {
    const r = this.#map.get(key);
    if (r === undefined) return undefined;
    let slot: Slot | undefined;
    let vk = "";
    if (r.single !== undefined) {
      slot = r.single;
    } else if (r.variants !== undefined) {
      const k = secondaryKey(r.names, headers);
      if (k === null) return undefined;
      vk = k;
      slot = r.variants.get(k);
    }
    if (slot === undefined) return undefined;
    if (slot.expiresAt <= now) {
      this.#removeVariant(key, r, vk);
      return undefined;
    }
    const clock = ++this.#clock;
    if (clock - r.touched > (this.#map.size >> 1)) {
      r.touched = clock;
      this.#map.delete(key);
      this.#map.set(key, r);
    }
    return slot.entry;
  }

  /** Synchronous insert; evicts least recently used resources beyond the budget. */
  put(key: string, entry: CacheEntry, ttlSec: number, now = Date.now()): void {
    const cost = memoryCost(key, entry);
    if (cost > this.#maxBytes || ttlSec <= 0) {
      this.remove(key);
      return;
    }
    const slot: Slot = { entry, expiresAt: now + ttlSec * 1000, cost };
    let r = this.#map.get(key);
    if (r !== undefined && !sameNames(r.names, entry.varyNames)) {
      this.remove(key);
      r = undefined;
    }
    if (r === undefined) {
      r = { names: entry.varyNames, single: undefined, variants: undefined, bytes: 0, touched: 0 };
    } else {
      this.#map.delete(key);
    }
    r.touched = ++this.#clock;
    this.#map.set(key, r);
    if (entry.varyNames.length === 0) {
      if (r.single !== undefined) {
        r.bytes -= r.single.cost;
        this.#bytes -= r.single.cost;
        this.#variants--;
      }
      r.single = slot;
    } else {
      r.variants ??= new Map();
      const old = r.variants.get(entry.varyKey);
      if (old !== undefined) {
        r.bytes -= old.cost;
        this.#bytes -= old.cost;
        this.#variants--;
        r.variants.delete(entry.varyKey);
      }
      while (r.variants.size >= this.#maxVariants) {
        const [oldestKey, oldest] = r.variants.entries().next().value!;
        r.variants.delete(oldestKey);
        r.bytes -= oldest.cost;
        this.#bytes -= oldest.cost;
        this.#variants--;
      }
      r.variants.set(entry.varyKey, slot);
    }
    r.bytes += cost;
    this.#bytes += cost;
    this.#variants++;
    this.#evict(key);
  }

  /** Removes every variant of `key`. */
  remove(key: string): boolean {
    const r = this.#map.get(key);
    if (r === undefined) return false;
    this.#map.delete(key);
    this.#bytes -= r.bytes;
    this.#variants -= r.single !== undefined ? 1 : r.variants?.size ?? 0;
    return true;
  }

  removePrefix(prefix: string): number {
    let n = 0;
    for (const key of [...this.#map.keys()]) {
      if (key.startsWith(prefix) && this.remove(key)) n++;
    }
    return n;
  }

  removeAll(): number {
    const n = this.#map.size;
    this.#map.clear();
    this.#bytes = 0;
    this.#variants = 0;
    return n;
  }

  #removeVariant(key: string, r: Resource, vk: string): void {
    if (r.single !== undefined || r.variants === undefined) {
      this.remove(key);
      return;
    }
    const slot = r.variants.get(vk);
    if (slot === undefined) return;
    r.variants.delete(vk);
    r.bytes -= slot.cost;
    this.#bytes -= slot.cost;
    this.#variants--;
    if (r.variants.size === 0) this.#map.delete(key);
  }

  #evict(keep: string): void {
    if (this.#bytes <= this.#maxBytes) return;
    for (const key of this.#map.keys()) {
      if (this.#bytes <= this.#maxBytes) break;
      if (key === keep) continue;
      this.remove(key);
      this.#evictions++;
    }
  }

  get(key: string, headers: Headers): Promise<CacheEntry | undefined> {
    return Promise.resolve(this.lookup(key, headers));
  }
  set(key: string, entry: CacheEntry, ttlSec: number): Promise<void> {
    this.put(key, entry, ttlSec);
    return Promise.resolve();
  }
  delete(key: string): Promise<boolean> {
    return Promise.resolve(this.remove(key));
  }
  purgePrefix(prefix: string): Promise<number> {
    return Promise.resolve(this.removePrefix(prefix));
  }
  clear(): Promise<number> {
    return Promise.resolve(this.removeAll());
  }
  close(): Promise<void> {
    this.removeAll();
    return Promise.resolve();
  }
}

function sameNames(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
