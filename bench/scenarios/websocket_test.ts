/** The websocket scenario's peers really relay WebSockets (nginx needs its Upgrade headers). */
import assert from "node:assert/strict";
import { ignoreUnless } from "../../tests/helpers/ignore.ts";
import { startCaddyReverse } from "../lib/caddy.ts";
import { startNginxReverse } from "../lib/nginx.ts";
import { freePort, type Proc } from "../lib/process.ts";
import { proxyEnv, startProxy } from "../lib/proxy.ts";
import { hasTool } from "../lib/tools.ts";
import { mixedMessages, runMessages, startEchoOrigin } from "./websocket.ts";

const ROOT = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

const cases: [
  string,
  string | undefined,
  (dir: string, port: number, up: number) => Promise<Proc>,
][] = [
  [
    "proxy",
    undefined,
    (_dir, port, up) => startProxy(ROOT, "proxy", port, proxyEnv(port, `http://127.0.0.1:${up}`)),
  ],
  [
    "nginx",
    "nginx",
    (dir, listenPort, upstreamPort) =>
      startNginxReverse({ dir, listenPort, upstreamPort, upgrade: true }),
  ],
  [
    "caddy",
    "caddy",
    (dir, listenPort, upstreamPort) => startCaddyReverse({ dir, listenPort, upstreamPort }),
  ],
];

for (const [label, tool, start] of cases) {
  Deno.test({
    name: `websocket scenario: ${label} relays mixed messages intact`,
    ignore: tool === undefined
      ? false
      : ignoreUnless(`bench websocket ${tool}`, hasTool(tool), `${tool} is not installed`),
    async fn() {
      const dir = await Deno.makeTempDir();
      const origin = await startEchoOrigin(ROOT);
      const port = freePort();
      let peer: Proc | undefined;
      try {
        peer = await start(dir, port, origin.port);
        const r = await runMessages(`ws://127.0.0.1:${port}/ws`, mixedMessages(40), [peer.pid]);
        assert.equal(r.errors, 0);
        assert.equal(r.roundTripsMs.length, 40);
      } finally {
        await peer?.stop();
        await origin.proc.stop();
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}
