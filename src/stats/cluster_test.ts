import assert from "node:assert/strict";
import { mergeReports, sumFamilies } from "./cluster.ts";
import { Histogram } from "./histogram.ts";
import type { ThreadReport } from "./proxy_stats.ts";

function report(thread: number, doc: Record<string, unknown>): ThreadReport {
  const h = new Histogram().toState();
  return { thread, doc, latency: h, recent: h, metrics: [] };
}

Deno.test("mergeReports: module sections are process totals, shared values counted once", () => {
  const section = (n: number) => ({
    cache: { cache_hits: n, cache_misses: 1, cache_hit_ratio: 0, l1_entries: 3, status: "ok" },
    admission: { in_flight: 4, admitted: n, max_concurrency: 8, wait_ms: { p99: n } },
    filter: { rules: { ads: 100 }, blocked: { ads: n } },
    compression: { compressed: { br: n }, ratio: n / 10 },
  });
  const doc = mergeReports([
    report(0, { requests_total: 1, cache_hits: 1, cache_misses: 1, ...section(1) }),
    report(1, { requests_total: 2, cache_hits: 3, cache_misses: 1, ...section(3) }),
  ]);
  assert.deepEqual(doc.cache, {
    cache_hits: 4,
    cache_misses: 2,
    cache_hit_ratio: 4 / 6,
    l1_entries: 6,
    status: "ok",
  });
  assert.deepEqual(doc.admission, {
    in_flight: 4,
    admitted: 4,
    max_concurrency: 8,
    wait_ms: { p99: 3 },
  });
  assert.deepEqual(doc.filter, { rules: { ads: 100 }, blocked: { ads: 4 } });
  assert.deepEqual(doc.compression, { compressed: { br: 4 }, ratio: 0.3 });
  assert.equal(doc.requests_total, 3);
});

Deno.test("mergeReports: a key only another thread has is kept (a category blocked there only)", () => {
  const doc = mergeReports([
    report(0, { filter: { blocked: { custom: 2, trackers: 1 } } }),
    report(1, { filter: { blocked: { ads: 1, custom: 1 } } }),
  ]);
  assert.deepEqual(doc.filter, { blocked: { custom: 3, trackers: 1, ads: 1 } });
});

Deno.test("sumFamilies: counters add up, process-wide gauges and states are not summed", () => {
  const thread = (n: number, up: number) => [
    { name: "proxy_requests_total", help: "", type: "counter" as const, samples: [{ value: n }] },
    {
      name: "proxy_admission_in_flight",
      help: "",
      type: "gauge" as const,
      samples: [{ value: 5 }],
    },
    {
      name: "proxy_backend_up",
      help: "",
      type: "gauge" as const,
      samples: [{ labels: { backend: "a" }, value: up }],
    },
  ];
  const merged = sumFamilies([thread(2, 1), thread(3, 0)]);
  const value = (name: string) => merged.find((f) => f.name === name)!.samples[0].value;
  assert.equal(value("proxy_requests_total"), 5);
  assert.equal(value("proxy_admission_in_flight"), 5);
  assert.equal(value("proxy_backend_up"), 0, "down on one thread is down");
});
