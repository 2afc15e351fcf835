/**
 * `proxy check` (issue 15 item 4), run as the real command: exit 0 when
 * `proxy serve` would start, 2 with one line per problem otherwise; the
 * effective settings with their source, secrets masked; unknown `.env` keys
 * and near-miss environment variables with "did you mean"; files and the TLS
 * pair; Redis reachability as a warning. Also what `serve` itself does with
 * the same mistakes: REDIS_URL's form and unknown `.env` keys at start-up,
 * and a fatal start-up error as one plain stderr line whatever LOG_FORMAT.
 */
import assert from "node:assert/strict";
import { startProxy } from "./helpers/proxy.ts";
import { startRedis } from "./helpers/redis.ts";
import { closedPort, freePort } from "./helpers/ports.ts";
import { TEST_CA_PATH, TEST_CERT_PATH, TEST_KEY_PATH } from "./helpers/tls.ts";
import { closestName } from "../src/config/suggest.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const MAIN = `${ROOT}main.ts`;
const dec = new TextDecoder();
const FIXTURES = new URL("fixtures/", import.meta.url).pathname;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** `proxy check ARGS` in an empty directory with only `env` (and PATH) set. */
async function check(args: string[], env: Record<string, string> = {}, dotEnv?: string) {
  const dir = await Deno.makeTempDir({ prefix: "check-" });
  try {
    if (dotEnv !== undefined) await Deno.writeTextFile(`${dir}/.env`, dotEnv);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--config", `${ROOT}deno.json`, MAIN, "check", ...args],
      cwd: dir,
      // A port no one listens on for Redis unless a test says otherwise; a free PORT.
      env: {
        PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
        NO_COLOR: "1",
        PORT: String(freePort()),
        REDIS_PORT: String(closedPort()),
        ...env,
      },
      clearEnv: true,
      stdin: "null",
    }).output();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const errors = (r: Run) => r.stderr.split("\n").filter((l) => l.startsWith("error: "));
const warnings = (r: Run) => r.stderr.split("\n").filter((l) => l.startsWith("warning: "));
/** The source comment of setting `env` in the listing. */
function sourceOf(r: Run, env: string): string | undefined {
  const line = r.stdout.split("\n").find((l) => l.startsWith(`${env}=`));
  return line ? /#\s*(.+)$/.exec(line)?.[1] : undefined;
}

Deno.test("closestName suggests slips (missing underscore, swapped letters), not strangers", () => {
  const names = ["RATE_LIMIT_REQUESTS", "RATE_LIMIT_WINDOW", "PORT", "HOST", "REDIS_URL"];
  assert.equal(closestName("RATELIMIT_REQUESTS", names), "RATE_LIMIT_REQUESTS");
  assert.equal(closestName("RATE_LIMIT_WINDWO", names), "RATE_LIMIT_WINDOW");
  assert.equal(closestName("REDIS_UR", names), "REDIS_URL");
  assert.equal(closestName("PORTS", names), "PORT");
  assert.equal(closestName("HOME", names), undefined);
  assert.equal(closestName("HTTP_PROXY", names), undefined);
});

Deno.test("a good configuration: exit 0, every setting listed with its source, secrets masked", async () => {
  const r = await check(
    ["--backend", "http://127.0.0.1:8000", "--env-file", "/dev/null"],
    {
      ADMIN_TOKEN: "s3cret-admin-token",
      REDIS_URL: "redis://app:hunter2@127.0.0.1:1/2",
      LOG_LEVEL: "warn",
    },
  );
  assert.equal(r.code, 0, r.stderr);
  assert.equal(errors(r).length, 0);
  assert.equal(sourceOf(r, "BACKEND_SERVERS"), "flag --backend");
  assert.equal(sourceOf(r, "LOG_LEVEL"), "environment");
  assert.equal(sourceOf(r, "CACHE_EXPIRATION"), "default");
  assert.match(r.stdout, /^ADMIN_TOKEN=\*\*\*\*\s/m);
  assert.match(r.stdout, /^REDIS_URL=redis:\/\/app:\*\*\*\*@127\.0\.0\.1:1\/2\s/m);
  assert.ok(!(r.stdout + r.stderr).includes("s3cret-admin-token"));
  assert.ok(!(r.stdout + r.stderr).includes("hunter2"));
  // Redis on port 1 does not answer: a warning, not a problem.
  assert.ok(warnings(r).some((w) => /REDIS_URL .* does not answer/.test(w)), r.stderr);
  assert.match(r.stderr.trim().split("\n").at(-1)!, /configuration OK.*reverse mode/);
});

Deno.test("unknown .env keys and near-miss environment variables: did you mean", async () => {
  const r = await check(
    [],
    { RATE_LIMT_WINDOW: "5", HTTP_PROXY: "http://x:1", HOME: "/root", EDITOR: "vi" },
    "RATELIMIT_REQUESTS=5\nLOG_LEVEL=warn\nSOMETHING_ELSE=1\n",
  );
  assert.equal(r.code, 0, r.stderr);
  const w = warnings(r);
  assert.ok(
    w.some((l) => /RATELIMIT_REQUESTS.*did you mean RATE_LIMIT_REQUESTS\?/.test(l)),
    r.stderr,
  );
  assert.ok(w.some((l) => /SOMETHING_ELSE/.test(l) && !l.includes("did you mean")), r.stderr);
  assert.ok(w.some((l) => /RATE_LIMT_WINDOW.*did you mean RATE_LIMIT_WINDOW\?/.test(l)), r.stderr);
  // No false alarms from the ordinary environment.
  assert.ok(!/HTTP_PROXY|HOME|EDITOR/.test(w.join("\n")), r.stderr);
  assert.equal(sourceOf(r, "LOG_LEVEL"), ".env");
});

Deno.test("every problem at once, one line each, exit 2", async () => {
  const r = await check([], {
    PORT: "99999",
    REDIS_URL: "notaurl",
    TLS_CERT: TEST_CERT_PATH,
    PROXY_AUTH_FILE: "/nonexistent/users.htpasswd",
    UPSTREAM_CA_FILE: "/nonexistent/ca.pem",
    FILTER_LISTS: "/nonexistent/list.txt",
    LOG_FILE: "/nonexistent/dir/proxy.log",
  });
  assert.equal(r.code, 2, r.stderr);
  const e = errors(r);
  for (
    const name of [
      "PORT",
      "REDIS_URL",
      "TLS_CERT and TLS_KEY",
      "PROXY_AUTH_FILE",
      "UPSTREAM_CA_FILE",
      "FILTER_LISTS",
      "LOG_FILE",
    ]
  ) {
    assert.equal(
      e.filter((l) => l.startsWith(`error: ${name}`)).length,
      1,
      `${name}:\n${r.stderr}`,
    );
  }
  assert.equal(e.length, 7, r.stderr);
  assert.match(r.stderr.trim().split("\n").at(-1)!, /7 problem\(s\); proxy serve would not start/);
});

Deno.test("TLS_CERT and TLS_KEY must be a usable pair", async () => {
  const good = await check([], { TLS_CERT: TEST_CERT_PATH, TLS_KEY: TEST_KEY_PATH });
  assert.equal(good.code, 0, good.stderr);
  const mismatched = await check([], {
    TLS_CERT: TEST_CERT_PATH,
    TLS_KEY: `${FIXTURES}tls2.key`,
  });
  assert.equal(mismatched.code, 2);
  assert.match(
    errors(mismatched).join("\n"),
    /^error: TLS_CERT\/TLS_KEY: the key .* does not belong/,
  );
  const notPem = await check([], { TLS_CERT: TEST_KEY_PATH, TLS_KEY: TEST_KEY_PATH });
  assert.equal(notPem.code, 2);
  assert.match(errors(notPem).join("\n"), /^error: TLS_CERT: .* is not a PEM certificate/);
  const ca = await check([], { UPSTREAM_CA_FILE: TEST_CA_PATH });
  assert.equal(ca.code, 0, ca.stderr);
});

Deno.test("a Redis that answers gives no warning", async () => {
  const redis = await startRedis();
  try {
    const r = await check([], { REDIS_URL: redis.url, CACHE_BACKEND: "redis" });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!warnings(r).some((w) => w.includes("REDIS")), r.stderr);
  } finally {
    await redis.stop();
  }
});

Deno.test("serve: REDIS_URL=notaurl stops start-up with one plain line naming it", async () => {
  const proxy = await startProxy({ env: { REDIS_URL: "notaurl" }, expectExit: true });
  const out = proxy.output().trim();
  assert.equal(out.split("\n").length, 1, out);
  assert.match(out, /^proxy: REDIS_URL: invalid value "notaurl": expected/);
});

Deno.test("serve: unknown .env keys are warned about at start-up, with a suggestion", async () => {
  const dir = await Deno.makeTempDir({ prefix: "serve-env-" });
  try {
    await Deno.writeTextFile(`${dir}/proxy.env`, "RATELIMIT_REQUESTS=5\n");
    const proxy = await startProxy({ args: ["--env-file", `${dir}/proxy.env`] });
    const warning =
      /unknown setting RATELIMIT_REQUESTS, ignored \(did you mean RATE_LIMIT_REQUESTS\?\)/;
    const deadline = Date.now() + 10_000;
    while (!warning.test(proxy.output()) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    await proxy.stop();
    assert.match(proxy.output(), warning);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve: a fatal start-up error is one plain line, after every JSON log line", async () => {
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    // stdout and stderr into one stream, as journald or `2>&1 | tee` see them.
    const child = await new Deno.Command("bash", {
      args: ["-c", `"${Deno.execPath()}" run -A "${MAIN}" serve 2>&1`],
      cwd: ROOT,
      env: {
        PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
        HOST: "127.0.0.1",
        PORT: String((busy.addr as Deno.NetAddr).port),
        LOG_FORMAT: "json",
        LOG_LEVEL: "debug",
        CACHE_BACKEND: "memory",
        REQUEST_FILTERS: "",
      },
      clearEnv: true,
      stdin: "null",
    }).output();
    assert.equal(child.code, 2);
    const lines = dec.decode(child.stdout).trim().split("\n");
    assert.match(lines.at(-1)!, /^proxy: PORT: 127\.0\.0\.1:\d+ is already in use$/);
    // Everything before it is whole JSON lines: nothing mixed into them.
    for (const line of lines.slice(0, -1)) JSON.parse(line);
  } finally {
    busy.close();
  }
});

/** The lines of the first ```sh block after `marker` in README.md. */
function readmeBlock(marker: string): string[] {
  const readme = Deno.readTextFileSync(`${ROOT}README.md`);
  const at = readme.indexOf(marker);
  assert.ok(at >= 0, `README.md no longer contains "${marker}"`);
  const open = readme.indexOf("```sh\n", at);
  const body = readme.slice(open + 6, readme.indexOf("\n```", open + 3));
  return body.split("\n").filter((l) => l.trim() !== "");
}

/** A directory with `./proxy` running this tree's main.ts. */
async function recipeDir(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "check-recipe-" });
  await Deno.writeTextFile(
    `${dir}/proxy`,
    `#!/bin/sh\nexec "${Deno.execPath()}" run -A --config "${ROOT}deno.json" "${MAIN}" "$@"\n`,
  );
  await Deno.chmod(`${dir}/proxy`, 0o755);
  return dir;
}

Deno.test("README recipe: proxy check finds the .env typo, and a bad flag exits 2", async () => {
  const lines = readmeBlock("## Check a configuration before starting it");
  assert.equal(lines.length, 3, lines.join("\n"));
  const dir = await recipeDir();
  try {
    const outputs: Run[] = [];
    for (const line of lines) {
      const out = await new Deno.Command("bash", {
        args: ["-c", line],
        cwd: dir,
        env: {
          PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
          NO_COLOR: "1",
          REDIS_PORT: String(closedPort()), // never the Redis on 6379
        },
        clearEnv: true,
        stdin: "null",
      }).output();
      outputs.push({
        code: out.code,
        stdout: dec.decode(out.stdout),
        stderr: dec.decode(out.stderr),
      });
    }
    assert.equal(outputs[1].code, 0, outputs[1].stderr);
    assert.ok(
      outputs[1].stderr.includes(
        "proxy.env: unknown setting RATELIMIT_REQUESTS, ignored (did you mean RATE_LIMIT_REQUESTS?)",
      ),
      outputs[1].stderr,
    );
    assert.match(outputs[1].stdout, /^PORT=8080\s+# \.env \(proxy\.env\)$/m);
    assert.equal(outputs[2].stdout.trim(), "exit 2");
    assert.match(outputs[2].stderr, /^error: --port \(PORT\): invalid value "99999"/m);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("README systemd recipe: its example /etc/proxy.env passes proxy check", async () => {
  const env = readmeBlock("For example, `/etc/proxy.env`");
  assert.ok(env.some((l) => l.startsWith("BACKEND_SERVERS=")), env.join("\n"));
  const dir = await Deno.makeTempDir({ prefix: "check-etc-" });
  try {
    // The recipe's Redis is 127.0.0.1:6379; tests never touch that one: a free port instead.
    const text = env.join("\n").replace(":6379/", `:${closedPort()}/`) + "\n";
    await Deno.writeTextFile(`${dir}/proxy.env`, text);
    const r = await check(["--env-file", `${dir}/proxy.env`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(errors(r).length, 0);
    assert.match(r.stdout, /^ADMIN_TOKEN=\*\*\*\*\s/m);
    // The recipe's install line runs exactly this command.
    assert.ok(
      readmeBlock("### systemd").some((l) => l.includes("proxy check --env-file /etc/proxy.env")),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("proxy --help lists check; proxy check --help prints its usage", async () => {
  const run = async (...args: string[]) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN, ...args],
      cwd: ROOT,
      stdin: "null",
    }).output();
    return { code: out.code, stdout: dec.decode(out.stdout) };
  };
  const top = await run("--help");
  assert.match(top.stdout, /^ {2}proxy check /m);
  const help = await run("check", "--help");
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^USAGE$/m);
  assert.match(help.stdout, /proxy check \[--env-file FILE\]/);
  assert.match(help.stdout, /^EXIT STATUS$/m);
});

Deno.test("a bad value that holds a secret is named without it", async () => {
  const r = await check([], { REDIS_URL: "redis://app:s3cr3t@cache.internal/abc" });
  assert.equal(r.code, 2);
  assert.match(errors(r).join("\n"), /^error: REDIS_URL: invalid value "redis:\/\/app:\*\*\*\*@/m);
  assert.ok(!(r.stdout + r.stderr).includes("s3cr3t"));
});
