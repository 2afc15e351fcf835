/**
 * Starts a private `redis-server` on a free port for a test, so tests never
 * touch a Redis they did not start (and fault tests may kill theirs).
 */
import { freePort, waitForPort } from "./ports.ts";

export interface TestRedis {
  readonly port: number;
  readonly url: string;
  /** Kills the server (SIGKILL), as a crash would. */
  kill(): Promise<void>;
  /** Starts it again on the same port (empty: it keeps nothing on disk). */
  restart(): Promise<void>;
  /** Stops it for good. */
  stop(): Promise<void>;
}

export async function startRedis(): Promise<TestRedis> {
  const port = freePort();
  let child: Deno.ChildProcess | undefined;
  const spawn = async () => {
    child = new Deno.Command("redis-server", {
      args: ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
      stdout: "null",
      stderr: "null",
    }).spawn();
    await waitForPort(port);
  };
  const kill = async () => {
    if (!child) return;
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    await child.status;
    child = undefined;
  };
  await spawn();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    kill,
    restart: spawn,
    stop: kill,
  };
}
