/**
 * The security section of the proxy, built from the configuration: who may
 * use it (ALLOWED_CLIENTS, proxy auth), whose forwarded headers are believed
 * (TRUSTED_PROXIES), where it may connect (FORWARD_ALLOW_PRIVATE) and who may
 * use the admin endpoints.
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import type { Config, LoadedConfig } from "../config/mod.ts";
import { logger } from "../log/mod.ts";
import { type ClientAcl, createClientAcl } from "./acl.ts";
import { adminGuard } from "./admin.ts";
import type { WorkerPool } from "../workers/mod.ts";
import { createProxyAuth, type ProxyAuth } from "./auth.ts";
import { type Cidr, parseCidrList } from "./cidr.ts";
import { type AddressPolicy, createAddressPolicy, createHostnameCheck } from "./ssrf.ts";

export interface Security {
  acl: ClientAcl;
  /** ALLOWED_CLIENTS applies to origin-form requests too (the operator set it explicitly). */
  aclForReverse: boolean;
  trusted: readonly Cidr[];
  /** SSRF check on the address actually connected to. */
  checkAddress: AddressPolicy;
  /** SSRF check on a name before connecting; undefined when FORWARD_ALLOW_PRIVATE=all. */
  checkHost?: (host: string) => Promise<string | undefined>;
  /** PROXY_AUTH_FILE's users, when set. */
  auth?: ProxyAuth;
  guardAdmin: MiddlewareHandler;
}

export const cidrsOf = (list: readonly { text: string }[]): Cidr[] =>
  parseCidrList(list.map((c) => c.text));

/** FORWARD_ALLOW_PRIVATE as an address policy (checked on the address actually connected to). */
export function addressPolicyFromConfig(config: Config): AddressPolicy {
  return createAddressPolicy({
    allowPrivate: config.forwardAllowPrivate === "none" || config.forwardAllowPrivate === "all"
      ? config.forwardAllowPrivate
      : cidrsOf(config.forwardAllowPrivate),
  });
}

/** `pool`: bcrypt runs there, so failed logins never stall the event loop. */
export function securityFromConfig(
  { config, sources }: LoadedConfig,
  pool?: WorkerPool,
): Security {
  const checkAddress = addressPolicyFromConfig(config);
  return {
    acl: createClientAcl({ allowed: cidrsOf(config.allowedClients) }),
    // In a gateway the backends are the operator's own, so only forward proxying is
    // limited to ALLOWED_CLIENTS unless the operator set it explicitly.
    aclForReverse: sources.allowedClients !== "default",
    trusted: cidrsOf(config.trustedProxies),
    checkAddress,
    // Names and literals pointing inside are refused before any connection attempt (no
    // port-probing oracle); the forwarder still checks the address it connected to.
    checkHost: config.forwardAllowPrivate === "all" ? undefined : createHostnameCheck(checkAddress),
    auth: config.proxyAuthFile
      ? createProxyAuth({ file: config.proxyAuthFile, logger: logger("auth"), pool })
      : undefined,
    guardAdmin: adminGuard({ token: config.adminToken }),
  };
}
