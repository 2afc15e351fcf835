/**
 * The README's commands, run for real. Each test takes its commands out of
 * README.md, so a README edit that breaks a recipe breaks the test. Ports in
 * the recipes (8000, 8080, 6379, …) are mapped onto free ports; `./proxy` is a
 * small script that runs `deno run main.ts` (or the release archive's layout,
 * for the download line).
 */
import assert from "node:assert/strict";
import { startProxy } from "./helpers/proxy.ts";
import { startBackendProcess, startTestBackend } from "./helpers/backend.ts";
import { startTlsOrigin } from "./helpers/tls.ts";
import { curl } from "./helpers/http.ts";
import { closedPort, freePort, waitForPort } from "./helpers/ports.ts";
import { packTarget } from "../scripts/release.ts";
import { VERSION } from "../src/version.ts";
import { fileExists, ignoreUnless } from "./helpers/ignore.ts";

const ROOT = new URL("../", import.meta.url);
const README = Deno.readTextFileSync(new URL("README.md", ROOT));

/** The lines of the first fenced block of `lang` after the first occurrence of `marker`. */
function blockAfter(marker: string, lang = "sh"): string[] {
  const at = README.indexOf(marker);
  assert.ok(at >= 0, `README.md no longer contains "${marker}"`);
  const open = README.indexOf("```" + lang + "\n", at);
  assert.ok(open >= 0, `no \`\`\`${lang} block after "${marker}"`);
  const body = README.slice(open + lang.length + 4, README.indexOf("\n```", open + 3));
  return body.split("\n").filter((l) => l.trim() !== "");
}

/** Splits a shell line into words (quotes and backslashes handled; no expansion). */
function shellWords(line: string): string[] {
  const words: string[] = [];
  let cur = "";
  let quote: string | null = null;
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quote) {
      if (ch === quote) quote = null;
      else cur += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      inWord = true;
    } else if (ch === "\\" && i + 1 < line.length) {
      cur += line[++i];
      inWord = true;
    } else if (ch === " " || ch === "\t") {
      if (inWord) words.push(cur);
      cur = "";
      inWord = false;
    } else if (ch === "#" && !inWord) {
      break;
    } else {
      cur += ch;
      inWord = true;
    }
  }
  if (inWord) words.push(cur);
  return words;
}

/** Replaces every port of `map` where it appears as `:PORT` or `--port PORT`. */
function mapPorts(line: string, map: Map<number, number>): string {
  return line.replace(/(:|--port )(\d{4,5})\b/g, (m, pre, p) => {
    const to = map.get(Number(p));
    return to ? `${pre}${to}` : m;
  });
}

/** A free port for every port number a recipe mentions. */
function portMap(lines: string[]): Map<number, number> {
  const map = new Map<number, number>();
  for (const l of lines) {
    for (const m of l.matchAll(/(?::|--port )(\d{4,5})\b/g)) {
      const p = Number(m[1]);
      if (!map.has(p)) map.set(p, freePort());
    }
  }
  return map;
}

Deno.test("README forward-proxy recipe: proxy backend, proxy with FORWARD_ALLOW_PRIVATE, the curl line", async () => {
  const lines = blockAfter("so to try it against a local");
  assert.equal(lines.length, 3, lines.join("\n"));
  const [backendLine, proxyLine, curlLine] = lines.map(shellWords);
  const ports = portMap(lines);

  // ./proxy backend --port 8000 &
  assert.deepEqual(backendLine.slice(0, 2), ["./proxy", "backend"]);
  assert.equal(backendLine.at(-1), "&");
  const originPort = ports.get(Number(backendLine[backendLine.indexOf("--port") + 1]))!;
  // FORWARD_ALLOW_PRIVATE=true ./proxy --port 8080 &
  const env: Record<string, string> = {};
  let i = 0;
  for (; /^[A-Z_]+=/.test(proxyLine[i]); i++) {
    const [k, ...v] = proxyLine[i].split("=");
    env[k] = v.join("=");
  }
  assert.equal(proxyLine[i], "./proxy");
  assert.equal(proxyLine.at(-1), "&");
  const proxyArgs = proxyLine.slice(i + 1, -1);
  // --port is the PORT setting, which startProxy sets to a free port of its own choosing.
  const portAt = proxyArgs.indexOf("--port");
  assert.ok(portAt >= 0, "the recipe names the proxy's port");
  const recipeProxyPort = Number(proxyArgs.splice(portAt, 2)[1]);
  assert.equal(curlLine[0], "curl");

  const backend = await startBackendProcess(undefined, originPort);
  const proxy = await startProxy({ env, args: proxyArgs });
  try {
    ports.set(recipeProxyPort, proxy.port);
    const res = await curl(...shellWords(mapPorts(lines[2], ports)).slice(1));
    assert.equal(res.code, 0, res.stderr);
    const body = JSON.parse(res.stdout);
    assert.equal(body.backend, backend.name, "the answer came from the recipe's origin");
    assert.equal((await backend.stats()).paths["/json"], 1);
  } finally {
    await proxy.stop();
    await backend.close();
  }
});

/** A directory with an executable `proxy` that runs this source tree's main.ts. */
async function proxyScriptDir(): Promise<{ dir: string; pidFile: string }> {
  const dir = await Deno.makeTempDir({ prefix: "readme-" });
  const pidFile = `${dir}/pids`;
  const main = new URL("main.ts", ROOT).pathname;
  const config = new URL("deno.json", ROOT).pathname;
  await Deno.writeTextFile(
    `${dir}/proxy`,
    `#!/bin/sh\necho $$ >> "${pidFile}"\nexec "${Deno.execPath()}" run -A --config "${config}" "${main}" "$@"\n`,
  );
  await Deno.chmod(`${dir}/proxy`, 0o755);
  return { dir, pidFile };
}

/** Settings for recipe processes: quiet, loopback, no list loading, never the Redis on 6379. */
function recipeEnv(): Record<string, string> {
  return {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: Deno.env.get("HOME") ?? "/tmp",
    HOST: "127.0.0.1",
    LOG_LEVEL: "warn",
    ACCESS_LOG: "false",
    REQUEST_FILTERS: "",
    THREAD_POOL_SIZE: "1",
    REDIS_PORT: String(closedPort()), // a recipe that does not set REDIS_URL finds no Redis
  };
}

/** Resolves once a key ending in `path` exists in the Redis on `port` (10 s at most). */
async function waitForRedisKey(port: number, path: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const out = await new Deno.Command("redis-cli", {
      args: ["-p", String(port), "--scan", "--pattern", `*${path}*`],
      stdout: "piped",
      stderr: "null",
    }).output();
    if (new TextDecoder().decode(out.stdout).trim() !== "") return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no Redis key for ${path} on port ${port} after 10 s`);
}

/**
 * Runs a README block line by line in bash: lines ending in `&` are started
 * (and their `--port`s awaited), `export` lines add to the environment, other
 * lines run to completion; a line whose comment starts with MISS, HIT or a
 * status code must print that. Returns each foreground line's output.
 */
async function runRecipe(lines: string[]): Promise<string[]> {
  const { dir } = await proxyScriptDir();
  const env = recipeEnv();
  const ports = portMap(lines);
  const background: Deno.ChildProcess[] = [];
  const outputs: string[] = [];
  try {
    for (const raw of lines) {
      const line = mapPorts(raw, ports);
      if (line.startsWith("export ")) {
        for (const w of shellWords(line).slice(1)) {
          const [k, ...v] = w.split("=");
          env[k] = v.join("=");
        }
        continue;
      }
      if (/&\s*(#.*)?$/.test(line)) {
        const cmd = line.replace(/\s*#.*$/, "");
        const child = new Deno.Command("bash", {
          args: ["-c", `trap 'kill $(jobs -p) 2>/dev/null; wait' TERM; ${cmd} wait`],
          cwd: dir,
          env,
          clearEnv: true,
          stdin: "null",
          stdout: "null",
          stderr: "null",
        }).spawn();
        background.push(child);
        for (const m of cmd.matchAll(/--port (\d+)/g)) await waitForPort(Number(m[1]), 30_000);
        continue;
      }
      const expect = /#\s*(MISS|HIT|\d{3})\b/.exec(raw)?.[1];
      const redisPort = ports.get(6379);
      const path = /https?:\/\/[^/\s]+(\/[^\s'"]*)/.exec(line)?.[1];
      if (expect === "HIT" && redisPort && path) {
        // The entry reaches Redis just after the previous response went out; a person types
        // the next line long after that. Wait for the key instead of racing the store.
        await waitForRedisKey(redisPort, path);
      }
      const out = await new Deno.Command("bash", {
        args: ["-c", line],
        cwd: dir,
        env,
        clearEnv: true,
        stdin: "null",
      }).output();
      const text = new TextDecoder().decode(out.stdout);
      outputs.push(text);
      if (expect) assert.ok(text.includes(expect), `"${raw}" printed ${JSON.stringify(text)}`);
    }
    return outputs;
  } finally {
    for (const c of background) {
      try {
        c.kill("SIGTERM");
      } catch { /* exited */ }
      await c.status;
    }
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("README reverse-proxy recipe: two weighted backends, Redis, MISS then HIT", async () => {
  const lines = blockAfter("## Use it as a reverse proxy");
  const outputs = await runRecipe(lines);
  const picks = outputs[0].match(/"backend":"([ab])"/g) ?? [];
  assert.equal(picks.length, 6, outputs[0]);
  const b = picks.filter((p) => p.includes('"b"')).length;
  assert.equal(b, 4, `weight=2 gives b two of every three requests: ${picks.join(" ")}`);
});

Deno.test("README shared-Redis recipe: one cache and one rate limit across two instances", async () => {
  const lines = blockAfter("## Several instances sharing one Redis");
  const outputs = await runRecipe(lines);
  assert.equal(outputs.length, 5, "two cache lines and three rate-limit lines");
});

Deno.test("README download line: the Linux/macOS command unpacks a release archive and starts it", async () => {
  const line = blockAfter("## Download and run").find((l) => l.startsWith("curl "));
  assert.ok(line, "no curl line under Download and run");
  // Serve a release-shaped archive whose `proxy` runs this tree, under the path the line fetches.
  const { dir: scriptDir, pidFile } = await proxyScriptDir();
  const target = Deno.build.target;
  const archive = await packTarget(
    VERSION,
    target,
    await Deno.readFile(`${scriptDir}/proxy`),
  );
  const expected = `/releases/download/v${VERSION}/proxy-${VERSION}-${target}.tar.gz`;
  const requested: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const path = new URL(req.url).pathname;
    requested.push(path);
    return path === expected
      ? new Response(archive as Uint8Array<ArrayBuffer>)
      : new Response("not found", { status: 404 });
  });
  const work = await Deno.makeTempDir({ prefix: "readme-download-" });
  const port = freePort();
  const env = {
    ...recipeEnv(),
    REPO: `http://127.0.0.1:${server.addr.port}`,
    VERSION,
    TARGET: target,
  };
  const child = new Deno.Command("bash", {
    args: ["-c", line.replace("--port 8080", `--port ${port}`)],
    cwd: work,
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  try {
    await Promise.race([
      waitForPort(port, 30_000),
      child.status.then((s) => {
        throw new Error(`the download line exited with ${s.code} before listening`);
      }),
    ]);
    assert.deepEqual(requested, [expected]);
    const health = await (await fetch(`http://127.0.0.1:${port}/healthz`)).json();
    assert.equal(health.status, "ok");
    assert.equal(health.version, VERSION);
  } finally {
    // The archive's `proxy` wrote its pid; it exec'd deno, so that pid is the proxy.
    const pids = (await Deno.readTextFile(pidFile).catch(() => "")).split("\n").filter(Boolean);
    for (const pid of pids) {
      try {
        Deno.kill(Number(pid), "SIGTERM");
      } catch { /* exited */ }
    }
    await child.status;
    await child.stderr.cancel();
    await server.shutdown();
    await Deno.remove(work, { recursive: true });
    await Deno.remove(scriptDir, { recursive: true });
  }
});

const CHROMIUM = "/usr/bin/chromium";
const haveChromium = fileExists(CHROMIUM);

/** Loads a page in headless Chromium with the flags given and returns the DOM it printed. */
async function chromiumDump(url: string, flags: string[]): Promise<string> {
  const profile = await Deno.makeTempDir({ prefix: "readme-chromium-" });
  const child = new Deno.Command(CHROMIUM, {
    args: [
      "--headless=new",
      "--no-sandbox", // tests run as root on CI machines
      "--disable-gpu",
      "--no-first-run",
      `--user-data-dir=${profile}`,
      ...flags,
      "--dump-dom",
      url,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  try {
    const out = await child.output();
    return dec.decode(out.stdout);
  } finally {
    clearTimeout(timer);
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  }
}

const dec = new TextDecoder();

Deno.test({
  name:
    "README browser recipe: Chromium with --proxy-server loads an HTTPS page through a CONNECT tunnel",
  ignore: ignoreUnless(
    "README browser recipe",
    haveChromium,
    `${CHROMIUM} is missing (apt-get install chromium)`,
  ),
  async fn() {
    const text = README.slice(README.indexOf("## Use it as a forward proxy"));
    const flag = /`chromium (--proxy-server=http:\/\/127\.0\.0\.1:(\d+))`/.exec(text);
    assert.ok(flag, "the forward-proxy section names the chromium --proxy-server flag");
    const tls = startTlsOrigin("<p id=tls>secret over tls</p>");
    const origin = await startTestBackend("browser-origin");
    const proxy = await startProxy({
      env: { FORWARD_ALLOW_PRIVATE: "true", CONNECT_PORTS: `443,${tls.port}` },
    });
    try {
      const proxyFlag = flag[1].replace(`:${flag[2]}`, `:${proxy.port}`);
      // Chromium never proxies loopback unless told so; the recipe's users browse real sites.
      const flags = [proxyFlag, "--proxy-bypass-list=<-loopback>", "--ignore-certificate-errors"];
      const https = await chromiumDump(`${tls.url}/`, flags);
      assert.match(https, /secret over tls/);
      const http = await chromiumDump(`${origin.url}/json`, flags);
      assert.match(http, /"backend":"browser-origin"/);
      const stats = await proxy.stats();
      const tunnels = stats.tunnels.total;
      assert.ok(tunnels >= 1, `the HTTPS page came through a tunnel: ${tunnels}`);
      assert.ok((await origin.stats()).paths["/json"] >= 1);
    } finally {
      await proxy.stop();
      await origin.close();
      await tls.close();
    }
  },
});
