/**
 * Squid as a plain forward proxy (no caching, no access log), configured in
 * a private directory and run in the foreground (`-N`), never system-wide.
 *
 * @module
 */
import { type Proc, startProcess } from "./process.ts";

export interface SquidForwardOptions {
  dir: string;
  listenPort: number;
}

/** squid.conf: loopback clients only, caching off, logs in `dir`. Exported for tests. */
export function squidForwardConfig(o: SquidForwardOptions): string {
  return `http_port 127.0.0.1:${o.listenPort}
acl localnet src 127.0.0.0/8 ::1
http_access allow localnet
http_access deny all
cache deny all
cache_mem 8 MB
access_log none
cache_store_log none
cache_log ${o.dir}/cache.log
pid_filename ${o.dir}/squid.pid
coredump_dir ${o.dir}
netdb_filename none
workers 1
shutdown_lifetime 1 seconds
forwarded_for delete
via off
`;
}

export async function startSquidForward(o: SquidForwardOptions): Promise<Proc> {
  await Deno.mkdir(o.dir, { recursive: true });
  // Squid started as root runs as the unprivileged "proxy" user, which must
  // be able to write its log and pid file here.
  await Deno.chmod(o.dir, 0o777);
  const conf = `${o.dir}/squid.conf`;
  await Deno.writeTextFile(conf, squidForwardConfig(o));
  return await startProcess({
    name: "squid",
    cmd: "squid",
    args: ["-N", "-f", conf],
    readyPort: o.listenPort,
  });
}
