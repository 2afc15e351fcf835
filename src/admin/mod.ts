/**
 * The proxy's own endpoints — `/healthz`, `/proxy-stats`, `/metrics`,
 * `POST /proxy-reload`, `PURGE <url>` and `POST /proxy-cache/purge` — as one
 * Hono app behind the admin guard (`/healthz` stays open for load
 * balancers). Only origin-form requests addressed to the proxy reach it.
 *
 * @module
 */
import { plainText } from "../respond/mod.ts";
import { Hono, type MiddlewareHandler } from "hono";
import type { ConnInfo, RequestContext } from "../context/mod.ts";
import {
  PROMETHEUS_CONTENT_TYPE,
  type ProxyStats,
  renderPrometheus,
  type StatsCluster,
} from "../stats/mod.ts";

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
]);

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
}

const text = (status: number, body: string) => plainText(status, body);

export function createAdmin(o: AdminOptions): Hono<AdminEnv> {
  const { stats, cluster } = o;
  const admin = new Hono<AdminEnv>();
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
  admin.all("*", () => text(405, "method not allowed on this endpoint"));
  return admin;
}
