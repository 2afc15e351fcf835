/**
 * Proxy authentication (RFC 9110 §11.7): Basic credentials in
 * Proxy-Authorization checked against PROXY_AUTH_FILE, an htpasswd-compatible
 * file (`user:hash` per line; bcrypt `$2y$`/`$2a$`/`$2b$`, or `{SHA}`).
 *
 * bcrypt takes tens of milliseconds per check on purpose, so verdicts are
 * cached briefly under a SHA-256 of the header (never the password itself),
 * and concurrent checks of the same credentials share one computation.
 *
 * @module
 */
import type { Logger } from "@logtape/logtape";
import bcrypt from "bcryptjs";
import { Buffer } from "node:buffer";
import { createHash, timingSafeEqual } from "node:crypto";
import type { Wrapper } from "../context/mod.ts";
import { plainText } from "../respond/mod.ts";
import type { MetricFamily, StatsSource } from "../stats/metric.ts";

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

// Verified against when the user is unknown, so a wrong user name costs as much
// time as a wrong password and user names cannot be probed by timing.
const DUMMY_BCRYPT = "$2b$10$90aPyIVQkSw8jsyD0deohuok45VU9psNRS1Vh7l1wbhCipE4SbNtC";

async function verifyPassword(
  entry: PasswordEntry | undefined,
  password: string,
): Promise<boolean> {
  if (!entry) {
    await bcrypt.compare(password, DUMMY_BCRYPT);
    return false;
  }
  if (entry.kind === "bcrypt") return await bcrypt.compare(password, entry.hash);
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
  /** Checks a Proxy-Authorization value; resolves to the user name, or undefined. */
  verify(header: string | null | undefined): Promise<string | undefined>;
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
  const counts = { success: 0, failure: 0, missing: 0, cacheHits: 0 };

  const remember = (key: string, user: string | undefined) => {
    if (cache.size >= maxEntries) {
      // Map keeps insertion order: drop the oldest entry.
      cache.delete(cache.keys().next().value!);
    }
    cache.set(key, { user, expires: now() + ttl });
  };

  const verify = async (header: string | null | undefined): Promise<string | undefined> => {
    if (!header) {
      counts.missing++;
      return undefined;
    }
    const key = createHash("sha256").update(header).digest("base64");
    const hit = cache.get(key);
    if (hit && hit.expires > now()) {
      counts.cacheHits++;
      hit.user === undefined ? counts.failure++ : counts.success++;
      return hit.user;
    }
    if (hit) cache.delete(key);
    let pending = inflight.get(key);
    if (!pending) {
      const table = users;
      const generation = cache;
      pending = (async () => {
        const creds = parseBasic(header);
        const ok = creds ? await verifyPassword(table.get(creds.user), creds.password) : false;
        const user = ok ? creds!.user : undefined;
        // A reload in the meantime replaced the cache; do not store a verdict about old users.
        if (generation === cache) remember(key, user);
        return user;
      })().finally(() => inflight.delete(key));
      inflight.set(key, pending);
    }
    const user = await pending;
    user === undefined ? counts.failure++ : counts.success++;
    return user;
  };

  const challenge = (reason: string) =>
    plainText(407, `407 Proxy Authentication Required: ${reason}`, {
      "proxy-authenticate": `Basic realm="${realm}", charset="UTF-8"`,
    });

  const phase: Wrapper = (next) => async (req, ctx) => {
    if (ctx.conn.form === "origin" && !options.requireForOriginForm) return await next(req, ctx);
    const header = req.headers.get("proxy-authorization");
    const user = await verify(header);
    if (user === undefined) {
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
    }),
    metrics: (): MetricFamily[] => [{
      name: "proxy_auth_attempts_total",
      help: "Proxy authentication checks by result.",
      type: "counter",
      samples: [
        { labels: { result: "success" }, value: counts.success },
        { labels: { result: "failure" }, value: counts.failure },
        { labels: { result: "missing" }, value: counts.missing },
      ],
    }],
    close() {
      cache.clear();
      inflight.clear();
    },
  };
}
