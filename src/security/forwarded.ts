/**
 * Client address behind reverse proxies (X-Forwarded-For and TRUSTED_PROXIES).
 *
 * Only peers listed in TRUSTED_PROXIES may tell us who the client is; anybody
 * else could write any X-Forwarded-For they like, so for them the header is
 * ignored on the way in and replaced (not appended to) on the way out.
 *
 * @module
 */
import { type Cidr, formatIp, isLoopback, matchesAny, parseIp } from "./cidr.ts";

/**
 * The client of a request whose X-Forwarded-For could not be read and whose last
 * believable hop is this machine (RFC 7239's word for an unknown hop). It is no IP
 * address, so no CIDR list matches it: not ALLOWED_CLIENTS, not RATE_LIMIT_EXEMPT,
 * not the loopback that opens the admin surface; the rate limiter keys it as one client.
 */
export const UNKNOWN_CLIENT = "unknown";

/** Extracts the address from one X-Forwarded-For element (`1.2.3.4`, `1.2.3.4:80`, `[::1]:80`). */
function hopAddress(item: string): string | undefined {
  let s = item.trim();
  if (s.startsWith("[")) {
    const end = s.indexOf("]");
    if (end < 0) return undefined;
    s = s.slice(1, end);
  } else if (/^[0-9.]+:[0-9]+$/.test(s)) {
    s = s.slice(0, s.indexOf(":"));
  }
  const ip = parseIp(s);
  return ip ? formatIp(ip) : undefined;
}

/**
 * The client IP for a request from `peerIp` carrying X-Forwarded-For `xff`.
 * When the peer is trusted, walks the list from the right, skipping trusted
 * proxies, and returns the first untrusted hop; a malformed hop stops the walk
 * (the hop to its right, or the peer, is the last one we can believe). An
 * untrusted peer is the client, whatever the header says.
 *
 * When the walk stops at a malformed hop and the last believable hop is a
 * loopback address (a reverse proxy on this machine), the client is
 * {@linkcode UNKNOWN_CLIENT}, never loopback: someone behind that proxy must not
 * get what this machine gets (rate-limit exemption, the admin surface).
 *
 * @example
 * ```ts
 * const trusted = parseCidrList("10.0.0.0/8, 127.0.0.0/8");
 * clientIpFrom("10.0.0.2", "203.0.113.7, 10.0.0.9", trusted); // "203.0.113.7"
 * clientIpFrom("198.51.100.1", "1.2.3.4", trusted);           // "198.51.100.1"
 * clientIpFrom("10.0.0.2", "garbage", trusted);               // "10.0.0.2"
 * clientIpFrom("127.0.0.1", "garbage", trusted);              // "unknown"
 * ```
 */
export function clientIpFrom(peerIp: string, xff: string | null, trusted: readonly Cidr[]): string {
  const peer = parseIp(peerIp);
  const peerText = peer ? formatIp(peer) : peerIp;
  if (!xff || !peer || !matchesAny(trusted, peer)) return peerText;
  const hops = xff.split(",");
  let client = peerText;
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hopAddress(hops[i]);
    if (!hop) return isLoopback(client) ? UNKNOWN_CLIENT : client;
    client = hop;
    if (!matchesAny(trusted, hop)) return hop;
  }
  return client;
}

/**
 * The X-Forwarded-For value to send upstream: the incoming list with the peer
 * appended when the peer is a trusted proxy; just the peer when it is not (a
 * client cannot plant addresses in what the backend believes).
 */
export function forwardedForValue(
  peerIp: string,
  xff: string | null,
  trusted: readonly Cidr[],
): string {
  // No trusted proxies (the default): the peer, as the listener reported it, on every request.
  if (trusted.length === 0) return peerIp;
  const peer = parseIp(peerIp);
  const peerText = peer ? formatIp(peer) : peerIp;
  if (xff && xff.trim() !== "" && peer && matchesAny(trusted, peer)) {
    return `${xff.trim()}, ${peerText}`;
  }
  return peerText;
}

/**
 * True when X-Forwarded-Proto / -Host from this peer may be passed on (the peer
 * is a trusted proxy); otherwise the forwarder sets them from what it saw.
 */
export function isTrustedPeer(peerIp: string, trusted: readonly Cidr[]): boolean {
  return matchesAny(trusted, peerIp);
}
