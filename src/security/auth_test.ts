import assert from "node:assert/strict";
import bcrypt from "bcryptjs";
import { createHash } from "node:crypto";
import { compose } from "../pipeline/mod.ts";
import { testContext } from "../pipeline/testing.ts";
import { createProxyAuth, parseBasic, parseHtpasswd } from "./auth.ts";

const basic = (user: string, pass: string) => "Basic " + btoa(`${user}:${pass}`);
const sha = (pass: string) => "{SHA}" + createHash("sha1").update(pass).digest("base64");

async function htpasswdFile(lines: string[]) {
  const file = await Deno.makeTempFile({ suffix: ".htpasswd" });
  await Deno.writeTextFile(file, lines.join("\n") + "\n");
  return file;
}

Deno.test("parseHtpasswd accepts bcrypt and {SHA}, refuses plain text with the fix", () => {
  const users = parseHtpasswd(
    [
      "# comment",
      "",
      `alice:${bcrypt.hashSync("wonderland", 4)}`,
      `bob:${bcrypt.hashSync("builder", 4).replace("$2b$", "$2y$")}`,
      `carol:${sha("secret")}`,
    ].join("\n"),
    "users.htpasswd",
  );
  assert.deepEqual([...users.keys()], ["alice", "bob", "carol"]);
  assert.equal(users.get("carol")!.kind, "sha1");
  assert.throws(
    () => parseHtpasswd("alice:wonderland\n", "users.htpasswd"),
    /users\.htpasswd line 1: user "alice" has a plain-text or unsupported password; .*htpasswd -B/,
  );
  assert.throws(() => parseHtpasswd("a:$apr1$abc$defghijklmnopqrstuvwx12\n"), /MD5 \(apr1\)/);
  assert.throws(() => parseHtpasswd(`a:${sha("x")}\na:${sha("y")}\n`), /listed twice/);
  assert.throws(() => parseHtpasswd("# nobody\n"), /no users/);
  assert.throws(() => parseHtpasswd("justaname\n"), /line 1: expected "user:hash"/);
});

Deno.test("parseBasic decodes UTF-8 credentials and rejects malformed values", () => {
  assert.deepEqual(parseBasic(basic("alice", "pa:ss")), { user: "alice", password: "pa:ss" });
  const utf8 = "Basic " + btoa(String.fromCharCode(...new TextEncoder().encode("jürgen:grüß")));
  assert.deepEqual(parseBasic(utf8), { user: "jürgen", password: "grüß" });
  assert.equal(parseBasic("Bearer abc"), undefined);
  assert.equal(parseBasic("Basic !!!"), undefined);
  assert.equal(parseBasic("Basic " + btoa("nocolon")), undefined);
});

Deno.test("verify checks passwords, caches verdicts briefly and forgets them on reload", async () => {
  const file = await htpasswdFile([
    `alice:${bcrypt.hashSync("wonderland", 4)}`,
    `carol:${sha("secret")}`,
  ]);
  let clock = 0;
  const auth = createProxyAuth({ file, cacheTtlMs: 1000, now: () => clock });
  try {
    assert.equal(auth.userCount, 2);
    assert.equal(await auth.verify(basic("alice", "wonderland")), "alice");
    assert.equal(await auth.verify(basic("alice", "wrong")), undefined);
    assert.equal(await auth.verify(basic("mallory", "wonderland")), undefined);
    assert.equal(await auth.verify(basic("carol", "secret")), "carol");
    assert.equal(await auth.verify(basic("carol", "Secret")), undefined);
    assert.equal(await auth.verify(null), undefined);
    assert.equal(await auth.verify("Basic %%%"), undefined);
    // Concurrent checks of the same credentials share one bcrypt run; later ones hit the cache.
    const before = (auth.snapshot() as { cache_hits: number }).cache_hits;
    const all = await Promise.all([1, 2, 3].map(() => auth.verify(basic("alice", "wonderland"))));
    assert.deepEqual(all, ["alice", "alice", "alice"]);
    assert.ok((auth.snapshot() as { cache_hits: number }).cache_hits >= before + 3);

    // Password changed on disk: the cached verdict lives until reload (SIGHUP) or expiry.
    await Deno.writeTextFile(file, `alice:${bcrypt.hashSync("looking-glass", 4)}\n`);
    assert.equal(await auth.verify(basic("alice", "wonderland")), "alice");
    auth.reload();
    assert.equal(auth.userCount, 1);
    assert.equal(await auth.verify(basic("alice", "wonderland")), undefined);
    assert.equal(await auth.verify(basic("alice", "looking-glass")), "alice");
    assert.equal(await auth.verify(basic("carol", "secret")), undefined);

    // A broken file on reload keeps the users we had.
    await Deno.writeTextFile(file, "alice:plaintext\n");
    assert.throws(() => auth.reload(), /plain-text/);
    clock += 5000; // expire the cache so the check really runs again
    assert.equal(await auth.verify(basic("alice", "looking-glass")), "alice");
  } finally {
    auth.close();
    await Deno.remove(file);
  }
});

Deno.test("createProxyAuth stops with a clear error for a missing or plain-text file", async () => {
  assert.throws(
    () => createProxyAuth({ file: "/nonexistent/users.htpasswd" }),
    /PROXY_AUTH_FILE: cannot read \/nonexistent\/users\.htpasswd/,
  );
  const file = await htpasswdFile(["bob:builder"]);
  try {
    assert.throws(() => createProxyAuth({ file }), /user "bob" has a plain-text/);
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("phase: 407 with Proxy-Authenticate, sets ctx.user, never forwards the credentials", async () => {
  const file = await htpasswdFile([`alice:${bcrypt.hashSync("wonderland", 4)}`]);
  const auth = createProxyAuth({ file });
  const handler = compose(
    (req, ctx) =>
      Promise.resolve(Response.json({
        user: ctx.user ?? null,
        leaked: req.headers.get("proxy-authorization"),
      })),
    auth.phase,
  );
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (req) => {
    const form = req.headers.get("x-test-form") === "origin" ? "origin" : "absolute";
    return handler(req, testContext({ form }));
  });
  const url = `http://127.0.0.1:${server.addr.port}/`;
  try {
    const none = await fetch(url);
    assert.equal(none.status, 407);
    assert.equal(none.headers.get("proxy-authenticate"), 'Basic realm="proxy", charset="UTF-8"');
    assert.match(await none.text(), /credentials required/);
    const wrong = await fetch(url, { headers: { "proxy-authorization": basic("alice", "nope") } });
    assert.equal(wrong.status, 407);
    assert.match(await wrong.text(), /wrong user name or password/);
    const ok = await fetch(url, {
      headers: { "proxy-authorization": basic("alice", "wonderland") },
    });
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { user: "alice", leaked: null });
    // Reverse-proxy (origin-form) requests are not asked for proxy credentials.
    const origin = await fetch(url, { headers: { "x-test-form": "origin" } });
    assert.equal(origin.status, 200);
    await origin.body?.cancel();
  } finally {
    await server.shutdown();
    auth.close();
    await Deno.remove(file);
  }
});
