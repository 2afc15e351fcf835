/**
 * The one request pipeline, end to end over real sockets: every kind of
 * request (HTTP, cache hits, upgrades, CONNECT) meets the same phases on
 * every listener; the cache key and what reaches the backend agree; request
 * ids go upstream, come back and reach the access log.
 */
import assert from "node:assert/strict";
import { startProxy, type TestProxy } from "./helpers/proxy.ts";
import { rawRequest } from "./helpers/rawhttp.ts";

/** A backend that names the Host and X-Request-Id it got, cacheable for a minute; 101 for WebSocket. */
function hostEchoBackend() {
  const seen: { host: string | null; id: string | null }[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    seen.push({ host: req.headers.get("host"), id: req.headers.get("x-request-id") });
    if (req.headers.get("upgrade")?.toLowerCase() === "websocket") {
      const { socket, response } = Deno.upgradeWebSocket(req);
      socket.onmessage = (e) => socket.send(e.data);
      return response;
    }
    return new Response(`host=${req.headers.get("host")}`, {
      headers: { "cache-control": "max-age=60", "content-type": "text/plain" },
    });
  });
  return { server, seen, url: `http://127.0.0.1:${server.addr.port}` };
}

async function withProxy(
  env: Record<string, string>,
  fn: (proxy: TestProxy, backend: ReturnType<typeof hostEchoBackend>) => Promise<void>,
) {
  const backend = hostEchoBackend();
  const proxy = await startProxy({ env: { BACKEND_SERVERS: backend.url, ...env } });
  try {
    await fn(proxy, backend);
  } finally {
    await proxy.stop();
    await backend.server.shutdown();
  }
}

Deno.test("reverse mode: an absolute-form request with another Host is never keyed one way and forwarded another", async () => {
  await withProxy({ PROXY_MODE: "reverse", CACHE_BACKEND: "memory" }, async (proxy, backend) => {
    const poison = await rawRequest(
      proxy.port,
      `GET http://127.0.0.1:${proxy.port}/x HTTP/1.1\r\nHost: attacker.example\r\nConnection: close\r\n\r\n`,
    );
    // Served for the request-target's authority (RFC 9112 §3.2.2), or refused: never for the Host field.
    if (poison.status === 200) assert.equal(poison.body, `host=127.0.0.1:${proxy.port}`);
    else assert.ok(poison.status >= 400 && poison.status < 500, `status ${poison.status}`);
    assert.ok(
      !backend.seen.some((s) => s.host === "attacker.example"),
      "backend saw the attacker's Host",
    );
    const later = await fetch(`${proxy.url}/x`);
    assert.equal(await later.text(), `host=127.0.0.1:${proxy.port}`);
  });
});

/** Sends a WebSocket upgrade on a raw connection and returns the status of the first response head. */
async function upgradeStatus(port: number, path = "/ws"): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    ));
    const buf = new Uint8Array(4096);
    let head = "";
    const deadline = Date.now() + 10_000;
    while (!head.includes("\r\n") && Date.now() < deadline) {
      const n = await conn.read(buf);
      if (n === null) break;
      head += new TextDecoder().decode(buf.subarray(0, n));
    }
    return Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
  } finally {
    conn.close();
  }
}

for (const mode of ["both", "reverse"]) {
  Deno.test(`PROXY_MODE=${mode}: upgrades pass the rate limit like any request (six with a limit of 3: three 429)`, async () => {
    await withProxy(
      { PROXY_MODE: mode, RATE_LIMIT_REQUESTS: "3", RATE_LIMIT_EXEMPT: "" },
      async (proxy) => {
        const statuses: number[] = [];
        for (let i = 0; i < 6; i++) statuses.push(await upgradeStatus(proxy.port));
        assert.deepEqual(statuses, [101, 101, 101, 429, 429, 429]);
      },
    );
  });
}

Deno.test("header hygiene applies to cache hits: a header flood for a cached URL gets 431, not the HIT", async () => {
  await withProxy(
    { PROXY_MODE: "reverse", CACHE_BACKEND: "memory", MAX_HEADER_COUNT: "20" },
    async (proxy) => {
      for (let i = 0; i < 2; i++) await (await fetch(`${proxy.url}/h`)).body?.cancel();
      const hit = await fetch(`${proxy.url}/h`);
      assert.equal(hit.headers.get("x-cache"), "HIT");
      await hit.body?.cancel();
      const headers = new Headers();
      for (let i = 0; i < 30; i++) headers.set(`x-flood-${i}`, "1");
      const flood = await fetch(`${proxy.url}/h`, { headers });
      assert.equal(flood.status, 431);
      await flood.body?.cancel();
    },
  );
});

for (const trusted of [false, true]) {
  Deno.test(`X-Request-Id: ${trusted ? "a trusted client's own" : "generated (an untrusted client's is replaced)"}, sent upstream, returned, logged`, async () => {
    const env: Record<string, string> = {
      PROXY_MODE: "both",
      ACCESS_LOG: "true",
      LOG_LEVEL: "info",
      FORWARD_ALLOW_PRIVATE: "all",
    };
    if (trusted) env.TRUSTED_PROXIES = "127.0.0.1/32";
    await withProxy(env, async (proxy, backend) => {
      const given = "client-chosen-id-42";
      // Origin-form (to the backends) and absolute-form (forward proxying) alike.
      const viaGateway = await fetch(`${proxy.url}/id`, { headers: { "x-request-id": given } });
      await viaGateway.body?.cancel();
      const forward = await rawRequest(
        proxy.port,
        `GET ${backend.url}/fwd HTTP/1.1\r\nHost: ${
          backend.url.slice(7)
        }\r\nX-Request-Id: ${given}\r\nConnection: close\r\n\r\n`,
      );
      const ids = [viaGateway.headers.get("x-request-id"), forward.headers["x-request-id"]];
      assert.deepEqual(
        backend.seen.map((s) => s.id),
        ids,
        "the backend saw the ids the client got",
      );
      for (const id of ids) {
        assert.ok(id, "a response without X-Request-Id");
        if (trusted) assert.equal(id, given);
        else assert.notEqual(id, given);
      }
      if (!trusted) assert.notEqual(ids[0], ids[1]);
      await proxy.stop();
      for (const id of ids) assert.ok(proxy.output().includes(id!), `access log lacks ${id}`);
    });
  });
}

Deno.test("GET and CONNECT meet the rate limit and the filter in one order, with the same refusals", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/list.txt`, "||blocked.example^\n");
  const proxy = await startProxy({
    env: {
      PROXY_MODE: "forward",
      FILTER_LISTS: `${dir}/list.txt`,
      RATE_LIMIT_REQUESTS: "4",
      RATE_LIMIT_EXEMPT: "",
    },
  });
  const ask = async (line: string) => {
    const r = await rawRequest(
      proxy.port,
      `${line}\r\nHost: blocked.example\r\nConnection: close\r\n\r\n`,
    );
    return { status: r.status, body: r.body.trim(), filter: r.headers["x-filter"] ?? null };
  };
  try {
    // One client, one window: GET and CONNECT in turns.
    const gets = [];
    const connects = [];
    for (let i = 0; i < 3; i++) {
      gets.push(await ask("GET http://blocked.example/ HTTP/1.1"));
      connects.push(await ask("CONNECT blocked.example:443 HTTP/1.1"));
    }
    // Counted by the rate limit before the filter answers, for both kinds, with the same answers.
    assert.deepEqual(gets.map((g) => g.status), [403, 403, 429]);
    assert.deepEqual(connects, gets);
  } finally {
    await proxy.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
