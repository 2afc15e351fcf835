/**
 * Proxy authentication end to end: a real proxy process with PROXY_AUTH_FILE,
 * real clients, and a users file changed and reloaded with SIGHUP.
 */
import assert from "node:assert/strict";
import bcrypt from "bcryptjs";
import { startBackend } from "../src/backend/mod.ts";
import { sections, startProxy } from "./helpers/proxy.ts";
import { rawRequest } from "./helpers/rawhttp.ts";

Deno.test("proxy auth: 407 without credentials, never forwarded, users reloaded on SIGHUP", async () => {
  // 127.0.0.2 is the one private address this proxy may reach (FORWARD_ALLOW_PRIVATE).
  const origin = await startBackend({ host: "127.0.0.2", port: 0, name: "origin", graceMs: 500 });
  const users = await Deno.makeTempFile({ suffix: ".htpasswd" });
  await Deno.writeTextFile(users, `alice:${bcrypt.hashSync("wonderland", 4)}\n`);
  const proxy = await startProxy({
    env: {
      PROXY_AUTH_FILE: users,
      FORWARD_ALLOW_PRIVATE: "127.0.0.2/32",
      SERVE_THREADS: "2",
      LOG_LEVEL: "info",
    },
  });
  const client = (username: string, password: string) =>
    Deno.createHttpClient({ proxy: { url: proxy.url, basicAuth: { username, password } } });
  const through = async (username: string, password: string, path = "/json") => {
    const c = client(username, password);
    try {
      const res = await fetch(`http://127.0.0.2:${origin.port}${path}`, { client: c });
      return { status: res.status, body: await res.text(), headers: res.headers };
    } finally {
      c.close();
    }
  };
  try {
    const anonymous = await rawRequest(
      proxy.port,
      `GET http://127.0.0.2:${origin.port}/json HTTP/1.1\r\nHost: 127.0.0.2\r\n\r\n`,
    );
    assert.equal(anonymous.status, 407);
    assert.equal(anonymous.headers["proxy-authenticate"], 'Basic realm="proxy", charset="UTF-8"');
    assert.equal((await through("alice", "nope")).status, 407);

    const ok = await through("alice", "wonderland", "/headers");
    assert.equal(ok.status, 200);
    // The origin echoes the headers it received: the credentials stopped at the proxy.
    assert.doesNotMatch(ok.body.toLowerCase(), /proxy-authorization/);
    assert.doesNotMatch(ok.body, /d29uZGVybGFuZ/); // base64 of the password

    // The proxy's own endpoints are not behind proxy auth (they are origin-form, loopback).
    const health = await fetch(`${proxy.url}/healthz`);
    assert.equal(health.status, 200);
    await health.body?.cancel();

    // Each serving thread logs one line per applied reload; a refused one is refused by thread 0,
    // which then asks no other thread (src/threads/fanout.ts), so it is one line. The checks after
    // a SIGHUP wait until those lines are out, so they run after the reload, never before.
    const threads = Number(proxy.output().match(/, (\d+) threads/)?.[1] ?? 1);
    const reloadLines = () =>
      proxy.output().split("\n").filter((l) => /"message":"(reloaded"|reload failed)/.test(l));
    const sighup = async (lines: number) => {
      const before = reloadLines().length;
      proxy.process.kill("SIGHUP");
      const deadline = Date.now() + 20_000;
      while (reloadLines().length < before + lines) {
        if (Date.now() > deadline) throw new Error(`SIGHUP did not reload:\n${proxy.output()}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      return reloadLines().slice(before);
    };

    // New password on disk; SIGHUP makes it effective at once (the 60 s login cache is dropped).
    await Deno.writeTextFile(users, `alice:${bcrypt.hashSync("looking-glass", 4)}\n`);
    const applied = await sighup(threads);
    assert.ok(applied.every((l) => l.includes('"message":"reloaded"')), applied.join("\n"));
    for (let i = 0; i < 4; i++) { // new connections each time: every thread gets asked
      assert.equal((await through("alice", "wonderland")).status, 407);
      assert.equal((await through("alice", "looking-glass")).status, 200);
    }

    // A broken file on reload keeps the users the proxy has, and the proxy keeps running.
    await Deno.writeTextFile(users, "alice:plain-text-password\n");
    const refused = await sighup(1);
    assert.ok(refused.every((l) => l.includes("reload refused")), refused.join("\n"));
    assert.match(refused.join("\n"), /plain-text or unsupported password/);
    for (let i = 0; i < 4; i++) {
      assert.equal((await through("alice", "looking-glass")).status, 200);
      assert.equal((await through("alice", "wonderland")).status, 407);
    }
    const failures = sections(await proxy.stats(), "auth")
      .reduce((n, auth) => n + auth.failures, 0);
    assert.ok(failures >= 2, `auth failures ${failures}`);
  } finally {
    await proxy.stop();
    await origin.close();
    await Deno.remove(users);
  }
});

Deno.test("a plain-text users file stops the proxy at start-up with the line and the fix", async () => {
  const users = await Deno.makeTempFile({ suffix: ".htpasswd" });
  await Deno.writeTextFile(users, "# users\nbob:builder\n");
  try {
    const proxy = await startProxy({ env: { PROXY_AUTH_FILE: users }, expectExit: true });
    const code = await proxy.signal("SIGTERM");
    assert.notEqual(code, 0);
    assert.match(proxy.output(), /line 2: user "bob" has a plain-text or unsupported password/);
    assert.match(proxy.output(), /htpasswd -B/);
  } finally {
    await Deno.remove(users);
  }
});
