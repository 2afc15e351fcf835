/**
 * `proxy`: one binary, five subcommands. This file only dispatches.
 *
 * @module
 */
import { VERSION } from "./src/version.ts";

const HELP = `proxy ${VERSION} — a caching HTTP/HTTPS proxy, reverse proxy and load balancer

USAGE
  proxy [serve] [FLAGS]     run the proxy (default); see proxy serve --help
  proxy dashboard [FLAGS]   web UI: start/stop the proxy, live logs, config, load tests
  proxy backend [FLAGS]     a test origin server (httpbin-like endpoints)
  proxy loadtest [FLAGS]    a load generator with latency percentiles
  proxy --version           version, Deno/V8 versions and build target
  proxy --help              this text; proxy <subcommand> --help for each

EXAMPLES
  proxy --port 8080                                   forward proxy on :8080
  curl -x http://127.0.0.1:8080 http://example.com/   use it from curl
  proxy --backend http://10.0.0.1:8000,http://10.0.0.2:8000   reverse proxy
`;

function versionText(): string {
  return `proxy ${VERSION}\ndeno ${Deno.version.deno}\nv8 ${Deno.version.v8}\ntypescript ${Deno.version.typescript}\ntarget ${Deno.build.target}`;
}

async function main(args: string[]): Promise<number> {
  const [first, ...rest] = args;
  switch (first) {
    case "--version":
    case "-V":
    case "version":
      console.log(versionText());
      return 0;
    case "--help":
    case "-h":
    case "help":
      console.log(HELP);
      return 0;
    case "backend": {
      const { runBackend } = await import("./src/backend/mod.ts");
      return await runBackend(rest);
    }
    case "loadtest": {
      const { runLoadtest } = await import("./src/loadtest/mod.ts");
      return await runLoadtest(rest);
    }
    case "dashboard": {
      const { runDashboard } = await import("./src/dashboard/mod.ts");
      return await runDashboard(rest);
    }
    case "serve": {
      const { runServe } = await import("./src/server/mod.ts");
      return await runServe(rest);
    }
    default: {
      if (first !== undefined && !first.startsWith("-")) {
        console.error(`proxy: unknown subcommand "${first}" (see proxy --help)`);
        return 2;
      }
      const { runServe } = await import("./src/server/mod.ts");
      return await runServe(args);
    }
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
