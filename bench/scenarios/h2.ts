/**
 * h2: HTTP/2 over TLS on loopback, this proxy (reverse mode, HTTP2=on)
 * against nginx (`listen ... ssl http2`, one worker) and Caddy
 * (`GOMAXPROCS=1`), all in front of the same origin with the same test
 * certificate:
 *
 * - a 16 MiB download with 64 KiB windows (`nghttp -n -w 16 -W 16`): wall time;
 * - 8 × 16 MiB multiplexed on one connection (`nghttp -n -m 8`, same windows): wall time;
 * - 1 KiB cache hits (`/bytes/1024?max_age=3600`) with `h2load` (one client thread,
 *   `-c 10 -m 10`, `--duration`; h2load's --warm-up-time reports 0 requests, so a
 *   separate one-second run warms each target): requests/s. nginx serves them from `proxy_cache`,
 *   the proxy from its memory LRU; Caddy has no cache, so its row is a proxied
 *   request (a lower bound for it, noted).
 *
 * Times are medians over the rounds; targets alternate each round.
 *
 * @module
 */
import { median } from "../lib/stats.ts";
import { freePort, type Proc, startProcess } from "../lib/process.ts";
import { type Origin, proxyEnv, startOrigin, startProxy } from "../lib/proxy.ts";
import { hasTool } from "../lib/tools.ts";
import type { BenchContext, Ratio, Scenario, ScenarioResult, TargetRow } from "../lib/types.ts";

const BIG = 16 * 1024 * 1024;
const BIG_PATH = `/bytes/${BIG}`;
const HIT_PATH = "/bytes/1024?max_age=3600";
/** A download that takes longer than this is cut and counted as failed (keeps the run bounded). */
const DOWNLOAD_LIMIT_S = 30;

interface H2Target {
  label: string;
  requires?: string;
  note?: string;
  start(ctx: BenchContext, origin: Origin, port: number, tls: TlsFiles): Promise<Proc>;
}

interface TlsFiles {
  cert: string;
  key: string;
}

interface Measured {
  singleMs: number[];
  multiMs: number[];
  rps: number[];
  failures: number;
}

/** nginx.conf: one worker, TLS + HTTP/2, proxy_cache, upstream keep-alive, no access log. */
export function nginxH2Config(dir: string, port: number, upstream: number, tls: TlsFiles): string {
  const user = Deno.uid() === 0 ? "user root;\n" : "";
  return `${user}worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  # h2load does not reconnect in --duration mode: nginx's default of 1000 requests per
  # connection would end the run early.
  keepalive_requests 10000000;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  proxy_cache_path ${dir}/cache levels=1:2 keys_zone=bench:10m max_size=256m inactive=60m use_temp_path=off;
  upstream origin {
    server 127.0.0.1:${upstream};
    keepalive 64;
  }
  server {
    # "listen ... http2" works on nginx 1.22 (Debian 12) and, deprecated, on later versions.
    listen 127.0.0.1:${port} ssl http2;
    ssl_certificate ${tls.cert};
    ssl_certificate_key ${tls.key};
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache bench;
    }
  }
}
`;
}

/** Caddyfile: TLS with the given certificate (HTTP/2 is Caddy's default), reverse_proxy. */
export function caddyH2Config(port: number, upstream: number, tls: TlsFiles): string {
  return `{
  admin off
  auto_https off
}

https://127.0.0.1:${port} {
  tls ${tls.cert} ${tls.key}
  reverse_proxy 127.0.0.1:${upstream}
}
`;
}

const TARGETS: H2Target[] = [
  {
    label: "proxy",
    start: (ctx, origin, port, tls) =>
      startProxy(ctx.root, "proxy", port, {
        ...proxyEnv(port, origin.url),
        CACHE_BACKEND: "memory",
        TLS_CERT: tls.cert,
        TLS_KEY: tls.key,
        HTTP2: "on",
      }),
  },
  {
    label: "nginx",
    requires: "nginx",
    async start(ctx, origin, port, tls) {
      const dir = `${ctx.tmpDir}/nginx`;
      await Deno.mkdir(dir, { recursive: true });
      const conf = `${dir}/nginx.conf`;
      await Deno.writeTextFile(conf, nginxH2Config(dir, port, origin.port, tls));
      return await startProcess({
        name: "nginx",
        cmd: "nginx",
        args: ["-p", `${dir}/`, "-c", conf, "-e", `${dir}/error.log`],
        readyPort: port,
      });
    },
  },
  {
    label: "caddy",
    requires: "caddy",
    note: "no cache in Caddy: its h2load row is proxied to the origin",
    async start(ctx, origin, port, tls) {
      const dir = `${ctx.tmpDir}/caddy`;
      await Deno.mkdir(dir, { recursive: true });
      const file = `${dir}/Caddyfile`;
      await Deno.writeTextFile(file, caddyH2Config(port, origin.port, tls));
      return await startProcess({
        name: "caddy",
        cmd: "caddy",
        args: ["run", "--config", file, "--adapter", "caddyfile"],
        env: { GOMAXPROCS: "1", HOME: dir, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir },
        readyPort: port,
      });
    },
  },
];

/** Runs a command to its end (killed after `limitS`); its stdout, or undefined when it failed. */
async function run(cmd: string, args: string[], limitS: number): Promise<string | undefined> {
  const child = new Deno.Command(cmd, { args, stdout: "piped", stderr: "null", stdin: "null" })
    .spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  }, limitS * 1000);
  const out = await child.output();
  clearTimeout(timer);
  return out.success ? new TextDecoder().decode(out.stdout) : undefined;
}

/** Wall time of `nghttp -n` with 64 KiB windows; undefined when it failed or came back short. */
async function download(url: string, streams: number): Promise<number | undefined> {
  const args = ["-n", "-s", "-w", "16", "-W", "16", url];
  if (streams > 1) args.unshift("-m", String(streams));
  const t0 = performance.now();
  const out = await run("nghttp", args, DOWNLOAD_LIMIT_S);
  const ms = performance.now() - t0;
  if (out === undefined) return undefined;
  // The -s table lists one line per stream with its status; every one must be a 200.
  const ok = (out.match(/\b200\b/g) ?? []).length;
  return ok >= streams ? ms : undefined;
}

/** Requests/s of `h2load` on hits; undefined when any request failed. */
async function hits(url: string, seconds: number): Promise<number | undefined> {
  const out = await run(
    "h2load",
    ["-t", "1", "-c", "10", "-m", "10", "-D", String(seconds), url],
    seconds + 20,
  );
  if (out === undefined) return undefined;
  const rps = out.match(/finished in [\d.]+m?s, ([\d.]+) req\/s/);
  const failed = out.match(/(\d+) failed, (\d+) errored/);
  if (!rps || !failed || Number(failed[1]) + Number(failed[2]) > 0) return undefined;
  return Number(rps[1]);
}

export const scenario: Scenario = {
  name: "h2",
  description: "HTTP/2 over TLS: 16 MiB with 64 KiB windows, 8x16 MiB multiplexed, h2load hits",
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    for (const tool of ["nghttp", "h2load"]) {
      if (!hasTool(tool)) {
        return {
          rows: [{
            target: "all",
            status: "skipped",
            note: `${tool} not found (apt-get install nghttp2-client)`,
          }],
          ratios: [],
        };
      }
    }
    const tls: TlsFiles = {
      cert: `${ctx.root}/tests/fixtures/tls.crt`,
      key: `${ctx.root}/tests/fixtures/tls.key`,
    };
    ctx.log("starting the origin (src/backend)");
    const origin = await startOrigin(ctx.root);
    ctx.defer(() => origin.proc.stop());

    const running: { target: H2Target; url: string; proc: Proc; m: Measured }[] = [];
    const rows: TargetRow[] = [];
    for (const target of TARGETS) {
      if (target.requires && !hasTool(target.requires)) {
        rows.push({
          target: target.label,
          status: "skipped",
          note: `${target.requires} not found`,
        });
        continue;
      }
      const port = freePort();
      try {
        const proc = await target.start(ctx, origin, port, tls);
        ctx.defer(() => proc.stop());
        const url = `https://127.0.0.1:${port}`;
        // Warm: the cache entry exists and TLS/keep-alive paths have run once.
        await hits(`${url}${HIT_PATH}`, 1);
        running.push({
          target,
          url,
          proc,
          m: { singleMs: [], multiMs: [], rps: [], failures: 0 },
        });
      } catch (err) {
        rows.push({ target: target.label, status: "failed", note: (err as Error).message });
      }
    }

    for (let round = 0; round < ctx.rounds; round++) {
      for (const { target, url, m } of running) {
        ctx.log(`round ${round + 1}/${ctx.rounds}: ${target.label}`);
        const single = await download(`${url}${BIG_PATH}`, 1);
        const multi = await download(`${url}${BIG_PATH}`, 8);
        const rps = await hits(`${url}${HIT_PATH}`, ctx.durationSec);
        if (single === undefined || multi === undefined || rps === undefined) m.failures++;
        if (single !== undefined) m.singleMs.push(single);
        if (multi !== undefined) m.multiMs.push(multi);
        if (rps !== undefined) m.rps.push(rps);
      }
    }

    const summary = new Map<string, { single: number; multi: number; rps: number }>();
    for (const { target, proc, m } of running) {
      const single = m.singleMs.length ? median(m.singleMs) : NaN;
      const multi = m.multiMs.length ? median(m.multiMs) : NaN;
      const rps = m.rps.length ? median(m.rps) : NaN;
      summary.set(target.label, { single, multi, rps });
      rows.push({
        target: target.label,
        status: m.failures === 0 ? "ok" : "failed",
        rps: Number.isNaN(rps) ? undefined : Math.round(rps),
        errors: m.failures,
        roundsRps: m.rps.map(Math.round),
        note: `16 MiB/64 KiB windows ${single.toFixed(0)} ms; 8x16 MiB ${multi.toFixed(0)} ms` +
          (target.note ? `; ${target.note}` : "") +
          (m.failures > 0
            ? `; its last output: ${
              proc.outputTail(30).replaceAll(
                new RegExp(String.fromCharCode(27) + "\\[[0-9;]*m", "g"),
                "",
              ).split("\n").filter((l) => !/^\s+at /.test(l)).join(" | ")
            }`
            : ""),
      });
    }
    const ratios: Ratio[] = [];
    const proxy = summary.get("proxy");
    for (const peer of ["nginx", "caddy"]) {
      const p = summary.get(peer);
      if (!proxy || !p) continue;
      ratios.push({ label: `proxy/${peer} h2load req/s (hits)`, value: proxy.rps / p.rps });
      ratios.push({ label: `${peer}/proxy 16 MiB time`, value: p.single / proxy.single });
      ratios.push({ label: `${peer}/proxy 8x16 MiB time`, value: p.multi / proxy.multi });
    }
    return {
      rows,
      ratios,
      notes: [
        "goals (issue 14): 16 MiB with 64 KiB windows < 1500 ms; 8x16 MiB < 5000 ms; " +
        "h2load hits >= nginx",
        `origin ${origin.url}; certificate tests/fixtures/tls.crt`,
      ],
    };
  },
};
