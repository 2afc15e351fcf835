/**
 * `proxy loadtest` as a user runs it: a real subprocess, its stdout, stderr
 * and exit status (JSON report, text report, one-line errors with exit 2).
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { closedPort } from "./helpers/ports.ts";
import { progressLine } from "../src/loadtest/mod.ts";

const modUrl = new URL("../src/loadtest/mod.ts", import.meta.url).href;

/** Runs runLoadtest(args) in a child process, as main.ts will. */
async function cli(args: string[]) {
  const script = await Deno.makeTempFile({ suffix: ".ts" });
  await Deno.writeTextFile(
    script,
    `import { runLoadtest } from ${JSON.stringify(modUrl)};\n` +
      `Deno.exit(await runLoadtest(Deno.args));\n`,
  );
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", script, ...args],
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    }).output();
    return {
      code: out.code,
      stdout: new TextDecoder().decode(out.stdout),
      stderr: new TextDecoder().decode(out.stderr),
    };
  } finally {
    await Deno.remove(script);
  }
}

Deno.test("--json prints the report as JSON with counts, percentiles and timeline", async () => {
  let hits = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    hits++;
    return new Response(req.headers.get("x-test") ?? "none", {
      status: req.method === "PUT" ? 201 : 200,
    });
  });
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/body.txt`, "payload");
    const r = await cli([
      "--url",
      `http://127.0.0.1:${server.addr.port}/`,
      "--requests",
      "200",
      "--concurrency",
      "4",
      "--method",
      "PUT",
      "--body-file",
      `${dir}/body.txt`,
      "--header",
      "X-Test: yes",
      "--json",
    ]);
    assertEquals(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout);
    assertEquals(report.requests, 200);
    assertEquals(report.status, { "201": 200 });
    assertEquals(report.method, "PUT");
    assertEquals(hits, 200);
    for (const k of ["min", "mean", "p50", "p90", "p99", "p999", "max"]) {
      assert(typeof report.latency_ms[k] === "number", k);
    }
    assert(Array.isArray(report.timeline) && report.timeline.length >= 1);
    assertEquals(report.rate_limited, false);
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("text report names rate, latency and status; dead target exits 1", async () => {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response("x", { status: 429, headers: { "RateLimit-Remaining": "0" } }),
  );
  try {
    const r = await cli(["--url", `http://127.0.0.1:${server.addr.port}/`, "-n", "50"]);
    assertEquals(r.code, 0, r.stderr);
    assert(r.stdout.includes("requests/s"), r.stdout);
    assert(r.stdout.includes("p99.9"), r.stdout);
    assert(r.stdout.includes("429: 50"), r.stdout);
    assert(r.stdout.includes("WARNING: a rate limit shaped these results"), r.stdout);
  } finally {
    await server.shutdown();
  }
  const dead = await cli(["--url", `http://127.0.0.1:${closedPort()}/`, "-n", "5", "--json"]);
  assertEquals(dead.code, 1);
  assertEquals(JSON.parse(dead.stdout).errors, { connect: 5 });
});

Deno.test("bad flags stop with one clear line and exit 2", async () => {
  const cases: [string[], string][] = [
    [[], "--url is required"],
    [["--url", "http://x/", "--requests", "ten"], "--requests expects a number"],
    [["--url", "http://x/", "--requests", "5", "--time-based"], "either --requests"],
    [["--url", "http://x/", "--body", "a", "--body-file", "f"], "either --body"],
    [["--url", "http://x/", "--header", "NoColon"], "Name:value"],
    [["--url", "http://x/", "--bogus"], "bogus"],
    [["--url", "http://x/", "--concurrency", "0"], "--concurrency"],
    [["--url", "http://x/", "--body-file", "/nonexistent/file"], "--body-file"],
  ];
  for (const [args, text] of cases) {
    const r = await cli(args);
    assertEquals(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    const lines = r.stderr.trim().split("\n");
    assertEquals(lines.length, 1, r.stderr);
    assert(lines[0].startsWith("proxy loadtest: "), lines[0]);
    assert(lines[0].includes(text), `${lines[0]} should mention ${text}`);
    assertEquals(r.stdout, "");
  }
  const help = await cli(["--help"]);
  assertEquals(help.code, 0);
  assert(help.stdout.includes("--time-based"));
});

Deno.test("progress line: bar, percent, counts, and it fits the terminal width", () => {
  const p = {
    elapsed_s: 2.5,
    requests: 1234,
    errors: 2,
    current_rps: 4567.8,
    fraction: 0.5,
    total_requests: 2468,
    duration_s: 0,
  };
  const line = progressLine(p, 80);
  assert(line.length <= 80, line);
  assert(line.includes(" 50%") && line.includes("1234 req") && line.includes("4568 req/s"), line);
  assert(line.includes("2 err"), line);
  const bar = /\[(#*)(-*)\]/.exec(line)!;
  assertEquals(bar[1].length, bar[2].length);
  assert(progressLine({ ...p, fraction: 1 }, 80).includes("100%"));
});
