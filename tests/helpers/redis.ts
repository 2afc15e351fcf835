/**
 * Starts a private `redis-server` on a free port for a test, so tests never
 * touch a Redis they did not start (and fault tests may kill theirs).
 */
import { freePort, startOnPort } from "./ports.ts";

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
  /** True once this child serves the port; false when it exited (the port was taken). */
  const attempt = async (): Promise<boolean> => {
    const proc = new Deno.Command("redis-server", {
      args: ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
      stdout: "null",
      stderr: "null",
    }).spawn();
    child = proc;
    let exited = false;
    const status = proc.status.then(() => (exited = true));
    const deadline = Date.now() + 20_000;
    while (!exited && Date.now() < deadline) {
      // Something answering on the port is not enough: it must be this process.
      if ((await serverPid(port)) === proc.pid) return true;
      await new Promise((r) => setTimeout(r, 50));
    }
    if (!exited) {
      proc.kill("SIGKILL");
      await status;
      throw new Error(`redis-server on port ${port} did not start`);
    }
    child = undefined;
    return false;
  };
  const spawn = () => startOnPort(port, attempt);
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

/** The process id of the Redis answering on `port`, or undefined when none answers. */
async function serverPid(port: number): Promise<number | undefined> {
  let conn: Deno.Conn | undefined;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(new TextEncoder().encode("INFO server\r\n"));
    let text = "";
    const buf = new Uint8Array(8192);
    while (!/process_id:\d+\r\n/.test(text)) {
      const n = await conn.read(buf);
      if (n === null) return undefined;
      text += new TextDecoder().decode(buf.subarray(0, n));
      if (text.startsWith("-")) return undefined; // LOADING and the like: not ready yet
    }
    return Number(/process_id:(\d+)/.exec(text)![1]);
  } catch {
    return undefined;
  } finally {
    try {
      conn?.close();
    } catch { /* closed */ }
  }
}
