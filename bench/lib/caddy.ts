/**
 * Caddy as a reverse proxy from a private Caddyfile, in the foreground, on one core
 * (`GOMAXPROCS=1`, the counterpart of nginx's one worker), admin API and logs off.
 *
 * @module
 */
import { type Proc, startProcess } from "./process.ts";

export interface CaddyReverseOptions {
  dir: string;
  listenPort: number;
  upstreamPort: number;
}

/** The Caddyfile: plain HTTP on 127.0.0.1, keep-alive to the origin (Caddy's default). Exported for tests. */
export function caddyReverseConfig(o: CaddyReverseOptions): string {
  return `{
  admin off
  auto_https off
}

http://127.0.0.1:${o.listenPort} {
  reverse_proxy 127.0.0.1:${o.upstreamPort}
}
`;
}

export async function startCaddyReverse(o: CaddyReverseOptions): Promise<Proc> {
  await Deno.mkdir(o.dir, { recursive: true });
  const file = `${o.dir}/Caddyfile`;
  await Deno.writeTextFile(file, caddyReverseConfig(o));
  return await startProcess({
    name: "caddy",
    cmd: "caddy",
    args: ["run", "--config", file, "--adapter", "caddyfile"],
    // A private HOME/XDG so Caddy writes nothing outside the bench's directory.
    env: { GOMAXPROCS: "1", HOME: o.dir, XDG_DATA_HOME: o.dir, XDG_CONFIG_HOME: o.dir },
    readyPort: o.listenPort,
  });
}
