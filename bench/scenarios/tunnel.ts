/**
 * tunnel: CONNECT tunnel throughput — curl downloads a 1 GiB file from nginx
 * (a sparse file served with sendfile, so the disk plays no part) directly,
 * and through this proxy's CONNECT tunnel (`curl -p -x`, forward mode). The
 * rows' "req/s" column is MiB/s; the ratio is tunnel/direct (issue 14 asks
 * ≥ 0.9×). Loopback only; each transfer is bounded by curl's --max-time.
 *
 * @module
 */
import { onFreePort, type Started } from "../lib/compare.ts";
import { type Proc, startProcess } from "../lib/process.ts";
import { startProxy } from "../lib/proxy.ts";
import { hasTool, installHint } from "../lib/tools.ts";
import type { BenchContext, Ratio, Scenario, ScenarioResult, TargetRow } from "../lib/types.ts";

const SIZE = 1024 ** 3;
const MAX_TIME_SEC = 120;

/** nginx serving `dir` statically on `port`: one worker, sendfile, no logs. */
function staticConfig(dir: string, port: number): string {
  const user = Deno.uid() === 0 ? "user root;\n" : "";
  return `${user}worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port};
    root ${dir}/www;
  }
}
`;
}

async function startStaticNginx(dir: string, port: number): Promise<Proc> {
  await Deno.mkdir(`${dir}/www`, { recursive: true });
  // Sparse: 1 GiB of zeros that occupies no disk and reads from the page cache.
  const file = await Deno.open(`${dir}/www/1g.bin`, { write: true, create: true });
  await file.truncate(SIZE);
  file.close();
  const conf = `${dir}/nginx.conf`;
  await Deno.writeTextFile(conf, staticConfig(dir, port));
  return await startProcess({
    name: "nginx (static)",
    cmd: "nginx",
    args: ["-p", `${dir}/`, "-c", conf, "-e", `${dir}/error.log`],
    readyPort: port,
  });
}

/** One curl download of the file; MiB/s, or an error message. */
async function download(url: string, proxy?: string): Promise<number> {
  const args = ["-s", "-o", "/dev/null", "--max-time", String(MAX_TIME_SEC)];
  if (proxy) args.push("-p", "-x", proxy);
  args.push("-w", "%{http_code} %{size_download} %{time_total}", url);
  const out = await new Deno.Command("curl", { args, stdout: "piped", stderr: "piped" }).output();
  const [code, size, seconds] = new TextDecoder().decode(out.stdout).trim().split(" ");
  if (!out.success || code !== "200" || Number(size) !== SIZE) {
    throw new Error(`curl ${args.join(" ")}: status ${code}, ${size} bytes, exit ${out.code}`);
  }
  return SIZE / 1024 / 1024 / Number(seconds);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export const scenario: Scenario = {
  name: "tunnel",
  description: "1 GiB through a CONNECT tunnel (curl -p -x) against the same download direct",
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const missing = ["curl", "nginx"].find((t) => !(ctx.tools[t] ?? hasTool(t)));
    if (missing) {
      const note = installHint(missing);
      return {
        rows: ["direct", "proxy (CONNECT)"].map((target) => ({ target, status: "skipped", note })),
        ratios: [],
      };
    }
    const origin: Started = await onFreePort((port) =>
      startStaticNginx(`${ctx.tmpDir}/nginx`, port)
    )();
    ctx.defer(() => origin.stop());
    const url = `${origin.url}/1g.bin`;
    const originPort = new URL(origin.url).port;
    const proxy: Started = await onFreePort((port) =>
      startProxy(ctx.root, "proxy", port, {
        PORT: String(port),
        HOST: "127.0.0.1",
        PROXY_MODE: "forward",
        FORWARD_ALLOW_PRIVATE: "true",
        CONNECT_PORTS: originPort,
        CACHE_BACKEND: "off",
        ACCESS_LOG: "false",
        RATE_LIMIT_REQUESTS: "0",
        LOG_LEVEL: "warn",
      })
    )();
    ctx.defer(() => proxy.stop());

    const targets = [
      { label: "direct", proxy: undefined },
      { label: "proxy (CONNECT)", proxy: proxy.url },
    ];
    const results = new Map<string, number[]>(targets.map((t) => [t.label, []]));
    const failed = new Map<string, string>();
    for (let round = 0; round <= ctx.rounds; round++) {
      for (const t of targets) {
        if (failed.has(t.label)) continue;
        ctx.log(round === 0 ? `warm-up: ${t.label}` : `round ${round}/${ctx.rounds}: ${t.label}`);
        try {
          const mibs = await download(url, t.proxy);
          if (round > 0) results.get(t.label)!.push(mibs);
        } catch (err) {
          failed.set(t.label, (err as Error).message);
        }
      }
    }
    const rows: TargetRow[] = targets.map((t) => {
      const rs = results.get(t.label)!;
      const why = failed.get(t.label);
      if (why !== undefined || rs.length === 0) {
        return { target: t.label, status: "failed", note: why ?? "no round completed" };
      }
      return {
        target: t.label,
        status: "ok",
        rps: median(rs),
        roundsRps: rs.map(Math.round),
        note: `MiB/s (1 GiB per round)`,
      };
    });
    const ratios: Ratio[] = [];
    const [direct, tunnel] = rows;
    if (direct.rps && tunnel.rps) {
      ratios.push({ label: "proxy (CONNECT)/direct throughput", value: tunnel.rps / direct.rps });
    }
    return {
      rows,
      ratios,
      notes: [
        `curl [-p -x proxy] ${url} (1 GiB sparse file, nginx sendfile), ` +
        `${ctx.rounds} alternating round(s) after one warm-up each, medians; "req/s" is MiB/s`,
      ],
    };
  },
};
