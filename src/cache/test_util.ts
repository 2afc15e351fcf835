/**
 * Test-only helpers for the cache tests (not imported by mod.ts): a programmable local origin, a `next` that
 * fetches from it, and a request context.
 */
import { UpstreamError } from "../forward/errors.ts";
import type { Handler, RequestContext } from "../context/mod.ts";

export interface Origin {
  readonly url: string;
  /** Requests seen per path (with query). */
  count(path: string): number;
  /** Request headers of the last request per path. */
  last(path: string): Headers | undefined;
  close(): Promise<void>;
}

export type Route = (req: Request, n: number) => Response | Promise<Response>;

/** Starts a Deno.serve origin on a free port; `routes` maps a path (with query) to a responder. */
export function startOrigin(routes: Record<string, Route>): Origin {
  const counts = new Map<string, number>();
  const lastHeaders = new Map<string, Headers>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const u = new URL(req.url);
    const path = u.pathname + u.search;
    const n = (counts.get(path) ?? 0) + 1;
    counts.set(path, n);
    lastHeaders.set(path, req.headers);
    const route = routes[path] ?? routes[u.pathname];
    if (!route) return new Response("no route", { status: 404 });
    return await route(req, n);
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    count: (p) => counts.get(p) ?? 0,
    last: (p) => lastHeaders.get(p),
    close: () => server.shutdown(),
  };
}

/** The innermost phase for tests: fetch the request's URL, identity-encoded, no redirects. */
export const fetchNext: Handler = async (req, ctx) => {
  const headers = new Headers(req.headers);
  headers.set("accept-encoding", "identity");
  headers.delete("host");
  try {
    return await fetch(ctx.target ?? req.url, {
      method: req.method,
      headers,
      body: req.body,
      redirect: "manual",
    });
  } catch (err) {
    throw new UpstreamError("connect", `upstream unreachable: ${(err as Error).message}`, false, {
      cause: err,
    });
  }
};

export function ctx(): RequestContext {
  return {
    id: crypto.randomUUID(),
    kind: "http",
    conn: { remoteAddr: "127.0.0.1", remotePort: 1, form: "origin", secure: false },
    startedAt: performance.now(),
    clientIp: "127.0.0.1",
  };
}

/** Performs a request through a handler and reads the whole body. */
export async function call(
  handler: Handler,
  url: string,
  init: RequestInit = {},
): Promise<
  { status: number; xcache: string | null; age: string | null; headers: Headers; body: string }
> {
  const c = ctx();
  const res = await handler(new Request(url, init), c);
  const body = await res.text();
  const xcache = res.headers.get("x-cache");
  if (xcache !== null && c.cacheStatus !== xcache) {
    throw new Error(`ctx.cacheStatus ${c.cacheStatus} != X-Cache ${xcache}`);
  }
  return { status: res.status, xcache, age: res.headers.get("age"), headers: res.headers, body };
}
