/**
 * The cache-hit floor: a minimal server on the proxy's own HTTP/1.1 listener
 * (src/server/http1) answering, from a Map, the same bytes the proxy sends for
 * a hit — the origin's response fetched once at start, plus Via, X-Cache, Age
 * and X-Request-Id. No request filters, no cache policy, no stats, no log: what
 * the runtime and the listener allow; the distance to it is the proxy's.
 *
 *   deno run -A bench/floors/map_hit.ts --port 8080 --origin http://127.0.0.1:9000 \
 *     --path '/bytes/1024?max_age=3600' --answer response|bytes
 *
 * `--answer response`: the app builds a Web Response per request (as a bare
 * Deno.serve handler would); `--answer bytes`: the listener's hit hook writes
 * a head serialised once, as the proxy's hit path does.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { listenHttp1 } from "../../src/server/http1/mod.ts";
import { HeadTemplate } from "../../src/server/http1/response.ts";
import { ProxyStats } from "../../src/stats/mod.ts";

interface Stored {
  readonly status: number;
  /** Everything but Age and X-Request-Id, built once. */
  readonly headers: Headers;
  readonly body: Uint8Array<ArrayBuffer>;
  readonly template: HeadTemplate;
}

const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    port: { type: "string" },
    origin: { type: "string" },
    path: { type: "string", multiple: true },
    answer: { type: "string", default: "response" },
  },
});
const port = Number(args.port);
const origin = args.origin;
const paths = args.path ?? ["/"];
const answer = args.answer;
if (!Number.isInteger(port) || !origin || (answer !== "response" && answer !== "bytes")) {
  console.error("usage: map_hit.ts --port N --origin URL --path P [--answer response|bytes]");
  Deno.exit(2);
}

/** Stored answers by request-target (path and query). */
const map = new Map<string, Stored>();
for (const path of paths) {
  const res = await fetch(origin + path);
  const body = new Uint8Array(await res.arrayBuffer());
  const headers = new Headers(res.headers);
  headers.set("content-length", String(body.length));
  headers.set("via", "1.1 floor");
  headers.set("x-cache", "HIT");
  map.set(path, {
    status: res.status,
    headers,
    body,
    template: HeadTemplate.of(res.status, headers)!,
  });
}

let sequence = 0;
const targetOf = (url: string) => url.slice(url.indexOf("/", url.indexOf("//") + 2));
const notFound = () => new Response("not in the map\n", { status: 404 });

const listener = listenHttp1({
  app(req) {
    const s = map.get(targetOf(req.url));
    if (s === undefined) return notFound();
    const res = new Response(req.method === "HEAD" ? null : s.body, {
      status: s.status,
      headers: s.headers,
    });
    res.headers.set("age", "0");
    res.headers.set("x-request-id", `floor-${(++sequence).toString(36)}`);
    return res;
  },
  hit: answer === "bytes"
    ? (req, _conn, keepAlive) => {
      const s = map.get(targetOf(req.url));
      if (s === undefined) return undefined;
      const id = `floor-${(++sequence).toString(36)}`;
      return {
        head: s.template.render("0", id, keepAlive),
        body: req.method === "HEAD" ? null : s.body,
      };
    }
    : undefined,
  stats: new ProxyStats({ mode: "floor", listener: "http1" }),
  maxHeaderSize: 16 * 1024,
  maxHeaderCount: 100,
  headerTimeoutMs: 30_000,
  keepAliveTimeoutMs: 60_000,
  bodyTimeoutMs: 30_000,
  bodyMinRate: 0,
  requestBufferSize: 64 * 1024,
}, { hostname: "127.0.0.1", port, maxConnections: 10_000 });
console.log(`floor (${answer}) listening on http://127.0.0.1:${port}`);

const stop = async () => {
  await listener.close(1000);
  Deno.exit(0);
};
Deno.addSignalListener("SIGINT", stop);
Deno.addSignalListener("SIGTERM", stop);
