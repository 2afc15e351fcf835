/**
 * Client ACL: ALLOWED_CLIENTS decides who may use the proxy at all.
 * @module
 */
import { type Cidr, matchesAny } from "./cidr.ts";

/**
 * Default ALLOWED_CLIENTS: loopback and the private networks (RFC 1918, CGNAT,
 * IPv6 unique-local and link-local). A proxy reachable from the internet is an
 * open proxy; opening it to everyone takes an explicit `0.0.0.0/0,::/0`.
 */
export const DEFAULT_ALLOWED_CLIENTS =
  "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,fc00::/7,fe80::/10";

export interface ClientAclOptions {
  /** Blocks whose clients may use the proxy. Must not be empty. */
  readonly allowed: readonly Cidr[];
}

export interface ClientAcl {
  /** True when the client address may use the proxy. */
  isAllowedClient(ip: string): boolean;
}

/** Creates the ACL; throws when the list is empty (nobody could use the proxy). */
export function createClientAcl(options: ClientAclOptions): ClientAcl {
  const allowed = options.allowed;
  if (allowed.length === 0) {
    throw new Error(
      "ALLOWED_CLIENTS is empty, so nobody could use the proxy; list CIDR blocks, or 0.0.0.0/0,::/0 for everyone",
    );
  }
  const isAllowedClient = (ip: string) => matchesAny(allowed, ip);
  return { isAllowedClient };
}
