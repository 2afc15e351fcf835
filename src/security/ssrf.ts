/**
 * Destination policy against server-side request forgery: which addresses a
 * forward request or CONNECT tunnel may reach.
 *
 * The policy is checked with the address the socket *actually connected to*
 * (the forwarder's `checkAddress` option and the CONNECT tunnel call it after
 * DNS resolution), so a name that resolves to a public address for a filter
 * and to 127.0.0.1 for the connection (DNS rebinding) is still refused.
 *
 * @module
 */
import {
  type AddressClass,
  type Cidr,
  classifyAddress,
  matchesAny,
  parseCidrList,
  parseIp,
} from "./cidr.ts";
import { canonicalHost } from "../server/authority.ts";

/** FORWARD_ALLOW_PRIVATE: "none" (default), "all", or the blocks that may be reached. */
export type AllowPrivate = "none" | "all" | readonly Cidr[];

export interface AddressPolicyOptions {
  readonly allowPrivate: AllowPrivate;
}

/** Returns the refusal reason for a destination, or undefined when it may be reached. */
export type AddressPolicy = (ip: string, hostname?: string) => string | undefined;

/** Classes refused unless FORWARD_ALLOW_PRIVATE lets them through. */
const NON_PUBLIC: ReadonlySet<AddressClass> = new Set<AddressClass>([
  "loopback",
  "private",
  "link-local",
  "multicast",
  "unspecified",
  "broadcast",
  "cgnat",
  "documentation",
  "benchmarking",
  "reserved",
]);

/**
 * Parses FORWARD_ALLOW_PRIVATE: `none`/`false`/empty → "none", `all`/`true` → "all",
 * otherwise a CIDR list (throws naming the setting).
 */
export function parseAllowPrivate(value: string, setting = "FORWARD_ALLOW_PRIVATE"): AllowPrivate {
  const v = value.trim().toLowerCase();
  if (v === "" || v === "none" || v === "false" || v === "0" || v === "no") return "none";
  if (v === "all" || v === "true" || v === "1" || v === "yes") return "all";
  return parseCidrList(value, setting);
}

/**
 * Creates the destination policy. With "none" only public addresses may be
 * reached; with a CIDR list, those blocks too; with "all", anything that is an
 * IP address (the operator opted out, e.g. for a lab network).
 *
 * @example
 * ```ts
 * const policy = createAddressPolicy({ allowPrivate: "none" });
 * policy("169.254.169.254", "metadata.internal");
 * // → "destination metadata.internal (169.254.169.254) is a link-local address; ..."
 * ```
 */
export function createAddressPolicy(options: AddressPolicyOptions): AddressPolicy {
  const allow = options.allowPrivate;
  return (ip: string, hostname?: string) => {
    const addr = parseIp(ip);
    const label = hostname && hostname !== ip ? `${hostname} (${ip})` : ip;
    if (!addr) return `destination ${label} is not an IP address`;
    if (allow === "all") return undefined;
    const cls = classifyAddress(addr);
    if (!NON_PUBLIC.has(cls)) return undefined;
    if (allow !== "none" && matchesAny(allow, addr)) return undefined;
    return `destination ${label} is a ${cls} address; forwarding to it is refused ` +
      `(FORWARD_ALLOW_PRIVATE allows it)`;
  };
}

/**
 * Default CONNECT_PORTS: the HTTPS ports, as Squid's `SSL_ports`, plus 80, because
 * Node's undici `ProxyAgent` (and the HTTP clients built on it) tunnel plain
 * `http://` URLs with `CONNECT host:80`. Port 80 reaches what a forward GET reaches
 * anyway; SSH, SMTP and databases stay out.
 */
export const DEFAULT_CONNECT_PORTS: readonly number[] = [80, 443, 8443];

/** Parses CONNECT_PORTS ("443,8443" or "*" for any port); throws naming the setting. */
export function parseConnectPorts(
  value: string,
  setting = "CONNECT_PORTS",
): readonly number[] | "*" {
  if (value.trim() === "*") return "*";
  const out: number[] = [];
  for (const item of value.split(/[\s,]+/)) {
    if (item === "") continue;
    const range = /^([0-9]{1,5})(?:-([0-9]{1,5}))?$/.exec(item);
    const lo = range ? Number(range[1]) : NaN;
    const hi = range?.[2] ? Number(range[2]) : lo;
    if (!range || lo < 1 || hi > 65535 || hi < lo) {
      throw new Error(`${setting}: "${item}" is not a port (1-65535) or range (e.g. 8000-8080)`);
    }
    for (let p = lo; p <= hi; p++) out.push(p);
  }
  return out;
}

/** Refusal reason for a CONNECT to a port outside CONNECT_PORTS, or undefined. */
export function checkConnectPort(
  port: number,
  allowed: readonly number[] | "*",
): string | undefined {
  if (allowed === "*") return undefined;
  if (allowed.includes(port)) return undefined;
  return `CONNECT to port ${port} is refused; allowed ports: ${
    allowed.join(",") || "none"
  } (CONNECT_PORTS)`;
}

/**
 * Refusal reason when `hostname` is an IP literal the policy refuses, else undefined.
 * Lets a forward request or CONNECT to `http://10.0.0.1/` be refused before any
 * connection attempt, so the proxy cannot be used to probe which internal ports
 * are open (names are still checked on the connected address).
 */
export function literalHostRefusal(policy: AddressPolicy, hostname: string): string | undefined {
  // The same canonical form as the filter and CONNECT see: `2130706433`, `0x7f.1` and
  // `[::ffff:127.0.0.1]` are 127.0.0.1 here too.
  const host = canonicalHost(hostname) ?? hostname;
  return parseIp(host) ? policy(host, hostname) : undefined;
}

export interface HostnameCheckOptions {
  /** How long a verdict per name is reused (default 30 s). */
  readonly ttlMs?: number;
  /** Names remembered at most (default 10 000). */
  readonly maxEntries?: number;
  /** Resolver (tests inject one); default getaddrinfo via node:dns, which honours /etc/hosts. */
  readonly lookup?: (hostname: string) => Promise<string[]>;
  readonly now?: () => number;
}

/** A cached pre-connection check of what a host name resolves to. */
export type HostnameCheck = (hostname: string) => Promise<string | undefined>;

async function systemLookup(hostname: string): Promise<string[]> {
  const { lookup } = await import("node:dns/promises");
  const all = await lookup(hostname, { all: true, verbatim: true });
  return all.map((a) => a.address);
}

/**
 * Checks every address a name resolves to before any connection is attempted,
 * so a name pointing at an internal address (`localhost`, `*.internal`) is
 * refused with 403 whether or not something listens there: without this, "403"
 * (connected, then refused) versus "502 connection refused" would tell an
 * attacker which internal ports are open. The forwarder still checks the
 * address it actually connected to, which is what defeats DNS rebinding; this
 * check only removes the probing oracle. Names that do not resolve pass (the
 * forwarder reports them). Verdicts are cached for `ttlMs`.
 */
export function createHostnameCheck(
  policy: AddressPolicy,
  options: HostnameCheckOptions = {},
): HostnameCheck {
  const ttl = options.ttlMs ?? 30_000;
  const max = options.maxEntries ?? 10_000;
  const lookup = options.lookup ?? systemLookup;
  const now = options.now ?? Date.now;
  const cache = new Map<string, { reason: string | undefined; expires: number }>();
  return async (hostname: string) => {
    const literal = literalHostRefusal(policy, hostname);
    if (literal !== undefined || parseIp(canonicalHost(hostname) ?? hostname)) return literal;
    const name = hostname.toLowerCase();
    const hit = cache.get(name);
    if (hit && hit.expires > now()) return hit.reason;
    let reason: string | undefined;
    try {
      for (const ip of await lookup(name)) {
        reason = policy(ip, hostname);
        if (reason !== undefined) break;
      }
    } catch {
      return undefined; // unresolvable: nothing to probe; the forwarder answers 502
    }
    if (cache.size >= max) cache.delete(cache.keys().next().value!);
    cache.set(name, { reason, expires: now() + ttl });
    return reason;
  };
}
