/**
 * Targets several scenarios share: the origin itself, this proxy with a
 * given environment (optionally with a private Redis), nginx and HAProxy as
 * reverse proxies (optionally caching), Caddy, and the Node peers.
 *
 * @module
 */
import { startCaddyReverse } from "./caddy.ts";
import { onFreePort, type Target } from "./compare.ts";
import { startHaproxyReverse } from "./haproxy.ts";
import { startNginxReverse } from "./nginx.ts";
import { ensurePeersInstalled, type PeerSpec, startPeer } from "./peers.ts";
import { type Origin, proxyEnv, startProxy } from "./proxy.ts";
import { startRedis } from "./redis.ts";
import type { BenchContext } from "./types.ts";

/** The origin answering directly: the baseline row. */
export function originTarget(origin: Origin): Target {
  return {
    label: "backend",
    start: () => Promise.resolve({ url: origin.url, stop: async () => {} }),
  };
}

/** This proxy in reverse mode in front of `origin`, with `env` over the bench defaults. */
export function proxyTarget(
  ctx: BenchContext,
  label: string,
  origin: Origin,
  env: Record<string, string> = {},
): Target {
  return {
    label,
    start: onFreePort((port) =>
      startProxy(ctx.root, label, port, { ...proxyEnv(port, origin.url), ...env })
    ),
  };
}

/** This proxy with its cache in a private redis-server. */
export function proxyWithRedisTarget(ctx: BenchContext, label: string, origin: Origin): Target {
  return {
    label,
    requires: ["redis-server"],
    start: onFreePort(async (port) => {
      const redis = await startRedis();
      ctx.defer(() => redis.proc.stop());
      return await startProxy(ctx.root, label, port, {
        ...proxyEnv(port, origin.url),
        CACHE_BACKEND: "redis",
        REDIS_URL: redis.url,
      });
    }),
  };
}

/** nginx (one worker, upstream keep-alive) in front of `origin`; `cache` turns on proxy_cache. */
export function nginxTarget(ctx: BenchContext, origin: Origin, cache = false): Target {
  return {
    label: "nginx",
    requires: ["nginx"],
    start: onFreePort((port) =>
      startNginxReverse({
        dir: `${ctx.tmpDir}/nginx`,
        listenPort: port,
        upstreamPort: origin.port,
        keepalive: 64,
        cache,
      })
    ),
  };
}

/** HAProxy (one thread, connection reuse) in front of `origin`; `cache` turns on its cache. */
export function haproxyTarget(ctx: BenchContext, origin: Origin, cache = false): Target {
  return {
    label: "haproxy",
    requires: ["haproxy"],
    start: onFreePort((port) =>
      startHaproxyReverse({
        dir: `${ctx.tmpDir}/haproxy`,
        listenPort: port,
        upstreamPort: origin.port,
        cache,
      })
    ),
  };
}

/** Caddy (one core, keep-alive to the origin) in front of `origin`. */
export function caddyTarget(ctx: BenchContext, origin: Origin): Target {
  return {
    label: "caddy",
    requires: ["caddy"],
    start: onFreePort((port) =>
      startCaddyReverse({ dir: `${ctx.tmpDir}/caddy`, listenPort: port, upstreamPort: origin.port })
    ),
  };
}

/** A JavaScript peer on Node, installed on first use. */
export function peerTarget(ctx: BenchContext, peer: PeerSpec, origin: Origin): Target {
  return {
    label: peer.label,
    requires: ["node", "npm"],
    start: onFreePort(async (port) => {
      await ensurePeersInstalled(ctx.root, ctx.log);
      return await startPeer(ctx.root, peer, port, origin.url);
    }),
  };
}
