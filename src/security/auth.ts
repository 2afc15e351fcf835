/**
 * Proxy authentication (RFC 9110 §11.7): Basic credentials in
 * Proxy-Authorization checked against PROXY_AUTH_FILE, an htpasswd-compatible
 * file (`user:hash` per line; bcrypt `$2y$`/`$2a$`/`$2b$`, or `{SHA}`).
 *
 * bcrypt takes tens of milliseconds of CPU per check on purpose, so:
 * - it runs in the worker pool (task `auth.bcrypt`), never on the event loop, so
 *   the checks that do run cannot stall other requests;
 * - verdicts are cached briefly (60 s) under an HMAC of the header with a
 *   random per-process key (never the password, and no hash anyone could
 *   precompute from a memory dump), and concurrent checks of the same
 *   credentials share one computation: a logged-in user pays bcrypt once;
 * - a client whose checks failed `maxFailuresPerMinute` times (default 10)
 *   within a minute is refused without running bcrypt until that minute is
 *   over (429 with Retry-After; 407 on CONNECT), so a flood of unique wrong
 *   passwords costs at most that many bcrypt runs per client and minute instead
 *   of stalling every other request. Credentials already verified still pass.
 *
 * @module
 */
import type { Logger } from "@logtape/logtape";
import bcrypt from "bcryptjs";
import { Buffer } from "node:buffer";
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { Wrapper } from "../context/mod.ts";
import { plainText } from "../respond/mod.ts";
import type { MetricFamily, StatsSource } from "../stats/metric.ts";
import type { WorkerPool } from "../workers/mod.ts";

/** One user's stored password hash. */
export interface PasswordEntry {
  readonly kind: "bcrypt" | "sha1";
  readonly hash: string;
}

const BCRYPT = /^\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}$/;
const SHA1 = /^\{SHA\}[A-Za-z0-9+/]{27}=$/;

/**
 * Parses htpasswd text. Throws one Error naming the file, the line and the fix
 * for plain-text or unsupported hashes, duplicates, and a file without users.
 */
export function parseHtpasswd(
  text: string,
  source = "PROXY_AUTH_FILE",
): Map<string, PasswordEntry> {
  const users = new Map<string, PasswordEntry>();
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "" || line.startsWith("#")) continue;
    const where = `${source} line ${i + 1}`;
    const colon = line.indexOf(":");
    if (colon <= 0) throw new Error(`${where}: expected "user:hash"`);
    const user = line.slice(0, colon);
    // htpasswd may append extra fields after a second colon (e.g. Apache digest files); ignore them.
    const hash = line.slice(colon + 1).split(":")[0];
    if (users.has(user)) throw new Error(`${where}: user "${user}" is listed twice`);
    if (BCRYPT.test(hash)) users.set(user, { kind: "bcrypt", hash });
    else if (SHA1.test(hash)) users.set(user, { kind: "sha1", hash });
    else if (hash.startsWith("$apr1$") || hash.startsWith("$1$")) {
      throw new Error(
        `${where}: user "${user}" has an MD5 (apr1) hash, which is not supported; re-hash it with \`htpasswd -B ${source} ${user}\``,
      );
    } else {
      throw new Error(
        `${where}: user "${user}" has a plain-text or unsupported password; store a bcrypt hash ` +
          `(\`htpasswd -B ${source} ${user}\`)`,
      );
    }
  }
  if (users.size === 0) {
    throw new Error(`${source}: no users; add "user:bcrypt-hash" lines (htpasswd -B)`);
  }
  return users;
}

/** Splits a `Basic <base64(user:password)>` header value; undefined when malformed. */
export function parseBasic(header: string): { user: string; password: string } | undefined {
  const m = /^\s*Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!m) return undefined;
  let decoded: string;
  try {
    const bin = atob(m[1]);
    decoded = new TextDecoder("utf-8", { fatal: true }).decode(
      Uint8Array.from(bin, (ch) => ch.charCodeAt(0)),
    );
  } catch {
    return undefined;
  }
  const colon = decoded.indexOf(":");
  if (colon < 0) return undefined;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/**
 * The hash an unknown user name is checked against, so that it costs what a wrong password
 * costs and user names cannot be probed by timing: one of the file's own entries, of the kind
 * and bcrypt cost most users have (htpasswd -B defaults to cost 5; a fixed cost-10 decoy made
 * unknown names twenty times slower than wrong passwords). Its verdict is never used.
 */
const decoys = new WeakMap<ReadonlyMap<string, PasswordEntry>, PasswordEntry>();
function decoyFor(table: ReadonlyMap<string, PasswordEntry>): PasswordEntry {
  let decoy = decoys.get(table);
  if (decoy === undefined) {
    const byCost = new Map<string, { entry: PasswordEntry; n: number }>();
    for (const entry of table.values()) {
      const cost = entry.kind === "bcrypt" ? entry.hash.slice(4, 6) : "sha1";
      const seen = byCost.get(cost) ?? { entry, n: 0 };
      seen.n++;
      byCost.set(cost, seen);
    }
    decoy = [...byCost.values()].sort((a, b) => b.n - a.n)[0].entry;
    decoys.set(table, decoy);
  }
  return decoy;
}

/** bcrypt.compare: in the worker pool when there is one, so the event loop never waits on it. */
type Bcrypt = (password: string, hash: string) => Promise<boolean>;

function bcryptIn(pool: WorkerPool | undefined): Bcrypt {
  if (!pool) return (password, hash) => bcrypt.compare(password, hash);
  return (password, hash) =>
    pool.run<boolean>({ kind: "auth.bcrypt", password, hash, idempotent: true })
      // A full queue or a crashed worker: check here rather than refuse a right password.
      .catch(() => bcrypt.compare(password, hash));
}

async function verifyPassword(
  compare: Bcrypt,
  entry: PasswordEntry | undefined,
  password: string,
  decoy: PasswordEntry,
): Promise<boolean> {
  if (!entry) {
    await verifyPassword(compare, decoy, password, decoy);
    return false;
  }
  if (entry.kind === "bcrypt") return await compare(password, entry.hash);
  const want = Buffer.from(entry.hash.slice(5), "base64");
  const got = createHash("sha1").update(password, "utf8").digest();
  return timingSafeEqual(got, want);
}

export interface ProxyAuthOptions {
  /** Path of the htpasswd file (PROXY_AUTH_FILE). Read at creation and on reload(). */
  readonly file: string;
  /** How long a verdict stays cached (default 60 s). */
  readonly cacheTtlMs?: number;
  /** Cache entries kept at most (default 10 000). */
  readonly maxCacheEntries?: number;
  /** Runs bcrypt off the main thread (task kind `auth.bcrypt`); inline without one. */
  readonly pool?: WorkerPool;
  /** Failed checks per client and minute before its checks are refused unrun (default 10). */
  readonly maxFailuresPerMinute?: number;
  /** Realm in Proxy-Authenticate (default "proxy"). */
  readonly realm?: string;
  /**
   * Also require credentials for origin-form requests (reverse proxy). Off by default:
   * browsers send Proxy-Authorization only to a proxy they were configured to use.
   */
  readonly requireForOriginForm?: boolean;
  readonly logger?: Logger;
  /** Clock for the cache (tests inject one). */
  readonly now?: () => number;
}

export interface ProxyAuth extends StatsSource {
  /**
   * Checks a Proxy-Authorization value from `clientIp`; resolves to the user
   * name, or undefined (also while the client is throttled, see `throttled`).
   */
  verify(header: string | null | undefined, clientIp?: string): Promise<string | undefined>;
  /** Seconds until a client may try new credentials again; 0 when it may now. */
  throttled(clientIp: string): number;
  /** 407 without valid credentials; sets ctx.user and removes Proxy-Authorization. */
  readonly phase: Wrapper;
  /** The 407 response, for the CONNECT path of the listener. */
  challenge(reason: string): Response;
  /** Re-reads the file (on SIGHUP); on error keeps the old users and throws. */
  reload(): void;
  readonly userCount: number;
  close(): void;
}

interface CacheEntry {
  readonly user: string | undefined;
  readonly expires: number;
}

/** A client's failed checks in the current minute (and those still running). */
interface Failures {
  windowStart: number;
  count: number;
}

const FAILURE_WINDOW_MS = 60_000;
/** Clients whose failures are remembered at most. */
const MAX_FAILING_CLIENTS = 10_000;

/** Creates proxy authentication from PROXY_AUTH_FILE; throws a clear error for a bad file. */
export function createProxyAuth(options: ProxyAuthOptions): ProxyAuth {
  const ttl = options.cacheTtlMs ?? 60_000;
  const maxEntries = options.maxCacheEntries ?? 10_000;
  const realm = options.realm ?? "proxy";
  const now = options.now ?? Date.now;
  const load = () => {
    let text: string;
    try {
      text = Deno.readTextFileSync(options.file);
    } catch (err) {
      throw new Error(`PROXY_AUTH_FILE: cannot read ${options.file}: ${(err as Error).message}`);
    }
    const parsed = parseHtpasswd(text, options.file);
    const weak = [...parsed].filter(([, e]) => e.kind === "sha1").map(([u]) => u);
    if (weak.length) {
      options.logger?.warn(
        "{file}: users {users} use unsalted {SHA} hashes; prefer bcrypt (htpasswd -B)",
        {
          file: options.file,
          users: weak.join(","),
        },
      );
    }
    return parsed;
  };
  let users = load();
  let cache = new Map<string, CacheEntry>();
  const inflight = new Map<string, Promise<string | undefined>>();
  const counts = { success: 0, failure: 0, missing: 0, cacheHits: 0, throttled: 0 };
  const maxFailures = options.maxFailuresPerMinute ?? 10;
  const compare = bcryptIn(options.pool);
  /** Cache keys: HMAC under a key that lives only in this process. */
  const hmacKey = randomBytes(32);
  const failures = new Map<string, Failures>();

  /** The client's failure record for the current minute, created when `create`. */
  const failuresOf = (ip: string, create: boolean): Failures | undefined => {
    const t = now();
    let f = failures.get(ip);
    if (f && t - f.windowStart >= FAILURE_WINDOW_MS) {
      failures.delete(ip);
      f = undefined;
    }
    if (!f && create) {
      if (failures.size >= MAX_FAILING_CLIENTS) failures.delete(failures.keys().next().value!);
      f = { windowStart: t, count: 0 };
      failures.set(ip, f);
    }
    return f;
  };
  const throttled = (ip: string): number => {
    const f = failuresOf(ip, false);
    if (!f || f.count < maxFailures) return 0;
    return Math.max(1, Math.ceil((f.windowStart + FAILURE_WINDOW_MS - now()) / 1000));
  };

  const remember = (key: string, user: string | undefined) => {
    if (cache.size >= maxEntries) {
      // Map keeps insertion order: drop the oldest entry.
      cache.delete(cache.keys().next().value!);
    }
    cache.set(key, { user, expires: now() + ttl });
  };

  const verify = async (
    header: string | null | undefined,
    clientIp?: string,
  ): Promise<string | undefined> => {
    if (!header) {
      counts.missing++;
      return undefined;
    }
    const key = createHmac("sha256", hmacKey).update(header).digest("base64");
    const hit = cache.get(key);
    if (hit && hit.expires > now()) {
      counts.cacheHits++;
      hit.user === undefined ? counts.failure++ : counts.success++;
      return hit.user;
    }
    if (hit) cache.delete(key);
    if (clientIp !== undefined && !inflight.has(key)) {
      if (throttled(clientIp) > 0) {
        counts.throttled++;
        counts.failure++;
        return undefined;
      }
      // Counted before bcrypt runs, so parallel attempts cannot all slip in ahead of the
      // first verdict; a success gives the attempt back.
      const f = failuresOf(clientIp, true)!;
      f.count++;
      const user = await check(key, header);
      if (user !== undefined) f.count = Math.max(0, f.count - 1);
      user === undefined ? counts.failure++ : counts.success++;
      return user;
    }
    const user = await check(key, header);
    user === undefined ? counts.failure++ : counts.success++;
    return user;
  };

  /** Runs (or joins) the password check for a header and caches the verdict. */
  const check = (key: string, header: string): Promise<string | undefined> => {
    let pending = inflight.get(key);
    if (!pending) {
      const table = users;
      const generation = cache;
      pending = (async () => {
        const creds = parseBasic(header);
        const ok = creds
          ? await verifyPassword(compare, table.get(creds.user), creds.password, decoyFor(table))
          : false;
        const user = ok ? creds!.user : undefined;
        // A reload in the meantime replaced the cache; do not store a verdict about old users.
        if (generation === cache) remember(key, user);
        return user;
      })().finally(() => inflight.delete(key));
      inflight.set(key, pending);
    }
    return pending;
  };

  const challenge = (reason: string) =>
    plainText(407, `407 Proxy Authentication Required: ${reason}`, {
      "proxy-authenticate": `Basic realm="${realm}", charset="UTF-8"`,
    });

  const phase: Wrapper = (next) => async (req, ctx) => {
    if (ctx.conn.form === "origin" && !options.requireForOriginForm) return await next(req, ctx);
    const header = req.headers.get("proxy-authorization");
    const user = await verify(header, ctx.clientIp);
    if (user === undefined) {
      const wait = header ? throttled(ctx.clientIp) : 0;
      if (wait > 0) {
        return new Response(
          `429 Too Many Requests: too many failed proxy logins from ${ctx.clientIp}; ` +
            `retry in ${wait} s\n`,
          {
            status: 429,
            headers: { "content-type": "text/plain; charset=utf-8", "retry-after": String(wait) },
          },
        );
      }
      return challenge(header ? "wrong user name or password" : "credentials required");
    }
    ctx.user = user;
    // The credentials are for us, never for the origin.
    let forwarded = req;
    try {
      req.headers.delete("proxy-authorization");
    } catch {
      const headers = new Headers(req.headers);
      headers.delete("proxy-authorization");
      forwarded = new Request(req, { headers });
    }
    return await next(forwarded, ctx);
  };

  return {
    name: "auth",
    verify,
    throttled,
    phase,
    challenge,
    reload() {
      const next = load();
      users = next;
      cache = new Map();
      options.logger?.info("reloaded {file}: {count} users", {
        file: options.file,
        count: next.size,
      });
    },
    get userCount() {
      return users.size;
    },
    snapshot: () => ({
      users: users.size,
      successes: counts.success,
      failures: counts.failure,
      missing: counts.missing,
      cache_hits: counts.cacheHits,
      throttled: counts.throttled,
    }),
    metrics: (): MetricFamily[] => [{
      name: "proxy_auth_attempts_total",
      help: "Proxy authentication checks by result.",
      type: "counter",
      samples: [
        { labels: { result: "success" }, value: counts.success },
        { labels: { result: "failure" }, value: counts.failure },
        { labels: { result: "missing" }, value: counts.missing },
        { labels: { result: "throttled" }, value: counts.throttled },
      ],
    }],
    close() {
      cache.clear();
      inflight.clear();
      failures.clear();
    },
  };
}
