/**
 * `proxy dashboard`: parses its flags, refuses to listen off loopback
 * without a token, serves the dashboard app and stops the proxy child on
 * SIGINT/SIGTERM.
 *
 * Like `src/config/`, this entry point reads its own environment variables
 * (DASHBOARD_HOST, DASHBOARD_PORT, DASHBOARD_TOKEN) and `.env`; the app it
 * builds takes a typed options object.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { parseDotEnv } from "../config/mod.ts";
import { createDashboard } from "./app.ts";
import { selfServeCommand } from "./supervisor.ts";

export const DASHBOARD_HELP =
  `proxy dashboard — web UI for the proxy: start/stop, live logs and numbers,
configuration editor, load tests with charts

USAGE
  proxy dashboard [--host 127.0.0.1] [--port 5000] [--env-file .env] [--token TOKEN]

FLAGS (flag > environment > .env > default)
  --host H        address to listen on (DASHBOARD_HOST, default 127.0.0.1)
  --port P        port (DASHBOARD_PORT, default 5000; 0 picks a free one)
  --env-file F    the .env file the editor saves and the proxy is started with (default ./.env)
  --token T       token for the UI and API (DASHBOARD_TOKEN); required unless bound to loopback

Start and Stop run \`proxy serve\` (this same binary) as a child process with the
saved .env; its logs stream to the page. The load test history is kept in
.proxy-dashboard/history.json beside the .env file.

EXAMPLES
  proxy dashboard                                   then open http://127.0.0.1:5000
  DASHBOARD_TOKEN=s3cret proxy dashboard --host 0.0.0.0   reachable from the LAN, token required

EXIT STATUS
  0 after SIGINT/SIGTERM, 2 for a bad flag or a missing token off loopback.
`;

export interface DashboardCliOptions {
  host: string;
  port: number;
  envFile: string;
  token?: string;
}

/** A user mistake in flags or environment; one line, exit status 2. */
export class DashboardUsageError extends Error {
  override name = "DashboardUsageError";
}

const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost"]);

export function isLoopback(host: string): boolean {
  return LOOPBACK.has(host.replace(/^\[(.*)\]$/, "$1")) || /^127\./.test(host);
}

/**
 * Resolves the dashboard's options from flags, environment and the .env
 * file (in that order of precedence). Throws DashboardUsageError.
 */
export function resolveDashboardOptions(
  args: string[],
  env: Record<string, string | undefined>,
  readTextFile: (path: string) => string,
): DashboardCliOptions | "help" {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        host: { type: "string" },
        port: { type: "string" },
        "env-file": { type: "string" },
        token: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (err) {
    throw new DashboardUsageError(
      `${(err as Error).message.split("\n")[0]} (see proxy dashboard --help)`,
    );
  }
  const v = parsed.values;
  if (v.help) return "help";
  const envFile = v["env-file"] ?? ".env";
  let file: Record<string, string> = {};
  try {
    file = parseDotEnv(readTextFile(envFile));
  } catch (err) {
    // A missing file is fine: the editor creates it on the first save.
    if (!(err instanceof Deno.errors.NotFound)) {
      throw new DashboardUsageError(
        `--env-file: cannot read "${envFile}": ${(err as Error).message}`,
      );
    }
  }
  const pick = (flag: string | undefined, name: string) =>
    flag ?? (env[name] || undefined) ?? (file[name] || undefined);
  const host = pick(v.host, "DASHBOARD_HOST") ?? "127.0.0.1";
  const portText = pick(v.port, "DASHBOARD_PORT") ?? "5000";
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) {
    throw new DashboardUsageError(
      `--port (DASHBOARD_PORT): "${portText}" is not a port number 0–65535`,
    );
  }
  const token = pick(v.token, "DASHBOARD_TOKEN");
  if (token !== undefined && /[\r\n\0]/.test(token)) {
    throw new DashboardUsageError("--token (DASHBOARD_TOKEN) must not contain line breaks");
  }
  if (!isLoopback(host) && !token) {
    throw new DashboardUsageError(
      `--host ${host} is reachable from other machines: set a token with --token or DASHBOARD_TOKEN`,
    );
  }
  return { host, port, envFile, token };
}

/** Runs `proxy dashboard` with the arguments after the subcommand; returns the exit code. */
export async function runDashboard(args: string[]): Promise<number> {
  let opts;
  try {
    opts = resolveDashboardOptions(args, Deno.env.toObject(), Deno.readTextFileSync);
  } catch (err) {
    if (err instanceof DashboardUsageError) {
      console.error(`proxy dashboard: ${err.message}`);
      return 2;
    }
    throw err;
  }
  if (opts === "help") {
    console.log(DASHBOARD_HELP);
    return 0;
  }
  const dashboard = await createDashboard({
    envFile: opts.envFile,
    proxyCommand: selfServeCommand(Deno.mainModule, Deno.execPath()),
    token: opts.token,
    loopbackOnly: isLoopback(opts.host),
    readableChildLogs: Deno.env.get("LOG_FORMAT") === undefined,
  });
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: opts.host,
      port: opts.port,
      onListen: () => {},
    }, dashboard.fetch);
  } catch (err) {
    await dashboard.close();
    const msg = err instanceof Deno.errors.AddrInUse
      ? `--port: ${opts.host}:${opts.port} is already in use`
      : (err as Error).message;
    console.error(`proxy dashboard: ${msg}`);
    return 2;
  }
  const { hostname, port } = server.addr;
  const shown = hostname.includes(":") ? `[${hostname}]` : hostname;
  console.error(
    `proxy dashboard listening on http://${shown}:${port}/` +
      (opts.token ? " (token required)" : ""),
  );
  const stopped = Promise.withResolvers<void>();
  const stop = () => stopped.resolve();
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  await stopped.promise;
  Deno.removeSignalListener("SIGINT", stop);
  Deno.removeSignalListener("SIGTERM", stop);
  console.error("proxy dashboard: stopping (and the proxy it started)");
  await dashboard.close();
  await server.shutdown();
  return 0;
}
