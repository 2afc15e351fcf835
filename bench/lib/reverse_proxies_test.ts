/** nginx and HAProxy started from private configs really proxy to the origin. */
import assert from "node:assert/strict";
import { patternBytes, startBackend } from "../../src/backend/mod.ts";
import { startCaddyReverse } from "./caddy.ts";
import { startHaproxyReverse } from "./haproxy.ts";
import { startNginxReverse } from "./nginx.ts";
import { freePort, type Proc } from "./process.ts";
import { startSquidForward } from "./squid.ts";
import { hasTool } from "./tools.ts";
import { startVarnish } from "./varnish.ts";
import { ignoreUnless } from "../../tests/helpers/ignore.ts";

const cases: [string, (dir: string, port: number, up: number) => Promise<Proc>][] = [
  [
    "nginx",
    (dir, listenPort, upstreamPort) => startNginxReverse({ dir, listenPort, upstreamPort }),
  ],
  [
    "haproxy",
    (dir, listenPort, upstreamPort) => startHaproxyReverse({ dir, listenPort, upstreamPort }),
  ],
  [
    "caddy",
    (dir, listenPort, upstreamPort) => startCaddyReverse({ dir, listenPort, upstreamPort }),
  ],
];

for (const [tool, start] of cases) {
  Deno.test({
    name: `${tool} reverse proxy from a private directory forwards exact bytes`,
    ignore: ignoreUnless(
      `bench ${tool}`,
      hasTool(tool),
      `${tool} is not installed (apt-get install ${tool})`,
    ),
    async fn() {
      const dir = await Deno.makeTempDir();
      const b = await startBackend({ host: "127.0.0.1", port: 0, name: "origin" });
      const port = freePort();
      const p = await start(dir, port, b.port);
      try {
        for (let i = 0; i < 3; i++) {
          const res = await fetch(`http://127.0.0.1:${port}/bytes/1024?seed=5`);
          assert.equal(res.status, 200);
          assert.equal(res.headers.get("x-backend"), "origin");
          assert.deepEqual(new Uint8Array(await res.arrayBuffer()), patternBytes(1024, 5));
        }
      } finally {
        await p.stop();
        await b.close();
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}

const cachingCases: [string, (dir: string, port: number, up: number) => Promise<Proc>][] = [
  [
    "nginx",
    (dir, listenPort, upstreamPort) =>
      startNginxReverse({ dir, listenPort, upstreamPort, cache: true }),
  ],
  [
    "haproxy",
    (dir, listenPort, upstreamPort) =>
      startHaproxyReverse({ dir, listenPort, upstreamPort, cache: true }),
  ],
];

for (const [tool, start] of cachingCases) {
  Deno.test({
    name: `${tool} with cache: on answers repeated requests without the origin`,
    ignore: ignoreUnless(
      `bench ${tool}`,
      hasTool(tool),
      `${tool} is not installed (apt-get install ${tool})`,
    ),
    async fn() {
      const dir = await Deno.makeTempDir();
      const b = await startBackend({ host: "127.0.0.1", port: 0, name: "origin" });
      const port = freePort();
      const p = await start(dir, port, b.port);
      try {
        for (let i = 0; i < 5; i++) {
          const res = await fetch(`http://127.0.0.1:${port}/bytes/1024?max_age=3600`);
          assert.deepEqual(new Uint8Array(await res.arrayBuffer()), patternBytes(1024));
        }
        const stats = await (await fetch(`${b.url}/__stats`)).json();
        assert.equal(stats.paths["/bytes/1024"], 1);
      } finally {
        await p.stop();
        await b.close();
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}

Deno.test({
  name: "squid forward proxy from a private directory forwards absolute-form requests",
  ignore: ignoreUnless(
    "bench squid",
    hasTool("squid"),
    "squid is not installed (apt-get install squid)",
  ),
  async fn() {
    const dir = await Deno.makeTempDir();
    const b = await startBackend({ host: "127.0.0.1", port: 0, name: "origin" });
    const port = freePort();
    const p = await startSquidForward({ dir, listenPort: port });
    const client = Deno.createHttpClient({ proxy: { url: `http://127.0.0.1:${port}` } });
    try {
      const res = await fetch(`${b.url}/bytes/1024?seed=3`, { client });
      assert.equal(res.headers.get("x-backend"), "origin");
      assert.deepEqual(new Uint8Array(await res.arrayBuffer()), patternBytes(1024, 3));
    } finally {
      client.close();
      await p.stop();
      await b.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "varnish from a private work directory caches by max-age",
  ignore: ignoreUnless(
    "bench varnish",
    hasTool("varnishd"),
    "varnishd is not installed (apt-get install varnish)",
  ),
  async fn() {
    const dir = await Deno.makeTempDir();
    const b = await startBackend({ host: "127.0.0.1", port: 0, name: "origin" });
    const port = freePort();
    const p = await startVarnish({ dir, listenPort: port, upstreamPort: b.port });
    try {
      for (let i = 0; i < 4; i++) {
        const res = await fetch(`http://127.0.0.1:${port}/bytes/1024?max_age=3600`);
        assert.deepEqual(new Uint8Array(await res.arrayBuffer()), patternBytes(1024));
      }
      const stats = await (await fetch(`${b.url}/__stats`)).json();
      assert.equal(stats.paths["/bytes/1024"], 1);
    } finally {
      await p.stop();
      await b.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
