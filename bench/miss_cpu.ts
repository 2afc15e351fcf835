/**
 * CPU time per request on the miss, forward and miss+store paths, for a
 * shared, loaded machine where requests/s swing from one moment to the next:
 * each target serves `wrk -t1 -c50` in alternating rounds and the result is
 * the CPU time (utime+stime from /proc, Linux, the target's whole process
 * tree) it spent per completed request, next to its requests/s. Medians.
 *
 *   deno run -A bench/miss_cpu.ts                       # every group
 *   deno run -A bench/miss_cpu.ts --only reverse --rounds 5 --duration 3
 *   deno run -A bench/miss_cpu.ts --baseline /tmp/before   # + the proxy of another checkout
 *
 * Groups: `reverse` (1 KiB misses, cache off: the floor program of
 * bench/floors/miss.ts, this proxy, nginx proxy_pass), `store` (every
 * request a new cacheable URL: this proxy storing into its memory cache,
 * nginx proxy_cache), `forward` (absolute-form GETs: this proxy in forward
 * mode, Squid). Peers missing from PATH are left out. `--baseline DIR` adds
 * each proxy row once more, run from the checkout in DIR (e.g. `git archive`
 * of the commit before a change): before and after in the same alternating
 * rounds, which a loaded machine needs.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { startNginxReverse } from "./lib/nginx.ts";
import { freePort, type Proc, startProcess } from "./lib/process.ts";
import { forwardProxyEnv, type Origin, proxyEnv, startOrigin, startProxy } from "./lib/proxy.ts";
import { startSquidForward } from "./lib/squid.ts";
import { forwardProxyPrelude, runWrk } from "./lib/wrk.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const PATH = "/bytes/1024";
const UNIQUE_PATHS = `
local counter = 0
local tag = string.gsub(tostring({}), "[^%w]", "")
request = function()
  counter = counter + 1
  return wrk.format(nil, "/bytes/1024?max_age=3600&n=" .. tag .. "-" .. counter)
end
`;

interface Row {
  group: string;
  label: string;
  proc: Proc;
  url: string;
  prelude?: string;
  cpu: number[];
  rps: number[];
}

/** Every process in the tree under `pid` (nginx and Squid work in children). */
function tree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(e.name));
      children.set(ppid, list);
    } catch { /* gone meanwhile */ }
  }
  const out = [pid];
  for (let i = 0; i < out.length; i++) out.push(...(children.get(out[i]) ?? []));
  return out;
}

/** utime+stime of the tree under `pid`, in ms (10 ms resolution). */
function cpuMs(pid: number): number {
  let ticks = 0;
  for (const p of tree(pid)) {
    try {
      const stat = Deno.readTextFileSync(`/proc/${p}/stat`);
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks += Number(f[11]) + Number(f[12]);
    } catch { /* gone meanwhile */ }
  }
  return ticks * 10;
}

function has(tool: string): boolean {
  try {
    return new Deno.Command("sh", { args: ["-c", `command -v ${tool}`] }).outputSync().success;
  } catch {
    return false;
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const { values } = parseArgs({
  args: Deno.args,
  options: {
    only: { type: "string", multiple: true },
    rounds: { type: "string", default: "3" },
    duration: { type: "string", default: "3" },
    baseline: { type: "string" },
  },
});
const groups = new Set(values.only?.length ? values.only : ["reverse", "store", "forward"]);
const rounds = Number(values.rounds);
const duration = Number(values.duration);
const tmp = await Deno.makeTempDir({ prefix: "miss-cpu-" });
const baseline = values.baseline?.replace(/\/$/, "");
/** The checkouts whose proxy is measured: this one, and the baseline's when given. */
const roots: [string, string][] = [
  ["", ROOT],
  ...(baseline ? [[" (baseline)", baseline]] as [string, string][] : []),
];
const started: Proc[] = [];
const rows: Row[] = [];

/** Starts a target on a free port and adds its row. */
async function add(
  group: string,
  label: string,
  start: (port: number) => Promise<Proc>,
  prelude?: string,
) {
  const port = freePort();
  const proc = await start(port);
  started.push(proc);
  rows.push({ group, label, proc, url: `http://127.0.0.1:${port}`, prelude, cpu: [], rps: [] });
}

let origin: Origin | undefined;
try {
  origin = await startOrigin(ROOT);
  started.push(origin.proc);
  const o = origin;
  if (groups.has("reverse")) {
    await add(
      "reverse",
      "floor",
      (port) =>
        startProcess({
          name: "floor",
          cmd: Deno.execPath(),
          args: [
            "run",
            "-A",
            `${ROOT}bench/floors/miss.ts`,
            "--port",
            String(port),
            "--origin",
            o.url,
          ],
          readyPort: port,
        }),
    );
    for (const [suffix, root] of roots) {
      await add(
        "reverse",
        "proxy" + suffix,
        (port) => startProxy(root, "proxy", port, proxyEnv(port, o.url)),
      );
    }
    if (has("nginx")) {
      await add(
        "reverse",
        "nginx",
        (port) =>
          startNginxReverse({ dir: `${tmp}/nginx`, listenPort: port, upstreamPort: o.port }),
      );
    }
  }
  if (groups.has("store")) {
    for (const [suffix, root] of roots) {
      await add(
        "store",
        "proxy (memory)" + suffix,
        (port) =>
          startProxy(root, "proxy", port, { ...proxyEnv(port, o.url), CACHE_BACKEND: "memory" }),
        UNIQUE_PATHS,
      );
    }
    if (has("nginx")) {
      await add(
        "store",
        "nginx proxy_cache",
        (port) =>
          startNginxReverse({
            dir: `${tmp}/nginx-store`,
            listenPort: port,
            upstreamPort: o.port,
            cache: true,
          }),
        UNIQUE_PATHS,
      );
    }
  }
  if (groups.has("forward")) {
    for (const [suffix, root] of roots) {
      await add(
        "forward",
        "proxy (forward)" + suffix,
        (port) => startProxy(root, "proxy", port, forwardProxyEnv(port)),
        forwardProxyPrelude(o.url + PATH),
      );
    }
    if (has("squid")) {
      await add(
        "forward",
        "squid",
        (port) => startSquidForward({ dir: `${tmp}/squid`, listenPort: port }),
        forwardProxyPrelude(o.url + PATH),
      );
    }
  }
  const wrk = (r: Row, sec: number) =>
    runWrk({
      url: r.url + PATH,
      durationSec: sec,
      connections: 50,
      threads: 1,
      tmpDir: tmp,
      prelude: r.prelude,
      headers: { "accept-encoding": "identity" },
    });
  for (const r of rows) await wrk(r, 2); // warm-up: JIT, pools
  for (let round = 1; round <= rounds; round++) {
    for (const r of rows) {
      const before = cpuMs(r.proc.pid);
      const res = await wrk(r, duration);
      const used = cpuMs(r.proc.pid) - before;
      const errors = res.socketErrors + res.non2xx;
      if (errors > 0) console.log(`  ${r.label}: ${errors} errors`);
      r.cpu.push(used * 1000 / Math.max(1, res.requests));
      r.rps.push(res.rps);
    }
    console.log(
      `round ${round}: ` +
        rows.map((r) => `${r.label} ${r.cpu.at(-1)!.toFixed(1)} µs ${Math.round(r.rps.at(-1)!)}/s`)
          .join(" | "),
    );
  }
  console.log(
    `\nwrk -t1 -c50 -d${duration}s, ${rounds} alternating rounds, medians ` +
      `(load average ${Deno.loadavg().map((l) => l.toFixed(2)).join(" ")})`,
  );
  console.log("| group | target | CPU µs/request | req/s |");
  console.log("|---|---|---:|---:|");
  for (const r of rows) {
    console.log(
      `| ${r.group} | ${r.label} | ${median(r.cpu).toFixed(1)} | ${Math.round(median(r.rps))} |`,
    );
  }
  const ratio = (a: string, b: string) => {
    const x = rows.find((r) => r.label === a), y = rows.find((r) => r.label === b);
    if (!x || !y) return;
    console.log(
      `${a} / ${b}: CPU-bound throughput ${(median(y.cpu) / median(x.cpu)).toFixed(2)}× ` +
        `(req/s ${(median(x.rps) / median(y.rps)).toFixed(2)}×)`,
    );
  };
  ratio("proxy", "floor");
  ratio("proxy", "nginx");
  ratio("proxy (memory)", "nginx proxy_cache");
  ratio("proxy (forward)", "squid");
  ratio("proxy", "proxy (baseline)");
  ratio("proxy (memory)", "proxy (memory) (baseline)");
  ratio("proxy (forward)", "proxy (forward) (baseline)");
} finally {
  for (const p of started.reverse()) await p.stop();
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
}
