/**
 * The app's entry points for the listeners — `fetch`, `upgrade`,
 * `admitTunnel` — each a frame around one driver of the phase list: the
 * context first (request id, client address), then the driver, then
 * X-Request-Id, stats and the access-log line. Requests for the proxy itself
 * (PURGE, /healthz, /proxy-stats, …) go to the admin surface instead.
 *
 * @module
 */
import type { ConnInfo, HitFetch, RequestContext } from "../context/mod.ts";
import type { Refusal, TunnelRequest } from "../server/tunnel.ts";
import type { RawUpgrade } from "../server/types.ts";
import { type Bookkeeping, pathOf } from "./bookkeeping.ts";
import { admitTunnel } from "./connect.ts";
import type { Pipeline } from "./phases.ts";

export interface EntryOptions {
  /** The running phase list and bookkeeping (a reload replaces them between requests). */
  live: () => { readonly pipeline: Pipeline; readonly book: Bookkeeping };
  /** The admin surface (Hono), for PURGE and the proxy's own paths. */
  admin: { fetch(req: Request, env: unknown): Response | Promise<Response> };
  /** The proxy's own paths (/healthz, /proxy-stats, /proxy-backends/…). */
  isAdminPath: (path: string) => boolean;
  /** The dashboard's own polling: answered, but neither counted nor logged. */
  isMonitor: (req: Request, ctx: RequestContext) => boolean;
  /** False in PROXY_MODE=reverse: absolute-form requests are then for the gateway itself. */
  forwardProxying: boolean;
}

export interface EntryPoints {
  fetch(req: Request, conn: ConnInfo): Response | Promise<Response>;
  /**
   * `fetch` for a plain fresh hit, without a Request or a Response: the same
   * routing, phases and bookkeeping, or undefined (nothing counted) for
   * anything `fetch` must answer.
   */
  hit: HitFetch;
  upgrade(req: Request, conn: ConnInfo): Promise<RawUpgrade | Response>;
  admitTunnel(req: TunnelRequest): Promise<Refusal | undefined>;
}

export function entryPoints(o: EntryOptions): EntryPoints {
  const { live, admin, isAdminPath, isMonitor, forwardProxying } = o;

  /** RFC 9112 §3.2.2: a gateway serves an absolute-form request for its authority, as origin-form. */
  const routed = (conn: ConnInfo): ConnInfo =>
    !forwardProxying && conn.form === "absolute" ? { ...conn, form: "origin" } : conn;

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
    if (up) {
      // A Response cannot carry 101: the stats count a switched protocol as a success.
      book.finish(req, new Response(null, { status: 200 }), ctx);
      return up;
    }
    // finish() may wrap the body to count it: the wrapped response is the one to send.
    return book.finish(req, res, ctx);
  }

  return {
    fetch(req, conn) {
      conn = routed(conn);
      const { pipeline, book } = live();
      if (req.method === "PURGE" || (conn.form === "origin" && isAdminPath(pathOf(req.url)))) {
        // Counted only once we know this is not the dashboard's poll.
        const ctx = book.contextOf(req, conn, "http", true);
        if (isMonitor(req, ctx)) return admin.fetch(req, { ...conn, ctx });
        book.begin(req);
        return Promise.resolve(admin.fetch(req, { ...conn, ctx }))
          .catch((err) => book.errorResponse(err, ctx))
          .then((res) => book.finish(req, res, ctx));
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
    hit(req, conn, keepAlive) {
      // The same routing as fetch; the admin surface and PURGE are fetch's.
      conn = routed(conn);
      if (conn.form !== "origin" || req.method === "PURGE" || isAdminPath(pathOf(req.url))) {
        return undefined;
      }
      const { pipeline, book } = live();
      const fresh = pipeline.freshHit(req);
      if (fresh === undefined) return undefined;
      // Counted by finishHit once the hit is certain: a request that goes on to fetch is
      // counted there.
      const ctx = book.contextOf(req, conn, "http", true);
      const answer = pipeline.answerHit(req, ctx, fresh);
      if (answer === undefined) return undefined;
      return { head: book.finishHit(req, answer, ctx, keepAlive), body: answer.body };
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
