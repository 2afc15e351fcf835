import assert from "node:assert/strict";
import { createForwarder, UpstreamError } from "./mod.ts";
import { serveOrigin, testInfo, testOptions } from "./testing.ts";

/** A fresh self-signed certificate for 127.0.0.1 (openssl is part of the dev environment). */
async function selfSigned(): Promise<{ cert: string; key: string }> {
  const dir = await Deno.makeTempDir();
  try {
    const out = await new Deno.Command("openssl", {
      args: [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        `${dir}/key.pem`,
        "-out",
        `${dir}/cert.pem`,
        "-days",
        "2",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1,DNS:localhost",
        "-addext",
        "basicConstraints=critical,CA:FALSE",
      ],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
    return {
      cert: await Deno.readTextFile(`${dir}/cert.pem`),
      key: await Deno.readTextFile(`${dir}/key.pem`),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("https upstreams: trusted through caCerts, pooled, refused when untrusted", async () => {
  const tls = await selfSigned();
  const origin = serveOrigin(
    async (req) => new Response(`tls:${req.method}:${await req.text()}`),
    tls,
  );
  const trusting = createForwarder(testOptions({ caCerts: [tls.cert] }));
  const strict = createForwarder(testOptions());
  try {
    for (let i = 0; i < 3; i++) {
      const res = await trusting.forward(
        new Request("http://x/", {
          method: "POST",
          body: "b" + i,
          headers: { "content-length": "2" },
        }),
        origin.url,
        testInfo(),
      );
      assert.equal(await res.text(), `tls:POST:b${i}`);
    }
    const snap = trusting.snapshot();
    assert.equal(snap.connections_opened, 1);
    assert.ok(snap.origins[`https://127.0.0.1:${origin.url.port}`]);

    const err = await strict.forward(new Request("http://x/"), origin.url, testInfo()).then(
      () => undefined,
      (e) => e,
    );
    assert.ok(err instanceof UpstreamError);
    assert.equal(err.kind, "connect");
    assert.equal(err.status, 502);
    assert.equal(err.requestSent, false);
  } finally {
    trusting.close();
    strict.close();
    await origin.close();
  }
});
