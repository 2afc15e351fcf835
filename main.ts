/**
 * `proxy`: one binary, five subcommands. This file only dispatches.
 *
 * @module
 */
import { VERSION } from "./src/version.ts";

const HELP = `proxy ${VERSION} — a caching HTTP/HTTPS proxy, reverse proxy and load balancer

USAGE
  proxy [serve] [FLAGS]     run the proxy (the default command); proxy serve --help lists
                            every setting, flag and default
  proxy check [FLAGS]       validate the settings (values, files, TLS pair, Redis) and print
                            the effective ones with their source; exit 0 if serve would start
  proxy dashboard [FLAGS]   web UI on 127.0.0.1:5000: start/stop the proxy, live logs,
                            settings editor, load tests with charts
  proxy backend [FLAGS]     a test origin server (httpbin-like endpoints)
  proxy loadtest [FLAGS]    a load generator: requests/s and latency percentiles
  proxy ca [--dir DIR]      create the local CA for HTTPS caching (TLS_INTERCEPT=on) and
                            print how to trust it
  proxy --version, -V       version, Deno/V8/TypeScript versions and build target
  proxy --help, -h          this text; proxy <command> --help for each command

DESCRIPTION
  One port serves what the settings ask for. Without BACKEND_SERVERS it is a forward proxy:
  clients set HTTP_PROXY/HTTPS_PROXY (or a browser's proxy settings) to it, and HTTPS goes
  through CONNECT tunnels. With BACKEND_SERVERS it is a reverse proxy and load balancer in
  front of them; PROXY_MODE=both does both. Responses are cached by RFC 9111 in memory and,
  when Redis answers, in Redis shared by every instance; clients are rate-limited, listed
  ad/tracker/malware hosts blocked, bodies compressed. Its own endpoints: /healthz,
  /proxy-stats, /metrics, POST /proxy-reload, PURGE <url>.

SETTINGS
  Every setting is an environment variable, also read from ./.env (or --env-file FILE);
  many have a flag. Flags beat the environment, which beats .env, which beats the defaults.

EXAMPLES
  proxy --port 8080                                     forward proxy on :8080
  curl -x http://127.0.0.1:8080 https://example.com/    use it from curl
  proxy --backend http://10.0.0.1:8000,http://10.0.0.2:8000
                                                        reverse proxy over two backends
  REDIS_URL=redis://127.0.0.1:6379 proxy --port 8080    share cache and rate limits
  proxy check --env-file /etc/proxy.env                 validate before a (re)start
  proxy dashboard                                       then open http://127.0.0.1:5000/

EXIT STATUS
  0   clean shutdown (SIGINT/SIGTERM) or --help/--version
  2   unknown command, bad flag or setting, or start-up failure (the reason in one line);
      proxy check: the configuration would not start (one line per problem)

SEE ALSO
  README.md (the manual), SECURITY.md (defaults and threat model), CHANGELOG.md; all three
  ship beside the binary in every release archive.
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
    case "check": {
      const { runCheck } = await import("./src/config/check.ts");
      return await runCheck(rest);
    }
    case "ca": {
      const { runCa } = await import("./src/intercept/mod.ts");
      return await runCa(rest);
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
