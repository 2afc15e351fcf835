/**
 * The proxy's own endpoints — `/healthz`, `/proxy-stats`, `/metrics`,
 * `POST /proxy-reload`, `PURGE <url>`, `POST /proxy-cache/purge`, and
 * `GET /proxy-backends` with `POST /proxy-backends/<id>/drain|enable` — as
 * one Hono app behind the admin guard (`/healthz` stays open for load
 * balancers). Only origin-form requests addressed to the proxy reach it.
 *
 * @module
 */
import { plainText } from "../respond/mod.ts";
import { Hono, type MiddlewareHandler } from "hono";
import type { BackendSnapshot, BalancerSnapshot } from "../balancer/mod.ts";
import type { ConnInfo, RequestContext } from "../context/mod.ts";
import { constantTimeEqual, isLocalRequest, presentedToken } from "../security/mod.ts";
import {
  mergeBackends,
  PROMETHEUS_CONTENT_TYPE,
  type ProxyStats,
  renderPrometheus,
  type StatsCluster,
} from "../stats/mod.ts";
import { Fanout, type ThreadGroup } from "../threads/mod.ts";

/** The admin app's environment: the connection plus the request's context. */
export type AdminEnv = {
  Bindings: ConnInfo & { ctx: RequestContext };
  Variables: { ctx: RequestContext };
};

/** Paths of the proxy's own endpoints (origin-form requests only). */
export const ADMIN_PATHS: ReadonlySet<string> = new Set([
  "/proxy-stats",
  "/metrics",
  "/healthz",
  "/proxy-reload",
  "/proxy-cache/purge",
  "/proxy-backends",
]);

const BACKEND_ACTION = /^\/proxy-backends\/([^/]+)\/(drain|enable)$/;

/** Whether an origin-form path is one of the proxy's own endpoints. */
export function isAdminPath(path: string): boolean {
  return ADMIN_PATHS.has(path) || path.startsWith("/proxy-backends/");
}

/**
 * The header a monitor (the dashboard's once-a-second poller) marks its
 * admin requests with, so they stay out of the request stats and the log.
 */
export const MONITOR_HEADER = "x-proxy-monitor";

/**
 * Recognises a monitor's own admin requests: GETs marked with MONITOR_HEADER
 * and from this machine or carrying ADMIN_TOKEN. Anyone else's mark counts
 * for nothing, so a remote client cannot hide its requests from the log, and
 * actions (reload, purge, drain) are always logged.
 */
export function monitorCheck(
  adminToken: string | undefined,
): (req: Request, ctx: RequestContext) => boolean {
  return (req, ctx) => {
    if (req.method !== "GET" || !req.headers.has(MONITOR_HEADER)) return false;
    if (isLocalRequest(ctx)) return true;
    const given = presentedToken(req.headers);
    return !!adminToken && given !== undefined && constantTimeEqual(given, adminToken);
  };
}

/** The balancer as the admin API sees it. */
export interface BackendControl {
  snapshot(): BalancerSnapshot;
  setDrained(id: string, drained: boolean): BackendSnapshot | undefined;
}

/** A drain or enable passed on to the other serving threads (each has its own balancer). */
interface Drain {
  id: string;
  drained: boolean;
}

export interface AdminOptions {
  stats: ProxyStats;
  /** Present when several threads serve: their numbers are gathered and merged. */
  cluster?: StatsCluster;
  /** Fields of `/healthz` besides status and uptime. */
  health: () => Record<string, unknown>;
  /** The cache's purge routes (PURGE and POST /proxy-cache/purge). */
  purger: Hono;
  /** Loopback or ADMIN_TOKEN (src/security). */
  guard: MiddlewareHandler;
  reload: () => Promise<void>;
  /** The backends of the reverse proxy, for drain/enable. */
  backends?: BackendControl;
  /** The serving threads (SERVE_THREADS > 1): a drain reaches every one before it answers. */
  group?: ThreadGroup;
}

/** The admin app; `close()` ends the channel drains reach other threads on. */
export type Admin = Hono<AdminEnv> & { close(): void };

const text = (status: number, body: string) => plainText(status, body);

/** One backend's snapshot with the request counts other threads hold for it added. */
function sumBackend(
  mine: BackendSnapshot,
  others: (BackendSnapshot | undefined)[],
): BackendSnapshot {
  const out = { ...mine };
  for (const o of others) {
    if (o === undefined || o.url !== mine.url) continue;
    out.requests += o.requests;
    out.errors += o.errors;
    out.in_flight += o.in_flight;
    out.ejections += o.ejections;
  }
  return out;
}

export function createAdmin(o: AdminOptions): Admin {
  const { stats, cluster, backends } = o;
  const admin = new Hono<AdminEnv>();
  const drains = backends && o.group
    ? new Fanout<Drain>(o.group, "drain", (d) => backends.setDrained(d.id, d.drained))
    : undefined;
  admin.use((c, next) => {
    c.set("ctx", c.env.ctx);
    return c.req.path === "/healthz" && c.req.method !== "PURGE" ? next() : o.guard(c, next);
  });
  admin.on("PURGE", "*", (c) => o.purger.fetch(c.req.raw));
  admin.post("/proxy-cache/purge", (c) => o.purger.fetch(c.req.raw));
  admin.get("/healthz", (c) =>
    c.json({
      status: "ok",
      ...o.health(),
      uptime_seconds: Math.floor((Date.now() - stats.startTime.getTime()) / 1000),
    }));
  admin.get(
    "/proxy-stats",
    async (c) => c.json(cluster ? await cluster.snapshot() : stats.snapshot()),
  );
  admin.get(
    "/metrics",
    async () =>
      new Response(renderPrometheus(cluster ? await cluster.metrics() : stats.metrics()), {
        headers: { "content-type": PROMETHEUS_CONTENT_TYPE },
      }),
  );
  admin.post("/proxy-reload", async () => {
    try {
      await o.reload();
    } catch (err) {
      // The previous lists and users stay in force; say why the new ones were not taken.
      return text(500, `reload failed, previous configuration kept: ${(err as Error).message}`);
    }
    return text(200, "reloaded");
  });
  admin.get("/proxy-backends", async (c) => {
    if (!backends) return text(404, "no backends configured");
    if (!cluster) return c.json(backends.snapshot());
    const reports = await cluster.collect();
    return c.json(mergeBackends(reports.map((r) => r.doc.backends as Record<string, unknown>)));
  });

  admin.post("/proxy-backends/:id/:action", async (c) => {
    const m = BACKEND_ACTION.exec(c.req.path);
    if (!m) return text(404, "use POST /proxy-backends/<index|host:port>/drain or /enable");
    const id = decodeURIComponent(m[1]);
    const drained = m[2] === "drain";
    const snapshot = backends?.setDrained(id, drained);
    if (!snapshot) return text(404, `no backend "${id}" (use its index or host:port)`);
    const others = await drains?.others({ id, drained });
    if (others && others.errors.length > 0) {
      const failed = others.errors.join("; ");
      return text(500, `${m[2]} applied here, but not on every serving thread: ${failed}`);
    }
    // The backend as the process sees it: every thread's requests to it.
    return c.json(others ? sumBackend(snapshot, others.values as BackendSnapshot[]) : snapshot);
  });
  admin.all("*", () => text(405, "method not allowed on this endpoint"));
  return Object.assign(admin, { close: () => drains?.close() });
}
