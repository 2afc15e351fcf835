/**
 * The common shape of a comparison: start several targets that serve the
 * same URL path, check each answers correctly, warm them up, then run wrk
 * against them in alternating rounds (A B C, A B C, ...) so that a slow
 * moment of the shared machine does not fall on one target only, and report
 * medians.
 *
 * @module
 */
import { installHint } from "./tools.ts";
import { freePort, StartError } from "./process.ts";
import { median } from "./stats.ts";
import { forwardProxyPrelude, runWrk, type WrkResult } from "./wrk.ts";
import type { BenchContext, Ratio, TargetRow } from "./types.ts";

export interface Started {
  /** Base URL, e.g. http://127.0.0.1:PORT (no trailing slash). */
  url: string;
  stop(): Promise<void>;
}

export interface Target {
  label: string;
  /** Tools that must be on PATH; the row is skipped with an install hint otherwise. */
  requires?: string[];
  /** Starts the target; throw StartError (with the output tail) when it cannot start. */
  start(): Promise<Started>;
}

export interface CompareOptions {
  /** Path (and query) every target is measured on, e.g. "/bytes/1024". */
  path: string;
  /**
   * Checks one response before measuring: returns a reason when it is wrong,
   * so a proxy that answers 502 quickly is not mistaken for a fast one.
   */
  verify?: (res: Response, body: Uint8Array) => string | undefined;
  headers?: Record<string, string>;
  /**
   * Reads a counter of requests that reached the origin (e.g. from the test
   * origin's /__stats). Read before and after each measured run, so a cache
   * scenario can show how many requests really were hits.
   */
  originCounter?: () => Promise<number>;
  /**
   * Origin base URL when the targets are forward proxies: wrk and the check
   * then send absolute-form requests for `forwardTo + path` to each target.
   */
  forwardTo?: string;
  /** Lua run before wrk's report hook, e.g. a `request` function that varies the path. */
  prelude?: string;
}

export async function compareTargets(
  ctx: BenchContext,
  targets: Target[],
  opts: CompareOptions,
): Promise<TargetRow[]> {
  const rows = new Map<string, TargetRow>();
  const live: { target: Target; url: string; results: WrkResult[]; origin: number }[] = [];

  for (const t of targets) {
    const missing = ["wrk", ...(t.requires ?? [])].find((tool) => !ctx.tools[tool]);
    if (missing) {
      rows.set(t.label, { target: t.label, status: "skipped", note: installHint(missing) });
      continue;
    }
    ctx.log(`starting ${t.label}`);
    let started: Started;
    try {
      started = await t.start();
    } catch (err) {
      const tail = err instanceof StartError && err.tail ? `\n${err.tail}` : "";
      rows.set(t.label, {
        target: t.label,
        status: "failed",
        note: `${t.label} failed to start: ${(err as Error).message}${tail}`,
      });
      continue;
    }
    ctx.defer(() => started.stop());
    const wrong = await check(started.url, opts);
    if (wrong) {
      rows.set(t.label, { target: t.label, status: "failed", note: wrong });
      continue;
    }
    if (ctx.warmupSec > 0) {
      try {
        await runWrk({
          ...wrkBase(ctx, opts),
          url: started.url + opts.path,
          durationSec: ctx.warmupSec,
        });
      } catch (err) {
        rows.set(t.label, { target: t.label, status: "failed", note: (err as Error).message });
        continue;
      }
    }
    live.push({ target: t, url: started.url, results: [], origin: 0 });
  }

  for (let round = 1; round <= ctx.rounds; round++) {
    for (const l of live) {
      if (rows.has(l.target.label)) continue; // failed in an earlier round
      ctx.log(`round ${round}/${ctx.rounds}: ${l.target.label}`);
      try {
        const before = await opts.originCounter?.();
        l.results.push(await runWrk({ ...wrkBase(ctx, opts), url: l.url + opts.path }));
        const after = await opts.originCounter?.();
        if (before !== undefined && after !== undefined) l.origin += after - before;
      } catch (err) {
        rows.set(l.target.label, {
          target: l.target.label,
          status: "failed",
          note: (err as Error).message,
        });
      }
    }
  }

  for (const l of live) {
    if (rows.has(l.target.label)) continue;
    const rs = l.results;
    const errors = rs.reduce((s, r) => s + r.socketErrors + r.non2xx, 0);
    const requests = rs.reduce((s, r) => s + r.requests, 0);
    const notes: string[] = [];
    if (errors > 0) {
      notes.push(`${errors} of ${requests} requests failed (socket errors or non-2xx/3xx)`);
    }
    if (opts.originCounter) {
      // wrk does not count requests still in flight when it stops, the
      // origin does: clamp so a cache-less target reads 0%, not -0.1%.
      const hit = requests > 0 ? Math.max(0, 1 - l.origin / requests) * 100 : 0;
      notes.push(
        `origin served ${l.origin} requests for ${requests} completed (hits ${hit.toFixed(1)}%)`,
      );
    }
    rows.set(l.target.label, {
      target: l.target.label,
      status: "ok",
      rps: median(rs.map((r) => r.rps)),
      p50Ms: median(rs.map((r) => r.p50Ms)),
      p99Ms: median(rs.map((r) => r.p99Ms)),
      errors,
      roundsRps: rs.map((r) => Math.round(r.rps)),
      requests,
      originRequests: opts.originCounter ? l.origin : undefined,
      note: notes.length ? notes.join("; ") : undefined,
    });
  }
  return targets.map((t) => rows.get(t.label)!);
}

function wrkBase(ctx: BenchContext, opts: CompareOptions) {
  return {
    durationSec: ctx.durationSec,
    connections: ctx.connections,
    threads: ctx.threads,
    headers: opts.headers,
    tmpDir: ctx.tmpDir,
    prelude: opts.prelude ??
      (opts.forwardTo ? forwardProxyPrelude(opts.forwardTo + opts.path) : undefined),
  };
}

async function check(targetUrl: string, opts: CompareOptions): Promise<string | undefined> {
  const client = opts.forwardTo ? Deno.createHttpClient({ proxy: { url: targetUrl } }) : undefined;
  const url = (opts.forwardTo ?? targetUrl) + opts.path;
  const via = client ? ` via ${targetUrl}` : "";
  try {
    const res = await fetch(url, {
      headers: { "accept-encoding": "identity", ...opts.headers },
      signal: AbortSignal.timeout(10_000),
      client,
    });
    const body = new Uint8Array(await res.arrayBuffer());
    const wrong = opts.verify
      ? opts.verify(res, body)
      : res.ok
      ? undefined
      : `GET ${url} answered ${res.status}`;
    return wrong && via ? `${wrong}${via}` : wrong;
  } catch (err) {
    return `GET ${url}${via} failed: ${(err as Error).message}`;
  } finally {
    client?.close();
  }
}

/**
 * Ratios of `subject` against each other measured row: requests/s
 * (higher is better for the subject) and p99 (lower is better).
 */
export function ratiosAgainst(rows: TargetRow[], subject: string, others: string[]): Ratio[] {
  const s = rows.find((r) => r.target === subject && r.status === "ok");
  if (!s) return [];
  const out: Ratio[] = [];
  for (const name of others) {
    const o = rows.find((r) => r.target === name && r.status === "ok");
    if (!o || !o.rps || !o.p99Ms) continue;
    out.push({ label: `${subject}/${name} req/s`, value: s.rps! / o.rps });
    out.push({ label: `${subject}/${name} p99`, value: s.p99Ms! / o.p99Ms });
  }
  return out;
}

/** Checks status and exact bytes, so a proxy answering errors fast is not measured. */
export function verifyBytes(path: string, expected: Uint8Array) {
  return (res: Response, body: Uint8Array): string | undefined => {
    if (res.status !== 200) return `GET ${path} answered ${res.status}, want 200`;
    if (body.length !== expected.length || !body.every((b, i) => b === expected[i])) {
      return `GET ${path} returned ${body.length} bytes that differ from the origin's`;
    }
    return undefined;
  };
}

/** Turns "start something on this port" into a compare Target's start(). */
export function onFreePort(start: (port: number) => Promise<{ stop(): Promise<void> }>) {
  return async (): Promise<Started> => {
    const port = freePort();
    const p = await start(port);
    return { url: `http://127.0.0.1:${port}`, stop: () => p.stop() };
  };
}
