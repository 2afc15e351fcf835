/**
 * REDIS_URL with `rediss://` (TLS, private CA via REDIS_TLS_CA_FILE) and an
 * ACL user (`user:password@`) against a real TLS-only redis-server whose
 * default user is switched off.
 */
import assert from "node:assert/strict";
import { startTestBackend } from "./helpers/backend.ts";
import { curl } from "./helpers/http.ts";
import { freePort, waitForPort } from "./helpers/ports.ts";
import { startProxy } from "./helpers/proxy.ts";
import { TEST_CA_PATH, TEST_CERT_PATH, TEST_KEY_PATH } from "./helpers/tls.ts";

const dec = new TextDecoder();

Deno.test({
  name: "REDIS_URL rediss://user:password@ with REDIS_TLS_CA_FILE: the cache is shared over TLS " +
    "as an ACL user; a bad CA file stops start-up with one line",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const port = freePort();
    const redis = new Deno.Command("redis-server", {
      args: [
        ...["--port", "0", "--tls-port", String(port), "--bind", "127.0.0.1"],
        ...["--save", "", "--appendonly", "no", "--tls-auth-clients", "no"],
        ...["--tls-cert-file", TEST_CERT_PATH, "--tls-key-file", TEST_KEY_PATH],
        ...["--tls-ca-cert-file", TEST_CA_PATH],
        // Only the ACL user may do anything.
        ...[
          "--user",
          "default",
          "off",
          "--user",
          "cacheuser",
          "on",
          ">s3cret",
          "~*",
          "&*",
          "+@all",
        ],
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    const backend = await startTestBackend("origin");
    try {
      await waitForPort(port);
      const bad = await startProxy({
        env: {
          BACKEND_SERVERS: backend.url,
          CACHE_BACKEND: "redis",
          REDIS_URL: `rediss://cacheuser:s3cret@localhost:${port}`,
          REDIS_TLS_CA_FILE: "/nonexistent/ca.pem",
        },
        expectExit: true,
      });
      const lines = bad.output().trim().split("\n");
      assert.equal(lines.length, 1, bad.output());
      assert.match(lines[0], /REDIS_TLS_CA_FILE: cannot read "\/nonexistent\/ca.pem"/);

      const proxy = await startProxy({
        env: {
          BACKEND_SERVERS: backend.url,
          CACHE_BACKEND: "redis",
          CACHE_PREFIX: "tls:",
          REDIS_URL: `rediss://cacheuser:s3cret@localhost:${port}/0`,
          REDIS_TLS_CA_FILE: TEST_CA_PATH,
        },
      });
      try {
        assert.match(proxy.output(), new RegExp(`redis single rediss://localhost:${port}`));
        const deadline = Date.now() + 15_000;
        let health: Record<string, unknown> = {};
        while (Date.now() < deadline) {
          health = await (await fetch(`${proxy.url}/healthz`)).json();
          if (health.cache === "ok") break;
          await new Promise((r) => setTimeout(r, 100));
        }
        assert.equal(health.cache, "ok", JSON.stringify(health));
        assert.equal(health.redis, "single");
        const first = await curl("-s", "-o", "/dev/null", "-D", "-", `${proxy.url}/cache/60`);
        assert.match(first.stdout, /x-cache: MISS/i);
        let keys = "";
        while (Date.now() < deadline && !keys.includes("tls:")) {
          const out = await new Deno.Command("redis-cli", {
            args: [
              ...["--tls", "--cacert", TEST_CA_PATH, "-h", "localhost", "-p", String(port)],
              ...["--user", "cacheuser", "--pass", "s3cret", "--no-auth-warning", "--scan"],
            ],
          }).output();
          keys = dec.decode(out.stdout);
        }
        assert.match(keys, /^tls:http:\/\/127\.0\.0\.1:\d+\/cache\/60$/m, "stored over TLS");
      } finally {
        await proxy.stop();
      }
    } finally {
      await backend.close();
      redis.kill("SIGKILL");
      await redis.status;
    }
  },
});
