/**
 * `proxy dashboard`: a Hono app with an embedded UI to start and stop the
 * proxy, watch its logs and numbers, edit its `.env` configuration and run
 * load tests with charts and a history.
 *
 * @example
 * ```ts
 * import { runDashboard } from "./src/dashboard/mod.ts";
 * Deno.exit(await runDashboard(["--port", "5000"]));
 * ```
 *
 * @module
 */
export {
  createDashboard,
  type Dashboard,
  type DashboardOptions,
  defaultHistoryFile,
} from "./app.ts";
export {
  DASHBOARD_HELP,
  type DashboardCliOptions,
  DashboardUsageError,
  isLoopback,
  resolveDashboardOptions,
  runDashboard,
} from "./cli.ts";
export { type ProxyCommand, type ProxyStatus, selfServeCommand } from "./supervisor.ts";
