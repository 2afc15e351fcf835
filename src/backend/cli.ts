/**
 * `proxy backend`: runs the test origin until SIGINT/SIGTERM.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { startBackend } from "./server.ts";

const USAGE = `Usage: proxy backend [--host HOST] [--port PORT] [--name NAME]

A deterministic test origin (httpbin-like) for demos, tests and benchmarks.

Options:
  --host HOST   address to listen on (default 127.0.0.1)
  --port PORT   port to listen on, 0 for any free port (default 8000)
  --name NAME   value of the X-Backend response header (default backend-<port>)
  -h, --help    show this help

Endpoints: /  /json  /large  /bytes/:n[?seed=S&chunked=1]  /delay/:ms  /status/:code
  /echo[?stream=1]  /error  /cache/:seconds  /etag/:tag  /gzip  /stream/:chunks[?delay=ms]
  /headers  /upload  /ws  /die-mid-body  /__stats  /__stats/reset (POST)  /health
  Every response carries X-Backend: NAME; /__stats counts requests per path.
  Details of each endpoint: src/backend/README.md.

Examples:
  proxy backend --port 8001 --name a &
  proxy backend --port 8002 --name b &
  proxy --backend http://127.0.0.1:8001,http://127.0.0.1:8002
  curl -i http://127.0.0.1:8080/json          # X-Backend: a, then b

Signals: SIGINT/SIGTERM stop it after in-flight requests (up to 2 s).
Exit status: 0 after a clean stop, 2 for a bad option.
`;

/** Runs the backend CLI with the arguments after `backend`; resolves to the exit code. */
export async function runBackend(args: string[]): Promise<number> {
  let values: { host?: string; port?: string; name?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        host: { type: "string" },
        port: { type: "string" },
        name: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    console.error(`proxy backend: ${(err as Error).message} (see proxy backend --help)`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const host = values.host ?? "127.0.0.1";
  const portText = values.port ?? "8000";
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (!(port >= 0 && port <= 65535)) {
    console.error(`proxy backend: --port must be a number 0-65535, got "${portText}"`);
    return 2;
  }
  if (host === "") {
    console.error(`proxy backend: --host must not be empty`);
    return 2;
  }

  let backend;
  try {
    backend = await startBackend({ host, port, name: values.name ?? "" });
  } catch (err) {
    console.error(`proxy backend: cannot listen on ${host}:${port}: ${(err as Error).message}`);
    return 1;
  }
  console.log(`backend ${backend.name} listening on ${backend.url}`);

  const signals: Deno.Signal[] = Deno.build.os === "windows"
    ? ["SIGINT", "SIGBREAK"]
    : ["SIGINT", "SIGTERM"];
  await new Promise<void>((resolve) => {
    const stop = () => {
      for (const s of signals) Deno.removeSignalListener(s, stop);
      resolve();
    };
    for (const s of signals) Deno.addSignalListener(s, stop);
  });
  await backend.close();
  return 0;
}

if (import.meta.main) {
  Deno.exit(await runBackend(Deno.args));
}
