/**
 * Varnish as a caching reverse proxy in front of one origin, with its work
 * directory (`-n`) in a private directory, in the foreground (`-F`).
 *
 * @module
 */
import { type Proc, startProcess } from "./process.ts";

export interface VarnishOptions {
  dir: string;
  listenPort: number;
  upstreamPort: number;
}

export async function startVarnish(o: VarnishOptions): Promise<Proc> {
  await Deno.mkdir(o.dir, { recursive: true });
  await Deno.chmod(o.dir, 0o777);
  return await startProcess({
    name: "varnish",
    cmd: "varnishd",
    args: [
      "-F",
      "-n",
      `${o.dir}/work`,
      "-a",
      `127.0.0.1:${o.listenPort}`,
      "-b",
      `127.0.0.1:${o.upstreamPort}`,
      "-s",
      "malloc,64m",
      "-p",
      "thread_pools=1",
    ],
    readyPort: o.listenPort,
  });
}
