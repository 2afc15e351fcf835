/**
 * Benchmark orchestrator: `deno task bench [--only NAME] [--duration 5s]
 * [--connections 50] [--threads 1] [--rounds 3] [--warmup 1s] [--list]`.
 *
 * Finds scenarios as files in bench/scenarios/, runs them, prints a table
 * with ratios per scenario and writes bench/results/<timestamp>.json.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { formatResult } from "./lib/report.ts";
import { parseDuration } from "./lib/stats.ts";
import { detectTools, installHint, toolVersion } from "./lib/tools.ts";
import type { BenchContext, BenchOptions, Scenario, ScenarioResult } from "./lib/types.ts";

const USAGE = `Usage: deno task bench [options]

Options:
  --only NAME        run only this scenario (repeatable)
  --duration 5s      wrk duration of each round (whole seconds)
  --connections 50   wrk connections
  --threads 1        wrk threads
  --rounds 3         alternating rounds per target; the median is reported
  --warmup 1s        warm-up run per target before the rounds (0 = none)
  --list             list scenarios and exit
  -h, --help         show this help
`;

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const SCENARIO_DIR = `${ROOT}/bench/scenarios`;
const RESULTS_DIR = `${ROOT}/bench/results`;

function isScenario(x: unknown): x is Scenario {
  const s = x as Scenario;
  return !!s && typeof s.name === "string" && typeof s.run === "function";
}

/**
 * Every bench/scenarios/*.ts (except *_test.ts), sorted by file name. A file
 * that fails to load is reported in `broken` and skipped, so one scenario
 * under construction does not stop the others from running.
 */
export async function loadScenarios(
  dir = SCENARIO_DIR,
): Promise<{ scenarios: Scenario[]; broken: string[] }> {
  const files: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && e.name.endsWith(".ts") && !e.name.endsWith("_test.ts")) files.push(e.name);
  }
  files.sort();
  const scenarios: Scenario[] = [];
  const broken: string[] = [];
  for (const f of files) {
    let mod;
    try {
      mod = await import(`file://${dir}/${f}`);
    } catch (err) {
      broken.push(`bench/scenarios/${f}: ${(err as Error).message.split("\n")[0]}`);
      continue;
    }
    // `export const scenario`, `export default`, or the module itself
    // (`export const name`, `export const description`, `export function run`).
    const s = mod.scenario ?? mod.default ?? mod;
    if (isScenario(s)) scenarios.push(s);
    else broken.push(`bench/scenarios/${f} exports no scenario ({ name, description, run })`);
  }
  return { scenarios, broken };
}

function parseOptions(args: string[]) {
  const { values } = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      only: { type: "string", multiple: true },
      duration: { type: "string", default: "5s" },
      connections: { type: "string", default: "50" },
      threads: { type: "string", default: "1" },
      rounds: { type: "string", default: "3" },
      warmup: { type: "string", default: "1s" },
      list: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  const int = (name: string, text: string, min: number) => {
    const n = /^\d+$/.test(text) ? Number(text) : NaN;
    if (!(n >= min)) throw new Error(`--${name} must be a whole number >= ${min}, got "${text}"`);
    return n;
  };
  const opts: BenchOptions = {
    durationSec: parseDuration(values.duration),
    connections: int("connections", values.connections, 1),
    threads: int("threads", values.threads, 1),
    rounds: int("rounds", values.rounds, 1),
    warmupSec: values.warmup === "0" ? 0 : parseDuration(values.warmup),
  };
  return { opts, only: values.only ?? [], list: values.list, help: values.help };
}

async function runScenario(
  s: Scenario,
  opts: BenchOptions,
  tools: Record<string, boolean>,
  cleanups: (() => Promise<void> | void)[],
): Promise<ScenarioResult & { error?: string }> {
  const tmpDir = await Deno.makeTempDir({ prefix: `proxy-bench-${s.name}-` });
  const mine: (() => Promise<void> | void)[] = [];
  const ctx: BenchContext = {
    ...opts,
    root: ROOT,
    tmpDir,
    tools,
    log: (m) => console.error(`[${s.name}] ${m}`),
    defer: (fn) => {
      mine.push(fn);
      cleanups.push(fn);
    },
  };
  try {
    return await s.run(ctx);
  } catch (err) {
    return { rows: [], ratios: [], error: (err as Error).stack ?? String(err) };
  } finally {
    for (const fn of mine.reverse()) {
      try {
        await fn();
      } catch (err) {
        console.error(`[${s.name}] cleanup failed: ${(err as Error).message}`);
      }
      cleanups.splice(cleanups.indexOf(fn), 1);
    }
    await Deno.remove(tmpDir, { recursive: true }).catch(() => {});
  }
}

export async function main(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseOptions(args);
  } catch (err) {
    console.error(`bench: ${(err as Error).message} (see --help)`);
    return 2;
  }
  if (parsed.help) {
    console.log(USAGE);
    return 0;
  }
  const { scenarios: all, broken } = await loadScenarios();
  for (const b of broken) console.error(`bench: cannot load ${b}`);
  if (parsed.list) {
    for (const s of all) console.log(`${s.name.padEnd(16)} ${s.description}`);
    return 0;
  }
  const unknown = parsed.only.filter((n) => !all.some((s) => s.name === n));
  if (unknown.length) {
    console.error(
      `bench: unknown scenario ${unknown.join(", ")}; have: ${all.map((s) => s.name).join(", ")}`,
    );
    return 2;
  }
  const chosen = parsed.only.length ? all.filter((s) => parsed.only.includes(s.name)) : all;

  const tools = detectTools();
  for (const [t, ok] of Object.entries(tools)) if (!ok) console.error(`bench: ${installHint(t)}`);

  const env = {
    deno: Deno.version.deno,
    os: `${Deno.build.os}-${Deno.build.arch}`,
    cpus: navigator.hardwareConcurrency,
    loadavg: Deno.loadavg(),
    wrk: tools.wrk ? await toolVersion("wrk", ["-v"]) : "",
    nginx: tools.nginx ? await toolVersion("nginx", ["-v"]) : "",
    haproxy: tools.haproxy ? await toolVersion("haproxy", ["-v"]) : "",
    node: tools.node ? await toolVersion("node", ["--version"]) : "",
  };

  // Ctrl-C must not leave nginx or node processes behind.
  const cleanups: (() => Promise<void> | void)[] = [];
  const onSigint = async () => {
    console.error("bench: interrupted, stopping started processes");
    for (const fn of cleanups.reverse()) await Promise.resolve(fn()).catch(() => {});
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", onSigint);

  const startedAt = new Date();
  const results: Record<string, ScenarioResult & { error?: string }> = {};
  let failed = false;
  try {
    for (const s of chosen) {
      console.error(`bench: running ${s.name}: ${s.description}`);
      const r = await runScenario(s, parsed.opts, tools, cleanups);
      results[s.name] = r;
      console.log(formatResult(s.name, r));
      if (r.error) {
        failed = true;
        console.log(`  scenario failed: ${r.error.split("\n")[0]}`);
      }
      console.log("");
    }
  } finally {
    Deno.removeSignalListener("SIGINT", onSigint);
  }

  await Deno.mkdir(RESULTS_DIR, { recursive: true });
  const file = `${RESULTS_DIR}/${startedAt.toISOString().replace(/[:.]/g, "-")}.json`;
  await Deno.writeTextFile(
    file,
    JSON.stringify(
      { startedAt: startedAt.toISOString(), options: parsed.opts, env, results },
      null,
      2,
    ) +
      "\n",
  );
  console.log(`results written to ${file.slice(ROOT.length + 1)}`);
  return failed ? 1 : 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
