/**
 * Parsing of request-target pieces a listener must validate itself: the
 * CONNECT authority (`host:port`, `[v6]:port`), and the one canonical form of
 * a host that every check (filter, SSRF guard, CONNECT admission) compares.
 *
 * Why one canonical form: an address can be spelled many ways —
 * `1.181.227.68`, `28697412`, `0x1.0xb5.0xe3.0x44`, `0001.0265.0343.0104`,
 * `1.11920964`, `[::ffff:1.181.227.68]` — and the resolver (`inet_aton`,
 * getaddrinfo) accepts all of them. A rule or policy compared with the text as
 * the client wrote it holds for one spelling only. WHATWG URL already reduces
 * an absolute-form `GET http://28697412/` to `1.181.227.68`; CONNECT's
 * authority goes through the same parser here, so both kinds of request are
 * judged on the same address.
 *
 * @module
 */

export interface Authority {
  /** Canonical host (see {@linkcode canonicalHost}), without IPv6 brackets. */
  readonly host: string;
  readonly port: number;
}

/** Letters, digits, `_`, `-` and dots only: no `@`, `/`, `%` or anything URL would reinterpret. */
const HOST_NAME =
  /^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,62}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,62}[a-z0-9_])?)*\.?$/i;

/** The last label is a number (decimal, octal or hex), so WHATWG URL reads the host as IPv4. */
const ENDS_IN_NUMBER = /(?:^|\.)(?:[0-9]+|0x[0-9a-f]*)\.?$/i;

/** True when WHATWG URL would read this host (no port, no brackets) as an IPv4 address. */
export function endsInNumber(host: string): boolean {
  return ENDS_IN_NUMBER.test(host);
}

/** Dotted decimal with no leading zeros: already canonical, no URL parse needed. */
const DOTTED_DECIMAL =
  /^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$/;

/** `::ffff:a.b.c.d` as WHATWG URL serialises it: `[::ffff:hhhh:hhhh]`. */
const MAPPED_V4 = /^\[::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})\]$/;

/**
 * The canonical form of a host (without port), or undefined when it is not a
 * valid host: IPv4 in every notation WHATWG URL accepts (decimal, octal, hex,
 * shortened forms) becomes dotted decimal; an IPv6 address (with or without
 * brackets) its compressed lower-case form without brackets; an IPv4-mapped
 * IPv6 address the IPv4 address it carries; a name is lower-cased, without a
 * trailing dot.
 *
 * The parsing is WHATWG URL's (`new URL("http://" + host)`), the same parser
 * that produced an absolute-form request's URL, not a second hand-written one.
 *
 * @example
 * ```ts
 * canonicalHost("0x1.0xb5.0xe3.0x44");      // "1.181.227.68"
 * canonicalHost("[::ffff:127.0.0.1]");      // "127.0.0.1"
 * canonicalHost("Example.COM.");            // "example.com"
 * ```
 */
export function canonicalHost(host: string): string | undefined {
  if (host === "") return undefined;
  const v6 = host.includes(":");
  if (v6) {
    if (host.includes("%") || host.includes("/") || host.includes("@")) return undefined;
    const bracketed = host.startsWith("[") ? host : `[${host}]`;
    if (!bracketed.endsWith("]")) return undefined;
    let h: string;
    try {
      h = new URL(`http://${bracketed}/`).hostname;
    } catch {
      return undefined;
    }
    const m = MAPPED_V4.exec(h);
    if (m) {
      const hi = parseInt(m[1], 16);
      const lo = parseInt(m[2], 16);
      return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
    }
    return h.slice(1, -1);
  }
  if (!HOST_NAME.test(host)) return undefined;
  if (DOTTED_DECIMAL.test(host)) return host;
  if (!ENDS_IN_NUMBER.test(host)) {
    const lower = host.toLowerCase();
    return lower.endsWith(".") ? lower.slice(0, -1) : lower;
  }
  try {
    return new URL(`http://${host}/`).hostname;
  } catch {
    return undefined; // e.g. 4294967296 or 1.2.3.256: not an IPv4 address, and not a name either
  }
}

/** Parses a CONNECT request-target; undefined when malformed. The host is canonical. */
export function parseAuthority(target: string): Authority | undefined {
  let host: string;
  let portText: string;
  if (target.startsWith("[")) {
    const end = target.indexOf("]");
    if (end < 0 || target[end + 1] !== ":") return undefined;
    host = target.slice(0, end + 1);
    portText = target.slice(end + 2);
  } else {
    const colon = target.lastIndexOf(":");
    if (colon <= 0) return undefined;
    host = target.slice(0, colon);
    portText = target.slice(colon + 1);
    // An unbracketed IPv6 address would leave a colon in the host: not an authority.
    if (host.includes(":")) return undefined;
  }
  if (!/^\d{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  if (port < 1 || port > 65535) return undefined;
  const canonical = canonicalHost(host);
  return canonical === undefined ? undefined : { host: canonical, port };
}
