/**
 * Test helpers for phases: a context, an innermost handler, and a real
 * Deno.serve server running a composed chain (so a phase is tested over a
 * real socket, through the real `compose`).
 *
 * @module
 */
import type { ConnInfo, Handler, RequestContext, RequestKind, TargetForm } from "../context/mod.ts";

export interface TestContextInit {
  clientIp?: string;
  /** Peer address (default: the client address). */
  peer?: string;
  form?: TargetForm;
  kind?: RequestKind;
  user?: string;
  completed?: Promise<void>;
}

export function testContext(init: TestContextInit = {}): RequestContext {
  const clientIp = init.clientIp ?? "127.0.0.1";
  const conn: ConnInfo = {
    remoteAddr: init.peer ?? clientIp,
    remotePort: 1,
    form: init.form ?? "origin",
    secure: false,
    completed: init.completed,
  };
  return {
    id: "t",
    kind: init.kind ?? "http",
    conn,
    startedAt: performance.now(),
    clientIp,
    user: init.user,
  };
}

/** The innermost handler: 200 "ok". */
export const ok: Handler = () => Promise.resolve(new Response("ok"));

/**
 * Serves `handler` on a free loopback port. The context comes from the
 * request's `x-test-client`, `x-test-peer` and `x-test-form` headers; with
 * `completed`, the context carries Deno.serve's `completed` promise.
 */
export function serveChain(handler: Handler, options: { completed?: boolean } = {}) {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req, info) => {
    const h = req.headers;
    const peer = h.get("x-test-peer") ?? undefined;
    const ctx = testContext({
      clientIp: h.get("x-test-client") ?? peer,
      peer,
      form: (h.get("x-test-form") as TargetForm | null) ?? undefined,
      completed: options.completed ? info.completed : undefined,
    });
    return handler(req, ctx);
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    close: () => server.shutdown(),
  };
}
