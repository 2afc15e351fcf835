/**
 * nginx as a reverse proxy, configured in a private directory and started
 * with `-p`/`-c`/`-e` so it never reads or writes the system-wide setup.
 *
 * @module
 */
import { type Proc, startProcess } from "./process.ts";

export interface NginxReverseOptions {
  dir: string;
  listenPort: number;
  /** One origin, or several balanced round robin. */
  upstreamPort: number | readonly number[];
  /** Idle keep-alive connections to the upstream (default 64). */
  keepalive?: number;
  /** Cache responses (proxy_cache in the private directory, honouring Cache-Control). */
  cache?: boolean;
  /** With `cache`: revalidate stale entries with conditional requests (proxy_cache_revalidate). */
  cacheRevalidate?: boolean;
  /** Passive health per upstream server, e.g. "max_fails=3 fail_timeout=10s". */
  serverParams?: string;
  /** Pass protocol upgrades (WebSocket): Upgrade and Connection forwarded, as nginx documents. */
  upgrade?: boolean;
}

/** nginx.conf for one worker, upstream keep-alive, no access log. Exported for tests. */
export function nginxReverseConfig(o: NginxReverseOptions): string {
  // As root the workers would switch to "nobody" and could not use the
  // private temp directories; as anyone else nginx ignores `user`.
  const user = Deno.uid() === 0 ? "user root;\n" : "";
  const cachePath = o.cache
    ? `  proxy_cache_path ${o.dir}/cache levels=1:2 keys_zone=bench:10m max_size=256m ` +
      `inactive=60m use_temp_path=off;\n`
    : "";
  const cacheUse = o.cache
    ? "      proxy_cache bench;\n      add_header X-Cache $upstream_cache_status;\n" +
      (o.cacheRevalidate ? "      proxy_cache_revalidate on;\n" : "")
    : "";
  const ports = typeof o.upstreamPort === "number" ? [o.upstreamPort] : o.upstreamPort;
  const servers = ports
    .map((p) => `    server 127.0.0.1:${p}${o.serverParams ? ` ${o.serverParams}` : ""};`)
    .join("\n");
  const upgradeMap = o.upgrade
    ? `  map $http_upgrade $connection_upgrade { default upgrade; "" ""; }\n`
    : "";
  const connection = o.upgrade
    ? "      proxy_set_header Upgrade $http_upgrade;\n" +
      "      proxy_set_header Connection $connection_upgrade;\n"
    : `      proxy_set_header Connection "";\n`;
  return `${user}worker_processes 1;
daemon off;
pid ${o.dir}/nginx.pid;
error_log ${o.dir}/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path ${o.dir}/client_body;
  proxy_temp_path ${o.dir}/proxy;
  fastcgi_temp_path ${o.dir}/fastcgi;
  uwsgi_temp_path ${o.dir}/uwsgi;
  scgi_temp_path ${o.dir}/scgi;
${cachePath}${upgradeMap}  upstream origin {
${servers}
    keepalive ${o.keepalive ?? 64};
  }
  server {
    listen 127.0.0.1:${o.listenPort};
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
${connection}${cacheUse}    }
  }
}
`;
}

export async function startNginxReverse(o: NginxReverseOptions): Promise<Proc> {
  await Deno.mkdir(o.dir, { recursive: true });
  const conf = `${o.dir}/nginx.conf`;
  await Deno.writeTextFile(conf, nginxReverseConfig(o));
  return await startProcess({
    name: "nginx",
    cmd: "nginx",
    args: ["-p", `${o.dir}/`, "-c", conf, "-e", `${o.dir}/error.log`],
    readyPort: o.listenPort,
  });
}
