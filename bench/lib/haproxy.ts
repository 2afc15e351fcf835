/**
 * HAProxy as a reverse proxy from a private config file, in the foreground
 * (`-db`), one thread, connection reuse to the origin.
 *
 * @module
 */
import { type Proc, startProcess } from "./process.ts";

export interface HaproxyReverseOptions {
  dir: string;
  listenPort: number;
  upstreamPort: number;
  /** Cache responses in HAProxy's small object cache (64 MB, objects up to 1 MB). */
  cache?: boolean;
}

/** haproxy.cfg for one thread with server-side keep-alive reuse. Exported for tests. */
export function haproxyReverseConfig(o: HaproxyReverseOptions): string {
  const cacheUse = o.cache
    ? "  http-request cache-use bench\n  http-response cache-store bench\n"
    : "";
  const cacheSection = o.cache
    ? "\ncache bench\n  total-max-size 64\n  max-object-size 1048576\n  max-age 3600\n"
    : "";
  return `global
  nbthread 1
  maxconn 8000

defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive

frontend bench
  bind 127.0.0.1:${o.listenPort}
  default_backend origin

backend origin
  http-reuse always
${cacheUse}  server s1 127.0.0.1:${o.upstreamPort}
${cacheSection}`;
}

export async function startHaproxyReverse(o: HaproxyReverseOptions): Promise<Proc> {
  await Deno.mkdir(o.dir, { recursive: true });
  const cfg = `${o.dir}/haproxy.cfg`;
  await Deno.writeTextFile(cfg, haproxyReverseConfig(o));
  return await startProcess({
    name: "haproxy",
    cmd: "haproxy",
    args: ["-f", cfg, "-db"],
    readyPort: o.listenPort,
  });
}
