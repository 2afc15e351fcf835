/**
 * Checks that `proxy loadtest` measures the same request rate as wrk on the
 * same target: alternates `wrk -t1` and the load tester (same connections,
 * same duration) and compares the medians.
 *
 *   deno run -A src/loadtest/vs_wrk.ts --url http://127.0.0.1:8080/ [--duration 3]
 *     [--concurrency 50] [--rounds 3] [--tolerance 0.15]
 *
 * Exits 1 when the medians differ by more than the tolerance. Run it on a
 * quiet machine: the two tools share the CPU with the target.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { loadtest } from "./runner.ts";

/** Parses wrk's "Requests/sec: 12345.67" line. */
export function parseWrkRate(output: string): number {
  const m = /Requests\/sec:\s+([\d.]+)/.exec(output);
  if (!m) throw new Error(`wrk printed no Requests/sec line:\n${output}`);
  return Number(m[1]);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

export interface Comparison {
  wrk: number[];
  loadtest: number[];
  wrkMedian: number;
  loadtestMedian: number;
  /** loadtest median / wrk median. */
  ratio: number;
}

/** Runs the alternating comparison. */
export async function compareWithWrk(
  url: string,
  opts: { duration: number; concurrency: number; rounds: number },
): Promise<Comparison> {
  const wrk: number[] = [];
  const ours: number[] = [];
  for (let i = 0; i < opts.rounds; i++) {
    const out = await new Deno.Command("wrk", {
      args: ["-t1", `-c${opts.concurrency}`, `-d${opts.duration}s`, url],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) throw new Error(`wrk failed: ${new TextDecoder().decode(out.stderr)}`);
    wrk.push(parseWrkRate(new TextDecoder().decode(out.stdout)));
    const report = await loadtest({ url, duration: opts.duration, concurrency: opts.concurrency });
    if (report.errors_total > 0) {
      throw new Error(`load test had errors: ${JSON.stringify(report.errors)}`);
    }
    ours.push(report.rps);
  }
  const wrkMedian = median(wrk);
  const loadtestMedian = median(ours);
  return { wrk, loadtest: ours, wrkMedian, loadtestMedian, ratio: loadtestMedian / wrkMedian };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      url: { type: "string" },
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
  });
  const f = (xs: number[]) => xs.map((x) => Math.round(x)).join(", ");
  console.log(`wrk      ${f(c.wrk)}  median ${Math.round(c.wrkMedian)} req/s`);
  console.log(`loadtest ${f(c.loadtest)}  median ${Math.round(c.loadtestMedian)} req/s`);
  console.log(`ratio    ${c.ratio.toFixed(3)} (loadtest / wrk)`);
  Deno.exit(Math.abs(c.ratio - 1) <= Number(values.tolerance) ? 0 : 1);
}
