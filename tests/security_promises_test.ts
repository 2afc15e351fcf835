/**
 * SECURITY.md promises that had no test of their own (see tests/README.md, "What the tests
 * prove"): the interception CA's constraints and the start-up warning about a readable key,
 * origin-form targets at the backend, and user names that cannot be probed by timing.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import * as x509 from "@peculiar/x509";
import bcrypt from "bcryptjs";
import { createProxyAuth } from "../src/security/auth.ts";
import { startProxy } from "./helpers/proxy.ts";
import { rawRequest } from "./helpers/rawhttp.ts";
import { startRecordingBackend } from "./helpers/recorder.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const CRLF = "\r\n";

/** `proxy ca --dir DIR`, as a user runs it. */
async function proxyCa(dir: string): Promise<void> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, "main.ts"), "ca", "--dir", dir],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
}

Deno.test("interception CA: signs leaves only (CA, pathlen 0, keyCertSign), key 0600", async () => {
  const dir = await Deno.makeTempDir({ prefix: "promises-ca-" });
  try {
    await proxyCa(join(dir, "ca"));
    const cert = new x509.X509Certificate(await Deno.readTextFile(join(dir, "ca", "ca.pem")));
    const basic = cert.getExtension(x509.BasicConstraintsExtension);
    assert.ok(basic?.ca, "not a CA");
    assert.equal(basic.pathLength, 0, "it could sign other CAs");
    assert.ok(basic.critical);
    const usage = cert.getExtension(x509.KeyUsagesExtension);
    assert.ok(usage && (usage.usages & x509.KeyUsageFlags.keyCertSign) !== 0);
    const years = (cert.notAfter.getTime() - cert.notBefore.getTime()) / (365.25 * 86400_000);
    assert.ok(years > 9.9 && years < 10.1, `valid for ${years} years`);
    assert.equal((await Deno.stat(join(dir, "ca", "ca-key.pem"))).mode! & 0o777, 0o600);
    assert.equal((await Deno.stat(join(dir, "ca"))).mode! & 0o777, 0o700);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "interception CA: a key readable by others is warned about at start-up, a 0600 key is not",
  ignore: Deno.build.os === "windows", // no Unix modes there
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "promises-ca-" });
    const caDir = join(dir, "ca");
    try {
      await proxyCa(caDir);
      const run = async () => {
        const proxy = await startProxy({
          env: { TLS_INTERCEPT: "on", TLS_INTERCEPT_CA_DIR: caDir, LOG_LEVEL: "warn" },
        });
        await proxy.stop();
        return proxy.output();
      };
      assert.doesNotMatch(await run(), /readable by others/);
      await Deno.chmod(join(caDir, "ca-key.pem"), 0o644);
      assert.match(await run(), /ca-key\.pem is readable by others \(mode 644\)/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("backends always receive an origin-form request target, in reverse and forward mode", async () => {
  const reverseBackend = startRecordingBackend();
  const forwardOrigin = startRecordingBackend("127.0.0.2");
  const reverse = await startProxy({ env: { BACKEND_SERVERS: reverseBackend.url } });
  const forward = await startProxy({ env: { FORWARD_ALLOW_PRIVATE: "127.0.0.2/32" } });
  try {
    // Reverse mode serves an absolute-form request for its authority, still origin-form upstream.
    const r = await rawRequest(
      reverse.port,
      `GET http://app.test/a/b?c=d HTTP/1.1${CRLF}Host: app.test${CRLF}${CRLF}`,
    );
    assert.equal(r.status, 200, r.raw.slice(0, 200));
    assert.deepEqual(reverseBackend.requests.map((x) => x.line), ["GET /a/b?c=d HTTP/1.1"]);
    const f = await rawRequest(
      forward.port,
      `GET ${forwardOrigin.url}/x/y?z HTTP/1.1${CRLF}Host: 127.0.0.2:${forwardOrigin.port}${CRLF}${CRLF}`,
    );
    assert.equal(f.status, 200, f.raw.slice(0, 200));
    assert.deepEqual(forwardOrigin.requests.map((x) => x.line), ["GET /x/y?z HTTP/1.1"]);
  } finally {
    await reverse.stop();
    await forward.stop();
    await reverseBackend.close();
    await forwardOrigin.close();
  }
});

/** Median time of `verify` over `n` distinct wrong credentials (no cached verdict to hit). */
async function medianVerifyMs(
  auth: ReturnType<typeof createProxyAuth>,
  user: string,
  n: number,
): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const header = "Basic " + btoa(`${user}:guess-${crypto.randomUUID()}`);
    const t0 = performance.now();
    assert.equal(await auth.verify(header), undefined);
    times.push(performance.now() - t0);
  }
  return times.sort((a, b) => a - b)[Math.floor(n / 2)];
}

// htpasswd -B uses cost 5 by default; 10 is what bcrypt libraries default to.
for (const cost of [5, 10]) {
  Deno.test(`an unknown user name costs what a wrong password costs (bcrypt cost ${cost}): names cannot be probed by timing`, async () => {
    const file = await Deno.makeTempFile({ suffix: ".htpasswd" });
    await Deno.writeTextFile(file, `alice:${bcrypt.hashSync("wonderland", cost)}\n`);
    const auth = createProxyAuth({ file });
    try {
      // Interleaved rounds, medians: load on the machine hits both sides alike.
      const ratios: number[] = [];
      for (let round = 0; round < 3; round++) {
        const wrong = await medianVerifyMs(auth, "alice", 5);
        const unknown = await medianVerifyMs(auth, "mallory", 5);
        ratios.push(unknown / wrong);
      }
      const ratio = ratios.sort((a, b) => a - b)[1];
      // Without the equal-cost check an unknown name answers ~20x faster or slower.
      assert.ok(ratio > 1 / 3 && ratio < 3, `unknown/wrong time ratio ${ratio.toFixed(2)}`);
    } finally {
      await Deno.remove(file);
    }
  });
}
