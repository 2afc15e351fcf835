import assert from "node:assert/strict";
import { join } from "node:path";
import { X509Certificate } from "@peculiar/x509";
import { acceptTls, createCa, HandshakeError, Interceptor, LeafMinter, loadCa } from "./mod.ts";
import { bypassMatcher } from "./bypass.ts";

async function tempCa() {
  const dir = await Deno.makeTempDir({ prefix: "intercept-ca-" });
  await createCa(join(dir, "ca"));
  return { dir, ca: await loadCa(join(dir, "ca")) };
}

Deno.test("proxy ca: key 0600 in a 0700 directory, never overwritten, reported when present", async () => {
  const dir = await Deno.makeTempDir({ prefix: "intercept-ca-" });
  try {
    const where = join(dir, "nested", "ca");
    const first = await createCa(where);
    assert.equal(first.created, true);
    assert.equal((await Deno.stat(first.keyPath)).mode! & 0o777, 0o600);
    assert.equal((await Deno.stat(where)).mode! & 0o777, 0o700);
    const pem = await Deno.readTextFile(first.certPath);
    const key = await Deno.readTextFile(first.keyPath);
    const again = await createCa(where);
    assert.equal(again.created, false);
    assert.equal(await Deno.readTextFile(first.certPath), pem);
    assert.equal(await Deno.readTextFile(first.keyPath), key);
    // A half CA (key gone) is refused rather than completed with a new key.
    await Deno.remove(first.keyPath);
    await assert.rejects(createCa(where), /ca\.pem without ca-key\.pem/);
    const cert = new X509Certificate(pem);
    const years = (cert.notAfter.getTime() - cert.notBefore.getTime()) / (365.25 * 86_400_000);
    assert.ok(years > 9.9 && years < 10.1, `validity ${years} years`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a missing CA is one line that names proxy ca", async () => {
  const dir = await Deno.makeTempDir({ prefix: "intercept-ca-" });
  try {
    const err = await loadCa(join(dir, "none")).then(() => undefined, (e: Error) => e);
    assert.ok(err);
    assert.match(err.message, /proxy ca/);
    assert.ok(!err.message.includes("\n"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("minted leaves: DNS or IP SAN, 7 days backdated, cached, concurrent mints coalesced", async () => {
  const { dir, ca } = await tempCa();
  try {
    const minter = new LeafMinter({ ca });
    const names = Array.from({ length: 50 }, (_, i) => `site${i}.test`);
    const leaves = await Promise.all(
      Array.from({ length: 200 }, (_, i) => minter.leaf(names[i % 50])),
    );
    assert.equal(minter.minted, 50);
    assert.equal(new Set(leaves).size, 50);
    const leaf = new X509Certificate(leaves[0].certPem);
    assert.match(leaf.getExtension("2.5.29.17")!.toString(), /site0\.test/);
    assert.ok(leaf.notBefore.getTime() < Date.now() - 30 * 60_000);
    const days = (leaf.notAfter.getTime() - Date.now()) / 86_400_000;
    assert.ok(days > 6.9 && days <= 7, `${days} days`);
    assert.ok(await leaf.verify({ publicKey: ca.cert.publicKey, signatureOnly: true }));
    const again = await minter.leaf("SITE0.test");
    assert.equal(again, leaves[0]);
    assert.equal(minter.minted, 50);
    const ip = new X509Certificate((await minter.leaf("127.0.0.1")).certPem);
    assert.match(ip.getExtension("2.5.29.17")!.toString(), /127\.0\.0\.1/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a leaf about to expire is minted again", async () => {
  const { dir, ca } = await tempCa();
  try {
    let now = Date.now();
    const minter = new LeafMinter({ ca, now: () => now });
    const first = await minter.leaf("renew.test");
    now += 6.5 * 86_400_000;
    const second = await minter.leaf("renew.test");
    assert.notEqual(second, first);
    assert.equal(minter.minted, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TLS termination over an existing connection: clients trusting the CA speak HTTP/1.1", async () => {
  const { dir, ca } = await tempCa();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const minter = new LeafMinter({ ca });
    const served = (async () => {
      const conn = await listener.accept();
      const session = await acceptTls(conn, (await minter.leaf("shop.test")).context, 5000);
      const buf = new Uint8Array(4096);
      let head = "";
      while (!head.includes("\r\n\r\n")) {
        const n = await session.conn.read(buf);
        if (n === null) break;
        head += new TextDecoder().decode(buf.subarray(0, n));
      }
      const body = `alpn=${session.alpn} sni=${session.servername}`;
      await session.conn.write(
        new TextEncoder().encode(
          `HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
        ),
      );
      await session.conn.closeWrite!();
      assert.equal(await session.conn.read(buf), null);
      session.conn.close();
    })();
    const port = (listener.addr as Deno.NetAddr).port;
    const tcp = await Deno.connect({ hostname: "127.0.0.1", port });
    const tls = await Deno.startTls(tcp, {
      hostname: "shop.test",
      caCerts: [ca.certPem],
      alpnProtocols: ["h2", "http/1.1"],
    });
    const hs = await tls.handshake();
    assert.equal(hs.alpnProtocol, "http/1.1");
    await tls.write(new TextEncoder().encode("GET / HTTP/1.1\r\nhost: shop.test\r\n\r\n"));
    const text = await new Response(tls.readable).text();
    assert.match(text, /^HTTP\/1\.1 200 OK/);
    assert.match(text, /alpn=http\/1\.1 sni=shop\.test$/);
    await served;
  } finally {
    listener.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a client that refuses the certificate fails the handshake, reported as such", async () => {
  const { dir, ca } = await tempCa();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const minter = new LeafMinter({ ca });
    const accepted = (async () => {
      const conn = await listener.accept();
      return await acceptTls(conn, (await minter.leaf("pinned.test")).context, 5000);
    })();
    const tcp = await Deno.connect({
      hostname: "127.0.0.1",
      port: (listener.addr as Deno.NetAddr).port,
    });
    // No caCerts: the system roots do not know our CA.
    const tls = Deno.startTls(tcp, { hostname: "pinned.test" });
    await assert.rejects(tls.then((c) => c.handshake()), /certificate|UnknownIssuer/i);
    await assert.rejects(accepted, HandshakeError);
  } finally {
    listener.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bypass list: domains with their subdomains, nothing else", () => {
  const bypassed = bypassMatcher(["bank.example", "*.pinned.test", ""]);
  assert.equal(bypassed("bank.example"), true);
  assert.equal(bypassed("www.BANK.example"), true);
  assert.equal(bypassed("a.pinned.test"), true);
  assert.equal(bypassed("pinned.test"), true);
  assert.equal(bypassed("notbank.example"), false);
  assert.equal(bypassed("example"), false);
  assert.equal(bypassMatcher([])("anything"), false);
});

Deno.test("the tunnel hook: bypassed hosts declined untouched, others answered, decrypted and served with their authority", async () => {
  const { dir, ca } = await tempCa();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const interceptor = new Interceptor({ ca, bypass: ["pinned.test"], handshakeTimeoutMs: 5000 });
  try {
    const served = (async () => {
      const bypassed = await listener.accept();
      const declined = await interceptor.takeTunnel(
        bypassed,
        { authority: { host: "api.pinned.test", port: 443 }, clientIp: "127.0.0.1" },
        () => Promise.reject(new Error("a bypassed host must not be served")),
      );
      assert.equal(declined, false);
      bypassed.close();
      const conn = await listener.accept();
      return await interceptor.takeTunnel(
        conn,
        { authority: { host: "shop.test", port: 8443 }, clientIp: "127.0.0.1" },
        async (session, info) => {
          const buf = new Uint8Array(4096);
          const n = await session.read(buf);
          assert.match(new TextDecoder().decode(buf.subarray(0, n ?? 0)), /^GET \/ HTTP\/1\.1/);
          const body = `${info.authority} secure=${info.secure}`;
          await session.write(new TextEncoder().encode(
            `HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
          ));
          await session.closeWrite!();
        },
      );
    })();
    const port = (listener.addr as Deno.NetAddr).port;
    const first = await Deno.connect({ hostname: "127.0.0.1", port });
    assert.equal(await first.read(new Uint8Array(16)), null, "nothing written for a bypassed host");
    first.close();
    const tcp = await Deno.connect({ hostname: "127.0.0.1", port });
    const established = "HTTP/1.1 200 Connection Established\r\n\r\n";
    const head = new Uint8Array(established.length);
    let got = 0;
    while (got < head.length) got += (await tcp.read(head.subarray(got)))!;
    assert.equal(new TextDecoder().decode(head), established);
    const tls = await Deno.startTls(tcp, { hostname: "shop.test", caCerts: [ca.certPem] });
    await tls.write(new TextEncoder().encode("GET / HTTP/1.1\r\nhost: shop.test\r\n\r\n"));
    const text = await new Response(tls.readable).text();
    assert.match(text, /shop\.test:8443 secure=true$/);
    assert.equal(await served, true);
    const stats = interceptor.snapshot();
    assert.equal(stats.connections_intercepted, 1);
    assert.equal(stats.connections_tunnelled, 1);
    assert.equal(stats.open_intercepted, 0);
    assert.equal(stats.certificates_minted, 1);
  } finally {
    listener.close();
    await Deno.remove(dir, { recursive: true });
  }
});
