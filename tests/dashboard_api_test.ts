/**
 * The dashboard's HTTP API over real sockets: UI assets, guards (Host,
 * cross-site, token), the settings editor (validation by the config schema,
 * atomic saves, refused line breaks), the proxy child (`main.ts serve`:
 * start, stop, death, live events) and load tests (form errors, background
 * runs, progress events, history across restarts, comparison data).
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { createDashboard, type Dashboard, resolveDashboardOptions } from "../src/dashboard/mod.ts";
import { selfServeCommand } from "../src/dashboard/supervisor.ts";

const MAIN = new URL("../main.ts", import.meta.url).href;

interface Env {
  dir: string;
  envFile: string;
  dashboard: Dashboard;
  base: string;
  server: Deno.HttpServer<Deno.NetAddr>;
  api: (method: string, path: string, body?: unknown, headers?: Record<string, string>) => Promise<
    { status: number; data: Record<string, unknown>; headers: Headers }
  >;
  close: () => Promise<void>;
}

async function setup(
  opts: { envText?: string; token?: string; loopbackOnly?: boolean; dir?: string } = {},
): Promise<Env> {
  const dir = opts.dir ?? await Deno.makeTempDir({ prefix: "dashboard-test-" });
  const envFile = `${dir}/.env`;
  if (opts.envText !== undefined) await Deno.writeTextFile(envFile, opts.envText);
  const dashboard = await createDashboard({
    envFile,
    proxyCommand: selfServeCommand(MAIN, Deno.execPath()),
    token: opts.token,
    loopbackOnly: opts.loopbackOnly ?? true,
    statsIntervalMs: 300,
    stopTimeoutMs: 10_000,
  });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, dashboard.fetch);
  const base = `http://127.0.0.1:${server.addr.port}`;
  const api: Env["api"] = async (method, path, body, headers = {}) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: {
        "x-dashboard": "1",
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
        ...headers,
      },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let data: Record<string, unknown> = {};
    try {
      data = JSON.parse(text);
    } catch {
      data = { text };
    }
    return { status: res.status, data, headers: res.headers };
  };
  return {
    dir,
    envFile,
    dashboard,
    base,
    server,
    api,
    async close() {
      await dashboard.close();
      await server.shutdown();
      if (!opts.dir) await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Reads SSE frames from /api/events until `want` returns true for one; returns all seen. */
async function readEvents(
  base: string,
  want: (event: string, data: unknown) => boolean,
  timeoutMs = 30_000,
  onOpen?: () => unknown,
): Promise<{ event: string; data: unknown }[]> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  const seen: { event: string; data: unknown }[] = [];
  const res = await fetch(`${base}/api/events`, { signal: ac.signal });
  assertEquals(res.headers.get("content-type"), "text/event-stream; charset=utf-8");
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  try {
    await onOpen?.();
    while (true) {
      const { value, done } = await reader.read();
      if (done) throw new Error("event stream ended");
      buf += value;
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const frame = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const event = /^event: (.*)$/m.exec(frame)?.[1];
        const data = /^data: (.*)$/m.exec(frame)?.[1];
        if (!event || data === undefined) continue;
        const parsed = JSON.parse(data);
        seen.push({ event, data: parsed });
        if (want(event, parsed)) return seen;
      }
    }
  } catch (err) {
    if (ac.signal.aborted) {
      throw new Error(`timed out waiting for an event; saw ${seen.map((e) => e.event).join(",")}`);
    }
    throw err;
  } finally {
    clearTimeout(timer);
    await reader.cancel().catch(() => {});
  }
}

/** Status of GET /api/status sent with a chosen Host header over a raw socket. */
async function rawStatus(port: number, host: string): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(
      new TextEncoder().encode(
        `GET /api/status HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`,
      ),
    );
    let text = "";
    const buf = new Uint8Array(4096);
    while (!text.includes("\r\n")) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    return Number(text.split(" ")[1]);
  } finally {
    conn.close();
  }
}

async function waitFor<T>(fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 100));
  }
}

Deno.test("UI: page shell and embedded assets, with security headers", async () => {
  const env = await setup();
  try {
    const page = await fetch(`${env.base}/`);
    const html = await page.text();
    assertEquals(page.status, 200);
    assert(page.headers.get("content-type")!.startsWith("text/html"));
    assert(html.includes("/assets/app.js") && html.includes("Load testing"));
    assert(page.headers.get("content-security-policy")!.includes("default-src 'self'"));
    assertEquals(page.headers.get("x-frame-options"), "DENY");
    for (
      const [path, type, text] of [
        ["/assets/app.js", "text/javascript", "EventSource"],
        ["/assets/app.css", "text/css", ".tiles"],
        ["/assets/uplot.js", "text/javascript", "The MIT License"],
        ["/assets/uplot.css", "text/css", ".uplot"],
      ]
    ) {
      const res = await fetch(`${env.base}${path}`);
      assertEquals(res.status, 200, path);
      assert(res.headers.get("content-type")!.startsWith(type), path);
      assert((await res.text()).includes(text), path);
    }
    const session = await env.api("GET", "/api/session");
    assertEquals(session.data.token_required, false);
    const login = await env.api("POST", "/api/login", { token: "anything" });
    assertEquals(login.data.token_required, false);
    const missing = await env.api("GET", "/api/nope");
    assertEquals(missing.status, 404);
  } finally {
    await env.close();
  }
});

Deno.test("guards: foreign Host, missing custom header, cross-site Origin and Sec-Fetch-Site", async () => {
  const env = await setup();
  try {
    // DNS rebinding: a page on evil.example resolving to 127.0.0.1 (fetch cannot set Host).
    assertEquals(await rawStatus(env.server.addr.port, "evil.example:5000"), 421);
    assertEquals(await rawStatus(env.server.addr.port, "localhost:5000"), 200);
    assertEquals(await rawStatus(env.server.addr.port, "[::1]:5000"), 200);

    const noHeader = await fetch(`${env.base}/api/proxy/stop`, { method: "POST" });
    assertEquals(noHeader.status, 403);
    assert((await noHeader.json()).error.includes("X-Dashboard"));
    const origin = await env.api("POST", "/api/proxy/stop", undefined, {
      origin: "http://evil.example",
    });
    assertEquals(origin.status, 403);
    const site = await env.api("PUT", "/api/settings", { values: {} }, {
      "sec-fetch-site": "cross-site",
    });
    assertEquals(site.status, 403);
    // Same origin passes the guard (and then fails for its own reason: nothing runs).
    const same = await env.api("POST", "/api/proxy/stop", undefined, {
      origin: env.base,
      "sec-fetch-site": "same-origin",
    });
    assertEquals(same.status, 409);
  } finally {
    await env.close();
  }
});

Deno.test("token: API refused without it; Bearer or a login session lets in", async () => {
  const env = await setup({ token: "s3cret-token", loopbackOnly: false });
  try {
    assertEquals((await fetch(`${env.base}/`)).status, 200); // the shell has no data
    await (await fetch(`${env.base}/`)).body?.cancel();
    assertEquals((await env.api("GET", "/api/status")).status, 401);
    assertEquals((await env.api("GET", "/api/settings")).status, 401);
    assertEquals((await env.api("POST", "/api/proxy/start")).status, 401);
    const events = await fetch(`${env.base}/api/events`);
    assertEquals(events.status, 401);
    await events.body?.cancel();
    const who = await env.api("GET", "/api/session", undefined, {
      authorization: "Bearer s3cret-token",
    });
    assertEquals(who.data.token_required, true);
    const bearer = await env.api("GET", "/api/status", undefined, {
      authorization: "Bearer s3cret-token",
    });
    assertEquals(bearer.status, 200);
    const wrong = await env.api("POST", "/api/login", { token: "guess" });
    assertEquals(wrong.status, 401);
    const login = await env.api("POST", "/api/login", { token: "s3cret-token" });
    assertEquals(login.status, 200);
    const cookie = login.headers.get("set-cookie")!;
    assert(cookie.includes("HttpOnly") && cookie.includes("SameSite=Strict"), cookie);
    assert(!cookie.includes("s3cret-token"), "the cookie is a session id, not the token");
    const session = cookie.split(";")[0];
    assertEquals((await env.api("GET", "/api/status", undefined, { cookie: session })).status, 200);
    await env.api("POST", "/api/logout", undefined, { cookie: session });
    assertEquals((await env.api("GET", "/api/status", undefined, { cookie: session })).status, 401);
    // A forged session cookie does not work either.
    const forged = await env.api("GET", "/api/status", undefined, {
      cookie: "proxy_dashboard_session=00",
    });
    assertEquals(forged.status, 401);
  } finally {
    await env.close();
  }
});

Deno.test("the proxy command is the running program itself, compiled or from source", () => {
  assertEquals(selfServeCommand("file:///tmp/deno-compile-proxy/main.ts", "/usr/bin/proxy"), {
    cmd: "/usr/bin/proxy",
    args: ["serve"],
  });
  const none = () => false;
  assertEquals(selfServeCommand("file:///work/my%20proxy/main.ts", "/usr/bin/deno", none), {
    cmd: "/usr/bin/deno",
    args: ["run", "-A", "/work/my proxy/main.ts", "serve"],
  });
  assertEquals(
    selfServeCommand("file:///C:/src/main.ts", "deno.exe", none).args[2],
    "C:/src/main.ts",
  );
  // The project's deno.json is named, so it works from any working directory.
  assertEquals(selfServeCommand(MAIN, "/usr/bin/deno").args, [
    "run",
    "-A",
    "--config",
    new URL("../deno.json", import.meta.url).pathname,
    new URL(MAIN).pathname,
    "serve",
  ]);
});

Deno.test("CLI options: off loopback needs a token; flags beat environment beat .env", () => {
  const noFile = () => {
    throw new Deno.errors.NotFound("no file");
  };
  assertEquals(resolveDashboardOptions([], {}, noFile), {
    host: "127.0.0.1",
    port: 5000,
    envFile: ".env",
    token: undefined,
  });
  try {
    resolveDashboardOptions(["--host", "0.0.0.0"], {}, noFile);
    throw new Error("accepted a public bind without a token");
  } catch (err) {
    assert((err as Error).message.includes("DASHBOARD_TOKEN"), (err as Error).message);
  }
  const viaEnv = resolveDashboardOptions(["--host", "0.0.0.0"], { DASHBOARD_TOKEN: "t" }, noFile);
  assert(viaEnv !== "help" && viaEnv.token === "t");
  const file = () => "DASHBOARD_PORT=5100\nDASHBOARD_TOKEN=fromfile\n";
  const fromFile = resolveDashboardOptions([], {}, file);
  assert(fromFile !== "help" && fromFile.port === 5100 && fromFile.token === "fromfile");
  const flagWins = resolveDashboardOptions(["--port", "5200"], { DASHBOARD_PORT: "5300" }, file);
  assert(flagWins !== "help" && flagWins.port === 5200);
  for (const args of [["--port", "http"], ["--port", "70000"], ["--bogus"]]) {
    try {
      resolveDashboardOptions(args, {}, noFile);
      throw new Error(`accepted ${args}`);
    } catch (err) {
      assertEquals((err as Error).name, "DashboardUsageError", (err as Error).message);
    }
  }
});

Deno.test("proxy dashboard --host 0.0.0.0 without a token refuses to start (exit 2, one line)", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      new URL(MAIN).pathname,
      "dashboard",
      "--host",
      "0.0.0.0",
      "--port",
      "0",
    ],
    env: { DASHBOARD_TOKEN: "" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(out.stderr).trim();
  assertEquals(out.code, 2, err);
  assertEquals(err.split("\n").length, 1, err);
  assert(err.includes("--token") && err.includes("DASHBOARD_TOKEN"), err);
});

Deno.test("settings: listed with defaults, validated by the schema, saved atomically", async () => {
  const env = await setup({ envText: "# keep this comment\nLOG_LEVEL=warn\nCUSTOM_THING=1\n" });
  try {
    const list = await env.api("GET", "/api/settings");
    assertEquals(list.status, 200);
    const settings = list.data.settings as Record<string, unknown>[];
    const port = settings.find((s) => s.env === "PORT")!;
    assertEquals(port.default, "8080");
    assertEquals(port.value, null);
    assert(typeof port.description === "string" && port.description.length > 10);
    assertEquals(settings.find((s) => s.env === "LOG_LEVEL")!.value, "warn");
    assertEquals(settings.find((s) => s.env === "ADMIN_TOKEN")!.secret, true);

    // Invalid values: refused with field errors, the file untouched.
    const before = await Deno.readTextFile(env.envFile);
    const bad = await env.api("PUT", "/api/settings", {
      values: { PORT: "eighty", LOG_LEVEL: "loud" },
    });
    assertEquals(bad.status, 422);
    const errors = bad.data.errors as Record<string, string>;
    assert(errors.PORT && errors.LOG_LEVEL, JSON.stringify(errors));
    assertEquals(await Deno.readTextFile(env.envFile), before);

    // A value with a line break could add a line to .env: refused.
    for (const v of ["8081\nADMIN_TOKEN=x", "a\rb", "a\0b"]) {
      const nl = await env.api("PUT", "/api/settings", { values: { CACHE_PREFIX: v } });
      assertEquals(nl.status, 422, v);
      assert((nl.data.errors as Record<string, string>).CACHE_PREFIX.includes("line break"));
    }
    assertEquals(await Deno.readTextFile(env.envFile), before);

    const unknown = await env.api("PUT", "/api/settings", { values: { NOT_A_SETTING: "1" } });
    assertEquals(unknown.status, 422);
    assertEquals((unknown.data.errors as Record<string, string>).NOT_A_SETTING, "unknown setting");
    const cross = await env.api("PUT", "/api/settings", { values: { TLS_CERT: "/tmp/c.pem" } });
    assertEquals(cross.status, 422, "TLS_CERT without TLS_KEY is refused as a whole");
    assertEquals((await env.api("PUT", "/api/settings", "not json")).status, 400);
    assertEquals((await env.api("PUT", "/api/settings", { values: [1] })).status, 400);
    assertEquals((await env.api("PUT", "/api/settings", { values: { PORT: 9 } })).status, 422);

    // A valid save: comments and unknown keys kept, the value written, no temp file left.
    const good = await env.api("PUT", "/api/settings", {
      values: { PORT: "9090", LOG_LEVEL: "", CACHE_PREFIX: "my cache:" },
    });
    assertEquals(good.status, 200, JSON.stringify(good.data));
    assertEquals(good.data.restart_needed, false);
    const text = await Deno.readTextFile(env.envFile);
    assert(text.startsWith("# keep this comment\n"), text);
    assert(text.includes("CUSTOM_THING=1"), text);
    assert(text.includes("PORT=9090"), text);
    assert(!text.includes("LOG_LEVEL"), "an emptied field goes back to the default");
    assert(text.includes('CACHE_PREFIX="my cache:"'), text);
    const names = [];
    for await (const e of Deno.readDir(env.dir)) names.push(e.name);
    assertEquals(names.filter((n) => n.includes(".tmp-")), []);
    const after = await env.api("GET", "/api/settings");
    const saved = (after.data.settings as Record<string, unknown>[]).find((s) => s.env === "PORT");
    assertEquals(saved!.value, "9090");
  } finally {
    await env.close();
  }
});

Deno.test("settings: a save replaces .env whole (rename), a concurrent reader never sees a partial file", async () => {
  // A big comment (kept by every save) makes a non-atomic write observable: truncate-then-write
  // leaves a moment with an empty or half-written file for whoever reads it then.
  const padding = `# ${"p".repeat(1024 * 1024)}\n`;
  const env = await setup({ envText: `${padding}PORT=8000\n` });
  try {
    const old = await Deno.open(env.envFile, { read: true });
    const oldIno = (await old.stat()).ino;
    const wholeFiles = new Set([`${padding}PORT=8000\n`]);
    let saving = true;
    let reads = 0;
    const torn: number[] = [];
    const reader = (async () => {
      while (saving) {
        const text = await Deno.readTextFile(env.envFile);
        reads++;
        // Every save keeps the padding and ends the file with its PORT line.
        if (!text.startsWith(padding) || !/\nPORT=\d+\n$/.test(text)) torn.push(text.length);
        await new Promise((r) => setTimeout(r, 0));
      }
    })();
    try {
      for (let i = 0; i < 20; i++) {
        const port = String(9000 + i);
        const res = await env.api("PUT", "/api/settings", { values: { PORT: port } });
        assertEquals(res.status, 200, JSON.stringify(res.data));
        wholeFiles.add(`${padding}PORT=${port}\n`);
      }
    } finally {
      saving = false;
      await reader;
    }
    assertEquals(torn, [], `${torn.length} of ${reads} reads saw a partial .env`);
    assert(reads > 0);
    assert(wholeFiles.has(await Deno.readTextFile(env.envFile)));
    // Rename semantics: the path names a new file; the old one, still open, is whole and unchanged.
    assert((await Deno.stat(env.envFile)).ino !== oldIno, "the save wrote into the old file");
    const oldText = new TextDecoder().decode(await new Response(old.readable).arrayBuffer());
    assertEquals(oldText, `${padding}PORT=8000\n`);
  } finally {
    await env.close();
  }
});

Deno.test("backend drain/enable through the dashboard: 409 while the proxy is stopped, 404 for an unknown action", async () => {
  const env = await setup();
  try {
    const r = await env.api("POST", "/api/proxy/backends/127.0.0.1:9001/drain");
    assertEquals(r.status, 409);
    assert(String(r.data.error).includes("not running"), JSON.stringify(r.data));
    assertEquals((await env.api("POST", "/api/proxy/backends/127.0.0.1:9001/delete")).status, 404);
  } finally {
    await env.close();
  }
});

Deno.test("settings: secrets never leave in clear; a masked value saved as shown keeps them", async () => {
  const env = await setup({
    envText: "ADMIN_TOKEN=admin-s3cret\nDASHBOARD_TOKEN=dash-s3cret\n" +
      "REDIS_URL=redis://app:redis-pw@127.0.0.1:6390/2\n",
  });
  try {
    const res = await fetch(`${env.base}/api/settings`, { headers: { "x-dashboard": "1" } });
    const raw = await res.text();
    for (const secret of ["admin-s3cret", "dash-s3cret", "redis-pw"]) {
      assert(!raw.includes(secret), `${secret} in GET /api/settings`);
    }
    const value = (name: string) =>
      (JSON.parse(raw).settings as { env: string; value: string | null }[])
        .find((s) => s.env === name)!.value;
    assertEquals(value("ADMIN_TOKEN"), "********");
    assertEquals(value("DASHBOARD_TOKEN"), "********");
    assertEquals(value("REDIS_URL"), "redis://app:********@127.0.0.1:6390/2");

    // Everything sent back as shown, plus one real change: the secrets stay.
    const same = await env.api("PUT", "/api/settings", {
      values: {
        ADMIN_TOKEN: "********",
        DASHBOARD_TOKEN: "********",
        REDIS_URL: "redis://app:********@127.0.0.1:6390/2",
        LOG_LEVEL: "warn",
      },
    });
    assertEquals(same.status, 200, JSON.stringify(same.data));
    let text = await Deno.readTextFile(env.envFile);
    for (
      const line of ["ADMIN_TOKEN=admin-s3cret", "DASHBOARD_TOKEN=dash-s3cret", "LOG_LEVEL=warn"]
    ) {
      assert(text.includes(line), text);
    }
    assert(text.includes("redis://app:redis-pw@127.0.0.1:6390/2"), text);

    // The masked password stays with its URL when another part of it changes.
    const db = await env.api("PUT", "/api/settings", {
      values: { REDIS_URL: "redis://app:********@127.0.0.1:6390/5" },
    });
    assertEquals(db.status, 200, JSON.stringify(db.data));
    text = await Deno.readTextFile(env.envFile);
    assert(text.includes("REDIS_URL=redis://app:redis-pw@127.0.0.1:6390/5"), text);
    // A masked password for a user it never had is refused, not saved as stars.
    const other = await env.api("PUT", "/api/settings", {
      values: { REDIS_URL: "redis://other:********@127.0.0.1:6390/5" },
    });
    assertEquals(other.status, 422);
    assert((other.data.errors as Record<string, string>).REDIS_URL.includes("type it again"));
    // A new secret is taken as typed.
    const changed = await env.api("PUT", "/api/settings", { values: { ADMIN_TOKEN: "n3w-token" } });
    assertEquals(changed.status, 200);
    assert((await Deno.readTextFile(env.envFile)).includes("ADMIN_TOKEN=n3w-token"));
  } finally {
    await env.close();
  }
});

Deno.test("settings: values round-trip byte for byte through the editor, or are refused", async () => {
  const env = await setup({ envText: "# values\n" });
  try {
    const values = [
      "a\\nb", // a backslash and an n, not a line break
      "tick`tock`",
      `it's "quoted"`,
      "hash #not-a-comment",
      "  spaced  ",
      "$HOME ${PATH}",
      String.raw`C:\dir\new`,
      `"'\``,
    ];
    for (const v of values) {
      const put = await env.api("PUT", "/api/settings", { values: { CACHE_PREFIX: v } });
      assertEquals(put.status, 200, `${JSON.stringify(v)}: ${JSON.stringify(put.data)}`);
      const got = await env.api("GET", "/api/settings");
      const shown = (got.data.settings as { env: string; value: string }[])
        .find((s) => s.env === "CACHE_PREFIX")!.value;
      assertEquals(shown, v);
      // The proxy reads the file with the same parser.
      const { parseDotEnv } = await import("../src/config/mod.ts");
      assertEquals(parseDotEnv(await Deno.readTextFile(env.envFile)).CACHE_PREFIX, v);
    }
    // No quoting of .env reads this back as typed: refused with a reason, the file kept.
    const before = await Deno.readTextFile(env.envFile);
    const hopeless = `"\`#'#\\n"`;
    const put = await env.api("PUT", "/api/settings", { values: { CACHE_PREFIX: hopeless } });
    assertEquals(put.status, 422);
    assert(
      (put.data.errors as Record<string, string>).CACHE_PREFIX.includes("reads back the same"),
      JSON.stringify(put.data),
    );
    assertEquals(await Deno.readTextFile(env.envFile), before);
  } finally {
    await env.close();
  }
});

Deno.test({
  name: "proxy child: start, live status/logs/stats, 409s, restart prompt, stop, and a death",
  async fn() {
    // CACHE_BACKEND=memory: "auto" would probe (and use) a shared Redis on 6379.
    const env = await setup({
      envText: "HOST=127.0.0.1\nPORT=0\nLOG_LEVEL=info\nCACHE_BACKEND=memory\n",
    });
    try {
      assertEquals((await env.api("POST", "/api/proxy/stop")).status, 409);
      // Watch the event stream while starting: status goes to running and log lines arrive.
      let started: Record<string, unknown> = {};
      const seen = await readEvents(
        env.base,
        (event, data) => event === "stats" && (data as { latest: unknown }).latest !== undefined,
        60_000,
        async () => {
          const r = await env.api("POST", "/api/proxy/start");
          assertEquals(r.status, 200, JSON.stringify(r.data));
          started = r.data.proxy as Record<string, unknown>;
        },
      );
      assert(typeof started.pid === "number");
      const events = seen.map((e) => e.event);
      assert(events.includes("logs-append"), events.join(","));
      const running = seen.find((e) =>
        e.event === "status" && (e.data as { state: string }).state === "running"
      );
      assert(running, events.join(","));
      const address = (running.data as { address: string }).address;
      assert(/^http:\/\/127\.0\.0\.1:\d+$/.test(address), address);
      assertEquals((running.data as { mode: string }).mode, "forward");
      const stats = seen.find((e) => e.event === "stats")!.data as {
        latest: Record<string, unknown>;
        point: Record<string, number>;
      };
      assert("requests_total" in stats.latest && "cache_hit_ratio" in stats.latest);
      assert(typeof stats.point.rps === "number");

      assertEquals((await env.api("POST", "/api/proxy/start")).status, 409);
      const status = await env.api("GET", "/api/status");
      const proxy = status.data.proxy as Record<string, unknown>;
      assertEquals(proxy.state, "running");
      assertEquals(proxy.pid, started.pid);
      const logs = await env.api("GET", "/api/logs");
      assert(
        (logs.data.lines as { text: string }[]).some((l) => l.text.includes("proxy listening on")),
      );
      const statsNow = await env.api("GET", "/api/stats");
      assert((statsNow.data.series as unknown[]).length >= 1);

      // Saving settings while it runs asks for a restart.
      const saved = await env.api("PUT", "/api/settings", { values: { LOG_LEVEL: "warn" } });
      assertEquals(saved.data.restart_needed, true);
      const restarted = await env.api("POST", "/api/proxy/restart");
      assertEquals(restarted.status, 200);
      const newPid = (restarted.data.proxy as { pid: number }).pid;
      assert(newPid !== started.pid);
      assertEquals((restarted.data.proxy as { restart_needed: boolean }).restart_needed, false);

      const stopped = await env.api("POST", "/api/proxy/stop");
      assertEquals(stopped.status, 200);
      const after = stopped.data.proxy as Record<string, unknown>;
      assertEquals(after.state, "stopped");
      assertEquals(after.pid, null);
      assertEquals((after.exit as { expected: boolean }).expected, true);

      // A proxy that dies on its own: shown stopped, with its last lines.
      const again = await env.api("POST", "/api/proxy/start");
      const pid = (again.data.proxy as { pid: number }).pid;
      let lastStatus: unknown;
      await waitFor(async () => {
        const s = (await env.api("GET", "/api/status")).data.proxy as { state: string };
        lastStatus = s;
        return s.state === "running" ? true : undefined;
      }, 60_000).catch((err) => {
        throw new Error(`${err.message}: ${JSON.stringify(lastStatus)}`);
      });
      Deno.kill(pid, "SIGKILL");
      const dead = await waitFor(async () => {
        const s = (await env.api("GET", "/api/status")).data.proxy as Record<string, unknown>;
        return s.state === "stopped" ? s : undefined;
      });
      const exit = dead.exit as { expected: boolean; signal: string };
      assertEquals(exit.expected, false);
      assertEquals(exit.signal, "SIGKILL");
      const last = dead.last_logs as { text: string }[];
      assert(last.some((l) => l.text.includes("exited unexpectedly")), JSON.stringify(last));
      assert(last.some((l) => l.text.includes("proxy listening on")), "its own output is kept");
      assert(!last.some((l) => l.text.includes("SIGTERM")), "not the previous run's lines");
      assertEquals(dead.address, null);
    } finally {
      await env.close();
    }
  },
});

Deno.test("a proxy that cannot start (port taken) is reported stopped with its error", async () => {
  const blocker = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (blocker.addr as Deno.NetAddr).port;
  const env = await setup({ envText: `HOST=127.0.0.1\nPORT=${port}\nCACHE_BACKEND=memory\n` });
  try {
    const r = await env.api("POST", "/api/proxy/start");
    assertEquals(r.status, 200);
    const dead = await waitFor(async () => {
      const s = (await env.api("GET", "/api/status")).data.proxy as Record<string, unknown>;
      return s.state === "stopped" ? s : undefined;
    }, 60_000);
    assertEquals((dead.exit as { code: number }).code, 2);
    const text = (dead.last_logs as { text: string }[]).map((l) => l.text).join("\n");
    assert(text.includes("already in use"), text);
  } finally {
    blocker.close();
    await env.close();
  }
});

Deno.test("load tests: form errors, background run with progress, history across restarts", async () => {
  let missingServed = 0;
  const target = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const missing = new URL(req.url).pathname === "/missing";
    if (missing) missingServed++;
    return new Response("ok", { status: missing ? 404 : 200 });
  });
  const url = `http://127.0.0.1:${target.addr.port}`;
  const dir = await Deno.makeTempDir({ prefix: "dashboard-lt-" });
  let env = await setup({ dir });
  try {
    for (
      const [form, field] of [
        [{ url: "ftp://x/" }, "url"],
        [{ url: "" }, "url"],
        [{ url, requests: "0" }, "requests"],
        [{ url, requests: "many" }, "requests"],
        [{ url, concurrency: "-3" }, "concurrency"],
        [{ url, headers: "NoColonHere" }, "headers"],
        [{ url, headers: 5 }, "headers"],
        [{ url, proxy: "socks5://x:1" }, "proxy"],
        [{ url, rate: "0" }, "rate"],
      ] as [Record<string, unknown>, string][]
    ) {
      const r = await env.api("POST", "/api/loadtests", form);
      assertEquals(r.status, 400, JSON.stringify(form));
      assert(
        (r.data.errors as Record<string, string>)[field],
        `${JSON.stringify(r.data)} for ${field}`,
      );
    }
    assertEquals((await env.api("POST", "/api/loadtests", "[]")).status, 400);
    assertEquals((await env.api("POST", "/api/loadtests/stop")).status, 409);

    // A count-based run, watched over SSE to the end.
    let id = "";
    const seen = await readEvents(env.base, (e) => e === "loadtest-done", 60_000, async () => {
      const r = await env.api("POST", "/api/loadtests", {
        url: `${url}/`,
        mode: "requests",
        requests: "300",
        concurrency: "4",
        headers: "X-Run: one\nAuthorization: Bearer hunter2",
        label: "first",
      });
      assertEquals(r.status, 202, JSON.stringify(r.data));
      id = r.data.id as string;
    });
    const events = seen.map((e) => e.event);
    assert(
      events.includes("loadtest-started") || events.includes("loadtest-progress"),
      events.join(),
    );
    const done = seen.find((e) => e.event === "loadtest-done")!.data as Record<string, unknown>;
    assertEquals(done.id, id);
    assertEquals(done.requests, 300);
    const run = (await env.api("GET", `/api/loadtests/${id}`)).data.run as Record<string, unknown>;
    assertEquals(run.state, "done");
    assertEquals((run.options as { headers: string[][] }).headers, [
      ["X-Run", "one"],
      ["Authorization", "***"],
    ]);
    const report = run.report as Record<string, unknown>;
    assertEquals(report.status, { "200": 300 });
    assert((report.timeline as unknown[]).length >= 1);
    assert((report.latency_percentiles as unknown[]).length > 5);

    // A time-based run: a second start is refused while it runs; stop keeps the partial report.
    const long = await env.api("POST", "/api/loadtests", {
      url: `${url}/missing`,
      mode: "duration",
      duration: "30",
      concurrency: "2",
      label: "second",
    });
    assertEquals(long.status, 202);
    assertEquals((await env.api("POST", "/api/loadtests", { url })).status, 409);
    assertEquals((await env.api("DELETE", `/api/loadtests/${long.data.id}`)).status, 409);
    // Two workers, each sending its next request after the last answer: once the target saw a
    // third request, at least one 404 was received and counted.
    const deadline = Date.now() + 20_000;
    while (missingServed < 3) {
      if (Date.now() > deadline) throw new Error("the load test sent nothing");
      await new Promise((r) => setTimeout(r, 20));
    }
    const stopped = await env.api("POST", "/api/loadtests/stop");
    assertEquals(stopped.status, 200);
    const partial = stopped.data.run as Record<string, unknown>;
    assertEquals(partial.state, "stopped");
    assert(
      ((partial.report as Record<string, unknown>).status as Record<string, number>)["404"] > 0,
    );

    const list = await env.api("GET", "/api/loadtests");
    assertEquals((list.data.runs as { label: string }[]).map((r) => r.label), ["second", "first"]);
    assertEquals(list.data.current, null);

    const saved = await Deno.readTextFile(`${dir}/.proxy-dashboard/history.json`);
    assert(saved.includes('"label":"first"'), "the run was saved");
    assert(!saved.includes("hunter2"), "no credentials in the history file");

    // The history survives a dashboard restart.
    await env.close();
    env = await setup({ dir });
    const kept = await env.api("GET", "/api/loadtests");
    assertEquals((kept.data.runs as { label: string }[]).map((r) => r.label), ["second", "first"]);
    const again = await env.api("GET", `/api/loadtests/${id}`);
    assertEquals(
      ((again.data.run as Record<string, unknown>).report as { requests: number }).requests,
      300,
    );
    assertEquals((await env.api("DELETE", `/api/loadtests/${id}`)).status, 200);
    assertEquals((await env.api("GET", `/api/loadtests/${id}`)).status, 404);
    assertEquals((await env.api("DELETE", `/api/loadtests/${id}`)).status, 404);
    const history = JSON.parse(await Deno.readTextFile(`${dir}/.proxy-dashboard/history.json`));
    assertEquals(history.runs.length, 1);
  } finally {
    await env.close();
    await target.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a broken history file is set aside, not fatal", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dashboard-hist-" });
  await Deno.mkdir(`${dir}/.proxy-dashboard`);
  await Deno.writeTextFile(`${dir}/.proxy-dashboard/history.json`, "{not json");
  const env = await setup({ dir });
  try {
    const list = await env.api("GET", "/api/loadtests");
    assertEquals(list.data.runs, []);
    const names = [];
    for await (const e of Deno.readDir(`${dir}/.proxy-dashboard`)) names.push(e.name);
    assert(names.some((n) => n.startsWith("history.json.broken-")), names.join());
  } finally {
    await env.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("embedded assets are up to date with src/dashboard/ui", async () => {
  const { renderEmbedded } = await import("../src/dashboard/build_assets.ts");
  const current = await Deno.readTextFile(
    new URL("../src/dashboard/assets/embedded.ts", import.meta.url),
  );
  assert(
    current === await renderEmbedded(),
    "run: deno run -A src/dashboard/build_assets.ts",
  );
});
