/**
 * TLS interception end to end, as a user runs it: `proxy ca`, the proxy as a
 * process with TLS_INTERCEPT=on, local HTTPS origins with a CA of their own
 * (tests/fixtures), and real clients (curl, Python's urllib, raw TLS) that
 * trust only the proxy's CA. No internet: every origin is on loopback, so
 * FORWARD_ALLOW_PRIVATE=true and CONNECT_PORTS lists the origins' ports.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startProxy, type TestProxy } from "./helpers/proxy.ts";
import { curl } from "./helpers/http.ts";
import { startRedis } from "./helpers/redis.ts";
import { TEST_CA_PATH, TEST_CERT, TEST_KEY } from "./helpers/tls.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const FIXTURES = new URL("./fixtures/", import.meta.url).pathname;
const UNTRUSTED_CERT = Deno.readTextFileSync(join(FIXTURES, "tls2.crt"));
const UNTRUSTED_KEY = Deno.readTextFileSync(join(FIXTURES, "tls2.key"));

/** 6 MiB that are not all alike, so a lost or reordered piece shows in the digest. */
const LARGE = new Uint8Array(6 * 1024 * 1024).map((_, i) => (i * 7 + (i >> 12)) & 0xff);

async function sha256Hex(data: Uint8Array<ArrayBuffer>): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A local HTTPS origin that counts what it was asked. */
function startOrigin(cert = TEST_CERT, key = TEST_KEY) {
  const hits = new Map<string, number>();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, cert, key, onListen() {} },
    (req) => {
      const path = new URL(req.url).pathname;
      hits.set(path, (hits.get(path) ?? 0) + 1);
      if (path === "/cached") {
        return new Response("cached over https\n", {
          headers: { "cache-control": "max-age=60", "content-type": "text/plain" },
        });
      }
      if (path === "/large") return new Response(LARGE);
      if (path === "/echo") return new Response(req.body);
      if (path === "/big") {
        return new Response("compressible line of text\n".repeat(400), {
          headers: { "cache-control": "max-age=60", "content-type": "text/plain" },
        });
      }
      return new Response(`origin ${path}\n`, { headers: { "content-type": "text/plain" } });
    },
  );
  const port = server.addr.port;
  return { port, hits, close: () => server.shutdown() };
}

/** A CA made by `proxy ca`, as a user would; returns its directory and ca.pem. */
async function makeCa(): Promise<{ dir: string; caPath: string; output: string }> {
  const dir = await Deno.makeTempDir({ prefix: "intercept-e2e-" });
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, "main.ts"), "ca", "--dir", join(dir, "ca")],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const output = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, output);
  return { dir: join(dir, "ca"), caPath: join(dir, "ca", "ca.pem"), output };
}

function interceptEnv(caDir: string, ports: number[], extra: Record<string, string> = {}) {
  return {
    TLS_INTERCEPT: "on",
    TLS_INTERCEPT_CA_DIR: caDir,
    FORWARD_ALLOW_PRIVATE: "true",
    CONNECT_PORTS: ["443", ...ports.map(String)].join(","),
    UPSTREAM_CA_FILE: TEST_CA_PATH,
    CACHE_BACKEND: "memory",
    // One thread: minted leaf certificates are kept per serving thread, and these tests count
    // one mint per name (issue 14 left the certificate cache per thread).
    SERVE_THREADS: "1",
    ...extra,
  };
}

// deno-lint-ignore no-explicit-any
async function interceptStats(proxy: TestProxy): Promise<Record<string, any>> {
  return (await proxy.stats()).intercept;
}

Deno.test("proxy ca prints the trust steps; TLS_INTERCEPT=on without a CA stops with one line naming it", async () => {
  const { dir, output } = await makeCa();
  try {
    for (
      const step of [
        "update-ca-certificates",
        "security add-trusted-cert",
        "certutil",
        "Firefox",
        "NODE_EXTRA_CA_CERTS",
        "PIP_CERT",
        "npm config set cafile",
        "--ignore-certificate-errors-spki-list=",
      ]
    ) assert.ok(output.includes(step), `proxy ca output lacks ${step}:\n${output}`);
    const help = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", join(ROOT, "main.ts"), "ca", "--help"],
      cwd: ROOT,
      stdout: "piped",
    }).output();
    assert.equal(help.code, 0);
    assert.match(new TextDecoder().decode(help.stdout), /^USAGE\n {2}proxy ca \[--dir DIR\]/m);
    const proxy = await startProxy({
      env: { TLS_INTERCEPT: "on", TLS_INTERCEPT_CA_DIR: join(dir, "missing") },
      expectExit: true,
    });
    const code = await proxy.signal("SIGTERM");
    assert.equal(code, 2);
    const lines = proxy.output().trim().split("\n").filter((l) => l.includes("proxy ca"));
    assert.equal(lines.length, 1, proxy.output());
  } finally {
    await Deno.remove(dir.replace(/\/ca$/, ""), { recursive: true });
  }
});

Deno.test("curl and Python through the intercepting proxy: cached HTTPS, full URL logged, counters", async () => {
  const { dir, caPath } = await makeCa();
  const origin = startOrigin();
  const proxy = await startProxy({
    env: interceptEnv(dir, [origin.port], { ACCESS_LOG: "true", LOG_LEVEL: "info" }),
  });
  try {
    const url = `https://localhost:${origin.port}/cached`;
    const get = () =>
      curl("-i", "-x", proxy.url, "--cacert", caPath, "-w", "\n%{http_version}", url);
    const first = await get();
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /\r\n\r\nHTTP\/1\.1 200 /);
    assert.match(first.stdout, /x-cache: MISS/i);
    const second = await get();
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /x-cache: HIT/i);
    assert.match(second.stdout, /cached over https/);
    assert.equal(origin.hits.get("/cached"), 1, "the origin was asked once");

    // Python's urllib, trusting only the proxy's CA.
    const py = await new Deno.Command("python3", {
      args: [
        "-c",
        `import ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[2])
opener = urllib.request.build_opener(
    urllib.request.ProxyHandler({"https": sys.argv[1]}),
    urllib.request.HTTPSHandler(context=ctx))
r = opener.open(sys.argv[3], timeout=30)
print(r.status, r.headers.get("x-cache"), r.read().decode().strip())`,
        proxy.url,
        caPath,
        url,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const pyOut = new TextDecoder().decode(py.stdout).trim();
    assert.equal(py.code, 0, new TextDecoder().decode(py.stderr));
    assert.equal(pyOut, "200 HIT cached over https");
    assert.equal(origin.hits.get("/cached"), 1);

    // A client offering h2 gets HTTP/1.1 by ALPN and works.
    const h2 = await curl(
      "-s",
      "--http2",
      "-x",
      proxy.url,
      "--cacert",
      caPath,
      "-o",
      "/dev/null",
      "-w",
      "%{http_version} %{http_code}",
      url,
    );
    assert.equal(h2.stdout, "1.1 200", h2.stderr);

    // Compression inside the tunnel.
    const big = await curl(
      "-s",
      "-D",
      "-",
      "-o",
      "/dev/null",
      "-H",
      "accept-encoding: gzip",
      "-x",
      proxy.url,
      "--cacert",
      caPath,
      `https://localhost:${origin.port}/big`,
    );
    assert.match(big.stdout, /content-encoding: gzip/i);

    const stats = await interceptStats(proxy);
    assert.ok(stats.connections_intercepted >= 4, JSON.stringify(stats));
    assert.equal(stats.certificates_minted, 1, "one leaf for localhost, reused");
    assert.equal(stats.upstream_verify_failures, 0);
    const metrics = await (await fetch(`${proxy.url}/metrics`)).text();
    assert.match(metrics, /proxy_intercept_connections_total\{kind="intercepted"\} [1-9]/);
    assert.match(metrics, /proxy_intercept_certificates_minted_total 1/);
    assert.ok(
      proxy.output().includes(`GET https://localhost:${origin.port}/cached 200`),
      `access log has the full https URL:\n${proxy.output()}`,
    );
  } finally {
    await proxy.stop();
    await origin.close();
    await Deno.remove(dir.replace(/\/ca$/, ""), { recursive: true });
  }
});

Deno.test("bypassed host keeps the origin's certificate; untrusted origin 502; listed host refused before TLS; path rules inside", async () => {
  const { dir, caPath } = await makeCa();
  const origin = startOrigin();
  const untrusted = startOrigin(UNTRUSTED_CERT, UNTRUSTED_KEY);
  const lists = await Deno.makeTempFile({ suffix: ".txt" });
  // Rules need a dotted name: shop.test is never resolved, as the rule answers first.
  await Deno.writeTextFile(lists, "blocked.test\n||shop.test/ads/\n");
  const proxy = await startProxy({
    env: interceptEnv(dir, [origin.port, untrusted.port], {
      TLS_INTERCEPT_BYPASS: "127.0.0.1",
      FILTER_LISTS: lists,
    }),
  });
  try {
    // Bypassed: a plain tunnel, so only the origin's own CA verifies it.
    const bypassUrl = `https://127.0.0.1:${origin.port}/plain`;
    const own = await curl("-x", proxy.url, "--cacert", TEST_CA_PATH, bypassUrl);
    assert.equal(own.code, 0, own.stderr);
    assert.equal(own.stdout, "origin /plain\n");
    const viaProxyCa = await curl("-x", proxy.url, "--cacert", caPath, bypassUrl);
    assert.equal(viaProxyCa.code, 60, "the proxy's CA does not verify a bypassed origin");

    // Untrusted origin: refused with the reason, never re-signed.
    const bad = await curl(
      "-i",
      "-x",
      proxy.url,
      "--cacert",
      caPath,
      `https://localhost:${untrusted.port}/`,
    );
    assert.equal(bad.code, 0, bad.stderr);
    // curl -i shows the CONNECT's answer first, then the response inside the tunnel.
    assert.match(bad.stdout, /^HTTP\/1\.1 200 Connection Established\r\n\r\nHTTP\/1\.1 502 /);
    assert.match(bad.stdout, /certificate/i);
    assert.equal(untrusted.hits.size, 0);

    // Listed host: 403 to the CONNECT itself, before any TLS or certificate.
    const listed = await curl(
      "-v",
      "-x",
      proxy.url,
      "--cacert",
      caPath,
      `https://blocked.test:${origin.port}/`,
    );
    assert.notEqual(listed.code, 0);
    assert.match(listed.stderr, /CONNECT tunnel failed, response 403|< HTTP\/1\.1 403/);

    // A path rule applies inside the tunnel; other paths of the host go on (and fail to resolve).
    const inside = (path: string) =>
      curl(
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-x",
        proxy.url,
        "--cacert",
        caPath,
        `https://shop.test${path}`,
      );
    assert.equal((await inside("/ads/banner.js")).stdout, "403");
    assert.equal((await inside("/index.html")).stdout, "502");

    const stats = await interceptStats(proxy);
    assert.equal(stats.connections_tunnelled, 2, JSON.stringify(stats));
    assert.equal(stats.upstream_verify_failures, 1, JSON.stringify(stats));
    assert.equal(
      stats.certificates_minted,
      2,
      "localhost and shop.test; not 127.0.0.1 nor blocked.test",
    );
  } finally {
    await proxy.stop();
    await origin.close();
    await untrusted.close();
    await Deno.remove(lists);
    await Deno.remove(dir.replace(/\/ca$/, ""), { recursive: true });
  }
});

/** CONNECT through the proxy, then a TLS handshake trusting `ca`; resolves when it is done. */
async function handshakeThrough(proxyPort: number, name: string, ca: string): Promise<void> {
  const tcp = await Deno.connect({ hostname: "127.0.0.1", port: proxyPort });
  try {
    await tcp.write(
      new TextEncoder().encode(`CONNECT ${name}:443 HTTP/1.1\r\nhost: ${name}:443\r\n\r\n`),
    );
    const buf = new Uint8Array(1024);
    let head = "";
    while (!head.includes("\r\n\r\n")) {
      const n = await tcp.read(buf);
      if (n === null) throw new Error(`proxy closed the CONNECT to ${name}: ${head}`);
      head += new TextDecoder().decode(buf.subarray(0, n));
    }
    assert.match(head, /^HTTP\/1\.1 200/);
    const tls = await Deno.startTls(tcp, { hostname: name, caCerts: [ca] });
    await tls.handshake();
    tls.close();
  } catch (err) {
    try {
      tcp.close();
    } catch { /* closed by the TLS connection */ }
    throw err;
  }
}

Deno.test("200 concurrent first handshakes to 50 names: one certificate minted per name", async () => {
  const { dir, caPath } = await makeCa();
  const ca = await Deno.readTextFile(caPath);
  const proxy = await startProxy({ env: interceptEnv(dir, []) });
  try {
    const names = Array.from({ length: 50 }, (_, i) => `site${i}.test`);
    await Promise.all(
      Array.from({ length: 200 }, (_, i) => handshakeThrough(proxy.port, names[i % 50], ca)),
    );
    const stats = await interceptStats(proxy);
    assert.equal(stats.certificates_minted, 50, JSON.stringify(stats));
    assert.equal(stats.certificates_cached, 50);
    assert.equal(stats.handshake_failures, 0);
    // Every client closed its connection: none stays counted as open (no leak).
    const deadline = Date.now() + 20_000;
    while ((await interceptStats(proxy)).open_intercepted !== 0) {
      assert.ok(
        Date.now() < deadline,
        "intercepted connections still open after their clients left",
      );
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await proxy.stop();
    await Deno.remove(dir.replace(/\/ca$/, ""), { recursive: true });
  }
});

Deno.test("intercepted entries are shared through Redis: a MISS on one instance is a HIT on another", async () => {
  const { dir, caPath } = await makeCa();
  const origin = startOrigin();
  const redis = await startRedis();
  const env = interceptEnv(dir, [origin.port], {
    CACHE_BACKEND: "redis",
    REDIS_URL: redis.url,
    CACHE_PREFIX: `intercept-${crypto.randomUUID().slice(0, 8)}:`,
  });
  const a = await startProxy({ env });
  const b = await startProxy({ env });
  try {
    const url = `https://localhost:${origin.port}/cached`;
    const one = await curl("-si", "-x", a.url, "--cacert", caPath, url);
    assert.match(one.stdout, /x-cache: MISS/i, one.stderr);
    const two = await curl("-si", "-x", b.url, "--cacert", caPath, url);
    assert.match(two.stdout, /x-cache: HIT/i, two.stderr);
    assert.equal(origin.hits.get("/cached"), 1);
  } finally {
    await a.stop();
    await b.stop();
    await redis.stop();
    await origin.close();
    await Deno.remove(dir.replace(/\/ca$/, ""), { recursive: true });
  }
});

Deno.test("large bodies both ways through an intercepted tunnel arrive whole", async () => {
  const { dir, caPath } = await makeCa();
  const origin = startOrigin();
  const proxy = await startProxy({ env: interceptEnv(dir, [origin.port]) });
  const upload = await Deno.makeTempFile();
  try {
    await Deno.writeFile(upload, LARGE);
    const base = `https://localhost:${origin.port}`;
    const expected = await sha256Hex(LARGE);
    const down = await new Deno.Command("curl", {
      args: ["-sS", "--max-time", "60", "-x", proxy.url, "--cacert", caPath, `${base}/large`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(down.code, 0, new TextDecoder().decode(down.stderr));
    assert.equal(down.stdout.length, LARGE.length);
    assert.equal(await sha256Hex(down.stdout), expected);
    const up = await new Deno.Command("curl", {
      args: [
        "-sS",
        "--max-time",
        "60",
        "-x",
        proxy.url,
        "--cacert",
        caPath,
        "--data-binary",
        `@${upload}`,
        "-H",
        "content-type: application/octet-stream",
        `${base}/echo`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(up.code, 0, new TextDecoder().decode(up.stderr));
    assert.equal(await sha256Hex(up.stdout), expected);
  } finally {
    await proxy.stop();
    await origin.close();
    await Deno.remove(upload);
    await Deno.remove(dir.replace(/\/ca$/, ""), { recursive: true });
  }
});
