/**
 * LOG_FILE: the application and access logs in a file beside (or instead of)
 * stdout, reopened at its path on SIGUSR1 so logrotate can move it away.
 */
import assert from "node:assert/strict";
import { startProxy } from "./helpers/proxy.ts";
import { startTestBackend } from "./helpers/backend.ts";

async function get(url: string): Promise<void> {
  const res = await fetch(url);
  assert.equal(res.status, 200);
  await res.body?.cancel();
}

/** Polls `path` until `test` holds for its text (10 s at most); returns the text. */
async function waitForFile(path: string, test: (text: string) => boolean): Promise<string> {
  const deadline = Date.now() + 10_000;
  let text = "";
  while (Date.now() < deadline) {
    text = await Deno.readTextFile(path).catch(() => "");
    if (test(text)) return text;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${path} never matched; it holds:\n${text}`);
}

const accessTo = (text: string, path: string) =>
  text.split("\n").filter((l) => l.includes('"logger":"proxy.access"') && l.includes(path));

Deno.test("LOG_FILE gets the access and application logs; SIGUSR1 reopens it after a rename", {
  ignore: Deno.build.os === "windows",
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "log-file-" });
  const path = `${dir}/proxy.log`;
  const origin = await startTestBackend("log-origin");
  const proxy = await startProxy({
    env: {
      BACKEND_SERVERS: origin.url,
      ACCESS_LOG: "true",
      LOG_LEVEL: "info",
      LOG_FORMAT: "pretty", // plain text lines in the file (no colours)
      LOG_FILE: path,
    },
  });
  try {
    await get(`${proxy.url}/bytes/101`);
    const first = await waitForFile(path, (t) => t.includes("/bytes/101"));
    assert.match(first, /listening on/, "application lines go to the file too");
    const deadline = Date.now() + 10_000;
    while (!proxy.output().includes("/bytes/101") && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(proxy.output(), /\/bytes\/101/, "and to stdout, by default");

    // logrotate: rename, then USR1; the proxy must write to a new file at the path.
    await Deno.rename(path, `${path}.1`);
    await get(`${proxy.url}/bytes/102`); // may land in either file, never lost
    proxy.process.kill("SIGUSR1");
    const after = await waitForFile(path, (t) => t.includes("log file reopened"));
    await get(`${proxy.url}/bytes/103`);
    const fresh = await waitForFile(path, (t) => t.includes("/bytes/103"));
    const rotated = await Deno.readTextFile(`${path}.1`);
    assert.ok(!rotated.includes("/bytes/103"), "new lines go to the new file only");
    assert.ok(rotated.includes("/bytes/101"));
    assert.equal(
      [rotated, fresh].filter((t) => t.includes("/bytes/102")).length,
      1,
      "the line logged between rename and signal is in exactly one file",
    );
    assert.ok(after.length > 0);
  } finally {
    await proxy.stop();
    await origin.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("LOG_STDOUT=false with LOG_FILE: lines go to the file only, as JSON by default", async () => {
  const dir = await Deno.makeTempDir({ prefix: "log-file-" });
  const path = `${dir}/proxy.log`;
  const origin = await startTestBackend("log-origin");
  const proxy = await startProxy({
    env: {
      BACKEND_SERVERS: origin.url,
      ACCESS_LOG: "true",
      LOG_LEVEL: "info",
      LOG_FORMAT: "auto",
      LOG_FILE: path,
      LOG_STDOUT: "false",
    },
  });
  try {
    await get(`${proxy.url}/bytes/104`);
    const text = await waitForFile(path, (t) => accessTo(t, "/bytes/104").length === 1);
    for (const line of text.trim().split("\n")) JSON.parse(line);
    const stats = await proxy.stats();
    assert.equal(stats.log.file, path);
    assert.ok(stats.log.outputs.file.written >= 2, JSON.stringify(stats.log));
    assert.equal(stats.log.outputs.stdout, undefined);
  } finally {
    await proxy.stop();
    await origin.close();
    await Deno.remove(dir, { recursive: true });
  }
  assert.ok(!proxy.output().includes("/bytes/104"), "nothing on stdout");
});

Deno.test("a LOG_FILE that cannot be opened stops start-up with one line naming it", async () => {
  const proxy = await startProxy({
    env: { LOG_FILE: "/nonexistent-dir/proxy.log" },
    expectExit: true,
  });
  const out = proxy.output().trim();
  assert.equal(out.split("\n").length, 1, out);
  assert.match(out, /^proxy: LOG_FILE: cannot open "\/nonexistent-dir\/proxy.log"/);
});
