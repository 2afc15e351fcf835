/**
 * websocket: one WebSocket, 1,000 mixed messages (text and binary, 1 B–1 MiB,
 * log-uniform sizes from a fixed seed) sent one at a time and echoed by an
 * npm `ws` origin (bench/lib/ws_echo.ts), directly and through this proxy,
 * Caddy and nginx in reverse mode. Both ends are npm `ws` (TCP_NODELAY on;
 * Deno's own WebSocket stalls ~40 ms on Nagle's delay here). Reports messages/s, round-trip percentiles, the run's wall
 * time and the CPU time the middle box spent (utime + stime from
 * /proc/<pid>/stat, its worker processes included), medians over the rounds.
 *
 * @module
 */
import { median } from "../lib/stats.ts";
import { startCaddyReverse } from "../lib/caddy.ts";
import { startNginxReverse } from "../lib/nginx.ts";
import { freePort, type Proc, startProcess } from "../lib/process.ts";
import { proxyEnv, startProxy } from "../lib/proxy.ts";
import { WebSocket } from "ws";
import { hasTool, toolVersion } from "../lib/tools.ts";
import type { BenchContext, Ratio, Scenario, ScenarioResult, TargetRow } from "../lib/types.ts";

const MESSAGES = 1000;
const MAX_SIZE = 1024 * 1024;
const WARMUP_MESSAGES = 50;

/** A running WebSocket endpoint; `pids` are the processes whose CPU counts. */
interface Endpoint {
  url: string;
  pids: number[];
  stop(): Promise<void>;
}

interface WsTarget {
  label: string;
  /** A tool that must be on PATH, else the row is skipped. */
  requires?: string;
  start(): Promise<Endpoint>;
}

/** Deterministic messages: sizes log-uniform in [1, 1 MiB], text and binary alternating. */
export function mixedMessages(count = MESSAGES, seed = 12345): (string | Uint8Array)[] {
  let state = seed >>> 0;
  const random = () => {
    // xorshift32: the same sizes on every run and machine
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 0x1_0000_0000;
  };
  const out: (string | Uint8Array)[] = [];
  for (let i = 0; i < count; i++) {
    const size = Math.max(
      1,
      Math.min(MAX_SIZE, Math.round(Math.exp(random() * Math.log(MAX_SIZE)))),
    );
    if (i % 2 === 0) {
      out.push("abcdefghijklmnopqrstuvwxyz0123456789".repeat(Math.ceil(size / 36)).slice(0, size));
    } else {
      const b = new Uint8Array(size);
      for (let j = 0; j < size; j++) b[j] = (j * 31 + i) & 255;
      out.push(b);
    }
  }
  return out;
}

function sameMessage(sent: string | Uint8Array, got: string | Uint8Array): boolean {
  if (typeof sent === "string") return got === sent;
  if (typeof got === "string") return false;
  const g = got;
  if (g.length !== sent.length) return false;
  for (let i = 0; i < g.length; i++) if (g[i] !== sent[i]) return false;
  return true;
}

export interface RunResult {
  wallMs: number;
  cpuMs: number;
  roundTripsMs: number[];
  errors: number;
}

/** CPU time (user + system) of `pids`, in ms (clock ticks of 10 ms). */
async function cpuMs(pids: number[]): Promise<number> {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
      // Fields after the command name, which is in parentheses and may contain spaces.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks += Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
    } catch {
      // gone
    }
  }
  return ticks * 10;
}

/** Sends each message on one socket and waits for its echo before the next. */
export async function runMessages(
  url: string,
  messages: (string | Uint8Array)[],
  pids: number[],
): Promise<RunResult> {
  const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  ws.on("error", () => {});
  const cpuBefore = await cpuMs(pids);
  const roundTripsMs: number[] = [];
  let errors = 0;
  const started = performance.now();
  for (const m of messages) {
    const t0 = performance.now();
    const echoed = new Promise<Uint8Array | string>((resolve, reject) => {
      const onClose = () => reject(new Error("closed mid-run"));
      ws.once("close", onClose);
      ws.once("message", (data: Uint8Array, binary: boolean) => {
        ws.off("close", onClose);
        resolve(binary ? data : new TextDecoder().decode(data));
      });
    });
    ws.send(m, { binary: typeof m !== "string" });
    if (!sameMessage(m, await echoed)) errors++;
    roundTripsMs.push(performance.now() - t0);
  }
  const wallMs = performance.now() - started;
  const cpuAfter = await cpuMs(pids);
  const closed = new Promise((r) => ws.once("close", r));
  ws.close(1000);
  await closed;
  return { wallMs, cpuMs: cpuAfter - cpuBefore, roundTripsMs, errors };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** The process and its children (nginx's workers). */
async function processTree(pid: number): Promise<number[]> {
  const out = [pid];
  try {
    for await (const task of Deno.readDir(`/proc/${pid}/task`)) {
      const children = await Deno.readTextFile(`/proc/${pid}/task/${task.name}/children`);
      for (const c of children.trim().split(/\s+/)) {
        if (c) out.push(...await processTree(Number(c)));
      }
    }
  } catch {
    // gone
  }
  return out;
}

function endpointOf(proc: Proc, port: number): Endpoint {
  return { url: `ws://127.0.0.1:${port}/ws`, pids: [proc.pid], stop: () => proc.stop() };
}

export interface EchoOrigin {
  port: number;
  url: string;
  proc: Proc;
}

/** The npm ws echo origin (bench/lib/ws_echo.ts) in its own process. */
export async function startEchoOrigin(root: string): Promise<EchoOrigin> {
  const port = freePort();
  const proc = await startProcess({
    name: "ws-echo",
    cmd: Deno.execPath(),
    args: ["run", "-A", `${root}/bench/lib/ws_echo.ts`, String(port)],
    cwd: root,
    readyPort: port,
  });
  return { port, url: `http://127.0.0.1:${port}`, proc };
}

function targets(ctx: BenchContext, origin: EchoOrigin): WsTarget[] {
  return [
    {
      label: "backend",
      start: () =>
        Promise.resolve({
          url: `ws://127.0.0.1:${origin.port}/ws`,
          pids: [],
          stop: async () => {},
        }),
    },
    {
      label: "proxy",
      async start() {
        const port = freePort();
        return endpointOf(
          await startProxy(ctx.root, "proxy", port, proxyEnv(port, origin.url)),
          port,
        );
      },
    },
    {
      label: "caddy",
      requires: "caddy",
      async start() {
        const port = freePort();
        const proc = await startCaddyReverse({
          dir: `${ctx.tmpDir}/caddy`,
          listenPort: port,
          upstreamPort: origin.port,
        });
        return endpointOf(proc, port);
      },
    },
    {
      label: "nginx",
      requires: "nginx",
      async start() {
        const port = freePort();
        const proc = await startNginxReverse({
          dir: `${ctx.tmpDir}/nginx`,
          listenPort: port,
          upstreamPort: origin.port,
          upgrade: true,
        });
        const e = endpointOf(proc, port);
        e.pids = await processTree(proc.pid);
        return e;
      },
    },
  ];
}

export const scenario: Scenario = {
  name: "websocket",
  description: "1,000 mixed WebSocket messages (1 B–1 MiB) echoed: direct, proxy, Caddy, nginx",
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    ctx.log("starting the origin (npm ws echo)");
    const origin = await startEchoOrigin(ctx.root);
    ctx.defer(() => origin.proc.stop());
    const messages = mixedMessages();
    const warmup = messages.slice(0, WARMUP_MESSAGES);
    const bytes = messages.reduce((n, m) => n + m.length, 0);

    const running: { target: WsTarget; endpoint?: Endpoint; runs: RunResult[]; note?: string }[] =
      [];
    for (const target of targets(ctx, origin)) {
      const entry: (typeof running)[number] = { target, runs: [] };
      running.push(entry);
      if (target.requires && !hasTool(target.requires)) {
        entry.note = `${target.requires} not found on PATH`;
        continue;
      }
      try {
        ctx.log(`starting ${target.label}`);
        entry.endpoint = await target.start();
        ctx.defer(() => entry.endpoint!.stop());
        await runMessages(entry.endpoint.url, warmup, entry.endpoint.pids);
      } catch (err) {
        entry.note = `failed to start or warm up: ${(err as Error).message}`;
        entry.endpoint = undefined;
      }
    }
    // Alternating rounds: a slow moment of the machine hits every target alike.
    for (let round = 0; round < ctx.rounds; round++) {
      for (const entry of running) {
        if (!entry.endpoint) continue;
        ctx.log(`round ${round + 1}/${ctx.rounds}: ${entry.target.label}`);
        try {
          entry.runs.push(await runMessages(entry.endpoint.url, messages, entry.endpoint.pids));
        } catch (err) {
          entry.note = `run failed: ${(err as Error).message}`;
        }
      }
    }

    const summary = new Map<string, { wallMs: number; cpuMs: number }>();
    const rows: TargetRow[] = running.map(({ target, runs, note }) => {
      if (runs.length === 0) {
        return {
          target: target.label,
          status: note?.includes("PATH") ? "skipped" : "failed",
          note,
        };
      }
      const wallMs = median(runs.map((r) => r.wallMs));
      const cpu = median(runs.map((r) => r.cpuMs));
      summary.set(target.label, { wallMs, cpuMs: cpu });
      const trips = runs.flatMap((r) => r.roundTripsMs).sort((a, b) => a - b);
      const cpuNote = target.label === "backend" ? "" : `, CPU ${cpu.toFixed(0)} ms`;
      return {
        target: target.label,
        status: "ok",
        rps: MESSAGES / (wallMs / 1000),
        p50Ms: percentile(trips, 50),
        p99Ms: percentile(trips, 99),
        errors: runs.reduce((n, r) => n + r.errors, 0),
        requests: runs.length * MESSAGES,
        roundsRps: runs.map((r) => Math.round(MESSAGES / (r.wallMs / 1000))),
        note: `time ${wallMs.toFixed(0)} ms${cpuNote} (medians of ${runs.length} runs)`,
      };
    });
    const ratios: Ratio[] = [];
    const proxy = summary.get("proxy");
    for (const peer of ["caddy", "nginx"]) {
      const other = summary.get(peer);
      if (!proxy || !other) continue;
      ratios.push({ label: `proxy/${peer} time`, value: proxy.wallMs / other.wallMs });
      if (other.cpuMs > 0) {
        ratios.push({ label: `proxy/${peer} CPU`, value: proxy.cpuMs / other.cpuMs });
      }
    }
    const versions = await Promise.all([
      hasTool("caddy")
        ? toolVersion("caddy", ["version"]).then((v) => `caddy ${v}`)
        : "caddy absent",
      hasTool("nginx") ? toolVersion("nginx", ["-v"]) : "nginx absent",
    ]);
    return {
      rows,
      ratios,
      notes: [
        `${MESSAGES} messages, ${(bytes / 1048576).toFixed(1)} MiB each way, one socket, ` +
        `each echoed before the next; req/s column = messages/s; p50/p99 = round trip`,
        `CPU = utime+stime of the middle box during the run; caddy GOMAXPROCS=1, nginx 1 worker`,
        ...versions,
      ],
    };
  },
};
