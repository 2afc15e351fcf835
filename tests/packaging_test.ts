/**
 * Packaging (issue 15 item 8): the systemd unit passes `systemd-analyze
 * verify` and an offline security review, the Dockerfile keeps its promises
 * (slim base, the binary only, non-root, HEALTHCHECK on /healthz), compose.yaml
 * wires the proxy to Redis, and the release workflow that builds and
 * smoke-tests the image is valid (docker cannot run here, so the workflow is
 * where the image is really built).
 */
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);
const read = (path: string) => Deno.readTextFileSync(new URL(path, ROOT));
const dec = new TextDecoder();

function have(cmd: string): boolean {
  try {
    new Deno.Command(cmd, { args: ["--version"], stdout: "null", stderr: "null" }).outputSync();
    return true;
  } catch {
    return false;
  }
}

const haveSystemdAnalyze = have("systemd-analyze");
if (!haveSystemdAnalyze) {
  console.warn(
    "packaging_test: the systemd-analyze checks are ignored because systemd-analyze is missing " +
      "(apt-get install systemd; .ci/run installs it)",
  );
}

/** The unit with ExecStart pointing at an executable that exists here (verify checks it). */
async function unitCopy(edit: (unit: string) => string = (u) => u): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "unit-" });
  await Deno.writeTextFile(`${dir}/proxy`, "#!/bin/sh\n");
  await Deno.chmod(`${dir}/proxy`, 0o755);
  const unit = edit(read("packaging/proxy.service")).replaceAll(
    "/usr/local/bin/proxy",
    `${dir}/proxy`,
  );
  await Deno.writeTextFile(`${dir}/proxy.service`, unit);
  return dir;
}

async function run(cmd: string, args: string[]) {
  const out = await new Deno.Command(cmd, { args, stdin: "null" }).output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test({
  name: "packaging/proxy.service passes systemd-analyze verify with nothing to say",
  ignore: !haveSystemdAnalyze, // reason printed below
  async fn() {
    const dir = await unitCopy();
    try {
      const r = await run("systemd-analyze", ["verify", `${dir}/proxy.service`]);
      assert.equal(r.code, 0, r.stderr);
      // An unknown or misspelt key only warns (exit 0): any output at all is a failure.
      assert.equal((r.stdout + r.stderr).trim(), "");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "the verify check itself catches a misspelt key (the test above can fail)",
  ignore: !haveSystemdAnalyze, // reason printed below
  async fn() {
    const dir = await unitCopy((u) => u.replace("DynamicUser=yes", "DynamicUzer=yes"));
    try {
      const r = await run("systemd-analyze", ["verify", `${dir}/proxy.service`]);
      assert.match(r.stdout + r.stderr, /Unknown key 'DynamicUzer'/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "packaging/proxy.service is hardened: offline exposure score at most 2.0 (OK)",
  ignore: !haveSystemdAnalyze, // reason printed below
  async fn() {
    const dir = await unitCopy();
    try {
      const r = await run("systemd-analyze", [
        "security",
        "--offline=true",
        "--threshold=20",
        "--no-pager",
        `${dir}/proxy.service`,
      ]);
      const score = /Overall exposure level for proxy\.service: ([\d.]+)/.exec(r.stdout);
      assert.ok(score, r.stdout + r.stderr);
      assert.equal(r.code, 0, `exposure ${score[1]} is above 2.0\n${r.stdout}`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("packaging/proxy.service: the settings the issue asks for", () => {
  const unit = read("packaging/proxy.service");
  const has = (line: string) => assert.match(unit, new RegExp(`^${line}$`, "m"), line);
  has("ExecStart=/usr/local/bin/proxy serve");
  has("ExecReload=/bin/kill -HUP \\$MAINPID");
  has("EnvironmentFile=/etc/proxy.env");
  has("DynamicUser=yes");
  has("ProtectSystem=strict");
  has("NoNewPrivileges=yes");
  has("CapabilityBoundingSet=CAP_NET_BIND_SERVICE");
  has("AmbientCapabilities=CAP_NET_BIND_SERVICE");
  has("LogsDirectory=proxy");
  // logrotate's postrotate signal is the one that reopens LOG_FILE.
  assert.match(read("packaging/proxy.logrotate"), /--signal=USR1/);
});

/** Dockerfile instructions, continuation lines joined, comments dropped. */
function dockerInstructions(text: string): { op: string; args: string }[] {
  const joined = text.split("\n").filter((l) => !/^\s*#/.test(l)).join("\n")
    .replace(/\\\n/g, " ");
  return joined.split("\n").filter((l) => l.trim() !== "").map((l) => {
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(l);
    assert.ok(m, `not an instruction: ${l}`);
    return { op: m[1].toUpperCase(), args: m[2].trim() };
  });
}

const DOCKER_OPS = new Set([
  "FROM",
  "RUN",
  "CMD",
  "LABEL",
  "EXPOSE",
  "ENV",
  "ADD",
  "COPY",
  "ENTRYPOINT",
  "VOLUME",
  "USER",
  "WORKDIR",
  "ARG",
  "ONBUILD",
  "STOPSIGNAL",
  "HEALTHCHECK",
  "SHELL",
]);

Deno.test("Dockerfile: slim Debian, the binary only, non-root, HEALTHCHECK on /healthz", () => {
  const ins = dockerInstructions(read("Dockerfile"));
  for (const i of ins) assert.ok(DOCKER_OPS.has(i.op), `unknown instruction ${i.op}`);
  const ops = (op: string) => ins.filter((i) => i.op === op);
  assert.equal(ops("FROM").length, 1);
  assert.match(ops("FROM")[0].args, /^debian:[a-z]+-slim$/);
  assert.deepEqual(ops("COPY").map((i) => i.args), ["--chmod=0755 proxy /usr/local/bin/proxy"]);
  const user = ops("USER").at(-1)?.args ?? "";
  assert.ok(user !== "" && !/^(0|root)(:|$)/.test(user), `runs as ${user || "root"}`);
  // USER comes after every RUN: nothing runs as root at start.
  assert.ok(ins.findLastIndex((i) => i.op === "RUN") < ins.findIndex((i) => i.op === "USER"));
  const health = ops("HEALTHCHECK")[0]?.args ?? "";
  assert.match(health, /CMD .*\/healthz/);
  assert.match(ops("RUN").map((i) => i.args).join(" "), /\bcurl\b/, "the health check's curl");
  assert.deepEqual(ops("ENTRYPOINT").map((i) => i.args), ['["/usr/local/bin/proxy"]']);
  assert.match(ops("EXPOSE")[0]?.args ?? "", /^8080$/);
  // The build context is the binary only (a checkout's .dockerignore, the workflow's own dir).
  assert.deepEqual(read(".dockerignore").split("\n").filter((l) => l && !l.startsWith("#")), [
    "*",
    "!proxy",
  ]);
});

/** Parses YAML with the `yaml` package, in a subprocess so the project's lock file is untouched. */
async function parseYaml(path: string): Promise<unknown> {
  const code = `import { parse } from "npm:yaml@2.9.1";
    console.log(JSON.stringify(parse(Deno.readTextFileSync(${JSON.stringify(path)}))));`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-lock", "--no-config", code],
    stdin: "null",
  }).output();
  assert.equal(out.code, 0, dec.decode(out.stderr));
  return JSON.parse(dec.decode(out.stdout));
}

Deno.test("compose.yaml: the proxy built here, Redis as its cache, started once Redis is healthy", async () => {
  // deno-lint-ignore no-explicit-any
  const c = await parseYaml(new URL("compose.yaml", ROOT).pathname) as any;
  assert.deepEqual(Object.keys(c.services).sort(), ["proxy", "redis"]);
  const { proxy, redis } = c.services;
  assert.equal(proxy.build, ".");
  assert.match(proxy.environment.REDIS_URL, /^redis:\/\/redis:6379\//);
  assert.equal(proxy.environment.CACHE_BACKEND, "redis");
  assert.equal(proxy.depends_on.redis.condition, "service_healthy");
  assert.ok(proxy.ports.every((p: string) => p.startsWith("127.0.0.1:")), "loopback only");
  assert.deepEqual(redis.healthcheck.test, ["CMD", "redis-cli", "ping"]);
  assert.match(redis.image, /^redis:/);
});

Deno.test("the workflows are valid (action-validator), and the release builds and smoke-tests the image", async () => {
  for (const entry of Deno.readDirSync(new URL(".github/workflows/", ROOT))) {
    const path = new URL(`.github/workflows/${entry.name}`, ROOT).pathname;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-lock", "--no-config", "-A", "npm:@action-validator/cli@0.6.0", path],
      stdin: "null",
    }).output();
    assert.equal(out.code, 0, `${entry.name}: ${dec.decode(out.stdout)}${dec.decode(out.stderr)}`);
  }
  const release = read(".github/workflows/release.yml");
  assert.match(release, /docker build .*-f Dockerfile/);
  assert.match(release, /\.State\.Health\.Status/);
  assert.match(release, /\/healthz/);
  assert.match(release, /\.Config\.User/);
});

Deno.test("action-validator refuses a broken workflow (the check above can fail)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "workflow-" });
  try {
    const broken = read(".github/workflows/release.yml").replace("runs-on:", "runs_on:");
    await Deno.writeTextFile(`${dir}/release.yml`, broken);
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-lock",
        "--no-config",
        "-A",
        "npm:@action-validator/cli@0.6.0",
        `${dir}/release.yml`,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).output();
    assert.notEqual(out.code, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
