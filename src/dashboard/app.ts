/**
 * The dashboard's Hono app: the embedded UI, a JSON API and one
 * server-sent-events stream (`/api/events`) for logs, status, live proxy
 * numbers and load test progress.
 *
 * @module
 */
import { Hono } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { APP_CSS, APP_JS, INDEX_HTML, UPLOT_CSS, UPLOT_JS } from "./assets/embedded.ts";
import { EventHub, sseResponse } from "./events.ts";
import { BusyError, FormError, LoadtestManager } from "./loadtests.ts";
import { guard, safeEqual, SESSION_COOKIE, Sessions } from "./security.ts";
import { SettingsStore } from "./settings.ts";
import { type ProxyCommand, ProxySupervisor, StateError } from "./supervisor.ts";

export interface DashboardOptions {
  /** The `.env` file the editor saves and the proxy is started with. */
  envFile: string;
  /** How to run `proxy serve` (see selfServeCommand). */
  proxyCommand: ProxyCommand;
  /** Token required for the API; must be set when not bound to loopback. */
  token?: string;
  /** Accept only loopback Host headers (bound to 127.0.0.1/::1). */
  loopbackOnly: boolean;
  /** Load test history file (default: `.proxy-dashboard/history.json` beside the .env). */
  historyFile?: string;
  /** /proxy-stats poll interval (default 1000 ms). */
  statsIntervalMs?: number;
  /** Wait after SIGTERM before SIGKILL when stopping the proxy (default 15 s). */
  stopTimeoutMs?: number;
  /**
   * Ask the child for one-line text logs (LOG_FORMAT=pretty) unless the .env
   * sets LOG_FORMAT: its "auto" means JSON on a pipe, which reads badly in the
   * log panel. Leave false when the dashboard's own environment sets LOG_FORMAT.
   */
  readableChildLogs?: boolean;
}

export interface Dashboard {
  readonly app: Hono;
  readonly fetch: (req: Request) => Response | Promise<Response>;
  readonly supervisor: ProxySupervisor;
  readonly loadtests: LoadtestManager;
  /** Stops the proxy child and any load test, ends event streams. */
  close(): Promise<void>;
}

/** The default history file: `.proxy-dashboard/history.json` in the .env file's folder. */
export function defaultHistoryFile(envFile: string): string {
  const i = Math.max(envFile.lastIndexOf("/"), envFile.lastIndexOf("\\"));
  const dir = i >= 0 ? envFile.slice(0, i) : ".";
  return `${dir || "/"}/.proxy-dashboard/history.json`;
}

function asset(body: string, type: string) {
  return () =>
    new Response(body, {
      headers: { "content-type": type, "cache-control": "no-cache" },
    });
}

/** Reads a JSON object body; undefined when it is not one. */
async function jsonObject(req: Request): Promise<Record<string, unknown> | undefined> {
  try {
    const v = await req.json();
    return v !== null && typeof v === "object" && !Array.isArray(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Builds the dashboard (reads the load test history) without listening anywhere. */
export async function createDashboard(options: DashboardOptions): Promise<Dashboard> {
  const hub = new EventHub();
  const sessions = new Sessions();
  const settings = new SettingsStore(options.envFile);
  const supervisor = new ProxySupervisor({
    command: options.proxyCommand,
    envFile: options.envFile,
    hub,
    statsIntervalMs: options.statsIntervalMs,
    stopTimeoutMs: options.stopTimeoutMs,
    adminToken: () => adminToken,
    childEnv: async (): Promise<Record<string, string>> =>
      options.readableChildLogs && !(await settings.values()).LOG_FORMAT
        ? { LOG_FORMAT: "pretty" }
        : {},
  });
  // Kept in step with the .env so the stats poller can pass ADMIN_TOKEN.
  let adminToken: string | undefined = (await settings.values()).ADMIN_TOKEN || undefined;
  const loadtests = new LoadtestManager({
    hub,
    historyFile: options.historyFile ?? defaultHistoryFile(options.envFile),
  });
  await loadtests.load();

  const app = new Hono();
  app.use("*", guard({ token: options.token, loopbackOnly: options.loopbackOnly }, sessions));
  app.onError((err, c) => c.json({ error: err.message }, 500));
  app.notFound((c) => c.json({ error: `no route ${c.req.method} ${c.req.path}` }, 404));

  // ── UI ──
  app.get("/", asset(INDEX_HTML, "text/html; charset=utf-8"));
  app.get("/assets/app.js", asset(APP_JS, "text/javascript; charset=utf-8"));
  app.get("/assets/app.css", asset(APP_CSS, "text/css; charset=utf-8"));
  app.get("/assets/uplot.js", asset(UPLOT_JS, "text/javascript; charset=utf-8"));
  app.get("/assets/uplot.css", asset(UPLOT_CSS, "text/css; charset=utf-8"));

  // ── session ──
  app.get("/api/session", (c) =>
    c.json({
      token_required: options.token !== undefined,
      authenticated: true, // the guard let us through
      session: getCookie(c, SESSION_COOKIE) !== undefined,
    }));
  app.post("/api/login", async (c) => {
    const body = await jsonObject(c.req.raw);
    if (options.token === undefined) return c.json({ ok: true, token_required: false });
    if (typeof body?.token !== "string" || !safeEqual(body.token, options.token)) {
      return c.json({ error: "wrong token" }, 401);
    }
    setCookie(c, SESSION_COOKIE, sessions.create(), {
      httpOnly: true,
      sameSite: "Strict",
      path: "/",
      secure: new URL(c.req.url).protocol === "https:",
    });
    return c.json({ ok: true });
  });
  app.post("/api/logout", (c) => {
    sessions.delete(getCookie(c, SESSION_COOKIE));
    deleteCookie(c, SESSION_COOKIE, { path: "/" });
    return c.json({ ok: true });
  });

  // ── proxy process ──
  app.get("/api/status", (c) =>
    c.json({
      proxy: supervisor.status(),
      env_file: options.envFile,
      loadtest: loadtests.current ? { id: loadtests.current.id } : null,
    }));
  const proxyAction = (fn: () => Promise<unknown>) => async (c: import("hono").Context) => {
    try {
      await fn();
      return c.json({ proxy: supervisor.status() });
    } catch (err) {
      if (err instanceof StateError) {
        return c.json({ error: err.message, proxy: supervisor.status() }, 409);
      }
      return c.json({ error: (err as Error).message, proxy: supervisor.status() }, 500);
    }
  };
  app.post("/api/proxy/start", proxyAction(() => supervisor.start()));
  app.post("/api/proxy/stop", proxyAction(() => supervisor.stop()));
  app.post("/api/proxy/restart", proxyAction(() => supervisor.restart()));
  app.post("/api/proxy/backends/:id/:action{drain|enable}", async (c) => {
    try {
      const action = c.req.param("action") as "drain" | "enable";
      const r = await supervisor.backendAction(c.req.param("id"), action);
      return c.json(r.body as Record<string, unknown>, r.status as 200);
    } catch (err) {
      if (err instanceof StateError) return c.json({ error: err.message }, 409);
      return c.json({ error: `the proxy did not answer: ${(err as Error).message}` }, 502);
    }
  });
  app.get("/api/logs", (c) => c.json({ lines: supervisor.logs() }));
  app.get("/api/stats", (c) => c.json(supervisor.stats()));
  app.get("/api/events", () =>
    sseResponse(hub, [
      { event: "status", data: supervisor.status() },
      { event: "logs", data: supervisor.logs().slice(-200) },
      ...(loadtests.current
        ? [{
          event: "loadtest-progress",
          data: { id: loadtests.current.id, progress: loadtests.current.progress },
        }]
        : []),
    ]));

  // ── configuration ──
  app.get("/api/settings", async (c) =>
    c.json({
      env_file: options.envFile,
      settings: await settings.list(),
      restart_needed: supervisor.status().restart_needed,
    }));
  app.put("/api/settings", async (c) => {
    const body = await jsonObject(c.req.raw);
    const values = body?.values;
    if (values === null || typeof values !== "object" || Array.isArray(values)) {
      return c.json({ error: 'send {"values": {"ENV_NAME": "value", ...}}' }, 400);
    }
    const result = await settings.save(values as Record<string, unknown>);
    if (!result.ok) {
      return c.json({ error: "some values were refused", errors: result.errors }, 422);
    }
    adminToken = result.values.ADMIN_TOKEN || undefined;
    supervisor.markRestartNeeded();
    return c.json({ saved: true, restart_needed: supervisor.status().restart_needed });
  });

  // ── load tests ──
  app.get(
    "/api/loadtests",
    (c) => c.json({ runs: loadtests.list(), current: loadtests.current?.id ?? null }),
  );
  app.post("/api/loadtests", async (c) => {
    const body = await jsonObject(c.req.raw);
    if (!body) return c.json({ error: "send the form as a JSON object" }, 400);
    try {
      const run = loadtests.start(body);
      return c.json({ id: run.id, run }, 202);
    } catch (err) {
      if (err instanceof FormError) {
        return c.json({ error: err.message, errors: { [err.field]: err.message } }, 400);
      }
      if (err instanceof BusyError) return c.json({ error: err.message }, 409);
      throw err;
    }
  });
  app.post("/api/loadtests/stop", async (c) => {
    const run = await loadtests.stop();
    if (!run) return c.json({ error: "no load test is running" }, 409);
    return c.json({ run });
  });
  app.get("/api/loadtests/:id", (c) => {
    const run = loadtests.get(c.req.param("id"));
    return run ? c.json({ run }) : c.json({ error: "no such run" }, 404);
  });
  app.delete("/api/loadtests/:id", async (c) => {
    const id = c.req.param("id");
    if (loadtests.current?.id === id) return c.json({ error: "stop the run first" }, 409);
    return (await loadtests.remove(id))
      ? c.json({ deleted: true })
      : c.json({ error: "no such run" }, 404);
  });

  return {
    app,
    fetch: (req: Request) => app.fetch(req),
    supervisor,
    loadtests,
    async close() {
      await loadtests.close();
      await supervisor.close();
      hub.close();
    },
  };
}
