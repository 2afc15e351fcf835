/**
 * CONNECT through the phases: the tunnel request becomes a Request for its
 * authority and a context of kind `connect`, runs the `connect` chain of the
 * one phase list (client ACL → auth → rate limit → filter → target, as a GET
 * meets them), and a refusal comes back as the listener's {@linkcode Refusal}.
 *
 * @module
 */
import type { ConnInfo, RequestContext } from "../context/mod.ts";
import type { Refusal, TunnelRequest } from "../server/tunnel.ts";
import { ADMITTED, type Pipeline } from "./phases.ts";

type ContextOf = (req: Request, conn: ConnInfo, kind: "connect") => RequestContext;

/** `admitTunnel` bound to one pipeline (tests). */
export function tunnelAdmission(
  pipeline: Pipeline,
  contextOf: ContextOf,
): (req: TunnelRequest) => Promise<Refusal | undefined> {
  return (t) => admitTunnel(pipeline, contextOf, t);
}

/** Undefined when the tunnel may open, else the refusal. */
export async function admitTunnel(
  pipeline: Pipeline,
  contextOf: ContextOf,
  t: TunnelRequest,
): Promise<Refusal | undefined> {
  const { host, port } = t.authority;
  const hostPort = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
  // Not forwarded anywhere: it carries the authority and the headers to the phases.
  const req = new Request(`http://${hostPort}/`, { headers: t.headers });
  const conn: ConnInfo = {
    remoteAddr: t.clientIp,
    remotePort: 0,
    form: "authority",
    secure: false,
  };
  const ctx = contextOf(req, conn, "connect");
  ctx.authority = t.authority;
  const res = await pipeline.connect(req, ctx);
  if (res === ADMITTED) return undefined;
  const headers: Record<string, string> = {};
  res.headers.forEach((v, k) => {
    if (k !== "content-type" && k !== "content-length") headers[k] = v;
  });
  return { status: res.status, reason: (await res.text()).trimEnd(), headers };
}
