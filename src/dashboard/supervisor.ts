/**
 * Runs `proxy serve` as a child process for the dashboard: start, stop,
 * log capture (a ring buffer, published line by line), and live numbers
 * polled from the child's `/proxy-stats`. A child that dies on its own is
 * reported as stopped with its exit status and its last log lines.
 *
 * @module
 */
import { MONITOR_HEADER } from "../admin/mod.ts";
import type { EventHub } from "./events.ts";

/** The program and arguments that run `proxy serve` (without --env-file). */
export interface ProxyCommand {
  cmd: string;
  args: string[];
  cwd?: string;
  /** Extra environment for the child (it inherits the dashboard's environment). */
  env?: Record<string, string>;
}

export interface SupervisorOptions {
  command: ProxyCommand;
  /** `.env` file passed as --env-file when it exists. */
  envFile: string;
  hub: EventHub;
  /** Log lines kept (default 1000). */
  logLines?: number;
  /** How often /proxy-stats is polled while running (default 1000 ms). */
  statsIntervalMs?: number;
  /** How long a stop waits after SIGTERM before SIGKILL (default 15 s). */
  stopTimeoutMs?: number;
  /** Stats points kept for charts (default 300). */
  seriesLength?: number;
  /** Environment added at each start, after `command.env` (e.g. a log format). */
  childEnv?: () => Promise<Record<string, string>>;
  /** Bearer token for /proxy-stats when the proxy has ADMIN_TOKEN set. */
  adminToken?: () => string | undefined;
}

export interface LogLine {
  seq: number;
  ts: string;
  stream: "stdout" | "stderr" | "dashboard";
  text: string;
}

export type ProxyState = "stopped" | "starting" | "running" | "stopping";

export interface ProxyStatus {
  state: ProxyState;
  pid: number | null;
  started_at: string | null;
  uptime_s: number | null;
  /** Address the proxy reported it listens on (http://host:port). */
  address: string | null;
  /** What it serves, from its start-up line: forward, reverse or both. */
  mode: string | null;
  /** /proxy-stats answered at least once since the start. */
  ready: boolean;
  /** How the last run ended (null while running or before the first run). */
  exit: { code: number; signal: string | null; at: string; expected: boolean } | null;
  /** The last lines of a run that ended, for a proxy that died. */
  last_logs: LogLine[];
  /** Settings were saved while it ran: a restart applies them. */
  restart_needed: boolean;
}

/** One point of the live charts. */
export interface StatsPoint {
  t: number;
  rps: number;
  hit_ratio: number;
  active_connections: number;
  p50_ms: number;
  p99_ms: number;
}

/** Thrown for an action that does not fit the current state (HTTP 409). */
export class StateError extends Error {
  override name = "StateError";
}

/**
 * Log lines go to browsers in batches: at most LOG_BATCH_MAX lines every
 * LOG_BATCH_MS; more are counted as skipped, so a busy access log cannot
 * flood the event stream or the page.
 */
const LOG_BATCH_MS = 100;
const LOG_BATCH_MAX = 200;

const LISTENING = /proxy listening on (https?:\/\/\S+)(?: \((\w+) mode)?/;
// deno-lint-ignore no-control-regex
const CONTROL = /\x1b\[[0-9;?]*[A-Za-z]|[\x00-\x08\x0b-\x1f\x7f]/g;

export class ProxySupervisor {
  readonly #o: SupervisorOptions;
  #child: Deno.ChildProcess | null = null;
  #state: ProxyState = "stopped";
  #startedAt: number | null = null;
  #address: string | null = null;
  #mode: string | null = null;
  #ready = false;
  #exit: ProxyStatus["exit"] = null;
  #lastLogs: LogLine[] = [];
  #restartNeeded = false;
  #logs: LogLine[] = [];
  #seq = 0;
  #pending: LogLine[] = [];
  #skipped = 0;
  #flushTimer: ReturnType<typeof setTimeout> | undefined;
  /** Sequence number of the first log line of the current (or last) run. */
  #runFirstSeq = 1;
  #poller: ReturnType<typeof setInterval> | undefined;
  #polling = false;
  #lastTotal: { at: number; total: number } | null = null;
  #stats: unknown = null;
  #series: StatsPoint[] = [];
  #exited: Promise<void> = Promise.resolve();
  #stopRequested = false;
  #pumps: Promise<void>[] = [];

  constructor(options: SupervisorOptions) {
    this.#o = options;
  }

  status(): ProxyStatus {
    return {
      state: this.#state,
      pid: this.#child?.pid ?? null,
      started_at: this.#startedAt ? new Date(this.#startedAt).toISOString() : null,
      uptime_s: this.#startedAt ? Math.round((Date.now() - this.#startedAt) / 1000) : null,
      address: this.#address,
      mode: this.#mode,
      ready: this.#ready,
      exit: this.#exit,
      last_logs: this.#lastLogs,
      restart_needed: this.#restartNeeded,
    };
  }

  logs(): LogLine[] {
    return this.#logs.slice(-(this.#o.logLines ?? 1000));
  }

  /** The latest /proxy-stats document and the chart series. */
  stats(): { latest: unknown; series: StatsPoint[] } {
    return { latest: this.#stats, series: [...this.#series] };
  }

  get running(): boolean {
    return this.#state === "starting" || this.#state === "running";
  }

  /** Marks that saved settings differ from what the running proxy uses. */
  markRestartNeeded(): void {
    if (!this.running) return;
    this.#restartNeeded = true;
    this.#publishStatus();
  }

  /** Starts `proxy serve`; throws StateError when it already runs. */
  async start(): Promise<ProxyStatus> {
    if (this.#state !== "stopped") throw new StateError(`the proxy is already ${this.#state}`);
    const { command, envFile } = this.#o;
    const args = [...command.args];
    if (await exists(envFile)) args.push("--env-file", envFile);
    this.#runFirstSeq = this.#seq + 1;
    this.#log("dashboard", `starting: ${[command.cmd, ...args].join(" ")}`);
    const env = { ...command.env, ...(await this.#o.childEnv?.()) };
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(command.cmd, {
        args,
        cwd: command.cwd,
        env,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (err) {
      this.#log("dashboard", `could not start the proxy: ${(err as Error).message}`);
      this.#exit = { code: -1, signal: null, at: new Date().toISOString(), expected: false };
      this.#lastLogs = this.#logs.slice(-20);
      this.#publishStatus();
      throw err;
    }
    this.#child = child;
    this.#state = "starting";
    this.#startedAt = Date.now();
    this.#address = null;
    this.#mode = null;
    this.#ready = false;
    this.#exit = null;
    this.#lastLogs = [];
    this.#restartNeeded = false;
    this.#stopRequested = false;
    this.#lastTotal = null;
    this.#stats = null;
    this.#series = [];
    this.#pumps = [
      this.#pump(child.stdout, "stdout"),
      this.#pump(child.stderr, "stderr"),
    ];
    this.#exited = child.status.then(async (s) => {
      await Promise.allSettled(this.#pumps);
      this.#onExit(s);
    });
    this.#poller = setInterval(() => this.#poll(), this.#o.statsIntervalMs ?? 1000);
    this.#publishStatus();
    return this.status();
  }

  /** Stops the proxy (SIGTERM, then SIGKILL after the timeout); throws StateError when stopped. */
  async stop(): Promise<ProxyStatus> {
    const child = this.#child;
    if (!child || this.#state === "stopped") throw new StateError("the proxy is not running");
    if (this.#state !== "stopping") {
      this.#stopRequested = true;
      this.#state = "stopping";
      this.#log("dashboard", "stopping (SIGTERM)");
      this.#publishStatus();
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
      const timer = setTimeout(() => {
        this.#log("dashboard", "did not stop in time: SIGKILL");
        try {
          child.kill("SIGKILL");
        } catch { /* already gone */ }
      }, this.#o.stopTimeoutMs ?? 15_000);
      try {
        await this.#exited;
      } finally {
        clearTimeout(timer);
      }
    } else {
      await this.#exited;
    }
    return this.status();
  }

  async restart(): Promise<ProxyStatus> {
    if (this.running) await this.stop();
    return await this.start();
  }

  /** Stops the child (if any) and the poller. */
  async close(): Promise<void> {
    if (this.#child && this.#state !== "stopped") await this.stop().catch(() => {});
    clearInterval(this.#poller);
    this.#flushLogs();
  }

  #onExit(s: Deno.CommandStatus): void {
    clearInterval(this.#poller);
    this.#poller = undefined;
    const expected = this.#stopRequested;
    this.#exit = { code: s.code, signal: s.signal, at: new Date().toISOString(), expected };
    this.#log(
      "dashboard",
      expected
        ? `stopped (exit code ${s.code}${s.signal ? `, ${s.signal}` : ""})`
        : `the proxy exited unexpectedly (exit code ${s.code}${s.signal ? `, ${s.signal}` : ""})`,
    );
    // Only this run's lines: an earlier run's shutdown is not why this one ended.
    this.#lastLogs = this.#logs.filter((l) => l.seq >= this.#runFirstSeq).slice(-20);
    this.#state = "stopped";
    this.#address = null;
    this.#mode = null;
    this.#child = null;
    this.#startedAt = null;
    this.#ready = false;
    this.#restartNeeded = false;
    this.#publishStatus();
  }

  async #pump(stream: ReadableStream<Uint8Array>, name: "stdout" | "stderr"): Promise<void> {
    let rest = "";
    try {
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
        rest += chunk;
        let nl;
        while ((nl = rest.indexOf("\n")) >= 0) {
          this.#line(name, rest.slice(0, nl));
          rest = rest.slice(nl + 1);
        }
        if (rest.length > 8192) {
          this.#line(name, rest);
          rest = "";
        }
      }
    } catch {
      // the pipe broke because the child died; #onExit reports it
    }
    if (rest) this.#line(name, rest);
  }

  #line(stream: "stdout" | "stderr", raw: string): void {
    const text = raw.replace(CONTROL, "").slice(0, 4096);
    const m = LISTENING.exec(text);
    if (m && this.#state === "starting") {
      this.#address = m[1];
      this.#mode = m[2] ?? null;
      this.#state = "running";
      this.#log(stream, text);
      this.#publishStatus();
      this.#poll();
      return;
    }
    this.#log(stream, text);
  }

  #log(stream: LogLine["stream"], text: string): void {
    const line: LogLine = { seq: ++this.#seq, ts: new Date().toISOString(), stream, text };
    this.#logs.push(line);
    const max = this.#o.logLines ?? 1000;
    // Trimmed in steps, not per line: an access log can write thousands of lines a second.
    if (this.#logs.length > max + (max >> 2)) this.#logs.splice(0, this.#logs.length - max);
    if (this.#pending.length < LOG_BATCH_MAX) this.#pending.push(line);
    else this.#skipped++;
    this.#flushTimer ??= setTimeout(() => this.#flushLogs(), LOG_BATCH_MS);
  }

  /** Sends the lines gathered since the last flush as one event. */
  #flushLogs(): void {
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    if (this.#pending.length === 0 && this.#skipped === 0) return;
    this.#o.hub.publish("logs-append", { lines: this.#pending, skipped: this.#skipped });
    this.#pending = [];
    this.#skipped = 0;
  }

  #publishStatus(): void {
    this.#flushLogs(); // lines that led to a state change arrive before it
    this.#o.hub.publish("status", this.status());
  }

  /** The address to poll: a wildcard bind is reached over loopback. */
  #pollBase(): string | null {
    if (!this.#address) return null;
    const u = new URL(this.#address);
    if (u.hostname === "0.0.0.0") u.hostname = "127.0.0.1";
    if (u.hostname === "[::]") u.hostname = "[::1]";
    return u.origin;
  }

  /** Marks our requests as the monitor's, with ADMIN_TOKEN when the proxy has one. */
  #adminHeaders(): Record<string, string> {
    const token = this.#o.adminToken?.();
    return {
      [MONITOR_HEADER]: "dashboard",
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    };
  }

  /**
   * Drains or enables one backend of the running proxy through its admin API.
   * Resolves with the proxy's status code and answer (JSON or its text).
   */
  async backendAction(
    id: string,
    action: "drain" | "enable",
  ): Promise<{ status: number; body: unknown }> {
    const base = this.#pollBase();
    if (!base || this.#state !== "running") throw new StateError("the proxy is not running");
    const res = await fetch(`${base}/proxy-backends/${encodeURIComponent(id)}/${action}`, {
      method: "POST",
      headers: this.#adminHeaders(),
      signal: AbortSignal.timeout(5000),
    });
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = { error: text.trim() };
    }
    if (res.ok) this.#poll();
    return { status: res.status, body };
  }

  async #poll(): Promise<void> {
    const base = this.#pollBase();
    if (!base || this.#polling || this.#state !== "running") return;
    this.#polling = true;
    try {
      const res = await fetch(`${base}/proxy-stats`, {
        headers: this.#adminHeaders(),
        signal: AbortSignal.timeout(3000),
      });
      if (!res.ok) {
        await res.body?.cancel();
        return;
      }
      const stats = await res.json() as Record<string, unknown>;
      if (this.#state !== "running") return;
      const now = Date.now();
      const total = Number(stats.requests_total ?? 0);
      let rps = 0;
      if (this.#lastTotal && now > this.#lastTotal.at) {
        // Our own polling is marked (MONITOR_HEADER): the proxy leaves it out of its numbers.
        const served = total - this.#lastTotal.total;
        rps = Math.max(0, (served * 1000) / (now - this.#lastTotal.at));
      }
      this.#lastTotal = { at: now, total };
      // The last seconds, not the lifetime: a live chart should move with the load.
      const latency = (stats.latency_recent_ms ?? stats.latency_ms ?? {}) as Record<string, number>;
      const point: StatsPoint = {
        t: now / 1000,
        rps: Math.round(rps * 10) / 10,
        hit_ratio: Number(stats.cache_hit_ratio ?? 0),
        active_connections: Number(stats.active_connections ?? 0),
        p50_ms: Number(latency.p50 ?? 0),
        p99_ms: Number(latency.p99 ?? 0),
      };
      this.#series.push(point);
      const max = this.#o.seriesLength ?? 300;
      if (this.#series.length > max) this.#series.splice(0, this.#series.length - max);
      this.#stats = stats;
      const becameReady = !this.#ready;
      this.#ready = true;
      this.#o.hub.publish("stats", { latest: stats, point });
      if (becameReady) this.#publishStatus();
    } catch {
      // not answering yet, or busy: the next poll tries again
    } finally {
      this.#polling = false;
    }
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/**
 * The command that runs this same program's `serve`: the compiled binary
 * itself, or `deno run -A [--config <deno.json beside main.ts>] <main.ts> serve`
 * from source. The config is named because Deno looks for it from the working
 * directory, which need not be the project's (and without it the bare imports
 * such as "hono" do not resolve).
 */
export function selfServeCommand(
  mainModule: string,
  execPath: string,
  fileExists: (path: string) => boolean = isFile,
): ProxyCommand {
  if (mainModule.includes("deno-compile")) return { cmd: execPath, args: ["serve"] };
  let main = mainModule;
  if (mainModule.startsWith("file:")) {
    main = decodeURIComponent(new URL(mainModule).pathname);
    if (/^\/[A-Za-z]:\//.test(main)) main = main.slice(1); // file:///C:/x → C:/x on Windows
  }
  const config = `${main.replace(/[/\\][^/\\]*$/, "")}/deno.json`;
  const configArgs = fileExists(config) ? ["--config", config] : [];
  return { cmd: execPath, args: ["run", "-A", ...configArgs, main, "serve"] };
}
