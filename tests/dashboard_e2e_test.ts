/**
 * The dashboard end to end, as a user drives it in headless Chromium:
 * `main.ts dashboard` as a process, a setting changed and saved (with a
 * refused value first), the proxy started from the page, a load test run
 * through it with results and drawn charts, two runs compared, the proxy
 * stopped. Screenshots of each page go to tests/artifacts/.
 *
 * Needs /usr/bin/chromium (CI installs it); skipped with a message otherwise.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
// Pinned inline (the brief allows it) so deno.json stays free of a test-only package.
// deno-lint-ignore no-import-prefix
import type { Page } from "npm:playwright-core@1.65.1";
import { fileExists, ignoreUnless } from "./helpers/ignore.ts";

const CHROMIUM = "/usr/bin/chromium";
const MAIN = new URL("../main.ts", import.meta.url).pathname;
const ARTIFACTS = new URL("./artifacts/", import.meta.url).pathname;

const haveChromium = fileExists(CHROMIUM);

/** Pixels of a canvas under `selector` close to the colour (r, g, b): a drawn series. */
const COUNT_COLOUR = `(args) => {
  const [selector, r, g, b] = args;
  let n = 0;
  for (const c of document.querySelectorAll(selector + " canvas")) {
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    for (let i = 0; i < d.length; i += 4) {
      if (d[i + 3] > 200 && Math.abs(d[i] - r) < 40 && Math.abs(d[i + 1] - g) < 40 && Math.abs(d[i + 2] - b) < 40) n++;
    }
  }
  return n;
}`;

interface DashboardProcess {
  base: string;
  /** Everything it wrote to stderr so far. */
  output(): string;
  /** SIGTERM, then waits; returns its exit status. */
  stop(): Promise<Deno.CommandStatus>;
}

/**
 * Runs `main.ts dashboard` on port 0 and reads the port from its start-up
 * line, so no other test can take the port between choosing and binding it.
 */
async function startDashboard(envFile: string, token: string): Promise<DashboardProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "dashboard", "--port", "0", "--env-file", envFile],
    stdout: "null",
    stderr: "piped",
    env: { DASHBOARD_TOKEN: token },
  }).spawn();
  let text = "";
  const listening = Promise.withResolvers<string>();
  const draining = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      text += chunk;
      const m = /proxy dashboard listening on (http:\/\/\S+?)\/?\s/.exec(text);
      if (m) listening.resolve(m[1]);
    }
    listening.reject(new Error(`the dashboard exited before listening:\n${text}`));
  })();
  const timer = setTimeout(
    () => listening.reject(new Error(`the dashboard did not start in 60 s:\n${text}`)),
    60_000,
  );
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
    const status = await child.status;
    await draining;
    return status;
  };
  try {
    const base = await listening.promise;
    return { base, output: () => text, stop };
  } catch (err) {
    await stop();
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** Headless Chromium with the flags that keep it quiet and sandbox-free in CI containers. */
async function launchBrowser() {
  // deno-lint-ignore no-import-prefix
  const { chromium } = await import("npm:playwright-core@1.65.1");
  return await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/**
 * Polls a condition from the test side. (page.waitForFunction with a string
 * evaluates it inside the page, which the dashboard's CSP rightly forbids.)
 */
async function until(ok: () => Promise<boolean>, what: string, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * The page fits a phone and a desktop: at 390 px and at 1280 px wide the
 * document is no wider than the window (no horizontal scroll). Screenshots of
 * both go to tests/artifacts/dashboard-<name>-<width>.png; the viewport is left
 * at 1280 px.
 */
async function checkWidths(page: Page, name: string) {
  for (const width of [390, 1280]) {
    await page.setViewportSize({ width, height: 900 });
    // The charts resize on the window's resize event, on the next frame.
    await page.waitForTimeout(400);
    const [scrollWidth, innerWidth] = await page.evaluate(
      "[document.documentElement.scrollWidth, window.innerWidth]",
    ) as number[];
    await page.screenshot({ path: `${ARTIFACTS}dashboard-${name}-${width}.png`, fullPage: true });
    assert(
      scrollWidth <= innerWidth,
      `${name} at ${width} px: the page is ${scrollWidth} px wide (horizontal scroll)`,
    );
  }
}

/** Counts pixels of one colour in the charts under `selector` (evaluated in the page). */
async function pixels(page: Page, selector: string, rgb: number[]): Promise<number> {
  return Number(await page.evaluate(`(${COUNT_COLOUR})(${JSON.stringify([selector, ...rgb])})`));
}

Deno.test({
  name: "dashboard in a browser: config, start proxy, load test through it, compare, stop",
  ignore: ignoreUnless(
    "dashboard in a browser",
    haveChromium,
    `${CHROMIUM} is missing (apt-get install chromium)`,
  ),
  // playwright-core keeps timers and pipes of its own past browser.close().
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await Deno.mkdir(ARTIFACTS, { recursive: true });
    const dir = await Deno.makeTempDir({ prefix: "dashboard-e2e-" });
    const envFile = `${dir}/.env`;
    const body = "x".repeat(1024);
    const origin = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      () => new Response(body, { headers: { "cache-control": "max-age=60" } }),
    );
    const originUrl = `http://127.0.0.1:${origin.addr.port}/data`;
    // A second origin, so the proxy balances between two backends (the Backends panel).
    const origin2 = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      () => new Response("second"),
    );
    const backends = `http://127.0.0.1:${origin.addr.port},http://127.0.0.1:${origin2.addr.port}`;
    // CACHE_BACKEND=memory: "auto" would probe (and use) a shared Redis on 6379.
    // PROXY_MODE=both: a forward proxy for the load test, a gateway to the two backends.
    await Deno.writeTextFile(
      envFile,
      "# e2e\nHOST=127.0.0.1\nPORT=0\nLOG_LEVEL=info\nCACHE_BACKEND=memory\nPROXY_MODE=both\n" +
        `BACKEND_SERVERS=${backends}\nHEALTH_CHECK_PATH=/\nHEALTH_CHECK_INTERVAL=1\nACCESS_LOG=true\n`,
    );
    const dashboard = await startDashboard(envFile, "");
    const browser = await launchBrowser();
    const shot = (page: Page, name: string, fullPage = true) =>
      page.screenshot({ path: `${ARTIFACTS}dashboard-${name}.png`, fullPage });
    let step = "starting the dashboard";
    let failurePage: Page | undefined;
    try {
      const base = dashboard.base;
      const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      const page = await context.newPage();
      failurePage = page;
      const pageErrors: string[] = [];
      page.on("pageerror", (e: Error) => pageErrors.push(e.message));
      page.setDefaultTimeout(60_000);

      // ── home, proxy stopped ──
      step = "home, proxy stopped";
      await page.goto(base);
      await page.locator("#proxy-state", { hasText: "stopped" }).waitFor();
      await page.locator("#live", { hasText: "live" }).waitFor();
      // Nothing ran yet: no numbers, and the charts say why they are empty.
      assertEquals(await page.textContent("#t-total"), "stopped");
      assert(await page.isVisible("#chart-rps .chart-empty"), "empty chart says so");
      assertEquals(await page.textContent("#chart-rps .chart-empty"), "waiting for data");
      await shot(page, "1-home-stopped");
      await checkWidths(page, "home-stopped");

      // ── configuration: a refused value, then a good save ──
      step = "configuration: a refused value, then a good save";
      await page.click('nav a[data-page="config"]');
      await page.locator("#set-FORWARD_ALLOW_PRIVATE").waitFor();
      // The filter narrows the long list to what matches.
      await page.fill("#config-filter", "redis");
      const visible = await page.locator(".setting:not(.filtered-out)").count();
      const all = await page.locator(".setting").count();
      assert(visible >= 3 && visible < all / 3, `${visible} of ${all} settings shown`);
      assert(await page.isVisible("#set-REDIS_URL"));
      assert(await page.isHidden("#set-PORT"));
      await page.fill("#config-filter", "");
      await page.fill("#set-PORT", "not-a-port");
      await page.click("#config-save");
      await page.locator("#err-PORT").filter({ hasText: /./ }).waitFor();
      assert((await page.textContent("#config-result"))!.includes("Not saved"));
      await page.locator("#set-PORT").scrollIntoViewIfNeeded();
      await shot(page, "2-config-refused", false);
      assert(!(await Deno.readTextFile(envFile)).includes("not-a-port"));
      await page.fill("#set-PORT", "0");
      // The proxy refuses private destinations by default; the local origin is one.
      await page.fill("#set-FORWARD_ALLOW_PRIVATE", "true");
      await page.click("#config-save");
      await page.locator("#config-result", { hasText: /^Saved/ }).waitFor(); // not "Not saved"
      const saved = await Deno.readTextFile(envFile);
      assert(saved.includes("FORWARD_ALLOW_PRIVATE=true") && saved.startsWith("# e2e"), saved);
      await shot(page, "3-config-saved");
      await checkWidths(page, "config");

      // ── start the proxy ──
      step = "start the proxy";
      await page.click('nav a[data-page="home"]');
      await page.click("#btn-start");
      await page.locator("#proxy-state", { hasText: "running" }).waitFor();
      await page.locator("#logs", { hasText: "proxy listening on" }).waitFor();
      await until(
        async () => /^\d/.test((await page.textContent("#t-total")) ?? ""),
        "live numbers",
      );
      await page.locator("#chart-rps .chart-empty").waitFor({ state: "hidden" });
      const pid = await page.textContent("#proxy-pid");
      assert(/^\d+$/.test(pid ?? ""), `pid ${pid}`);

      // ── load test through the proxy ──
      step = "load test through the proxy";
      await page.click('nav a[data-page="loadtest"]');
      await page.fill("#lt-url", originUrl);
      await page.click("#lt-use-proxy");
      const proxyUrl = await page.inputValue("#lt-proxy");
      assert(/^http:\/\/127\.0\.0\.1:\d+$/.test(proxyUrl), proxyUrl);
      // A counted run: on a loaded machine a proxy that just started may answer nothing
      // within a short timed run, while a count always gets its responses.
      await page.selectOption("#lt-mode", "requests");
      await page.fill("#lt-requests", "1500");
      await page.fill("#lt-concurrency", "10");
      // Paced so the run lasts about 2 s however fast the machine: the timeline needs points.
      await page.fill("#lt-rate", "750");
      await page.fill("#lt-label", "through proxy");
      await page.click("#lt-run");
      await page.locator("#lt-result-title", { hasText: "through proxy (done)" }).waitFor();
      const statusTable = await page.textContent("#lt-status");
      assert(/200\s*[\d,]+/.test(statusTable!), statusTable!);
      assert(!statusTable!.includes("error"), statusTable!);
      const summary = await page.textContent("#lt-summary");
      assert(summary!.includes(proxyUrl), summary!);
      const proxied = Number(/Responses\s*([\d,]+)/.exec(summary!)![1].replaceAll(",", ""));
      assert(proxied > 0, summary!);
      // Blue series pixels: the charts were drawn, not just their axes.
      const latencyPixels = await pixels(page, "#chart-lt-latency", [37, 99, 235]);
      const timelinePixels = await pixels(page, "#chart-lt-timeline", [37, 99, 235]);
      assert(latencyPixels > 50, `latency chart pixels: ${latencyPixels}`);
      assert(timelinePixels > 20, `timeline chart pixels: ${timelinePixels}`);
      await shot(page, "4-loadtest-result");
      const cpuRow = await page.textContent("#lt-summary");
      assert(/Load generator CPU\s*\d+ % of one core/.test(cpuRow!), cpuRow!);
      await checkWidths(page, "loadtest-result");

      // ── a second run, direct, then compare the two ──
      step = "a second run, direct, then compare the two";
      await page.fill("#lt-proxy", "");
      // A timed run: two seconds give the per-second chart at least two points.
      await page.selectOption("#lt-mode", "duration");
      await page.fill("#lt-duration", "2");
      await page.fill("#lt-label", "direct");
      await page.click("#lt-run");
      await page.locator("#lt-result-title", { hasText: "direct (done)" }).waitFor();
      await page.locator("#lt-history tbody tr").nth(1).waitFor();
      await page.locator("#lt-history tbody tr").nth(0).locator("input").check();
      await page.locator("#lt-history tbody tr").nth(1).locator("input").check();
      await page.click("#lt-compare-btn");
      await page.locator("#lt-compare").waitFor({ state: "visible" });
      const compare = await page.textContent("#lt-compare-table");
      assert(compare!.includes("A: direct") && compare!.includes("B: through proxy"), compare!);
      const cmpPixels = await pixels(page, "#chart-cmp-latency", [37, 99, 235]);
      const cmpPixelsB = await pixels(page, "#chart-cmp-latency", [220, 38, 38]);
      assert(cmpPixels > 50 && cmpPixelsB > 50, `comparison pixels ${cmpPixels}/${cmpPixelsB}`);
      assert(compare!.includes("Load generator CPU"), compare!);
      await shot(page, "5-loadtest-compare");
      await checkWidths(page, "loadtest-compare");
      // "again" puts a past run's settings back in the form.
      await page.locator("#lt-history tbody tr").nth(1).locator("button", { hasText: "again" })
        .click();
      await until(async () => (await page.inputValue("#lt-label")) === "through proxy", "refill");
      assert((await page.inputValue("#lt-proxy")) === proxyUrl);
      assert((await page.inputValue("#lt-mode")) === "requests");
      assert((await page.inputValue("#lt-requests")) === "1500");

      // ── home with live numbers and charts, then stop ──
      step = "home with live numbers and charts, then stop";
      await page.click('nav a[data-page="home"]');
      await until(
        async () => Number((await page.textContent("#t-total"))!.replaceAll(",", "")) >= proxied,
        "the load test in the proxy's numbers",
      );
      const rpsPixels = await pixels(page, "#chart-rps", [37, 99, 235]);
      assert(rpsPixels > 20, `live rps chart pixels: ${rpsPixels}`);
      // Logs are text: nothing but the line rows inside the log box.
      const foreign = await page.evaluate(
        `document.querySelectorAll("#logs *:not(div.log)").length`,
      );
      assert(foreign === 0, "log lines must not create elements");
      await shot(page, "6-home-running");

      // ── the Backends panel: both up, one drained and enabled again ──
      step = "the Backends panel";
      const rows = page.locator("#backends tbody tr");
      await until(async () => (await rows.count()) === 2, "two backends listed");
      await until(
        async () => (await page.textContent("#backends tbody tr:nth-child(1)"))!.includes(" ago"),
        "a health check shown",
      );
      const first = rows.nth(0);
      assert((await first.textContent())!.includes(`127.0.0.1:${origin.addr.port}`));
      await first.locator("button", { hasText: "Drain" }).click();
      await first.locator(".badge", { hasText: "drained" }).waitFor();
      await first.locator("button", { hasText: "Enable" }).waitFor();
      await checkWidths(page, "home-running");
      await first.locator("button", { hasText: "Enable" }).click();
      await first.locator(".badge", { hasText: "up" }).waitFor();

      // ── the dashboard's polling is not the proxy's traffic ──
      step = "the dashboard's own polling is not counted";
      const before = Number((await page.textContent("#t-total"))!.replaceAll(",", ""));
      await page.waitForTimeout(3500); // three or more polls
      const after = Number((await page.textContent("#t-total"))!.replaceAll(",", ""));
      assertEquals(after, before, "requests counted while nothing but the dashboard polled");
      assert(!dashboard.output().includes("GET /proxy-stats"), "polls are not in the access log");
      const logText = await page.textContent("#logs");
      assert(!logText!.includes("/proxy-stats"), "polls are not in the access log");

      await page.click("#btn-stop");
      await page.locator("#proxy-state", { hasText: "stopped" }).waitFor();
      assert(await page.isHidden("#exit-info"), "a requested stop is not shown as a crash");
      // Stopped: no stale numbers.
      for (const tile of ["#t-rps", "#t-total", "#t-active", "#t-p99"]) {
        assertEquals(await page.textContent(tile), "stopped", tile);
      }
      assert(await page.isHidden("#backends-card"));
      await shot(page, "7-home-stopped-again");

      // ── a proxy that dies is shown stopped, with its last lines ──
      step = "a proxy that dies is shown stopped, with its last lines";
      await page.click("#btn-start");
      await page.locator("#proxy-state", { hasText: "running" }).waitFor();
      const crashPid = Number(await page.textContent("#proxy-pid"));
      Deno.kill(crashPid, "SIGKILL");
      await page.locator("#exit-info").waitFor({ state: "visible" });
      await page.locator("#proxy-state", { hasText: "stopped" }).waitFor();
      assert((await page.textContent("#exit-text"))!.includes("SIGKILL"));
      assert((await page.textContent("#exit-logs"))!.includes("proxy listening on"));
      await shot(page, "8-home-crashed", false);
      assert(pageErrors.length === 0, `page errors: ${pageErrors.join("; ")}`);
      await context.close();
    } catch (err) {
      // Say which step broke, and keep what the page showed then.
      if (failurePage) await shot(failurePage, "failure").catch(() => {});
      throw new Error(`e2e failed while ${step}: ${(err as Error).message}`, { cause: err });
    } finally {
      await browser.close();
      const status = await dashboard.stop();
      await origin.shutdown();
      await origin2.shutdown();
      await Deno.remove(dir, { recursive: true });
      assert(status.success || status.signal === "SIGTERM", dashboard.output());
    }
  },
});

Deno.test({
  name: "dashboard in a browser with a token: login page, wrong token refused, right one lets in",
  ignore: ignoreUnless(
    "dashboard in a browser",
    haveChromium,
    `${CHROMIUM} is missing (apt-get install chromium)`,
  ),
  // playwright-core keeps timers and pipes of its own past browser.close().
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await Deno.mkdir(ARTIFACTS, { recursive: true });
    const dir = await Deno.makeTempDir({ prefix: "dashboard-e2e-token-" });
    const dashboard = await startDashboard(`${dir}/.env`, "let-me-in");
    const browser = await launchBrowser();
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 700 } });
      page.setDefaultTimeout(60_000);
      await page.goto(`${dashboard.base}/`);
      await page.locator("#login-token").waitFor({ state: "visible" });
      assert(await page.isHidden("#page-home"), "no data before login");
      await page.fill("#login-token", "guess");
      await page.click("#login-form button");
      await page.locator("#login-error", { hasText: "wrong token" }).waitFor();
      await page.screenshot({ path: `${ARTIFACTS}dashboard-0-login.png` });
      await checkWidths(page, "login");
      await page.fill("#login-token", "let-me-in");
      await page.click("#login-form button");
      await page.locator("#proxy-state", { hasText: "stopped" }).waitFor();
      await page.locator("#live", { hasText: "live" }).waitFor();
      assert(await page.isHidden("#page-login"));
    } finally {
      await browser.close();
      await dashboard.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
