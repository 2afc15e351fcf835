/**
 * Redis store: one hash per URL under the prefix.
 *
 * Layout of `<prefix><url>`: field `v` holds the Vary names (comma-joined, ""
 * without Vary) and field `b:<secondary key>` one packed variant (binary
 * metadata header + raw body, see entry.ts). One hash per URL makes
 * invalidating a URL one UNLINK that takes every variant with it. Writes go
 * through a Lua script so that replacing the Vary names, capping variants and
 * only ever extending the key's TTL happen atomically.
 *
 * Every command failure (Redis down, slow beyond the command timeout) counts
 * as an error and behaves as a miss or a skipped write; nothing here throws on
 * the request path. Purges do throw, so an operator learns a purge failed.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import type { Cluster, Redis } from "ioredis";
import { type CacheEntry, pack, prepare, stored, unpack } from "./entry.ts";
import type { Heuristic } from "./policy.ts";
import type { CacheStore } from "./store.ts";
import { secondaryKey } from "./vary.ts";

const SET_SCRIPT = `
local cur = redis.call('HGET', KEYS[1], 'v')
if cur ~= ARGV[1] or redis.call('HLEN', KEYS[1]) > tonumber(ARGV[5]) then
  redis.call('DEL', KEYS[1])
end
redis.call('HSET', KEYS[1], 'v', ARGV[1], ARGV[2], ARGV[3])
local t = redis.call('TTL', KEYS[1])
if t < tonumber(ARGV[4]) then redis.call('EXPIRE', KEYS[1], ARGV[4]) end
return 1
`;

type ScriptClient = (Redis | Cluster) & {
  proxyCacheSet(
    key: string,
    names: string,
    field: string,
    packed: Buffer,
    ttl: number,
    maxVariants: number,
  ): Promise<number>;
};

export interface RedisStoreOptions {
  client: Redis | Cluster;
  /** Key prefix; nothing outside it is ever read, written or deleted. */
  prefix: string;
  /** For deriving entries loaded from Redis. */
  heuristic: Heuristic;
  /** Variants per URL before the hash is started afresh (default 16). */
  maxVariants?: number;
}

/**
 * A purge is an operator's request, not a client's: a command that only timed out (a busy
 * Redis) is tried twice more before the purge reports failure. SCAN and UNLINK are safe to repeat.
 */
async function patiently<T>(command: () => Promise<T>): Promise<T> {
  for (let attempt = 1;; attempt++) {
    try {
      return await command();
    } catch (err) {
      if (attempt >= 3 || !/timed out/i.test((err as Error).message)) throw err;
    }
  }
}

/** Escapes glob metacharacters for SCAN MATCH. */
function globEscape(s: string): string {
  return s.replace(/[*?[\]\\]/g, (c) => "\\" + c);
}

export class RedisStore implements CacheStore {
  readonly #client: ScriptClient;
  readonly #prefix: string;
  readonly #heuristic: Heuristic;
  readonly #maxVariants: number;
  /** Last Vary names seen per key, so most variant lookups take one round trip. */
  readonly #namesHint = new Map<string, string>();
  #errors = 0;

  constructor(options: RedisStoreOptions) {
    this.#client = options.client as ScriptClient;
    this.#prefix = options.prefix;
    this.#heuristic = options.heuristic;
    this.#maxVariants = options.maxVariants ?? 16;
    if (typeof this.#client.proxyCacheSet !== "function") {
      this.#client.defineCommand("proxyCacheSet", { numberOfKeys: 1, lua: SET_SCRIPT });
    }
  }

  /** Redis command failures so far. */
  get errors(): number {
    return this.#errors;
  }

  /** True when the connection is ready; commands are skipped otherwise (they would fail). */
  get ready(): boolean {
    return this.#client.status === "ready";
  }

  async get(key: string, headers: Headers): Promise<CacheEntry | undefined> {
    if (!this.ready) return undefined;
    const rkey = this.#prefix + key;
    try {
      const hint = this.#namesHint.get(key);
      let field = "b:";
      if (hint) {
        const k = secondaryKey(hint.split(","), headers);
        if (k === null) return undefined;
        field = "b:" + k;
      }
      const [v, packed] = await this.#client.hmgetBuffer(rkey, "v", field);
      if (v === null) return undefined;
      const names = v.toString();
      let buf = packed;
      if (names !== (hint ?? "")) {
        this.#hint(key, names);
        const k = secondaryKey(names === "" ? [] : names.split(","), headers);
        if (k === null) return undefined;
        buf = await this.#client.hgetBuffer(rkey, "b:" + k);
      }
      if (buf === null) return undefined;
      const s = unpack(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength));
      return s === undefined ? undefined : prepare(s, this.#heuristic);
    } catch {
      this.#errors++;
      return undefined;
    }
  }

  #hint(key: string, names: string): void {
    if (names === "") {
      this.#namesHint.delete(key);
      return;
    }
    if (this.#namesHint.size >= 10_000) this.#namesHint.clear();
    this.#namesHint.set(key, names);
  }

  async set(key: string, entry: CacheEntry, ttlSec: number): Promise<void> {
    if (!this.ready || ttlSec <= 0) return;
    const names = entry.varyNames.join(",");
    // ioredis sends Buffers as bytes but stringifies other typed arrays.
    const packed = pack(stored(entry));
    try {
      await this.#client.proxyCacheSet(
        this.#prefix + key,
        names,
        "b:" + entry.varyKey,
        Buffer.from(packed.buffer, packed.byteOffset, packed.byteLength),
        Math.ceil(ttlSec),
        this.#maxVariants,
      );
      this.#hint(key, names);
    } catch {
      this.#errors++;
    }
  }

  /**
   * Removes a URL's variants. Throws when Redis cannot be reached: a PURGE must answer 503
   * (shared copies may remain), never a false "purged"; the engine's own invalidations run
   * as tracked background tasks, which log the failure instead.
   */
  async delete(key: string): Promise<boolean> {
    this.#namesHint.delete(key);
    if (!this.ready) {
      this.#errors++;
      throw new Error("redis is not connected");
    }
    try {
      return (await this.#client.unlink(this.#prefix + key)) > 0;
    } catch (err) {
      this.#errors++;
      throw err;
    }
  }

  /** SCAN MATCH `<prefix><urlPrefix>*` + UNLINK on every master; never FLUSHDB. */
  async purgePrefix(prefix: string): Promise<number> {
    this.#namesHint.clear();
    const pattern = globEscape(this.#prefix + prefix) + "*";
    const cluster = "nodes" in this.#client && typeof this.#client.nodes === "function";
    const nodes: Redis[] = cluster
      ? (this.#client as Cluster).nodes("master")
      : [this.#client as Redis];
    let n = 0;
    try {
      for (const node of nodes) {
        // A cluster connects to a node on first use; the command timeout would count the
        // connection set-up (and AUTH) too, so connect first.
        if (node.status === "wait") await node.connect().catch(() => {/* the SCAN reports it */});
        let cursor = "0";
        do {
          const [next, keys] = await patiently(() =>
            node.scan(cursor, "MATCH", pattern, "COUNT", 500)
          );
          cursor = next;
          if (keys.length === 0) continue;
          if (!cluster) n += await patiently(() => node.unlink(...keys));
          // In a cluster keys of one batch live in different slots: one UNLINK each.
          else {
            const counts = await Promise.all(keys.map((k) => patiently(() => node.unlink(k))));
            for (const c of counts) n += c;
          }
        } while (cursor !== "0");
      }
    } catch (err) {
      this.#errors++;
      throw err;
    }
    return n;
  }

  /**
   * Removes every cache key: keys are `<prefix><url>`, so only `<prefix>http…`
   * is scanned, and other users of the prefix (the rate limiter's
   * `<prefix>rl:` keys) are left alone.
   */
  async clear(): Promise<number> {
    return await this.purgePrefix("http://") + await this.purgePrefix("https://");
  }

  close(): Promise<void> {
    this.#namesHint.clear();
    return Promise.resolve();
  }
}
