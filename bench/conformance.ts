/**
 * Runs the HTTP-cache test suite of https://cache-tests.fyi (npm
 * `http-cache-tests`, pinned in bench/conformance/package.json) against this
 * proxy and against nginx, Varnish and Squid configured the way the upstream
 * project configures them (its docker/ folder), and prints pass counts per
 * result category plus the tests this proxy fails where a peer passes.
 *
 *   deno run -A bench/conformance.ts                      # every target
 *   deno run -A bench/conformance.ts --only proxy --only nginx
 *   deno run -A bench/conformance.ts --only proxy --id freshness-none   # one test, verbose
 *
 * Every peer runs from a private temp directory on free ports of 127.0.0.1;
 * nothing is configured system-wide. Raw results go to
 * bench/results/conformance-<timestamp>.json (git-ignored).
 *
 * @module
 */
import { startNginxReverse } from "./lib/nginx.ts";
import { freePort, type Proc, startProcess } from "./lib/process.ts";
import { proxyEnv, startProxy } from "./lib/proxy.ts";
import { hasTool, installHint } from "./lib/tools.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const PKG_DIR = `${ROOT}/bench/conformance`;
const SUITE_DIR = `${PKG_DIR}/node_modules/http-cache-tests`;

/** Result categories as lib/display.mjs of the suite names them (third element of its result type). */
const CATEGORIES: Record<string, string> = {
  "✅": "pass",
  "⛔️": "fail",
  "⚠️": "optional_fail",
  "Y": "check_yes",
  "N": "check_no",
  "🔹": "setup_fail",
  "⁉️": "harness_fail",
  "⚪️": "dependency_fail",
  "↻": "retry",
  "-": "untested",
};
const COLUMNS = [
  "pass",
  "fail",
  "optional_fail",
  "check_yes",
  "check_no",
  "setup_fail",
  "dependency_fail",
  "harness_fail",
  "retry",
  "untested",
];

interface Target {
  label: string;
  requires: string[];
  /** Starts the cache in front of the origin on `port`; `dir` is private to it. */
  start(port: number, originPort: number, dir: string): Promise<Proc>;
}

/** The proxy's settings for the suite: memory cache, no filters, no compression, quiet. */
function proxyTarget(label: string, extra: Record<string, string>): Target {
  return {
    label,
    requires: [],
    start: (port, originPort) =>
      startProxy(ROOT, label, port, {
        ...proxyEnv(port, `http://127.0.0.1:${originPort}`),
        CACHE_BACKEND: "memory",
        REQUEST_FILTERS: "",
        RATE_LIMIT_REQUESTS: "0",
        LOG_LEVEL: "warn",
        ACCESS_LOG: "false",
        ENABLE_COMPRESSION: "false",
        ...extra,
      }),
  };
}

/** docker/squid/squid.conf of the suite (accelerator in front of one origin) on Debian's defaults. */
function squidConfig(dir: string, port: number, originPort: number): string {
  return `http_port 127.0.0.1:${port} accel defaultsite=127.0.0.1 no-vhost
cache_peer 127.0.0.1 parent ${originPort} 0 no-query no-digest originserver default name=myAccel
cache_peer_access myAccel allow all
http_access allow all
shutdown_lifetime 1 second
connect_retries 3
refresh_pattern ^ftp: 1440 20% 10080
refresh_pattern -i (/cgi-bin/|\\?) 0 0% 0
refresh_pattern . 0 20% 4320
access_log none
cache_store_log none
cache_log ${dir}/cache.log
pid_filename ${dir}/squid.pid
coredump_dir ${dir}
netdb_filename none
workers 1
`;
}

const TARGETS: Target[] = [
  proxyTarget("proxy", {}),
  proxyTarget("proxy (CACHE_EXPIRATION=0)", { CACHE_EXPIRATION: "0" }),
  // The default before CACHE_HEURISTIC=last-modified (Varnish-like default_ttl), for comparison.
  proxyTarget("proxy (CACHE_HEURISTIC=always)", { CACHE_HEURISTIC: "always" }),
  {
    label: "nginx",
    requires: ["nginx"],
    // As the suite's docker/nginx/nginx.conf: proxy_cache with proxy_cache_revalidate.
    start: (port, originPort, dir) =>
      startNginxReverse({
        dir,
        listenPort: port,
        upstreamPort: originPort,
        cache: true,
        cacheRevalidate: true,
      }),
  },
  {
    // docker/serve.sh: the stock default.vcl (backend only) with these parameters.
    label: "varnish",
    requires: ["varnishd"],
    start: (port, originPort, dir) =>
      startProcess({
        name: "varnish",
        cmd: "varnishd",
        args: [
          "-F",
          "-n",
          `${dir}/work`,
          "-a",
          `127.0.0.1:${port}`,
          "-b",
          `127.0.0.1:${originPort}`,
          "-p",
          "default_ttl=0",
          "-p",
          "default_grace=0",
          "-p",
          "default_keep=3600",
          "-s",
          "malloc,64M",
        ],
        readyPort: port,
      }),
  },
  {
    label: "squid",
    requires: ["squid"],
    async start(port, originPort, dir) {
      await Deno.writeTextFile(`${dir}/squid.conf`, squidConfig(dir, port, originPort));
      return await startProcess({
        name: "squid",
        cmd: "squid",
        args: ["-N", "-f", `${dir}/squid.conf`],
        readyPort: port,
      });
    },
  },
];

interface Options {
  only: string[];
  id?: string;
}

function parseArgs(args: string[]): Options {
  const o: Options = { only: [] };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--only") o.only.push(args[++i]);
    else if (a === "--id") o.id = args[++i];
    else if (a === "--help" || a === "-h") {
      console.log(
        "usage: deno run -A bench/conformance.ts [--only LABEL]... [--id TEST_ID]\n" +
          `labels: ${TARGETS.map((t) => t.label.split(" ")[0]).join(", ")} ` +
          "(`proxy` selects both proxy rows, `proxy-strict` only the CACHE_EXPIRATION=0 one)",
      );
      Deno.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  return o;
}

function selected(t: Target, only: string[]): boolean {
  if (only.length === 0) return true;
  const strict = t.label.includes("CACHE_EXPIRATION=0");
  return only.some((o) =>
    o === t.label || (o === "proxy-strict" && strict) || (o === t.label.split(" ")[0])
  );
}

async function ensureInstalled(): Promise<void> {
  try {
    await Deno.stat(`${SUITE_DIR}/cli.mjs`);
    return;
  } catch { /* install below */ }
  console.log("installing http-cache-tests into bench/conformance (npm ci)...");
  const out = await new Deno.Command("npm", {
    args: ["ci", "--no-audit", "--no-fund", "--prefix", PKG_DIR],
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error("npm ci --prefix bench/conformance failed");
}

/** The suite's client (cli.mjs) against `base`; returns its stdout (results JSON, or a dump with --id). */
async function runClient(base: string, id?: string): Promise<string> {
  const out = await new Deno.Command("node", {
    args: ["--no-warnings", "cli.mjs"],
    cwd: SUITE_DIR,
    // cli.mjs reads npm's config variables; an empty id means "all tests".
    env: { npm_config_base: base, npm_package_config_base: base, npm_package_config_id: id ?? "" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const err = new TextDecoder().decode(out.stderr).trim();
  if (!out.success || err) {
    throw new Error(`cli.mjs failed (code ${out.code}): ${err.slice(-2000)}`);
  }
  return text;
}

type Results = Record<string, true | [string, string]>;
type Suite = { id: string; tests: { id: string; kind?: string }[] };

/** Category of every test, computed by the suite's own lib/display.mjs (dependencies honoured). */
async function classify(results: Results): Promise<Record<string, string>> {
  const base = new URL(`file://${SUITE_DIR}/`);
  const suites: Suite[] = [...(await import(new URL("tests/index.mjs", base).href)).default];
  suites.push((await import(new URL("tests/surrogate-control.mjs", base).href)).default);
  const display = await import(new URL("lib/display.mjs", base).href);
  const out: Record<string, string> = {};
  for (const id of Object.keys(results)) {
    const symbol = display.determineTestResult(suites, id, results)[2] as string;
    out[id] = CATEGORIES[symbol] ?? symbol;
  }
  return out;
}

function pad(s: string, n: number, right = false): string {
  return right ? s.padStart(n) : s.padEnd(n);
}

function reason(r: true | [string, string] | undefined): string {
  if (r === undefined || r === true) return "";
  return r[1].replace(/\s+/g, " ").slice(0, 160);
}

async function main(): Promise<void> {
  const opts = parseArgs(Deno.args);
  if (!hasTool("node")) throw new Error(installHint("node"));
  await ensureInstalled();
  const version = JSON.parse(await Deno.readTextFile(`${SUITE_DIR}/package.json`)).version;
  const tmp = await Deno.makeTempDir({ prefix: "conformance-" });
  await Deno.chmod(tmp, 0o777); // squid and varnish drop root to their own users
  const originPort = freePort();
  const origin = await startProcess({
    name: "cache-tests origin",
    cmd: "node",
    args: ["server/server.mjs"],
    cwd: SUITE_DIR,
    env: {
      npm_config_port: String(originPort),
      npm_config_protocol: "http",
      npm_config_pidfile: `${tmp}/origin.pid`,
    },
    readyPort: originPort,
  });
  const all: Record<string, { results: Results; categories: Record<string, string> }> = {};
  try {
    for (const t of TARGETS.filter((t) => selected(t, opts.only))) {
      const missing = t.requires.filter((r) => !hasTool(r));
      if (missing.length) {
        console.log(`skip ${t.label}: ${missing.map(installHint).join("; ")}`);
        continue;
      }
      const dir = `${tmp}/${t.label.replace(/[^a-z0-9]+/gi, "-")}`;
      await Deno.mkdir(dir, { recursive: true });
      await Deno.chmod(dir, 0o777);
      const port = freePort();
      const proc = await t.start(port, originPort, dir);
      try {
        const base = `http://127.0.0.1:${port}`;
        if (opts.id) {
          console.log(`==== ${t.label}`);
          console.log(await runClient(base, opts.id));
          continue;
        }
        const started = Date.now();
        const results = JSON.parse(await runClient(base)) as Results;
        all[t.label] = { results, categories: await classify(results) };
        console.log(
          `${t.label}: ${Object.keys(results).length} tests in ${(Date.now() - started) / 1000} s`,
        );
      } finally {
        await proc.stop();
      }
    }
  } finally {
    await origin.stop();
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
  if (opts.id) return;
  report(all, version);
  await Deno.mkdir(`${ROOT}/bench/results`, { recursive: true });
  const file = `${ROOT}/bench/results/conformance-${
    new Date().toISOString().replace(/[:.]/g, "-")
  }.json`;
  await Deno.writeTextFile(
    file,
    JSON.stringify({ suite: `http-cache-tests@${version}`, targets: all }, null, 2),
  );
  console.log(`\nraw results: ${file}`);
}

function report(
  all: Record<string, { results: Results; categories: Record<string, string> }>,
  version: string,
): void {
  const labels = Object.keys(all);
  if (!labels.length) return;
  const used = COLUMNS.filter((c) =>
    labels.some((l) => Object.values(all[l].categories).includes(c))
  );
  const w = Math.max(6, ...labels.map((l) => l.length));
  console.log(
    `\nhttp-cache-tests ${version} (cache-tests.fyi), categories as lib/display.mjs reports them`,
  );
  console.log(
    `${pad("target", w)} | ${
      used.map((c) => pad(c, Math.max(5, c.length), true)).join(" | ")
    } | total`,
  );
  for (const l of labels) {
    const cats = Object.values(all[l].categories);
    const cells = used.map((c) =>
      pad(String(cats.filter((x) => x === c).length), Math.max(5, c.length), true)
    );
    console.log(`${pad(l, w)} | ${cells.join(" | ")} | ${cats.length}`);
  }
  const peers = labels.filter((l) => !l.startsWith("proxy"));
  if (!peers.length) return; // nothing to compare the proxy rows with
  for (const l of labels.filter((l) => l.startsWith("proxy"))) {
    const mine = all[l].categories;
    const worse = Object.keys(mine).filter((id) =>
      !["pass", "check_yes", "check_no", "untested"].includes(mine[id]) &&
      peers.some((p) => all[p].categories[id] === "pass")
    ).sort();
    console.log(`\n${l}: not passing where a peer passes (${worse.length})`);
    for (const id of worse) {
      const who = peers.filter((p) => all[p].categories[id] === "pass").join(",");
      console.log(`  ${mine[id]} ${id} [passes: ${who}] ${reason(all[l].results[id])}`);
    }
  }
}

if (import.meta.main) await main();
