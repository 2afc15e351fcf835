/**
 * Three proxy instances on a real Redis Cluster (3 masters, 3 replicas):
 * shared cache spread over the masters, one exact rate limit across
 * instances, purges and L1 invalidation reaching every master and instance,
 * and a master failover under load that no client notices.
 */
import assert from "node:assert/strict";
import { startTestBackend } from "./helpers/backend.ts";
import { curl } from "./helpers/http.ts";
import { startProxy, type TestProxy } from "./helpers/proxy.ts";
import { runLoad, startCluster } from "./helpers/redis_topology.ts";

const HOST = "shop.test";
const PREFIX = "sc:";
/** Cache keys of the shared site (the /json probes of the rate-limit step are cached too). */
const SITE_KEYS = `${PREFIX}http://${HOST}/*`;

let clients = 0;

/** X-Cache of a GET with the shared Host (fetch cannot set Host; curl can). */
async function xcache(proxy: TestProxy, path: string): Promise<string> {
  // Each probe is its own rate-limit client, so probes are never refused.
  const client = `probe-${++clients}`;
  const r = await curl(
    ...["-o", "/dev/null", "-D", "-", "-H", `Host: ${HOST}`, "-H", `x-client: ${client}`],
    `${proxy.url}${path}`,
  );
  return /^x-cache:\s*(\S+)/im.exec(r.stdout)?.[1] ?? `no X-Cache (${r.stdout || r.stderr})`;
}

async function admin(proxy: TestProxy, body: unknown): Promise<{ purged: number }> {
  const res = await fetch(`${proxy.url}/proxy-cache/purge`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 200, await res.clone().text());
  return await res.json();
}

/** Polls until `check` is true (a cross-instance message takes a moment). */
async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

Deno.test({
  name: "Redis Cluster: three instances share cache and limits, purges reach every master, " +
    "a master failover under load fails no request",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    // Every node wants a password: REDIS_PASSWORD reaches every node of a cluster.
    const cluster = await startCluster({ nodeTimeoutMs: 1000, password: "cluster-secret" });
    const backend = await startTestBackend("origin");
    const proxies: TestProxy[] = [];
    try {
      const env = {
        BACKEND_SERVERS: backend.url,
        CACHE_BACKEND: "redis",
        CACHE_PREFIX: PREFIX,
        REDIS_CLUSTER_NODES: cluster.seeds,
        REDIS_PASSWORD: "cluster-secret",
        // Cluster settings win over a single-server URL (this one would refuse connections).
        REDIS_URL: "redis://127.0.0.1:1",
        RATE_LIMIT_REQUESTS: "50",
        RATE_LIMIT_WINDOW: "60",
        RATE_LIMIT_BY: "header:x-client",
        RATE_LIMIT_EXEMPT: "",
        // Generous: the machine running the tests is shared; a slower Redis only means fallbacks.
        REDIS_TIMEOUT: "1s",
      };
      proxies.push(...await Promise.all([0, 1, 2].map(() => startProxy({ env }))));
      const [a, b, c] = proxies;
      const masters = await cluster.masters();
      assert.equal(masters.length, 3);

      await t.step("the start-up line and /healthz name the cluster topology", async () => {
        for (const p of proxies) {
          // An instance serves at once; its cache joins the cluster when the client is ready.
          await eventually("the cache is connected", async () => {
            const health = await (await fetch(`${p.url}/healthz`)).json();
            assert.equal(health.redis, "cluster");
            return health.cache === "ok";
          });
          assert.match(p.output(), /listening on .*redis cluster \(3 seed nodes\)/);
        }
      });

      const paths = Array.from({ length: 30 }, (_, i) => `/cache/60?k=${i}`);
      await t.step(
        "an entry stored by one instance is a hit on another; keys spread over every master",
        async () => {
          assert.deepEqual(
            await Promise.all(paths.map((p) => xcache(a, p))),
            paths.map(() => "MISS"),
          );
          const cacheKeysOn = async (port: number) => await cluster.keysOn(port, SITE_KEYS);
          await eventually("30 keys stored in the cluster", async () => {
            const counts = await Promise.all(masters.map(cacheKeysOn));
            return counts.reduce((s, k) => s + k.length, 0) === 30;
          });
          for (const m of masters) {
            assert.ok((await cacheKeysOn(m)).length > 0, `master ${m} holds cache entries`);
          }
          // A Redis read slower than REDIS_TIMEOUT (a busy machine) is a miss: the next is a hit.
          const firstTry = await Promise.all(paths.map((p) => xcache(b, p)));
          for (const [i, p] of paths.entries()) {
            if (firstTry[i] !== "HIT") {
              await eventually(`${p} is a hit on B`, async () => await xcache(b, p) === "HIT");
            }
          }
          assert.ok(firstTry.filter((x) => x === "HIT").length >= 25, firstTry.join(" "));
        },
      );

      await t.step("the rate limit counts exactly across instances", async () => {
        const outcomes = await Promise.all(
          ["c1", "c2", "c3"].flatMap((client) =>
            Array.from({ length: 60 }, async (_, i) => {
              const res = await fetch(`${proxies[i % 3].url}/json`, {
                headers: { "x-client": client },
              });
              await res.body?.cancel();
              return `${client}:${res.status}`;
            })
          ),
        );
        const why = JSON.stringify(
          await Promise.all(proxies.map(async (p) => (await p.stats()).rate_limit)),
        );
        for (const client of ["c1", "c2", "c3"]) {
          assert.equal(
            outcomes.filter((o) => o === `${client}:200`).length,
            50,
            `${client} ${why}`,
          );
          assert.equal(outcomes.filter((o) => o === `${client}:429`).length, 10, client);
        }
      });

      await t.step(
        "PURGE by URL, by prefix and purge-all reach every master and every L1",
        async () => {
          // By URL, through C: B's in-memory copy is dropped too.
          const res = await curl(
            ...["-X", "PURGE", "-H", `Host: ${HOST}`, "-H", "x-client: purger"],
            `${c.url}/cache/60?k=0`,
          );
          assert.match(res.stdout, /"purged":1/);
          await eventually(
            "B's L1 drops k=0",
            async () => await xcache(b, "/cache/60?k=0") === "MISS",
          );
          // That MISS stores k=0 again, in the background: the counts below need it landed.
          const siteKeys = async () =>
            (await Promise.all(masters.map((m) => cluster.keysOn(m, SITE_KEYS)))).flat();
          await eventually(
            "k=0 stored again",
            async () => (await siteKeys()).some((k) => k.endsWith("?k=0")),
          );
          // By prefix (k=1, k=10…19), through A.
          const byPrefix = await admin(a, { prefix: `http://${HOST}/cache/60?k=1` });
          assert.equal(byPrefix.purged, 11);
          const left = await siteKeys();
          assert.equal(left.length, 19, left.join("\n"));
          assert.ok(!left.some((k) => k.includes("?k=1")), "prefix purge reached every master");
          await eventually(
            "B's L1 drops k=15",
            async () => await xcache(b, "/cache/60?k=15") === "MISS",
          );
          // As above: a purge-all that overtook this MISS's background store would leave k=15.
          await eventually(
            "k=15 stored again",
            async () => (await siteKeys()).some((k) => k.endsWith("?k=15")),
          );
          // Everything, through B: A's L1 (it stored k=2) drops it, the limiter's keys stay.
          const all = await admin(b, { all: true });
          assert.ok(all.purged >= 19, `purged ${all.purged}`);
          for (const m of masters) {
            assert.deepEqual(await cluster.keysOn(m, SITE_KEYS), []);
          }
          const rl = (await Promise.all(masters.map((m) => cluster.keysOn(m, `${PREFIX}rl:*`))))
            .flat();
          for (const client of ["c1", "c2", "c3"]) {
            assert.ok(
              rl.includes(`${PREFIX}rl:h:${client}`),
              "rate-limit keys are not cache entries",
            );
          }
          await eventually(
            "A's L1 drops k=2",
            async () => await xcache(a, "/cache/60?k=2") === "MISS",
          );
        },
      );

      await t.step(
        "a master fails over under load: no request fails, new entries land on the promoted replica",
        async () => {
          const victim = await cluster.masterOf(`${PREFIX}http://${HOST}/cache/60?hot=0`);
          let promotedAt = 0;
          const failover = (async () => {
            await new Promise((r) => setTimeout(r, 3000));
            await cluster.kill(victim);
            const killedAt = performance.now();
            await cluster.waitHealthy(20_000);
            promotedAt = performance.now() - killedAt;
            // Keep the load on the new layout for a while.
            await new Promise((r) => setTimeout(r, 3000));
          })();
          const load = await runLoad({
            targets: proxies.map((p) => p.url),
            host: HOST,
            // Half unique URLs (Redis read + origin + Redis write), half hot ones; a new
            // rate-limit key per request, so the limiter's script runs on every master.
            path: (n) => n % 2 ? `/cache/60?u=${n}` : `/cache/60?hot=${n % 20}`,
            headers: (n) => [["x-client", `load-${n}`]],
            concurrency: 6,
            durationMs: 25_000,
            until: failover,
          });
          await failover;
          console.log(
            `cluster failover under load: ${load.total} requests in ${load.elapsedMs} ms, ` +
              `${load.failed} failed; replica promoted ${Math.round(promotedAt)} ms after the kill`,
          );
          assert.equal(load.failed, 0, load.failures.join("\n"));
          assert.ok(load.total >= 100, `only ${load.total} requests`);

          const now = await cluster.masters();
          assert.ok(!now.includes(victim));
          const promoted = now.find((m) => !masters.includes(m));
          assert.ok(promoted, "a replica was promoted");
          // A URL whose slot the promoted replica now serves: stored there, a hit elsewhere.
          let path = "";
          for (let i = 0; i < 200 && !path; i++) {
            const p = `/cache/60?after=${i}`;
            if (await cluster.masterOf(`${PREFIX}http://${HOST}${p}`) === promoted) path = p;
          }
          assert.ok(path, "found a key on the promoted master");
          await eventually("the cache is healthy again", async () => {
            const h = await (await fetch(`${a.url}/healthz`)).json();
            return h.cache === "ok";
          });
          assert.equal(await xcache(a, path), "MISS");
          await eventually(
            "the entry lands on the promoted master",
            async () =>
              (await cluster.keysOn(promoted, SITE_KEYS)).includes(
                `${PREFIX}http://${HOST}${path}`,
              ),
          );
          assert.equal(await xcache(c, path), "HIT");
          // Invalidation still reaches the other instances after the failover.
          await admin(b, { url: `http://${HOST}${path}` });
          await eventually("A's L1 drops it", async () => await xcache(a, path) === "MISS");
        },
      );
    } finally {
      await Promise.all(proxies.map((p) => p.stop()));
      await backend.close();
      await cluster.stop();
    }
  },
});
