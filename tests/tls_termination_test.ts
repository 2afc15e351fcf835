/**
 * End-to-end: the proxy port speaking HTTPS (HTTP/2 or HTTP/1.1 by ALPN; tests/h2_test.ts covers
 * HTTP/2 itself), certificate errors and reload.
 */
import assert from "node:assert/strict";
import { startTestBackend } from "./helpers/backend.ts";
import { curl } from "./helpers/http.ts";
import { startProxy } from "./helpers/proxy.ts";
import { startTlsOrigin, TEST_CA_PATH, TEST_CERT_PATH, TEST_KEY_PATH } from "./helpers/tls.ts";
import { ignoreUnless } from "./helpers/ignore.ts";

const FIXTURES = new URL("./fixtures/", import.meta.url);

Deno.test("reverse mode with TLS_CERT/TLS_KEY serves HTTPS; HTTP/1.1 by ALPN unless HTTP2=on", async () => {
  const backend = await startTestBackend("a");
  const proxy = await startProxy({
    env: { BACKEND_SERVERS: backend.url, TLS_CERT: TEST_CERT_PATH, TLS_KEY: TEST_KEY_PATH },
  });
  try {
    const h2 = await curl(
      "--http2",
      "--cacert",
      TEST_CA_PATH,
      "-sS",
      "-o",
      "/dev/null",
      "-w",
      "%{http_version} %{http_code}",
      `https://localhost:${proxy.port}/json`,
    );
    // HTTP2 is off by default: a client offering h2 and http/1.1 by ALPN gets HTTP/1.1
    // (tests/h2_test.ts covers HTTP2=on).
    assert.equal(h2.stdout, "1.1 200", h2.stderr);
    const h1 = await curl(
      "--http1.1",
      "--cacert",
      TEST_CA_PATH,
      "-i",
      `https://localhost:${proxy.port}/json`,
    );
    assert.match(h1.stdout, /^HTTP\/1\.1 200/);
    assert.match(h1.stdout, /x-backend: a/i);
  } finally {
    await proxy.stop();
    await backend.close();
  }
});

Deno.test("an unreadable or invalid certificate stops start-up with one clear line", async () => {
  const missing = await startProxy({
    env: {
      BACKEND_SERVERS: "http://127.0.0.1:9",
      TLS_CERT: "/nonexistent/cert.pem",
      TLS_KEY: TEST_KEY_PATH,
    },
    expectExit: true,
  });
  assert.equal(await missing.signal("SIGTERM"), 2);
  assert.match(missing.output(), /TLS_CERT: cannot use "\/nonexistent\/cert.pem"/);

  const garbage = await Deno.makeTempFile({ suffix: ".pem" });
  await Deno.writeTextFile(
    garbage,
    "-----BEGIN CERTIFICATE-----\nnot base64!!\n-----END CERTIFICATE-----\n",
  );
  const bad = await startProxy({
    env: { BACKEND_SERVERS: "http://127.0.0.1:9", TLS_CERT: garbage, TLS_KEY: TEST_KEY_PATH },
    expectExit: true,
  });
  assert.equal(await bad.signal("SIGTERM"), 2);
  assert.match(bad.output(), /TLS_CERT/);
  await Deno.remove(garbage);
});

Deno.test({
  name: "SIGHUP reloads the certificate without dropping an in-flight request",
  ignore: ignoreUnless(
    "TLS reload without drops",
    Deno.build.os === "linux",
    "SO_REUSEPORT is Linux only",
  ),
  async fn() {
    const backend = await startTestBackend("a");
    const dir = await Deno.makeTempDir();
    const cert = `${dir}/cert.pem`;
    const key = `${dir}/key.pem`;
    await Deno.copyFile(TEST_CERT_PATH, cert);
    await Deno.copyFile(TEST_KEY_PATH, key);
    const proxy = await startProxy({
      env: { BACKEND_SERVERS: backend.url, TLS_CERT: cert, TLS_KEY: key },
    });
    try {
      const url = `https://localhost:${proxy.port}`;
      const slow = curl(
        "--cacert",
        TEST_CA_PATH,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        `${url}/delay/3000`,
      );
      // The certificate changes once the slow request is in flight at the backend.
      const deadline = Date.now() + 20_000;
      while (((await backend.stats()).paths["/delay/3000"] ?? 0) < 1) {
        if (Date.now() > deadline) throw new Error("the slow request never reached the backend");
        await new Promise((r) => setTimeout(r, 20));
      }
      await Deno.copyFile(new URL("tls2.crt", FIXTURES), cert);
      await Deno.copyFile(new URL("tls2.key", FIXTURES), key);
      proxy.process.kill("SIGHUP");
      let switched = false;
      for (let i = 0; i < 50 && !switched; i++) {
        await new Promise((r) => setTimeout(r, 100));
        const r = await curl(
          "--cacert",
          new URL("ca2.crt", FIXTURES).pathname,
          "-o",
          "/dev/null",
          "-w",
          "%{http_code}",
          `${url}/json`,
        );
        switched = r.stdout === "200";
      }
      assert.ok(switched, `new certificate not served: ${proxy.output()}`);
      assert.equal((await slow).stdout, "200", "the in-flight request finished");
    } finally {
      await proxy.stop();
      await backend.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("forward mode with TLS: an HTTPS proxy that still forwards and tunnels", async () => {
  const backend = await startTestBackend("a");
  const proxy = await startProxy({
    env: { TLS_CERT: TEST_CERT_PATH, TLS_KEY: TEST_KEY_PATH, FORWARD_ALLOW_PRIVATE: "true" },
  });
  try {
    const r = await curl(
      "--proxy-cacert",
      TEST_CA_PATH,
      "-x",
      `https://localhost:${proxy.port}`,
      `${backend.url}/json`,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /{/);
  } finally {
    await proxy.stop();
    await backend.close();
  }
});

Deno.test("https backends with a private CA: UPSTREAM_CA_FILE makes them trusted", async () => {
  const origin = startTlsOrigin("private pki");
  const trusting = await startProxy({
    env: { BACKEND_SERVERS: origin.url, UPSTREAM_CA_FILE: TEST_CA_PATH },
  });
  const untrusting = await startProxy({ env: { BACKEND_SERVERS: origin.url } });
  try {
    const ok = await fetch(`${trusting.url}/`);
    assert.equal(ok.status, 200);
    assert.equal(await ok.text(), "private pki");
    const refused = await fetch(`${untrusting.url}/`);
    assert.equal(refused.status, 502);
    await refused.body?.cancel();
  } finally {
    await trusting.stop();
    await untrusting.stop();
    await origin.close();
  }
  const missing = await startProxy({
    env: { BACKEND_SERVERS: origin.url, UPSTREAM_CA_FILE: "/nonexistent/ca.pem" },
    expectExit: true,
  });
  assert.equal(await missing.signal("SIGTERM"), 2);
  assert.match(missing.output(), /UPSTREAM_CA_FILE: cannot read "\/nonexistent\/ca.pem"/);
});
