/**
 * What every request gets around its phases, whatever its kind: the context
 * (request id, client address after TRUSTED_PROXIES) before the first phase,
 * and after the last the X-Request-Id response header, the stats and the
 * access-log line (Pingora's logging phase). Also the one answer to an error
 * a phase threw.
 *
 * @module
 */
import type {
  ConnInfo,
  HitAnswer,
  RequestContext,
  RequestKind,
  RequestView,
} from "../context/mod.ts";
import { UpstreamError } from "../forward/errors.ts";
import type { AccessLog } from "../log/access.ts";
import type { logger } from "../log/mod.ts";
import { plainText } from "../respond/mod.ts";
import { type Cidr, clientIpFrom, isTrustedPeer } from "../security/mod.ts";
import type { ProxyStats } from "../stats/mod.ts";

export interface BookkeepingOptions {
  stats: ProxyStats;
  /** The access log, or undefined when ACCESS_LOG is off. */
  accessLog?: AccessLog;
  /** Application log, for unexpected errors. */
  log: ReturnType<typeof logger>;
  /** TRUSTED_PROXIES: peers whose X-Forwarded-For and X-Request-Id are believed. */
  trusted: readonly Cidr[];
  /** Prefix of generated request ids (this instance). */
  instance: string;
  /** Called when an origin's certificate did not verify (TLS interception counts these). */
  onUpstreamVerificationFailed?: () => void;
}

export interface Bookkeeping {
  /** The context of a request the listener just handed over. */
  /** `uncounted`: the caller counts it later with `begin` (or never: the dashboard's poll). */
  contextOf(
    req: RequestView,
    conn: ConnInfo,
    kind: RequestKind,
    uncounted?: boolean,
  ): RequestContext;
  /** Counts a request whose context was made without (the admin surface, after the monitor check). */
  begin(req: RequestView): void;
  /** X-Request-Id, stats and the access-log line once the response is known; may wrap the body to count it. */
  finish(req: Request, res: Response, ctx: RequestContext): Response;
  /**
   * `finish` for a hit the listener writes itself (the context made
   * uncounted): counts the request and its answer, writes the access-log
   * line, and returns the head with this request's X-Request-Id.
   */
  finishHit(req: RequestView, answer: HitAnswer, ctx: RequestContext, keepAlive: boolean): string;
  /** The answer to an error a phase threw. */
  errorResponse(err: unknown, ctx: RequestContext): Response;
}

/** An X-Request-Id a trusted peer may hand us: visible ASCII, at most 200 characters. */
const REQUEST_ID = /^[\x21-\x7e]{1,200}$/;

/** The path of a request URL (no query), without the cost of `new URL`. */
export function pathOf(url: string): string {
  const p = url.indexOf("/", url.indexOf("//") + 2);
  if (p < 0) return "/";
  const q = url.indexOf("?", p);
  return q < 0 ? url.slice(p) : url.slice(p, q);
}

export function createBookkeeping(o: BookkeepingOptions): Bookkeeping {
  const { stats, accessLog, log, trusted, instance } = o;
  let sequence = 0;

  const idOf = (req: RequestView, conn: ConnInfo): string => {
    if (trusted.length > 0) {
      const given = req.headers.get("x-request-id");
      if (given !== null && REQUEST_ID.test(given) && isTrustedPeer(conn.remoteAddr, trusted)) {
        return given;
      }
    }
    return `${instance}-${(++sequence).toString(36)}`;
  };

  /** The access-log line of one answered request; undefined when ACCESS_LOG is off. */
  const logLine = accessLog && ((
    req: RequestView,
    status: number,
    length: string | null,
    ctx: RequestContext,
    ms: number,
  ) => {
    const target = ctx.conn.form === "absolute" ? req.url : pathOf(req.url);
    const durationMs = Math.round(ms * 1000) / 1000;
    const cache = ctx.cacheStatus ?? "-";
    const backend = ctx.backend ?? "-";
    // The line is built here, not as a template: LogTape would quote every string value.
    accessLog.info(
      `${ctx.clientIp} ${req.method} ${target} ${status} ${
        length ?? "-"
      } ${durationMs}ms ${cache} ${backend} ${ctx.id}`,
      {
        id: ctx.id,
        clientIp: ctx.clientIp,
        method: req.method,
        target,
        status,
        bytes: length === null ? null : Number(length),
        durationMs,
        cache,
        backend,
        userAgent: req.headers.get("user-agent") ?? "",
      },
    );
  });

  return {
    contextOf(req, conn, kind, uncounted) {
      // A tunnel is counted by the listener's tunnel code, with its bytes.
      if (kind !== "connect" && !uncounted) stats.begin(req.method);
      return {
        id: idOf(req, conn),
        conn,
        kind,
        startedAt: performance.now(),
        clientIp: trusted.length === 0
          ? conn.remoteAddr
          : clientIpFrom(conn.remoteAddr, req.headers.get("x-forwarded-for"), trusted),
      };
    },

    begin(req) {
      stats.begin(req.method);
    },

    finish(req, res, ctx) {
      const ms = performance.now() - ctx.startedAt;
      try {
        res.headers.set("x-request-id", ctx.id);
      } catch {
        // Immutable headers (a fetch() response): copy once; a 101 cannot be copied, and needs none.
        if (res.status >= 200) {
          res = new Response(res.body, res);
          res.headers.set("x-request-id", ctx.id);
        }
      }
      stats.end(res.status, ms);
      const length = res.headers.get("content-length");
      if (length !== null) stats.bytesTransferred += Number(length);
      else if (res.body && req.method !== "HEAD") {
        res = countBody(res, (n) => stats.bytesTransferred += n);
      }
      logLine?.(req, res.status, length, ctx, ms);
      return res;
    },

    finishHit(req, answer, ctx, keepAlive) {
      stats.begin(req.method);
      const ms = performance.now() - ctx.startedAt;
      stats.end(answer.status, ms);
      stats.bytesTransferred += answer.contentLength;
      logLine?.(req, answer.status, String(answer.contentLength), ctx, ms);
      return answer.template.render(answer.age, ctx.id, keepAlive);
    },

    errorResponse(err, ctx) {
      if (err instanceof UpstreamError) {
        // An origin whose certificate does not verify is refused, never re-signed: counted here.
        if (
          o.onUpstreamVerificationFailed && /TLS handshake.*certificate/i.test(err.message)
        ) {
          o.onUpstreamVerificationFailed();
        }
        return plainText(err.status, `upstream error: ${err.message}`);
      }
      const status = (err as { status?: number }).status;
      if (typeof status === "number" && status >= 400 && status < 600) {
        return plainText(status, (err as Error).message);
      }
      log.error("unexpected error on {id}: {error}", { id: ctx.id, error: String(err) });
      return plainText(500, "internal proxy error");
    },
  };
}

/** Counts body bytes as they stream to the client (responses without Content-Length). */
function countBody(res: Response, add: (n: number) => void): Response {
  const counted = res.body!.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        add(chunk.byteLength);
        controller.enqueue(chunk);
      },
    }),
  );
  return new Response(counted, {
    status: res.status,
    statusText: res.statusText,
    headers: res.headers,
  });
}
