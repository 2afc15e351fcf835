/**
 * Load tests started from the dashboard: one at a time, in the background,
 * with live progress published to the event hub, and a history of finished
 * runs kept in a JSON file (written atomically) across dashboard restarts.
 *
 * @module
 */
import { writeFileAtomic } from "../config/mod.ts";
import {
  loadtest,
  type LoadtestOptions,
  OptionsError,
  type Progress,
  type Report,
  resolveOptions,
} from "../loadtest/mod.ts";
import type { EventHub } from "./events.ts";

/** What the form sends. Strings or numbers, as a browser form gives them. */
export interface LoadtestForm {
  url?: unknown;
  mode?: unknown;
  requests?: unknown;
  duration?: unknown;
  concurrency?: unknown;
  method?: unknown;
  body?: unknown;
  headers?: unknown;
  proxy?: unknown;
  rate?: unknown;
  timeout?: unknown;
  label?: unknown;
}

export type RunState = "running" | "done" | "stopped" | "failed";

export interface LoadtestRun {
  id: string;
  label: string;
  state: RunState;
  started_at: string;
  finished_at: string | null;
  options: LoadtestOptions;
  progress: Progress | null;
  report: Report | null;
  error: string | null;
}

/** Summary row of the history list. */
export interface RunSummary {
  id: string;
  label: string;
  state: RunState;
  started_at: string;
  url: string;
  via_proxy: boolean;
  concurrency: number;
  requests: number;
  errors: number;
  rps: number;
  p99_ms: number;
  rate_limited: boolean;
}

export interface LoadtestManagerOptions {
  hub: EventHub;
  /** JSON file for the history (its folder is created when needed). */
  historyFile: string;
  /** Finished runs kept (default 50). */
  maxHistory?: number;
}

/** The form was wrong: `field` names the input to mark. */
export class FormError extends Error {
  override name = "FormError";
  constructor(readonly field: string, message: string) {
    super(message);
  }
}

export class BusyError extends Error {
  override name = "BusyError";
}

const FIELDS_BY_FLAG: Record<string, string> = {
  "--url": "url",
  "--requests": "requests",
  "--duration": "duration",
  "--concurrency": "concurrency",
  "--rate": "rate",
  "--timeout": "timeout",
  "--method": "method",
  "--header": "headers",
  "--proxy": "proxy",
};

function str(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === "number") return String(v);
  if (typeof v !== "string") throw new FormError("_", "form values must be strings or numbers");
  const t = v.trim();
  return t === "" ? undefined : t;
}

function numField(field: string, v: unknown): number | undefined {
  const s = str(v);
  if (s === undefined) return undefined;
  const n = Number(s);
  if (!Number.isFinite(n)) throw new FormError(field, `${field} must be a number`);
  return n;
}

/** Turns form input into library options; throws FormError naming the field. */
export function formToOptions(form: LoadtestForm): LoadtestOptions {
  const timeBased = str(form.mode) === "duration";
  const headers: [string, string][] = [];
  const rawHeaders = form.headers;
  if (rawHeaders !== undefined && rawHeaders !== null && rawHeaders !== "") {
    if (typeof rawHeaders !== "string") {
      throw new FormError("headers", "headers must be text, one Name: value per line");
    }
    for (const line of rawHeaders.split(/\r?\n/)) {
      if (line.trim() === "") continue;
      const i = line.indexOf(":");
      if (i <= 0) {
        throw new FormError("headers", `"${line.slice(0, 40)}" must look like Name: value`);
      }
      headers.push([line.slice(0, i).trim(), line.slice(i + 1).trim()]);
    }
  }
  const body = form.body;
  if (body !== undefined && body !== null && typeof body !== "string") {
    throw new FormError("body", "body must be text");
  }
  const options: LoadtestOptions = {
    url: str(form.url) ?? "",
    requests: timeBased ? undefined : numField("requests", form.requests),
    duration: timeBased ? (numField("duration", form.duration) ?? 10) : undefined,
    concurrency: numField("concurrency", form.concurrency),
    method: str(form.method),
    headers,
    body: body || undefined,
    proxy: str(form.proxy),
    rate: numField("rate", form.rate),
    timeout: numField("timeout", form.timeout),
  };
  try {
    resolveOptions(options);
  } catch (err) {
    if (err instanceof OptionsError) {
      const flag = /--[a-z-]+/.exec(err.message)?.[0] ?? "";
      const field = FIELDS_BY_FLAG[flag] ?? (err.message.includes("URL") ? "url" : "_");
      throw new FormError(field, err.message.replace(/--([a-z-]+)/g, "$1"));
    }
    throw err;
  }
  return options;
}

export class LoadtestManager {
  readonly #o: LoadtestManagerOptions;
  #history: LoadtestRun[] = [];
  #current: { run: LoadtestRun; controller: AbortController; done: Promise<void> } | null = null;
  #writes: Promise<void> = Promise.resolve();
  #loaded = false;

  constructor(options: LoadtestManagerOptions) {
    this.#o = options;
  }

  /** Reads the history file; a missing file is an empty history, a broken one is set aside. */
  async load(): Promise<void> {
    this.#loaded = true;
    let text: string;
    try {
      text = await Deno.readTextFile(this.#o.historyFile);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return;
      throw err;
    }
    try {
      const data = JSON.parse(text);
      if (!Array.isArray(data?.runs)) throw new Error("no runs array");
      this.#history = data.runs.filter((r: LoadtestRun) => r && typeof r.id === "string");
    } catch {
      await Deno.rename(this.#o.historyFile, `${this.#o.historyFile}.broken-${Date.now()}`)
        .catch(() => {});
      this.#history = [];
    }
  }

  get current(): LoadtestRun | null {
    return this.#current?.run ?? null;
  }

  list(): RunSummary[] {
    const runs = this.#current ? [this.#current.run, ...this.#history] : this.#history;
    return runs.map(summarize);
  }

  get(id: string): LoadtestRun | undefined {
    if (this.#current?.run.id === id) return this.#current.run;
    return this.#history.find((r) => r.id === id);
  }

  /** Starts a run in the background; throws FormError or BusyError. */
  start(form: LoadtestForm): LoadtestRun {
    if (this.#current) throw new BusyError("a load test is already running");
    const options = formToOptions(form);
    const label = str(form.label)?.slice(0, 100) ?? "";
    const run: LoadtestRun = {
      id: crypto.randomUUID(),
      label,
      state: "running",
      started_at: new Date().toISOString(),
      finished_at: null,
      options: redactOptions(options),
      progress: null,
      report: null,
      error: null,
    };
    const controller = new AbortController();
    const hub = this.#o.hub;
    const done = loadtest(options, {
      signal: controller.signal,
      progressIntervalMs: 500,
      onProgress: (p) => {
        run.progress = p;
        hub.publish("loadtest-progress", { id: run.id, progress: p });
      },
    }).then(
      (report) => {
        run.report = report;
        run.state = report.aborted ? "stopped" : "done";
      },
      (err) => {
        run.state = "failed";
        run.error = err instanceof Error ? err.message : String(err);
      },
    ).then(async () => {
      run.finished_at = new Date().toISOString();
      this.#history.unshift(run);
      this.#history.splice(this.#o.maxHistory ?? 50);
      this.#current = null;
      await this.#persist();
      hub.publish("loadtest-done", summarize(run));
    });
    this.#current = { run, controller, done };
    hub.publish("loadtest-started", summarize(run));
    return run;
  }

  /** Stops the running test (its partial report is kept). */
  async stop(): Promise<LoadtestRun | null> {
    const cur = this.#current;
    if (!cur) return null;
    cur.controller.abort();
    await cur.done;
    return cur.run;
  }

  /** Waits for the running test, if any, to finish. */
  async settled(): Promise<void> {
    await this.#current?.done;
  }

  async remove(id: string): Promise<boolean> {
    const i = this.#history.findIndex((r) => r.id === id);
    if (i < 0) return false;
    this.#history.splice(i, 1);
    await this.#persist();
    return true;
  }

  async close(): Promise<void> {
    await this.stop();
    await this.#writes;
  }

  #persist(): Promise<void> {
    if (!this.#loaded) return Promise.resolve();
    const snapshot = JSON.stringify({ version: 1, runs: this.#history });
    const file = this.#o.historyFile;
    this.#writes = this.#writes.then(async () => {
      const dir = file.replace(/[/\\][^/\\]*$/, "");
      if (dir && dir !== file) await Deno.mkdir(dir, { recursive: true });
      await writeFileAtomic(file, snapshot);
    }).catch((err) => {
      this.#o.hub.publish("notice", {
        level: "error",
        text: `could not save the load test history to ${file}: ${(err as Error).message}`,
      });
    });
    return this.#writes;
  }
}

const SECRET_HEADERS = /^(authorization|proxy-authorization|cookie|x-api-key)$/i;

function redactUrl(text: string | undefined): string | undefined {
  if (!text) return text;
  try {
    const u = new URL(text);
    if (!u.password) return text;
    u.password = "***";
    return u.href;
  } catch {
    return text;
  }
}

/** The options as kept in the history file and shown: no passwords or credentials. */
function redactOptions(o: LoadtestOptions): LoadtestOptions {
  return {
    ...o,
    url: redactUrl(o.url)!,
    proxy: redactUrl(o.proxy),
    headers: o.headers?.map(([k, v]) => [k, SECRET_HEADERS.test(k) ? "***" : v]),
    body: typeof o.body === "string" ? o.body : undefined,
  };
}

function summarize(r: LoadtestRun): RunSummary {
  return {
    id: r.id,
    label: r.label,
    state: r.state,
    started_at: r.started_at,
    url: r.options.url,
    via_proxy: Boolean(r.options.proxy),
    concurrency: r.options.concurrency ?? 10,
    requests: r.report?.requests ?? r.progress?.requests ?? 0,
    errors: r.report?.errors_total ?? r.progress?.errors ?? 0,
    rps: r.report?.rps ?? r.progress?.current_rps ?? 0,
    p99_ms: r.report?.latency_ms.p99 ?? 0,
    rate_limited: r.report?.rate_limited ?? false,
  };
}
