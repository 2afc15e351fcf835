/**
 * The access log's cost measured side by side, for a shared, loaded machine
 * where alternating wrk rounds swing by 3× (the access-log scenario): two
 * proxies serve cache hits at the same moments, one with ACCESS_LOG off, one
 * with every line written as JSON to a file, each under its own
 * `wrk -t1 -c50`; the result is each proxy's CPU time per request (from
 * /proc, Linux) and their request rates, 3 rounds of 8 s, medians.
 *
 *   deno run -A bench/access_log_cpu.ts
 *
 * @module
 */
const ROOT = new URL("../", import.meta.url).pathname;
const PATH = "/bytes/1024?max_age=3600";

function freePort(): number {
  const l = Deno.listen({ port: 0, hostname: "127.0.0.1" });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 300; i++) {
    try {
      (await Deno.connect({ port, hostname: "127.0.0.1" })).close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`nothing listens on ${port} after 30 s`);
}

/** User plus system CPU time of a process, in ms (10 ms resolution). */
function cpuMs(pid: number): number {
  const fields = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function spawn(args: string[], env: Record<string, string> = {}): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}main.ts`, ...args],
    env,
    cwd: ROOT,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
}

const tmp = await Deno.makeTempDir({ prefix: "access-log-cpu-" });
const originPort = freePort();
const origin = spawn(["backend", "--port", String(originPort)]);
await waitForPort(originPort);

async function startProxy(on: boolean) {
  const port = freePort();
  const child = spawn(["serve"], {
    PORT: String(port),
    HOST: "127.0.0.1",
    BACKEND_SERVERS: `http://127.0.0.1:${originPort}`,
    CACHE_BACKEND: "memory",
    RATE_LIMIT_REQUESTS: "0",
    REQUEST_FILTERS: "",
    LOG_LEVEL: "info",
    LOG_FORMAT: "json",
    ACCESS_LOG: String(on),
    LOG_FILE: `${tmp}/access.log`,
    LOG_STDOUT: "false",
  });
  await waitForPort(port);
  return { on, port, child, url: `http://127.0.0.1:${port}${PATH}` };
}

const requestsOf = async (port: number) =>
  (await (await fetch(`http://127.0.0.1:${port}/proxy-stats`)).json()).requests_total as number;
const wrk = (url: string, seconds: number) =>
  new Deno.Command("wrk", { args: ["-t1", "-c50", `-d${seconds}s`, url], stderr: "null" })
    .output();

const proxies = [await startProxy(false), await startProxy(true)];
try {
  for (const p of proxies) await wrk(p.url, 2); // warm-up: JIT and the cache entry
  const cpu: Record<"off" | "on", number[]> = { off: [], on: [] };
  const rps: Record<"off" | "on", number[]> = { off: [], on: [] };
  for (let round = 1; round <= 3; round++) {
    const before = await Promise.all(
      proxies.map(async (p) => ({ cpu: cpuMs(p.child.pid), n: await requestsOf(p.port) })),
    );
    const outputs = await Promise.all(proxies.map((p) => wrk(p.url, 8)));
    for (const [i, p] of proxies.entries()) {
      const key = p.on ? "on" : "off";
      const n = await requestsOf(p.port) - before[i].n;
      cpu[key].push((cpuMs(p.child.pid) - before[i].cpu) * 1000 / n);
      const text = new TextDecoder().decode(outputs[i].stdout);
      rps[key].push(Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1] ?? NaN));
    }
    console.log(
      `round ${round}: off ${cpu.off.at(-1)!.toFixed(1)} µs/request, ${rps.off.at(-1)} req/s | ` +
        `on ${cpu.on.at(-1)!.toFixed(1)} µs/request, ${rps.on.at(-1)} req/s`,
    );
  }
  const median = (a: number[]) => [...a].sort((x, y) => x - y)[1];
  console.log(
    `median CPU per request: off ${median(cpu.off).toFixed(1)} µs, on ${
      median(cpu.on).toFixed(1)
    } µs; off/on ${(median(cpu.off) / median(cpu.on)).toFixed(3)} ` +
      `(the on/off throughput when CPU-bound); req/s on/off ${
        (median(rps.on) / median(rps.off)).toFixed(3)
      }`,
  );
} finally {
  for (const p of proxies) {
    p.child.kill("SIGTERM");
    await p.child.status;
  }
  origin.kill("SIGTERM");
  await origin.status;
  await Deno.remove(tmp, { recursive: true });
}
