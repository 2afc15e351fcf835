/**
 * Scenarios run inside a private network namespace by tests/off_loopback_test.ts (see
 * ./netns.ts): a client at {@linkcode OFF_LOOPBACK} talks to real proxies and a real backend.
 * Each scenario prints its observations as one JSON line; the test asserts on them, so a
 * scenario never decides pass or fail itself.
 *
 * `deno run -A tests/helpers/off_loopback_scenarios.ts admin|forward-purge|xff`
 *
 * @module
 */
import { startTestBackend } from "./backend.ts";
import { proxiedClient } from "./http.ts";
import { OFF_LOOPBACK } from "./netns.ts";
import { startProxy, type TestProxy } from "./proxy.ts";

type Observations = Record<string, unknown>;

const outside = (p: TestProxy) => `http://${OFF_LOOPBACK}:${p.port}`;

async function status(url: string, init: RequestInit = {}): Promise<number> {
  const res = await fetch(url, init);
  await res.body?.cancel();
  return res.status;
}

async function answer(url: string, init: RequestInit = {}) {
  const res = await fetch(url, init);
  return { status: res.status, cache: res.headers.get("x-cache"), body: await res.text() };
}

/** The admin guard, met from off loopback, without and with ADMIN_TOKEN. */
async function admin(): Promise<Observations> {
  const backend = await startTestBackend("b");
  const env = {
    HOST: "0.0.0.0",
    BACKEND_SERVERS: backend.url,
    CACHE_BACKEND: "memory",
    // The memory cache is per serving thread (README): one thread, so a HIT is certain.
    SERVE_THREADS: "1",
  };
  const open = await startProxy({ env });
  const o: Observations = {};
  try {
    const url = outside(open);
    o.healthz = await status(`${url}/healthz`);
    o.statsNoToken = await status(`${url}/proxy-stats`);
    o.metricsNoToken = await status(`${url}/metrics`);
    o.purgeNoToken = await status(`${url}/cache/60`, { method: "PURGE" });
    o.purgeHealthzNoToken = await status(`${url}/healthz`, { method: "PURGE" });
    o.reloadNoToken = await status(`${url}/proxy-reload`, { method: "POST" });
    o.jsonPurgeNoToken = await status(`${url}/proxy-cache/purge`, {
      method: "POST",
      body: JSON.stringify({ all: true }),
    });
    o.statsFromLoopback = await status(`${open.url}/proxy-stats`);
  } finally {
    await open.stop();
  }
  const guarded = await startProxy({ env: { ...env, ADMIN_TOKEN: "s3cret-token" } });
  try {
    const url = outside(guarded);
    const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
    o.statsMissingToken = await status(`${url}/proxy-stats`);
    o.statsWrongToken = await status(`${url}/proxy-stats`, { headers: bearer("nope") });
    o.statsRightToken = await status(`${url}/proxy-stats`, { headers: bearer("s3cret-token") });
    o.statsXAdminToken = await status(`${url}/proxy-stats`, {
      headers: { "x-admin-token": "s3cret-token" },
    });
    await answer(`${url}/cache/60`);
    o.cachedBefore = (await answer(`${url}/cache/60`)).cache;
    o.purgeWrongToken = await status(`${url}/cache/60`, { method: "PURGE", headers: bearer("x") });
    o.cachedAfterWrongPurge = (await answer(`${url}/cache/60`)).cache;
    const purged = await answer(`${url}/cache/60`, {
      method: "PURGE",
      headers: bearer("s3cret-token"),
    });
    o.purgeRightToken = purged.status;
    o.purgeRightTokenBody = purged.body.trim();
    o.cachedAfterPurge = (await answer(`${url}/cache/60`)).cache;
  } finally {
    await guarded.stop();
    await backend.close();
  }
  return o;
}

/** PURGE of an absolute URL in forward mode: from loopback it purges, from outside it is refused. */
async function forwardPurge(): Promise<Observations> {
  const backend = await startTestBackend("origin");
  const proxy = await startProxy({
    env: {
      HOST: "0.0.0.0",
      CACHE_BACKEND: "memory",
      // The memory cache is per serving thread (README): one thread, so a HIT is certain.
      SERVE_THREADS: "1",
      FORWARD_ALLOW_PRIVATE: "true",
      // Everyone may use the proxy, so only the admin guard can refuse the outside PURGE.
      ALLOWED_CLIENTS: "0.0.0.0/0",
    },
  });
  const inside = proxiedClient(proxy.url);
  const fromOutside = proxiedClient(outside(proxy));
  const target = `${backend.url}/cache/60`;
  const via = async (client: Deno.HttpClient, method = "GET") => {
    const res = await fetch(target, { client, method });
    return {
      status: res.status,
      cache: res.headers.get("x-cache"),
      body: (await res.text()).trim(),
    };
  };
  const o: Observations = {};
  try {
    await via(inside);
    o.outsideGet = (await via(fromOutside)).status;
    o.cachedBefore = (await via(inside)).cache;
    const refused = await via(fromOutside, "PURGE");
    o.outsidePurge = refused.status;
    o.outsidePurgeBody = refused.body;
    o.cachedAfterOutsidePurge = (await via(inside)).cache;
    const purged = await via(inside, "PURGE");
    o.loopbackPurge = purged.status;
    o.loopbackPurgeBody = purged.body;
    o.cachedAfterPurge = (await via(inside)).cache;
    o.originRequests = (await backend.stats()).paths["/cache/60"];
  } finally {
    inside.close();
    fromOutside.close();
    await proxy.stop();
    await backend.close();
  }
  return o;
}

/** A forged X-Forwarded-For from an outside client, with and without TRUSTED_PROXIES. */
async function xff(): Promise<Observations> {
  const backend = await startTestBackend("b");
  const base = {
    HOST: "0.0.0.0",
    BACKEND_SERVERS: backend.url,
    RATE_LIMIT_REQUESTS: "2",
    RATE_LIMIT_WINDOW: "60",
    RATE_LIMIT_EXEMPT: "127.0.0.0/8",
    // Without Redis the limit is per serving thread (README): one thread, one budget.
    SERVE_THREADS: "1",
  };
  const o: Observations = {};
  const seenBy = async (url: string, forged: string) => {
    const res = await fetch(`${url}/headers`, { headers: { "x-forwarded-for": forged } });
    const body = res.ok ? await res.json() : (await res.body?.cancel(), {});
    return { status: res.status, xff: (body as Record<string, string>)["x-forwarded-for"] };
  };

  const untrusting = await startProxy({ env: base });
  try {
    const url = outside(untrusting);
    const first = await seenBy(url, "127.0.0.1");
    o.untrustedBackendSees = first.xff;
    o.untrustedStatuses = [
      first.status,
      (await seenBy(url, "127.0.0.1")).status,
      (await seenBy(url, "127.0.0.1")).status,
    ];
    o.untrustedAdmin = await status(`${url}/proxy-stats`, {
      headers: { "x-forwarded-for": "127.0.0.1" },
    });
  } finally {
    await untrusting.stop();
  }

  const acl = await startProxy({
    env: { ...base, RATE_LIMIT_REQUESTS: "0", ALLOWED_CLIENTS: "127.0.0.0/8" },
  });
  try {
    o.aclForgedLoopback = (await seenBy(outside(acl), "127.0.0.1")).status;
    o.aclFromLoopback = (await seenBy(acl.url, "203.0.113.9")).status;
  } finally {
    await acl.stop();
  }

  const trusting = await startProxy({ env: { ...base, TRUSTED_PROXIES: `${OFF_LOOPBACK}/32` } });
  try {
    const url = outside(trusting);
    const first = await seenBy(url, "198.51.100.7");
    o.trustedBackendSees = first.xff;
    o.trustedStatuses = [
      first.status,
      (await seenBy(url, "198.51.100.7")).status,
      (await seenBy(url, "198.51.100.7")).status,
    ];
    o.trustedOtherClient = (await seenBy(url, "198.51.100.8")).status;
    o.trustedAdminForgedLoopback = await status(`${url}/proxy-stats`, {
      headers: { "x-forwarded-for": "127.0.0.1" },
    });
  } finally {
    await trusting.stop();
    await backend.close();
  }
  return o;
}

const SCENARIOS: Record<string, () => Promise<Observations>> = {
  admin,
  "forward-purge": forwardPurge,
  xff,
};

if (import.meta.main) {
  const run = SCENARIOS[Deno.args[0]];
  if (!run) {
    console.error(`unknown scenario ${Deno.args[0]}; one of ${Object.keys(SCENARIOS).join(", ")}`);
    Deno.exit(2);
  }
  console.log(JSON.stringify(await run()));
}
