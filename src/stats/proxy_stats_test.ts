import assert from "node:assert/strict";
import { ProxyStats } from "./proxy_stats.ts";
import { renderPrometheus } from "./prometheus.ts";

Deno.test("ProxyStats counts requests, methods and status classes exactly", () => {
  const s = new ProxyStats({ mode: "forward", listener: "node:http" });
  for (let i = 0; i < 300; i++) s.begin(i % 3 === 0 ? "POST" : i % 3 === 1 ? "GET" : "MKCOL");
  assert.equal(s.inFlight, 300);
  for (let i = 0; i < 300; i++) s.end(i < 200 ? 200 : 502, 1);
  const doc = s.snapshot();
  assert.equal(doc.requests_total, 300);
  assert.equal(doc.requests_success, 200);
  assert.equal(doc.requests_error, 100);
  assert.deepEqual(doc.status_codes, { "1xx": 0, "2xx": 200, "3xx": 0, "4xx": 0, "5xx": 100 });
  const methods = doc.request_methods as Record<string, number>;
  assert.equal(methods.POST, 100);
  assert.equal(methods.GET, 100);
  assert.equal(methods.OTHER, 100);
  assert.equal(s.inFlight, 0);
});

Deno.test("recent latency follows the last seconds, lifetime latency all of them", () => {
  const s = new ProxyStats({ mode: "reverse", listener: "deno.serve" });
  s.begin("GET");
  s.end(200, 500);
  const doc = s.snapshot() as Record<string, { p99: number; count: number }>;
  assert.equal(doc.latency_ms.count, 1);
  assert.equal(doc.latency_recent_ms.count, 1);
  assert.ok(doc.latency_recent_ms.p99 >= 490);
});

Deno.test("tunnels: opened, closed and refused are counted with their bytes", () => {
  const s = new ProxyStats({ mode: "forward", listener: "node:http" });
  s.tunnelOpened();
  s.tunnelClosed(100, 2000, true);
  s.tunnelRefused(403);
  const doc = s.snapshot() as Record<string, unknown>;
  assert.equal(doc.open_tunnels, 0);
  assert.deepEqual(doc.tunnels, { open: 0, total: 1, refused: 1, bytes_up: 100, bytes_down: 2000 });
  assert.equal(doc.bytes_transferred, 2100);
  assert.equal(doc.requests_total, 2);
});

Deno.test("websockets: open, total and bytes each way, in /proxy-stats and /metrics", () => {
  const s = new ProxyStats({ mode: "reverse", listener: "deno.listen" });
  s.webSocketOpened();
  s.webSocketBytes(100, 0);
  s.webSocketBytes(0, 2000);
  assert.deepEqual(s.snapshot().websockets, { open: 1, total: 1, bytes_up: 100, bytes_down: 2000 });
  assert.equal(s.snapshot().active_connections, 1);
  s.webSocketClosed();
  const doc = s.snapshot();
  assert.equal(doc.open_websockets, 0);
  assert.equal(doc.bytes_transferred, 2100);
  const text = renderPrometheus(s.metrics());
  assert.match(text, /^proxy_open_websockets 0$/m);
  assert.match(text, /^proxy_websockets_total 1$/m);
  assert.match(text, /^proxy_websocket_bytes_total\{direction="up"\} 100$/m);
  assert.match(text, /^proxy_websocket_bytes_total\{direction="down"\} 2000$/m);
});
