/**
 * The access log under load: every request gets exactly one line, however
 * fast they come (issue 11 item 8: LogTape's non-blocking stream sink dropped
 * 95 % of them when its buffer filled), and a line that cannot be written is
 * counted in /proxy-stats and /metrics instead of vanishing.
 */
import assert from "node:assert/strict";
import { startProxy } from "./helpers/proxy.ts";
import { startTestBackend } from "./helpers/backend.ts";
import { loadtest } from "../src/loadtest/mod.ts";

/** Access-log lines (JSON format) in `text`. */
function accessLines(text: string): string[] {
  return text.split("\n").filter((l) => l.includes('"logger":"proxy.access"'));
}

Deno.test("20,000 cache hits over 50 connections give exactly 20,000 access-log lines", async () => {
  const origin = await startTestBackend("access-origin");
  const proxy = await startProxy({
    env: {
      BACKEND_SERVERS: origin.url,
      CACHE_BACKEND: "memory",
      ACCESS_LOG: "true",
      LOG_LEVEL: "info",
      LOG_FORMAT: "json",
    },
  });
  const requests = 20_000;
  // deno-lint-ignore no-explicit-any
  let logStats: any;
  try {
    const report = await loadtest({
      url: `${proxy.url}/bytes/512?max_age=3600`,
      requests,
      concurrency: 50,
    });
    assert.equal(report.requests, requests);
    assert.equal(report.errors_total, 0);
    logStats = (await proxy.stats()).log;
  } finally {
    await proxy.stop();
    await origin.close();
  }
  const lines = accessLines(proxy.output()).filter((l) => l.includes("/bytes/512"));
  assert.equal(lines.length, requests, `${lines.length} access lines for ${requests} requests`);
  // Whole lines only: every one parses on its own.
  for (const l of lines) JSON.parse(l);
  assert.equal(logStats?.lines_failed, 0, JSON.stringify(logStats));
});

Deno.test("an access log that cannot be written (a full disk) is counted, and serving goes on", async () => {
  const origin = await startTestBackend("full-origin");
  const proxy = await startProxy({
    env: {
      BACKEND_SERVERS: origin.url,
      ACCESS_LOG: "true",
      LOG_LEVEL: "info",
      LOG_FILE: "/dev/full", // every write fails with ENOSPC
      LOG_STDOUT: "false",
    },
  });
  try {
    for (let i = 0; i < 20; i++) {
      const res = await fetch(`${proxy.url}/json?i=${i}`);
      assert.equal(res.status, 200);
      await res.body?.cancel();
    }
    // Lines are written once per event-loop turn: poll until the last batch is counted.
    let failed = 0;
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      failed = (await proxy.stats()).log.lines_failed;
      if (failed >= 20) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(failed >= 20, `lines_failed = ${failed}`);
    const metrics = await (await fetch(`${proxy.url}/metrics`)).text();
    const m = /^proxy_log_lines_failed_total\{output="file"\} (\d+)$/m.exec(metrics);
    assert.ok(m, metrics.split("\n").filter((l) => l.includes("log")).join("\n"));
    assert.ok(Number(m[1]) >= 20);
  } finally {
    await proxy.stop();
    await origin.close();
  }
});

Deno.test("the access log's own JSON line is exactly LogTape's JSON-lines formatter output", async () => {
  const { getJsonLinesFormatter } = await import("@logtape/logtape");
  const { LineSink } = await import("../src/log/line_sink.ts");
  const { createAccessLog } = await import("../src/log/access.ts");
  const written: string[] = [];
  const output = {
    name: "memory",
    write: (b: Uint8Array) => void written.push(new TextDecoder().decode(b)),
    close() {},
  };
  const sink = new LineSink(output, getJsonLinesFormatter(), { json: true });
  const properties = { id: "a-1", status: 200, bytes: null, target: '/q?x="1"\n' };
  createAccessLog(() => [sink], () => true).info('127.0.0.1 GET /q?x="1" 200', properties);
  sink.flush();
  assert.equal(written.length, 1);
  const timestamp = Date.parse(JSON.parse(written[0])["@timestamp"]);
  const expected = getJsonLinesFormatter()({
    category: ["proxy", "access"],
    level: "info",
    message: ['127.0.0.1 GET /q?x="1" 200'],
    rawMessage: '127.0.0.1 GET /q?x="1" 200',
    timestamp,
    properties,
  });
  assert.equal(written[0], expected);
});
