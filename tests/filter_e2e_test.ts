/**
 * End-to-end: filtering through the real proxy process — absolute-form requests and CONNECT
 * tunnels to blocked hosts get 403 with the category and rule, and never reach the network.
 */
import assert from "node:assert/strict";
import { startTestBackend } from "./helpers/backend.ts";
import { curl } from "./helpers/http.ts";
import { rawRequest } from "./helpers/rawhttp.ts";
import { startProxy } from "./helpers/proxy.ts";

/** A TCP listener that counts the connections it accepts (there must be none). */
function countingListener(): { port: number; accepted: () => number; close(): void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let accepted = 0;
  (async () => {
    for await (const conn of listener) {
      accepted++;
      conn.close();
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    accepted: () => accepted,
    close: () => listener.close(),
  };
}

Deno.test("absolute-form and CONNECT to blocked hosts: 403 with X-Filter, nothing sent upstream", async () => {
  const origin = await startTestBackend("origin");
  const tcp = countingListener();
  const dir = await Deno.makeTempDir();
  const list = `${dir}/blocked.txt`;
  // The test origin's own address is blocked by a custom list; adnxs.com by the shipped ads list.
  await Deno.writeTextFile(list, "127.0.0.1\n");
  const proxy = await startProxy({
    env: {
      FORWARD_ALLOW_PRIVATE: "true",
      REQUEST_FILTERS: "ads,trackers,malware",
      FILTER_LISTS: list,
      FILTER_ALLOW: "google-analytics.com",
      CONNECT_PORTS: `443,${tcp.port}`,
    },
  });
  try {
    const blocked = await curl("-i", "-x", proxy.url, `${origin.url}/json`);
    assert.equal(blocked.code, 0, blocked.stderr);
    assert.match(blocked.stdout, /^HTTP\/1\.1 403/);
    assert.match(blocked.stdout, /^x-filter: blocked; category=custom; rule=127\.0\.0\.1\r$/im);
    assert.match(blocked.stdout, /category=custom rule=127\.0\.0\.1/);

    const ad = await curl("-i", "-x", proxy.url, "http://ib.adnxs.com/getuid");
    assert.match(ad.stdout, /^HTTP\/1\.1 403/);
    assert.match(ad.stdout, /^x-filter: blocked; category=ads; rule=adnxs\.com\r$/im);

    const tunnel = await rawRequest(
      proxy.port,
      `CONNECT 127.0.0.1:${tcp.port} HTTP/1.1\r\nHost: 127.0.0.1:${tcp.port}\r\n\r\n`,
    );
    assert.equal(tunnel.status, 403);
    assert.match(tunnel.raw, /x-filter: blocked; category=custom; rule=127\.0\.0\.1/i);
    assert.match(tunnel.body, /category=custom rule=127\.0\.0\.1/);

    const tracker = await rawRequest(
      proxy.port,
      "CONNECT www.hotjar.com:443 HTTP/1.1\r\nHost: www.hotjar.com:443\r\n\r\n",
    );
    assert.equal(tracker.status, 403);
    assert.match(tracker.raw, /category=trackers; rule=hotjar\.com/i);

    // Nothing reached the network: the origin saw no request, the listener no connection.
    assert.equal((await origin.stats()).requests_total, 0);
    assert.equal(tcp.accepted(), 0);

    const stats = await proxy.stats();
    assert.deepEqual(stats.filter.blocked, { custom: 2, ads: 1, trackers: 1 });
    assert.ok(stats.filter.rules.ads > 50_000);
    assert.equal(stats.filter.allow_rules, 1);
  } finally {
    await proxy.stop();
    tcp.close();
    await origin.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("default policy: blocked names are refused by the filter before any DNS lookup", async () => {
  // FORWARD_ALLOW_PRIVATE at its default resolves names to refuse inside addresses; a
  // blocked name must be answered by the filter first (X-Filter), without a lookup.
  const proxy = await startProxy({ env: { REQUEST_FILTERS: "ads,trackers" } });
  try {
    const tunnel = await rawRequest(
      proxy.port,
      "CONNECT static.hotjar.com:443 HTTP/1.1\r\nHost: static.hotjar.com:443\r\n\r\n",
    );
    assert.equal(tunnel.status, 403);
    assert.match(tunnel.raw, /x-filter: blocked; category=trackers; rule=hotjar\.com/i);
    const ad = await curl("-i", "-x", proxy.url, "http://ib.adnxs.com/getuid");
    assert.match(ad.stdout, /^x-filter: blocked; category=ads; rule=adnxs\.com\r$/im);
  } finally {
    await proxy.stop();
  }
});

Deno.test("reverse mode: a blocked Host header gets 403 and the backend sees nothing", async () => {
  const origin = await startTestBackend("origin");
  const proxy = await startProxy({
    env: { BACKEND_SERVERS: origin.url, REQUEST_FILTERS: "ads" },
  });
  try {
    const r = await curl("-i", "-H", "Host: ib.adnxs.com", `${proxy.url}/json`);
    assert.match(r.stdout, /^HTTP\/1\.1 403/);
    assert.match(r.stdout, /^x-filter: blocked; category=ads; rule=adnxs\.com\r$/im);
    const ok = await curl("-H", "Host: example.com", `${proxy.url}/health`);
    assert.equal(ok.stdout.trim(), "ok");
    assert.equal((await origin.stats()).requests_total, 1, "only the allowed request arrived");
  } finally {
    await proxy.stop();
    await origin.close();
  }
});

Deno.test("the allowlist lets a listed host through to its origin", async () => {
  const origin = await startTestBackend("origin");
  const dir = await Deno.makeTempDir();
  const list = `${dir}/blocked.txt`;
  await Deno.writeTextFile(list, "127.0.0.1\n");
  const proxy = await startProxy({
    env: { FORWARD_ALLOW_PRIVATE: "true", FILTER_LISTS: list, FILTER_ALLOW: "127.0.0.1" },
  });
  try {
    const r = await curl("-x", proxy.url, `${origin.url}/health`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), "ok");
  } finally {
    await proxy.stop();
    await origin.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a missing list stops start-up with one line naming the file", async () => {
  const proxy = await startProxy({
    env: { FILTER_LISTS: "/nonexistent/lists/blocked.txt" },
    expectExit: true,
  });
  const code = await proxy.signal("SIGTERM");
  assert.notEqual(code, 0);
  assert.match(proxy.output(), /\/nonexistent\/lists\/blocked\.txt/);
});

Deno.test("SIGHUP reloads a changed list without a restart", async () => {
  const origin = await startTestBackend("origin");
  const dir = await Deno.makeTempDir();
  const list = `${dir}/blocked.txt`;
  await Deno.writeTextFile(list, "blocked-first.example\n");
  const proxy = await startProxy({ env: { FORWARD_ALLOW_PRIVATE: "true", FILTER_LISTS: list } });
  try {
    assert.equal((await curl("-x", proxy.url, `${origin.url}/health`)).stdout.trim(), "ok");
    await Deno.writeTextFile(list, "127.0.0.1\n");
    proxy.process.kill("SIGHUP");
    let status = "";
    for (let i = 0; i < 100 && !status.startsWith("HTTP/1.1 403"); i++) {
      await new Promise((r) => setTimeout(r, 100));
      status = (await curl("-i", "-x", proxy.url, `${origin.url}/health`)).stdout;
    }
    assert.match(status, /^HTTP\/1\.1 403/);
    assert.ok((await proxy.stats()).filter.reloads >= 2);
  } finally {
    await proxy.stop();
    await origin.close();
    await Deno.remove(dir, { recursive: true });
  }
});
