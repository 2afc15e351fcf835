/**
 * memory: resident memory (VmRSS of the process and its children, from /proc) of the proxy
 * idle with its default settings and lists, with SERVE_THREADS=1 and 2, and what 10,000
 * idle keep-alive client connections add (each sends one request, reads the answer, then
 * idles), read 3 s and 25 s after they opened (the proxy collects a burst's garbage once
 * quiet); nginx (one worker) and Caddy as reverse proxies in front of the test origin, for
 * reference. Issue 14's goals: idle ≤ 100 MiB, +10k idle connections ≤ 100 MiB.
 *
 * @module
 */
import { raiseOpenFileLimit } from "../../src/server/rlimit.ts";
import { startCaddyReverse } from "../lib/caddy.ts";
import { startNginxReverse } from "../lib/nginx.ts";
import { freePort, type Proc } from "../lib/process.ts";
import { startOrigin, startProxy } from "../lib/proxy.ts";
import type { BenchContext, Scenario, ScenarioResult, TargetRow } from "../lib/types.ts";

const MiB = 1024 * 1024;
/** Idle keep-alive connections opened against each target. */
export const IDLE_CONNECTIONS = 10_000;
/** Settling time before the idle reading and the first reading with connections. */
const SETTLE_MS = 3_000;
/**
 * Quiet time before the last reading: the proxy collects a burst's garbage once it has served
 * nothing for 10 s (src/heap), checked every 10 s, so within 20 s.
 */
const QUIET_MS = 22_000;

/** VmRSS in bytes of `pid` and every descendant (nginx's workers, the proxy's none). */
export function treeRss(pid: number): number {
  let total = 0;
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (kb) total += Number(kb[1]) * 1024;
  for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
    let children = "";
    try {
      children = Deno.readTextFileSync(`/proc/${pid}/task/${task.name}/children`);
    } catch { /* the task ended */ }
    for (const child of children.split(" ").filter((c) => c !== "")) {
      try {
        total += treeRss(Number(child));
      } catch { /* the child ended */ }
    }
  }
  return total;
}

/**
 * Opens `count` connections to 127.0.0.1:`port`, each sending `GET path` and reading the
 * start of its answer, then leaves them idle. Returns them (the caller closes them).
 */
export async function openIdle(
  port: number,
  path: string,
  count: number,
): Promise<Deno.TcpConn[]> {
  const request = new TextEncoder().encode(
    `GET ${path} HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\n\r\n`,
  );
  const conns: Deno.TcpConn[] = [];
  const buf = new Uint8Array(4096);
  const BATCH = 200;
  for (let i = 0; i < count; i += BATCH) {
    await Promise.all(
      Array.from({ length: Math.min(BATCH, count - i) }, async () => {
        let conn: Deno.TcpConn | undefined;
        try {
          conn = await Deno.connect({ hostname: "127.0.0.1", port });
          await conn.write(request);
          if (await conn.read(buf) === null) throw new Error("closed");
          conns.push(conn);
        } catch {
          conn?.close();
        }
      }),
    );
  }
  return conns;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Reading {
  idle: number;
  /** 3 s after the connections opened. */
  withIdleSoon: number;
  /** After QUIET_MS more. */
  withIdle: number;
  opened: number;
}

async function measure(proc: Proc, port: number, path: string): Promise<Reading> {
  await sleep(SETTLE_MS);
  const idle = treeRss(proc.pid);
  const conns = await openIdle(port, path, IDLE_CONNECTIONS);
  await sleep(SETTLE_MS);
  const withIdleSoon = treeRss(proc.pid);
  await sleep(QUIET_MS);
  const withIdle = treeRss(proc.pid);
  for (const c of conns) {
    try {
      c.close();
    } catch { /* already closed by the server */ }
  }
  return { idle, withIdleSoon, withIdle, opened: conns.length };
}

function row(target: string, r: Reading): TargetRow {
  const added = r.withIdle - r.idle;
  return {
    target,
    status: "ok",
    note: `idle ${(r.idle / MiB).toFixed(1)} MiB; +${r.opened} idle connections: +${
      (added / MiB).toFixed(1)
    } MiB (${(added / 1024 / Math.max(1, r.opened)).toFixed(1)} KiB each; +${
      ((r.withIdleSoon - r.idle) / MiB).toFixed(1)
    } MiB after 3 s)`,
  };
}

export const scenario: Scenario = {
  name: "memory",
  description: `idle RSS (defaults, SERVE_THREADS=1 and 2) and +${IDLE_CONNECTIONS} idle ` +
    "keep-alive connections, proxy vs nginx and Caddy",
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    raiseOpenFileLimit();
    const rows: TargetRow[] = [];
    const ratios: ScenarioResult["ratios"] = [];
    const readings = new Map<string, Reading>();
    // The proxy as installed: default lists, cache, compression, log; only the port is ours.
    for (
      const [label, threads] of [["proxy (defaults)", undefined], ["proxy threads=1", "1"], [
        "proxy threads=2",
        "2",
      ]] as const
    ) {
      const port = freePort();
      const env: Record<string, string> = { PORT: String(port), HOST: "127.0.0.1" };
      if (threads) env.SERVE_THREADS = threads;
      ctx.log(`memory: ${label}`);
      const proc = await startProxy(ctx.root, label, port, env);
      try {
        const r = await measure(proc, port, "/healthz");
        readings.set(label, r);
        rows.push(row(label, r));
      } finally {
        await proc.stop();
      }
    }
    const origin = await startOrigin(ctx.root);
    ctx.defer(() => origin.proc.stop());
    const peers: [string, (port: number) => Promise<Proc>][] = [
      ["nginx", (port) =>
        startNginxReverse({
          dir: `${ctx.tmpDir}/nginx`,
          listenPort: port,
          upstreamPort: origin.port,
        })],
      ["caddy", (port) =>
        startCaddyReverse({
          dir: `${ctx.tmpDir}/caddy`,
          listenPort: port,
          upstreamPort: origin.port,
        })],
    ];
    for (const [name, start] of peers) {
      // Tools the orchestrator looked for and did not find are skipped; others are tried.
      if (ctx.tools[name] === false) {
        rows.push({ target: name, status: "skipped", note: `${name} not installed` });
        continue;
      }
      const port = freePort();
      ctx.log(`memory: ${name}`);
      let proc: Proc;
      try {
        proc = await start(port);
      } catch (err) {
        rows.push({ target: name, status: "skipped", note: (err as Error).message });
        continue;
      }
      try {
        const r = await measure(proc, port, "/bytes/16");
        readings.set(name, r);
        rows.push(row(name, r));
      } finally {
        await proc.stop();
      }
    }
    const proxy = readings.get("proxy (defaults)")!;
    // Against the goals, as ratios like every other row: ≤ 1.00x meets it.
    ratios.push({ label: "proxy idle RSS/100 MiB goal", value: proxy.idle / MiB / 100 });
    ratios.push({
      label: `proxy +${IDLE_CONNECTIONS} idle connections/100 MiB goal`,
      value: (proxy.withIdle - proxy.idle) / MiB / 100,
    });
    for (const peer of ["nginx", "caddy"]) {
      const p = readings.get(peer);
      if (p) ratios.push({ label: `proxy/${peer} idle RSS`, value: proxy.idle / p.idle });
    }
    return {
      rows,
      ratios,
      notes: [
        "RSS = VmRSS of the process and its children after 3 s idle; connections send one " +
        "GET each (/healthz on the proxy, /bytes/16 through the peers) and then idle; " +
        "their cost is read 25 s after they opened (and 3 s after, in brackets)",
      ],
    };
  },
};
