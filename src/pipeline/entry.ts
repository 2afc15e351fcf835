/**
 * The app's entry points for the listeners — `fetch`, `upgrade`,
 * `admitTunnel` — each a frame around one driver of the phase list: the
 * context first (request id, client address), then the driver, then
 * X-Request-Id, stats and the access-log line. Requests for the proxy itself
 * (PURGE, /healthz, /proxy-stats, …) go to the admin surface instead.
 *
 * @module
 */
import type { ConnInfo, RequestContext } from "../context/mod.ts";
import type { Refusal, TunnelRequest } from "../server/tunnel.ts";
import type { RawUpgrade } from "../server/types.ts";
import { isWebSocketUpgrade } from "../server/websocket.ts";
import { type Bookkeeping, pathOf } from "./bookkeeping.ts";
import { admitTunnel } from "./connect.ts";
import type { Pipeline } from "./phases.ts";

export interface EntryOptions {
  /** The running phase list and bookkeeping (a reload replaces them between requests). */
  live: () => { readonly pipeline: Pipeline; readonly book: Bookkeeping };
  /** The admin surface (Hono), for PURGE and the proxy's own paths. */
  admin: { fetch(req: Request, env: unknown): Response | Promise<Response> };
  adminPaths: ReadonlySet<string>;
  /** False in PROXY_MODE=reverse: absolute-form requests are then for the gateway itself. */
  forwardProxying: boolean;
  /** Deno.serve hands WebSocket upgrades to `fetch`; other listeners call `upgrade`. */
  listener: "deno.serve" | "node:http";
}

export interface EntryPoints {
  fetch(req: Request, conn: ConnInfo): Response | Promise<Response>;
  upgrade(req: Request, conn: ConnInfo): Promise<RawUpgrade | Response>;
  admitTunnel(req: TunnelRequest): Promise<Refusal | undefined>;
}

export function entryPoints(o: EntryOptions): EntryPoints {
  const { live, admin, adminPaths, forwardProxying } = o;

  /** An upgrade, on whichever listener: the raw connection when the backend switched protocols. */
  async function upgrade(req: Request, conn: ConnInfo): Promise<RawUpgrade | Response> {
    const { pipeline, book } = live();
    const ctx = book.contextOf(req, conn, "upgrade");
    let res: Response;
    try {
      res = await pipeline.upgrade(req, ctx);
    } catch (err) {
      res = book.errorResponse(err, ctx);
    }
    const up = ctx.upgraded;
    // A Response cannot carry 101: the stats count a switched protocol as a success.
    const status = up ? (up.status < 200 ? 200 : up.status) : res.status;
    const answered = book.finish(req, up ? new Response(null, { status }) : res, ctx);
    return up ?? answered;
  }

  return {
    fetch(req, conn) {
      // RFC 9112 §3.2.2: a gateway serves an absolute-form request for its authority, as origin-form.
      if (!forwardProxying && conn.form === "absolute") conn = { ...conn, form: "origin" };
      const { pipeline, book } = live();
      if (req.method === "PURGE" || (conn.form === "origin" && adminPaths.has(pathOf(req.url)))) {
        const ctx = book.contextOf(req, conn, "http");
        return Promise.resolve(admin.fetch(req, { ...conn, ctx }))
          .catch((err) => book.errorResponse(err, ctx))
          .then((res) => book.finish(req, res, ctx));
      }
      if (o.listener === "deno.serve" && isWebSocketUpgrade(req)) {
        return upgrade(req, conn) as Promise<Response>;
      }
      const ctx = book.contextOf(req, conn, "http");
      let out: Response | Promise<Response>;
      try {
        out = pipeline.http(req, ctx);
      } catch (err) {
        out = book.errorResponse(err, ctx);
      }
      // A fresh hit comes back as a Response, not a promise: answered without a microtask.
      if (out instanceof Response) return book.finish(req, out, ctx);
      return settle(book, req, ctx, out);
    },
    upgrade,
    admitTunnel(t) {
      const { pipeline, book } = live();
      return admitTunnel(pipeline, book.contextOf, t);
    },
  };
}

/** Waits for a driver's answer (no closures per request), then the bookkeeping. */
async function settle(
  book: Bookkeeping,
  req: Request,
  ctx: RequestContext,
  pending: Promise<Response>,
): Promise<Response> {
  let res: Response;
  try {
    res = await pending;
  } catch (err) {
    res = book.errorResponse(err, ctx);
  }
  return book.finish(req, res, ctx);
}
