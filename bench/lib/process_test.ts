import assert from "node:assert/strict";
import { freePort, StartError, startProcess } from "./process.ts";

Deno.test("startProcess reports an early exit with the output tail", async () => {
  const err = await startProcess({
    name: "failing",
    cmd: Deno.execPath(),
    args: ["eval", "console.error('boom: no config'); Deno.exit(3)"],
    readyPort: freePort(),
  }).then(() => undefined, (e) => e);
  assert.ok(err instanceof StartError);
  assert.match(err.message, /failing exited with code 3/);
  assert.match(err.tail, /boom: no config/);
});

Deno.test("startProcess waits for readiness and stop() ends the process", async () => {
  const port = freePort();
  const p = await startProcess({
    name: "server",
    cmd: Deno.execPath(),
    args: [
      "eval",
      `await new Promise((r) => setTimeout(r, 300));` +
      `Deno.serve({ port: ${port}, hostname: "127.0.0.1" }, () => new Response("hi"));`,
    ],
    readyPort: port,
    readyPath: "/",
  });
  assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), "hi");
  await p.stop();
  await assert.rejects(() => fetch(`http://127.0.0.1:${port}/`));
});
