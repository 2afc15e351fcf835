/**
 * The filter with its real shipped lists, real files, a real URL list server, and its phase
 * behind Deno.serve.
 */
import assert from "node:assert/strict";
import http from "node:http";
import { compose, requestFilters } from "../src/pipeline/mod.ts";
import { testContext } from "../src/pipeline/testing.ts";
import { createFilter, type Filter, type FilterLogger } from "../src/filter/mod.ts";

/** A logger that keeps what it is told, to assert on warnings. */
function memoryLogger(): FilterLogger & { warnings: string[] } {
  const warnings: string[] = [];
  return { warnings, warn: (m) => warnings.push(m), info: () => {} };
}

function firstEntry(path: string): Promise<string> {
  return Deno.readTextFile(new URL(path, import.meta.url)).then((t) =>
    t.split("\n").find((l) => l && !l.startsWith("#"))!
  );
}

/** GET with a chosen Host header (fetch would not send one), via node:http. */
function getWithHost(
  port: number,
  host: string,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    http.get({ host: "127.0.0.1", port, path: "/x", headers: { host }, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => body += c);
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    }).on("error", reject);
  });
}

Deno.test("the shipped lists block each category, subdomains included", async () => {
  const log = memoryLogger();
  let filter: Filter | undefined;
  try {
    filter = await createFilter({
      categories: ["ads", "trackers", "malware"],
      logger: log,
    });
    const s = filter.snapshot();
    assert.ok(s.rules.ads > 50_000, `ads rules: ${s.rules.ads}`);
    assert.ok(s.rules.trackers > 50_000, `tracker rules: ${s.rules.trackers}`);
    assert.ok(s.rules.malware > 1_000, `malware rules: ${s.rules.malware}`);
    assert.equal(s.errors.count, 0, `shipped lists parse cleanly: ${s.errors.recent}`);

    assert.equal(filter.check("adnxs.com")?.category, "ads");
    assert.equal(filter.check("ib.adnxs.com")?.category, "ads", "subdomain");
    assert.deepEqual(filter.check("www.google-analytics.com"), {
      category: "trackers",
      rule: "google-analytics.com",
    });
    const malwareRule = await firstEntry("../src/filter/lists/malware.txt");
    const malwareHost = malwareRule.slice(2, -1);
    assert.deepEqual(filter.check(malwareHost.toUpperCase() + ":443"), {
      category: "malware",
      rule: malwareRule,
    });
    assert.equal(filter.check("example.com"), undefined);
    assert.equal(filter.check("deno.land"), undefined);
    assert.deepEqual(filter.snapshot().blocked, { ads: 2, trackers: 1, malware: 1 });
  } finally {
    filter?.close();
  }
});

Deno.test("the allowlist wins over every list, subdomains included", async () => {
  const filter = await createFilter({
    categories: ["trackers"],
    allow: ["google-analytics.com"],
  });
  try {
    assert.equal(filter.check("google-analytics.com"), undefined);
    assert.equal(filter.check("www.google-analytics.com"), undefined);
    assert.equal(filter.check("hotjar.com")?.category, "trackers");
  } finally {
    filter.close();
  }
});

Deno.test("a bad FILTER_ALLOW entry or category stops start-up with a clear error", async () => {
  await assert.rejects(
    () => createFilter({ categories: [], allow: ["not a domain"] }),
    /FILTER_ALLOW: "not a domain"/,
  );
  await assert.rejects(() => createFilter({ categories: ["porn"] }), /unknown category "porn"/);
});

Deno.test("custom lists: Adblock syntax, hosts format, bad lines named by file and line", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/custom.txt`;
  await Deno.writeTextFile(
    path,
    [
      "[Adblock Plus 2.0]",
      "||ads.example.net^$third-party",
      "0.0.0.0 hosts.example.org",
      "@@||ok.ads.example.net^",
      "this line is wrong",
      "||cdn.example.com/evil/",
    ].join("\n"),
  );
  const log = memoryLogger();
  const filter = await createFilter({ categories: [], lists: [path], logger: log });
  try {
    assert.deepEqual(filter.check("x.ads.example.net"), {
      category: "custom",
      rule: "||ads.example.net^",
    });
    assert.equal(filter.check("ok.ads.example.net"), undefined, "@@ exception");
    assert.equal(filter.check("hosts.example.org")?.rule, "hosts.example.org");
    assert.equal(filter.check("cdn.example.com", "/evil/x.js")?.rule, "||cdn.example.com/evil/");
    assert.equal(filter.check("cdn.example.com", "/good.js"), undefined);
    assert.equal(log.warnings.length, 1);
    assert.ok(log.warnings[0].includes(`${path}:5:`), log.warnings[0]);
    assert.ok(log.warnings[0].includes("this line is wrong"));
    assert.equal(filter.snapshot().errors.count, 1);
  } finally {
    filter.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a missing list file stops start-up with an error naming it", async () => {
  await assert.rejects(
    () => createFilter({ categories: [], lists: ["/nonexistent/blocklist.txt"] }),
    (err: Error) => err.message.includes("/nonexistent/blocklist.txt"),
  );
});

Deno.test("reload picks up a changed list and swaps it in at once", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/list.txt`;
  await Deno.writeTextFile(path, "one.example.com\n");
  const filter = await createFilter({ categories: [], lists: [path] });
  try {
    assert.equal(filter.check("one.example.com")?.rule, "one.example.com");
    assert.equal(filter.check("two.example.com"), undefined);
    await Deno.writeTextFile(path, "two.example.com\n");
    await filter.reload();
    assert.equal(filter.check("one.example.com"), undefined);
    assert.equal(filter.check("two.example.com")?.rule, "two.example.com");
    assert.equal(filter.snapshot().reloads, 2);
    // A reload that fails (file gone) keeps the rules that were in force.
    await Deno.remove(path);
    await assert.rejects(() => filter.reload(), /not found/);
    assert.equal(filter.check("two.example.com")?.rule, "two.example.com");
    const errors = filter.snapshot().errors;
    assert.equal(errors.failed_reloads, 1);
    assert.match(errors.last_failure ?? "", /not found: .*list\.txt/);
  } finally {
    filter.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("URL lists are fetched at start and on reload; a failed fetch keeps the last copy", async () => {
  let body = "||url.example.com^\n";
  let fail = false;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => fail ? new Response("down", { status: 503 }) : new Response(body),
  );
  const log = memoryLogger();
  const url = `http://127.0.0.1:${server.addr.port}/list.txt`;
  const filter = await createFilter({ categories: [], lists: [url], logger: log });
  try {
    assert.equal(filter.check("a.url.example.com")?.rule, "||url.example.com^");
    body = "||other.example.com^\n";
    await filter.reload();
    assert.equal(filter.check("url.example.com"), undefined);
    assert.equal(filter.check("other.example.com")?.category, "custom");
    fail = true;
    await filter.reload();
    assert.equal(filter.check("other.example.com")?.category, "custom", "kept the last copy");
    assert.ok(log.warnings.some((w) => w.includes(url) && w.includes("503")));
  } finally {
    filter.close();
    await server.shutdown();
  }
});

Deno.test("the filter phase answers 403 with category, rule and X-Filter, counted per category", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/list.txt`;
  await Deno.writeTextFile(path, "||blocked.example^\n");
  const filter = await createFilter({
    categories: ["malware"],
    lists: [path],
  });
  // As a reverse proxy would: the effective request URL (its Host) names the site.
  const handler = compose(
    () => Promise.resolve(new Response("origin says hi")),
    requestFilters.filter(filter).wrap,
  );
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req) => handler(req, testContext()),
  );
  try {
    const blocked = await getWithHost(server.addr.port, "www.blocked.example");
    assert.equal(blocked.status, 403);
    assert.equal(
      blocked.headers["x-filter"],
      "blocked; category=custom; rule=||blocked.example^",
    );
    const text = blocked.body;
    assert.ok(text.includes("category=custom") && text.includes("||blocked.example^"), text);

    const fine = await getWithHost(server.addr.port, "fine.example");
    assert.equal(fine.status, 200);
    assert.equal(fine.body, "origin says hi");
    assert.equal(filter.snapshot().blocked.custom, 1);
  } finally {
    await server.shutdown();
    filter.close();
    await Deno.remove(dir, { recursive: true });
  }
});
