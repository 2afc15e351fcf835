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
}

/** haproxy.cfg for one thread with server-side keep-alive reuse. Exported for tests. */
export function haproxyReverseConfig(o: HaproxyReverseOptions): string {
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
  server s1 127.0.0.1:${o.upstreamPort}
`;
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
