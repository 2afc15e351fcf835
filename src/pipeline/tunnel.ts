/**
 * The request filters of a CONNECT tunnel, in the same order as for a
 * proxied request: client ACL → CONNECT_PORTS → filter (before any DNS
 * lookup, so a blocked host never reaches the network) → inside names
 * (SSRF) → proxy auth → rate limit.
 *
 * @module
 */
import type { Filter } from "../filter/mod.ts";
import { xFilterValue } from "../filter/mod.ts";
import type { RateLimiter } from "../ratelimit/mod.ts";
import { rateLimitHeaders } from "../ratelimit/mod.ts";
import type { ProxyAuth } from "../security/mod.ts";
import type { Refusal, TunnelRequest } from "../server/mod.ts";

export interface TunnelAdmissionOptions {
  isAllowedClient(ip: string): boolean;
  connectPorts: readonly number[];
  filter: Filter;
  /** Refusal reason when a name resolves inside (undefined when FORWARD_ALLOW_PRIVATE=all). */
  checkHost?: (host: string) => Promise<string | undefined>;
  auth?: ProxyAuth;
  rateLimiter: RateLimiter;
}

/** Decides whether a CONNECT may open; the refusal carries status, reason and headers. */
export function tunnelAdmission(
  o: TunnelAdmissionOptions,
): (req: TunnelRequest) => Promise<Refusal | undefined> {
  return async (req) => {
    const { host, port } = req.authority;
    if (!o.isAllowedClient(req.clientIp)) {
      return {
        status: 403,
        reason: `403 Forbidden: client ${req.clientIp} is not in ALLOWED_CLIENTS`,
      };
    }
    if (!o.connectPorts.includes(port)) {
      return {
        status: 403,
        reason: `CONNECT to port ${port} is not allowed; add it to CONNECT_PORTS (now ${
          o.connectPorts.join(",")
        }) to allow it`,
      };
    }
    const blocked = o.filter.check(host);
    if (blocked) {
      return {
        status: 403,
        reason: `blocked by proxy filter: category=${blocked.category} rule=${blocked.rule}`,
        headers: { "X-Filter": xFilterValue(blocked) },
      };
    }
    const inside = await o.checkHost?.(host);
    if (inside) return { status: 403, reason: `403 Forbidden: ${inside}` };
    let user: string | undefined;
    if (o.auth) {
      const h = req.headers.get("proxy-authorization") ?? undefined;
      user = await o.auth.verify(h, req.clientIp);
      if (user === undefined) {
        return {
          status: 407,
          reason: `407 Proxy Authentication Required: ${
            h ? "wrong user name or password" : "credentials required"
          }`,
          headers: { "Proxy-Authenticate": 'Basic realm="proxy", charset="UTF-8"' },
        };
      }
    }
    const decision = await o.rateLimiter.decide({
      id: "tunnel",
      conn: { remoteAddr: req.clientIp, remotePort: 0, form: "authority", secure: false },
      startedAt: performance.now(),
      clientIp: req.clientIp,
      user,
    });
    if (!decision.allowed) {
      return {
        status: 429,
        reason:
          `429 Too Many Requests: rate limit of ${decision.limit} requests reached; retry later`,
        headers: rateLimitHeaders(decision),
      };
    }
    return undefined;
  };
}
