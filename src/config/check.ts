/**
 * `proxy check`: validates a configuration without serving it, like
 * `nginx -t` or `caddy validate`. Everything start-up validates (every
 * value, the rules between settings, the files named, the TLS pair), plus
 * what start-up would only log later: unknown `.env` keys and near-miss
 * environment variables with a "did you mean", whether Redis answers,
 * whether the port is free. Prints the effective settings with where each
 * came from, secrets masked. Exit 0 when `proxy serve` would start, 2
 * otherwise, with one line per problem.
 *
 * @module
 */
import { collectConfig, type CollectedConfig, type LoadOptions, type Source } from "./load.ts";
import { checkFiles, type Findings } from "./check_files.ts";
import { maskValue } from "./secrets.ts";
import { closestName } from "./suggest.ts";
import { SCHEMA, type SettingKey } from "./schema.ts";

export const CHECK_HELP = `proxy check — validate a configuration without starting the proxy

USAGE
  proxy check [--env-file FILE] [--FLAG VALUE]...

  Takes the same settings as proxy serve (flags, environment, ./.env or --env-file) and
  checks what start-up checks: every value, the rules between settings, the files named
  (TLS_CERT + TLS_KEY as a usable pair, UPSTREAM_CA_FILE, PROXY_AUTH_FILE, FILTER_LISTS,
  LOG_FILE). It also warns about unknown keys in the .env file and environment variables
  that look like a misspelt setting (with "did you mean"), a Redis that does not answer
  within 1 s, and a port already in use.

OUTPUT
  stdout   the effective settings, one per line: NAME=VALUE  # where it came from
           (default, .env, environment, flag); tokens and passwords masked
  stderr   "warning: ..." and "error: ..." lines, then one summary line

EXIT STATUS
  0   proxy serve would start with this configuration (warnings allowed)
  2   it would not: one "error:" line per problem
`;

export interface CheckOptions extends LoadOptions {
  /** How long to wait for Redis to answer PING (default 1000 ms). */
  redisTimeoutMs?: number;
}

export interface SettingLine {
  readonly env: string;
  /** The value as given, secrets masked. */
  readonly value: string;
  readonly source: string;
}

export interface CheckReport {
  readonly ok: boolean;
  readonly problems: string[];
  readonly warnings: string[];
  readonly settings: SettingLine[];
  readonly collected: CollectedConfig;
}

/** Variables common in any environment, never taken for a misspelt setting. */
const COMMON_ENV = new Set([
  "HOME",
  "HOSTNAME",
  "HOSTTYPE",
  "PATH",
  "PWD",
  "OLDPWD",
  "SHELL",
  "TERM",
  "USER",
  "LOGNAME",
  "LANG",
  "TZ",
]);

/** Runs every check; never throws for a bad configuration. */
export async function checkConfig(options: CheckOptions = {}): Promise<CheckReport> {
  const env = options.env ?? Deno.env.toObject();
  const collected = collectConfig({ ...options, env });
  const f: Findings = { problems: [...collected.problems], warnings: [...collected.warnings] };
  const c = collected.config;

  // Near-miss environment variables: only with a close match, so the rest of the
  // environment (PATH, HTTP_PROXY, ...) never raises a false alarm.
  const known = (Object.keys(SCHEMA) as SettingKey[]).map((k) => SCHEMA[k].env);
  for (const name of Object.keys(env).sort()) {
    if (known.includes(name) || COMMON_ENV.has(name) || !/^[A-Z][A-Z0-9_]{3,}$/.test(name)) {
      continue;
    }
    const near = closestName(name, known);
    if (near) {
      f.warnings.push(`environment: ${name} is not a setting, ignored (did you mean ${near}?)`);
    }
  }

  checkFiles(c, f);
  await checkPort(collected, f);
  await checkRedis(collected, f, options.redisTimeoutMs ?? 1000);

  const settings = (Object.keys(SCHEMA) as SettingKey[]).map((key) => ({
    env: SCHEMA[key].env,
    value: maskValue(SCHEMA[key].env, collected.raw[key]),
    source: sourceLabel(collected.sources[key], collected.envFile, SCHEMA[key].flag),
  }));
  return { ok: f.problems.length === 0, ...f, settings, collected };
}

function sourceLabel(source: Source, envFile: string | undefined, flag?: string): string {
  switch (source) {
    case "env-file":
      return envFile === "./.env" || envFile === undefined ? ".env" : `.env (${envFile})`;
    case "flag":
      return `flag --${flag}`;
    default:
      return source;
  }
}

/** A port in use stops start-up, but so does checking before a restart of this proxy: a warning. */
async function checkPort(collected: CollectedConfig, f: Findings): Promise<void> {
  const { host, port } = collected.config;
  if (port === 0 || collected.problems.some((p) => /^(--port \(PORT\)|PORT|HOST)\b/.test(p))) {
    return;
  }
  try {
    const l = Deno.listen({ hostname: host, port });
    l.close();
    await Promise.resolve();
  } catch (err) {
    const why = err instanceof Deno.errors.AddrInUse
      ? "is in use now (fine if that is this proxy, checked before a restart)"
      : `cannot be listened on: ${(err as Error).message}`;
    f.warnings.push(`PORT: ${host}:${port} ${why}`);
  }
}

/** Whether the Redis this configuration would use answers PING (a warning when not). */
async function checkRedis(collected: CollectedConfig, f: Findings, timeoutMs: number) {
  const c = collected.config;
  if (collected.problems.some((p) => p.startsWith("REDIS_") || p.includes("(REDIS_"))) return;
  const wanted = c.redisUrl !== "" || c.cacheBackend === "redis" || c.cacheBackend === "auto";
  if (!wanted || (c.cacheBackend === "off" && c.redisUrl === "")) return;
  const where = c.redisUrl !== ""
    ? `REDIS_URL ${maskValue("REDIS_URL", c.redisUrl)}`
    : `REDIS_HOST/REDIS_PORT ${c.redisHost}:${c.redisPort}`;
  const { connectRedis } = await import("../redis/mod.ts");
  const redis = connectRedis({
    url: c.redisUrl || undefined,
    host: c.redisHost,
    port: c.redisPort,
    db: c.redisDb,
    name: "proxy-check",
    commandTimeoutMs: timeoutMs,
  });
  try {
    if (await redis.ping(timeoutMs)) return;
  } finally {
    await redis.close();
  }
  const consequence = c.cacheBackend === "auto" && c.redisUrl === ""
    ? "the cache will be memory-only (CACHE_BACKEND=auto)"
    : "caching and rate limits fall back to this instance's memory until it answers";
  f.warnings.push(`${where} does not answer within ${timeoutMs} ms: ${consequence}`);
}

/** `NAME=VALUE` as in a `.env` file: quoted when the value has spaces or quotes. */
function formatSetting(s: SettingLine): string {
  const value = /^[A-Za-z0-9_./:,@*=+-]*$/.test(s.value) ? s.value : JSON.stringify(s.value);
  return `${s.env}=${value}`;
}

/** Renders the report: settings for stdout, findings and a summary for stderr. */
export function formatCheck(r: CheckReport): { stdout: string; stderr: string } {
  const lines = r.settings.map(formatSetting);
  const width = Math.min(48, Math.max(...lines.map((l) => l.length)));
  const stdout = r.settings.map((s, i) => `${lines[i].padEnd(width)}  # ${s.source}`).join("\n");
  const err = [
    ...r.warnings.map((w) => `warning: ${w}`),
    ...r.problems.map((p) => `error: ${p}`),
  ];
  const c = r.collected.config;
  err.push(
    r.ok
      ? `proxy check: configuration OK; proxy serve would start in ${r.collected.mode} mode on ` +
        `${c.host}:${c.port}` + (r.warnings.length ? ` (${r.warnings.length} warning(s))` : "")
      : `proxy check: ${r.problems.length} problem(s); proxy serve would not start`,
  );
  return { stdout: stdout + "\n", stderr: err.join("\n") + "\n" };
}

/** The `proxy check` command. */
export async function runCheck(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(CHECK_HELP);
    return 0;
  }
  const report = await checkConfig({ args });
  const { stdout, stderr } = formatCheck(report);
  console.log(stdout.trimEnd());
  console.error(stderr.trimEnd());
  return report.ok ? 0 : 2;
}
