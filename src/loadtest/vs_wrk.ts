/**
 * Checks that `proxy loadtest` measures the same request rate as wrk on the
 * same target: alternates `wrk -t1` and the load tester (same connections,
 * same duration) and compares the medians, directly or through a forward
 * proxy. It also prints what each tool spent per request (CPU µs), since on
 * a machine whose cores are shared with the target that cost decides how
 * much CPU is left for the target.
 *
 *   deno run -A src/loadtest/vs_wrk.ts --url http://127.0.0.1:8080/ [--duration 3]
 *     [--concurrency 50] [--rounds 3] [--tolerance 0.15] [--proxy http://127.0.0.1:3128]
 *
 * Exits 1 when the medians differ by more than the tolerance. Run it on a
 * quiet machine: the two tools share the CPU with the target.
 *
 * @module
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { loadtest } from "./runner.ts";

/** Parses wrk's "Requests/sec: 12345.67" line. */
export function parseWrkRate(output: string): number {
  const m = /Requests\/sec:\s+([\d.]+)/.exec(output);
  if (!m) throw new Error(`wrk printed no Requests/sec line:\n${output}`);
  return Number(m[1]);
}

/** Parses wrk's "12345 requests in 3.00s" line. */
export function parseWrkCount(output: string): number {
  const m = /(\d+) requests in/.exec(output);
  if (!m) throw new Error(`wrk printed no request count:\n${output}`);
  return Number(m[1]);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/**
 * CPU seconds of this process's waited-for children (Linux /proc/self/stat
 * cutime + cstime), to measure what a wrk run cost. Undefined elsewhere.
 */
function childrenCpuSeconds(): number | undefined {
  try {
    const stat = Deno.readTextFileSync("/proc/self/stat");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // Fields 16 and 17 of stat(5); the slice starts at field 3.
    return (Number(fields[13]) + Number(fields[14])) / 100; // USER_HZ is 100 on Linux
  } catch {
    return undefined;
  }
}

export interface Comparison {
  wrk: number[];
  loadtest: number[];
  wrkMedian: number;
  loadtestMedian: number;
  /** loadtest median / wrk median. */
  ratio: number;
  /** CPU µs per request, medians (wrk's only on Linux). */
  wrkCpuUs?: number;
  loadtestCpuUs: number;
  /** The load tester's busiest share of one core over its runs (median). */
  loadtestCorePercent: number;
}

export interface CompareOptions {
  duration: number;
  concurrency: number;
  rounds: number;
  /** A forward proxy both tools go through (wrk with an absolute-form request-target). */
  proxy?: string;
}

/** Runs the alternating comparison. */
export async function compareWithWrk(url: string, opts: CompareOptions): Promise<Comparison> {
  const wrk: number[] = [], ours: number[] = [];
  const wrkCpu: number[] = [], ourCpu: number[] = [], ourCore: number[] = [];
  let script: string | undefined;
  if (opts.proxy) {
    // wrk sends origin-form to the address it is given; make it absolute-form for the proxy.
    script = await Deno.makeTempFile({ suffix: ".lua" });
    await Deno.writeTextFile(
      script,
      `wrk.path = ${JSON.stringify(url)}\nwrk.headers["Host"] = ${
        JSON.stringify(new URL(url).host)
      }\n`,
    );
  }
  try {
    for (let i = 0; i < opts.rounds; i++) {
      const args = ["-t1", `-c${opts.concurrency}`, `-d${opts.duration}s`];
      if (script) args.push("-s", script, opts.proxy!);
      else args.push(url);
      const before = childrenCpuSeconds();
      const out = await new Deno.Command("wrk", { args, stdout: "piped", stderr: "piped" })
        .output();
      const after = childrenCpuSeconds();
      if (!out.success) throw new Error(`wrk failed: ${new TextDecoder().decode(out.stderr)}`);
      const text = new TextDecoder().decode(out.stdout);
      wrk.push(parseWrkRate(text));
      if (before !== undefined && after !== undefined) {
        wrkCpu.push(((after - before) * 1e6) / parseWrkCount(text));
      }
      const cpu0 = process.cpuUsage();
      const report = await loadtest({
        url,
        duration: opts.duration,
        concurrency: opts.concurrency,
        proxy: opts.proxy,
      });
      const cpu = process.cpuUsage(cpu0);
      if (report.errors_total > 0) {
        throw new Error(`load test had errors: ${JSON.stringify(report.errors)}`);
      }
      ours.push(report.rps);
      ourCpu.push((cpu.user + cpu.system) / Math.max(1, report.requests));
      ourCore.push(report.loadgen_cpu.core_percent);
    }
  } finally {
    if (script) await Deno.remove(script);
  }
  const wrkMedian = median(wrk);
  const loadtestMedian = median(ours);
  return {
    wrk,
    loadtest: ours,
    wrkMedian,
    loadtestMedian,
    ratio: loadtestMedian / wrkMedian,
    wrkCpuUs: wrkCpu.length ? median(wrkCpu) : undefined,
    loadtestCpuUs: median(ourCpu),
    loadtestCorePercent: median(ourCore),
  };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      url: { type: "string" },
      proxy: { type: "string" },
      duration: { type: "string", default: "3" },
      concurrency: { type: "string", default: "50" },
      rounds: { type: "string", default: "3" },
      tolerance: { type: "string", default: "0.15" },
    },
  });
  if (!values.url) {
    console.error("vs_wrk: --url is required");
    Deno.exit(2);
  }
  const c = await compareWithWrk(values.url, {
    duration: Number(values.duration),
    concurrency: Number(values.concurrency),
    rounds: Number(values.rounds),
    proxy: values.proxy,
  });
  const f = (xs: number[]) => xs.map((x) => Math.round(x)).join(", ");
  const us = (x: number | undefined) => (x === undefined ? "?" : x.toFixed(1));
  console.log(
    `wrk -t1   ${f(c.wrk)}  median ${Math.round(c.wrkMedian)} req/s, ${us(c.wrkCpuUs)} µs CPU/req`,
  );
  console.log(
    `loadtest  ${f(c.loadtest)}  median ${Math.round(c.loadtestMedian)} req/s, ${
      us(c.loadtestCpuUs)
    } µs CPU/req, ${c.loadtestCorePercent.toFixed(0)} % of its one thread's core`,
  );
  console.log(`ratio     ${c.ratio.toFixed(3)} (loadtest / wrk)`);
  Deno.exit(Math.abs(c.ratio - 1) <= Number(values.tolerance) ? 0 : 1);
}
