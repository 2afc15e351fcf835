/**
 * Admin surface for purging, to be mounted behind the admin-token check:
 *
 * - `PURGE <url>` (the Squid/Varnish convention): purges that URL, all its
 *   variants; 200 `{"purged":1}` or 404 `{"purged":0}` when nothing was stored.
 * - `POST /proxy-cache/purge` with JSON `{"url": "…"}`, `{"prefix": "…"}` or
 *   `{"all": true}`: 200 `{"purged": n}`.
 *
 * A purge that could not reach Redis answers 503, so the operator knows
 * shared copies may remain.
 *
 * @module
 */
import { Hono } from "hono";
import type { PurgeTarget } from "./mod.ts";

/** What the routes need from the cache. */
export interface Purger {
  purge(target: PurgeTarget): Promise<number>;
}

function parseTarget(body: unknown): PurgeTarget | string {
  if (typeof body !== "object" || body === null) return "body must be a JSON object";
  const b = body as Record<string, unknown>;
  if (typeof b.url === "string") {
    try {
      new URL(b.url);
    } catch {
      return "url must be an absolute URL";
    }
    return { url: b.url };
  }
  if (typeof b.prefix === "string" && b.prefix.length > 0) return { prefix: b.prefix };
  if (b.all === true) return { all: true };
  return 'expected {"url": "..."}, {"prefix": "..."} or {"all": true}';
}

export function purgeRoutes(cache: Purger): Hono {
  const app = new Hono();
  const run = async (target: PurgeTarget) => {
    try {
      return { n: await cache.purge(target) };
    } catch (err) {
      return { error: `purge failed: ${(err as Error).message}` };
    }
  };
  app.on("PURGE", "*", async (c) => {
    const r = await run({ url: c.req.url });
    if ("error" in r) return c.json({ error: r.error }, 503);
    return c.json({ purged: r.n }, r.n > 0 ? 200 : 404);
  });
  app.post("/proxy-cache/purge", async (c) => {
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      return c.json({ error: "body must be JSON" }, 400);
    }
    const target = parseTarget(body);
    if (typeof target === "string") return c.json({ error: target }, 400);
    const r = await run(target);
    if ("error" in r) return c.json({ error: r.error }, 503);
    return c.json({ purged: r.n });
  });
  return app;
}
