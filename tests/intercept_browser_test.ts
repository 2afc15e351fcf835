/**
 * Headless Chromium through the intercepting proxy: an HTTPS page with
 * sub-resources (stylesheet, script, image, a fetch, a WebSocket), the proxy's CA
 * trusted by its SPKI hash, every response 200 and every one of them
 * answered by the proxy inside the tunnel (X-Cache present); a reload is
 * served from the cache.
 *
 * Needs /usr/bin/chromium (CI installs it); ignored with a message otherwise.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startProxy } from "./helpers/proxy.ts";
import { TEST_CA_PATH, TEST_CERT, TEST_KEY } from "./helpers/tls.ts";
import { spkiSha256 } from "../src/intercept/mod.ts";
import { fileExists, ignoreUnless } from "./helpers/ignore.ts";

const CHROMIUM = "/usr/bin/chromium";
const ROOT = new URL("../", import.meta.url).pathname;

const haveChromium = fileExists(CHROMIUM);

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>intercepted</title>
<link rel="stylesheet" href="/style.css"><script src="/app.js"></script></head>
<body><h1>HTTPS through the proxy</h1><img src="/logo.svg" alt="logo"><p id="data">…</p><p id="ws">…</p></body></html>`;
const FILES: Record<string, [string, string]> = {
  "/": [PAGE, "text/html; charset=utf-8"],
  "/style.css": ["h1 { color: rgb(10, 120, 60); }", "text/css"],
  "/app.js": [
    `addEventListener("DOMContentLoaded", async () => {
  const r = await fetch("/data.json");
  document.getElementById("data").textContent = (await r.json()).message;
  const ws = new WebSocket("wss://" + location.host + "/ws");
  ws.onopen = () => ws.send("ping over wss");
  ws.onmessage = (e) => { document.getElementById("ws").textContent = e.data; ws.close(); };
  ws.onerror = () => { document.getElementById("ws").textContent = "websocket failed"; };
});`,
    "text/javascript",
  ],
  "/logo.svg": [
    `<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>`,
    "image/svg+xml",
  ],
  "/data.json": [`{"message":"loaded through the intercepting proxy"}`, "application/json"],
};

Deno.test({
  name: "headless Chromium loads an HTTPS page with sub-resources through the intercepting proxy",
  ignore: ignoreUnless(
    "intercept browser",
    haveChromium,
    `${CHROMIUM} is missing (apt-get install chromium)`,
  ),
  // playwright-core keeps timers and pipes of its own past browser.close().
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "intercept-browser-" });
    const caDir = join(tmp, "ca");
    const made = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", join(ROOT, "main.ts"), "ca", "--dir", caDir],
      cwd: ROOT,
      stdout: "null",
      stderr: "inherit",
    }).output();
    assert.equal(made.code, 0);
    const spki = await spkiSha256(await Deno.readTextFile(join(caDir, "ca.pem")));
    const hits = new Map<string, number>();
    const origin = Deno.serve(
      { hostname: "127.0.0.1", port: 0, cert: TEST_CERT, key: TEST_KEY, onListen() {} },
      (req) => {
        const path = new URL(req.url).pathname;
        hits.set(path, (hits.get(path) ?? 0) + 1);
        if (path === "/ws") {
          const { socket, response } = Deno.upgradeWebSocket(req);
          socket.onmessage = (e) => socket.send(`echo: ${e.data}`);
          return response;
        }
        const file = FILES[path];
        if (!file) return new Response("not found\n", { status: 404 });
        return new Response(file[0], {
          headers: { "content-type": file[1], "cache-control": "max-age=60" },
        });
      },
    );
    const proxy = await startProxy({
      env: {
        TLS_INTERCEPT: "on",
        TLS_INTERCEPT_CA_DIR: caDir,
        FORWARD_ALLOW_PRIVATE: "true",
        CONNECT_PORTS: `443,${origin.addr.port}`,
        UPSTREAM_CA_FILE: TEST_CA_PATH,
        CACHE_BACKEND: "memory",
      },
    });
    // deno-lint-ignore no-import-prefix
    const { chromium } = await import("npm:playwright-core@1.65.1");
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        `--proxy-server=${proxy.url}`,
        // Chromium sends loopback names directly unless told otherwise.
        "--proxy-bypass-list=<-loopback>",
        `--ignore-certificate-errors-spki-list=${spki}`,
      ],
    });
    try {
      const page = await browser.newPage();
      const seen: { url: string; status: number; cache: string | null }[] = [];
      page.on("response", (r) => {
        seen.push({ url: r.url(), status: r.status(), cache: r.headers()["x-cache"] ?? null });
      });
      const base = `https://localhost:${origin.addr.port}`;
      const res = await page.goto(`${base}/`, { waitUntil: "networkidle" });
      assert.equal(res?.status(), 200);
      assert.equal(
        await page.textContent("#data"),
        "loaded through the intercepting proxy",
      );
      assert.equal(
        await page.evaluate(`getComputedStyle(document.querySelector("h1")).color`),
        "rgb(10, 120, 60)",
      );
      // A WebSocket (wss://) inside the intercepted tunnel reaches the origin and back.
      await page.waitForFunction(`document.getElementById("ws").textContent !== "…"`);
      assert.equal(await page.textContent("#ws"), "echo: ping over wss");
      const paths = seen.map((s) => new URL(s.url).pathname).sort();
      for (const p of Object.keys(FILES)) assert.ok(paths.includes(p), `${p} loaded: ${paths}`);
      for (const s of seen.filter((s) => !s.url.startsWith("wss:"))) {
        assert.equal(s.status, 200, `${s.url} answered ${s.status}`);
        assert.ok(s.cache, `${s.url} came through the proxy (X-Cache)`);
      }
      // Another browser context (its own HTTP cache) is answered from the proxy's cache.
      const again = await (await browser.newContext()).newPage();
      const hit = await again.goto(`${base}/data.json`);
      assert.equal(hit?.headers()["x-cache"], "HIT");
      assert.equal(hits.get("/data.json"), 1);
      const stats = (await proxy.stats()).intercept;
      assert.ok(stats.connections_intercepted >= 1, JSON.stringify(stats));
      assert.equal(stats.handshake_failures, 0, JSON.stringify(stats));
    } finally {
      await browser.close();
      await proxy.stop();
      await origin.shutdown();
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
