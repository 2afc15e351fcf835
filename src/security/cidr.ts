/**
 * IPv4 / IPv6 addresses and CIDR blocks: parsing, matching and classification
 * by the IANA special-purpose address registries (RFC 6890 and successors).
 *
 * Addresses are compared as integers (`bigint`); an IPv4-mapped IPv6 address
 * (`::ffff:1.2.3.4`) is treated as the IPv4 address it carries, so a socket that
 * reports `::ffff:127.0.0.1` matches `127.0.0.0/8` and classifies as loopback.
 *
 * @example
 * ```ts
 * const list = parseCidrList("127.0.0.0/8, ::1/128", "RATE_LIMIT_EXEMPT");
 * matchesAny(list, "::ffff:127.0.0.1"); // true
 * classifyAddress("169.254.169.254");   // "link-local"
 * ```
 * @module
 */

/** A parsed IP address: IPv4 as a 32-bit value, IPv6 as a 128-bit value. */
export interface IpAddress {
  readonly family: 4 | 6;
  readonly value: bigint;
}

/** A parsed CIDR block. */
export interface Cidr {
  readonly family: 4 | 6;
  /** Network address (host bits cleared). */
  readonly base: bigint;
  /** Prefix length. */
  readonly bits: number;
  /** Canonical text as written by the user (for messages and snapshots). */
  readonly text: string;
}

/** What kind of address an IP is, by the special-purpose registries. */
export type AddressClass =
  | "loopback"
  | "private"
  | "link-local"
  | "multicast"
  | "unspecified"
  | "broadcast"
  | "cgnat"
  | "documentation"
  | "benchmarking"
  | "reserved"
  | "public";

function parseIpv4(s: string): bigint | undefined {
  const parts = s.split(".");
  if (parts.length !== 4) return undefined;
  let v = 0n;
  for (const p of parts) {
    // Strict decimal: no leading zeros (octal ambiguity is a classic SSRF bypass), no signs.
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    v = (v << 8n) | BigInt(n);
  }
  return v;
}

function parseIpv6(s: string): bigint | undefined {
  if (s.length === 0 || s.length > 45) return undefined;
  let tail4: bigint | undefined;
  let text = s;
  const lastColon = text.lastIndexOf(":");
  if (lastColon >= 0 && text.indexOf(".", lastColon) > 0) {
    tail4 = parseIpv4(text.slice(lastColon + 1));
    if (tail4 === undefined) return undefined;
    // Replace the dotted tail by two placeholder groups so the group count works out.
    text = text.slice(0, lastColon + 1) + "0:0";
  }
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groupsOf = (h: string) => (h === "" ? [] : h.split(":"));
  const head = groupsOf(halves[0]);
  const rest = halves.length === 2 ? groupsOf(halves[1]) : [];
  const total = head.length + rest.length;
  if (halves.length === 1 ? total !== 8 : total > 7) return undefined;
  const groups = [...head, ...Array(8 - total).fill("0"), ...rest];
  let v = 0n;
  for (const g of groups) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
    v = (v << 16n) | BigInt(parseInt(g, 16));
  }
  if (tail4 !== undefined) v = (v & ~0xffffffffn) | tail4;
  return v;
}

/**
 * Parses an IP address (`1.2.3.4`, `::1`, `[::1]`, `fe80::1%eth0`).
 * An IPv4-mapped IPv6 address is returned as IPv4. Returns undefined when it is not an IP.
 */
export function parseIp(input: string): IpAddress | undefined {
  let s = input.trim();
  if (s.startsWith("[") && s.endsWith("]")) s = s.slice(1, -1);
  const zone = s.indexOf("%");
  if (zone >= 0) s = s.slice(0, zone);
  if (s.includes(":")) {
    const v = parseIpv6(s);
    if (v === undefined) return undefined;
    if (v >> 32n === 0xffffn) return { family: 4, value: v & 0xffffffffn };
    return { family: 6, value: v };
  }
  const v = parseIpv4(s);
  return v === undefined ? undefined : { family: 4, value: v };
}

/** True when the string is an IPv4 or IPv6 address literal. */
export function isIp(s: string): boolean {
  return parseIp(s) !== undefined;
}

/**
 * Parses one CIDR block (`10.0.0.0/8`, `fd00::/8`) or a single address (a /32 or /128).
 * Throws an Error naming the bad value; host bits set below the prefix are an error
 * (`10.0.0.1/8` is almost always a typo for something else).
 */
export function parseCidr(input: string): Cidr {
  const text = input.trim();
  const slash = text.indexOf("/");
  const addrText = slash >= 0 ? text.slice(0, slash) : text;
  const ip = parseIp(addrText);
  if (!ip) {
    throw new Error(`"${text}" is not an IP address or CIDR block (e.g. 10.0.0.0/8, fd00::/8)`);
  }
  const mappedV6 = addrText.includes(":") && ip.family === 4;
  const max = ip.family === 4 ? 32 : 128;
  let bits = max;
  if (slash >= 0) {
    const b = text.slice(slash + 1);
    if (!/^[0-9]{1,3}$/.test(b)) throw new Error(`"${text}": prefix length "${b}" is not a number`);
    bits = Number(b);
    // `::ffff:10.0.0.0/104` is written in IPv6 prefix bits; convert to the IPv4 prefix.
    if (mappedV6) {
      if (bits < 96 || bits > 128) {
        throw new Error(`"${text}": an IPv4-mapped prefix must be between /96 and /128`);
      }
      bits -= 96;
    }
    if (bits > max) throw new Error(`"${text}": prefix length must be at most /${max}`);
  }
  const hostMask = (1n << BigInt(max - bits)) - 1n;
  if ((ip.value & hostMask) !== 0n) {
    const base = ip.value & ~hostMask;
    throw new Error(
      `"${text}" has host bits set below /${bits}; did you mean ${
        formatIp({ family: ip.family, value: base })
      }/${bits}?`,
    );
  }
  return { family: ip.family, base: ip.value, bits, text };
}

/**
 * Parses a comma- or whitespace-separated list of CIDR blocks. Throws one Error
 * naming the setting and every bad entry. An empty string gives an empty list.
 */
export function parseCidrList(input: string | readonly string[], setting = "CIDR list"): Cidr[] {
  const items = typeof input === "string"
    ? input.split(/[\s,]+/)
    : input.flatMap((s) => s.split(/[\s,]+/));
  const out: Cidr[] = [];
  const errors: string[] = [];
  for (const item of items) {
    if (item.trim() === "") continue;
    try {
      out.push(parseCidr(item));
    } catch (err) {
      errors.push((err as Error).message);
    }
  }
  if (errors.length) throw new Error(`${setting}: ${errors.join("; ")}`);
  return out;
}

/** True when the address lies inside the block. */
export function cidrContains(cidr: Cidr, ip: IpAddress | string): boolean {
  const a = typeof ip === "string" ? parseIp(ip) : ip;
  if (!a || a.family !== cidr.family) return false;
  const shift = BigInt((cidr.family === 4 ? 32 : 128) - cidr.bits);
  return a.value >> shift === cidr.base >> shift;
}

/** True when the address lies inside any block of the list (false for a non-IP string). */
export function matchesAny(list: readonly Cidr[], ip: IpAddress | string): boolean {
  if (list.length === 0) return false;
  const a = typeof ip === "string" ? parseIp(ip) : ip;
  if (!a) return false;
  for (const c of list) if (cidrContains(c, a)) return true;
  return false;
}

/** Formats an address canonically (IPv6 compressed per RFC 5952). */
export function formatIp(ip: IpAddress): string {
  if (ip.family === 4) {
    const v = Number(ip.value);
    return [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join(".");
  }
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((ip.value >> BigInt(i * 16)) & 0xffffn));
  // Longest run of zero groups (length >= 2) becomes "::".
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(":");
  return hex.slice(0, best).join(":") + "::" + hex.slice(best + bestLen).join(":");
}

interface Range {
  readonly cidr: Cidr;
  readonly cls: AddressClass;
}

const range = (text: string, cls: AddressClass): Range => ({ cidr: parseCidr(text), cls });

// Most specific first: the first match wins.
const V4_RANGES: readonly Range[] = [
  range("0.0.0.0/32", "unspecified"),
  range("255.255.255.255/32", "broadcast"),
  range("0.0.0.0/8", "reserved"), // "this network": connecting to it reaches the local host on Linux
  range("10.0.0.0/8", "private"),
  range("100.64.0.0/10", "cgnat"),
  range("127.0.0.0/8", "loopback"),
  range("169.254.0.0/16", "link-local"), // includes the cloud metadata address 169.254.169.254
  range("172.16.0.0/12", "private"),
  range("192.0.0.0/24", "reserved"), // IETF protocol assignments
  range("192.0.2.0/24", "documentation"),
  range("192.88.99.0/24", "reserved"), // deprecated 6to4 relay anycast
  range("192.168.0.0/16", "private"),
  range("198.18.0.0/15", "benchmarking"),
  range("198.51.100.0/24", "documentation"),
  range("203.0.113.0/24", "documentation"),
  range("224.0.0.0/4", "multicast"),
  range("240.0.0.0/4", "reserved"),
];

const V6_RANGES: readonly Range[] = [
  range("::/128", "unspecified"),
  range("::1/128", "loopback"),
  range("64:ff9b:1::/48", "private"), // local-use NAT64
  range("100::/64", "reserved"), // discard-only
  range("2001:db8::/32", "documentation"),
  range("2001:2::/48", "benchmarking"),
  range("2001::/23", "reserved"), // IETF protocol assignments (Teredo, ORCHID, ...)
  range("3fff::/20", "documentation"),
  range("5f00::/16", "reserved"), // segment routing SIDs
  range("fc00::/7", "private"), // unique local, includes fd00::/8
  range("fe80::/10", "link-local"),
  range("fec0::/10", "private"), // deprecated site-local
  range("ff00::/8", "multicast"),
  range("::/96", "reserved"), // deprecated IPv4-compatible addresses
];

const NAT64 = parseCidr("64:ff9b::/96");
const SIX_TO_FOUR = parseCidr("2002::/16");
const GLOBAL_UNICAST = parseCidr("2000::/3");

/**
 * Classifies an address by the IANA special-purpose registries. Addresses that
 * embed an IPv4 address (IPv4-mapped, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`)
 * are classified by the IPv4 address they lead to, so `64:ff9b::127.0.0.1` is
 * loopback. Returns "reserved" for a string that is not an IP at all, so callers
 * refusing non-public addresses refuse it too.
 */
export function classifyAddress(ip: IpAddress | string): AddressClass {
  const a = typeof ip === "string" ? parseIp(ip) : ip;
  if (!a) return "reserved";
  if (a.family === 4) {
    for (const r of V4_RANGES) if (cidrContains(r.cidr, a)) return r.cls;
    return "public";
  }
  if (cidrContains(NAT64, a)) return classifyAddress({ family: 4, value: a.value & 0xffffffffn });
  if (cidrContains(SIX_TO_FOUR, a)) {
    return classifyAddress({ family: 4, value: (a.value >> 80n) & 0xffffffffn });
  }
  for (const r of V6_RANGES) if (cidrContains(r.cidr, a)) return r.cls;
  return cidrContains(GLOBAL_UNICAST, a) ? "public" : "reserved";
}

/** True for loopback addresses (127.0.0.0/8, ::1, and their IPv4-mapped forms). */
export function isLoopback(ip: string): boolean {
  return classifyAddress(ip) === "loopback";
}
