import assert from "node:assert/strict";
import { ConfigError, loadConfig } from "../config/mod.ts";
import { describeRedis, redisConfigured, redisConnectOptions } from "./settings.ts";

const noFile = (path: string): string => {
  throw new Deno.errors.NotFound(path);
};

function load(env: Record<string, string>, args: string[] = []) {
  return loadConfig({ args, env, readTextFile: noFile }).config;
}

function loadError(env: Record<string, string>, args: string[] = []): string {
  try {
    loadConfig({ args, env, readTextFile: noFile });
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message;
  }
  throw new Error("expected a ConfigError");
}

Deno.test("Redis topology: cluster and sentinel settings win over REDIS_URL and host/port", () => {
  const single = load({ REDIS_HOST: "10.0.0.9", REDIS_PORT: "6380" });
  assert.equal(redisConnectOptions(single).topology, "single");
  assert.equal(
    redisConfigured(single),
    false,
    "host/port alone are defaults for CACHE_BACKEND=auto",
  );
  assert.equal(describeRedis(single), "single 10.0.0.9:6380");

  const cluster = load({
    REDIS_URL: "redis://127.0.0.1:6379",
    REDIS_CLUSTER_NODES: "10.0.0.1:7000, 10.0.0.2:7000,[::1]:7001",
    REDIS_PASSWORD: "pw",
    REDIS_USERNAME: "proxy",
  });
  const c = redisConnectOptions(cluster);
  assert.equal(c.topology, "cluster");
  assert.equal(c.url, undefined, "REDIS_URL is not used beside a cluster");
  assert.deepEqual(c.cluster, [
    { host: "10.0.0.1", port: 7000 },
    { host: "10.0.0.2", port: 7000 },
    { host: "::1", port: 7001 },
  ]);
  assert.equal(c.username, "proxy");
  assert.equal(c.password, "pw");
  assert.equal(describeRedis(cluster), "cluster (3 seed nodes)");

  const sentinel = load({}, [
    "--redis-sentinels=s1:26379,s2:26379,s3:26379",
    "--redis-sentinel-name=shop",
    "--redis-url=redis://127.0.0.1:6379",
  ]);
  const s = redisConnectOptions(sentinel);
  assert.equal(s.topology, "sentinel");
  assert.equal(s.sentinelName, "shop");
  assert.equal(s.sentinels?.length, 3);
  assert.equal(describeRedis(sentinel), 'sentinel "shop" (3 sentinels)');
});

Deno.test("Redis TLS: rediss://, REDIS_TLS and a private CA", () => {
  const pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
  const tlsUrl = load({ REDIS_URL: "rediss://proxy:secret@redis.example:6380/2" });
  assert.deepEqual(redisConnectOptions(tlsUrl).tls, {});
  assert.equal(describeRedis(tlsUrl), "single rediss://redis.example:6380");
  const withCa = load({ REDIS_CLUSTER_NODES: "a:1", REDIS_TLS_CA_FILE: "/etc/ca.pem" });
  assert.deepEqual(redisConnectOptions(withCa, () => pem).tls, { ca: pem });
  assert.equal(redisConnectOptions(load({ REDIS_URL: "redis://a:1" })).tls, undefined);
  assert.deepEqual(
    redisConnectOptions(load({ REDIS_SENTINELS: "a:1", REDIS_TLS: "true" })).tls,
    {},
  );
  assert.throws(
    () => redisConnectOptions(withCa, noFile),
    /^Error: REDIS_TLS_CA_FILE: cannot read "\/etc\/ca.pem"/,
  );
  assert.throws(
    () => redisConnectOptions(withCa, () => "not a pem"),
    /REDIS_TLS_CA_FILE: "\/etc\/ca.pem" holds no PEM certificate/,
  );
});

Deno.test("Redis settings: a bad value stops start-up with one line naming the setting", () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ REDIS_SENTINELS: "sentinel-without-port" }, /^REDIS_SENTINELS: invalid value .*host:port/],
    [
      { REDIS_CLUSTER_NODES: "10.0.0.1:7000,10.0.0.2:99999" },
      /^REDIS_CLUSTER_NODES: .*10\.0\.0\.2:99999/,
    ],
    [{ REDIS_URL: "http://127.0.0.1:6379" }, /^REDIS_URL: .*redis: or rediss:/],
    [{ REDIS_URL: "redis://127.0.0.1:6379/zero" }, /^REDIS_URL: .*database number/],
    [{ REDIS_TLS: "maybe" }, /^REDIS_TLS: invalid value/],
    [
      { REDIS_SENTINELS: "a:26379", REDIS_CLUSTER_NODES: "b:7000" },
      /^REDIS_CLUSTER_NODES and REDIS_SENTINELS: choose one/,
    ],
  ];
  for (const [env, pattern] of cases) {
    const msg = loadError(env);
    assert.match(msg, pattern);
    assert.ok(!msg.includes("\n"), `one line: ${msg}`);
  }
});
